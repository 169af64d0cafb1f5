//! Fake clouds on loopback: every configured deployment gets a listener that speaks its cloud's
//! wire protocol (OpenAI Chat Completions, Azure OpenAI, Anthropic Messages, Bedrock Converse, Gemini
//! `generateContent` or OCI Generative AI's native chat), with its
//! authentication, timing drawn from the configured distributions, a concurrency capacity,
//! and typed fault plans set in config or live. Or no listener at all: the deployments are
//! reached through in-memory pipes ([`Dialer`]). Answers are what models answer: the same
//! words for the same conversation whatever the protocol, tool calls with arguments from the
//! tool's schema, JSON when JSON is asked for.
//!
//! Used by `switchyard emulate`, by the demo, and in-process by the gateway's tests.

mod admin;
mod answer;
mod anthropic;
mod auth;
mod azure;
mod bedrock;
mod body;
mod conversation;
mod embeddings;
mod gemini;
mod memory;
mod oci;
mod openai;
mod schema;
mod server;
mod stream;
mod text;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use switchyard_core::config::{Config, Dist, Emulation, Fault, FaultKind, Protocol};
use switchyard_core::rng::{SplitMix64, stable_hash};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::Instant;

pub use conversation::canonical_conversation_key;
pub use memory::Dialer;
pub use text::{answer_tokens, conversation_key, remainder_after};

/// How a request ended, as the emulator saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Seen {
    Completed,
    ConnectionReset,
    RateLimited,
    ErrorStatus(u16),
    ResetBeforeHeaders,
    NoResponse,
    Stalled,
    Cut,
    Malformed,
    NoDone,
    ContextLength,
    ContentFilter,
    Garbage,
    PrefillRejected,
    Unauthorized,
    BadRequest,
}

/// One request as the emulator saw it.
#[derive(Clone, Debug)]
pub struct Record {
    /// Since the emulator started.
    pub at: Duration,
    pub outcome: Seen,
    pub stream: bool,
    /// The request continued an assistant prefill.
    pub prefill: bool,
}

/// The emulator's view of one deployment.
pub struct EmulatedDeployment {
    pub name: String,
    pub cloud: String,
    pub model: String,
    pub addr: SocketAddr,
    /// The protocol its cloud speaks.
    pub protocol: Protocol,
    /// Its region: a Bedrock deployment's SigV4 signing region.
    pub region: String,
    /// An Azure OpenAI deployment configured at Azure's v1 API (its endpoint ends in
    /// `/openai/v1`): [`EmulatedDeployment::endpoint`] names that path too.
    pub azure_v1: bool,
    /// A Gemini-protocol deployment configured at Vertex AI (its endpoint ends in
    /// `/publishers/google`): [`EmulatedDeployment::endpoint`] is a Vertex AI path too.
    pub vertex: bool,
    pub(crate) auth: auth::Rule,
    /// An OCI native cloud's compartment, which every request's `compartmentId` must be.
    pub(crate) compartment: Option<String>,
    pub(crate) context_window: u32,
    pub(crate) spec: Emulation,
    pub(crate) faults: Mutex<FaultPlan>,
    pub(crate) in_flight: AtomicU32,
    /// Capacity as permits; requests beyond it queue (up to `max_queue`) or get 429.
    pub(crate) slots: Option<Arc<tokio::sync::Semaphore>>,
    pub(crate) waiting: AtomicU32,
    pub(crate) rng: Mutex<SplitMix64>,
    pub(crate) records: Mutex<Vec<Record>>,
    pub(crate) started: Instant,
}

pub(crate) struct FaultPlan {
    pub(crate) faults: Vec<Fault>,
    pub(crate) installed: Instant,
}

/// The records kept per deployment at most; older ones are dropped.
const MAX_RECORDS: usize = 200_000;

#[derive(Clone, Copy, Debug)]
pub enum Bind {
    /// Every deployment on its own free loopback port.
    Ephemeral,
    /// On the host and port of each deployment's endpoint (`switchyard emulate`).
    Endpoints,
    /// No listener: deployments are reached through [`Emulator::dialer`] only. Each gets a
    /// placeholder address to be named by, `127.0.0.1` with port 1 + its index, where nothing
    /// listens.
    Memory,
}

/// Where the admin API listens. It changes fault plans without any authentication, so it
/// listens on loopback only, and answers loopback peers only, unless `allow_remote` is set.
#[derive(Clone, Copy, Debug)]
pub struct AdminBind {
    pub addr: SocketAddr,
    /// Listen on a non-loopback address and answer non-loopback peers
    /// (`switchyard emulate --admin-allow-remote`).
    pub allow_remote: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    #[error("deployment {0}: endpoint has no host:port to listen on")]
    BadEndpoint(String),
    #[error("deployments {0} and {1} share an endpoint port; each needs its own")]
    SharedPort(String, String),
    #[error("cannot listen on {0}: {1}")]
    Bind(String, std::io::Error),
    #[error("unknown deployment {0}")]
    UnknownDeployment(String),
    #[error(
        "the admin API may only listen on a loopback address such as 127.0.0.1:9100 or [::1]:9100, \
         not {0}: it changes fault plans without authentication \
         (`switchyard emulate --admin-allow-remote` allows it anyway)"
    )]
    RemoteAdmin(SocketAddr),
}

/// A running emulator. Dropping it stops every listener (and its [`Dialer`]s).
pub struct Emulator {
    deployments: BTreeMap<String, Arc<EmulatedDeployment>>,
    admin_addr: Option<SocketAddr>,
    stop: watch::Sender<bool>,
}

// === impl EmulatedDeployment ===

impl EmulatedDeployment {
    /// Base URL for the gateway's config: `http://host:port/v1`, or for Bedrock, whose
    /// paths (`/model/{id}/converse`) have no version, `http://host:port` (any prefix before
    /// `/model/` is served too), and for Azure OpenAI `http://host:port`, a resource's base
    /// (its deployment URLs), or `http://host:port/openai/v1` (Azure's v1 API) when the
    /// deployment was configured there. Both are served either way. Gemini's is the Gemini
    /// API's `http://host:port/v1beta` (any prefix before `/models/` is served). OCI native's is
    /// `http://host:port`, OCI's inference host (`/20231130/actions/chat` under it).
    pub fn endpoint(&self) -> String {
        match self.protocol {
            Protocol::AzureOpenAi if self.azure_v1 => format!("http://{}/openai/v1", self.addr),
            Protocol::Bedrock | Protocol::AzureOpenAi => format!("http://{}", self.addr),
            Protocol::OpenAi | Protocol::Anthropic => format!("http://{}/v1", self.addr),
            Protocol::Gemini if self.vertex => {
                format!("http://{}/v1/projects/emulated/locations/{}/publishers/google", self.addr, self.region)
            }
            Protocol::Gemini => format!("http://{}/v1beta", self.addr),
            Protocol::Oci => format!("http://{}", self.addr),
        }
    }

    /// Every access token this Gemini deployment's token endpoint issued expires now (a
    /// `service_account` cloud's): the next request with one is a 401, and a new token is to be
    /// fetched. False when the deployment issues none.
    pub fn expire_tokens(&self) -> bool {
        match &self.auth {
            auth::Rule::GoogleAccount(issued) => {
                issued.expire();
                true
            }
            _ => false,
        }
    }

    /// How many access tokens this Gemini deployment's token endpoint has issued.
    pub fn tokens_issued(&self) -> u64 {
        match &self.auth {
            auth::Rule::GoogleAccount(issued) => issued.count(),
            _ => 0,
        }
    }

    pub fn records(&self) -> Vec<Record> {
        self.records.lock().map(|r| r.clone()).unwrap_or_default()
    }

    pub fn count(&self, outcome: Seen) -> usize {
        self.records.lock().map(|r| r.iter().filter(|x| x.outcome == outcome).count()).unwrap_or(0)
    }

    pub(crate) fn record(&self, outcome: Seen, stream: bool, prefill: bool) {
        if let Ok(mut r) = self.records.lock() {
            if r.len() >= MAX_RECORDS {
                r.drain(..MAX_RECORDS / 2);
            }
            r.push(Record { at: self.started.elapsed(), outcome, stream, prefill });
        }
    }

    pub(crate) fn sample(&self, dist: &Dist) -> f64 {
        match self.rng.lock() {
            Ok(mut rng) => dist.sample(&mut *rng),
            Err(_) => dist.median(),
        }
    }

    pub(crate) fn roll(&self, rate: f64) -> bool {
        use switchyard_core::Rng;
        rate >= 1.0 || self.rng.lock().map(|mut r| r.next_f64() < rate).unwrap_or(false)
    }

    /// The faults active now, each rolled against its rate.
    pub(crate) fn active_faults(&self) -> Vec<Fault> {
        let (faults, since) = match self.faults.lock() {
            Ok(plan) => (plan.faults.clone(), plan.installed.elapsed()),
            Err(_) => return Vec::new(),
        };
        faults.into_iter().filter(|f| f.active(since) && self.roll(f.rate)).collect()
    }

    /// Whether an outage (or a flap's down phase) with rate 1 is active now.
    pub(crate) fn outage_for_all(&self) -> bool {
        let Ok(plan) = self.faults.lock() else { return false };
        let since = plan.installed.elapsed();
        plan.faults
            .iter()
            .any(|f| f.rate >= 1.0 && matches!(f.kind, FaultKind::Outage | FaultKind::Flap { .. }) && f.active(since))
    }

    fn set_faults(&self, faults: Vec<Fault>) {
        if let Ok(mut plan) = self.faults.lock() {
            *plan = FaultPlan { faults, installed: Instant::now() };
        }
    }
}

// === impl AdminBind ===

impl AdminBind {
    /// On `addr`, which must be a loopback address.
    pub fn loopback(addr: SocketAddr) -> AdminBind {
        AdminBind { addr, allow_remote: false }
    }

    fn check(&self) -> Result<(), EmulatorError> {
        if self.allow_remote || admin::is_loopback(self.addr) {
            Ok(())
        } else {
            Err(EmulatorError::RemoteAdmin(self.addr))
        }
    }
}

// === impl Emulator ===

impl Emulator {
    /// Starts a listener per deployment (and, if `admin` is given, the admin API there, which
    /// must then be a loopback address: see [`AdminBind`]).
    pub async fn start(
        config: &Config,
        bind: Bind,
        admin: Option<SocketAddr>,
        seed: u64,
    ) -> Result<Emulator, EmulatorError> {
        Emulator::start_with_admin(config, bind, admin.map(AdminBind::loopback), seed).await
    }

    /// [`Emulator::start`], with the admin API's remote access chosen explicitly.
    pub async fn start_with_admin(
        config: &Config,
        bind: Bind,
        admin: Option<AdminBind>,
        seed: u64,
    ) -> Result<Emulator, EmulatorError> {
        if let Some(admin) = admin {
            admin.check()?;
        }
        let (stop_tx, stop_rx) = watch::channel(false);
        let started = Instant::now();
        let mut deployments = BTreeMap::new();
        let mut ports: BTreeMap<SocketAddr, String> = BTreeMap::new();
        for (i, d) in config.deployments.iter().enumerate() {
            let addr = match bind {
                Bind::Ephemeral | Bind::Memory => SocketAddr::from(([127, 0, 0, 1], 0)),
                Bind::Endpoints => {
                    let addr = endpoint_addr(&d.endpoint).ok_or_else(|| EmulatorError::BadEndpoint(d.name.clone()))?;
                    if let Some(other) = ports.insert(addr, d.name.clone()) {
                        return Err(EmulatorError::SharedPort(other, d.name.clone()));
                    }
                    addr
                }
            };
            let (listener, addr) = match bind {
                Bind::Memory => {
                    let port = u16::try_from(i + 1).map_err(|_| EmulatorError::BadEndpoint(d.name.clone()))?;
                    (None, SocketAddr::from(([127, 0, 0, 1], port)))
                }
                Bind::Ephemeral | Bind::Endpoints => {
                    let listener =
                        TcpListener::bind(addr).await.map_err(|e| EmulatorError::Bind(addr.to_string(), e))?;
                    let addr = listener.local_addr().map_err(|e| EmulatorError::Bind(addr.to_string(), e))?;
                    (Some(listener), addr)
                }
            };
            let spec = d.emulation.clone().unwrap_or_else(default_emulation);
            let faults = FaultPlan { faults: spec.faults.clone(), installed: started };
            let cloud = config.cloud_of(d.id);
            let deployment = Arc::new(EmulatedDeployment {
                name: d.name.clone(),
                cloud: cloud.name.clone(),
                model: d.model.clone(),
                addr,
                protocol: cloud.protocol,
                region: d.region.clone(),
                azure_v1: d.endpoint.ends_with("/openai/v1"),
                vertex: d.endpoint.trim_end_matches('/').ends_with("/publishers/google"),
                auth: auth::Rule::of(d, cloud, &spec),
                compartment: cloud.compartment.clone(),
                context_window: d.capabilities.context_window,
                spec,
                faults: Mutex::new(faults),
                in_flight: AtomicU32::new(0),
                slots: d
                    .emulation
                    .as_ref()
                    .and_then(|e| e.max_concurrency)
                    .map(|n| Arc::new(tokio::sync::Semaphore::new(n as usize))),
                waiting: AtomicU32::new(0),
                rng: Mutex::new(SplitMix64::new(seed ^ stable_hash(d.name.as_bytes()))),
                records: Mutex::new(Vec::new()),
                started,
            });
            if let Some(listener) = listener {
                tokio::spawn(server::serve(listener, deployment.clone(), stop_rx.clone()));
            }
            deployments.insert(d.name.clone(), deployment);
        }
        let mut emulator = Emulator { deployments, admin_addr: None, stop: stop_tx };
        if let Some(AdminBind { addr, allow_remote }) = admin {
            let listener = TcpListener::bind(addr).await.map_err(|e| EmulatorError::Bind(addr.to_string(), e))?;
            emulator.admin_addr = listener.local_addr().ok();
            tokio::spawn(admin::serve(listener, emulator.deployments.clone(), allow_remote, stop_rx));
        }
        Ok(emulator)
    }

    pub fn deployment(&self, name: &str) -> Option<&Arc<EmulatedDeployment>> {
        self.deployments.get(name)
    }

    pub fn deployments(&self) -> impl Iterator<Item = &Arc<EmulatedDeployment>> {
        self.deployments.values()
    }

    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// Connects to the deployments without a socket: see [`Dialer`].
    pub fn dialer(&self) -> Dialer {
        Dialer::new(self.deployments.values().cloned(), self.stop.subscribe())
    }

    /// Replaces a deployment's fault plan; windows count from now.
    pub fn set_faults(&self, name: &str, faults: Vec<Fault>) -> Result<(), EmulatorError> {
        let d = self.deployments.get(name).ok_or_else(|| EmulatorError::UnknownDeployment(name.to_owned()))?;
        d.set_faults(faults);
        Ok(())
    }

    /// Sets the same fault plan on every deployment of a cloud (a whole-cloud outage, say).
    pub fn set_cloud_faults(&self, cloud: &str, faults: &[Fault]) -> usize {
        let mut n = 0;
        for d in self.deployments.values().filter(|d| d.cloud == cloud) {
            d.set_faults(faults.to_vec());
            n += 1;
        }
        n
    }

    /// Current in-flight requests at a deployment.
    pub fn in_flight(&self, name: &str) -> u32 {
        self.deployments.get(name).map_or(0, |d| d.in_flight.load(Ordering::Relaxed))
    }
}

fn default_emulation() -> Emulation {
    Emulation {
        ttft_ms: Dist::LogNormal { median: 250.0, p99: 800.0 },
        tokens_per_s: Dist::Uniform { min: 40.0, max: 80.0 },
        max_concurrency: None,
        max_queue: 0,
        retry_after: Duration::from_secs(1),
        answer_tokens: (16, 96),
        reject_prefill: false,
        api_key: None,
        faults: Vec::new(),
    }
}

/// `http://127.0.0.1:9101/v1` → `127.0.0.1:9101`.
fn endpoint_addr(endpoint: &str) -> Option<SocketAddr> {
    let rest = endpoint.strip_prefix("http://")?;
    let authority = rest.split('/').next()?;
    let authority = authority.replace("localhost", "127.0.0.1");
    authority.parse().ok()
}
