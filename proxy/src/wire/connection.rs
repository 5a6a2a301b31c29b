//! The main listener's own HTTP/1.1 connection loop, for the requests that make up nearly all
//! of a tool's traffic: HTTP/1.1 requests without a body. It reads request heads into one
//! buffer, parses them with `httparse`, calls the handler, and writes each response head and
//! body itself; hyper's server connection (its header map and timers, a body channel) is
//! skipped. Its strict rules:
//!
//! - heads: no obsolete line folding; at most 100 fields (else 431) and `--max-header-bytes`
//!   (a head still incomplete at that size: 431); anything `httparse` refuses: 400; the
//!   connection is closed after either;
//! - the head must arrive within `--header-read-timeout` of when the connection began waiting
//!   for it (hyper's rule: for a kept-alive connection this bounds its idle time too), else the
//!   connection is closed;
//! - a fast request is HTTP/1.1, in origin form, not `CONNECT`, without `Transfer-Encoding`,
//!   `Upgrade` or `Expect`, without `Content-Length` (one `Content-Length: 0` is no body), and
//!   with one valid `Host` field (else the request goes to hyper, and the pipeline's guard answers 400, RFC 9112 §3.2:
//!   see [`host`] and [`super::BadHost`]).
//!
//! On the first request that is not (or the HTTP/2 prior-knowledge preface), the connection is
//! handed to hyper for the rest of its life, the bytes read so far replayed first ([`Rewind`]):
//! uploads, chunked requests, websockets, h2c and HTTP/1.0 keep hyper's handling.
//!
//! Responses: `Content-Length` when the body's size is known, chunked otherwise (streamed: what
//! the body has ready is written as soon as it must wait for more, so server-sent events are not
//! held back); no body for HEAD, 204 and 304 (a `Content-Length` the tool gave a HEAD answer is
//! kept, a 304's is not, as hyper's server drops it); trailer fields go, as hyper's server sends them, to a client that sent
//! `TE: trailers`, in a chunked body, when the response's `Trailer` field announced them (else
//! they are dropped, as RFC 9112 §7.1.2 allows); the head and a small body go out in one write. The
//! connection closes after a response when the client or the handler asked for it, when the
//! body failed or did not match its length, and on shutdown; otherwise requests are answered
//! one after the other, in order (pipelined ones too).

use std::cell::RefCell;
use std::future::{Future, poll_fn};
use std::io;
use std::mem::MaybeUninit;
use std::pin::{Pin, pin};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body::Body;
use http_body_util::Either;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::watch;
use tokio::time::Instant;

use super::body::{Body as ProxyBody, ReqBody};
use super::exchange;
use super::host;

/// Most header fields in a request head (hyper's default).
const MAX_HEADERS: usize = 100;
/// The HTTP/2 prior-knowledge connection preface.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Buffered response bytes written at once.
const WRITE_BATCH: usize = 64 * 1024;
/// Longest request target `http::Uri` takes.
const MAX_URI: usize = 65534;
/// Largest response buffer kept between requests.
const KEPT_OUT: usize = 16 * 1024;
/// Free room the read buffer keeps before each read.
const READ_ROOM: usize = 4096;

/// Limits of the loop.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Config {
    /// Time for a request head to arrive, from when the connection waits for it.
    pub(crate) header_read_timeout: Duration,
    /// Largest request head.
    pub(crate) max_header_bytes: usize,
}

/// A response body that may carry the tool's header fields, ready to be written
/// ([`exchange::Fields`]).
pub(crate) trait Relayed {
    /// The fields, once.
    fn take_fields(&mut self) -> Option<exchange::Fields> {
        None
    }
}

impl Relayed for ProxyBody {
    fn take_fields(&mut self) -> Option<exchange::Fields> {
        match self {
            Either::Left(Either::Right(relay)) => relay.take_fields(),
            _ => None,
        }
    }
}

/// How [`serve`] ended.
pub(crate) enum End<S> {
    /// The connection is finished.
    Closed,
    /// A request this loop does not serve: the rest of the connection is hyper's.
    Fallback(Rewind<S>),
}

impl<S> std::fmt::Debug for End<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            End::Closed => "Closed",
            End::Fallback(_) => "Fallback",
        })
    }
}

/// A stream whose first reads return bytes already read from it.
pub(crate) struct Rewind<S> {
    pre: Bytes,
    io: S,
}

impl<S> Rewind<S> {
    /// `io`, to be read after `pre`.
    pub(crate) fn new(io: S, pre: Bytes) -> Self {
        Rewind { pre, io }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.pre.is_empty() {
            let n = self.pre.len().min(buf.remaining());
            buf.put_slice(&self.pre[..n]);
            self.pre.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// What the start of the read buffer holds.
#[derive(Debug)]
// Returned once per request and unpacked at once: boxing the request would cost an allocation.
#[allow(clippy::large_enum_variant)]
enum Parsed {
    /// A fast request, removed from the buffer, and what its client asked for.
    Request(Request<ReqBody>, Asked),
    /// An incomplete head.
    Partial,
    /// A request for hyper.
    Fallback,
    /// A head to refuse with this status (then close).
    Reject(StatusCode),
}

/// What a request's hop-by-hop fields asked of this connection.
#[derive(Debug, Clone, Copy, Default)]
struct Asked {
    /// `Connection: close`.
    close: bool,
    /// `TE: trailers`: the client accepts trailer fields (RFC 9110 §10.1.4).
    trailers: bool,
}

/// Whether a `Connection` value has the token `token`.
fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

/// Whether a byte is visible ASCII or a tab (what `HeaderValue::to_str` takes).
fn visible(b: &u8) -> bool {
    *b == b'\t' || (0x20..0x7f).contains(b)
}

/// Whether a field value lists `token`, read as hyper reads it: only a visible-ASCII value.
fn lists_token(value: &[u8], token: &[u8]) -> bool {
    value.iter().all(visible) && has_token(value, token)
}

/// Parses the request head at the start of `buf`.
fn parse(buf: &mut BytesMut) -> Parsed {
    let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    // Strict defaults: no obsolete line folding, single spaces in the request line.
    let len = match httparse::ParserConfig::default().parse_request_with_uninit_headers(
        &mut req,
        buf,
        &mut fields,
    ) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(httparse::Error::TooManyHeaders) => {
            return Parsed::Reject(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        }
        Err(_) => return Parsed::Reject(StatusCode::BAD_REQUEST),
    };
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Parsed::Reject(StatusCode::BAD_REQUEST);
    };
    if version != 1 || !target.starts_with('/') {
        return Parsed::Fallback;
    }
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return Parsed::Reject(StatusCode::BAD_REQUEST);
    };
    if method == Method::CONNECT {
        return Parsed::Fallback;
    }
    let base = buf.as_ptr() as usize;
    let target = (target.as_ptr() as usize - base, target.len());
    // Where each field's name and value are, kept on the stack for the usual few fields.
    let mut spans = Spans::default();
    let mut asked = Asked::default();
    let mut lengths = 0;
    // `Host` fields, and whether every one is valid.
    let (mut hosts, mut host_ok) = (0, true);
    for f in req.headers.iter() {
        let name = f.name.as_bytes();
        if name.eq_ignore_ascii_case(b"host") {
            hosts += 1;
            host_ok &= host::valid(f.value);
        } else if name.eq_ignore_ascii_case(b"content-length") {
            lengths += 1;
            if f.value.trim_ascii() != b"0" {
                return Parsed::Fallback;
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding")
            || name.eq_ignore_ascii_case(b"upgrade")
            || name.eq_ignore_ascii_case(b"expect")
        {
            return Parsed::Fallback;
        } else if name.eq_ignore_ascii_case(b"connection") {
            asked.close |= lists_token(f.value, b"close");
        } else if name.eq_ignore_ascii_case(b"te") {
            asked.trailers |= lists_token(f.value, b"trailers");
        }
        // Offsets into a head shorter than `--max-header-bytes` (at most 1 MiB).
        let at = |p: *const u8| u32::try_from(p as usize - base).unwrap_or(u32::MAX);
        let len = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        spans.push(Span {
            name: at(name.as_ptr()),
            name_len: len(name.len()),
            value: at(f.value.as_ptr()),
            value_len: len(f.value.len()),
        });
    }
    // Several lengths are hyper's to judge; a bad `Host` is the pipeline's to answer (hyper's
    // request carries the finding, `super::from_hyper`).
    if lengths > 1 || hosts != 1 || !host_ok {
        return Parsed::Fallback;
    }
    let raw = buf.split_to(len).freeze();
    let uri = match Uri::from_maybe_shared(raw.slice(target.0..target.0 + target.1)) {
        Ok(u) => u,
        Err(_) if target.1 > MAX_URI => return Parsed::Reject(StatusCode::URI_TOO_LONG),
        Err(_) => return Parsed::Reject(StatusCode::BAD_REQUEST),
    };
    // Room for what the forwarder may add (`X-Forwarded-*` when client values are trusted), so
    // that the map does not grow.
    let mut headers = HeaderMap::with_capacity(spans.len() + 3);
    for span in spans.iter() {
        let name = span.name(&raw).map(HeaderName::from_bytes);
        let value = span.value(&raw).map(HeaderValue::from_maybe_shared);
        let (Some(Ok(name)), Some(Ok(value))) = (name, value) else {
            return Parsed::Reject(StatusCode::BAD_REQUEST);
        };
        headers.append(name, value);
    }
    let mut r = Request::new(ReqBody::Empty);
    *r.method_mut() = method;
    *r.uri_mut() = uri;
    *r.version_mut() = Version::HTTP_11;
    *r.headers_mut() = headers;
    Parsed::Request(r, asked)
}

/// Offsets of a field's name and value in the head.
#[derive(Debug, Clone, Copy, Default)]
struct Span {
    name: u32,
    name_len: u32,
    value: u32,
    value_len: u32,
}

impl Span {
    fn name<'a>(&self, raw: &'a [u8]) -> Option<&'a [u8]> {
        let at = self.name as usize;
        raw.get(at..at + self.name_len as usize)
    }

    fn value(&self, raw: &Bytes) -> Option<Bytes> {
        let (at, n) = (self.value as usize, self.value_len as usize);
        (at + n <= raw.len()).then(|| raw.slice(at..at + n))
    }
}

/// Fields kept inline while few.
const INLINE_SPANS: usize = 16;

/// The spans of a head's fields: the first [`INLINE_SPANS`] on the stack, the rest in a vector.
#[derive(Default)]
struct Spans {
    inline: [Span; INLINE_SPANS],
    len: usize,
    more: Vec<Span>,
}

impl Spans {
    fn push(&mut self, span: Span) {
        if self.len < INLINE_SPANS {
            self.inline[self.len] = span;
        } else {
            self.more.push(span);
        }
        self.len += 1;
    }

    fn len(&self) -> usize {
        self.len
    }

    fn iter(&self) -> impl Iterator<Item = &Span> {
        self.inline[..self.len.min(INLINE_SPANS)]
            .iter()
            .chain(self.more.iter())
    }
}

/// Whether `buf` may be (the start of) the HTTP/2 preface.
fn may_be_preface(buf: &[u8]) -> bool {
    let n = buf.len().min(PREFACE.len());
    buf[..n] == PREFACE[..n]
}

/// Serves HTTP/1.1 requests on `io` with `handle` until the connection ends, `shutdown` turns
/// true, or a request needs hyper ([`End::Fallback`]).
pub(crate) async fn serve<S, H, F, B>(
    mut io: S,
    cfg: Config,
    mut handle: H,
    shutdown: watch::Receiver<bool>,
) -> io::Result<End<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
    H: FnMut(Request<ReqBody>) -> F,
    F: Future<Output = Response<B>>,
    B: Body<Data = Bytes> + Relayed,
    B::Error: std::fmt::Display,
{
    let mut buf = BytesMut::with_capacity(2 * READ_ROOM);
    let mut out = Vec::with_capacity(READ_ROOM);
    let mut first = true;
    let mut timer = pin!(tokio::time::sleep(cfg.header_read_timeout));
    // Made once: a new `changed()` per request would register a new waiter each time.
    let mut stop_signal = shutdown.clone();
    let mut stop = pin!(stop_signal.changed());
    loop {
        timer
            .as_mut()
            .reset(Instant::now() + cfg.header_read_timeout);
        let (req, asked) = loop {
            if first && !buf.is_empty() && may_be_preface(&buf) {
                if buf.len() >= PREFACE.len() {
                    return Ok(End::Fallback(Rewind::new(io, buf.freeze())));
                }
            } else if !buf.is_empty() {
                match parse(&mut buf) {
                    Parsed::Request(r, asked) => break (r, asked),
                    Parsed::Fallback => return Ok(End::Fallback(Rewind::new(io, buf.freeze()))),
                    Parsed::Reject(status) => return reject(io, status, &mut out).await,
                    Parsed::Partial if buf.len() >= cfg.max_header_bytes => {
                        let status = StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE;
                        return reject(io, status, &mut out).await;
                    }
                    Parsed::Partial => {}
                }
            }
            if buf.capacity() - buf.len() < READ_ROOM {
                buf.reserve(READ_ROOM);
            }
            let idle = buf.is_empty();
            tokio::select! {
                biased;
                r = io.read_buf(&mut buf) => {
                    if r? == 0 {
                        return Ok(End::Closed);
                    }
                }
                () = timer.as_mut() => {
                    tracing::debug!("request head not received in time");
                    return Ok(End::Closed);
                }
                _ = stop.as_mut(), if idle => return Ok(End::Closed),
            }
        };
        first = false;
        let is_head = req.method() == Method::HEAD;
        let resp = handle(req).await;
        let keep = !asked.close
            && !resp
                .headers()
                .get_all(header::CONNECTION)
                .iter()
                .any(|v| has_token(v.as_bytes(), b"close"))
            && !*shutdown.borrow();
        let clean = write_response(&mut io, resp, is_head, asked.trailers, keep, &mut out).await?;
        if !keep || !clean {
            close(io).await;
            return Ok(End::Closed);
        }
        if out.capacity() > KEPT_OUT {
            // A large streamed body grew it: an idle connection keeps only a small one.
            out = Vec::with_capacity(READ_ROOM);
        }
    }
}

/// Ends the connection (a TLS stream says so first), without waiting long for a peer that does
/// not read.
async fn close<S: AsyncWrite + Unpin>(mut io: S) {
    let _ = tokio::time::timeout(Duration::from_secs(1), io.shutdown()).await;
}

/// Answers a refused head and closes.
async fn reject<S: AsyncWrite + Unpin>(
    mut io: S,
    status: StatusCode,
    out: &mut Vec<u8>,
) -> io::Result<End<S>> {
    tracing::debug!(status = status.as_u16(), "request head refused");
    out.clear();
    status_line(out, status);
    out.extend_from_slice(b"connection: close\r\ncontent-length: 0\r\n");
    date_field(out);
    out.extend_from_slice(b"\r\n");
    io.write_all(out).await?;
    io.flush().await?;
    close(io).await;
    Ok(End::Closed)
}

fn status_line(out: &mut Vec<u8>, status: StatusCode) {
    if status == StatusCode::OK {
        out.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        return;
    }
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
}

thread_local! {
    /// The `Date` field of the current second.
    static DATE: RefCell<(u64, [u8; 29])> = const { RefCell::new((u64::MAX, [0; 29])) };
}

/// Appends `date: <IMF-fixdate>\r\n` (formatted once a second per thread).
fn date_field(out: &mut Vec<u8>) {
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with(|d| {
        let mut d = d.borrow_mut();
        if d.0 != secs {
            let text = httpdate::fmt_http_date(now);
            if text.len() == 29 {
                d.1.copy_from_slice(text.as_bytes());
                d.0 = secs;
            }
        }
        out.extend_from_slice(b"date: ");
        out.extend_from_slice(&d.1);
        out.extend_from_slice(b"\r\n");
    });
}

/// Appends `n` in decimal.
fn decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Writes what `out` holds.
async fn drain<S: AsyncWrite + Unpin>(io: &mut S, out: &mut Vec<u8>) -> io::Result<()> {
    if !out.is_empty() {
        io.write_all(out).await?;
        out.clear();
    }
    io.flush().await
}

/// The names a response's `Trailer` fields announce (from the tool's fields and the header map),
/// as hyper's server reads them: visible-ASCII values, comma-separated names.
fn announced_trailers(fields: Option<&exchange::Fields>, headers: &HeaderMap) -> Vec<HeaderName> {
    let mut names = Vec::new();
    let values = fields.into_iter().flat_map(|f| f.values(b"trailer")).chain(
        headers
            .get_all(header::TRAILER)
            .iter()
            .map(HeaderValue::as_bytes),
    );
    for value in values {
        let Some(value) = value
            .iter()
            .all(visible)
            .then(|| std::str::from_utf8(value).ok())
            .flatten()
        else {
            continue;
        };
        names.extend(
            value
                .split(',')
                .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok()),
        );
    }
    names
}

/// Whether a field may be sent as a trailer (hyper's server list: fields that framing, routing,
/// authentication or caching need before the body, RFC 9110 §6.5.1).
fn may_trail(name: &HeaderName) -> bool {
    !matches!(
        *name,
        header::AUTHORIZATION
            | header::CACHE_CONTROL
            | header::CONTENT_ENCODING
            | header::CONTENT_LENGTH
            | header::CONTENT_RANGE
            | header::CONTENT_TYPE
            | header::HOST
            | header::MAX_FORWARDS
            | header::SET_COOKIE
            | header::TRAILER
            | header::TRANSFER_ENCODING
            | header::TE
    )
}

/// Writes a response; `Ok(false)` when its body failed or did not match its length (the
/// connection must then close). Trailer fields are written, as hyper's server writes them,
/// when the client accepts them (`te_trailers`), the body is chunked, and the response's
/// `Trailer` field announced them; otherwise they are dropped (RFC 9112 §7.1.2 lets a recipient
/// discard them).
// Writes every response of the fast path: left whole until a benchmark run shows that
// splitting it costs nothing.
#[allow(clippy::too_many_lines)]
async fn write_response<S, B>(
    io: &mut S,
    resp: Response<B>,
    is_head: bool,
    te_trailers: bool,
    keep: bool,
    out: &mut Vec<u8>,
) -> io::Result<bool>
where
    S: AsyncWrite + Unpin,
    B: Body<Data = Bytes> + Relayed,
    B::Error: std::fmt::Display,
{
    let (parts, mut body) = resp.into_parts();
    let status = parts.status;
    out.clear();
    status_line(out, status);
    let fields = body.take_fields();
    if let Some(f) = &fields {
        out.extend_from_slice(f.as_bytes());
    }
    let bodiless = is_head
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
        || status.is_informational();
    // A HEAD answer may say how long the body would be (hyper's server drops a 304's).
    let keep_length = is_head;
    for (name, value) in &parts.headers {
        if name == header::CONNECTION
            || name == header::TRANSFER_ENCODING
            || (name == header::CONTENT_LENGTH && !keep_length)
        {
            continue;
        }
        exchange::write_field(out, name, value.as_bytes());
    }
    if !fields.as_ref().is_some_and(exchange::Fields::has_date)
        && !parts.headers.contains_key(header::DATE)
    {
        date_field(out);
    }
    if !keep {
        out.extend_from_slice(b"connection: close\r\n");
    }
    if bodiless {
        out.extend_from_slice(b"\r\n");
        drain(io, out).await?;
        return Ok(true);
    }
    // `Some(left)`: the length is known, this much still to write; `None`: chunked.
    let mut left = body.size_hint().exact();
    match left {
        Some(n) => {
            out.extend_from_slice(b"content-length: ");
            decimal(out, n);
            out.extend_from_slice(b"\r\n\r\n");
        }
        None => out.extend_from_slice(b"transfer-encoding: chunked\r\n\r\n"),
    }
    let mut body = pin!(body);
    // The trailer section of a chunked body, when one is written.
    let mut trailer_section = Vec::new();
    let clean = loop {
        let frame = match poll_fn(|cx| Poll::Ready(body.as_mut().poll_frame(cx))).await {
            Poll::Ready(f) => f,
            Poll::Pending => {
                // Nothing more for now: what is ready goes out before the wait.
                drain(io, out).await?;
                poll_fn(|cx| body.as_mut().poll_frame(cx)).await
            }
        };
        let data = match frame {
            None => break true,
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => data,
                // Trailers end the body.
                Err(frame) => {
                    if let (Ok(trailers), None, true) = (frame.into_trailers(), left, te_trailers) {
                        let announced = announced_trailers(fields.as_ref(), &parts.headers);
                        for (name, value) in &trailers {
                            if announced.contains(name) && may_trail(name) {
                                exchange::write_field(&mut trailer_section, name, value.as_bytes());
                            }
                        }
                    }
                    break true;
                }
            },
            Some(Err(e)) => {
                tracing::debug!(error = %e, "response body failed");
                break false;
            }
        };
        if data.is_empty() {
            continue;
        }
        match left.as_mut() {
            Some(left) => {
                let n = usize::try_from(*left).unwrap_or(usize::MAX).min(data.len());
                out.extend_from_slice(&data[..n]);
                *left -= n as u64;
                if n < data.len() {
                    tracing::debug!("response body longer than its length");
                    break false;
                }
            }
            None => {
                out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
                out.extend_from_slice(&data);
                out.extend_from_slice(b"\r\n");
            }
        }
        if out.len() >= WRITE_BATCH {
            io.write_all(out).await?;
            out.clear();
        }
    };
    let clean = match left {
        Some(0) => clean,
        Some(_) => {
            if clean {
                tracing::debug!("response body shorter than its length");
            }
            false
        }
        None if clean => {
            out.extend_from_slice(b"0\r\n");
            out.extend_from_slice(&trailer_section);
            out.extend_from_slice(b"\r\n");
            true
        }
        None => false,
    };
    drain(io, out).await?;
    Ok(clean)
}

#[cfg(test)]
#[path = "connection_tests.rs"]
mod tests;
