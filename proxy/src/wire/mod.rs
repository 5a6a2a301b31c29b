//! The sealed HTTP/1.1 codec, and the one door from hyper's server into the proxy.
//!
//! Its surface is small: [`serve`] (the client connection loop for requests without a body,
//! handing every other connection to hyper), [`from_hyper`] (the same request shape for what
//! hyper's server reads), the tool client's direct exchange ([`Pool`], whose [`Relay`] body
//! carries the tool's [`Fields`]), the bodies both sides share ([`ReqBody`], [`Body`]), the
//! hop-by-hop field list and the connection deadlines ([`timeouts`]). What the codec checked
//! travels up as request extensions ([`BadHost`]), never as a variant of the body: the
//! pipeline's guard reads the same fact whichever parser read the request.
//!
//! Nothing here knows about authentication or forwarding policy; the layers above call down into
//! it, never the other way round.

mod body;
mod connection;
mod exchange;
mod hop_by_hop;
pub(crate) mod host;
pub(crate) mod timeouts;

use http::Request;
use hyper::body::Incoming;

pub(crate) use body::{Body, ReqBody};
pub(crate) use connection::{Config, End, Relayed, Rewind, serve};
pub(crate) use exchange::{
    Error as ExchangeError, Pool, Relay, check_framing, request_head, write_field,
};
pub(crate) use hop_by_hop::strip_hop_by_hop;
// The response parser's parts, for `crate::fuzzing` only.
pub(crate) use exchange::{Framing, Parsed, Step, decode, parse_head};

/// A request whose `Host` field or `:authority` fails RFC 9112 section 3.2 / RFC 9113 section
/// 8.3.1 (missing, repeated, invalid or conflicting). Set by [`from_hyper`] only: the connection
/// loop [`serve`] hands such a request to hyper instead of reading it itself. An extension only
/// on the refused request: a valid one costs nothing.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BadHost;

/// A request as hyper's server read it, in the proxy's request shape, its `Host` checked
/// ([`BadHost`]).
#[inline]
pub(crate) fn from_hyper(req: Request<Incoming>) -> Request<ReqBody> {
    let mut req = req.map(ReqBody::Incoming);
    if !host::acceptable(req.version(), req.uri().authority(), req.headers()) {
        req.extensions_mut().insert(BadHost);
    }
    req
}
