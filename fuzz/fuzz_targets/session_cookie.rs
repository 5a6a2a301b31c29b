//! Session and sign-in cookie decoding and stripping (`proxy/src/session/`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    proxy::fuzzing::session_cookie(data);
});
