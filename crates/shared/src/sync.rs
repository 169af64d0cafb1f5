//! The sync thread, whichever store it serves: its own current-thread tokio runtime, one
//! `ConnectionManager`, and a loop that runs the store's [`Exchange`] with Redis each round;
//! and the [`Link`] the store's callers share with that thread (status, counts, wake-ups,
//! flushes).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis::ScriptInvocation;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::{Notify, watch};
use tokio::time::MissedTickBehavior;

use crate::SharedError;
use crate::settings::{Policy, Settings, Stats, Status};

/// Entries per script call: a round over thousands of allowances or windows is several short
/// calls, so that no one call holds Redis for long.
pub(crate) const CHUNK: usize = 128;

/// One store's part of a round.
pub(crate) trait Exchange {
    /// Pushes what changed since the last round and installs what Redis answers; stops at the
    /// first call that fails, with the reason. Each call is bounded by `timeout`.
    async fn exchange(&mut self, conn: &mut ConnectionManager, timeout: Duration) -> Result<(), String>;
}

/// What a store's callers, its handle and its sync thread share.
pub(crate) struct Link {
    pub(crate) policy: Policy,
    status: AtomicU8,
    syncs: AtomicU64,
    failures: AtomicU64,
    /// Rounds begun; the round whose number is this plus one takes after any call made now.
    started: AtomicU64,
    rounds: watch::Sender<Round>,
    /// Wakes the sync thread: a push due early, a flush, or the end.
    wake: Notify,
    /// An early push was asked for since the last round began.
    wake_armed: AtomicBool,
    stop: AtomicBool,
}

/// The last finished round.
#[derive(Clone, Copy, Debug, Default)]
struct Round {
    number: u64,
    ok: bool,
    /// The sync thread has ended: no round will follow.
    last: bool,
}

/// What [`spawn`] needs.
pub(crate) struct Launch<'a> {
    pub(crate) url: &'a str,
    /// `url` without its password, for errors and logs.
    pub(crate) shown: String,
    pub(crate) settings: Settings,
    /// Wait for a first answered round (and fail without one) before returning.
    pub(crate) wait: bool,
    /// The thread's name.
    pub(crate) thread: &'static str,
    /// What the logs call the store, e.g. `shared counters`.
    pub(crate) what: &'static str,
    /// What the store does under each policy while Redis does not answer, for the log line.
    pub(crate) meanwhile: fn(Policy) -> &'static str,
}

struct Syncer<E> {
    link: Arc<Link>,
    conn: ConnectionManager,
    exchange: E,
    settings: Settings,
    url: String,
    what: &'static str,
    meanwhile: fn(Policy) -> &'static str,
    /// When Redis stopped answering, for the log line when it answers again.
    down_since: Option<Instant>,
}

/// A random id for this replica's keys.
pub(crate) fn replica_id() -> String {
    let mut h = RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u128(SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    format!("{:016x}", h.finish())
}

/// Starts the sync thread. With `launch.wait`, returns only after its first round: `Ok` if
/// Redis answered it, else the reason (and the thread has ended).
pub(crate) fn spawn<E>(launch: Launch<'_>, link: Arc<Link>, exchange: E) -> Result<(), SharedError>
where
    E: Exchange + Send + 'static,
{
    let Launch { url, shown, settings, wait, thread, what, meanwhile } = launch;
    let client =
        redis::Client::open(url).map_err(|e| SharedError::Url { url: shown.clone(), reason: e.to_string() })?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(SharedError::Thread)?;
    let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel::<Result<(), String>>(1);
    let connect_timeout = settings.connect_timeout;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(settings.connect_timeout))
        .set_response_timeout(Some(settings.call_timeout))
        .set_number_of_retries(1)
        .set_min_delay(Duration::from_millis(20))
        .set_max_delay(Duration::from_secs(1));
    let thread_url = shown.clone();
    let thread_link = link.clone();
    std::thread::Builder::new()
        .name(thread.to_owned())
        .spawn(move || {
            runtime.block_on(async move {
                let conn = match ConnectionManager::new_lazy_with_config(client, config) {
                    Ok(conn) => conn,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        thread_link.finish();
                        return;
                    }
                };
                let mut syncer = Syncer {
                    link: thread_link,
                    conn,
                    exchange,
                    settings,
                    url: thread_url,
                    what,
                    meanwhile,
                    down_since: None,
                };
                syncer.run(wait.then_some(ready_tx)).await;
            });
        })
        .map_err(SharedError::Thread)?;
    if !wait {
        return Ok(());
    }
    // The first round is bounded by `connect_timeout`; the margin covers starting the thread.
    let within = connect_timeout;
    match ready_rx.recv_timeout(connect_timeout + Duration::from_secs(1)) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(reason)) => Err(SharedError::Unreachable { url: shown, within, reason }),
        Err(_) => {
            link.stop();
            Err(SharedError::Unreachable { url: shown, within, reason: "no answer".to_owned() })
        }
    }
}

/// What an allowance or budget store does while Redis does not answer, for the log line.
pub(crate) fn limiting(policy: Policy) -> &'static str {
    match policy {
        Policy::FailOpen => "fail-open: limiting with this replica's view alone",
        Policy::FailClosed => "fail-closed: refusing what they cover",
    }
}

/// Runs a prepared script call within `timeout`; its answer is one string per entry.
pub(crate) async fn invoke(
    call: &ScriptInvocation<'_>,
    conn: &mut ConnectionManager,
    timeout: Duration,
    entries: usize,
) -> Result<Vec<String>, String> {
    match tokio::time::timeout(timeout, call.invoke_async::<Vec<String>>(conn)).await {
        Ok(Ok(answers)) if answers.len() == entries => Ok(answers),
        Ok(Ok(answers)) => Err(format!("{} answers for {entries} entries", answers.len())),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}

/// A round with nothing to sync still finds out whether Redis answers.
pub(crate) async fn ping(conn: &mut ConnectionManager, timeout: Duration) -> Result<(), String> {
    match tokio::time::timeout(timeout, redis::cmd("PING").query_async::<String>(conn)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}

/// A number the script answered.
pub(crate) fn number(text: &str) -> Result<f64, String> {
    text.parse::<f64>().map_err(|_| format!("an answer that is not a number: {text:?}"))
}

// === impl Link ===

impl Link {
    pub(crate) fn new(policy: Policy) -> Link {
        Link {
            policy,
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

    pub(crate) fn stats(&self) -> Stats {
        Stats {
            status: self.status(),
            syncs: self.syncs.load(Ordering::Relaxed),
            sync_failures: self.failures.load(Ordering::Relaxed),
        }
    }

    /// Asks for a round before the interval is up, once per round, and only while Redis
    /// answers: during an outage early rounds would only retry faster.
    pub(crate) fn wake_early(&self) {
        if self.status() == Status::Connected && !self.wake_armed.swap(true, Ordering::AcqRel) {
            self.wake.notify_one();
        }
    }

    /// Ends the sync thread after one last round; does not wait for it.
    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    /// Waits for a round that begins after this call (asking for one at once). Errors when
    /// Redis did not answer it, or no round will come.
    pub(crate) async fn flush(&self, url: &str) -> Result<(), SharedError> {
        let mut rounds = self.rounds.subscribe();
        let target = self.started.load(Ordering::SeqCst) + 1;
        self.wake.notify_one();
        loop {
            let round = *rounds.borrow_and_update();
            if round.number >= target {
                return match round.ok {
                    true => Ok(()),
                    false => Err(SharedError::Unavailable { url: url.to_owned() }),
                };
            }
            if round.last || rounds.changed().await.is_err() {
                return Err(SharedError::Stopped);
            }
        }
    }

    /// Numbers a round about to begin.
    fn begin(&self) -> u64 {
        let number = self.started.fetch_add(1, Ordering::SeqCst) + 1;
        self.wake_armed.store(false, Ordering::Release);
        number
    }

    /// Books a finished round; returns the status before it.
    fn record(&self, number: u64, ok: bool) -> Status {
        let counter = if ok { &self.syncs } else { &self.failures };
        counter.fetch_add(1, Ordering::Relaxed);
        let next = if ok { Status::Connected } else { Status::Disconnected };
        let before = Status::from_u8(self.status.swap(next.to_u8(), Ordering::AcqRel));
        self.rounds.send_replace(Round { number, ok, last: false });
        before
    }

    /// The sync thread has ended.
    fn finish(&self) {
        self.rounds.send_modify(|r| r.last = true);
    }
}

// === impl Syncer ===

impl<E: Exchange> Syncer<E> {
    async fn run(&mut self, ready: Option<std::sync::mpsc::SyncSender<Result<(), String>>>) {
        if let Some(ready) = ready {
            let (number, result) = self.round(self.settings.connect_timeout).await;
            let ok = result.is_ok();
            if ok {
                self.record(number, &result);
            }
            let _ = ready.send(result);
            if !ok {
                self.link.finish();
                return;
            }
        }
        let mut tick = tokio::time::interval(self.settings.sync_interval);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = self.link.wake.notified() => {}
            }
            let stopping = self.link.stop.load(Ordering::Acquire);
            let (number, result) = self.round(self.settings.call_timeout).await;
            self.record(number, &result);
            if stopping {
                break;
            }
        }
        self.link.finish();
    }

    /// One round: the store's exchange. Returns the round's number and outcome.
    async fn round(&mut self, timeout: Duration) -> (u64, Result<(), String>) {
        let number = self.link.begin();
        (number, self.exchange.exchange(&mut self.conn, timeout).await)
    }

    /// Books a round, and logs a change of state once (never per round).
    fn record(&mut self, number: u64, result: &Result<(), String>) {
        let before = self.link.record(number, result.is_ok());
        let what = self.what;
        match (result, before) {
            (Ok(()), Status::Connected) => {}
            (Ok(()), Status::Connecting) => tracing::info!(url = %self.url, "{what}: Redis answers"),
            (Ok(()), Status::Disconnected) => {
                let away = self.down_since.take().map(|t| t.elapsed()).unwrap_or_default();
                tracing::info!(url = %self.url, away_ms = away.as_millis() as u64, "{what}: Redis answers again");
            }
            (Err(e), Status::Connected | Status::Connecting) => {
                self.down_since = Some(Instant::now());
                let policy = (self.meanwhile)(self.link.policy);
                tracing::warn!(url = %self.url, error = %e, "{what}: Redis does not answer; {policy}");
            }
            (Err(e), Status::Disconnected) => {
                tracing::debug!(url = %self.url, error = %e, "{what}: still no answer")
            }
        }
    }
}

/// The accessors every Redis-backed store has, over its `url`, `replica` and `link` fields;
/// `$replica` says where the replica's id appears in Redis.
macro_rules! link_accessors {
    ($replica:literal) => {
        /// The URL, without its password.
        pub fn url(&self) -> &str {
            &self.url
        }

        #[doc = concat!("This replica's id in Redis (", $replica, "), random per start.")]
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
    };
}
pub(crate) use link_accessors;
