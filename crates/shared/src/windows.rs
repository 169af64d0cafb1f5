//! [`RedisWindows`]: the core's [`Counters`] seam over tenants' (and managed keys') daily and
//! monthly dollar budgets shared through Redis, answered from each budget's local view and
//! synced by a thread of its own. Budgets made after start (a key's) are added by name
//! ([`Counters::add_budget`]) and synced from the next round on.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::Script;
use redis::aio::ConnectionManager;
use switchyard_core::Time;
use switchyard_core::counters::{Counters, Grow, LimitId, add_named, index_id};
use switchyard_core::tenancy::{BudgetSpec, Calendar, Period, window_of};

use crate::SharedError;
use crate::budget::BudgetView;
use crate::settings::{Policy, Settings, Stats, Status};
use crate::sync::link_accessors;
use crate::sync::{self, CHUNK, Exchange, Launch, Link};
use crate::view::Slot;

/// The script every push runs (see the file for its contract).
const WINDOW_LUA: &str = include_str!("window.lua");

/// How long Redis keeps a window after its last change: a little longer than the window.
const DAY_TTL_MS: u64 = 2 * 86_400_000;
const MONTH_TTL_MS: u64 = 32 * 86_400_000;

/// Daily and monthly budgets shared with every replica that uses the same Redis and key prefix.
/// Calls answer at once from memory; a thread of its own syncs with Redis (see the crate's docs
/// for the protocol and the overshoot bound).
pub struct RedisWindows {
    link: Arc<Link>,
    books: Arc<Books>,
    /// Budgets by name (those given at start and those added since).
    names: Mutex<HashMap<String, LimitId>>,
    prefix: String,
    calendar: Calendar,
    unconfirmed_share: f64,
    push_share: f64,
    url: String,
    replica: String,
}

/// What the callers and the sync thread share.
struct Books {
    budgets: Grow<Budget>,
    /// The wall-clock time (Unix ms) at which a caller last moved a budget into a new window;
    /// `i64::MIN` before any call. The sync thread reads the windows it falls in.
    latest: AtomicI64,
}

/// One budget: its period, its keys' common stem, its view, and whether it is in use (one
/// retired, a revoked key's, is no longer synced).
struct Budget {
    period: Period,
    /// `{prefix}:budget:{name}`: a window's key adds `:{window}`.
    stem: String,
    view: Slot<BudgetView>,
    live: AtomicBool,
}

/// The sync thread's side: every budget's windows, pushed through `window.lua`.
struct Windows {
    books: Arc<Books>,
    script: Script,
    /// This replica's field in each window's hash.
    field: String,
}

// === impl RedisWindows ===

impl RedisWindows {
    /// Connects to Redis at `url`, reads every budget's current window (by the system clock)
    /// once, and starts the sync thread. Fails within about `connect_timeout` with a
    /// [`SharedError`] naming the URL (without its password) when the URL is not a Redis URL or
    /// Redis does not answer. Keys are `{prefix}:budget:{name}:{window}`, the window numbered as
    /// [`window_of`] does. Blocks the calling thread meanwhile: call it before the workers start
    /// (or from `spawn_blocking`). `settings.key_ttl` does not apply (see [`Settings`]).
    pub fn start(
        url: &str,
        prefix: &str,
        specs: &[BudgetSpec],
        calendar: Calendar,
        settings: Settings,
    ) -> Result<Arc<Self>, SharedError> {
        Self::launch(url, prefix, specs, calendar, settings, true)
    }

    /// Like [`RedisWindows::start`], but does not wait for Redis: it fails only on a URL that is
    /// not a Redis URL, and connects in the background. Until the first sync is answered the
    /// status is [`Status::Connecting`] and the policy applies (with `FailOpen`, each budget
    /// counts only this replica's use). For a replica that must come up without Redis.
    pub fn start_detached(
        url: &str,
        prefix: &str,
        specs: &[BudgetSpec],
        calendar: Calendar,
        settings: Settings,
    ) -> Result<Arc<Self>, SharedError> {
        Self::launch(url, prefix, specs, calendar, settings, false)
    }

    fn launch(
        url: &str,
        prefix: &str,
        specs: &[BudgetSpec],
        calendar: Calendar,
        settings: Settings,
        wait: bool,
    ) -> Result<Arc<Self>, SharedError> {
        let settings = settings.normalized();
        let shown = crate::redact_url(url);
        let replica = sync::replica_id();
        let link = Arc::new(Link::new(settings.policy));
        let budgets = Grow::new(specs.iter().map(|s| Budget::new(prefix, s)));
        let names = specs.iter().enumerate().filter_map(|(i, s)| Some((s.name.clone(), index_id(i)?))).collect();
        let books = Arc::new(Books { budgets, latest: AtomicI64::new(i64::MIN) });
        let field = format!("replica:{replica}");
        let exchange = Windows { books: books.clone(), script: Script::new(WINDOW_LUA), field };
        let windows = RedisWindows {
            link: link.clone(),
            books,
            names: Mutex::new(names),
            prefix: prefix.to_owned(),
            calendar,
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
            thread: "switchyard-redis-budgets",
            what: "shared budgets",
            meanwhile: sync::limiting,
        };
        sync::spawn(launch, link, exchange)?;
        Ok(Arc::new(windows))
    }

    link_accessors!("a field of each window's hash");

    /// Dollars this replica sees used in the budget's window at `now`: what Redis last said
    /// plus what this replica used since. Zero for a window it does not keep, or no budget.
    /// Like every call, it tells the view that callers are at `now` (a later window is read
    /// at once).
    pub fn used(&self, budget: LimitId, now: Time) -> f64 {
        let Some(b) = self.books.budgets.get(budget.0 as usize) else { return 0.0 };
        let unix_ms = self.calendar.unix_ms(now);
        let window = window_of(b.period, unix_ms);
        let (used, moved) = {
            let mut view = b.view.lock();
            let moved = view.touch(window);
            (view.used(window), moved)
        };
        if moved {
            self.moved(unix_ms);
        }
        used
    }

    /// Counts spend recorded before this start (the ledger's, for the window at `now`) as a
    /// floor: the window's use becomes at least `usd` plus what replicas push after this
    /// (never `usd` once per replica, as an `adjust` by every replica would). For a cluster,
    /// call this instead of the core's `Tenancy::preload`.
    pub fn preload(&self, budget: LimitId, usd: f64, now: Time) {
        let Some(b) = self.books.budgets.get(budget.0 as usize) else { return };
        let unix_ms = self.calendar.unix_ms(now);
        let window = window_of(b.period, unix_ms);
        let moved = {
            let mut view = b.view.lock();
            let moved = view.touch(window);
            view.preload(window, usd);
            moved
        };
        if moved {
            self.books.latest.fetch_max(unix_ms, Ordering::AcqRel);
        }
        self.link.wake_early();
    }

    /// Waits for a sync that begins after this call (asking for one at once): everything
    /// adjusted before it is then in Redis, if Redis answered. Errors when it did not.
    pub async fn flush(&self) -> Result<(), SharedError> {
        self.link.flush(&self.url).await
    }

    /// A caller moved a budget into a new window at `unix_ms`: the sync thread reads it now.
    fn moved(&self, unix_ms: i64) {
        self.books.latest.fetch_max(unix_ms, Ordering::AcqRel);
        self.link.wake_early();
    }
}

impl Counters for RedisWindows {
    /// Whether `usd` more fits in the budget's window at `now`: used there (as Redis last
    /// said, plus this replica's use since) plus `usd` within the budget, and, while Redis
    /// answers, this replica's unconfirmed use within its share.
    fn has_room(&self, budget: LimitId, usd: f64, now: Time) -> bool {
        let Some(b) = self.books.budgets.get(budget.0 as usize) else { return true };
        let unix_ms = self.calendar.unix_ms(now);
        let window = window_of(b.period, unix_ms);
        let status = self.status();
        let (room, moved) = {
            let mut view = b.view.lock();
            let moved = view.touch(window);
            let room = match (status, self.link.policy) {
                (Status::Connected, _) => {
                    let cap = self.unconfirmed_share * view.usd();
                    view.has_room(window, usd) && view.within_unconfirmed(window, usd, cap)
                }
                (Status::Connecting | Status::Disconnected, Policy::FailOpen) => view.has_room(window, usd),
                (Status::Connecting | Status::Disconnected, Policy::FailClosed) => false,
            };
            (room, moved)
        };
        if moved {
            self.moved(unix_ms);
        }
        room
    }

    /// Taken (negative) or given back in the window `at` falls in, which is pushed to that
    /// window's key; a change to a window older than the previous one is dropped.
    fn adjust(&self, budget: LimitId, delta: f64, at: Time) {
        let Some(b) = self.books.budgets.get(budget.0 as usize) else { return };
        let unix_ms = self.calendar.unix_ms(at);
        let window = window_of(b.period, unix_ms);
        let (moved, due) = {
            let mut view = b.view.lock();
            let moved = view.touch(window);
            view.adjust(window, delta);
            (moved, view.unconfirmed(window) >= self.push_share * view.usd())
        };
        if moved {
            self.moved(unix_ms);
        } else if due {
            self.link.wake_early();
        }
    }

    /// The ledger's spend as a minimum for the window: every replica brings the same figure,
    /// and it counts once.
    fn preload(&self, budget: LimitId, usd: f64, now: Time) {
        RedisWindows::preload(self, budget, usd, now);
    }

    fn remaining(&self, budget: LimitId, now: Time) -> Option<f64> {
        let b = self.books.budgets.get(budget.0 as usize)?;
        let total = b.view.lock().usd();
        Some(total - self.used(budget, now))
    }

    /// Adds a budget made at run time (`{prefix}:budget:{name}:{window}` in Redis, as any
    /// other), or finds the one of that name with `spec`'s dollars; the sync thread reads it at
    /// once. Until Redis answers for it, its window counts as unused here and this replica's
    /// use there is unconfirmed, under the same cap as any budget's (the bound is unchanged).
    fn add_budget(&self, spec: &BudgetSpec) -> Option<LimitId> {
        let mut added = false;
        let id = add_named(&self.names, &spec.name, |found| match found {
            Some(id) => {
                let budget = self.books.budgets.get(id.0 as usize).filter(|b| b.period == spec.period)?;
                budget.view.lock().set_usd(spec.usd);
                budget.live.store(true, Ordering::Release);
                Some(id)
            }
            None => {
                added = true;
                self.books.budgets.push(Budget::new(&self.prefix, spec)).and_then(index_id)
            }
        })?;
        if added {
            self.link.wake_early();
        }
        Some(id)
    }

    /// Stops syncing a budget no longer used (its key was revoked); adding it again resumes.
    fn retire(&self, budget: LimitId) {
        if let Some(b) = self.books.budgets.get(budget.0 as usize) {
            b.live.store(false, Ordering::Release);
        }
    }
}

// === impl Budget ===

impl Budget {
    fn new(prefix: &str, spec: &BudgetSpec) -> Budget {
        Budget {
            period: spec.period,
            stem: format!("{prefix}:budget:{}", spec.name),
            view: Slot::new(BudgetView::new(spec.usd)),
            live: AtomicBool::new(true),
        }
    }
}

impl std::fmt::Debug for RedisWindows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisWindows")
            .field("url", &self.url)
            .field("replica", &self.replica)
            .field("budgets", &self.books.budgets.len())
            .field("stats", &self.stats())
            .finish()
    }
}

impl Drop for RedisWindows {
    /// Stops the sync thread after one last push (within `call_timeout`); does not wait for it.
    fn drop(&mut self) {
        self.link.stop();
    }
}

// === impl Windows ===

impl Windows {
    /// The wall-clock time whose windows callers are in, as far as this thread can tell.
    /// And whether it came from callers (else from the system clock: no caller moved yet).
    fn guess(&self) -> (i64, bool) {
        match self.books.latest.load(Ordering::Acquire) {
            i64::MIN => (
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
                false,
            ),
            latest => (latest, true),
        }
    }
}

impl Exchange for Windows {
    /// Pushes every live budget's current window (and the previous one, while it holds
    /// something unacknowledged) and installs what Redis answers, a chunk of budgets per call.
    /// Budgets added while a round runs are in the next one.
    async fn exchange(&mut self, conn: &mut ConnectionManager, timeout: Duration) -> Result<(), String> {
        let budgets: Vec<&Budget> =
            self.books.budgets.iter().map(|(_, b)| b).filter(|b| b.live.load(Ordering::Acquire)).collect();
        if budgets.is_empty() {
            return sync::ping(conn, timeout).await;
        }
        let (guess, from_callers) = self.guess();
        // Each budget pushes at most two windows.
        for chunk in budgets.chunks(CHUNK / 2) {
            let mut call = self.script.prepare_invoke();
            call.arg(&self.field);
            let mut pushed: Vec<(&Budget, i64)> = Vec::with_capacity(2 * chunk.len());
            for b in chunk {
                let ttl_ms = match b.period {
                    Period::Day => DAY_TTL_MS,
                    Period::Month => MONTH_TTL_MS,
                };
                let mut view = b.view.lock();
                view.follow(window_of(b.period, guess), from_callers);
                for window in view.pushes() {
                    let Some((total, floor)) = view.take(window) else { continue };
                    call.key(format!("{}:{window}", b.stem)).arg(ttl_ms).arg(total);
                    match floor {
                        Some(floor) => call.arg(floor),
                        None => call.arg(""),
                    };
                    pushed.push((b, window));
                }
            }
            if pushed.is_empty() {
                continue;
            }
            let answers = sync::invoke(&call, conn, timeout, pushed.len()).await?;
            for ((b, window), text) in pushed.into_iter().zip(&answers) {
                let used = sync::number(text)?;
                b.view.lock().answer(window, used);
            }
        }
        Ok(())
    }
}
