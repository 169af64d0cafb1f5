//! [`RedisWindows`]: the core's [`Counters`] seam over tenants' daily and monthly dollar
//! budgets shared through Redis, answered from each budget's local view and synced by a thread
//! of its own.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::Script;
use redis::aio::ConnectionManager;
use switchyard_core::Time;
use switchyard_core::counters::{Counters, LimitId};
use switchyard_core::tenancy::{BudgetSpec, Calendar, Period, window_of};

use crate::SharedError;
use crate::budget::BudgetView;
use crate::settings::{Policy, Settings, Stats, Status};
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
    calendar: Calendar,
    unconfirmed_share: f64,
    push_share: f64,
    url: String,
    replica: String,
}

/// What the callers and the sync thread share.
struct Books {
    budgets: Box<[Budget]>,
    /// The wall-clock time (Unix ms) at which a caller last moved a budget into a new window;
    /// `i64::MIN` before any call. The sync thread reads the windows it falls in.
    latest: AtomicI64,
}

/// One budget: its period, its keys' common stem, and its view.
struct Budget {
    period: Period,
    /// `{prefix}:budget:{name}`: a window's key adds `:{window}`.
    stem: String,
    view: Slot<BudgetView>,
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
        let budgets = specs
            .iter()
            .map(|s| Budget {
                period: s.period,
                stem: format!("{prefix}:budget:{}", s.name),
                view: Slot::new(BudgetView::new(s.usd)),
            })
            .collect();
        let books = Arc::new(Books { budgets, latest: AtomicI64::new(i64::MIN) });
        let field = format!("replica:{replica}");
        let exchange = Windows { books: books.clone(), script: Script::new(WINDOW_LUA), field };
        let windows = RedisWindows {
            link: link.clone(),
            books,
            calendar,
            unconfirmed_share: settings.unconfirmed_share,
            push_share: settings.push_share,
            url: shown.clone(),
            replica,
        };
        let launch = Launch { url, shown, settings, wait, thread: "switchyard-redis-budgets", what: "shared budgets" };
        sync::spawn(launch, link, exchange)?;
        Ok(Arc::new(windows))
    }

    /// The URL, without its password.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// This replica's id in Redis (a field of each window's hash), random per start.
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
    fn guess(&self) -> i64 {
        match self.books.latest.load(Ordering::Acquire) {
            i64::MIN => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
            latest => latest,
        }
    }
}

impl Exchange for Windows {
    /// Pushes every budget's current window (and the previous one, while it holds something
    /// unacknowledged) and installs what Redis answers, a chunk of budgets per call.
    async fn exchange(&mut self, conn: &mut ConnectionManager, timeout: Duration) -> Result<(), String> {
        let budgets = &self.books.budgets;
        if budgets.is_empty() {
            return sync::ping(conn, timeout).await;
        }
        let guess = self.guess();
        // Each budget pushes at most two windows.
        for start in (0..budgets.len()).step_by(CHUNK / 2) {
            let end = (start + CHUNK / 2).min(budgets.len());
            let mut call = self.script.prepare_invoke();
            call.arg(&self.field);
            let mut pushed: Vec<(usize, i64)> = Vec::with_capacity(2 * (end - start));
            for (i, b) in budgets.iter().enumerate().take(end).skip(start) {
                let ttl_ms = match b.period {
                    Period::Day => DAY_TTL_MS,
                    Period::Month => MONTH_TTL_MS,
                };
                let mut view = b.view.lock();
                view.follow(window_of(b.period, guess));
                for window in view.pushes() {
                    let Some((total, floor)) = view.take(window) else { continue };
                    call.key(format!("{}:{window}", b.stem)).arg(ttl_ms).arg(total);
                    match floor {
                        Some(floor) => call.arg(floor),
                        None => call.arg(""),
                    };
                    pushed.push((i, window));
                }
            }
            if pushed.is_empty() {
                continue;
            }
            let answers = sync::invoke(&call, conn, timeout, pushed.len()).await?;
            for ((i, window), text) in pushed.into_iter().zip(&answers) {
                let used = sync::number(text)?;
                budgets[i].view.lock().answer(window, used);
            }
        }
        Ok(())
    }
}
