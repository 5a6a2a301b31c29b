//! The issuer's form and query parameter parsing (`issuer::params`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    issuer::fuzzing::form(data);
});
