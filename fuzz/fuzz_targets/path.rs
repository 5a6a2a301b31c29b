//! The request-path normaliser (`proxy::path`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    proxy::fuzzing::path(data);
});
