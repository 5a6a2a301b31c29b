//! The direct exchange's response-head parser and chunked decoder (`proxy/src/wire/exchange/parse.rs`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    proxy::fuzzing::upstream_response(data);
});
