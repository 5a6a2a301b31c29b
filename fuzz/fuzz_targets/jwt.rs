//! JWT header and claims parsing and validation (`oidc::jwt`, as keyway-proxy uses it).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    proxy::fuzzing::jwt(data);
});
