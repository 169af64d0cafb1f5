//! [`RedisCounters`]: the core's [`Counters`] seam over allowances shared through Redis,
//! answered from each allowance's local view and synced by a thread of its own.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use switchyard_core::Time;
use switchyard_core::config::SharedSettings;
use switchyard_core::counters::{Counters, LimitId, LimitSpec};
use tokio::sync::{Notify, watch};

use crate::SharedError;
use crate::sync::{self, Launch};
use crate::view::View;

/// What a replica does while Redis does not answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Keep limiting with the local view, which keeps refilling: every replica may then use
    /// the whole allowance by itself.
    FailOpen,
    /// Refuse everything a shared allowance covers until Redis answers again.
    FailClosed,
}

/// How [`RedisCounters`] syncs. Out-of-range values are brought into range (see each field).
#[derive(Clone, Debug)]
pub struct Settings {
    /// How often every allowance is pushed and read back. 1 ms to 60 s; 50 ms by default.
    pub sync_interval: Duration,
    pub policy: Policy,
    /// Use a replica may make that no answer from Redis reflects yet, as a share of each
    /// allowance: beyond it the replica refuses until the next answer. This is what bounds
    /// the overshoot (see the crate's docs). 0.001 to 1; 0.1 by default.
    pub unconfirmed_share: f64,
    /// Unconfirmed use past this share of an allowance pushes at once, before the interval
    /// is up. 0.001 to 1; 0.05 by default.
    pub push_share: f64,
    /// Each sync's time limit once running. 1 ms to 10 s; 250 ms by default.
    pub call_timeout: Duration,
    /// The first connection's time limit, and each reconnection attempt's. 1 ms to 60 s; 2 s by
    /// default.
    pub connect_timeout: Duration,
    /// How long Redis keeps an allowance nobody touches. At least 2 minutes (a bucket overdrawn
    /// by a whole minute's allowance takes that long to refill); 3 minutes by default.
    pub key_ttl: Duration,
}

/// Where the connection to Redis stands, for metrics (`as_str` is a bounded label).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    /// Started detached and no sync has finished yet.
    Connecting,
    /// The last sync was answered.
    Connected,
    /// The last sync was not answered: the [`Policy`] applies.
    Disconnected,
}

/// A snapshot for metrics and logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stats {
    pub status: Status,
    /// Syncs Redis answered.
    pub syncs: u64,
    /// Syncs it did not (refused, timed out, dropped, or an unexpected answer).
    pub sync_failures: u64,
}

/// Per-minute allowances shared with every replica that uses the same Redis and key prefix.
/// Calls answer at once from memory; a thread of its own syncs with Redis (see the crate's
/// docs for the protocol and the overshoot bound).
pub struct RedisCounters {
    shared: Arc<Shared>,
    url: String,
    replica: String,
}

/// What the callers and the sync thread share.
pub(crate) struct Shared {
    pub(crate) views: Box<[Slot]>,
    pub(crate) policy: Policy,
    unconfirmed_share: f64,
    push_share: f64,
    status: AtomicU8,
    syncs: AtomicU64,
    failures: AtomicU64,
    /// Rounds begun; the round whose number is this plus one takes after any call made now.
    pub(crate) started: AtomicU64,
    pub(crate) rounds: watch::Sender<Round>,
    /// Wakes the sync thread: a push due early, a flush, or the end.
    pub(crate) wake: Notify,
    /// An early push was asked for since the last round began.
    pub(crate) wake_armed: AtomicBool,
    pub(crate) stop: AtomicBool,
}

/// The last finished round.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Round {
    pub(crate) number: u64,
    pub(crate) ok: bool,
    /// The sync thread has ended: no round will follow.
    pub(crate) last: bool,
}

/// One allowance's view under its own lock, on its own cache line.
#[derive(Debug)]
#[repr(align(64))]
pub(crate) struct Slot(Mutex<View>);

// === impl Settings ===

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            sync_interval: Duration::from_millis(50),
            policy: Policy::FailOpen,
            unconfirmed_share: 0.1,
            push_share: 0.05,
            call_timeout: Duration::from_millis(250),
            connect_timeout: Duration::from_secs(2),
            key_ttl: Duration::from_secs(180),
        }
    }
}

impl Settings {
    /// The defaults, with the config's sync interval and failure policy.
    pub fn from_config(shared: &SharedSettings) -> Settings {
        let policy = if shared.fail_open { Policy::FailOpen } else { Policy::FailClosed };
        Settings { sync_interval: shared.sync, policy, ..Settings::default() }
    }

    /// Every field within its documented range.
    pub(crate) fn normalized(self) -> Settings {
        let share = |s: f64| if s.is_finite() { s.clamp(0.001, 1.0) } else { 0.1 };
        let ms = Duration::from_millis;
        Settings {
            sync_interval: self.sync_interval.clamp(ms(1), ms(60_000)),
            policy: self.policy,
            unconfirmed_share: share(self.unconfirmed_share),
            push_share: share(self.push_share),
            call_timeout: self.call_timeout.clamp(ms(1), ms(10_000)),
            connect_timeout: self.connect_timeout.clamp(ms(1), ms(60_000)),
            key_ttl: self.key_ttl.clamp(ms(120_000), ms(86_400_000)),
        }
    }
}

// === impl Status ===

impl Status {
    pub const ALL: [Status; 3] = [Status::Connecting, Status::Connected, Status::Disconnected];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Connecting => "connecting",
            Status::Connected => "connected",
            Status::Disconnected => "disconnected",
        }
    }

    fn from_u8(n: u8) -> Status {
        match n {
            1 => Status::Connected,
            2 => Status::Disconnected,
            _ => Status::Connecting,
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            Status::Connecting => 0,
            Status::Connected => 1,
            Status::Disconnected => 2,
        }
    }
}

// === impl RedisCounters ===

impl RedisCounters {
    /// Connects to Redis at `url`, reads every allowance once, and starts the sync thread.
    /// Fails within about `connect_timeout` with a [`SharedError`] naming the URL (without its
    /// password) when the URL is not a Redis URL or Redis does not answer. Keys are
    /// `{prefix}:limit:{name}`. Blocks the calling thread meanwhile: call it before the workers
    /// start (or from `spawn_blocking`).
    pub fn start(url: &str, prefix: &str, specs: &[LimitSpec], settings: Settings) -> Result<Arc<Self>, SharedError> {
        Self::launch(url, prefix, specs, settings, true)
    }

    /// Like [`RedisCounters::start`], but does not wait for Redis: it fails only on a URL that is
    /// not a Redis URL, and connects in the background. Until the first sync is answered the
    /// status is [`Status::Connecting`] and the policy applies (with `FailOpen`, each
    /// allowance starts full). For a replica that must come up without Redis.
    pub fn start_detached(
        url: &str,
        prefix: &str,
        specs: &[LimitSpec],
        settings: Settings,
    ) -> Result<Arc<Self>, SharedError> {
        Self::launch(url, prefix, specs, settings, false)
    }

    fn launch(
        url: &str,
        prefix: &str,
        specs: &[LimitSpec],
        settings: Settings,
        wait: bool,
    ) -> Result<Arc<Self>, SharedError> {
        let settings = settings.normalized();
        let shown = crate::redact_url(url);
        let replica = sync::replica_id();
        let shared = Arc::new(Shared::new(specs, &settings));
        let keys = specs
            .iter()
            .map(|s| (format!("{prefix}:limit:{}", s.name), format!("{prefix}:limit:{}:replica:{replica}", s.name)))
            .collect();
        let launch = Launch { url, shown: shown.clone(), keys, settings, wait };
        sync::spawn(launch, shared.clone())?;
        Ok(Arc::new(RedisCounters { shared, url: shown, replica }))
    }

    /// The URL, without its password.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// This replica's id in Redis keys, random per start.
    pub fn replica_id(&self) -> &str {
        &self.replica
    }

    pub fn status(&self) -> Status {
        self.shared.status()
    }

    /// Whether the last sync was answered.
    pub fn connected(&self) -> bool {
        self.status() == Status::Connected
    }

    pub fn policy(&self) -> Policy {
        self.shared.policy
    }

    pub fn stats(&self) -> Stats {
        Stats {
            status: self.status(),
            syncs: self.shared.syncs.load(Ordering::Relaxed),
            sync_failures: self.shared.failures.load(Ordering::Relaxed),
        }
    }

    /// What this replica sees left of an allowance now.
    pub fn level(&self, limit: LimitId, now: Time) -> Option<f64> {
        self.shared.views.get(limit.0 as usize).map(|s| s.lock().level(now))
    }

    /// Waits for a sync that begins after this call (asking for one at once): everything
    /// adjusted before it is then in Redis, if Redis answered. Errors when it did not.
    pub async fn flush(&self) -> Result<(), SharedError> {
        let mut rounds = self.shared.rounds.subscribe();
        let target = self.shared.started.load(Ordering::SeqCst) + 1;
        self.shared.wake.notify_one();
        loop {
            let round = *rounds.borrow_and_update();
            if round.number >= target {
                return match round.ok {
                    true => Ok(()),
                    false => Err(SharedError::Unavailable { url: self.url.clone() }),
                };
            }
            if round.last || rounds.changed().await.is_err() {
                return Err(SharedError::Stopped);
            }
        }
    }
}

impl Counters for RedisCounters {
    fn has_room(&self, limit: LimitId, amount: f64, now: Time) -> bool {
        let Some(slot) = self.shared.views.get(limit.0 as usize) else { return true };
        let status = self.status();
        let mut view = slot.lock();
        match (status, self.shared.policy) {
            (Status::Connected, _) => {
                let cap = self.shared.unconfirmed_share * view.per_minute();
                view.has_room(amount, now) && view.within_unconfirmed(amount, cap)
            }
            (Status::Connecting | Status::Disconnected, Policy::FailOpen) => view.has_room(amount, now),
            (Status::Connecting | Status::Disconnected, Policy::FailClosed) => false,
        }
    }

    fn adjust(&self, limit: LimitId, delta: f64, now: Time) {
        let Some(slot) = self.shared.views.get(limit.0 as usize) else { return };
        let due = {
            let mut view = slot.lock();
            view.adjust(delta, now);
            view.unconfirmed() >= self.shared.push_share * view.per_minute()
        };
        // Early pushes only while Redis answers: during an outage they would only retry faster.
        if due && self.connected() && !self.shared.wake_armed.swap(true, Ordering::AcqRel) {
            self.shared.wake.notify_one();
        }
    }
}

impl std::fmt::Debug for RedisCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCounters")
            .field("url", &self.url)
            .field("replica", &self.replica)
            .field("allowances", &self.shared.views.len())
            .field("stats", &self.stats())
            .finish()
    }
}

impl Drop for RedisCounters {
    /// Stops the sync thread after one last push (within `call_timeout`); does not wait for it.
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.wake.notify_one();
    }
}

// === impl Shared ===

impl Shared {
    fn new(specs: &[LimitSpec], settings: &Settings) -> Shared {
        Shared {
            views: specs.iter().map(|s| Slot(Mutex::new(View::new(s.per_minute)))).collect(),
            policy: settings.policy,
            unconfirmed_share: settings.unconfirmed_share,
            push_share: settings.push_share,
            status: AtomicU8::new(Status::Connecting.to_u8()),
            syncs: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            started: AtomicU64::new(0),
            rounds: watch::Sender::new(Round::default()),
            wake: Notify::new(),
            wake_armed: AtomicBool::new(false),
            stop: AtomicBool::new(false),
        }
    }

    pub(crate) fn status(&self) -> Status {
        Status::from_u8(self.status.load(Ordering::Acquire))
    }

    /// Books a finished round; returns the status before it.
    pub(crate) fn record(&self, number: u64, ok: bool) -> Status {
        let counter = if ok { &self.syncs } else { &self.failures };
        counter.fetch_add(1, Ordering::Relaxed);
        let next = if ok { Status::Connected } else { Status::Disconnected };
        let before = Status::from_u8(self.status.swap(next.to_u8(), Ordering::AcqRel));
        self.rounds.send_replace(Round { number, ok, last: false });
        before
    }

    /// The sync thread has ended.
    pub(crate) fn finish(&self) {
        self.rounds.send_modify(|r| r.last = true);
    }
}

// === impl Slot ===

impl Slot {
    /// The view, locked; a panic elsewhere while it was held does not poison routing.
    pub(crate) fn lock(&self) -> MutexGuard<'_, View> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
