//! The gateway: an OpenAI-compatible HTTP server that routes each request through the core's
//! plan, runs the attempt loop (failover, retries, larger-context fallback), relays streams
//! and continues interrupted ones, and reports where every request went.
//!
//! The decisions are the core's; this crate reads the clock, does the IO and keeps score.

mod attempts;
mod chat;
mod error;
pub mod metrics;
mod stream;

use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use serde_json::json;
use switchyard_core::config::{Alias, Config, DeploymentKind, Tenant};
use switchyard_core::{RouterState, SplitMix64, Time};
use switchyard_providers::{Endpoint, Upstream};
use tokio::net::TcpListener;
use tokio::time::Instant;

pub use error::ApiError;

/// Everything a request needs, shared by all of them.
pub struct Gateway {
    pub config: Arc<Config>,
    router: Mutex<RouterState>,
    rng: Mutex<SplitMix64>,
    upstream: Upstream,
    epoch: Instant,
    pub metrics: metrics::Metrics,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Client(#[from] switchyard_providers::ClientBuildError),
    #[error("cannot listen on {0}: {1}")]
    Bind(String, std::io::Error),
}

// === impl Gateway ===

impl Gateway {
    pub fn new(config: Config, seed: u64) -> Result<Arc<Gateway>, StartError> {
        let endpoints: Vec<Endpoint> = config
            .deployments
            .iter()
            .map(|d| Endpoint {
                base: d.endpoint.clone(),
                api_key: config.cloud_of(d.id).api_key.as_ref().map(|k| k.expose().to_owned()),
            })
            .collect();
        let upstream = Upstream::new(config.server.timeouts.connect, &endpoints)?;
        let router = RouterState::new(&config, Time::ZERO);
        let metrics = metrics::Metrics::new(&config);
        Ok(Arc::new(Gateway {
            config: Arc::new(config),
            router: Mutex::new(router),
            rng: Mutex::new(SplitMix64::new(seed)),
            upstream,
            epoch: Instant::now(),
            metrics,
        }))
    }

    /// The core's time: microseconds since the gateway started, from tokio's clock.
    pub(crate) fn now(&self) -> Time {
        Time::from_micros(u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX))
    }

    pub(crate) fn router(&self) -> MutexGuard<'_, RouterState> {
        self.router.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn rng(&self) -> MutexGuard<'_, SplitMix64> {
        self.rng.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Authenticates the caller: `Authorization: Bearer <key>` or Azure's `api-key` header.
    pub(crate) fn authenticate(&self, headers: &HeaderMap) -> Result<&Tenant, ApiError> {
        let key = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .or_else(|| headers.get("api-key").and_then(|v| v.to_str().ok()))
            .map(str::trim);
        let Some(key) = key.filter(|k| !k.is_empty()) else {
            return Err(ApiError::Unauthorized("missing API key: send Authorization: Bearer <key>"));
        };
        self.config.tenant_for_key(key).ok_or(ApiError::Unauthorized("invalid API key"))
    }

    /// The alias a tenant asked for, if it exists, is of the right kind and is allowed.
    pub(crate) fn alias_for(&self, tenant: &Tenant, model: &str, kind: DeploymentKind) -> Result<&Alias, ApiError> {
        let alias = self.config.alias(model).ok_or_else(|| ApiError::UnknownModel(model.to_owned()))?;
        if !self.config.tenant_may_use(tenant, alias.id) {
            return Err(ApiError::Forbidden(format!("this key may not use the model '{model}'")));
        }
        if alias.kind != kind {
            let what = match alias.kind {
                DeploymentKind::Chat => "a chat model; use /v1/chat/completions",
                DeploymentKind::Embeddings => "an embeddings model; use /v1/embeddings",
            };
            return Err(ApiError::BadRequest { message: format!("'{model}' is {what}"), param: Some("model") });
        }
        Ok(alias)
    }
}

/// Reads a request body up to the configured limit.
pub(crate) async fn read_body(gw: &Gateway, request: Request) -> Result<Bytes, ApiError> {
    let limit = gw.config.server.body_limit_bytes;
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::PayloadTooLarge(limit));
    }
    axum::body::to_bytes(request.into_body(), limit).await.map_err(|_| ApiError::PayloadTooLarge(limit))
}

/// The gateway's routes, as a service that tests can call without sockets.
pub fn app(gw: Arc<Gateway>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat::chat_completions))
        .route("/v1/embeddings", post(chat::embeddings))
        .route("/v1/models", get(models))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .fallback(|| async {
            ApiError::BadRequest { message: "unknown endpoint".to_owned(), param: None }.into_response()
        })
        .with_state(gw)
}

/// Serves until `shutdown` resolves, then lets open connections finish (up to 30 s).
/// Accepted sockets get TCP_NODELAY; HTTP/1.1 connections keep small buffers (8 KiB reads,
/// vectored writes instead of a copy into a write buffer), which is what a thousand held-open
/// streams cost in memory.
pub async fn serve(
    gw: Arc<Gateway>,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let service = hyper_util::service::TowerToHyperService::new(app(gw));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.max_buf_size(8 * 1024).writev(true).timer(hyper_util::rt::TokioTimer::new());
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // Out of file descriptors and the like: back off briefly rather than spin.
                Err(_) => {
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let connection = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service.clone());
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _ = connection.await;
        });
    }
    let _ = tokio::time::timeout(std::time::Duration::from_secs(30), graceful.shutdown()).await;
    Ok(())
}

async fn models(State(gw): State<Arc<Gateway>>, headers: HeaderMap) -> Result<Response, ApiError> {
    let tenant = gw.authenticate(&headers)?;
    let data: Vec<_> = gw
        .config
        .aliases
        .iter()
        .filter(|a| gw.config.tenant_may_use(tenant, a.id))
        .map(|a| json!({"id": a.name, "object": "model", "created": 0, "owned_by": "switchyard"}))
        .collect();
    Ok(axum::Json(json!({"object": "list", "data": data})).into_response())
}

async fn readyz(State(gw): State<Arc<Gateway>>) -> Response {
    let now = gw.now();
    let router = gw.router();
    let n_total = gw.config.deployments.len();
    let n_available = gw.config.deployments.iter().filter(|d| !router.deployment(d.id).health.is_ejected(now)).count();
    let status = if n_available > 0 { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, axum::Json(json!({"deployments": n_total, "available": n_available}))).into_response()
}

async fn metrics_text(State(gw): State<Arc<Gateway>>) -> Response {
    let now = gw.now();
    let (in_flight, ejected): (Vec<u32>, Vec<bool>) = {
        let router = gw.router();
        gw.config
            .deployments
            .iter()
            .map(|d| {
                let s = router.deployment(d.id);
                (s.in_flight, s.health.is_ejected(now))
            })
            .unzip()
    };
    let body = gw.metrics.render(&in_flight, &ejected);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

/// Serves on `addr` with `workers` threads, each running its own single-threaded runtime and
/// its own SO_REUSEPORT listener, so that a request, its upstream connection and its relay stay
/// on one thread (no cross-thread wake-ups on the hot path). Blocks until `shutdown` fires.
pub fn serve_workers(
    gw: Arc<Gateway>,
    addr: std::net::SocketAddr,
    workers: usize,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<std::net::SocketAddr, StartError> {
    let first = reuseport_listener(addr).map_err(|e| StartError::Bind(addr.to_string(), e))?;
    let bound = first.local_addr().map_err(|e| StartError::Bind(addr.to_string(), e))?;
    let mut listeners = vec![first];
    for _ in 1..workers.max(1) {
        listeners.push(reuseport_listener(bound).map_err(|e| StartError::Bind(bound.to_string(), e))?);
    }
    let mut threads = Vec::new();
    for (i, listener) in listeners.into_iter().enumerate() {
        let gw = gw.clone();
        let mut shutdown = shutdown.clone();
        let thread = std::thread::Builder::new()
            .name(format!("switchyard-worker-{i}"))
            .spawn(move || -> std::io::Result<()> {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                runtime.block_on(async move {
                    let listener = TcpListener::from_std(listener)?;
                    serve(gw, listener, async move {
                        let _ = shutdown.wait_for(|stop| *stop).await;
                    })
                    .await
                })
            })
            .map_err(|e| StartError::Bind(bound.to_string(), e))?;
        threads.push(thread);
    }
    for t in threads {
        match t.join() {
            Ok(Ok(())) => (),
            Ok(Err(e)) => return Err(StartError::Bind(bound.to_string(), e)),
            Err(_) => return Err(StartError::Bind(bound.to_string(), std::io::Error::other("a worker panicked"))),
        }
    }
    Ok(bound)
}

fn reuseport_listener(addr: std::net::SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}
