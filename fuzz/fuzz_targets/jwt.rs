//! JWT header and claims parsing and validation (`proxy::jwt`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    proxy::fuzzing::jwt(data);
});
