//! The RFC 9112 `Host` check (`proxy/src/wire/host.rs`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    proxy::fuzzing::host(data);
});
