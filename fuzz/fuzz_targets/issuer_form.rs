//! The issuer's form and query parameter parsing (`issuer/src/params.rs`, through `issuer::fuzzing::form`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    issuer::fuzzing::form(data);
});
