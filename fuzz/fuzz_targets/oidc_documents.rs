//! The issuer's discovery metadata, JWKS and token responses as the proxy reads them.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    proxy::fuzzing::oidc_documents(data);
});
