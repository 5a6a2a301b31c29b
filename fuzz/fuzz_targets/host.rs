//! The RFC 9112 `Host` check (`proxy::host`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    proxy::fuzzing::host(data);
});
