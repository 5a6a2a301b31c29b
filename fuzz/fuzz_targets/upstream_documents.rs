//! An upstream OpenID provider's discovery metadata, JWKS and ID tokens, and the federation cookie, as the issuer reads them.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    issuer::fuzzing::upstream_documents(data);
});
