//! The issuer's authorization, token, registration, revocation, introspection and userinfo
//! endpoints, in-process: their form, query, JSON and `Authorization` parsing.
#![no_main]

use std::sync::LazyLock;

static ENDPOINTS: LazyLock<issuer::fuzzing::Endpoints> = LazyLock::new(|| {
    issuer::fuzzing::Endpoints::new()
        .unwrap_or_else(|e| panic!("the fuzzed issuer did not start: {e}"))
});

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ENDPOINTS.request(data);
});
