//! The client for the tool: HTTP/1.1 connections (hyper's `client::conn::http1`) kept in a small
//! pool of our own. One upstream, so no per-host maps, no spawned task per request to return a
//! connection, no absolute-URI handling: a connection stays in the pool while it serves a request
//! and is picked again once hyper reports it ready (the previous response fully read).
//!
//! A request that could not be written because a reused connection had meanwhile been closed by
//! the tool is retried on another connection (hyper hands such a request back untouched).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use http::uri::Authority;
use http::{Request, Response};
use http_body::Body as _;
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::wire::timeouts::TimedBody;
use crate::wire::{ExchangeError, Pool, Relay, ReqBody};

/// Why a request did not get a response from the tool.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// Connecting failed.
    #[error("connecting to {0}: {1}")]
    Connect(String, #[source] std::io::Error),
    /// The HTTP exchange failed.
    #[error(transparent)]
    Http(#[from] hyper::Error),
    /// The direct exchange failed.
    #[error(transparent)]
    Direct(#[from] ExchangeError),
}

struct Entry {
    send: SendRequest<TimedBody>,
    used: Instant,
}

/// Connections to the tool: hyper's for requests with a body and upgrades, plain ones for the
/// rest (the direct exchange, `crate::wire`).
pub(crate) struct Upstream {
    authority: Authority,
    conns: Mutex<Vec<Entry>>,
    max: usize,
    idle_timeout: Duration,
    direct: Pool,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("authority", &self.authority)
            .field("connections", &self.len())
            .field("direct", &self.direct)
            .finish()
    }
}

/// Hosts as written in an authority (`[::1]`) to what the resolver takes (`::1`).
fn host_of(authority: &Authority) -> &str {
    let h = authority.host();
    h.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(h)
}

impl Upstream {
    /// A pool for `authority` keeping at most `max` connections, closing those idle for longer
    /// than `idle_timeout` (see [`Upstream::prune`]).
    pub(crate) fn new(authority: Authority, max: usize, idle_timeout: Duration) -> Self {
        Upstream {
            authority,
            conns: Mutex::new(Vec::new()),
            max,
            idle_timeout,
            direct: Pool::new(max, idle_timeout),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Entry>> {
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Connections held (hyper's, busy or idle, and idle direct ones).
    pub(crate) fn len(&self) -> usize {
        self.lock().len() + self.direct.len()
    }

    /// Drops closed connections and those idle for longer than the idle timeout.
    pub(crate) fn prune(&self) {
        self.direct.prune();
        let now = Instant::now();
        self.lock().retain(|e| {
            let idle_too_long = e.send.is_ready() && now.duration_since(e.used) > self.idle_timeout;
            !(e.send.is_closed() || idle_too_long)
        });
    }

    /// An idle connection from the pool, dropping closed ones met on the way.
    fn checkout(&self) -> Option<SendRequest<TimedBody>> {
        let mut conns = self.lock();
        let mut i = conns.len();
        while i > 0 {
            i -= 1;
            if conns[i].send.is_closed() {
                conns.swap_remove(i);
            } else if conns[i].send.is_ready() {
                return Some(conns.swap_remove(i).send);
            }
        }
        None
    }

    /// Returns a connection (now carrying a request) to the pool.
    fn checkin(&self, send: SendRequest<TimedBody>) {
        let mut conns = self.lock();
        if conns.len() < self.max {
            conns.push(Entry {
                send,
                used: Instant::now(),
            });
        }
    }

    async fn dial(&self) -> Result<TcpStream, Error> {
        let port = self.authority.port_u16().unwrap_or(80);
        let stream = TcpStream::connect((host_of(&self.authority), port))
            .await
            .map_err(|e| Error::Connect(self.authority.to_string(), e))?;
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }

    async fn connect(&self) -> Result<SendRequest<TimedBody>, Error> {
        let stream = self.dial().await?;
        let (send, conn) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
        });
        Ok(send)
    }

    /// Sends a request without a body, given as its head (the direct exchange, `crate::wire`), and returns the
    /// response head; the body streams on.
    pub(crate) async fn request_direct(
        &self,
        head: &[u8],
        method: &http::Method,
    ) -> Result<Response<Relay>, Error> {
        self.direct.request(head, method, || self.dial()).await
    }

    /// Sends a request (origin-form URI, `Host` set) to the tool and returns its response
    /// headers; the body streams on. A bodiless idempotent request whose reused connection the
    /// tool closed before answering is sent again on another one, as the direct exchange does
    /// (RFC 9110 §9.2.2).
    pub(crate) async fn request(
        &self,
        mut req: Request<TimedBody>,
    ) -> Result<Response<Incoming>, Error> {
        let again = (req.body().is_end_stream()
            && req.method().is_idempotent()
            && !req.headers().contains_key(http::header::UPGRADE))
        .then(|| {
            let mut head = Request::new(());
            *head.method_mut() = req.method().clone();
            *head.uri_mut() = req.uri().clone();
            *head.version_mut() = req.version();
            *head.headers_mut() = req.headers().clone();
            head
        });
        loop {
            let (mut send, reused) = match self.checkout() {
                Some(s) => (s, true),
                None => (self.connect().await?, false),
            };
            let sent = send.try_send_request(req);
            self.checkin(send);
            match sent.await {
                Ok(resp) => return Ok(resp),
                Err(mut e) => match (e.take_message(), &again) {
                    // Never written: the reused connection had closed; try another one.
                    (Some(unsent), _) if reused => req = unsent,
                    (None, Some(head)) if reused && e.error().is_incomplete_message() => {
                        let (body, _) = TimedBody::new(ReqBody::Empty, Duration::ZERO);
                        req = head.clone().map(|()| body);
                    }
                    _ => return Err(Error::Http(e.into_error())),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::sync::{Arc, Mutex};

    use http::Method;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A tool that answers requests (on whichever connection) with the given bytes in turn,
    /// closing the connection after those marked `true`, and counts connections.
    async fn tool(scripts: Vec<(&'static [u8], bool)>) -> (Authority, Arc<Mutex<usize>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(Mutex::new(0));
        let count = accepted.clone();
        let scripts = Arc::new(Mutex::new(scripts.into_iter()));
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                *count.lock().unwrap() += 1;
                let scripts = scripts.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while let Ok(n @ 1..) = s.read(&mut chunk).await {
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
        (addr.to_string().parse().unwrap(), accepted)
    }

    async fn send(up: &Upstream, method: Method) -> Result<u16, Error> {
        let (body, _) = TimedBody::new(ReqBody::Empty, Duration::from_secs(5));
        let req = Request::builder()
            .method(method)
            .uri("/")
            .header("host", "t")
            .body(body)
            .unwrap();
        Ok(up.request(req).await?.status().as_u16())
    }

    #[tokio::test]
    async fn a_closed_pooled_connection_is_retried_for_bodiless_idempotent_requests_only() {
        // The first connection answers once and then closes when it reads the next request; so
        // does the second after two answers.
        let ok: &'static [u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        let (authority, accepted) = tool(vec![
            (ok, false),
            (b"", true),
            (ok, false),
            (ok, false),
            (b"", true),
        ])
        .await;
        let up = Upstream::new(authority, 8, Duration::from_secs(60));
        assert_eq!(send(&up, Method::GET).await.unwrap(), 200);
        // Written on the pooled connection, which closes unanswered: sent again on a new one.
        assert_eq!(send(&up, Method::GET).await.unwrap(), 200);
        assert_eq!(*accepted.lock().unwrap(), 2);
        assert_eq!(send(&up, Method::GET).await.unwrap(), 200);
        // That connection closes too on the next request: a POST is not sent twice.
        let err = send(&up, Method::POST).await.unwrap_err();
        assert!(
            matches!(err, Error::Http(ref e) if e.is_incomplete_message()),
            "{err:?}"
        );
        assert_eq!(*accepted.lock().unwrap(), 2);
    }
}
