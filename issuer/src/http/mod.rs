//! The HTTP side the endpoints share: the one place errors become responses ([`response`]), the
//! server-rendered pages ([`pages`]), the session, CSRF and device cookies ([`session`]), CORS
//! ([`cors`]) and the client-address extractor ([`extract`]). Below `endpoints`, above the
//! state and the directory; it names no endpoint.

pub(crate) mod cors;
pub(crate) mod extract;
pub(crate) mod pages;
pub(crate) mod response;
pub(crate) mod session;
