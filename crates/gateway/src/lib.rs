//! The gateway: an OpenAI-compatible HTTP server (Chat Completions, Embeddings and the Responses
//! API), which also answers Anthropic's Messages API,
//! that routes each request through the core's plan, runs the attempt loop (failover, retries,
//! larger-context fallback), relays streams and continues interrupted ones, and reports where
//! every request went.
//!
//! The decisions are the core's; this crate reads the clock, does the IO and keeps score.

mod account;
mod admin;
mod answer;
mod body;
mod chat;
mod dialect;
mod drive;
mod edge;
mod error;
mod identity;
mod io;
mod keys;
mod messages;
pub mod metrics;
mod responses;
mod stores;
mod stream;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use serde_json::json;
use switchyard_core::config::{Alias, AliasId, Config, DeploymentKind, KeyId, Protocol, Tenant};
use switchyard_core::{RouterState, SplitMix64, Time};
use switchyard_providers::{Endpoint, Transport, Upstream};
use tokio::net::TcpListener;
use tokio::time::Instant;

pub use error::ApiError;
pub use stores::{Shared, close_ledger, open_ledger, restore, start_shared};

/// Everything a request needs, shared by all of them.
pub struct Gateway {
    pub config: Arc<Config>,
    router: RouterState,
    /// Seeds each worker thread's own RNG (see [`Gateway::with_rng`]).
    seed: u64,
    upstream: Upstream,
    epoch: Instant,
    pub metrics: metrics::Metrics,
    body_bytes: body::BodyBytes,
    /// Set when shutdown begins: `/readyz` fails and the listeners close.
    draining: AtomicBool,
    request_ids: edge::RequestIds,
    /// Each deployment's `x-switchyard-deployment` and `x-switchyard-cloud` values.
    where_values: Vec<(Option<axum::http::HeaderValue>, Option<axum::http::HeaderValue>)>,
    /// Per alias, the protocols its deployments speak (`Protocol::bit`s).
    alias_protocols: Vec<u8>,
    /// Where every request's record goes, when there is a ledger.
    pub ledger: Option<switchyard_ledger::Ledger>,
    /// The names ledger records carry, held once.
    names: account::Names,
    /// Allowances shared with other replicas, when Redis is configured.
    pub shared: Option<Arc<switchyard_shared::RedisCounters>>,
    /// Deployment signals shared with other replicas, when Redis is configured.
    pub shared_signals: Option<Arc<switchyard_shared::RedisSignals>>,
    /// The ledger's database (records, spend, run-time keys), when there is a ledger.
    store: Option<switchyard_ledger::Store>,
    /// Keys made at run time, read from the ledger.
    keys: keys::KeyTable,
    /// The Unix time (ms) at `epoch`: budget windows are UTC days and months.
    unix_ms_at_epoch: i64,
}

/// What a gateway is built from besides its config: how it reaches deployments, where shared
/// allowances live, and its ledger.
pub struct Parts {
    pub transport: Transport,
    /// Allowances shared with other replicas through Redis (over `limit_specs(config)`);
    /// in-process if `None`.
    pub shared: Option<Arc<switchyard_shared::RedisCounters>>,
    /// Tenants' budget windows shared with other replicas through Redis (over
    /// `budget_specs(config)`, on the gateway's calendar); in-process if `None`.
    pub shared_budgets: Option<Arc<switchyard_shared::RedisWindows>>,
    /// Deployments' ejections, cool-downs, recoveries and attempts in flight shared with other
    /// replicas through Redis (over `signal_specs(config)`); this replica's own if `None`.
    pub shared_signals: Option<Arc<switchyard_shared::RedisSignals>>,
    pub ledger: Option<switchyard_ledger::Ledger>,
    /// The ledger's database, for run-time keys and the admin API's spend.
    pub store: Option<switchyard_ledger::Store>,
}

impl Default for Parts {
    fn default() -> Parts {
        Parts {
            transport: Transport::Tcp,
            shared: None,
            shared_budgets: None,
            shared_signals: None,
            ledger: None,
            store: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Client(#[from] switchyard_providers::ClientBuildError),
    #[error("cannot listen on {0}: {1}")]
    Bind(String, std::io::Error),
    #[error("shared signals: {0}")]
    Shared(String),
}

/// The protocols (`Protocol::bit`s) of the deployments a request on `alias` may reach: its own
/// and, transitively, its fallback aliases' (a larger-context fallback keeps the request's
/// needs).
fn protocols_reached(config: &Config, alias: &Alias) -> u8 {
    let mut seen = vec![alias.id];
    let mut bits = 0;
    let mut i = 0;
    while let Some(id) = seen.get(i).copied() {
        i += 1;
        let a = &config.aliases[usize::from(id.0)];
        bits |= a.deployments.iter().fold(0, |bits, d| bits | config.cloud_of(*d).protocol.bit());
        for next in &a.fallbacks {
            if !seen.contains(next) {
                seen.push(*next);
            }
        }
    }
    bits
}

// === impl Gateway ===

impl Gateway {
    pub fn new(config: Config, seed: u64) -> Result<Arc<Gateway>, StartError> {
        Gateway::with_transport(config, seed, Transport::Tcp)
    }

    /// [`Gateway::new`], with upstream connections made over `transport`: tests and embedders
    /// put in-memory peers where the deployments would be ([`Transport::Memory`]).
    pub fn with_transport(config: Config, seed: u64, transport: Transport) -> Result<Arc<Gateway>, StartError> {
        Gateway::assemble(config, seed, Parts { transport, ..Parts::default() })
    }

    /// A gateway from its config and [`Parts`]. Budget windows follow the wall clock read now.
    pub fn assemble(config: Config, seed: u64, parts: Parts) -> Result<Arc<Gateway>, StartError> {
        let Parts { transport, shared, shared_budgets, shared_signals, ledger, store } = parts;
        let endpoints: Vec<Endpoint> = config.deployments.iter().map(|d| Endpoint::of(&config, d)).collect();
        let upstream = Upstream::with_transport(config.server.timeouts.connect, &endpoints, transport)?;
        let unix_ms_at_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let calendar = switchyard_core::tenancy::Calendar { unix_ms_at_zero: unix_ms_at_epoch };
        let counters: Arc<dyn switchyard_core::counters::Counters> = match &shared {
            Some(shared) => shared.clone(),
            None => Arc::new(switchyard_core::counters::LocalCounters::for_config(&config, Time::ZERO)),
        };
        let windows: Arc<dyn switchyard_core::counters::Counters> = match shared_budgets {
            Some(windows) => windows,
            None => {
                let budgets = switchyard_core::tenancy::budget_specs(&config);
                Arc::new(switchyard_core::tenancy::LocalWindows::new(&budgets, calendar))
            }
        };
        let mut router = RouterState::with_stores(&config, Time::ZERO, counters, windows, calendar);
        if let Some(signals) = &shared_signals {
            router = router.with_signals(signals.clone()).map_err(StartError::Shared)?;
        }
        let metrics = metrics::Metrics::new(&config);
        let value = |text: &str| axum::http::HeaderValue::from_str(text).ok();
        let where_values =
            config.deployments.iter().map(|d| (value(&d.name), value(&config.cloud_of(d.id).name))).collect();
        let alias_protocols = config.aliases.iter().map(|a| protocols_reached(&config, a)).collect();
        let names = account::Names::new(&config);
        Ok(Arc::new(Gateway {
            alias_protocols,
            names,
            config: Arc::new(config),
            router,
            seed,
            upstream,
            epoch: Instant::now(),
            metrics,
            body_bytes: body::BodyBytes::default(),
            draining: AtomicBool::new(false),
            request_ids: edge::RequestIds::new(seed),
            where_values,
            ledger,
            shared,
            shared_signals,
            store,
            keys: keys::KeyTable::default(),
            unix_ms_at_epoch,
        }))
    }

    /// The protocols among `alias`'s deployments that cannot express `chat` (`Protocol::bit`s),
    /// for the planner to pass over; none when every deployment speaks OpenAI's (or Azure
    /// OpenAI's, which takes the same bodies), with no work.
    pub(crate) fn untranslatable(&self, alias: &Alias, chat: &switchyard_wire::ChatRequest) -> u8 {
        let protocols = self.protocols(alias.id);
        if protocols & !Protocol::PASS_THROUGH == 0 {
            // Every deployment takes OpenAI's bodies as they are: nothing to translate, nothing
            // to check.
            return 0;
        }
        let (bits, _) = switchyard_providers::untranslatable(chat.object.bytes(), protocols);
        // An Anthropic caller's request that OpenAI's protocol cannot express rides along: the
        // deployments sent OpenAI's bodies as they are cannot take it.
        let pass_through = protocols & Protocol::PASS_THROUGH;
        let carried = pass_through != 0 && chat.object.get(switchyard_providers::CARRIED_ANTHROPIC).is_some();
        if carried { bits | pass_through } else { bits }
    }

    /// The deployments a request on `alias` may reach: its own, then its fallbacks'
    /// (transitively), each once.
    pub(crate) fn reach(&self, alias: &Alias) -> Vec<switchyard_core::config::DeploymentId> {
        let (mut aliases, mut reached) = (vec![alias.id], Vec::new());
        let mut i = 0;
        while let Some(id) = aliases.get(i).copied() {
            i += 1;
            let a = &self.config.aliases[usize::from(id.0)];
            for d in &a.deployments {
                if !reached.contains(d) {
                    reached.push(*d);
                }
            }
            for f in &a.fallbacks {
                if !aliases.contains(f) {
                    aliases.push(*f);
                }
            }
        }
        reached
    }

    /// The OCI deployments `alias` may reach that speak OCI's COHERE format, when that format
    /// cannot express `chat` (the protocol-wide check, [`Gateway::untranslatable`], is of the
    /// GENERIC format): the planner passes them over while another deployment is left
    /// ([`switchyard_core::plan::PlanRequest::unfit`]).
    pub(crate) fn unfit_formats(
        &self,
        alias: &Alias,
        chat: &switchyard_wire::ChatRequest,
    ) -> Vec<switchyard_core::config::DeploymentId> {
        use switchyard_core::config::OciFormat;
        if self.protocols(alias.id) & Protocol::Oci.bit() == 0 {
            return Vec::new();
        }
        let reached = self.reach(alias);
        let cohere = |d: &switchyard_core::config::DeploymentId| {
            self.config.deployment(*d).oci_format == Some(OciFormat::Cohere)
        };
        if !reached.iter().any(cohere) || switchyard_providers::cohere_untranslatable(chat.object.bytes()).is_none() {
            return Vec::new();
        }
        reached.into_iter().filter(cohere).collect()
    }

    /// The protocols `alias`'s deployments speak (`Protocol::bit`s).
    pub(crate) fn protocols(&self, alias: AliasId) -> u8 {
        self.alias_protocols.get(usize::from(alias.0)).copied().unwrap_or(0)
    }

    /// Why no deployment of `alias` can take `chat`: the first protocol's refusal, and the
    /// parameter it names.
    pub(crate) fn why_untranslatable(&self, alias: AliasId, chat: &[u8]) -> Option<(String, String)> {
        let protocols = self.alias_protocols.get(usize::from(alias.0)).copied().unwrap_or(0);
        switchyard_providers::untranslatable(chat, protocols).1.map(|e| (e.to_string(), e.param))
    }

    /// Reads the run-time API keys from the ledger again (`serve` does every few seconds).
    pub async fn refresh_keys(&self) {
        admin::refresh(self).await;
    }

    /// The Unix time (ms) of a core time.
    pub fn unix_ms(&self, at: Time) -> i64 {
        self.unix_ms_at_epoch.saturating_add(i64::try_from(at.as_micros() / 1_000).unwrap_or(i64::MAX))
    }

    /// The tokio instant of a core time.
    pub(crate) fn instant(&self, at: Time) -> Instant {
        self.epoch + std::time::Duration::from_micros(at.as_micros())
    }

    /// The core's time: microseconds since the gateway started, from tokio's clock.
    pub fn now(&self) -> Time {
        Time::from_micros(u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX))
    }

    /// What the router knows right now. Shared by every worker with no lock common to all
    /// requests (see `switchyard_core::state`).
    pub fn router(&self) -> &RouterState {
        &self.router
    }

    /// Runs `f` with this thread's RNG: each worker has its own, so planning takes no lock for
    /// randomness. Seeded from the gateway's seed and the thread's order of first use, so a
    /// single-threaded run (the tests) is reproducible.
    pub(crate) fn with_rng<R>(&self, f: impl FnOnce(&mut SplitMix64) -> R) -> R {
        thread_local! {
            static RNG: std::cell::RefCell<Option<(u64, SplitMix64)>> = const { std::cell::RefCell::new(None) };
        }
        static THREADS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        RNG.with(|cell| {
            let mut cell = cell.borrow_mut();
            let stale = cell.as_ref().is_none_or(|(seed, _)| *seed != self.seed);
            if stale {
                let n = THREADS.fetch_add(1, Ordering::Relaxed);
                *cell = Some((self.seed, SplitMix64::new(self.seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15))));
            }
            match cell.as_mut() {
                Some((_, rng)) => f(rng),
                None => f(&mut SplitMix64::new(self.seed)),
            }
        })
    }

    /// Authenticates the caller (`Authorization: Bearer <key>`, Azure's `api-key` header or
    /// Anthropic's `x-api-key`): its tenant, the key's id and, for a managed key with settings
    /// of its own, its scope (its view of the tenant, its own limits).
    pub(crate) fn authenticate_key(
        &self,
        headers: &HeaderMap,
    ) -> Result<(&Tenant, KeyId, Option<Arc<keys::Scope>>), ApiError> {
        let key = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .or_else(|| headers.get("api-key").and_then(|v| v.to_str().ok()))
            .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
            .map(str::trim);
        let Some(key) = key.filter(|k| !k.is_empty()) else {
            return Err(ApiError::Unauthorized("missing API key: send Authorization: Bearer <key> (or x-api-key)"));
        };
        let (tenant, key_id, scope) = match self.config.key_for(key) {
            Some((tenant, id)) => (tenant, id, None),
            None => {
                let hash = switchyard_core::config::hash_key(key);
                let entry =
                    self.keys.get(&hash, self.unix_ms(self.now())).ok_or(ApiError::Unauthorized("invalid API key"))?;
                (self.config.tenant(entry.tenant), entry.id, entry.scope)
            }
        };
        let span = tracing::Span::current();
        span.record("tenant", tracing::field::display(&tenant.name));
        span.record("key", tracing::field::display(key_id));
        Ok((tenant, key_id, scope))
    }

    /// The alias a tenant asked for, if it exists, is of the right kind and is allowed.
    pub(crate) fn alias_for(&self, tenant: &Tenant, model: &str, kind: DeploymentKind) -> Result<&Alias, ApiError> {
        let alias = self.config.alias(model).ok_or_else(|| ApiError::UnknownModel(caller_text(model)))?;
        if !self.config.tenant_may_use(tenant, alias.id) {
            return Err(ApiError::Forbidden(format!("this key may not use the model '{}'", caller_text(model))));
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

/// Authenticates a request and reads its body. A caller who is refused has its body drained
/// first (bounded), so that it reads the status rather than a broken pipe.
pub(crate) async fn authenticated_body(
    gw: &Gateway,
    request: Request,
) -> Result<(&Tenant, account::Caller, Bytes), ApiError> {
    let (parts, body) = request.into_parts();
    match gw.authenticate_key(&parts.headers) {
        Ok((tenant, key_id, scope)) => {
            let request_id = match parts.extensions.get::<edge::RequestId>() {
                Some(id) => id.0.clone(),
                // Called without the edge in front (tests of `app`): an id of its own.
                None => Arc::from(gw.request_ids.make().as_str()),
            };
            let caller = account::Caller { request_id, key_id, scope };
            Ok((tenant, caller, body::read_body(gw, &parts.headers, body).await?))
        }
        Err(e) => {
            let deadline = Instant::now() + gw.config.server.timeouts.body_read;
            Err(body::refuse(gw, &parts.headers, body, deadline, e).await)
        }
    }
}

/// The gateway's routes, as a service that tests can call without sockets (`serve` puts the
/// request id and the `Host` check of `edge` in front of them). `/metrics` is here
/// unless `server.metrics_listen` puts it on a listener of its own ([`metrics_app`]).
pub fn app(gw: Arc<Gateway>) -> Router {
    let mut router = Router::new()
        .route("/v1/chat/completions", post(chat::chat_completions).fallback(not_allowed("POST")))
        .route("/v1/embeddings", post(chat::embeddings).fallback(not_allowed("POST")))
        .route("/v1/messages", post(messages::messages).fallback(messages::not_allowed))
        .route("/v1/responses", post(responses::responses).fallback(not_allowed("POST")))
        .route("/v1/models", get(models).fallback(not_allowed("GET, HEAD")))
        .route("/v1/models/{*id}", get(model).fallback(not_allowed("GET, HEAD")))
        .route("/healthz", get(|| async { "ok" }).fallback(not_allowed("GET, HEAD")))
        .route("/readyz", get(readyz).fallback(not_allowed("GET, HEAD")));
    if !gw.config.server.admin_keys.is_empty() {
        router = router.merge(admin::routes());
    }
    if gw.config.server.metrics_listen.is_none() {
        router = router.route("/metrics", get(metrics_text).fallback(not_allowed("GET, HEAD")));
    }
    router.fallback(not_found).with_state(gw)
}

/// `/metrics` alone, for the separate listener of `server.metrics_listen`.
pub fn metrics_app(gw: Arc<Gateway>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_text).fallback(not_allowed("GET, HEAD")))
        .fallback(not_found)
        .with_state(gw)
}

/// 404, in Anthropic's shape for a caller that says it speaks Anthropic's API.
async fn not_found(uri: axum::http::Uri, headers: HeaderMap) -> Response {
    ApiError::NotFound(caller_text(uri.path())).respond(error::Shape::of(&headers))
}

fn not_allowed(
    allow: &'static str,
) -> impl Fn(axum::http::Method) -> std::future::Ready<Response> + Clone + Send + Sync + 'static {
    move |method| {
        let error = ApiError::MethodNotAllowed { method: caller_text(method.as_str()), allow: allow.to_owned() };
        std::future::ready(error.into_response())
    }
}

/// Caller-supplied text as it may appear in a log line or an error message: control
/// characters escaped, cut to a bounded length.
pub(crate) fn caller_text(text: &str) -> String {
    switchyard_wire::for_log(text, error::ECHO_LIMIT).into_owned()
}

/// Serves the gateway's API until `shutdown` resolves. Then, in this order: `/readyz` starts
/// failing, the listener is closed (new connections are refused at once rather than accepted
/// and never answered), and open connections and streams get up to 30 s to finish.
/// Accepted sockets get TCP_NODELAY; HTTP/1.1 connections keep small buffers (8 KiB reads,
/// vectored writes instead of a copy into a write buffer), which is what a thousand held-open
/// streams cost in memory.
pub async fn serve(
    gw: Arc<Gateway>,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_router(gw.clone(), app(gw), listener, shutdown).await
}

async fn serve_router(
    gw: Arc<Gateway>,
    router: Router,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let service = {
        let gw = gw.clone();
        hyper::service::service_fn(move |request| edge::handle(gw.clone(), router.clone(), request))
    };
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.max_buf_size(8 * 1024).writev(true).timer(hyper_util::rt::TokioTimer::new());
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // Out of file descriptors and the like: back off briefly rather than spin.
                Err(error) => {
                    tracing::warn!(message = "Cannot accept a connection.", %error);
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
    gw.draining.store(true, Ordering::Relaxed);
    drop(listener);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(30), graceful.shutdown()).await;
    Ok(())
}

/// The chat and embeddings aliases the caller may use: in Anthropic's list shape when the
/// caller sends `anthropic-version` (as Anthropic's SDKs do), else in OpenAI's.
async fn models(State(gw): State<Arc<Gateway>>, headers: HeaderMap) -> Response {
    let shape = error::Shape::of(&headers);
    let (tenant, _, scope) = match gw.authenticate_key(&headers) {
        Ok(found) => found,
        Err(e) => return e.respond(shape),
    };
    // A managed key with aliases of its own lists those.
    let tenant = scope.as_ref().map_or(tenant, |s| &*s.view);
    let usable = gw.config.aliases.iter().filter(|a| gw.config.tenant_may_use(tenant, a.id));
    let body = match shape {
        error::Shape::OpenAi => {
            let data: Vec<_> = usable
                .map(|a| json!({"id": a.name, "object": "model", "created": 0, "owned_by": "switchyard"}))
                .collect();
            json!({"object": "list", "data": data})
        }
        error::Shape::Anthropic => {
            let data: Vec<_> = usable
                .map(|a| {
                    json!({"type": "model", "id": a.name, "display_name": a.name, "created_at": "1970-01-01T00:00:00Z"})
                })
                .collect();
            let (first, last) = (data.first().map(|m| m["id"].clone()), data.last().map(|m| m["id"].clone()));
            json!({"data": data, "has_more": false, "first_id": first, "last_id": last})
        }
    };
    axum::Json(body).into_response()
}

/// One alias the caller may use, as a model object (in Anthropic's shape when the caller sends
/// `anthropic-version`); 404 `model_not_found` for one that does not exist or that the key may
/// not use (the two are not told apart).
async fn model(
    State(gw): State<Arc<Gateway>>,
    axum::extract::Path(id): axum::extract::Path<String>,
    headers: HeaderMap,
) -> Response {
    let shape = error::Shape::of(&headers);
    let (tenant, _, scope) = match gw.authenticate_key(&headers) {
        Ok(found) => found,
        Err(e) => return e.respond(shape),
    };
    let tenant = scope.as_ref().map_or(tenant, |s| &*s.view);
    let Some(alias) = gw.config.alias(&id).filter(|a| gw.config.tenant_may_use(tenant, a.id)) else {
        return ApiError::UnknownModel(caller_text(&id)).respond(shape);
    };
    let body = match shape {
        error::Shape::OpenAi => json!({"id": alias.name, "object": "model", "created": 0, "owned_by": "switchyard"}),
        error::Shape::Anthropic => json!({"type": "model", "id": alias.name, "display_name": alias.name,
            "created_at": "1970-01-01T00:00:00Z"}),
    };
    axum::Json(body).into_response()
}

/// 200 while the gateway can serve: not shutting down, and at least one deployment is neither
/// ejected nor failing its latest attempts (connection refused, 5xx, timeouts, ...). A load
/// balancer should take a replica whose `/readyz` fails out of rotation; when every replica
/// fails it, every cloud behind them is failing and the body says how many are usable.
async fn readyz(State(gw): State<Arc<Gateway>>) -> Response {
    let now = gw.now();
    let draining = gw.draining.load(Ordering::Relaxed);
    let (n_available, n_usable) = gw.router().n_available_and_usable(now);
    let ready = !draining && n_usable > 0;
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = json!({
        "ready": ready,
        "draining": draining,
        "deployments": gw.config.deployments.len(),
        "available": n_available,
        "usable": n_usable,
    });
    (status, axum::Json(body)).into_response()
}

/// Prometheus text. With `server.metrics_token` set, only for `Authorization: Bearer <token>`.
async fn metrics_text(State(gw): State<Arc<Gateway>>, headers: HeaderMap) -> Response {
    if let Some(token) = &gw.config.server.metrics_token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !constant_time_eq(given.as_bytes(), token.expose().as_bytes()) {
            return ApiError::Unauthorized("/metrics needs the metrics token: Authorization: Bearer <token>")
                .into_response();
        }
    }
    let now = gw.now();
    let (in_flight, ejected): (Vec<u32>, Vec<bool>) = gw
        .config
        .deployments
        .iter()
        .map(|d| {
            let s = gw.router().deployment_at(d.id, now);
            (s.in_flight, s.health.is_ejected(now))
        })
        .unzip();
    let tenants_in_flight: Vec<u32> = gw.config.tenants.iter().map(|t| gw.router().tenancy().in_flight(t.id)).collect();
    let ledger = gw.ledger.as_ref().map(|l| metrics::LedgerGauges {
        depth: l.depth(),
        written: l.written(),
        spooled: l.spooled(),
        failed: l.failed(),
        dropped: gw.metrics.ledger_dropped_count() + l.counts().lost,
        healthy: l.healthy(),
    });
    let shared = gw.shared.as_ref().map(|s| s.stats());
    let shared_signals = gw.shared_signals.as_ref().map(|s| s.stats());
    let tenancy = gw.router().tenancy();
    let budgets_left: Vec<_> = gw
        .config
        .tenants
        .iter()
        .map(|t| {
            use switchyard_core::tenancy::Period;
            (tenancy.budget_left(t.id, Period::Day, now), tenancy.budget_left(t.id, Period::Month, now))
        })
        .collect();
    let scrape = metrics::Scrape {
        in_flight: &in_flight,
        ejected: &ejected,
        body_bytes: gw.body_bytes.get(),
        tenants_in_flight: &tenants_in_flight,
        budgets_left: &budgets_left,
        ledger,
        shared,
        shared_signals,
    };
    let body = gw.metrics.render(&scrape);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

/// Compares without stopping at the first difference (the length is not secret).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Serves on `addr` with `workers` threads, each running its own single-threaded runtime and
/// its own SO_REUSEPORT listener, so that a request, its upstream connection and its relay stay
/// on one thread (no cross-thread wake-ups on the hot path). With `server.metrics_listen` set,
/// the first worker also serves `/metrics` there. Blocks until `shutdown` fires.
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
    let mut metrics_listener = match &gw.config.server.metrics_listen {
        Some(addr) => {
            let parsed: std::net::SocketAddr =
                addr.parse().map_err(|_| StartError::Bind(addr.clone(), std::io::ErrorKind::InvalidInput.into()))?;
            if parsed == bound {
                // SO_REUSEPORT would let both bind and split traffic between them.
                let same = std::io::Error::new(std::io::ErrorKind::AddrInUse, "the metrics listener is the API's");
                return Err(StartError::Bind(addr.clone(), same));
            }
            Some(reuseport_listener(parsed).map_err(|e| StartError::Bind(addr.clone(), e))?)
        }
        None => None,
    };
    let mut threads = Vec::new();
    for (i, listener) in listeners.into_iter().enumerate() {
        let gw = gw.clone();
        let shutdown = shutdown.clone();
        let metrics_listener = metrics_listener.take();
        let thread = std::thread::Builder::new()
            .name(format!("switchyard-worker-{i}"))
            .spawn(move || -> std::io::Result<()> {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                runtime.block_on(async move {
                    let stop = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
                        let _ = rx.wait_for(|stop| *stop).await;
                    };
                    if let Some(metrics_listener) = metrics_listener {
                        let metrics_listener = TcpListener::from_std(metrics_listener)?;
                        let router = metrics_app(gw.clone());
                        tokio::spawn(serve_router(gw.clone(), router, metrics_listener, stop(shutdown.clone())));
                    }
                    let listener = TcpListener::from_std(listener)?;
                    serve(gw, listener, stop(shutdown)).await
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
