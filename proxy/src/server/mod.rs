//! Listeners and background work: the main listener (HTTP/1.1 and HTTP/2, optional TLS with
//! certificate files re-read on change), the admin listener, loading the issuer, re-reading the
//! mounted configuration, and graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, Version};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use kit::tls::{CertFiles, CertSlot};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::app::App;
use crate::config::{Settings, load_app};
use crate::error::{Error, Result};
use crate::forward::Peer;
use crate::metrics::Metrics;
use crate::pipeline::respond::{self, Admin};
use crate::pipeline::{self, Connection};
use crate::state::Shared;
use crate::wire::timeouts::{ConnState, Guarded, Idle, Limits, idle_watch};
use crate::wire::{self, Relayed as _};

/// Period of the routine JWKS refresh (unknown `kid`s trigger earlier, rate-limited fetches).
const JWKS_REFRESH: Duration = Duration::from_secs(300);

/// A bound, not yet running proxy.
pub struct Server {
    shared: Arc<Shared>,
    listener: TcpListener,
    admin: Option<TcpListener>,
    tls: Option<(tokio_rustls::TlsAcceptor, Arc<CertSlot>)>,
    started: Instant,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").finish_non_exhaustive()
    }
}

impl Server {
    /// Reads the configuration and binds the listeners. `started` is when the process started
    /// (for the start-up time log).
    pub async fn bind(settings: Settings, started: Instant) -> Result<Self> {
        let cfg = load_app(&settings).map_err(Error::Config)?;
        let app = App::new(cfg, &settings)?;
        let tls = match &settings.tls {
            Some((cert, key)) => {
                let resolver = CertSlot::from_files(&CertFiles::new(cert, key))
                    .map_err(|e| Error::Config(vec![e.to_string()]))?;
                let resolver = Arc::new(resolver);
                let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .map_err(|e| Error::Tls(e.to_string()))?
                .with_no_client_auth()
                .with_cert_resolver(resolver.clone());
                config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
                Some((tokio_rustls::TlsAcceptor::from(Arc::new(config)), resolver))
            }
            None => None,
        };
        let listener = TcpListener::bind(settings.listen)
            .await
            .map_err(|source| Error::Io {
                what: format!("binding {}", settings.listen),
                source,
            })?;
        let admin = match settings.admin_listen {
            Some(addr) => Some(TcpListener::bind(addr).await.map_err(|source| Error::Io {
                what: format!("binding admin {addr}"),
                source,
            })?),
            None => None,
        };
        let shared = Arc::new(Shared::new(settings, app)?);
        Ok(Server {
            shared,
            listener,
            admin,
            tls,
            started,
        })
    }

    /// The main listener's address.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// The admin listener's address.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// A handle that tells whether the proxy is ready (the issuer loaded), for tests and
    /// embedders; it stays valid after [`Server::run`] takes the server.
    pub fn readiness(&self) -> Readiness {
        Readiness(self.shared.clone())
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish (up to
    /// `--shutdown-grace`).
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let Server {
            shared,
            listener,
            admin,
            tls,
            started,
        } = self;
        tracing::info!(
            listen = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            admin = %admin.as_ref().and_then(|a| a.local_addr().ok()).map(|a| a.to_string()).unwrap_or_default(),
            upstream = %shared.settings.upstream,
            tls = tls.is_some(),
            "listening"
        );
        let mut background = Vec::new();
        background.push(tokio::spawn(issuer_loop(shared.clone(), started)));
        background.push(tokio::spawn(config_loop(shared.clone())));
        background.push(tokio::spawn(upstream_loop(shared.clone())));
        let acceptor = tls.map(|(acceptor, resolver)| {
            background.push(tokio::spawn(cert_loop(shared.clone(), resolver)));
            acceptor
        });
        if let Some(admin) = admin {
            background.push(tokio::spawn(admin_loop(shared.clone(), admin)));
        }

        let builder = hyper_server(&shared.settings);
        let graceful = GracefulShutdown::new();
        // Tells connections in the HTTP/1.1 loop ([`wire::serve`]) to stop; hyper's are told by `graceful`,
        // which also waits for the others (they hold a watcher until they end).
        let (stop_tx, stop_rx) = watch::channel(false);
        tokio::pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(c) => c,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let _ = stream.set_nodelay(true);
            let shared = shared.clone();
            let builder = builder.clone();
            let watcher = graceful.watcher();
            let stop = stop_rx.clone();
            let acceptor = acceptor.clone();
            let header_timeout = shared.settings.header_read_timeout;
            // `--http1-fast-path=false`: every connection is hyper's from the start.
            let fast_path = shared.settings.http1_fast_path;
            let limits = Limits {
                first_request: header_timeout,
                idle: shared.settings.idle_timeout,
                send: shared.settings.send_timeout,
            };
            tokio::spawn(async move {
                let peer = Arc::new(Connection::new(Peer::new(peer, acceptor.is_some())));
                let state = Arc::new(ConnState::default());
                let stream = Guarded::new(stream, state.clone(), limits);
                let conn = Conn {
                    shared,
                    peer,
                    state,
                    builder,
                    watcher,
                    stop,
                    limits,
                };
                match acceptor {
                    Some(acceptor) => {
                        let Ok(Ok(stream)) =
                            tokio::time::timeout(header_timeout, acceptor.accept(stream)).await
                        else {
                            return;
                        };
                        // HTTP/2 chosen by ALPN goes straight to hyper.
                        let fast = fast_path
                            && stream.get_ref().1.alpn_protocol() != Some(b"h2".as_slice());
                        connection(stream, conn, fast).await;
                    }
                    None => connection(stream, conn, fast_path).await,
                }
            });
        }
        drop(listener);
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
        let grace = shared.settings.shutdown_grace;
        if tokio::time::timeout(grace, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("in-flight connections did not finish within the grace period");
        }
        for task in background {
            task.abort();
        }
        Ok(())
    }
}

/// What a client connection's task holds.
struct Conn {
    shared: Arc<Shared>,
    peer: Arc<Connection>,
    state: Arc<ConnState>,
    builder: auto::Builder<TokioExecutor>,
    /// Held until the connection ends, so that graceful shutdown waits for it.
    watcher: Watcher,
    stop: watch::Receiver<bool>,
    limits: Limits,
}

/// hyper's server for the connections the HTTP/1.1 loop hands over (and all of them without
/// the fast path): the same header limits and read timeout.
fn hyper_server(settings: &Settings) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout)
        .max_buf_size(settings.max_header_bytes);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(settings.max_header_bytes).unwrap_or(u32::MAX));
    builder
}

/// Whether the proxy is ready: the issuer's metadata and keys are loaded.
#[derive(Debug, Clone)]
pub struct Readiness(Arc<Shared>);

impl Readiness {
    /// Whether the issuer is loaded (requests that need it are answered with 503 until then).
    pub fn is_ready(&self) -> bool {
        self.0.provider().is_some()
    }
}

/// Serves a client connection: in the HTTP/1.1 loop ([`wire::serve`]) when `fast`, until a request
/// needs hyper; then (or at once) with hyper, HTTP/1.1 with upgrades or HTTP/2.
async fn connection<S>(io: S, c: Conn, fast: bool)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Conn {
        shared,
        peer,
        state,
        builder,
        watcher,
        stop,
        limits,
    } = c;
    let watch_state = state.clone();
    let work = async move {
        let io = if fast {
            let cfg = wire::Config {
                header_read_timeout: shared.settings.header_read_timeout,
                max_header_bytes: shared.settings.max_header_bytes,
            };
            let (s, p, st) = (shared.clone(), peer.clone(), state.clone());
            let handle = move |req| {
                let in_flight = st.begin(Version::HTTP_11);
                let handled = pipeline::handle(s.clone(), p.clone(), req);
                async move {
                    let resp = handled.await;
                    drop(in_flight);
                    match resp {
                        Ok(resp) => resp,
                        Err(never) => match never {},
                    }
                }
            };
            match wire::serve(io, cfg, handle, stop).await? {
                wire::End::Fallback(io) => io,
                wire::End::Closed => return Ok(()),
            }
        } else {
            wire::Rewind::new(io, Bytes::new())
        };
        let svc = service_fn(move |req: Request<Incoming>| {
            let in_flight = state.begin(req.version());
            let handled = pipeline::handle(shared.clone(), peer.clone(), wire::from_hyper(req));
            async move {
                let mut resp = handled.await;
                drop(in_flight);
                // hyper writes only the header map.
                if let Ok(r) = resp.as_mut()
                    && let Some(fields) = r.body_mut().take_fields()
                {
                    fields.merge_into(r.headers_mut());
                }
                resp
            }
        });
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), svc);
        watcher.watch(conn.into_owned()).await
    };
    let mut work = pin!(work);
    let watched = tokio::select! {
        biased;
        r = &mut work => Err(r),
        idle = idle_watch(watch_state, limits) => Ok(idle),
    };
    let result: Result<(), Box<dyn std::error::Error + Send + Sync>> = match watched {
        Err(r) => r,
        Ok(Idle::Expired) => {
            tracing::debug!("idle connection closed");
            Ok(())
        }
        Ok(Idle::Unwatched) => work.await,
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// Closes upstream connections idle for longer than the pool's idle timeout.
async fn upstream_loop(shared: Arc<Shared>) {
    loop {
        tokio::time::sleep(Duration::from_secs(15)).await;
        shared.upstream.prune();
    }
}

/// Loads the issuer (retrying with backoff), then refreshes its keys periodically; starts over
/// when the configured issuer changes.
async fn issuer_loop(shared: Arc<Shared>, started: Instant) {
    let mut first = true;
    loop {
        let issuer = shared.app().cfg.issuer.clone();
        let mut delay = Duration::from_millis(50);
        let provider = loop {
            match shared.issuer.load(&issuer).await {
                Ok(p) => break Some(Arc::new(p)),
                Err(e) => {
                    Metrics::result(&shared.metrics.jwks_refreshes, false);
                    tracing::warn!(error = %e, "loading the issuer failed; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = shared.issuer_changed.notified() => {}
                    }
                    delay = (delay * 2).min(Duration::from_secs(5));
                    if shared.app().cfg.issuer != issuer {
                        break None;
                    }
                }
            }
        };
        let Some(provider) = provider else { continue };
        if shared.app().cfg.issuer != issuer {
            continue;
        }
        Metrics::result(&shared.metrics.jwks_refreshes, true);
        shared.set_provider(Some(provider.clone()));
        if first {
            first = false;
            tracing::info!(
                issuer = %issuer,
                startup_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                "ready"
            );
        } else {
            tracing::info!(issuer = %issuer, "issuer loaded");
        }
        loop {
            tokio::select! {
                () = tokio::time::sleep(JWKS_REFRESH) => {
                    let ok = shared.issuer.refresh_keys(&provider).await;
                    if let Err(e) = &ok {
                        tracing::warn!(error = %e, "JWKS refresh failed; keeping the current keys");
                    }
                    Metrics::result(&shared.metrics.jwks_refreshes, ok.is_ok());
                }
                () = shared.issuer_changed.notified() => break,
            }
        }
    }
}

/// Re-reads the config directory; a valid change is swapped in, an invalid one is logged and
/// the previous configuration kept.
async fn config_loop(shared: Arc<Shared>) {
    let mut last_problems: Vec<String> = Vec::new();
    loop {
        tokio::time::sleep(shared.settings.poll_interval).await;
        match load_app(&shared.settings) {
            Ok(cfg) if cfg.fingerprint == shared.app().cfg.fingerprint => last_problems.clear(),
            Ok(cfg) => match App::new(cfg, &shared.settings) {
                Ok(app) => {
                    shared.set_app(app);
                    last_problems.clear();
                    Metrics::result(&shared.metrics.config_reloads, true);
                    tracing::info!("configuration reloaded");
                }
                Err(e) => tracing::error!(error = %e, "configuration not reloaded"),
            },
            Err(problems) => {
                if problems != last_problems {
                    Metrics::result(&shared.metrics.config_reloads, false);
                    tracing::error!(problems = ?problems, "configuration change refused; keeping the previous one");
                    last_problems = problems;
                }
            }
        }
    }
}

/// Re-reads the TLS files when they change.
async fn cert_loop(shared: Arc<Shared>, resolver: Arc<CertSlot>) {
    let Some((cert, key)) = shared.settings.tls.clone() else {
        return;
    };
    let files = CertFiles::new(cert, key);
    loop {
        tokio::time::sleep(shared.settings.poll_interval).await;
        match resolver.reload(&files) {
            Ok(true) => tracing::info!("TLS certificate reloaded"),
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, "TLS files unreadable; keeping the current certificate")
            }
        }
    }
}

/// The admin endpoints.
pub(crate) fn admin_response(shared: &Shared, path: &str) -> Response<Full<Bytes>> {
    let answer = match path {
        "/healthz" => Admin::Healthy,
        "/readyz" => Admin::Ready(shared.provider().is_some()),
        "/metrics" => {
            shared
                .metrics
                .cached_tokens
                .set(i64::try_from(shared.tokens.len()).unwrap_or(i64::MAX));
            Admin::Metrics(shared.metrics.encode())
        }
        _ => Admin::NotFound,
    };
    respond::admin(answer)
}

async fn admin_loop(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<Incoming>| {
                let resp = admin_response(&shared, req.uri().path());
                async move { Ok::<_, std::convert::Infallible>(resp) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(5))
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}
