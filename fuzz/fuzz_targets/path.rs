//! The request-path normaliser (`proxy/src/path.rs`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    proxy::fuzzing::path(data);
});
