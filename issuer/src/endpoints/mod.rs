//! One file per URL: the HTTP handlers of the authorization server's endpoints. `app::router`
//! maps each URL to its handler here. `authorize` also validates the authorization request that
//! `login` and `consent` resume, and `federation` names the provider links the login and account
//! pages show. The protocol rules they apply (the request's parameters, the grants, minting) are
//! in `oauth`; client authentication, responses, cookies, sessions and pages in `http`.

pub(crate) mod account;
pub(crate) mod authorize;
pub(crate) mod consent;
pub(crate) mod discovery;
pub(crate) mod federation;
pub(crate) mod introspect;
pub(crate) mod login;
pub(crate) mod ops;
pub(crate) mod register;
pub(crate) mod revoke;
pub(crate) mod token;
pub(crate) mod userinfo;
