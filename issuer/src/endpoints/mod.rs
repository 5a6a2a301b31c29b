//! One file per URL: the HTTP handlers of the authorization server's endpoints. `app::router`
//! maps each URL to its handler here; the rules they share (authorization request validation,
//! client authentication, minting) live in `authorize` and `token`, the responses, cookies and
//! pages in `http`.

pub mod account;
pub mod authorize;
pub mod consent;
pub mod discovery;
pub mod federation;
pub mod introspect;
pub mod login;
pub mod ops;
pub mod register;
pub mod revoke;
pub mod token;
pub mod userinfo;
