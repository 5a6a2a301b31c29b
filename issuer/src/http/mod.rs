//! The HTTP side the endpoints share: the one place errors become responses, and the JSON and
//! token responses ([`response`]), the server-rendered pages ([`pages`]), the session, CSRF and
//! device cookies and starting a session ([`session`]), client authentication from headers and
//! form ([`client_auth`]), CORS ([`cors`]) and the client-address extractor ([`extract`]). Below
//! `endpoints`, above the state and the directory; it names no endpoint.

pub(crate) mod client_auth;
pub(crate) mod cors;
pub(crate) mod extract;
pub(crate) mod pages;
pub(crate) mod response;
pub(crate) mod session;
