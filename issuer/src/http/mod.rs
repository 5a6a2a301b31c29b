//! The HTTP side the endpoints share: the one place errors become responses ([`response`]), the
//! server-rendered pages ([`pages`]), the session, CSRF and device cookies ([`session`]), CORS
//! ([`cors`]) and the client-address extractor ([`extract`]). Below `endpoints`, above the
//! state and the directory; it names no endpoint.

pub mod cors;
pub mod extract;
pub mod pages;
pub mod response;
pub mod session;
