//! [`Ledger`]: writes records off the request path, in batches, through a bounded queue, and
//! hands each submitter a [`Receipt`] that resolves once its record is durable.
//!
//! One task owns the store's writes. It takes what is queued (up to `batch` records, waiting at
//! most `linger` for more), writes it in one transaction, and resolves every receipt of the batch
//! (group commit). When a write fails, [`Policy`] decides: spool to a local file and keep going,
//! or hold the batch, report unhealthy and retry until the store answers.
//!
//! On a SQLite file the task runs on a thread of its own (`switchyard-ledger`, with a
//! single-threaded runtime) and writes through a connection of its own (`direct.rs`), in place.
//! There a submitter appends its record to the pending log itself (`pending.rs`) and its
//! receipt resolves once that write returns; the task applies the log to the database in large
//! transactions, and the queue carries only what the log does not take (closed after a failed
//! transaction, full, or while write faults are asked for). On PostgreSQL (and an in-memory
//! SQLite database) the task runs on the caller's runtime and writes through the store's pool.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{Instant, sleep, sleep_until};

use crate::direct::Direct;
use crate::pending::{FileError, PendingLog, read_log};
use crate::record::RequestRecord;
use crate::spool::Spool;
use crate::store::{Store, StoreError};

/// How the writer is tuned, and what it does when a write fails.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Records that may wait in the queue; a full queue makes [`Ledger::submit`] wait.
    pub queue: usize,
    /// Records per transaction, at most.
    pub batch: usize,
    /// How long a batch that is not full waits for more records. Zero writes what is queued at
    /// once; batches still form while a transaction is in flight.
    pub linger: Duration,
    pub on_failure: Policy,
    /// On a SQLite file, the longest a record waits in the pending log (`pending.rs`) before
    /// the writer applies it to the database; it is applied sooner once `batch` are waiting.
    pub apply: Duration,
    /// The first wait before retrying a failed store (or replaying the spool); it doubles after
    /// each failure, up to `retry_max`.
    pub retry_min: Duration,
    pub retry_max: Duration,
}

/// What a failed write (full disk, lost database) leads to. Either way it is logged and counted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Append the batch to this file (JSON lines, fsynced) and keep serving; replay the file into
    /// the store once it answers again, then empty it. Only when the spool fails too does the
    /// ledger turn unhealthy.
    Spool(PathBuf),
    /// Keep the batch and retry it; the ledger is unhealthy (the gateway refuses new requests)
    /// until a write succeeds.
    Refuse,
}

/// How a record was made durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durable {
    /// On the ledger's disk: its transaction committed, or (on a SQLite file) its line was
    /// written to the pending log, which is applied to the store within [`Settings::apply`] (or
    /// by the next [`Store::open`], after a crash).
    Committed,
    /// In the spool file, fsynced; it reaches the store on replay.
    Spooled,
}

/// The record was not made durable: the ledger shut down (or its task died) while neither the
/// store nor the spool would take it. Logged, with its request id, and counted as lost.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the ledger could not make the record durable")]
pub struct Unrecorded;

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("the ledger's queue is full")]
    Full(Box<RequestRecord>),
    #[error("the ledger is shut down")]
    Closed(Box<RequestRecord>),
}

/// Resolves once its record is durable ([`Durable`]) or can no longer be ([`Unrecorded`]).
/// Dropping it does not withdraw the record.
#[must_use = "a receipt says when the record is durable"]
pub struct Receipt {
    /// `None`: the record was durable when the receipt was made (in the pending log).
    rx: Option<oneshot::Receiver<Result<Durable, Unrecorded>>>,
}

/// The writer's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Records committed to the store by a direct write, or written to the pending log.
    pub written: u64,
    /// Records appended to the spool.
    pub spooled: u64,
    /// Records moved from the spool into the store (spooled ones, and any left by an earlier run).
    pub replayed: u64,
    /// Failed writes (to the store, to the spool, or a replay); each is logged.
    pub failed: u64,
    /// Records given up on ([`Unrecorded`]); each is logged with its request id.
    pub lost: u64,
}

/// The off-request-path writer. See the crate docs for what a [`Receipt`] promises.
pub struct Ledger {
    tx: mpsc::Sender<Msg>,
    /// On a SQLite file: the log a submitter appends its record to (`pending.rs`).
    log: Option<Arc<PendingLog>>,
    /// For its write faults: while some are asked for, records go through the writer.
    store: Store,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    /// Resolves when the writer has finished (an error: it panicked).
    done: Mutex<Option<oneshot::Receiver<()>>>,
}

#[expect(
    clippy::large_enum_variant,
    reason = "records are the traffic, flushes rare: boxing would allocate per record"
)]
enum Msg {
    Record(RequestRecord, oneshot::Sender<Result<Durable, Unrecorded>>),
    Flush(oneshot::Sender<()>),
}

struct Shared {
    written: AtomicU64,
    spooled: AtomicU64,
    replayed: AtomicU64,
    failed: AtomicU64,
    lost: AtomicU64,
    spooling: AtomicBool,
    healthy: watch::Sender<bool>,
}

// === impl Settings ===

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            queue: 8_192,
            batch: 512,
            linger: Duration::ZERO,
            on_failure: Policy::Refuse,
            apply: Duration::from_millis(50),
            retry_min: Duration::from_millis(100),
            retry_max: Duration::from_secs(10),
        }
    }
}

// === impl Receipt ===

impl Future for Receipt {
    type Output = Result<Durable, Unrecorded>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.rx {
            Some(rx) => Pin::new(rx).poll(cx).map(|r| r.unwrap_or(Err(Unrecorded))),
            None => Poll::Ready(Ok(Durable::Committed)),
        }
    }
}

// === impl SubmitError ===

impl SubmitError {
    /// The record that was not queued.
    pub fn into_record(self) -> RequestRecord {
        match self {
            SubmitError::Full(r) | SubmitError::Closed(r) => *r,
        }
    }
}

// === impl Ledger ===

impl Ledger {
    /// Starts the writer: on a SQLite file, on a thread of its own; otherwise as a task on the
    /// current tokio runtime. With [`Policy::Spool`], whatever the spool holds from an earlier
    /// run is replayed into the store first.
    pub fn start(store: Store, settings: Settings) -> Ledger {
        let (tx, rx) = mpsc::channel(settings.queue.max(1));
        let (stop, stop_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            written: AtomicU64::new(0),
            spooled: AtomicU64::new(0),
            replayed: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            spooling: AtomicBool::new(false),
            healthy: watch::Sender::new(true),
        });
        let file = store.sqlite_file().map(Path::to_path_buf);
        let log = file.as_deref().and_then(|file| match PendingLog::claim(file, settings.batch, settings.queue) {
            Ok(log) => Some(Arc::new(log)),
            Err(error) => {
                tracing::warn!(%error, file = %file.display(), "no pending log; records go through the writer's queue");
                None
            }
        });
        let mut writer = Writer {
            store: store.clone(),
            log: log.clone(),
            apply_at: None,
            recover_at: None,
            recover_backoff: settings.retry_min,
            direct: None,
            rx,
            stop: stop_rx,
            stopping: false,
            shared: shared.clone(),
            spool: None,
            batch: settings.batch.max(1),
            backoff: settings.retry_min,
            replay_at: None,
            settings,
        };
        let (done_tx, done) = oneshot::channel();
        let own_thread =
            file.and_then(|file| match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(runtime) => Some((file, runtime)),
                Err(error) => {
                    tracing::warn!(%error, "no runtime for the ledger's writer thread; it runs on the caller's");
                    None
                }
            });
        let run = |writer: Writer| async move {
            writer.run().await;
            let _ = done_tx.send(());
        };
        match own_thread {
            Some((file, runtime)) => {
                let spawned = std::thread::Builder::new().name("switchyard-ledger".to_owned()).spawn(move || {
                    writer.direct = match Direct::open(&file) {
                        Ok(direct) => Some(direct),
                        Err(error) => {
                            tracing::warn!(%error, file = %file.display(), "the ledger's writer writes through the pool instead");
                            None
                        }
                    };
                    runtime.block_on(run(writer));
                });
                if let Err(error) = spawned {
                    // The writer went with the closure: receipts resolve `Unrecorded`, submits fail,
                    // and the pending log takes nothing, since nothing would apply it.
                    if let Some(log) = &log {
                        log.close();
                    }
                    tracing::error!(%error, "the ledger's writer thread did not start");
                }
            }
            None => {
                tokio::spawn(run(writer));
            }
        }
        Ledger { tx, log, store, shared, stop, done: Mutex::new(Some(done)) }
    }

    /// Queues `record` and returns its receipt. When the queue is full this waits for room:
    /// that is the back-pressure, and the caller's own deadline bounds it. It never waits for
    /// the write itself; await the receipt for that.
    pub async fn submit(&self, record: RequestRecord) -> Result<Receipt, SubmitError> {
        let record = match self.append(record) {
            Ok(receipt) => return Ok(receipt),
            Err(record) => record,
        };
        match self.tx.reserve().await {
            Ok(permit) => {
                let (tx, rx) = oneshot::channel();
                permit.send(Msg::Record(record, tx));
                Ok(Receipt { rx: Some(rx) })
            }
            Err(_) => Err(SubmitError::Closed(Box::new(record))),
        }
    }

    /// Queues `record` if there is room now, else gives it back ([`SubmitError::Full`]).
    pub fn try_submit(&self, record: RequestRecord) -> Result<Receipt, SubmitError> {
        let record = match self.append(record) {
            Ok(receipt) => return Ok(receipt),
            Err(record) => record,
        };
        match self.tx.try_reserve() {
            Ok(permit) => {
                let (tx, rx) = oneshot::channel();
                permit.send(Msg::Record(record, tx));
                Ok(Receipt { rx: Some(rx) })
            }
            Err(mpsc::error::TrySendError::Full(())) => Err(SubmitError::Full(Box::new(record))),
            Err(mpsc::error::TrySendError::Closed(())) => Err(SubmitError::Closed(Box::new(record))),
        }
    }

    /// Appends `record` to the pending log, if there is one, it is open and has room, and no
    /// write faults are asked for: its receipt is resolved already. Else gives it back for the
    /// queue.
    #[expect(clippy::result_large_err, reason = "the record given back goes to the queue: boxing would allocate")]
    fn append(&self, record: RequestRecord) -> Result<Receipt, RequestRecord> {
        match &self.log {
            Some(log) if !*self.stop.borrow() && !self.store.faults_pending() => {
                log.append(record)?;
                Ok(Receipt { rx: None })
            }
            _ => Err(record),
        }
    }

    /// Waits until every record submitted before the call is in the store (or the spool) and,
    /// when the spool holds records, tries to replay it now. Returns the counters then.
    pub async fn flush(&self) -> Counts {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Flush(tx)).await.is_ok() {
            // An error means the writer is gone; the counters say what it did.
            let _ = rx.await;
        }
        self.counts()
    }

    /// Stops taking records, writes everything queued (spooling or giving up per the policy),
    /// tries a last replay of the spool, and returns the final counters. Later calls return at
    /// once.
    pub async fn shutdown(&self) -> Counts {
        self.stop.send_replace(true);
        let done = self.done.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(done) = done
            && done.await.is_err()
        {
            tracing::error!("the ledger's writer failed before it finished");
        }
        self.counts()
    }

    /// Records queued, not yet taken by the writer, and records in the pending log not yet
    /// applied: the queue-depth gauge.
    pub fn depth(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity() + self.log.as_ref().map_or(0, |log| log.len())
    }

    /// Records made durable by the writer or the pending log, not by the spool.
    pub fn written(&self) -> u64 {
        self.shared.written.load(Ordering::Relaxed) + self.log.as_ref().map_or(0, |log| log.written())
    }

    /// Failed writes so far.
    pub fn failed(&self) -> u64 {
        self.shared.failed.load(Ordering::Relaxed)
    }

    /// Records appended to the spool so far.
    pub fn spooled(&self) -> u64 {
        self.shared.spooled.load(Ordering::Relaxed)
    }

    /// Whether the spool holds records not yet replayed.
    pub fn spooling(&self) -> bool {
        self.shared.spooling.load(Ordering::Relaxed)
    }

    /// False while records cannot be made durable (with [`Policy::Refuse`]: while the store
    /// fails); the gateway then refuses new requests.
    pub fn healthy(&self) -> bool {
        *self.shared.healthy.borrow()
    }

    /// Watches [`Ledger::healthy`].
    pub fn health(&self) -> watch::Receiver<bool> {
        self.shared.healthy.subscribe()
    }

    pub fn counts(&self) -> Counts {
        let s = &self.shared;
        Counts {
            written: self.written(),
            spooled: s.spooled.load(Ordering::Relaxed),
            replayed: s.replayed.load(Ordering::Relaxed),
            failed: s.failed.load(Ordering::Relaxed),
            lost: s.lost.load(Ordering::Relaxed),
        }
    }
}

// === impl Writer ===

impl Drop for Writer {
    /// However the writer ends (a panic too), its log takes no more records: nothing would
    /// apply them.
    fn drop(&mut self) {
        if let Some(log) = &self.log {
            log.stop();
        }
    }
}

struct Writer {
    store: Store,
    log: Option<Arc<PendingLog>>,
    /// When to apply what the pending log holds.
    apply_at: Option<Instant>,
    /// When to apply the pending log's files from disk next (it is closed).
    recover_at: Option<Instant>,
    recover_backoff: Duration,
    /// The writer's own connection, on a SQLite file; `None` writes through `store`.
    direct: Option<Direct>,
    rx: mpsc::Receiver<Msg>,
    stop: watch::Receiver<bool>,
    /// Shutting down: the queue is closed, what is in it is still written.
    stopping: bool,
    shared: Arc<Shared>,
    spool: Option<Spool>,
    batch: usize,
    /// The next wait before retrying the store.
    backoff: Duration,
    /// When to replay the spool next.
    replay_at: Option<Instant>,
    settings: Settings,
}

impl Writer {
    async fn run(mut self) {
        if let Policy::Spool(path) = &self.settings.on_failure {
            self.spool = Some(Spool::open(path.clone()).await);
            self.replay().await;
        }
        if self.log.as_ref().is_some_and(|log| !log.is_open()) {
            self.recover().await;
        }
        let mut msgs = Vec::with_capacity(self.batch);
        loop {
            let open = self.gather(&mut msgs).await;
            let mut records = Vec::with_capacity(msgs.len());
            let mut receipts = Vec::with_capacity(msgs.len());
            let mut flushes = Vec::new();
            for msg in msgs.drain(..) {
                match msg {
                    Msg::Record(record, receipt) => {
                        records.push(record);
                        receipts.push(receipt);
                    }
                    Msg::Flush(done) => flushes.push(done),
                }
            }
            if !records.is_empty() {
                let result = self.write(&records).await;
                for receipt in receipts {
                    // A dropped receipt is fine: the record is written all the same.
                    let _ = receipt.send(result);
                }
            }
            if !flushes.is_empty() {
                self.apply().await;
                self.replay().await;
                for done in flushes {
                    let _ = done.send(());
                }
            }
            if !open {
                break;
            }
        }
        if let Some(log) = &self.log {
            log.stop();
        }
        self.apply().await;
        self.replay().await;
    }

    /// Waits for records (replaying the spool when its time comes) and takes up to a batch.
    /// Returns false once the queue is closed and empty.
    async fn gather(&mut self, msgs: &mut Vec<Msg>) -> bool {
        loop {
            let replay_at = self.replay_at;
            let (apply_at, recover_at, log) = (self.apply_at, self.recover_at, self.log.clone());
            let woken = async {
                match &log {
                    Some(log) => log.wake.notified().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                n = self.rx.recv_many(msgs, self.batch) => {
                    if n == 0 {
                        return false;
                    }
                    break;
                }
                _ = self.stop.changed(), if !self.stopping => self.begin_stop(),
                () = sleep_until(replay_at.unwrap_or_else(Instant::now)), if replay_at.is_some() => {
                    self.replay().await;
                }
                () = woken => self.woken().await,
                () = sleep_until(apply_at.unwrap_or_else(Instant::now)), if apply_at.is_some() => self.apply().await,
                () = sleep_until(recover_at.unwrap_or_else(Instant::now)), if recover_at.is_some() => {
                    self.recover().await;
                }
            }
        }
        if !self.settings.linger.is_zero() && !self.stopping {
            let deadline = Instant::now() + self.settings.linger;
            while msgs.len() < self.batch {
                let room = self.batch - msgs.len();
                tokio::select! {
                    n = self.rx.recv_many(msgs, room) => if n == 0 { break },
                    () = sleep_until(deadline) => break,
                    _ = self.stop.changed(), if !self.stopping => {
                        self.begin_stop();
                        break;
                    }
                }
            }
        }
        true
    }

    fn begin_stop(&mut self) {
        self.stopping = true;
        self.rx.close();
    }

    /// Makes `records` durable: in the store, else (with a spool) in the spool, else by
    /// retrying both with backoff until one works, or until shutdown gives up on them.
    async fn write(&mut self, records: &[RequestRecord]) -> Result<Durable, Unrecorded> {
        let n = records.len() as u64;
        let mut retrying = false;
        loop {
            // While the spool holds records the store is known to be failing: go straight to
            // the spool, and let the replay timer find out when the store is back.
            let spooling = self.spool.as_ref().is_some_and(Spool::is_dirty);
            if !spooling || retrying {
                match self.insert(records).await {
                    Ok(_) => {
                        self.shared.written.fetch_add(n, Ordering::Relaxed);
                        self.backoff = self.settings.retry_min;
                        self.set_healthy(true);
                        return Ok(Durable::Committed);
                    }
                    Err(error) => {
                        self.shared.failed.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(%error, kind = error.kind(), records = n, "ledger write failed");
                    }
                }
            }
            if let Some(spool) = &mut self.spool {
                match spool.append(records).await {
                    Ok(()) => {
                        self.shared.spooled.fetch_add(n, Ordering::Relaxed);
                        self.shared.spooling.store(true, Ordering::Relaxed);
                        if self.replay_at.is_none() {
                            self.replay_at = Some(Instant::now() + self.backoff);
                        }
                        self.set_healthy(true);
                        return Ok(Durable::Spooled);
                    }
                    Err(error) => {
                        self.shared.failed.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(%error, records = n, "ledger spool write failed");
                    }
                }
            }
            self.set_healthy(false);
            if self.stopping && retrying {
                self.shared.lost.fetch_add(n, Ordering::Relaxed);
                let ids: Vec<&str> = records.iter().map(|r| r.request_id.as_str()).collect();
                tracing::error!(records = n, ids = ?ids, "ledger gave up on records at shutdown");
                return Err(Unrecorded);
            }
            retrying = true;
            if !self.stopping {
                tokio::select! {
                    () = sleep(self.backoff) => {}
                    _ = self.stop.changed() => self.begin_stop(),
                }
                self.backoff = (self.backoff * 2).min(self.settings.retry_max);
            }
        }
    }

    /// One transaction of `records`, through the writer's own connection if it has one.
    async fn insert(&mut self, records: &[RequestRecord]) -> Result<u64, StoreError> {
        if self.direct.is_some() && self.store.take_fault() {
            return Err(StoreError::Injected);
        }
        self.apply_now(records).await
    }

    /// The same, without the faults [`Store::fail_next_writes`] asks for on the writer's own
    /// connection, which stand for the step that makes a record durable: applying the pending
    /// log is not that step. (Through the pool, `Store::insert_batch` takes them as ever.)
    async fn apply_now(&mut self, records: &[RequestRecord]) -> Result<u64, StoreError> {
        match &mut self.direct {
            Some(direct) => Ok(direct.insert(records)?),
            None => self.store.insert_batch(records).await,
        }
    }

    /// The pending log woke the writer: it holds a batch (apply now), its first record (apply
    /// within [`Settings::apply`]), or it closed after a failed append (apply it from disk).
    async fn woken(&mut self) {
        let Some(log) = &self.log else { return };
        if log.take_full() {
            self.apply().await;
        } else if !log.is_open() {
            self.recover_at.get_or_insert_with(Instant::now);
        } else if log.len() >= self.batch {
            self.apply().await;
        } else if log.len() > 0 {
            let now = Instant::now();
            let at = now.checked_add(self.settings.apply).unwrap_or(now + Duration::from_secs(86_400));
            self.apply_at.get_or_insert(at);
        }
    }

    /// Applies what the pending log holds in one transaction and empties its file. When that
    /// fails, the log closes: its files are applied from disk later, with backoff, and records
    /// go through the queue (and the failure policy) meanwhile.
    async fn apply(&mut self) {
        self.apply_at = None;
        let Some(log) = self.log.clone() else { return };
        if !log.is_open() {
            return self.recover().await;
        }
        let taken = log.take();
        if taken.records.is_empty() {
            return;
        }
        match self.apply_now(&taken.records).await {
            Ok(_) => {
                if let Err(error) = log.applied(&taken) {
                    // Harmless but for a later start applying those records again (kept once).
                    tracing::warn!(%error, log = %log.path().display(), "cannot empty the ledger's pending log");
                }
            }
            Err(error) => {
                self.shared.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%error, kind = error.kind(), records = taken.records.len(), log = %log.path().display(),
                    "applying the ledger's pending log failed; records go through the writer's queue until it applies");
                log.close();
                self.recover_at = Some(Instant::now() + self.recover_backoff);
            }
        }
    }

    async fn apply_files(&mut self, log: &PendingLog) -> Result<u64, FileError> {
        let mut read = 0;
        for path in log.paths() {
            let Some(mut chunks) = read_log(&path, log.batch())? else { continue };
            while let Some(chunk) = chunks.next_chunk()? {
                self.apply_now(&chunk).await?;
                read += chunk.len() as u64;
            }
        }
        log.reopen()?;
        Ok(read)
    }

    /// Applies the pending log's files from disk, then opens it again; on failure, tries again
    /// after a backoff.
    async fn recover(&mut self) {
        let Some(log) = self.log.clone() else { return };
        self.recover_at = None;
        match self.apply_files(&log).await {
            Ok(n) => {
                self.recover_backoff = self.settings.retry_min;
                if n > 0 {
                    tracing::info!(records = n, log = %log.path().display(), "the ledger's pending log applied from disk");
                }
            }
            Err(error) => {
                self.shared.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%error, log = %log.path().display(), "applying the ledger's pending log from disk failed");
                self.recover_at = Some(Instant::now() + self.recover_backoff);
                self.recover_backoff = (self.recover_backoff * 2).min(self.settings.retry_max);
            }
        }
    }

    /// Replays the spool into the store, if it holds anything; on failure, schedules the next
    /// try after the backoff.
    async fn replay(&mut self) {
        let Some(spool) = &mut self.spool else { return };
        if !spool.is_dirty() {
            return;
        }
        match spool.replay(&self.store, self.batch).await {
            Ok(n) => {
                self.shared.replayed.fetch_add(n, Ordering::Relaxed);
                self.shared.spooling.store(false, Ordering::Relaxed);
                self.backoff = self.settings.retry_min;
                self.replay_at = None;
                tracing::info!(records = n, spool = %spool.path().display(), "ledger spool replayed into the store");
            }
            Err(error) => {
                self.shared.failed.fetch_add(1, Ordering::Relaxed);
                self.shared.spooling.store(true, Ordering::Relaxed);
                tracing::warn!(%error, spool = %spool.path().display(), "ledger spool replay failed");
                self.replay_at = Some(Instant::now() + self.backoff);
                self.backoff = (self.backoff * 2).min(self.settings.retry_max);
            }
        }
    }

    fn set_healthy(&self, healthy: bool) {
        self.shared.healthy.send_if_modified(|h| std::mem::replace(h, healthy) != healthy);
    }
}
