//! The bodies the codec hands up and takes back: a client's request body ([`ReqBody`]) and the
//! response body ([`Body`]: the tool's, streamed, or one of the proxy's own small ones).

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::Incoming;

use super::exchange::Relay;

/// Response body: the tool's streamed body or one of the proxy's own small bodies.
pub(crate) type Body = Either<ToolBody, Full<Bytes>>;

/// The tool's response body, as hyper's client or the direct exchange ([`super::exchange`]) reads it.
pub(crate) type ToolBody = Either<Incoming, Relay>;

/// A client's request body: hyper's, or none (the fast HTTP/1.1 path of [`super::serve`] takes only
/// requests without a body).
#[derive(Debug)]
pub(crate) enum ReqBody {
    /// The body as hyper's server reads it.
    Incoming(Incoming),
    /// No body.
    Empty,
}

impl http_body::Body for ReqBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            ReqBody::Incoming(b) => std::pin::Pin::new(b).poll_frame(cx),
            ReqBody::Empty => std::task::Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ReqBody::Incoming(b) => b.is_end_stream(),
            ReqBody::Empty => true,
        }
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self {
            ReqBody::Incoming(b) => b.size_hint(),
            ReqBody::Empty => http_body::SizeHint::with_exact(0),
        }
    }
}
