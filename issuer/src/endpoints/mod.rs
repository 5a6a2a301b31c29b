//! One file per URL: the HTTP handlers of the authorization server's endpoints. `app::router`
//! maps each URL to its handler here; the rules they share (authorization request validation,
//! client authentication, minting) live in `authorize` and `token`, the responses, cookies and
//! pages in `http`.

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
