//! Prometheus metrics: names in one place, bounded label sets, lock-free counters.
//!
//! Every series is an atomic in a fixed table, indexed by deployment and by closed enums
//! (API, outcome, attempt result), so recording on the request path neither locks nor
//! allocates. Names follow `switchyard_<name>_<unit>[_total]`.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use switchyard_core::AttemptError;
use switchyard_core::config::{Config, DeploymentId};
use switchyard_core::tenancy::{Period, Refusal};
use switchyard_core::usage::Usage;

use crate::error::ApiError;

pub const REQUESTS_TOTAL: &str = "switchyard_requests_total";
pub const REQUEST_DURATION_SECONDS: &str = "switchyard_request_duration_seconds";
pub const ATTEMPTS_TOTAL: &str = "switchyard_upstream_attempts_total";
pub const FAILOVERS_TOTAL: &str = "switchyard_failovers_total";
pub const HEDGES_TOTAL: &str = "switchyard_hedges_total";
pub const CONTINUATIONS_TOTAL: &str = "switchyard_stream_continuations_total";
pub const MALFORMED_EVENTS_TOTAL: &str = "switchyard_upstream_malformed_events_total";
pub const TOKENS_TOTAL: &str = "switchyard_tokens_total";
pub const SPEND_DOLLARS_TOTAL: &str = "switchyard_spend_dollars_total";
pub const DEPLOYMENT_EJECTED: &str = "switchyard_deployment_ejected";
pub const DEPLOYMENT_IN_FLIGHT: &str = "switchyard_deployment_in_flight";
pub const TENANT_REFUSED_TOTAL: &str = "switchyard_tenant_refused_total";
pub const TENANT_IN_FLIGHT: &str = "switchyard_tenant_in_flight";
pub const TENANT_BUDGET_REMAINING: &str = "switchyard_tenant_budget_remaining_dollars";
pub const LEDGER_QUEUE_DEPTH: &str = "switchyard_ledger_queue_depth";
pub const LEDGER_RECORDS_TOTAL: &str = "switchyard_ledger_records_total";
pub const LEDGER_HEALTHY: &str = "switchyard_ledger_healthy";
pub const SHARED_STATUS: &str = "switchyard_shared_status";
pub const SHARED_SYNCS_TOTAL: &str = "switchyard_shared_syncs_total";
pub const SHARED_SIGNALS_STATUS: &str = "switchyard_shared_signals_status";
pub const SHARED_SIGNALS_SYNCS_TOTAL: &str = "switchyard_shared_signals_syncs_total";

/// Why a tenant's request was refused, for `switchyard_tenant_refused_total{reason}`: by the
/// tenant's own limits and budgets, or by those of its managed key (`key_…`, counted under the
/// key's tenant: keys are too many for a label of their own).
const REFUSALS: [&str; 10] = [
    "rpm",
    "tpm",
    "concurrency",
    "daily_budget",
    "monthly_budget",
    "key_rpm",
    "key_tpm",
    "key_concurrency",
    "key_daily_budget",
    "key_monthly_budget",
];

/// What `/metrics` reads at scrape time: per deployment (from the router), the body reader,
/// per tenant, the ledger and the link to Redis.
#[derive(Clone, Copy, Debug)]
pub struct Scrape<'a> {
    pub in_flight: &'a [u32],
    pub ejected: &'a [bool],
    pub body_bytes: usize,
    pub tenants_in_flight: &'a [u32],
    /// Each tenant's budget left today and this month, where it has one.
    pub budgets_left: &'a [(Option<f64>, Option<f64>)],
    pub ledger: Option<LedgerGauges>,
    pub shared: Option<switchyard_shared::Stats>,
    /// The link to Redis of the deployment signals (ejections, cool-downs, concurrency).
    pub shared_signals: Option<switchyard_shared::Stats>,
}

/// The ledger as `/metrics` shows it, read at scrape time.
#[derive(Clone, Copy, Debug, Default)]
pub struct LedgerGauges {
    pub depth: usize,
    pub written: u64,
    pub spooled: u64,
    pub failed: u64,
    /// Records the gateway could not hand to the ledger (queue full or closed) or that could
    /// not be made durable.
    pub dropped: u64,
    pub healthy: bool,
}
pub const BODY_BYTES_BUFFERED: &str = "switchyard_request_body_bytes_buffered";
pub const IMPLAUSIBLE_USAGE_TOTAL: &str = "switchyard_upstream_implausible_usage_total";
pub const REPORTED_FULL_TOTAL: &str = "switchyard_deployment_reported_full_total";

/// The APIs requests are counted under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    Chat,
    ChatStream,
    Embeddings,
    /// Anthropic's Messages API, answered whole.
    Messages,
    MessagesStream,
    /// OpenAI's Responses API, answered whole.
    Responses,
    ResponsesStream,
}

const APIS: [&str; 7] =
    ["chat", "chat_stream", "embeddings", "messages", "messages_stream", "responses", "responses_stream"];

impl Api {
    /// Whether its responses are streams, whose duration is counted when they end.
    pub fn is_stream(self) -> bool {
        matches!(self, Api::ChatStream | Api::MessagesStream | Api::ResponsesStream)
    }
}
/// Outcomes: ok, each [`ApiError::KINDS`], and `client_closed` (the caller hung up first).
const N_OUTCOMES: usize = ApiError::KINDS.len() + 2;
const OUTCOME_CLIENT_CLOSED: usize = ApiError::KINDS.len() + 1;
const N_RESULTS: usize = AttemptError::KINDS.len() + 2;
const RESULT_OK: usize = AttemptError::KINDS.len();
const RESULT_ABANDONED: usize = AttemptError::KINDS.len() + 1;
const BUCKETS: [f64; 13] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// Adds to a counter that stops at its maximum instead of wrapping.
fn add_saturating(counter: &AtomicU64, n: u64) {
    let _ = counter.fetch_update(Relaxed, Relaxed, |v| Some(v.saturating_add(n)));
}

/// How an attempt ended, for counting.
#[derive(Clone, Copy, Debug)]
pub enum AttemptResult<'a> {
    Ok,
    Abandoned,
    Failed(&'a AttemptError),
}

#[derive(Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

struct PerDeployment {
    name: String,
    cloud: String,
    attempts: [AtomicU64; N_RESULTS],
    tokens_in: AtomicU64,
    tokens_out: AtomicU64,
    spend_nanodollars: AtomicU64,
    malformed: AtomicU64,
    implausible: AtomicU64,
    /// Answers whose headers said the deployment had no room left (`x-ratelimit-remaining-*`).
    reported_full: AtomicU64,
}

pub struct Metrics {
    requests: [[AtomicU64; N_OUTCOMES]; APIS.len()],
    durations: [Histogram; APIS.len()],
    failovers: AtomicU64,
    hedges: [AtomicU64; 2],
    continuations: [AtomicU64; 2],
    deployments: Vec<PerDeployment>,
    /// Per tenant: its name and its refusals by reason.
    tenants: Vec<(String, [AtomicU64; REFUSALS.len()])>,
    ledger_dropped: AtomicU64,
}

impl Metrics {
    pub fn new(config: &Config) -> Metrics {
        let deployments = config
            .deployments
            .iter()
            .map(|d| PerDeployment {
                name: d.name.clone(),
                cloud: config.cloud_of(d.id).name.clone(),
                attempts: Default::default(),
                tokens_in: AtomicU64::new(0),
                tokens_out: AtomicU64::new(0),
                spend_nanodollars: AtomicU64::new(0),
                malformed: AtomicU64::new(0),
                implausible: AtomicU64::new(0),
                reported_full: AtomicU64::new(0),
            })
            .collect();
        Metrics {
            requests: Default::default(),
            durations: Default::default(),
            failovers: AtomicU64::new(0),
            hedges: Default::default(),
            continuations: Default::default(),
            deployments,
            tenants: config.tenants.iter().map(|t| (t.name.clone(), Default::default())).collect(),
            ledger_dropped: AtomicU64::new(0),
        }
    }

    /// A tenant's request was refused by its own limits or budgets, or by its key's.
    pub fn tenant_refused(&self, tenant: switchyard_core::config::TenantId, refusal: &Refusal) {
        let kind = match refusal.limit() {
            Refusal::RequestsPerMinute { .. } => 0,
            Refusal::TokensPerMinute { .. } => 1,
            Refusal::Concurrency { .. } | Refusal::Key(_) => 2,
            Refusal::Budget { period: Period::Day, .. } => 3,
            Refusal::Budget { period: Period::Month, .. } => 4,
        };
        let reason = if refusal.is_key() { kind + 5 } else { kind };
        if let Some((_, counts)) = self.tenants.get(usize::from(tenant.0)) {
            counts[reason].fetch_add(1, Relaxed);
        }
    }

    /// A record that did not reach the ledger, or could not be made durable.
    pub fn ledger_dropped(&self) {
        self.ledger_dropped.fetch_add(1, Relaxed);
    }

    pub fn ledger_dropped_count(&self) -> u64 {
        self.ledger_dropped.load(Relaxed)
    }

    fn deployment(&self, id: DeploymentId) -> &PerDeployment {
        &self.deployments[usize::from(id.0)]
    }

    /// A request finished (for streams: its response started).
    pub fn request(&self, api: Api, error: Option<&ApiError>) {
        let outcome = error.map_or(0, |e| e.kind_index() + 1);
        self.requests[api as usize][outcome].fetch_add(1, Relaxed);
    }

    /// A request whose caller went away before it was answered (or, for a stream, finished).
    pub fn request_abandoned(&self, api: Api) {
        self.requests[api as usize][OUTCOME_CLIENT_CLOSED].fetch_add(1, Relaxed);
    }

    /// An upstream reported token counts that could not be true; they were clamped.
    pub fn implausible_usage(&self, id: DeploymentId) {
        self.deployment(id).implausible.fetch_add(1, Relaxed);
    }

    pub fn duration(&self, api: Api, elapsed: Duration) {
        let h = &self.durations[api as usize];
        let seconds = elapsed.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| seconds <= *b) {
            h.buckets[i].fetch_add(1, Relaxed);
        }
        h.count.fetch_add(1, Relaxed);
        h.sum_micros.fetch_add(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX), Relaxed);
    }

    pub fn attempt(&self, id: DeploymentId, result: AttemptResult<'_>) {
        let index = match result {
            AttemptResult::Ok => RESULT_OK,
            AttemptResult::Abandoned => RESULT_ABANDONED,
            AttemptResult::Failed(e) => e.kind_index(),
        };
        self.deployment(id).attempts[index].fetch_add(1, Relaxed);
    }

    /// Tokens and list-price spend of an attempt that produced output.
    pub fn usage(&self, id: DeploymentId, usage: &Usage, dollars: f64) {
        let d = self.deployment(id);
        add_saturating(&d.tokens_in, usage.prompt_tokens);
        add_saturating(&d.tokens_out, usage.completion_tokens);
        // `as` saturates: a NaN or negative figure counts nothing, a huge one the maximum.
        add_saturating(&d.spend_nanodollars, (dollars * 1e9).round() as u64);
    }

    /// A hedge started (`won: false`), or a request answered by its hedge (`won: true`).
    pub fn hedge(&self, won: bool) {
        self.hedges[usize::from(won)].fetch_add(1, Relaxed);
    }

    pub fn failover(&self) {
        self.failovers.fetch_add(1, Relaxed);
    }

    pub fn continuation(&self, ok: bool) {
        self.continuations[usize::from(!ok)].fetch_add(1, Relaxed);
    }

    pub fn malformed(&self, id: DeploymentId) {
        self.deployment(id).malformed.fetch_add(1, Relaxed);
    }

    /// Continued streams: (succeeded, failed).
    pub fn continuations(&self) -> (u64, u64) {
        (self.continuations[0].load(Relaxed), self.continuations[1].load(Relaxed))
    }

    /// An answer's headers said the deployment is full: it is planned around until its reset.
    pub fn reported_full(&self, id: DeploymentId) {
        self.deployment(id).reported_full.fetch_add(1, Relaxed);
    }

    /// Answers on which the deployment reported no room left.
    pub fn reported_full_count(&self, id: DeploymentId) -> u64 {
        self.deployment(id).reported_full.load(Relaxed)
    }

    /// Attempts on the deployment that ended in a 429 (each moved on or waited it out).
    pub fn rate_limited_count(&self, id: DeploymentId) -> u64 {
        let index = AttemptError::RateLimited { retry_after: None }.kind_index();
        self.deployment(id).attempts[index].load(Relaxed)
    }

    pub fn malformed_events(&self, id: DeploymentId) -> u64 {
        self.deployment(id).malformed.load(Relaxed)
    }

    /// Prometheus text exposition: these counters, and the gauges read at scrape time.
    pub fn render(&self, scrape: &Scrape<'_>) -> String {
        let Scrape { in_flight, ejected, body_bytes, tenants_in_flight, budgets_left, ledger, shared, shared_signals } =
            *scrape;
        let mut out = String::with_capacity(8 * 1024);
        let head = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        head(&mut out, REQUESTS_TOTAL, "counter", "Requests by API and outcome.");
        for (a, api) in APIS.iter().enumerate() {
            for (o, n) in self.requests[a].iter().enumerate() {
                let n = n.load(Relaxed);
                if n > 0 {
                    let outcome = match o {
                        0 => "ok",
                        OUTCOME_CLIENT_CLOSED => "client_closed",
                        _ => ApiError::KINDS[o - 1],
                    };
                    let _ = writeln!(out, "{REQUESTS_TOTAL}{{api=\"{api}\",outcome=\"{outcome}\"}} {n}");
                }
            }
        }
        head(&mut out, REQUEST_DURATION_SECONDS, "histogram", "Time from request to the end of the response.");
        for (a, api) in APIS.iter().enumerate() {
            let h = &self.durations[a];
            let count = h.count.load(Relaxed);
            if count == 0 {
                continue;
            }
            let mut cumulative = 0;
            for (i, b) in BUCKETS.iter().enumerate() {
                cumulative += h.buckets[i].load(Relaxed);
                let _ = writeln!(out, "{REQUEST_DURATION_SECONDS}_bucket{{api=\"{api}\",le=\"{b}\"}} {cumulative}");
            }
            let _ = writeln!(out, "{REQUEST_DURATION_SECONDS}_bucket{{api=\"{api}\",le=\"+Inf\"}} {count}");
            let sum = h.sum_micros.load(Relaxed) as f64 / 1e6;
            let _ = writeln!(out, "{REQUEST_DURATION_SECONDS}_sum{{api=\"{api}\"}} {sum}");
            let _ = writeln!(out, "{REQUEST_DURATION_SECONDS}_count{{api=\"{api}\"}} {count}");
        }
        head(&mut out, ATTEMPTS_TOTAL, "counter", "Upstream attempts by deployment and result.");
        for d in &self.deployments {
            for (i, n) in d.attempts.iter().enumerate() {
                let n = n.load(Relaxed);
                if n > 0 {
                    let result = match i {
                        RESULT_OK => "ok",
                        RESULT_ABANDONED => "abandoned",
                        _ => AttemptError::KINDS[i],
                    };
                    let _ = writeln!(out, "{ATTEMPTS_TOTAL}{{deployment=\"{}\",result=\"{result}\"}} {n}", d.name);
                }
            }
        }
        head(&mut out, FAILOVERS_TOTAL, "counter", "Requests answered after at least one failed attempt.");
        let _ = writeln!(out, "{FAILOVERS_TOTAL} {}", self.failovers.load(Relaxed));
        head(&mut out, HEDGES_TOTAL, "counter", "Hedged attempts started, and requests a hedge answered.");
        let (started, won) = (self.hedges[0].load(Relaxed), self.hedges[1].load(Relaxed));
        let _ = writeln!(out, "{HEDGES_TOTAL}{{result=\"started\"}} {started}\n{HEDGES_TOTAL}{{result=\"won\"}} {won}");
        head(&mut out, CONTINUATIONS_TOTAL, "counter", "Interrupted streams continued elsewhere, by result.");
        let (ok, failed) = self.continuations();
        let _ = writeln!(
            out,
            "{CONTINUATIONS_TOTAL}{{result=\"ok\"}} {ok}\n{CONTINUATIONS_TOTAL}{{result=\"failed\"}} {failed}"
        );
        head(&mut out, MALFORMED_EVENTS_TOTAL, "counter", "Unparseable upstream stream events skipped.");
        for d in &self.deployments {
            let _ =
                writeln!(out, "{MALFORMED_EVENTS_TOTAL}{{deployment=\"{}\"}} {}", d.name, d.malformed.load(Relaxed));
        }
        head(&mut out, IMPLAUSIBLE_USAGE_TOTAL, "counter", "Upstream usage figures that could not be true, clamped.");
        for d in &self.deployments {
            let n = d.implausible.load(Relaxed);
            let _ = writeln!(out, "{IMPLAUSIBLE_USAGE_TOTAL}{{deployment=\"{}\"}} {n}", d.name);
        }
        head(&mut out, REPORTED_FULL_TOTAL, "counter", "Answers whose headers said the deployment had no room left.");
        for d in &self.deployments {
            let n = d.reported_full.load(Relaxed);
            let _ = writeln!(out, "{REPORTED_FULL_TOTAL}{{deployment=\"{}\",cloud=\"{}\"}} {n}", d.name, d.cloud);
        }
        head(&mut out, TOKENS_TOTAL, "counter", "Tokens by deployment and direction.");
        for d in &self.deployments {
            let (i, o) = (d.tokens_in.load(Relaxed), d.tokens_out.load(Relaxed));
            let _ = writeln!(out, "{TOKENS_TOTAL}{{deployment=\"{}\",direction=\"input\"}} {i}", d.name);
            let _ = writeln!(out, "{TOKENS_TOTAL}{{deployment=\"{}\",direction=\"output\"}} {o}", d.name);
        }
        head(&mut out, SPEND_DOLLARS_TOTAL, "counter", "List-price spend by deployment and cloud.");
        for d in &self.deployments {
            let dollars = d.spend_nanodollars.load(Relaxed) as f64 / 1e9;
            let _ = writeln!(out, "{SPEND_DOLLARS_TOTAL}{{deployment=\"{}\",cloud=\"{}\"}} {dollars}", d.name, d.cloud);
        }
        head(&mut out, DEPLOYMENT_EJECTED, "gauge", "1 while a deployment is ejected by outlier detection.");
        for (d, e) in self.deployments.iter().zip(ejected) {
            let _ = writeln!(out, "{DEPLOYMENT_EJECTED}{{deployment=\"{}\"}} {}", d.name, u8::from(*e));
        }
        head(&mut out, DEPLOYMENT_IN_FLIGHT, "gauge", "Attempts in flight per deployment.");
        for (d, n) in self.deployments.iter().zip(in_flight) {
            let _ = writeln!(out, "{DEPLOYMENT_IN_FLIGHT}{{deployment=\"{}\"}} {n}", d.name);
        }
        head(&mut out, BODY_BYTES_BUFFERED, "gauge", "Request-body bytes being received right now.");
        let _ = writeln!(out, "{BODY_BYTES_BUFFERED} {body_bytes}");
        head(
            &mut out,
            TENANT_REFUSED_TOTAL,
            "counter",
            "Requests refused by a tenant's limits and budgets, or its key's (key_…).",
        );
        for (name, counts) in &self.tenants {
            for (reason, n) in REFUSALS.iter().zip(counts) {
                let _ = writeln!(
                    out,
                    "{TENANT_REFUSED_TOTAL}{{tenant=\"{name}\",reason=\"{reason}\"}} {}",
                    n.load(Relaxed)
                );
            }
        }
        head(&mut out, TENANT_IN_FLIGHT, "gauge", "Requests in progress per tenant.");
        for ((name, _), n) in self.tenants.iter().zip(tenants_in_flight) {
            let _ = writeln!(out, "{TENANT_IN_FLIGHT}{{tenant=\"{name}\"}} {n}");
        }
        head(
            &mut out,
            TENANT_BUDGET_REMAINING,
            "gauge",
            "Dollars left in each tenant's budget, per UTC day and month.",
        );
        for ((name, _), (day, month)) in self.tenants.iter().zip(budgets_left) {
            for (period, left) in [("day", day), ("month", month)] {
                if let Some(left) = left {
                    let _ = writeln!(out, "{TENANT_BUDGET_REMAINING}{{tenant=\"{name}\",period=\"{period}\"}} {left}");
                }
            }
        }
        if let Some(l) = ledger {
            head(&mut out, LEDGER_QUEUE_DEPTH, "gauge", "Request records waiting to be written.");
            let _ = writeln!(out, "{LEDGER_QUEUE_DEPTH} {}", l.depth);
            head(&mut out, LEDGER_RECORDS_TOTAL, "counter", "Request records by what became of them.");
            for (result, n) in
                [("written", l.written), ("spooled", l.spooled), ("failed_writes", l.failed), ("dropped", l.dropped)]
            {
                let _ = writeln!(out, "{LEDGER_RECORDS_TOTAL}{{result=\"{result}\"}} {n}");
            }
            head(&mut out, LEDGER_HEALTHY, "gauge", "1 while the ledger takes writes.");
            let _ = writeln!(out, "{LEDGER_HEALTHY} {}", u8::from(l.healthy));
        }
        if let Some(s) = shared {
            head(&mut out, SHARED_STATUS, "gauge", "1 for the state of the link to the shared Redis.");
            for state in switchyard_shared::Status::ALL {
                let _ =
                    writeln!(out, "{SHARED_STATUS}{{state=\"{}\"}} {}", state.as_str(), u8::from(state == s.status));
            }
            head(&mut out, SHARED_SYNCS_TOTAL, "counter", "Sync rounds with the shared Redis, by result.");
            let _ = writeln!(out, "{SHARED_SYNCS_TOTAL}{{result=\"ok\"}} {}", s.syncs);
            let _ = writeln!(out, "{SHARED_SYNCS_TOTAL}{{result=\"failed\"}} {}", s.sync_failures);
        }
        if let Some(s) = shared_signals {
            let help = "1 for the state of the link to the shared Redis that deployment signals use.";
            head(&mut out, SHARED_SIGNALS_STATUS, "gauge", help);
            for state in switchyard_shared::Status::ALL {
                let on = u8::from(state == s.status);
                let _ = writeln!(out, "{SHARED_SIGNALS_STATUS}{{state=\"{}\"}} {on}", state.as_str());
            }
            let help = "Deployment signal sync rounds with the shared Redis, by result.";
            head(&mut out, SHARED_SIGNALS_SYNCS_TOTAL, "counter", help);
            let _ = writeln!(out, "{SHARED_SIGNALS_SYNCS_TOTAL}{{result=\"ok\"}} {}", s.syncs);
            let _ = writeln!(out, "{SHARED_SIGNALS_SYNCS_TOTAL}{{result=\"failed\"}} {}", s.sync_failures);
        }
        out
    }
}
