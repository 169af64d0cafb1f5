//! [`RedisSignals`]: the core's [`Signals`] seam through Redis: each deployment's ejections,
//! cool-downs and recoveries, and every replica's attempts in flight there; and tenants' and
//! keys' requests in progress as gauges (`gauges.rs`); answered from memory and synced by a
//! thread of its own (see [Deployment signals](crate#deployment-signals)
//! in the crate's docs for the protocol and the overshoot bound).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::Script;
use redis::aio::ConnectionManager;
use switchyard_core::DeploymentId;
use switchyard_core::signals::{Cluster, GaugeId, Heard, Signal, SignalSpec, Signals, unconfirmed_cap};

use crate::SharedError;
use crate::flight::Flight;
use crate::gauges::Gauges;
use crate::settings::{Policy, Settings, Stats, Status};
use crate::sync::link_accessors;
use crate::sync::{self, CHUNK, Exchange, Launch, Link};
use crate::view::Slot;

/// The script every round runs (see the file for its contract).
const SIGNALS_LUA: &str = include_str!("signals.lua");

/// Deployment signals shared with every replica that uses the same Redis and key prefix.
pub struct RedisSignals {
    link: Arc<Link>,
    board: Arc<[Entry]>,
    gauges: Arc<Gauges>,
    unconfirmed_share: f64,
    url: String,
    replica: String,
}

/// One deployment: its keys, what this replica has to say, what was heard, and the counts.
#[repr(align(64))]
struct Entry {
    /// `{prefix}:signals:{name}`.
    signals: String,
    /// `{prefix}:inflight:{name}`.
    flight: String,
    /// Whether its attempts in flight are counted across replicas (it has a concurrency limit).
    counted: bool,
    /// Signals of this replica's that Redis has not confirmed yet.
    pending: Slot<Heard>,
    /// What the replicas said, as Redis last answered; `version` moves on when it changes.
    heard: Slot<Heard>,
    version: AtomicU64,
    /// Its attempts in flight, here and (as last answered) on the other replicas.
    flight_count: Flight,
}

/// The sync thread's side: every deployment, pushed and read through `signals.lua`.
struct Rounds {
    board: Arc<[Entry]>,
    gauges: Arc<Gauges>,
    script: Script,
    field: String,
    lease_ms: u64,
    keep_ms: u64,
}

// === impl RedisSignals ===

impl RedisSignals {
    /// Connects to Redis at `url`, reads every deployment once, and starts the sync thread.
    /// Fails within about `connect_timeout` with a [`SharedError`] naming the URL (without its
    /// password) when the URL is not a Redis URL or Redis does not answer. Keys are
    /// `{prefix}:signals:{name}` and `{prefix}:inflight:{name}`. Blocks the calling thread
    /// meanwhile: call it before the workers start (or from `spawn_blocking`).
    pub fn start(url: &str, prefix: &str, specs: &[SignalSpec], settings: Settings) -> Result<Arc<Self>, SharedError> {
        Self::launch(url, prefix, specs, settings, true)
    }

    /// Like [`RedisSignals::start`], but does not wait for Redis: it fails only on a URL that
    /// is not a Redis URL, and connects in the background. Until the first sync is answered
    /// the status is [`Status::Connecting`] and the policy applies.
    pub fn start_detached(
        url: &str,
        prefix: &str,
        specs: &[SignalSpec],
        settings: Settings,
    ) -> Result<Arc<Self>, SharedError> {
        Self::launch(url, prefix, specs, settings, false)
    }

    fn launch(
        url: &str,
        prefix: &str,
        specs: &[SignalSpec],
        settings: Settings,
        wait: bool,
    ) -> Result<Arc<Self>, SharedError> {
        let settings = settings.normalized();
        let shown = crate::redact_url(url);
        let replica = sync::replica_id();
        let link = Arc::new(Link::new(settings.policy));
        let board: Arc<[Entry]> = specs.iter().map(|s| Entry::new(prefix, s, settings.unconfirmed_share)).collect();
        let gauges = Arc::new(Gauges::new(prefix));
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let rounds = Rounds {
            board: board.clone(),
            gauges: gauges.clone(),
            script: Script::new(SIGNALS_LUA),
            field: replica.clone(),
            lease_ms: millis(settings.lease),
            keep_ms: millis(settings.key_ttl),
        };
        let signals = RedisSignals {
            link: link.clone(),
            board,
            gauges,
            unconfirmed_share: settings.unconfirmed_share,
            url: shown.clone(),
            replica,
        };
        let launch = Launch {
            url,
            shown,
            settings,
            wait,
            thread: "switchyard-redis-signals",
            what: "shared signals",
            meanwhile,
        };
        sync::spawn(launch, link, rounds)?;
        Ok(Arc::new(signals))
    }

    link_accessors!("its field in each deployment's count");

    /// What the replicas said about a deployment, as Redis last answered.
    pub fn heard(&self, deployment: DeploymentId) -> Option<Heard> {
        self.entry(deployment).map(|e| *e.heard.lock())
    }

    /// Other replicas' attempts in flight on a deployment, as Redis last answered (0 for one
    /// that is not counted).
    pub fn others_in_flight(&self, deployment: DeploymentId) -> u32 {
        self.entry(deployment).map_or(0, |e| e.flight_count.others())
    }

    /// Waits for a sync that begins after this call (asking for one at once): every signal
    /// and count before it is then in Redis, and what Redis held then is taken in, if Redis
    /// answered. Errors when it did not.
    pub async fn flush(&self) -> Result<(), SharedError> {
        self.link.flush(&self.url).await
    }

    /// Other replicas' requests in progress on a gauge, as Redis last answered.
    pub fn gauge_others(&self, gauge: GaugeId) -> Option<u32> {
        self.gauges.others(gauge)
    }

    /// The replicas alive that count gauges (this one included), as Redis last answered.
    pub fn replicas_alive(&self) -> u32 {
        self.gauges.replicas()
    }

    fn entry(&self, deployment: DeploymentId) -> Option<&Entry> {
        self.board.get(usize::from(deployment.0))
    }
}

/// What this store does while Redis does not answer, for the log line.
fn meanwhile(policy: Policy) -> &'static str {
    match policy {
        Policy::FailOpen => {
            "fail-open: concurrency limits count this replica's attempts alone; ejections and cool-downs \
             heard so far still apply"
        }
        Policy::FailClosed => {
            "fail-closed: no attempt starts where a concurrency limit is set; ejections and cool-downs heard \
             so far still apply"
        }
    }
}

impl Signals for RedisSignals {
    /// Kept until Redis confirms it, and pushed at once (within a sync interval during an
    /// outage's retries, or when Redis answers again).
    fn publish(&self, deployment: DeploymentId, signal: Signal) {
        if let Some(e) = self.entry(deployment)
            && e.pending.lock().record(signal)
        {
            self.link.wake_early();
        }
    }

    fn heard_since(&self, deployment: DeploymentId, seen: u64) -> Option<(u64, Heard)> {
        let e = self.entry(deployment)?;
        let version = e.version.load(Ordering::Acquire);
        (version != seen).then(|| (version, *e.heard.lock()))
    }

    fn began(&self, deployment: DeploymentId) {
        let Some(e) = self.entry(deployment).filter(|e| e.counted) else { return };
        if e.flight_count.began() {
            self.link.wake_early();
        }
    }

    fn ended(&self, deployment: DeploymentId) {
        if let Some(e) = self.entry(deployment).filter(|e| e.counted) {
            e.flight_count.ended();
        }
    }

    fn cluster(&self, deployment: DeploymentId, limit: u32) -> Cluster {
        let Some(e) = self.entry(deployment).filter(|e| e.counted) else { return Cluster::Alone };
        let cap = unconfirmed_cap(limit, self.unconfirmed_share);
        e.flight_count.cluster(self.link.status(), self.link.policy, cap, |_, _| cap)
    }

    /// Synced from the next round on, which is asked for at once.
    fn add_gauge(&self, name: &str) -> Option<GaugeId> {
        let (id, added) = self.gauges.add(name)?;
        if added {
            self.link.wake_early();
        }
        Some(id)
    }

    fn retire_gauge(&self, gauge: GaugeId) {
        self.gauges.retire(gauge);
    }

    fn gauge_began(&self, gauge: GaugeId) {
        if self.gauges.began(gauge) {
            self.link.wake_early();
        }
    }

    fn gauge_ended(&self, gauge: GaugeId) {
        self.gauges.ended(gauge);
    }

    fn gauge_cluster(&self, gauge: GaugeId, limit: u32) -> Cluster {
        self.gauges.cluster(gauge, limit, self.unconfirmed_share, self.link.status(), self.link.policy)
    }
}

impl std::fmt::Debug for RedisSignals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSignals")
            .field("url", &self.url)
            .field("replica", &self.replica)
            .field("deployments", &self.board.len())
            .field("gauges", &self.gauges.len())
            .field("stats", &self.stats())
            .finish()
    }
}

impl Drop for RedisSignals {
    /// Stops the sync thread after one last round (within `call_timeout`): what is still in
    /// flight stays counted until its lease runs out. Does not wait for it.
    fn drop(&mut self) {
        self.link.stop();
    }
}

// === impl Entry ===

impl Entry {
    fn new(prefix: &str, spec: &SignalSpec, share: f64) -> Entry {
        Entry {
            signals: format!("{prefix}:signals:{}", spec.name),
            flight: format!("{prefix}:inflight:{}", spec.name),
            counted: spec.concurrency.is_some(),
            pending: Slot::new(Heard::default()),
            heard: Slot::new(Heard::default()),
            version: AtomicU64::new(0),
            flight_count: Flight::new(spec.concurrency.map_or(1, |l| unconfirmed_cap(l, share))),
        }
    }

    /// Takes in what Redis answered for a round that pushed `sent` and `counted`.
    fn answer(&self, sent: Heard, counted: (u64, u32), heard: Heard, others: u32) {
        {
            let mut pending = self.pending.lock();
            if *pending == sent {
                *pending = Heard::default();
            }
        }
        self.flight_count.answer(counted, others);
        let mut mine = self.heard.lock();
        if *mine != heard {
            *mine = heard;
            self.version.fetch_add(1, Ordering::AcqRel);
        }
    }
}

/// `"eat euntil rat cuntil others"`, as the script answers.
fn parse(text: &str) -> Result<(Heard, u32), String> {
    let bad = || format!("an answer that is not five integers: {text:?}");
    let mut numbers = text.split(' ').map(|n| n.parse::<i64>().map_err(|_| bad()));
    let mut next = || numbers.next().unwrap_or_else(|| Err(bad()));
    let heard = Heard { ejected_at: next()?, ejected_until: next()?, recovered_at: next()?, cooling_until: next()? };
    let others = u32::try_from(next()?.max(0)).unwrap_or(u32::MAX);
    Ok((heard, others))
}

// === impl Rounds ===

impl Exchange for Rounds {
    /// Pushes every deployment's unconfirmed signals and count, and takes in what Redis
    /// answers, chunk by chunk.
    async fn exchange(&mut self, conn: &mut ConnectionManager, timeout: Duration) -> Result<(), String> {
        if self.board.is_empty() && self.gauges.len() == 0 {
            return sync::ping(conn, timeout).await;
        }
        for chunk in self.board.chunks(CHUNK) {
            let mut call = self.script.prepare_invoke();
            call.arg(self.lease_ms).arg(&self.field).arg(self.keep_ms);
            let mut sent = Vec::with_capacity(chunk.len());
            for e in chunk {
                let pending = *e.pending.lock();
                let counted = e.flight_count.for_round();
                let count = if e.counted { i64::from(counted.1) } else { -1 };
                call.key(&e.signals).key(&e.flight);
                call.arg(pending.ejected_at).arg(pending.ejected_until).arg(pending.recovered_at);
                call.arg(pending.cooling_until).arg(count);
                sent.push((pending, counted));
            }
            let answers = sync::invoke(&call, conn, timeout, chunk.len()).await?;
            for ((e, (pending, counted)), text) in chunk.iter().zip(sent).zip(&answers) {
                let (heard, others) = parse(text)?;
                e.answer(pending, counted, heard, others);
            }
        }
        self.gauges.exchange(conn, timeout, &self.field, self.lease_ms).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_five_integers() {
        let heard = Heard { ejected_at: 1, ejected_until: 2, recovered_at: 3, cooling_until: 4 };
        assert_eq!(parse("1 2 3 4 5"), Ok((heard, 5)));
        assert_eq!(parse("0 0 0 0 -1").map(|(_, n)| n), Ok(0));
        assert!(parse("1 2 3 4").is_err());
        assert!(parse("1 2 3 4 x").is_err());
        assert!(parse("").is_err());
    }

    #[test]
    fn a_confirmed_round_clears_what_it_sent_only() {
        let e = Entry::new("p", &SignalSpec { name: "d".into(), concurrency: Some(40) }, 0.1);
        let first = Signal::Ejected { at: 10, until: 20 };
        e.pending.lock().record(first);
        let sent = *e.pending.lock();
        e.pending.lock().record(Signal::Cooling { until: 30 });
        let heard = Heard { ejected_at: 10, ejected_until: 20, ..Heard::default() };
        e.answer(sent, (3, 0), heard, 7);
        assert_eq!(e.pending.lock().cooling_until, 30, "what came since is pushed next round");
        assert_eq!(e.flight_count.others(), 7);
        assert_eq!(e.version.load(Ordering::SeqCst), 1);
        let again = *e.pending.lock();
        e.answer(again, (3, 0), heard, 7);
        assert_eq!(*e.pending.lock(), Heard::default());
        assert_eq!(e.version.load(Ordering::SeqCst), 1, "nothing new heard: the same version");
    }
}
