#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use http_body::Frame;
use http_body_util::Full;
use tokio::io::DuplexStream;
use tokio::sync::mpsc;

use super::*;

const CFG: Config = Config {
    header_read_timeout: Duration::from_secs(5),
    max_header_bytes: 8192,
};

/// Answers with the method and target as the body, or what the target asks for.
async fn echo(req: Request<ReqBody>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let mut resp = Response::new(Full::new(Bytes::from(format!(
        "{} {}",
        req.method(),
        req.uri()
    ))));
    match path.as_str() {
        "/204" => *resp.status_mut() = StatusCode::NO_CONTENT,
        "/304" => {
            *resp.status_mut() = StatusCode::NOT_MODIFIED;
            resp.headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from_static("42"));
        }
        "/close" => {
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        _ => {}
    }
    resp
}

/// A write counter around a stream.
struct Counting {
    io: DuplexStream,
    writes: Arc<AtomicUsize>,
}

impl AsyncRead for Counting {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counting {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(_))) {
            self.writes.fetch_add(1, Ordering::Relaxed);
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Sends `raw`, half-closes, and returns everything answered and how the loop ended.
async fn exchange(raw: &[u8]) -> (String, End<Counting>, usize) {
    let (mut client, server) = tokio::io::duplex(1 << 20);
    let writes = Arc::new(AtomicUsize::new(0));
    let io = Counting {
        io: server,
        writes: writes.clone(),
    };
    let (_tx, rx) = watch::channel(false);
    let task = tokio::spawn(serve(io, CFG, echo, rx));
    client.write_all(raw).await.unwrap();
    client.shutdown().await.unwrap();
    let end = task.await.unwrap().unwrap();
    let mut got = Vec::new();
    if matches!(end, End::Closed) {
        client.read_to_end(&mut got).await.unwrap();
    } else {
        // The loop wrote nothing before handing over unless it answered earlier requests.
        let mut chunk = [0u8; 65536];
        while let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(50), client.read(&mut chunk)).await
        {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&chunk[..n]);
        }
    }
    (
        String::from_utf8(got).unwrap(),
        end,
        writes.load(Ordering::Relaxed),
    )
}

async fn rewound(end: End<Counting>, n: usize) -> Vec<u8> {
    let End::Fallback(mut io) = end else {
        panic!("no fallback")
    };
    let mut got = vec![0u8; n];
    io.read_exact(&mut got).await.unwrap();
    got
}

#[tokio::test]
async fn each_fallback_trigger_hands_over_with_every_byte() {
    let cases: [&[u8]; 15] = [
        b"POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 3\r\n\r\nabc",
        b"POST / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 0\r\ntransfer-encoding: chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 0\r\ncontent-length: 0\r\n\r\n",
        b"GET /ws HTTP/1.1\r\nhost: a\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n",
        b"PUT / HTTP/1.1\r\nhost: a\r\nexpect: 100-continue\r\ncontent-length: 0\r\n\r\n",
        b"GET / HTTP/1.0\r\nhost: a\r\n\r\n",
        b"GET http://a/ HTTP/1.1\r\nhost: a\r\n\r\n",
        b"OPTIONS * HTTP/1.1\r\nhost: a\r\n\r\n",
        b"CONNECT a:443 HTTP/1.1\r\nhost: a:443\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00",
        // `Host` missing, repeated or invalid: the handler answers 400 (RFC 9112 §3.2).
        b"GET / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nhost: a\r\nhost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nhost: a b\r\n\r\n",
        b"GET / HTTP/1.1\r\nhost: a@b:80\r\n\r\n",
    ];
    for raw in cases {
        let (answer, end, _) = exchange(raw).await;
        let shown = String::from_utf8_lossy(raw).to_string();
        assert_eq!(answer, "", "{shown}");
        assert_eq!(rewound(end, raw.len()).await, raw, "{shown}");
    }
}

#[tokio::test]
async fn valid_host_forms_are_served_here() {
    for host in ["tool.example.com:8443", "[::1]:80", "10.0.0.1", "HOST", ""] {
        let raw = format!("GET /h HTTP/1.1\r\nHost:  {host}\r\n\r\n");
        let (answer, end, _) = exchange(raw.as_bytes()).await;
        assert!(matches!(end, End::Closed), "{host}");
        assert!(answer.ends_with("GET /h"), "{host}: {answer}");
    }
}

#[tokio::test]
async fn fallback_after_fast_requests_replays_only_the_rest() {
    let fast = b"GET /one HTTP/1.1\r\nhost: a\r\n\r\n".as_slice();
    let slow = b"POST /two HTTP/1.1\r\nhost: a\r\ncontent-length: 2\r\n\r\nhi".as_slice();
    let (answer, end, _) = exchange(&[fast, slow].concat()).await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.ends_with("GET /one"), "{answer}");
    assert_eq!(rewound(end, slow.len()).await, slow);
}

#[tokio::test]
async fn one_zero_length_is_no_body() {
    let (answer, end, _) =
        exchange(b"DELETE /x HTTP/1.1\r\nhost: a\r\ncontent-length: 0\r\n\r\n").await;
    assert!(matches!(end, End::Closed));
    assert!(answer.ends_with("DELETE /x"), "{answer}");
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order_on_one_connection() {
    let raw = b"GET /1 HTTP/1.1\r\nhost: a\r\n\r\nGET /2?q HTTP/1.1\r\nhost: a\r\n\r\nHEAD /3 HTTP/1.1\r\nhost: a\r\n\r\n";
    let (answer, end, _) = exchange(raw).await;
    assert!(matches!(end, End::Closed));
    let heads: Vec<&str> = answer.matches("HTTP/1.1 200 OK").collect();
    assert_eq!(heads.len(), 3, "{answer}");
    let one = answer.find("GET /1").unwrap();
    let two = answer.find("GET /2?q").unwrap();
    assert!(one < two);
    assert!(
        !answer.contains("HEAD /3"),
        "HEAD answered with a body: {answer}"
    );
    assert!(!answer.contains("connection: close"), "{answer}");
    assert_eq!(
        answer.matches("content-length: 6\r\n").count(),
        1,
        "{answer}"
    );
    assert_eq!(
        answer.matches("content-length: 8\r\n").count(),
        1,
        "{answer}"
    );
    assert_eq!(answer.matches("\r\ndate: ").count(), 3, "{answer}");
}

#[tokio::test]
async fn connection_close_from_either_side_ends_after_that_response() {
    for raw in [
        b"GET /a HTTP/1.1\r\nhost: a\r\nconnection: keep-alive, close\r\n\r\nGET /b HTTP/1.1\r\nhost: a\r\n\r\n".as_slice(),
        b"GET /close HTTP/1.1\r\nhost: a\r\n\r\nGET /b HTTP/1.1\r\nhost: a\r\n\r\n",
    ] {
        let (answer, end, _) = exchange(raw).await;
        assert!(matches!(end, End::Closed));
        assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "{answer}");
        assert_eq!(answer.matches("connection: close\r\n").count(), 1, "{answer}");
        assert!(!answer.contains("/b"), "{answer}");
    }
}

#[tokio::test]
async fn a_connection_value_that_is_not_visible_ascii_is_not_read_as_close() {
    // As hyper reads it (found by the differential test): the connection stays open.
    let raw = "GET /1 HTTP/1.1\r\nhost: a\r\nconnection: close, \u{e9}\r\n\r\nGET /2 HTTP/1.1\r\nhost: a\r\n\r\n";
    let (answer, _, _) = exchange(raw.as_bytes()).await;
    assert!(
        answer.contains("GET /1") && answer.ends_with("GET /2"),
        "{answer}"
    );
}

#[tokio::test]
async fn bad_heads_get_their_status_and_the_connection_closes() {
    let big = format!(
        "GET / HTTP/1.1\r\nhost: a\r\nx-big: {}\r\n",
        "a".repeat(CFG.max_header_bytes)
    );
    let many = format!(
        "GET / HTTP/1.1\r\n{}\r\n",
        (0..=MAX_HEADERS)
            .map(|i| format!("x-{i}: v\r\n"))
            .collect::<String>()
    );
    let cases: [(&[u8], &str); 6] = [
        (big.as_bytes(), "431"),
        (many.as_bytes(), "431"),
        (b"GET / HTTP/1.1\r\nhost: a\r\n folded\r\n\r\n", "400"),
        (b"GET / HTTP/1.1\r\nbad header: x\r\n\r\n", "400"),
        (b"GET  / HTTP/1.1\r\nhost: a\r\n\r\n", "400"),
        (b"GET / HTTP/1.2\r\nhost: a\r\n\r\n", "400"),
    ];
    for (raw, status) in cases {
        let (answer, end, _) = exchange(raw).await;
        assert!(matches!(end, End::Closed));
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status} ")),
            "{status}: {answer}"
        );
        assert!(answer.contains("connection: close\r\n"), "{answer}");
        assert!(answer.ends_with("content-length: 0\r\n\r\n") || answer.contains("\r\n\r\n"));
    }
}

#[tokio::test]
async fn bodiless_statuses_and_head_have_no_body() {
    let (answer, _, _) = exchange(b"GET /204 HTTP/1.1\r\nhost: a\r\n\r\n").await;
    assert!(
        answer.starts_with("HTTP/1.1 204 No Content\r\n"),
        "{answer}"
    );
    assert!(answer.ends_with("\r\n\r\n"), "{answer}");
    assert!(!answer.contains("content-length"), "{answer}");
    assert!(!answer.contains("transfer-encoding"), "{answer}");

    let (answer, _, _) = exchange(b"GET /304 HTTP/1.1\r\nhost: a\r\n\r\n").await;
    assert!(
        answer.starts_with("HTTP/1.1 304 Not Modified\r\n"),
        "{answer}"
    );
    assert!(!answer.contains("content-length"), "as hyper: {answer}");
    assert!(answer.ends_with("\r\n\r\n"), "{answer}");

    let (answer, _, _) = exchange(b"HEAD /304 HTTP/1.1\r\nhost: a\r\n\r\n").await;
    assert!(
        answer.contains("content-length: 42\r\n"),
        "kept for HEAD: {answer}"
    );
    assert!(answer.ends_with("\r\n\r\n"), "{answer}");
}

#[tokio::test]
async fn head_and_small_body_go_out_in_one_write() {
    let (answer, _, writes) = exchange(b"GET /small HTTP/1.1\r\nhost: a\r\n\r\n").await;
    assert!(answer.ends_with("\r\n\r\nGET /small"), "{answer}");
    assert_eq!(writes, 1);
}

/// A body fed frame by frame.
struct Chan(mpsc::Receiver<Bytes>);

impl Relayed for Chan {}
impl Relayed for Full<Bytes> {}

/// A body with the tool's fields, as the direct exchange gives one.
struct WithFields(Option<exchange::Fields>, Full<Bytes>);

impl Relayed for WithFields {
    fn take_fields(&mut self) -> Option<exchange::Fields> {
        self.0.take()
    }
}

impl Body for WithFields {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.1).poll_frame(cx)
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.1.size_hint()
    }
}

#[tokio::test]
async fn the_tools_fields_go_first_and_its_date_is_kept() {
    let (mut client, server) = tokio::io::duplex(1 << 16);
    let handle = |_req: Request<ReqBody>| async {
        let fields = exchange::Fields::from_lines(
            b"Server: t\r\nDate: Sat, 28 Nov 2026 04:00:00 GMT\r\nSet-Cookie: tool=1\r\n",
            true,
        );
        let mut resp = Response::new(WithFields(Some(fields), Full::new(Bytes::from("hi"))));
        resp.headers_mut()
            .append(header::SET_COOKIE, HeaderValue::from_static("own=1"));
        resp
    };
    let (_stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(serve(server, CFG, handle, stop_rx));
    client
        .write_all(b"GET / HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    client.read_to_end(&mut got).await.unwrap();
    assert!(matches!(task.await.unwrap().unwrap(), End::Closed));
    assert_eq!(
        String::from_utf8(got).unwrap(),
        "HTTP/1.1 200 OK\r\nServer: t\r\nDate: Sat, 28 Nov 2026 04:00:00 GMT\r\nSet-Cookie: tool=1\r\nset-cookie: own=1\r\nconnection: close\r\ncontent-length: 2\r\n\r\nhi"
    );
}

impl Body for Chan {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.0.poll_recv(cx).map(|d| d.map(|d| Ok(Frame::data(d))))
    }
}

#[tokio::test]
async fn an_unsized_body_streams_chunked_frame_by_frame() {
    let (mut client, server) = tokio::io::duplex(1 << 16);
    let (tx, rx) = mpsc::channel::<Bytes>(4);
    let mut rx = Some(rx);
    let handle = move |_req: Request<ReqBody>| {
        let body = Chan(rx.take().unwrap());
        async move { Response::new(body) }
    };
    let (_stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(serve(server, CFG, handle, stop_rx));
    client
        .write_all(b"GET /events HTTP/1.1\r\nhost: a\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    tx.send(Bytes::from_static(b"data: one\n\n")).await.unwrap();
    // The first event arrives while the body is still open.
    while !got.ends_with(b"b\r\ndata: one\n\n\r\n") {
        let n = client.read(&mut chunk).await.unwrap();
        assert!(n > 0);
        got.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8(got.clone()).unwrap();
    assert!(text.contains("transfer-encoding: chunked\r\n"), "{text}");
    tx.send(Bytes::from_static(b"data: two\n\n")).await.unwrap();
    drop(tx);
    client.shutdown().await.unwrap();
    client.read_to_end(&mut got).await.unwrap();
    assert!(
        got.ends_with(b"b\r\ndata: two\n\n\r\n0\r\n\r\n"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    assert!(matches!(task.await.unwrap().unwrap(), End::Closed));
}

/// A chunked body ending with trailer fields, with the tool's fields, as the direct exchange
/// relays one.
struct Trailing(Option<exchange::Fields>, Vec<Frame<Bytes>>);

impl Relayed for Trailing {
    fn take_fields(&mut self) -> Option<exchange::Fields> {
        self.0.take()
    }
}

impl Body for Trailing {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let next = (!self.1.is_empty()).then(|| Ok(self.1.remove(0)));
        Poll::Ready(next)
    }
}

/// The answer to `request` when the tool's response has these fields, the body `hi` and then
/// these trailer fields.
async fn trailing(request: &str, fields: &'static [u8], trailers: &[(&str, &str)]) -> String {
    let (mut client, server) = tokio::io::duplex(1 << 16);
    let mut map = HeaderMap::new();
    for (n, v) in trailers {
        map.append(
            HeaderName::from_bytes(n.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    let mut frames = Some(vec![Frame::data(Bytes::from("hi")), Frame::trailers(map)]);
    let handle = move |_req: Request<ReqBody>| {
        let fields = exchange::Fields::from_lines(fields, false);
        let body = Trailing(Some(fields), frames.take().unwrap_or_default());
        async move { Response::new(body) }
    };
    let (_stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(serve(server, CFG, handle, stop_rx));
    client.write_all(request.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    client.read_to_end(&mut got).await.unwrap();
    assert!(matches!(task.await.unwrap().unwrap(), End::Closed));
    String::from_utf8(got).unwrap()
}

#[tokio::test]
async fn trailers_reach_a_client_that_accepts_them_as_hyper_sends_them() {
    let accepts =
        "GET / HTTP/1.1\r\nhost: a\r\nte: gzip, Trailers\r\nconnection: close, te\r\n\r\n";
    let announced: &[u8] = b"Trailer: X-Sum, set-cookie\r\nTrailer: x-more\r\n";
    let sent = [
        ("x-sum", "1"),
        ("x-unannounced", "2"),
        ("set-cookie", "a=1"),
        ("x-more", "3"),
    ];
    let answer = trailing(accepts, announced, &sent).await;
    assert!(
        answer.contains("\r\nTrailer: X-Sum, set-cookie\r\nTrailer: x-more\r\n"),
        "{answer}"
    );
    assert!(
        answer.contains("transfer-encoding: chunked\r\n"),
        "{answer}"
    );
    // Announced and allowed in a trailer section: x-sum and x-more; never Set-Cookie.
    assert!(
        answer.ends_with("\r\n\r\n2\r\nhi\r\n0\r\nx-sum: 1\r\nx-more: 3\r\n\r\n"),
        "{answer}"
    );
    // A client that did not say it accepts trailers gets none; neither do unannounced ones.
    let plain = "GET / HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n";
    let answer = trailing(plain, announced, &sent).await;
    assert!(answer.ends_with("\r\n2\r\nhi\r\n0\r\n\r\n"), "{answer}");
    let answer = trailing(accepts, b"", &sent).await;
    assert!(answer.ends_with("\r\n2\r\nhi\r\n0\r\n\r\n"), "{answer}");
    // A `TE` value that is not visible ASCII is not read (as hyper does not).
    let odd = "GET / HTTP/1.1\r\nhost: a\r\nte: trailers, \u{e9}\r\nconnection: close\r\n\r\n";
    let answer = trailing(odd, announced, &sent).await;
    assert!(answer.ends_with("\r\n2\r\nhi\r\n0\r\n\r\n"), "{answer}");
}

#[tokio::test]
async fn idle_connection_closes_on_shutdown_and_at_the_head_timeout() {
    let (mut client, server) = tokio::io::duplex(1 << 16);
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(serve(server, CFG, echo, stop_rx));
    client
        .write_all(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n")
        .await
        .unwrap();
    let mut chunk = [0u8; 4096];
    let n = client.read(&mut chunk).await.unwrap();
    assert!(chunk[..n].ends_with(b"GET /"));
    stop.send(true).unwrap();
    assert!(matches!(task.await.unwrap().unwrap(), End::Closed));

    let (mut client, server) = tokio::io::duplex(1 << 16);
    let (_stop, stop_rx) = watch::channel(false);
    let cfg = Config {
        header_read_timeout: Duration::from_millis(200),
        ..CFG
    };
    let task = tokio::spawn(serve(server, cfg, echo, stop_rx));
    let started = std::time::Instant::now();
    client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
    assert!(matches!(task.await.unwrap().unwrap(), End::Closed));
    assert!(started.elapsed() >= Duration::from_millis(200));
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty(), "closed without an answer");
}

#[test]
fn decimal_and_date() {
    for n in [0u64, 7, 10, 12345, u64::MAX] {
        let mut out = Vec::new();
        decimal(&mut out, n);
        assert_eq!(out, n.to_string().as_bytes());
    }
    let mut out = Vec::new();
    date_field(&mut out);
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.starts_with("date: ") && text.ends_with(" GMT\r\n"),
        "{text}"
    );
    assert!(httpdate::parse_http_date(&text[6..text.len() - 2]).is_ok());
}
