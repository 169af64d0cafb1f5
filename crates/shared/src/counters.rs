//! [`RedisCounters`]: the core's [`Counters`] seam over allowances shared through Redis,
//! answered from each allowance's local view and synced by a thread of its own. Allowances made
//! after start (a managed key's) are added by name ([`Counters::add_limit`]) to the same table
//! the sync thread walks, and synced from its next round on.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::Script;
use redis::aio::ConnectionManager;
use switchyard_core::Time;
use switchyard_core::counters::{Counters, Grow, LimitId, LimitSpec, add_named, index_id};

use crate::SharedError;
use crate::settings::{Policy, Settings, Stats, Status};
use crate::sync::link_accessors;
use crate::sync::{self, CHUNK, Exchange, Launch, Link};
use crate::view::{Slot, View};

/// The script every push runs (see the file for its contract).
const BUCKET_LUA: &str = include_str!("bucket.lua");

/// Per-minute allowances shared with every replica that uses the same Redis and key prefix.
/// Calls answer at once from memory; a thread of its own syncs with Redis (see the crate's
/// docs for the protocol and the overshoot bound).
pub struct RedisCounters {
    link: Arc<Link>,
    table: Arc<Table>,
    /// Allowances by name (those given at start and those added since).
    names: Mutex<HashMap<String, LimitId>>,
    prefix: String,
    unconfirmed_share: f64,
    push_share: f64,
    url: String,
    replica: String,
}

/// Every allowance: what callers and the sync thread share.
type Table = Grow<Allowance>;

/// One allowance: its view, its bucket's key and this replica's total's key, and whether it is
/// in use (one retired, a revoked key's, is no longer synced).
struct Allowance {
    view: Slot<View>,
    bucket: String,
    mine: String,
    live: AtomicBool,
}

/// The sync thread's side: every live allowance, pushed through `bucket.lua`.
struct Buckets {
    table: Arc<Table>,
    script: Script,
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
        let table: Arc<Table> = Arc::new(Grow::new(specs.iter().map(|s| Allowance::new(prefix, &replica, s))));
        let names = specs.iter().enumerate().filter_map(|(i, s)| Some((s.name.clone(), index_id(i)?))).collect();
        let ttl_ms = u64::try_from(settings.key_ttl.as_millis()).unwrap_or(u64::MAX);
        let buckets = Buckets { table: table.clone(), script: Script::new(BUCKET_LUA), ttl_ms };
        let counters = RedisCounters {
            link: link.clone(),
            table,
            names: Mutex::new(names),
            prefix: prefix.to_owned(),
            unconfirmed_share: settings.unconfirmed_share,
            push_share: settings.push_share,
            url: shown.clone(),
            replica,
        };
        let launch = Launch {
            url,
            shown,
            settings,
            wait,
            thread: "switchyard-redis-sync",
            what: "shared counters",
            meanwhile: sync::limiting,
        };
        sync::spawn(launch, link, buckets)?;
        Ok(Arc::new(counters))
    }

    link_accessors!("its keys");

    /// What this replica sees left of an allowance now.
    pub fn level(&self, limit: LimitId, now: Time) -> Option<f64> {
        self.view(limit).map(|s| s.lock().level(now))
    }

    fn view(&self, limit: LimitId) -> Option<&Slot<View>> {
        self.table.get(limit.0 as usize).map(|a| &a.view)
    }

    /// Waits for a sync that begins after this call (asking for one at once): everything
    /// adjusted before it is then in Redis, if Redis answered. Errors when it did not.
    pub async fn flush(&self) -> Result<(), SharedError> {
        self.link.flush(&self.url).await
    }
}

impl Counters for RedisCounters {
    fn has_room(&self, limit: LimitId, amount: f64, now: Time) -> bool {
        let Some(slot) = self.view(limit) else { return true };
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
        let Some(slot) = self.view(limit) else { return };
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

    /// Adds an allowance made at run time (`{prefix}:limit:{name}` in Redis, as any other), or
    /// finds the one of that name with `spec`'s size; the sync thread reads it at once. Until
    /// Redis answers for it, this replica's view starts full and its use is unconfirmed, held
    /// to the same share as any other allowance's (so the overshoot bound is unchanged).
    fn add_limit(&self, spec: &LimitSpec, _now: Time) -> Option<LimitId> {
        let mut added = false;
        let id = add_named(&self.names, &spec.name, |found| match found {
            Some(id) => {
                let allowance = self.table.get(id.0 as usize)?;
                allowance.view.lock().resize(spec.per_minute);
                allowance.live.store(true, Ordering::Release);
                Some(id)
            }
            None => {
                added = true;
                self.table.push(Allowance::new(&self.prefix, &self.replica, spec)).and_then(index_id)
            }
        })?;
        if added {
            self.link.wake_early();
        }
        Some(id)
    }

    /// Stops syncing an allowance no longer used (its key was revoked); adding it again
    /// resumes, from the totals it had.
    fn retire(&self, limit: LimitId) {
        if let Some(allowance) = self.table.get(limit.0 as usize) {
            allowance.live.store(false, Ordering::Release);
        }
    }
}

// === impl Allowance ===

impl Allowance {
    fn new(prefix: &str, replica: &str, spec: &LimitSpec) -> Allowance {
        Allowance {
            view: Slot::new(View::new(spec.per_minute)),
            bucket: format!("{prefix}:limit:{}", spec.name),
            mine: format!("{prefix}:limit:{}:replica:{replica}", spec.name),
            live: AtomicBool::new(true),
        }
    }
}

impl std::fmt::Debug for RedisCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCounters")
            .field("url", &self.url)
            .field("replica", &self.replica)
            .field("allowances", &self.table.len())
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
    /// Pushes every live allowance's total and installs the levels Redis answers, chunk by
    /// chunk. Allowances added while a round runs are in the next one.
    async fn exchange(&mut self, conn: &mut ConnectionManager, timeout: Duration) -> Result<(), String> {
        let live: Vec<&Allowance> =
            self.table.iter().map(|(_, a)| a).filter(|a| a.live.load(Ordering::Acquire)).collect();
        if live.is_empty() {
            return sync::ping(conn, timeout).await;
        }
        for chunk in live.chunks(CHUNK) {
            let mut call = self.script.prepare_invoke();
            call.arg(self.ttl_ms);
            for allowance in chunk {
                let (per_minute, (acked, total)) = {
                    let mut view = allowance.view.lock();
                    (view.per_minute(), view.take())
                };
                call.key(&allowance.bucket).key(&allowance.mine).arg(per_minute).arg(acked).arg(total);
            }
            let levels = sync::invoke(&call, conn, timeout, chunk.len()).await?;
            for (allowance, text) in chunk.iter().zip(&levels) {
                let level = sync::number(text)?;
                allowance.view.lock().answer(level);
            }
        }
        Ok(())
    }
}
