//! The sync thread: its own current-thread tokio runtime, one `ConnectionManager`, and a loop
//! that pushes every allowance's total to Redis and reads its level back, each round.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis::Script;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::time::MissedTickBehavior;

use crate::SharedError;
use crate::counters::{Policy, Settings, Shared, Status};

/// The script every push runs (see the file for its contract).
const BUCKET_LUA: &str = include_str!("bucket.lua");

/// Allowances per script call: a round over thousands of allowances is several short calls,
/// so that no one call holds Redis for long.
const CHUNK: usize = 128;

/// What [`spawn`] needs.
pub(crate) struct Launch<'a> {
    pub(crate) url: &'a str,
    /// `url` without its password, for errors and logs.
    pub(crate) shown: String,
    /// Per allowance: its bucket's key and this replica's total's key.
    pub(crate) keys: Vec<(String, String)>,
    pub(crate) settings: Settings,
    /// Wait for a first answered round (and fail without one) before returning.
    pub(crate) wait: bool,
}

struct Syncer {
    shared: Arc<Shared>,
    conn: ConnectionManager,
    script: Script,
    keys: Vec<(String, String)>,
    settings: Settings,
    url: String,
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
pub(crate) fn spawn(launch: Launch<'_>, shared: Arc<Shared>) -> Result<(), SharedError> {
    let Launch { url, shown, keys, settings, wait } = launch;
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
    let thread_shared = shared.clone();
    std::thread::Builder::new()
        .name("switchyard-redis-sync".to_owned())
        .spawn(move || {
            runtime.block_on(async move {
                let conn = match ConnectionManager::new_lazy_with_config(client, config) {
                    Ok(conn) => conn,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        thread_shared.finish();
                        return;
                    }
                };
                let script = Script::new(BUCKET_LUA);
                let mut syncer =
                    Syncer { shared: thread_shared, conn, script, keys, settings, url: thread_url, down_since: None };
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
            shared.stop.store(true, Ordering::Release);
            shared.wake.notify_one();
            Err(SharedError::Unreachable { url: shown, within, reason: "no answer".to_owned() })
        }
    }
}

// === impl Syncer ===

impl Syncer {
    async fn run(&mut self, ready: Option<std::sync::mpsc::SyncSender<Result<(), String>>>) {
        if let Some(ready) = ready {
            let (number, result) = self.round(self.settings.connect_timeout).await;
            let ok = result.is_ok();
            if ok {
                self.record(number, &result);
            }
            let _ = ready.send(result);
            if !ok {
                self.shared.finish();
                return;
            }
        }
        let mut tick = tokio::time::interval(self.settings.sync_interval);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = self.shared.wake.notified() => {}
            }
            let stopping = self.shared.stop.load(Ordering::Acquire);
            let (number, result) = self.round(self.settings.call_timeout).await;
            self.record(number, &result);
            if stopping {
                break;
            }
        }
        self.shared.finish();
    }

    /// Pushes every allowance's total and installs the levels Redis answers, chunk by chunk;
    /// stops at the first chunk that fails. Returns the round's number and outcome.
    async fn round(&mut self, timeout: Duration) -> (u64, Result<(), String>) {
        let number = self.shared.started.fetch_add(1, Ordering::SeqCst) + 1;
        self.shared.wake_armed.store(false, Ordering::Release);
        let ttl_ms = u64::try_from(self.settings.key_ttl.as_millis()).unwrap_or(u64::MAX);
        let n = self.keys.len();
        if n == 0 {
            // Nothing to sync, but a start must still find out whether Redis answers.
            let ping = redis::cmd("PING");
            return match tokio::time::timeout(timeout, ping.query_async::<String>(&mut self.conn)).await {
                Ok(Ok(_)) => (number, Ok(())),
                Ok(Err(e)) => (number, Err(e.to_string())),
                Err(_) => (number, Err(format!("no answer within {timeout:?}"))),
            };
        }
        for start in (0..n).step_by(CHUNK) {
            let end = (start + CHUNK).min(n);
            let mut call = self.script.prepare_invoke();
            call.arg(ttl_ms);
            for (slot, (bucket, mine)) in self.shared.views[start..end].iter().zip(&self.keys[start..end]) {
                let (per_minute, (acked, total)) = {
                    let mut view = slot.lock();
                    (view.per_minute(), view.take())
                };
                call.key(bucket).key(mine).arg(per_minute).arg(acked).arg(total);
            }
            let levels = match tokio::time::timeout(timeout, call.invoke_async::<Vec<String>>(&mut self.conn)).await {
                Ok(Ok(levels)) => levels,
                Ok(Err(e)) => return (number, Err(e.to_string())),
                Err(_) => return (number, Err(format!("no answer within {timeout:?}"))),
            };
            if levels.len() != end - start {
                return (number, Err(format!("{} levels for {} allowances", levels.len(), end - start)));
            }
            for (slot, text) in self.shared.views[start..end].iter().zip(&levels) {
                match text.parse::<f64>() {
                    Ok(level) => slot.lock().answer(level),
                    Err(_) => return (number, Err(format!("a level that is not a number: {text:?}"))),
                }
            }
        }
        (number, Ok(()))
    }

    /// Books a round, and logs a change of state once (never per round).
    fn record(&mut self, number: u64, result: &Result<(), String>) {
        let before = self.shared.record(number, result.is_ok());
        let policy = match self.shared.policy {
            Policy::FailOpen => "fail-open: limiting with this replica's view alone",
            Policy::FailClosed => "fail-closed: refusing what shared limits cover",
        };
        match (result, before) {
            (Ok(()), Status::Connected) => {}
            (Ok(()), Status::Connecting) => tracing::info!(url = %self.url, "shared counters: Redis answers"),
            (Ok(()), Status::Disconnected) => {
                let away = self.down_since.take().map(|t| t.elapsed()).unwrap_or_default();
                tracing::info!(url = %self.url, away_ms = away.as_millis() as u64, "shared counters: Redis answers again");
            }
            (Err(e), Status::Connected | Status::Connecting) => {
                self.down_since = Some(Instant::now());
                tracing::warn!(url = %self.url, error = %e, "shared counters: Redis does not answer; {policy}");
            }
            (Err(e), Status::Disconnected) => {
                tracing::debug!(url = %self.url, error = %e, "shared counters: still no answer")
            }
        }
    }
}
