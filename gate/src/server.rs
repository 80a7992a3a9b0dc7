//! The gate's server: shared state ([`Gate`]), the routes, the accept loop (plain or TLS, bounded
//! connections, header time-outs) and graceful shutdown; policy reload by swapping the judge.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, Method, Request, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::Router;
use futures_util::future::{BoxFuture, Either};
use hyper::body::Incoming;
use hyper::service::Service;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::{TowerToHyperService, TowerToHyperServiceFuture};
use signet_oci::{Digest, RegistryClient};
use time::format_description::well_known::Rfc3339;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::cache::TtlMap;
use super::config::{GateConfig, Route};
use super::engine::VerdictState;
use super::metrics::Metrics;
use super::{admission, api, proxy, tls, Clock, GateError, Judge, SystemClock, TrustRootInUse};

/// Blob sizes and signature manifests remembered (per replica) for this long at most.
const MEMORY_TTL: Duration = Duration::from_secs(3600);
/// … and at most this many of each.
const MEMORY_ENTRIES: usize = 100_000;
/// A TLS handshake must finish within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Request headers must arrive within this.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// The active policy: the judge, its hash and when it was loaded.
pub(crate) struct Active<J> {
    pub(crate) judge: Arc<J>,
    pub(crate) hash: String,
    pub(crate) loaded_at: String,
}

/// Log each trusted root that a reload changes. A root that falls back from a TUF cache to the
/// embedded snapshot is a warning: the snapshot may be older than the root it replaces, and
/// only removing the cache file does that.
fn log_trust_root_changes(before: &[TrustRootInUse], after: &[TrustRootInUse]) {
    for root in after {
        let previous = before.iter().find(|old| old.name == root.name);
        match previous {
            Some(old) if old == root => {}
            Some(old) if root.embedded && !old.embedded => tracing::warn!(
                target: "signet::gate",
                root = %root.name, was = %old.source, sha256 = %root.sha256,
                "trusted root falls back to the embedded snapshot (its cache is gone): run `signet trust update`"
            ),
            _ => tracing::info!(
                target: "signet::gate",
                root = %root.name, source = %root.source, sha256 = %root.sha256,
                "trusted root in use"
            ),
        }
    }
}

pub(crate) struct Inner<J> {
    pub(crate) config: GateConfig,
    pub(crate) routes: Vec<Route>,
    pub(crate) client: RegistryClient,
    active: RwLock<Arc<Active<J>>>,
    pub(crate) verdicts: Mutex<VerdictState>,
    /// (upstream repository name, digest) → size, for blobs named by manifests served here.
    pub(crate) blob_sizes: Mutex<TtlMap<(String, Digest), u64>>,
    /// (upstream repository name, digest) of signature artifacts passed through → their subject.
    pub(crate) signatures: Mutex<TtlMap<(String, Digest), Digest>>,
    /// One permit per blob streaming through the proxy (`limits.max_blob_streams`).
    pub(crate) blob_streams: Arc<Semaphore>,
    pub(crate) metrics: Metrics,
    /// Where the engine reads the time (cache expiry, verdicts' `valid_until`).
    pub(crate) clock: Arc<dyn Clock>,
    ready: AtomicBool,
    tls: Option<Arc<rustls::ServerConfig>>,
    /// SHA-256 of the bearer token `/v1/*` requires (`api.token_file`).
    pub(crate) api_token: Option<Digest>,
    /// The images admitted, re-judged on a schedule and on reload (`continuous.rs`).
    pub(crate) continuous: super::continuous::Continuous,
}

/// The gate: configuration, upstream client, active judge, caches and metrics. Cheap to clone
/// (all clones share one state); pass a clone to whatever reloads the policy.
pub struct Gate<J: Judge> {
    pub(crate) inner: Arc<Inner<J>>,
}

impl<J: Judge> Clone for Gate<J> {
    fn clone(&self) -> Self {
        Gate {
            inner: self.inner.clone(),
        }
    }
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default()
}

impl<J: Judge> Gate<J> {
    /// Check `config`, read upstream credentials and the TLS files, and set up the gate with
    /// `judge` as the active policy. Nothing listens yet.
    pub fn new(config: GateConfig, judge: J) -> Result<Gate<J>, GateError> {
        Gate::with_clock(config, judge, Arc::new(SystemClock))
    }

    /// [`Gate::new`] reading the time from `clock` (tests move a [`super::ManualClock`]).
    pub fn with_clock(
        config: GateConfig,
        judge: J,
        clock: Arc<dyn Clock>,
    ) -> Result<Gate<J>, GateError> {
        let routes = config.routes()?;
        let client = RegistryClient::new(config.registry_options()?)?;
        let tls = match &config.tls {
            Some(t) => Some(tls::server_config(&t.cert, &t.key, t.client_ca.as_deref())?),
            None => None,
        };
        let hash = judge.policy_hash();
        let cache_ttl = Duration::from_secs(config.cache.ttl_seconds);
        let verdicts = VerdictState {
            cache: TtlMap::new(config.cache.size, cache_ttl),
            inflight: Default::default(),
        };
        Ok(Gate {
            inner: Arc::new(Inner {
                routes,
                client,
                active: RwLock::new(Arc::new(Active {
                    judge: Arc::new(judge),
                    hash,
                    loaded_at: now_rfc3339(),
                })),
                verdicts: Mutex::new(verdicts),
                blob_sizes: Mutex::new(TtlMap::new(MEMORY_ENTRIES, MEMORY_TTL)),
                signatures: Mutex::new(TtlMap::new(MEMORY_ENTRIES, MEMORY_TTL)),
                blob_streams: Arc::new(Semaphore::new(config.limits.max_blob_streams)),
                metrics: Metrics::default(),
                clock,
                ready: AtomicBool::new(false),
                tls,
                api_token: match &config.api.token_file {
                    Some(path) => Some(api::load_token(path)?),
                    None => None,
                },
                continuous: super::continuous::Continuous::new(&config.continuous)?,
                config,
            }),
        })
    }

    /// Make `judge` the active policy (SIGHUP, policy file changed). Verdicts made under the old
    /// policy are dropped. Build the new judge first: if the policy does not load, do not call
    /// this, and the old one stays.
    pub fn reload(&self, judge: J) {
        let hash = judge.policy_hash();
        log_trust_root_changes(&self.active().judge.trust_roots(), &judge.trust_roots());
        let active = Arc::new(Active {
            judge: Arc::new(judge),
            hash: hash.clone(),
            loaded_at: now_rfc3339(),
        });
        match self.inner.active.write() {
            Ok(mut a) => *a = active,
            Err(poisoned) => *poisoned.into_inner() = active,
        }
        if let Ok(mut v) = self.inner.verdicts.lock() {
            v.cache.clear();
        }
        Metrics::inc(&self.inner.metrics.policy_reloads);
        tracing::info!(target: "signet::gate", policy_hash = %hash, "policy reloaded");
        // Continuous verification re-judges every remembered image now (`keep_judging`).
        self.inner.continuous.reloaded.notify_one();
    }

    /// The active policy.
    pub(crate) fn active(&self) -> Arc<Active<J>> {
        match self.inner.active.read() {
            Ok(a) => a.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The active policy's hash.
    pub fn policy_hash(&self) -> String {
        self.active().hash.clone()
    }

    /// Whether the gate is serving (between `run` starting and shutdown).
    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::SeqCst)
    }

    /// The Prometheus exposition text.
    pub fn metrics_text(&self) -> String {
        let entries = self
            .inner
            .verdicts
            .lock()
            .map(|v| v.cache.len())
            .unwrap_or(0);
        let streams =
            self.inner.config.limits.max_blob_streams - self.inner.blob_streams.available_permits();
        let (verdicts, reasons) = self.inner.continuous.tally();
        self.inner.metrics.set_running(&verdicts, &reasons);
        self.inner.metrics.render(entries, streams)
    }

    /// Open the listening socket (`config.listen`; port 0 picks a free one).
    pub async fn bind(&self) -> Result<BoundGate<J>, GateError> {
        let addr = self.inner.config.listen;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| GateError::Bind { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| GateError::Bind { addr, source })?;
        Ok(BoundGate {
            gate: self.clone(),
            listener,
            local,
        })
    }

    /// The routes. Without `client_verified`, on a gate that requires client certificates
    /// (`tls.client_ca`), `/v1/*` answers `401`.
    fn router(&self, client_verified: bool) -> Router {
        let api_open = client_verified
            || self
                .inner
                .config
                .tls
                .as_ref()
                .is_none_or(|t| t.client_ca.is_none());
        let router = if api_open {
            Router::new()
                .route("/v1/verify", post(api::verify::<J>))
                .route("/v1/policy", get(api::policy::<J>))
                .route("/v1/audit", get(api::audit::<J>))
        } else {
            Router::new()
                .route("/v1/verify", any(api::certificate_required))
                .route("/v1/policy", any(api::certificate_required))
                .route("/v1/audit", any(api::certificate_required))
        };
        router
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz::<J>))
            .route("/metrics", get(metrics::<J>))
            // `Routes` answers the POSTs before they reach the router; the other methods get
            // their `405` here.
            .route("/validate", post(admission::validate::<J>))
            .route("/mutate", post(admission::mutate::<J>))
            .route("/v2", any(proxy::version))
            .route("/v2/", any(proxy::version))
            .route("/v2/{*path}", any(proxy::dispatch::<J>))
            .with_state(self.clone())
    }
}

/// The routes as the connections serve them. `POST /validate` and `POST /mutate` go straight to
/// the admission webhook, past the router: the API server asks them for every Pod created, and
/// the router's matching, boxed handler and header extractor are a sizeable part of answering a
/// cached decision. Every other request, the same paths with another method among them, is
/// the router's.
struct Routes<J: Judge> {
    gate: Gate<J>,
    router: TowerToHyperService<Router>,
}

impl<J: Judge> Clone for Routes<J> {
    fn clone(&self) -> Self {
        Routes {
            gate: self.gate.clone(),
            router: self.router.clone(),
        }
    }
}

impl<J: Judge> Routes<J> {
    fn new(gate: &Gate<J>, client_verified: bool) -> Self {
        Routes {
            gate: gate.clone(),
            router: TowerToHyperService::new(gate.router(client_verified)),
        }
    }
}

/// `Some(mutate)` for the requests the router would give the admission webhook (`POST` to
/// exactly `/validate` or `/mutate`, whatever the query string), `None` for the others.
fn admission_route(method: &Method, uri: &Uri) -> Option<bool> {
    if method != Method::POST {
        return None;
    }
    match uri.path() {
        "/validate" => Some(false),
        "/mutate" => Some(true),
        _ => None,
    }
}

impl<J: Judge> Service<Request<Incoming>> for Routes<J> {
    type Response = Response;
    type Error = Infallible;
    type Future = Either<
        BoxFuture<'static, Result<Response, Infallible>>,
        TowerToHyperServiceFuture<Router, Request<Incoming>>,
    >;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        match admission_route(request.method(), request.uri()) {
            Some(mutate) => {
                let gate = self.gate.clone();
                // The headers are moved, not copied as the router's extractor does.
                let (parts, body) = request.into_parts();
                Either::Left(Box::pin(async move {
                    Ok(admission::review(gate, parts.headers, Body::new(body), mutate).await)
                }))
            }
            None => Either::Right(self.router.call(request)),
        }
    }
}

/// A gate with its socket open, ready to [`run`](BoundGate::run).
pub struct BoundGate<J: Judge> {
    gate: Gate<J>,
    listener: TcpListener,
    local: SocketAddr,
}

impl<J: Judge> BoundGate<J> {
    /// The address actually listened on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Serve until `shutdown` completes, then stop accepting, report not ready, and give open
    /// connections `timeouts.shutdown_seconds` to finish.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), GateError> {
        let BoundGate {
            gate,
            listener,
            local,
        } = self;
        let config = &gate.inner.config;
        let service = Routes::new(&gate, false);
        // Connections that presented a client certificate the handshake verified get `/v1/*`.
        let verified_service = Routes::new(&gate, true);
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT);
        let acceptor = gate.inner.tls.clone().map(tokio_rustls::TlsAcceptor::from);
        let permits = Arc::new(Semaphore::new(config.limits.max_connections));
        let graceful = GracefulShutdown::new();
        tokio::pin!(shutdown);
        gate.inner.ready.store(true, Ordering::SeqCst);
        tracing::info!(target: "signet::gate", address = %local, tls = acceptor.is_some(), policy_hash = %gate.policy_hash(), "gate serving");
        loop {
            let permit = tokio::select! {
                p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
                () = &mut shutdown => break,
            };
            let stream = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _peer)) => stream,
                    Err(e) => {
                        // Out of file descriptors and the like: wait instead of spinning.
                        tracing::warn!(target: "signet::gate", error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let _ = stream.set_nodelay(true);
            let watcher = graceful.watcher();
            let builder = builder.clone();
            let service = service.clone();
            let verified_service = verified_service.clone();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let result = match acceptor {
                    Some(acceptor) => {
                        let tls = match tokio::time::timeout(
                            HANDSHAKE_TIMEOUT,
                            acceptor.accept(stream),
                        )
                        .await
                        {
                            Ok(Ok(tls)) => tls,
                            Ok(Err(e)) => {
                                tracing::debug!(target: "signet::gate", error = %e, "TLS handshake failed");
                                return;
                            }
                            Err(_) => return,
                        };
                        // With `tls.client_ca`, any certificate presented has been verified
                        // against it by now (a bad one fails the handshake).
                        let has_certificate = tls
                            .get_ref()
                            .1
                            .peer_certificates()
                            .is_some_and(|c| !c.is_empty());
                        watcher
                            .watch(builder.serve_connection(
                                TokioIo::new(tls),
                                if has_certificate {
                                    verified_service
                                } else {
                                    service
                                },
                            ))
                            .await
                    }
                    None => {
                        watcher
                            .watch(builder.serve_connection(TokioIo::new(stream), service))
                            .await
                    }
                };
                if let Err(e) = result {
                    tracing::debug!(target: "signet::gate", error = %e, "connection ended with an error");
                }
            });
        }
        gate.inner.ready.store(false, Ordering::SeqCst);
        drop(listener);
        tracing::info!(target: "signet::gate", "shutting down");
        let grace = Duration::from_secs(config.timeouts.shutdown_seconds);
        if tokio::time::timeout(grace, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(target: "signet::gate", "connections still open after {} s; closing them", grace.as_secs());
        }
        Ok(())
    }
}

/// Run the gate: set up, listen on `config.listen` and serve until `shutdown` completes.
///
/// The CLI calls it as `serve(config, judge, async { ctrl_c or SIGTERM }).await`; when it also
/// reloads the policy it uses [`Gate::new`], keeps a clone for [`Gate::reload`], and calls
/// [`Gate::bind`] and [`BoundGate::run`] itself.
pub async fn serve<J: Judge>(
    config: GateConfig,
    judge: J,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), GateError> {
    let gate = Gate::new(config, judge)?;
    gate.bind().await?.run(shutdown).await
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz<J: Judge>(State(gate): State<Gate<J>>) -> Response {
    if gate.is_ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}

async fn metrics<J: Judge>(State(gate): State<Gate<J>>) -> Response {
    (
        [(header::CONTENT_TYPE, super::metrics::CONTENT_TYPE)],
        gate.metrics_text(),
    )
        .into_response()
}

#[cfg(test)]
#[path = "admission_route_tests.rs"]
mod admission_route_tests;
