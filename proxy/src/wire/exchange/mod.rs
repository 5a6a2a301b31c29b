//! The direct HTTP/1.1 exchange with the tool, for requests without a body (most of them: GET,
//! HEAD, ...). The request head, already rewritten by the forwarder (`crate::forward`), is written as it
//! is onto a pooled connection, and the response head is parsed here with `httparse`; the body
//! streams from the connection, which goes back to the pool once the response is complete. The
//! response's header fields are not put into a header map: they travel with the body
//! ([`Fields`]), ready to be written into the client's HTTP/1.1 response ([`super::serve`]).
//! Compared with hyper's client this saves a second task per connection, a channel, and a header
//! map per request. Requests with a body and protocol upgrades keep using hyper's client
//! (`crate::forward::tool_client`), so only responses are framed here, strictly (RFC 9112 section 6):
//!
//! - no body for HEAD, 204 and 304; a HEAD answer keeps the tool's `Content-Length` (as one
//!   field), the others lose it (the server writes the length of what it sends);
//! - `Transfer-Encoding: chunked` exactly, never with `Content-Length`, never in an HTTP/1.0
//!   response; any other transfer coding is refused;
//! - `Content-Length`: digits only; several fields or list members must agree;
//! - otherwise the body ends when the tool closes the connection (which is then not reused);
//! - interim 1xx responses are skipped, a 101 without an upgrade request is refused;
//! - obsolete line folding, bare LF, malformed chunk sizes or chunk ends, bytes after a response
//!   and oversized heads end the exchange (502 before the head, a broken body after).
//!
//! A request that finds its pooled connection closed by the tool before any response byte
//! arrived is sent again on another connection when its method is idempotent.

use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker, ready};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName};
use http::{Method, Response};
use http_body::{Frame, SizeHint};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod parse;

pub(crate) use parse::{Fields, Framing, Head, Parsed, Step, check_framing, decode, parse_head};

/// Largest response head (and trailer section) accepted.
const MAX_HEAD: usize = 256 * 1024;
/// Read size for bodies.
const READ_CHUNK: usize = 16 * 1024;

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// A pooled connection was closed by the tool before any response byte arrived.
    #[error("the connection was closed before the response")]
    Stale(#[source] Option<io::Error>),
    /// Reading or writing failed after the response had started.
    #[error("reading the response: {0}")]
    Io(#[from] io::Error),
    /// The connection ended in the middle of a response.
    #[error("the connection ended in the middle of the response")]
    Truncated,
    /// The response was not valid HTTP/1.1 or its framing was ambiguous.
    #[error("malformed response: {0}")]
    Malformed(&'static str),
}

fn malformed(why: &'static str) -> Error {
    Error::Malformed(why)
}

struct Idle {
    stream: TcpStream,
    since: Instant,
}

/// Idle connections to the tool.
#[derive(Clone)]
pub(crate) struct Pool {
    inner: Arc<PoolInner>,
}

struct PoolInner {
    idle: Mutex<Vec<Idle>>,
    max: usize,
    idle_timeout: Duration,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").field("idle", &self.len()).finish()
    }
}

/// Whether an idle connection is still usable: nothing may arrive on it, so readability means
/// the tool closed it, reset it or sent stray bytes. Readiness left over from the last read is
/// told apart with one non-blocking read.
fn usable(stream: &TcpStream) -> bool {
    let mut cx = Context::from_waker(Waker::noop());
    if stream.poll_read_ready(&mut cx).is_pending() {
        return true;
    }
    let mut probe = [0u8; 1];
    matches!(stream.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
}

impl Pool {
    /// A pool keeping at most `max` idle connections, each for at most `idle_timeout`.
    pub(crate) fn new(max: usize, idle_timeout: Duration) -> Self {
        Pool {
            inner: Arc::new(PoolInner {
                idle: Mutex::new(Vec::new()),
                max,
                idle_timeout,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Idle>> {
        self.inner.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Idle connections held.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Drops connections the tool closed and those idle for longer than the idle timeout.
    pub(crate) fn prune(&self) {
        let timeout = self.inner.idle_timeout;
        self.lock()
            .retain(|i| i.since.elapsed() <= timeout && usable(&i.stream));
    }

    fn checkout(&self) -> Option<TcpStream> {
        let mut idle = self.lock();
        while let Some(i) = idle.pop() {
            if usable(&i.stream) {
                return Some(i.stream);
            }
        }
        None
    }

    fn checkin(&self, stream: TcpStream) {
        let mut idle = self.lock();
        if idle.len() < self.inner.max {
            idle.push(Idle {
                stream,
                since: Instant::now(),
            });
        }
    }

    /// Sends a request head (a request without a body) and returns the response with its body
    /// streaming. `connect` opens a new connection when none is idle.
    pub(crate) async fn request<C, F, E>(
        &self,
        head: &[u8],
        method: &Method,
        connect: C,
    ) -> Result<Response<Relay>, E>
    where
        C: Fn() -> F,
        F: Future<Output = Result<TcpStream, E>>,
        E: From<Error>,
    {
        let is_head = method == Method::HEAD;
        // One scheduler turn before the request goes out, so that the requests of the other
        // connections ready now are read first and reach the tool together. The tool usually
        // shares the core (a sidecar's pod), and each write that wakes it lets it preempt the
        // proxy; written together, they find it awake and are answered in one wake-up
        // (docs/proxy.md, "Benchmark", says what it buys).
        tokio::task::yield_now().await;
        loop {
            let (mut stream, reused) = match self.checkout() {
                Some(s) => (s, true),
                None => (connect().await?, false),
            };
            match exchange(&mut stream, head, is_head).await {
                Ok((parsed, rest)) => return Ok(self.respond(stream, parsed, rest)),
                Err(Error::Stale(_)) if reused && method.is_idempotent() => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn respond(&self, stream: TcpStream, head: Head, rest: BytesMut) -> Response<Relay> {
        let mut relay = Relay {
            fields: Some(head.fields),
            stream: Some(stream),
            buf: rest,
            framing: head.framing,
            keep_alive: head.keep_alive,
            pool: self.clone(),
        };
        if relay.framing == Framing::Empty {
            relay.finish();
        }
        let mut resp = Response::new(relay);
        *resp.status_mut() = head.status;
        resp
    }
}

/// Writes the head and reads the response head (skipping interim responses).
async fn exchange(
    stream: &mut TcpStream,
    head: &[u8],
    is_head: bool,
) -> Result<(Head, BytesMut), Error> {
    stream
        .write_all(head)
        .await
        .map_err(|e| Error::Stale(Some(e)))?;
    // Small enough for the allocator's per-thread cache (most heads and small bodies fit; the
    // buffer grows for more).
    let mut buf = BytesMut::with_capacity(1024);
    let mut received = false;
    loop {
        if !buf.is_empty() {
            match parse_head(&mut buf, is_head)? {
                Parsed::Final(h) => return Ok((h, buf)),
                Parsed::Interim => continue,
                Parsed::Partial if buf.len() >= MAX_HEAD => {
                    return Err(malformed("response head too large"));
                }
                Parsed::Partial => {}
            }
        }
        if buf.capacity() == buf.len() {
            buf.reserve(4096);
        }
        let n = match stream.read_buf(&mut buf).await {
            Ok(n) => n,
            Err(e) if !received => return Err(Error::Stale(Some(e))),
            Err(e) => return Err(Error::Io(e)),
        };
        if n == 0 {
            return Err(if received {
                Error::Truncated
            } else {
                Error::Stale(None)
            });
        }
        received = true;
    }
}

/// A response body read from a pooled connection.
pub(crate) struct Relay {
    /// The response's header fields, until taken.
    fields: Option<Fields>,
    stream: Option<TcpStream>,
    buf: BytesMut,
    framing: Framing,
    keep_alive: bool,
    pool: Pool,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("framing", &self.framing)
            .finish()
    }
}

impl Relay {
    /// The response's header fields (the response's own header map holds none of them): once.
    pub(crate) fn take_fields(&mut self) -> Option<Fields> {
        self.fields.take()
    }

    /// The response is complete: the connection goes back to the pool if it can carry another.
    fn finish(&mut self) {
        self.framing = Framing::Empty;
        if let Some(stream) = self.stream.take()
            && self.keep_alive
            && self.buf.is_empty()
        {
            self.pool.checkin(stream);
        }
    }

    fn fail(&mut self, e: Error) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        self.framing = Framing::Empty;
        self.stream = None;
        Poll::Ready(Some(Err(e)))
    }

    /// Reads more from the connection: `Ok(0)` at its end.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let Some(stream) = self.stream.as_mut() else {
            return Poll::Ready(Ok(0));
        };
        if self.buf.capacity() == self.buf.len() {
            self.buf.reserve(READ_CHUNK);
        }
        pin!(stream.read_buf(&mut self.buf)).poll(cx)
    }
}

impl http_body::Body for Relay {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = &mut *self;
        loop {
            match this.framing {
                Framing::Empty => return Poll::Ready(None),
                Framing::Length(left) if !this.buf.is_empty() => {
                    let n = usize::try_from(left)
                        .unwrap_or(usize::MAX)
                        .min(this.buf.len());
                    let data = this.buf.split_to(n).freeze();
                    this.framing = Framing::Length(left - n as u64);
                    if n as u64 == left {
                        this.finish();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Framing::Close if !this.buf.is_empty() => {
                    return Poll::Ready(Some(Ok(Frame::data(this.buf.split().freeze()))));
                }
                Framing::Chunked(mut state) if !this.buf.is_empty() => {
                    let step = decode(&mut this.buf, &mut state);
                    this.framing = Framing::Chunked(state);
                    match step {
                        Ok(Step::Data(data)) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                        Ok(Step::End(trailers)) => {
                            this.finish();
                            return Poll::Ready(trailers.map(|mut t| {
                                super::hop_by_hop::strip_hop_by_hop(&mut t);
                                t.remove(header::CONTENT_LENGTH);
                                Ok(Frame::trailers(t))
                            }));
                        }
                        Ok(Step::More) => {}
                        Err(e) => return this.fail(e),
                    }
                }
                Framing::Length(_) | Framing::Close | Framing::Chunked(_) => {}
            }
            match ready!(this.poll_fill(cx)) {
                Ok(0) if this.framing == Framing::Close => {
                    this.framing = Framing::Empty;
                    this.stream = None;
                    return Poll::Ready(None);
                }
                Ok(0) => return this.fail(Error::Truncated),
                Ok(_) => {}
                Err(e) => return this.fail(Error::Io(e)),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.framing == Framing::Empty
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            Framing::Empty => SizeHint::with_exact(0),
            Framing::Length(n) => SizeHint::with_exact(n),
            Framing::Chunked(_) | Framing::Close => SizeHint::default(),
        }
    }
}

/// Appends a `name: value` line to a head.
pub(crate) fn write_field(out: &mut Vec<u8>, name: &HeaderName, value: &[u8]) {
    let name = name.as_str().as_bytes();
    out.reserve(name.len() + value.len() + 4);
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Writes the request head for the tool into `out` (emptied first): request line, the (already
/// rewritten) header fields, and whatever `more` appends (valid field lines).
pub(crate) fn request_head(
    out: &mut Vec<u8>,
    method: &Method,
    target: &str,
    headers: &HeaderMap,
    more: impl FnOnce(&mut Vec<u8>),
) {
    out.clear();
    // A buffer kept from the connection's last request is usually large enough already; the
    // fields are not measured first (that is a second pass over the map).
    out.reserve(method.as_str().len() + target.len() + 1024);
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (k, v) in headers {
        write_field(out, k, v.as_bytes());
    }
    more(out);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use http::StatusCode;
    use http::header::HeaderValue;
    use http_body_util::BodyExt;
    use parse::{Chunk, MAX_CHUNK_LINE, MAX_HEADERS, is_hop_by_hop};

    fn head(raw: &str, is_head: bool) -> Result<Head, Error> {
        let mut buf = BytesMut::from(raw);
        loop {
            match parse_head(&mut buf, is_head)? {
                Parsed::Final(h) => return Ok(h),
                Parsed::Interim => {}
                Parsed::Partial => panic!("partial: {raw:?}"),
            }
        }
    }

    fn refused(raw: &str) -> &'static str {
        match head(raw, false) {
            Err(Error::Malformed(why)) => why,
            other => panic!("{raw:?} accepted: {other:?}"),
        }
    }

    #[test]
    fn every_hop_by_hop_name_passes_the_length_filter() {
        for name in crate::wire::hop_by_hop::HOP_BY_HOP_NAMES {
            assert!(is_hop_by_hop(name.as_bytes()), "{name}");
            assert!(is_hop_by_hop(name.to_uppercase().as_bytes()), "{name}");
        }
        assert!(!is_hop_by_hop(b"content-type"));
    }

    #[test]
    fn ambiguous_or_malformed_framing_is_refused() {
        let cases = [
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
                "both Transfer-Encoding and Content-Length",
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
                "conflicting Content-Length values",
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n",
                "conflicting Content-Length values",
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n",
                "invalid Content-Length",
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 0x5\r\n\r\n",
                "invalid Content-Length",
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n",
                "invalid Content-Length",
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
                "invalid Content-Length",
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                "unsupported Transfer-Encoding",
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
                "unsupported Transfer-Encoding",
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\n",
                "unsupported Transfer-Encoding",
            ),
            (
                "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                "Transfer-Encoding in an HTTP/1.0 response",
            ),
            (
                "HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\nContent-Length: 1\r\n\r\n",
                "invalid response head",
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length : 1\r\n\r\n",
                "invalid response head",
            ),
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
                "protocol switch without an upgrade request",
            ),
            (
                "HTTP/1.1 200 OK\r\nX-A: a\x01b\r\n\r\n",
                "invalid response head",
            ),
        ];
        for (raw, why) in cases {
            assert_eq!(refused(raw), why, "{raw:?}");
        }
        let many = format!(
            "HTTP/1.1 200 OK\r\n{}\r\n",
            (0..=MAX_HEADERS)
                .map(|i| format!("x-{i}: 1\r\n"))
                .collect::<String>()
        );
        assert_eq!(refused(&many), "too many header fields");
    }

    #[test]
    fn responses_read_by_hyper_are_held_to_the_same_framing() {
        for raw in [
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\ncontent-length: 2, 2\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding:  Chunked \r\n\r\n",
            "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            "HTTP/1.0 200 OK\r\n\r\n",
        ] {
            let mut slots = [httparse::EMPTY_HEADER; 8];
            let mut resp = httparse::Response::new(&mut slots);
            resp.parse(raw.as_bytes()).unwrap();
            let mut map = HeaderMap::new();
            for f in resp.headers.iter() {
                map.append(
                    HeaderName::from_bytes(f.name.as_bytes()).unwrap(),
                    HeaderValue::from_bytes(f.value).unwrap(),
                );
            }
            let version = if resp.version == Some(0) {
                http::Version::HTTP_10
            } else {
                http::Version::HTTP_11
            };
            let hyper = check_framing(version, &mut map).map_err(|e| e.to_string());
            let direct = head(raw, false).map(|_| ()).map_err(|e| e.to_string());
            assert_eq!(hyper, direct, "{raw:?}");
            if hyper.is_ok() && map.contains_key(header::CONTENT_LENGTH) {
                let lengths: Vec<_> = map.get_all(header::CONTENT_LENGTH).iter().collect();
                assert_eq!(lengths, ["2"], "one field, one value: {raw:?}");
            }
        }
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let f = |raw: &str, is_head| head(raw, is_head).unwrap().framing;
        let cl = "HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n";
        assert_eq!(f(cl, false), Framing::Length(12));
        assert_eq!(f(cl, true), Framing::Empty, "HEAD");
        assert_eq!(
            f("HTTP/1.1 200 OK\r\ncontent-length: 7, 7\r\n\r\n", false),
            Framing::Length(7)
        );
        assert_eq!(
            f(
                "HTTP/1.1 304 Not Modified\r\nContent-Length: 12\r\n\r\n",
                false
            ),
            Framing::Empty
        );
        assert_eq!(f("HTTP/1.1 204 No Content\r\n\r\n", false), Framing::Empty);
        assert_eq!(
            f(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n",
                false
            ),
            Framing::Chunked(Chunk::Size)
        );
        let close = head("HTTP/1.1 200 OK\r\n\r\n", false).unwrap();
        assert_eq!((close.framing, close.keep_alive), (Framing::Close, false));
        let old = head("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", false).unwrap();
        assert!(!old.keep_alive);
        let closing =
            "HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 1\r\n\r\n";
        assert!(!head(closing, false).unwrap().keep_alive);
        let interim = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\nX-A: b\r\n\r\n";
        let h = head(interim, false).unwrap();
        assert_eq!(h.status, StatusCode::CREATED);
        assert_eq!(h.fields.as_bytes(), b"X-A: b\r\n");
        let mut partial = BytesMut::from("HTTP/1.1 200 OK\r\nContent-Le");
        assert!(matches!(
            parse_head(&mut partial, false),
            Ok(Parsed::Partial)
        ));
    }

    #[test]
    fn fields_lose_hop_by_hop_and_framing_and_keep_the_rest_in_order() {
        let raw = "HTTP/1.1 200 OK\r\nServer: t\r\nConnection: keep-alive, X-Secret\r\nKeep-Alive: timeout=5\r\nX-Secret: s\r\nContent-Length: 2\r\nSet-Cookie: a=1\r\nDate: Sat, 28 Nov 2026 04:00:00 GMT\r\nTrailer: x\r\nSet-Cookie: b=2\r\nUpgrade: h2c\r\nProxy-Authenticate: Basic\r\n\r\nhi";
        let h = head(raw, false).unwrap();
        assert_eq!(
            String::from_utf8_lossy(h.fields.as_bytes()),
            "Server: t\r\nSet-Cookie: a=1\r\nDate: Sat, 28 Nov 2026 04:00:00 GMT\r\nTrailer: x\r\nSet-Cookie: b=2\r\n"
        );
        assert!(h.fields.has_date());
        let cookies: Vec<&[u8]> = h.fields.values(b"set-cookie").collect();
        assert_eq!(cookies, [b"a=1".as_slice(), b"b=2"]);
        assert_eq!(h.framing, Framing::Length(2));
        // HEAD answers keep the length the tool gave (once), and announce no trailers; 304
        // answers keep neither (as hyper's server writes them).
        let h = head(raw, true).unwrap();
        assert!(h.fields.as_bytes().ends_with(b"\r\ncontent-length: 2\r\n"));
        assert_eq!(h.fields.values(b"trailer").count(), 0);
        let twice = "HTTP/1.1 200 OK\r\nContent-Length: 7\r\ncontent-length: 7, 7\r\n\r\n";
        let h = head(twice, true).unwrap();
        assert_eq!(h.fields.as_bytes(), b"content-length: 7\r\n");
        let h = head(
            "HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\nTrailer: x\r\n\r\n",
            false,
        )
        .unwrap();
        assert_eq!(h.fields.as_bytes(), b"");
        assert!(!h.fields.has_date());
        let h = head(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            false,
        )
        .unwrap();
        assert_eq!(h.fields.as_bytes(), b"");
    }

    #[test]
    fn fields_go_before_the_handlers_own_in_a_header_map() {
        let h = head(
            "HTTP/1.1 200 OK\r\nSet-Cookie: tool=1\r\nX-A: b\r\nContent-Length: 0\r\n\r\n",
            false,
        )
        .unwrap();
        let mut map = HeaderMap::new();
        map.append(header::SET_COOKIE, HeaderValue::from_static("own=1"));
        map.append(header::SET_COOKIE, HeaderValue::from_static("own=2"));
        map.append(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.fields.merge_into(&mut map);
        let cookies: Vec<_> = map.get_all(header::SET_COOKIE).iter().collect();
        assert_eq!(cookies, ["tool=1", "own=1", "own=2"]);
        assert_eq!(map["x-a"], "b");
        assert_eq!(map[header::CACHE_CONTROL], "no-store");
        assert_eq!(map.len(), 5);
    }

    fn decode_all(raw: &[u8]) -> Result<(Vec<u8>, Option<HeaderMap>), Error> {
        let mut buf = BytesMut::from(raw);
        let mut state = Chunk::Size;
        let mut out = Vec::new();
        loop {
            match decode(&mut buf, &mut state)? {
                Step::Data(d) => out.extend_from_slice(&d),
                Step::End(t) => return Ok((out, t)),
                Step::More => return Err(Error::Truncated),
            }
        }
    }

    #[test]
    fn chunked_bodies_decode_strictly() {
        let (body, trailers) =
            decode_all(b"5\r\nhello\r\n1;ext=\"x\"\r\n!\r\nA \t;e\r\n0123456789\r\n0\r\n\r\n")
                .unwrap();
        assert_eq!(body, b"hello!0123456789");
        assert!(trailers.is_none());
        let (body, trailers) = decode_all(b"2\r\nhi\r\n0\r\nX-Sum: 1\r\n\r\n").unwrap();
        assert_eq!(body, b"hi");
        assert_eq!(trailers.unwrap()["x-sum"], "1");
        for (raw, why) in [
            (&b"zz\r\n"[..], "invalid chunk size"),
            (b"\r\n", "invalid chunk size"),
            (
                b"5\nhello\r\n0\r\n\r\n",
                "chunk size line not ended by CRLF",
            ),
            (b"-5\r\n", "invalid chunk size"),
            (b"10000000000000000\r\n", "invalid chunk size"),
            (b"5 x\r\nhello\r\n", "invalid chunk extension"),
            (b"5;a\rb\r\nhello\r\n", "invalid chunk extension"),
            (b"5\r\nhelloXY0\r\n\r\n", "chunk data not followed by CRLF"),
            (b"5\r\nhello\n0\r\n\r\n", "chunk data not followed by CRLF"),
            (b"0\r\nX-A: 1\r\n folded\r\n\r\n", "invalid trailer section"),
        ] {
            match decode_all(raw) {
                Err(Error::Malformed(w)) => assert_eq!(w, why, "{raw:?}"),
                other => panic!("{raw:?}: {other:?}"),
            }
        }
        let long = [b"1;".as_slice(), &[b'a'; MAX_CHUNK_LINE]].concat();
        assert!(matches!(
            decode_all(&long),
            Err(Error::Malformed("chunk size line too long"))
        ));
    }

    /// A tool that answers requests (on whichever connection) with the given bytes in turn,
    /// closing the connection after those marked `true`, and counts connections.
    async fn tool(
        scripts: Vec<(&'static [u8], bool)>,
    ) -> (std::net::SocketAddr, Arc<Mutex<usize>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(Mutex::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            let scripts = Arc::new(Mutex::new(scripts.into_iter()));
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                *count.lock().unwrap() += 1;
                let scripts = scripts.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    loop {
                        let mut chunk = [0u8; 4096];
                        let n = s.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        if !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                            continue;
                        }
                        buf.clear();
                        let next = scripts.lock().unwrap().next();
                        let Some((script, close)) = next else { return };
                        s.write_all(script).await.unwrap();
                        if close {
                            return;
                        }
                    }
                });
            }
        });
        (addr, accepted)
    }

    async fn send(
        pool: &Pool,
        addr: std::net::SocketAddr,
        method: Method,
    ) -> Result<(Response<Option<Fields>>, Result<Bytes, Error>), crate::forward::tool_client::Error>
    {
        let head = format!("{method} / HTTP/1.1\r\nhost: t\r\n\r\n");
        let connect = || async move {
            TcpStream::connect(addr)
                .await
                .map_err(|e| crate::forward::tool_client::Error::Connect(addr.to_string(), e))
        };
        let resp = pool.request(head.as_bytes(), &method, connect).await?;
        let (parts, mut body) = resp.into_parts();
        let fields = body.take_fields();
        let body = body.collect().await.map(|c| c.to_bytes());
        Ok((Response::from_parts(parts, fields), body))
    }

    #[tokio::test]
    async fn responses_stream_and_connections_are_reused_only_when_complete() {
        let (addr, accepted) = tool(vec![
            (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", false),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
                false,
            ),
            (b"HTTP/1.1 204 No Content\r\n\r\n", false),
            (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", false),
            (b"HTTP/1.1 200 OK\r\n\r\nuntil the end", true),
        ])
        .await;
        let pool = Pool::new(8, Duration::from_secs(60));
        let (r, body) = send(&pool, addr, Method::GET).await.unwrap();
        assert_eq!(
            (r.status(), body.unwrap()),
            (StatusCode::OK, "hello".into())
        );
        let (_, body) = send(&pool, addr, Method::GET).await.unwrap();
        assert_eq!(body.unwrap(), "abcde");
        let (r, body) = send(&pool, addr, Method::GET).await.unwrap();
        assert_eq!(
            (r.status(), body.unwrap()),
            (StatusCode::NO_CONTENT, "".into())
        );
        assert_eq!(*accepted.lock().unwrap(), 1, "one connection so far");
        // HEAD: the Content-Length describes a body that is not sent.
        let (r, body) = send(&pool, addr, Method::HEAD).await.unwrap();
        assert!(r.headers().is_empty());
        assert_eq!(r.into_body().unwrap().as_bytes(), b"content-length: 3\r\n");
        assert_eq!(body.unwrap(), "");
        let (_, body) = send(&pool, addr, Method::GET).await.unwrap();
        assert_eq!(body.unwrap(), "until the end");
        assert_eq!(
            pool.len(),
            0,
            "a close-delimited response's connection is not kept"
        );
    }

    #[tokio::test]
    async fn truncated_or_trailing_bytes_break_the_body_and_drop_the_connection() {
        let (addr, _) = tool(vec![(
            b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort",
            true,
        )])
        .await;
        let pool = Pool::new(8, Duration::from_secs(60));
        let (_, body) = send(&pool, addr, Method::GET).await.unwrap();
        assert!(matches!(body, Err(Error::Truncated)), "{body:?}");
        assert_eq!(pool.len(), 0);

        let (addr, _) = tool(vec![(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n",
            false,
        )])
        .await;
        let (_, body) = send(&pool, addr, Method::GET).await.unwrap();
        assert_eq!(body.unwrap(), "ok");
        assert_eq!(pool.len(), 0, "bytes after the response: not reused");

        let (addr, _) = tool(vec![(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokXX",
            false,
        )])
        .await;
        let (_, body) = send(&pool, addr, Method::GET).await.unwrap();
        assert!(matches!(body, Err(Error::Malformed(_))), "{body:?}");
        assert_eq!(pool.len(), 0);
    }

    #[tokio::test]
    async fn a_stale_pooled_connection_is_retried_for_idempotent_methods_only() {
        // The first connection answers once and then closes on the next request; so does the
        // second after two answers.
        let ok: &'static [u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        let (addr, accepted) = tool(vec![
            (ok, false),
            (b"", true),
            (ok, false),
            (ok, false),
            (b"", true),
        ])
        .await;
        let pool = Pool::new(8, Duration::from_secs(60));
        assert_eq!(
            send(&pool, addr, Method::GET).await.unwrap().1.unwrap(),
            "ok"
        );
        // The pooled connection closes when the tool reads the next request: a GET is sent again.
        assert_eq!(
            send(&pool, addr, Method::GET).await.unwrap().1.unwrap(),
            "ok"
        );
        assert_eq!(*accepted.lock().unwrap(), 2);
        assert_eq!(
            send(&pool, addr, Method::GET).await.unwrap().1.unwrap(),
            "ok"
        );
        // That connection closes too on the next request: a POST is not sent twice.
        let err = send(&pool, addr, Method::POST).await.unwrap_err();
        assert!(
            matches!(
                err,
                crate::forward::tool_client::Error::Direct(Error::Stale(_))
            ),
            "{err:?}"
        );
    }

    #[test]
    fn request_heads_are_written_as_given() {
        let mut h = HeaderMap::new();
        h.insert("host", "tool".parse().unwrap());
        h.append("x-a", "1".parse().unwrap());
        h.append("x-a", "2".parse().unwrap());
        let mut head = Vec::new();
        request_head(&mut head, &Method::GET, "/p?q=1", &h, |out| {
            write_field(out, &HeaderName::from_static("x-b"), b"3");
        });
        assert_eq!(
            String::from_utf8(head).unwrap(),
            "GET /p?q=1 HTTP/1.1\r\nhost: tool\r\nx-a: 1\r\nx-a: 2\r\nx-b: 3\r\n\r\n"
        );
    }
}
