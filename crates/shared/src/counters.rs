//! [`RedisCounters`]: the core's [`Counters`] seam over allowances shared through Redis,
//! answered from each allowance's local view and synced by a thread of its own.

use std::sync::Arc;
use std::time::Duration;

use redis::Script;
use redis::aio::ConnectionManager;
use switchyard_core::Time;
use switchyard_core::counters::{Counters, LimitId, LimitSpec};

use crate::SharedError;
use crate::settings::{Policy, Settings, Stats, Status};
use crate::sync::{self, CHUNK, Exchange, Launch, Link};
use crate::view::{Slot, View};

/// The script every push runs (see the file for its contract).
const BUCKET_LUA: &str = include_str!("bucket.lua");

/// Per-minute allowances shared with every replica that uses the same Redis and key prefix.
/// Calls answer at once from memory; a thread of its own syncs with Redis (see the crate's
/// docs for the protocol and the overshoot bound).
pub struct RedisCounters {
    link: Arc<Link>,
    views: Arc<[Slot<View>]>,
    unconfirmed_share: f64,
    push_share: f64,
    url: String,
    replica: String,
}

/// The sync thread's side: every allowance's keys, pushed through `bucket.lua`.
struct Buckets {
    views: Arc<[Slot<View>]>,
    script: Script,
    /// Per allowance: its bucket's key and this replica's total's key.
    keys: Vec<(String, String)>,
    ttl_ms: u64,
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
        let link = Arc::new(Link::new(settings.policy));
        let views: Arc<[Slot<View>]> = specs.iter().map(|s| Slot::new(View::new(s.per_minute))).collect();
        let keys = specs
            .iter()
            .map(|s| (format!("{prefix}:limit:{}", s.name), format!("{prefix}:limit:{}:replica:{replica}", s.name)))
            .collect();
        let ttl_ms = u64::try_from(settings.key_ttl.as_millis()).unwrap_or(u64::MAX);
        let buckets = Buckets { views: views.clone(), script: Script::new(BUCKET_LUA), keys, ttl_ms };
        let counters = RedisCounters {
            link: link.clone(),
            views,
            unconfirmed_share: settings.unconfirmed_share,
            push_share: settings.push_share,
            url: shown.clone(),
            replica,
        };
        let launch = Launch { url, shown, settings, wait, thread: "switchyard-redis-sync", what: "shared counters" };
        sync::spawn(launch, link, buckets)?;
        Ok(Arc::new(counters))
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
        self.link.status()
    }

    /// Whether the last sync was answered.
    pub fn connected(&self) -> bool {
        self.status() == Status::Connected
    }

    pub fn policy(&self) -> Policy {
        self.link.policy
    }

    pub fn stats(&self) -> Stats {
        self.link.stats()
    }

    /// What this replica sees left of an allowance now.
    pub fn level(&self, limit: LimitId, now: Time) -> Option<f64> {
        self.views.get(limit.0 as usize).map(|s| s.lock().level(now))
    }

    /// Waits for a sync that begins after this call (asking for one at once): everything
    /// adjusted before it is then in Redis, if Redis answered. Errors when it did not.
    pub async fn flush(&self) -> Result<(), SharedError> {
        self.link.flush(&self.url).await
    }
}

impl Counters for RedisCounters {
    fn has_room(&self, limit: LimitId, amount: f64, now: Time) -> bool {
        let Some(slot) = self.views.get(limit.0 as usize) else { return true };
        let status = self.status();
        let mut view = slot.lock();
        match (status, self.link.policy) {
            (Status::Connected, _) => {
                let cap = self.unconfirmed_share * view.per_minute();
                view.has_room(amount, now) && view.within_unconfirmed(amount, cap)
            }
            (Status::Connecting | Status::Disconnected, Policy::FailOpen) => view.has_room(amount, now),
            (Status::Connecting | Status::Disconnected, Policy::FailClosed) => false,
        }
    }

    fn adjust(&self, limit: LimitId, delta: f64, now: Time) {
        let Some(slot) = self.views.get(limit.0 as usize) else { return };
        let due = {
            let mut view = slot.lock();
            view.adjust(delta, now);
            view.unconfirmed() >= self.push_share * view.per_minute()
        };
        if due {
            self.link.wake_early();
        }
    }

    fn remaining(&self, limit: LimitId, now: Time) -> Option<f64> {
        self.level(limit, now)
    }
}

impl std::fmt::Debug for RedisCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCounters")
            .field("url", &self.url)
            .field("replica", &self.replica)
            .field("allowances", &self.views.len())
            .field("stats", &self.stats())
            .finish()
    }
}

impl Drop for RedisCounters {
    /// Stops the sync thread after one last push (within `call_timeout`); does not wait for it.
    fn drop(&mut self) {
        self.link.stop();
    }
}

// === impl Buckets ===

impl Exchange for Buckets {
    /// Pushes every allowance's total and installs the levels Redis answers, chunk by chunk.
    async fn exchange(&mut self, conn: &mut ConnectionManager, timeout: Duration) -> Result<(), String> {
        let n = self.keys.len();
        if n == 0 {
            return sync::ping(conn, timeout).await;
        }
        for start in (0..n).step_by(CHUNK) {
            let end = (start + CHUNK).min(n);
            let mut call = self.script.prepare_invoke();
            call.arg(self.ttl_ms);
            for (slot, (bucket, mine)) in self.views[start..end].iter().zip(&self.keys[start..end]) {
                let (per_minute, (acked, total)) = {
                    let mut view = slot.lock();
                    (view.per_minute(), view.take())
                };
                call.key(bucket).key(mine).arg(per_minute).arg(acked).arg(total);
            }
            let levels = sync::invoke(&call, conn, timeout, end - start).await?;
            for (slot, text) in self.views[start..end].iter().zip(&levels) {
                let level = sync::number(text)?;
                slot.lock().answer(level);
            }
        }
        Ok(())
    }
}
