//! The proxy's HTTP/1.1 connection loop and request-head parser (`proxy/src/wire/connection.rs`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    proxy::fuzzing::h1_request(data);
});
