//! What every shared store takes and reports: the [`Settings`], the failure [`Policy`], and the
//! connection's [`Status`] and [`Stats`].

use std::time::Duration;

use switchyard_core::config::SharedSettings;

/// What a replica does while Redis does not answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Keep limiting with the local view (which keeps refilling, for an allowance): every
    /// replica may then use the whole allowance or budget by itself.
    FailOpen,
    /// Refuse everything a shared allowance or budget covers until Redis answers again.
    FailClosed,
}

/// How [`RedisCounters`](crate::RedisCounters), [`RedisWindows`](crate::RedisWindows) and
/// [`RedisSignals`](crate::RedisSignals) sync.
/// Out-of-range values are brought into range (see each field).
#[derive(Clone, Debug)]
pub struct Settings {
    /// How often every allowance (or budget) is pushed and read back. 1 ms to 60 s; 50 ms by
    /// default.
    pub sync_interval: Duration,
    pub policy: Policy,
    /// Use a replica may make that no answer from Redis reflects yet, as a share of each
    /// allowance (or budget): beyond it the replica refuses until the next answer. This is what
    /// bounds the overshoot (see the crate's docs). 0.001 to 1; 0.1 by default.
    pub unconfirmed_share: f64,
    /// Unconfirmed use past this share of an allowance (or budget) pushes at once, before the
    /// interval is up. 0.001 to 1; 0.05 by default.
    pub push_share: f64,
    /// Each sync's time limit once running. 1 ms to 10 s; 250 ms by default.
    pub call_timeout: Duration,
    /// The first connection's time limit, and each reconnection attempt's. 1 ms to 60 s; 2 s by
    /// default.
    pub connect_timeout: Duration,
    /// How long Redis keeps an allowance nobody touches. At least 2 minutes (a bucket overdrawn
    /// by a whole minute's allowance takes that long to refill); 3 minutes by default. Budget
    /// windows do not use it: a day's is kept 2 days, a month's 32, after its last change.
    /// Deployment signals ([`RedisSignals`](crate::RedisSignals)) are kept this long after the
    /// latest instant they hold.
    pub key_ttl: Duration,
    /// How long a replica's count of attempts in flight on a deployment (or of a tenant's or
    /// key's requests in progress), and its presence among the replicas alive, stand in Redis
    /// unless renewed (every round renews them), so that a replica that died, or lost Redis,
    /// stops counting. 200 ms to 60 s, and at least four sync intervals plus two call timeouts;
    /// 2 s by default. Only [`RedisSignals`](crate::RedisSignals) uses it.
    pub lease: Duration,
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
            lease: Duration::from_secs(2),
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
        let sync_interval = self.sync_interval.clamp(ms(1), ms(60_000));
        let call_timeout = self.call_timeout.clamp(ms(1), ms(10_000));
        Settings {
            sync_interval,
            policy: self.policy,
            unconfirmed_share: share(self.unconfirmed_share),
            push_share: share(self.push_share),
            call_timeout,
            connect_timeout: self.connect_timeout.clamp(ms(1), ms(60_000)),
            key_ttl: self.key_ttl.clamp(ms(120_000), ms(86_400_000)),
            lease: self.lease.clamp(ms(200), ms(60_000)).max(sync_interval * 4 + call_timeout * 2),
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

    pub(crate) fn from_u8(n: u8) -> Status {
        match n {
            1 => Status::Connected,
            2 => Status::Disconnected,
            _ => Status::Connecting,
        }
    }

    pub(crate) fn to_u8(self) -> u8 {
        match self {
            Status::Connecting => 0,
            Status::Connected => 1,
            Status::Disconnected => 2,
        }
    }
}
