//! Every response the proxy makes itself is built here, and only here: a status, a JSON error
//! body, a `WWW-Authenticate` challenge, a redirect or a page. Stages and the admin listener say
//! what to answer with a value ([`Refusal`], [`login::Redirect`](crate::login::Redirect),
//! [`Admin`]); this module turns it into a response.
//!
//! - [`refusal`]: refusals — the status, the generic OAuth-style JSON error and the RFC 6750 /
//!   RFC 9728 challenge;
//! - [`answer`]: the own endpoints' answers (redirects, the sign-out page, the metadata document)
//!   and the admin listener's.
//!
//! Not here: the HTTP/1.1 codec's 400, 414 and 431 for bytes that do not parse as a request
//! ([`crate::wire`]), which exist before there is a request to refuse, and hyper's own answers
//! to the same when `KEYWAY_HTTP1_FAST_PATH=false`.

mod answer;
mod refusal;

pub(crate) use answer::{Admin, admin, metadata_document, redirect, sign_out_page, with_cookies};
pub(crate) use refusal::{Refusal, respond};
