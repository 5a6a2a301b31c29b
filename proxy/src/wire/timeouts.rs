//! Timeouts for slow clients beyond the request head (which [`super::serve`]'s loop and hyper's
//! `header_read_timeout` bound): a request body that stalls ([`TimedBody`]), a client that stops reading
//! ([`Guarded`]), a silent connection before its first request or an idle HTTP/2 connection
//! ([`idle_watch`]), and the wait for the tool's response counted from the end
//! of the request body ([`answer_within`]), so that a large, slow upload is not a 504.
//!
//! They sit in the codec layer, not in `server`, because both the server (the connection
//! deadlines) and the forwarder (the request body's) use them, and they are about bytes on a
//! connection, not about what a request means.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::oneshot;
use tokio::time::{Instant, Sleep};

use super::body::ReqBody;

/// Why a request body ended early.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    /// The client sent nothing for the body timeout.
    #[error("the request body stalled")]
    Stalled,
    /// The client's stream failed.
    #[error(transparent)]
    Client(#[from] hyper::Error),
}

/// A request body on its way to the tool: fails when the client sends nothing for `timeout`,
/// and reports when it has been sent completely.
pub(crate) struct TimedBody {
    inner: ReqBody,
    timeout: Duration,
    /// Armed at the first wait for the client (nothing is allocated for an empty body).
    stall: Option<Pin<Box<Sleep>>>,
    sent: Option<oneshot::Sender<()>>,
    stalled: Option<Arc<AtomicBool>>,
}

/// What [`TimedBody::new`] hands the forwarder: when the body has been sent, and whether it
/// stalled.
pub(crate) struct BodyWatch {
    /// Resolves when the body has been read to its end (or was dropped); `None`: no body.
    pub(crate) sent: Option<oneshot::Receiver<()>>,
    /// Set when the body stalled.
    stalled: Option<Arc<AtomicBool>>,
}

impl BodyWatch {
    /// Whether the body stalled.
    pub(crate) fn stalled(&self) -> bool {
        self.stalled
            .as_ref()
            .is_some_and(|s| s.load(Ordering::Relaxed))
    }
}

impl TimedBody {
    /// Wraps a client's request body.
    pub(crate) fn new(inner: ReqBody, timeout: Duration) -> (Self, BodyWatch) {
        if inner.is_end_stream() {
            let body = TimedBody {
                inner,
                timeout,
                stall: None,
                sent: None,
                stalled: None,
            };
            let watch = BodyWatch {
                sent: None,
                stalled: None,
            };
            return (body, watch);
        }
        let (tx, rx) = oneshot::channel();
        let stalled = Arc::new(AtomicBool::new(false));
        let body = TimedBody {
            inner,
            timeout,
            stall: None,
            sent: Some(tx),
            stalled: Some(stalled.clone()),
        };
        let watch = BodyWatch {
            sent: Some(rx),
            stalled: Some(stalled),
        };
        (body, watch)
    }

    fn finished(&mut self) {
        if let Some(tx) = self.sent.take() {
            let _ = tx.send(());
        }
    }
}

impl Body for TimedBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(stall) = this.stall.as_mut() {
                    stall.as_mut().reset(Instant::now() + this.timeout);
                }
                if this.inner.is_end_stream() {
                    this.finished();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => {
                this.finished();
                Poll::Ready(None)
            }
            Poll::Pending => {
                let timeout = this.timeout;
                let stall = this
                    .stall
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                ready!(stall.as_mut().poll(cx));
                if let Some(s) = &this.stalled {
                    s.store(true, Ordering::Relaxed);
                }
                Poll::Ready(Some(Err(BodyError::Stalled)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Runs `exchange` (a request to the tool) until it answers, allowing `timeout` from the moment
/// the request body has been sent; `None` when that time passed.
pub(crate) async fn answer_within<F: Future>(
    exchange: F,
    sent: Option<oneshot::Receiver<()>>,
    timeout: Duration,
) -> Option<F::Output> {
    let Some(sent) = sent else {
        return tokio::time::timeout(timeout, exchange).await.ok();
    };
    tokio::pin!(exchange);
    let deadline = async {
        // A dropped sender (the body failed) also starts the clock.
        let _ = sent.await;
        tokio::time::sleep(timeout).await;
    };
    tokio::select! {
        r = &mut exchange => Some(r),
        () = deadline => None,
    }
}

/// What a client connection's service and its [`Guarded`] stream tell [`idle_watch`].
#[derive(Debug)]
pub(crate) struct ConnState {
    born: Instant,
    /// Milliseconds after `born` of the last read or write.
    last: AtomicU64,
    in_flight: AtomicUsize,
    requests: AtomicBool,
    h2: AtomicBool,
}

impl Default for ConnState {
    fn default() -> Self {
        ConnState {
            born: Instant::now(),
            last: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            requests: AtomicBool::new(false),
            h2: AtomicBool::new(false),
        }
    }
}

/// Counts a request as in flight until dropped.
pub(crate) struct InFlight(Arc<ConnState>);

impl ConnState {
    /// Notes a request (of this HTTP version) as in flight.
    pub(crate) fn begin(self: &Arc<Self>, version: http::Version) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.requests.store(true, Ordering::Relaxed);
        if version == http::Version::HTTP_2 {
            self.h2.store(true, Ordering::Relaxed);
        }
        InFlight(self.clone())
    }

    /// Notes a read or write. Skipped once nothing reads it again (an HTTP/1.1 connection after
    /// its first request, see [`ConnState::idle_limit`]): a clock read per read and write saved.
    fn touch(&self) {
        if self.requests.load(Ordering::Relaxed) && !self.h2.load(Ordering::Relaxed) {
            return;
        }
        let ms = u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(ms, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.born + Duration::from_millis(self.last.load(Ordering::Relaxed))
    }

    /// The silence allowed now: `Err` when none will ever be (an HTTP/1.1 connection after its
    /// first request: the header-read timeout bounds its idle time), `Ok(None)` while a
    /// request waits for the tool.
    fn idle_limit(&self, limits: &Limits) -> Result<Option<Duration>, ()> {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            Ok(None)
        } else if !self.requests.load(Ordering::Relaxed) {
            Ok(Some(limits.first_request))
        } else if self.h2.load(Ordering::Relaxed) {
            Ok(Some(limits.idle))
        } else {
            Err(())
        }
    }
}

/// How [`idle_watch`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Idle {
    /// The connection was silent for longer than allowed: the caller drops it.
    Expired,
    /// No silence limit will ever apply again (an HTTP/1.1 connection after its first request,
    /// whose idle time the header-read timeout bounds): the caller stops watching.
    Unwatched,
}

/// Ends when the connection has been silent for longer than allowed with no request in flight
/// (`first_request` before the first request, `idle` on HTTP/2), or when no limit will apply
/// again, so that a kept-alive HTTP/1.1 connection is not polled for it on every request.
pub(crate) async fn idle_watch(state: Arc<ConnState>, limits: Limits) -> Idle {
    loop {
        match state.idle_limit(&limits) {
            Err(()) => return Idle::Unwatched,
            Ok(None) => tokio::time::sleep(limits.idle).await,
            Ok(Some(limit)) => {
                let deadline = state.last() + limit;
                if Instant::now() >= deadline {
                    return Idle::Expired;
                }
                tokio::time::sleep_until(deadline).await;
            }
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Limits of a [`Guarded`] connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Silence allowed before the first request (the head of an HTTP/1 request is also bounded
    /// by [`super::serve`] or hyper; this covers the HTTP/2 preface and a connection that sends
    /// nothing).
    pub(crate) first_request: Duration,
    /// Silence allowed on an HTTP/2 connection with no request waiting for the tool.
    pub(crate) idle: Duration,
    /// How long one write to the client may stay blocked.
    pub(crate) send: Duration,
}

/// A client connection that fails a write blocked for longer than `send` (a client that does
/// not read), and notes when it last read or wrote for [`idle_watch`].
pub(crate) struct Guarded<T> {
    io: T,
    state: Arc<ConnState>,
    send: Duration,
    write_blocked: bool,
    write_stall: Option<Pin<Box<Sleep>>>,
}

impl<T> Guarded<T> {
    /// Wraps a client connection.
    pub(crate) fn new(io: T, state: Arc<ConnState>, limits: Limits) -> Self {
        Guarded {
            io,
            state,
            send: limits.send,
            write_blocked: false,
            write_stall: None,
        }
    }

    /// `moved`: whether a ready result carried bytes (a flush does not: the connection is polled
    /// whenever its task wakes, also by [`idle_watch`]'s timer, and flushes each time).
    fn write_done<R>(
        &mut self,
        r: Poll<io::Result<R>>,
        moved: impl Fn(&R) -> bool,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<R>> {
        match r {
            Poll::Ready(r) => {
                self.write_blocked = false;
                if r.as_ref().is_ok_and(&moved) {
                    self.state.touch();
                }
                Poll::Ready(r)
            }
            Poll::Pending => {
                let deadline = Instant::now() + self.send;
                let first = !self.write_blocked;
                self.write_blocked = true;
                let stall = self
                    .write_stall
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if first {
                    stall.as_mut().reset(deadline);
                }
                ready!(stall.as_mut().poll(cx));
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the client does not read",
                )))
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Guarded<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = ready!(Pin::new(&mut self.io).poll_read(cx, buf));
        if buf.filled().len() > before {
            self.state.touch();
        }
        Poll::Ready(r)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Guarded<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        self.write_done(r, |n| *n > 0, cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.write_done(r, |n| *n > 0, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.io).poll_flush(cx);
        self.write_done(r, |()| false, cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(ms: u64) -> Limits {
        let d = Duration::from_millis(ms);
        Limits {
            first_request: d,
            idle: d,
            send: d,
        }
    }

    #[tokio::test]
    async fn a_connection_without_a_request_expires() {
        let state = Arc::new(ConnState::default());
        let t0 = Instant::now();
        assert_eq!(idle_watch(state, limits(30)).await, Idle::Expired);
        assert!(t0.elapsed() >= Duration::from_millis(30));
    }

    #[tokio::test]
    async fn an_http1_connection_after_its_first_request_is_no_longer_watched() {
        let state = Arc::new(ConnState::default());
        drop(state.begin(http::Version::HTTP_11));
        let t0 = Instant::now();
        assert_eq!(
            idle_watch(state.clone(), limits(10_000)).await,
            Idle::Unwatched
        );
        assert!(t0.elapsed() < Duration::from_secs(1));
        // Nothing reads the time of its last read or write any more, so it is not taken.
        let before = state.last.load(Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(5));
        state.touch();
        assert_eq!(state.last.load(Ordering::Relaxed), before);
    }

    #[tokio::test]
    async fn an_http1_request_in_flight_keeps_the_watch_until_it_ends() {
        let state = Arc::new(ConnState::default());
        let in_flight = state.begin(http::Version::HTTP_11);
        let watch = tokio::spawn(idle_watch(state.clone(), limits(20)));
        tokio::time::sleep(Duration::from_millis(70)).await;
        assert!(
            !watch.is_finished(),
            "a request waiting for the tool is never idle"
        );
        drop(in_flight);
        assert_eq!(watch.await.ok(), Some(Idle::Unwatched));
    }

    #[tokio::test]
    async fn an_idle_http2_connection_expires_and_activity_postpones_it() {
        let state = Arc::new(ConnState::default());
        drop(state.begin(http::Version::HTTP_2));
        let watch = tokio::spawn(idle_watch(state.clone(), limits(60)));
        for _ in 0..4 {
            tokio::time::sleep(Duration::from_millis(25)).await;
            state.touch();
        }
        assert!(
            !watch.is_finished(),
            "touched every 25 ms, so never 60 ms silent"
        );
        assert_eq!(watch.await.ok(), Some(Idle::Expired));
    }
}
