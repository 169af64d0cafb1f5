//! The pending log: records made durable beside a SQLite file but not yet in it, one JSON line
//! each, so that a commit to the database holds hundreds of records, and a caller waiting for
//! its record waits for a copy into memory on its own thread instead of a commit on another.
//!
//! A SQLite commit has a fixed cost (its WAL frames, their checksums, the WAL index and its
//! locks, a dozen system calls) that the few records waiting at any moment would pay again and
//! again, and handing a record to the writer's thread and back costs two thread wake-ups. So
//! [`crate::Ledger::submit`] appends the record to this log itself, under a lock, on the
//! submitter's own thread, and then the file's header says how far its records go. On ext4
//! and tmpfs that is a copy into the file's pages, mapped into memory (`map.rs`): no system
//! call; elsewhere, `pwrite(2)` (see `map.rs` for why). Once that returns, the
//! record is in the kernel's page cache and survives a crash of the process, the same promise
//! as a `write(2)` or a commit under `synchronous=NORMAL` (see the crate's durability notes).
//! The writer's thread applies what the log holds to the database in large transactions, at
//! most [`crate::Settings::apply`] after the first record or once `batch` are waiting.
//!
//! A log file is a header (`SYPLOG01` and the length of what follows, a little-endian `u64`)
//! and JSON lines, in a file of [`LOG_BYTES`] (mapped, its blocks are allocated when it is
//! claimed: a full disk fails then, not on a later write). A file that is not a log is never
//! claimed nor overwritten. The header is written after the line: a crash
//! between the two leaves a line beyond the length, which no receipt was given for and no
//! reader reads. Emptying a file is writing a length of 0.
//!
//! A log is two files, `<file>-pending-<n>-0` and `-1`: records go to one while what the other
//! held is applied; the swap and every append take one lock, so every record in the file set
//! aside is among those taken for the transaction, and the file is emptied once that
//! transaction commits. Each writer holds both files under an exclusive lock (`flock`) for as
//! long as it runs, `n` being the first pair whose locks are free, so that several processes
//! can write one SQLite file. A file whose lock is free and that holds records was left by a
//! writer that died; opening the store ([`crate::Store::open`]) applies it and empties it.
//! Files are emptied, never removed: a writer that opened the path just before would otherwise
//! lock a file no one else can find.
//!
//! When a transaction fails (a full disk, a database locked too long), the log stops taking
//! records: submissions go through the writer's queue, and its failure policy, while the writer
//! retries applying both files from disk. A full file sends one submission through the queue
//! and has the writer apply at once. Before its last apply, and however it ends, the writer
//! stops the log: no record is taken that nothing would apply.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::json::write_record;
use crate::map::Mapped;
use crate::record::RequestRecord;
use crate::store::{Store, StoreError};

/// Logs per SQLite file, at most: as many writers as may run on it at once.
const MAX_LOGS: usize = 64;

/// A log file's size: about 9,000 records, far more than wait between two transactions.
pub(crate) const LOG_BYTES: usize = 4 << 20;

/// The header: a magic, then the length of the lines after it.
const MAGIC: &[u8; 8] = b"SYPLOG01";
const HEADER: usize = 16;

/// A writer's pending log, both files locked for as long as it is held.
pub(crate) struct PendingLog {
    inner: Mutex<Inner>,
    /// Appends are taken: the writer applies what they hold. Read without the lock by
    /// submitters, set only under it.
    open: AtomicBool,
    /// Woken when the log turns from empty to not, when it holds a batch, when a file is full,
    /// and when it closes.
    pub(crate) wake: tokio::sync::Notify,
    /// Records per transaction the writer is asked for; the log takes at most `room` records
    /// before submissions wait in the writer's queue (back-pressure).
    batch: usize,
    room: usize,
    /// Records made durable here, counted in [`crate::Counts::written`].
    written: AtomicU64,
    /// The writer has stopped, or is about to apply for the last time: no more appends.
    stopped: AtomicBool,
    /// An append found the file full: the writer is to apply at once.
    full: AtomicBool,
}

struct Inner {
    files: [LogFile; 2],
    /// The file appends go to; `records` is what it holds.
    current: usize,
    records: Vec<RequestRecord>,
}

struct LogFile {
    path: PathBuf,
    /// Held open for its lock, and written through where it is not mapped.
    file: File,
    /// Its pages mapped, where that is safe (`map::can_map`): writes are copies.
    map: Option<Mapped>,
    /// The length of its lines, as its header says.
    used: usize,
}

impl LogFile {
    /// Writes `bytes` at `at`: false when they would not fit in [`LOG_BYTES`].
    fn put(&mut self, at: usize, bytes: &[u8]) -> io::Result<bool> {
        if at.checked_add(bytes.len()).is_none_or(|end| end > LOG_BYTES) {
            return Ok(false);
        }
        match &mut self.map {
            Some(map) => Ok(map.write(at, bytes)),
            None => self.file.write_all_at(bytes, at as u64).map(|()| true),
        }
    }

    /// Sets the length of its lines, in its header (after the lines it counts).
    fn set_used(&mut self, used: usize) -> io::Result<()> {
        match &mut self.map {
            Some(map) => {
                map.store_u64(8, used as u64);
            }
            None => self.file.write_all_at(&(used as u64).to_le_bytes(), 8)?,
        }
        self.used = used;
        Ok(())
    }
}

/// Records taken from the log for one transaction: all that the set-aside file holds.
pub(crate) struct Taken {
    pub(crate) records: Vec<RequestRecord>,
    file: usize,
}

// === impl PendingLog ===

impl PendingLog {
    /// Locks the first free pair of files beside `db`, creating them when missing. When they
    /// hold records already (left by a writer that died, which the store's open could not
    /// apply), the log starts closed: the writer applies them from disk first.
    pub(crate) fn claim(db: &Path, batch: usize, room: usize) -> io::Result<PendingLog> {
        PendingLog::claim_with(db, batch, room, true)
    }

    /// [`PendingLog::claim`], mapping the files only if `map` (and `map::can_map`).
    fn claim_with(db: &Path, batch: usize, room: usize, map: bool) -> io::Result<PendingLog> {
        'pairs: for n in 0..MAX_LOGS {
            let mut files = Vec::with_capacity(2);
            for path in log_paths(db, n) {
                let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path)?;
                match file.try_lock() {
                    Ok(()) => files.push((path, file)),
                    Err(TryLockError::WouldBlock) => continue 'pairs,
                    Err(TryLockError::Error(e)) => return Err(e),
                }
            }
            let mut logs = Vec::with_capacity(2);
            for (path, file) in files {
                let Ok(Some(used)) = header(&file) else {
                    // Not a pending log (or not this version's): never overwritten.
                    tracing::warn!(log = %path.display(), "not a pending log; its pair is left alone");
                    continue 'pairs;
                };
                let map = match map.then(|| Mapped::new(&file, LOG_BYTES)) {
                    Some(Ok(map)) => Some(map),
                    Some(Err(error)) if error.kind() != io::ErrorKind::Unsupported => return Err(error),
                    Some(Err(_)) | None => None,
                };
                let mut log = LogFile { path, file, map, used: 0 };
                if used == 0 {
                    log.put(0, MAGIC)?;
                    log.set_used(0)?;
                }
                log.used = used;
                logs.push(log);
            }
            let [a, b]: [LogFile; 2] = logs.try_into().unwrap_or_else(|_| unreachable!("two files"));
            let empty = a.used == 0 && b.used == 0;
            let inner = Inner { files: [a, b], current: 0, records: Vec::new() };
            return Ok(PendingLog {
                inner: Mutex::new(inner),
                open: AtomicBool::new(empty),
                wake: tokio::sync::Notify::new(),
                batch: batch.max(1),
                room: room.max(1),
                written: AtomicU64::new(0),
                stopped: AtomicBool::new(false),
                full: AtomicBool::new(false),
            });
        }
        Err(io::Error::other(format!(
            "all {MAX_LOGS} pending logs beside {} are held by running writers",
            db.display()
        )))
    }

    /// The first file's path, for messages.
    pub(crate) fn path(&self) -> PathBuf {
        self.lock().files[0].path.clone()
    }

    /// Records made durable here so far.
    pub(crate) fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    pub(crate) fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }

    /// Records waiting to be applied.
    pub(crate) fn len(&self) -> usize {
        self.lock().records.len()
    }

    /// Appends `record` as one JSON line, under the lock: the line, then its file's header's new
    /// length (copies into the mapped file, with no system call, on ext4 or tmpfs; `pwrite(2)`
    /// elsewhere). Once this returns `Ok`, the record survives a crash of this process. No
    /// fsync: the same promise as the database's own commits. Gives the record back when the
    /// log is closed, stopped or full (the caller queues it for the writer), or when a write
    /// fails, which closes the log.
    #[expect(clippy::result_large_err, reason = "the record given back goes to the queue: boxing would allocate")]
    pub(crate) fn append(&self, record: RequestRecord) -> Result<(), RequestRecord> {
        if !self.is_open() {
            return Err(record);
        }
        let mut line = String::with_capacity(512);
        write_record(&mut line, &record);
        line.push('\n');
        let mut inner = self.lock();
        if !self.is_open() || self.stopped.load(Ordering::Acquire) || inner.records.len() >= self.room {
            return Err(record);
        }
        let current = inner.current;
        let file = &mut inner.files[current];
        let used = file.used + line.len();
        let written = file.put(HEADER + file.used, line.as_bytes()).and_then(|fits| match fits {
            true => file.set_used(used).map(|()| true),
            false => Ok(false),
        });
        match written {
            Ok(true) => {}
            Ok(false) => {
                // Full: the writer is to apply now; this one goes through the queue.
                drop(inner);
                self.full.store(true, Ordering::Release);
                self.wake.notify_one();
                return Err(record);
            }
            Err(error) => {
                // The header still says what it said: a line past it is read by no one.
                tracing::error!(log = %file.path.display(), %error, "the ledger's pending log failed; records go through the writer's queue");
                self.open.store(false, Ordering::Release);
                drop(inner);
                self.wake.notify_one();
                return Err(record);
            }
        }
        inner.records.push(record);
        let n = inner.records.len();
        drop(inner);
        self.written.fetch_add(1, Ordering::Relaxed);
        if n == 1 || n == self.batch {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Whether an append found the file full since the last call.
    pub(crate) fn take_full(&self) -> bool {
        self.full.swap(false, Ordering::AcqRel)
    }

    /// Takes no more records: the writer is about to apply for the last time, or is gone.
    pub(crate) fn stop(&self) {
        let _held = self.lock();
        self.stopped.store(true, Ordering::Release);
    }

    /// Takes every record waiting, for one transaction; appends go to the other file from now
    /// on. [`PendingLog::applied`] then empties the file they were in.
    pub(crate) fn take(&self) -> Taken {
        let mut inner = self.lock();
        let file = inner.current;
        inner.current = 1 - file;
        Taken { records: std::mem::take(&mut inner.records), file }
    }

    /// The transaction holding `taken` committed: empties its file.
    pub(crate) fn applied(&self, taken: &Taken) -> io::Result<()> {
        self.lock().files[taken.file].set_used(0)
    }

    /// Stops taking records (a transaction failed): what both files hold is to be applied from
    /// disk ([`PendingLog::paths`], [`read_log`], then [`PendingLog::reopen`]); the records in
    /// memory are dropped.
    pub(crate) fn close(&self) {
        let mut inner = self.lock();
        self.open.store(false, Ordering::Release);
        inner.records.clear();
    }

    /// Both files' paths, to be read ([`read_log`]) and applied, before
    /// [`PendingLog::reopen`]. Submitters do not wait meanwhile: while the log is closed they go
    /// through the writer's queue.
    pub(crate) fn paths(&self) -> [PathBuf; 2] {
        let inner = self.lock();
        [inner.files[0].path.clone(), inner.files[1].path.clone()]
    }

    /// What both files held is in the database: empties them and takes records again.
    pub(crate) fn reopen(&self) -> Result<(), FileError> {
        let mut inner = self.lock();
        for f in &mut inner.files {
            f.set_used(0).map_err(|error| FileError::Io { path: f.path.clone(), error })?;
        }
        inner.records.clear();
        self.open.store(true, Ordering::Release);
        Ok(())
    }

    /// Records per chunk when applying from disk.
    pub(crate) fn batch(&self) -> usize {
        self.batch
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[derive(Debug, thiserror::Error)]
/// A failure reading or writing the pending log or the spool (the path says which), or of the
/// store taking what they hold.
pub(crate) enum FileError {
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: io::Error },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// `<db>-pending-<n>-0` and `-1`.
fn log_paths(db: &Path, n: usize) -> [PathBuf; 2] {
    [0, 1].map(|i| {
        let mut name = db.file_name().unwrap_or_default().to_os_string();
        name.push(format!("-pending-{n}-{i}"));
        db.with_file_name(name)
    })
}

/// Reads JSON lines, `batch` records at a time. A line that does not parse (torn by a crash
/// mid-append: no receipt was given for it) is skipped with a warning. The pending log's and
/// the spool's reader.
pub(crate) struct Chunks<'a, R> {
    reader: R,
    path: &'a Path,
    batch: usize,
    line: Vec<u8>,
}

impl<'a, R: BufRead> Chunks<'a, R> {
    /// Lines from `reader` (of the file at `path`, for messages).
    pub(crate) fn new(reader: R, path: &'a Path, batch: usize) -> Chunks<'a, R> {
        Chunks { reader, path, batch: batch.max(1), line: Vec::new() }
    }

    /// The next records, at most `batch`; `None` at the end.
    pub(crate) fn next_chunk(&mut self) -> Result<Option<Vec<RequestRecord>>, FileError> {
        let mut chunk = Vec::new();
        while chunk.len() < self.batch {
            self.line.clear();
            let n = self
                .reader
                .read_until(b'\n', &mut self.line)
                .map_err(|error| FileError::Io { path: self.path.to_path_buf(), error })?;
            if n == 0 {
                break;
            }
            if self.line.iter().any(|b| !b.is_ascii_whitespace()) {
                match serde_json::from_slice::<RequestRecord>(&self.line) {
                    Ok(record) => chunk.push(record),
                    Err(error) => tracing::warn!(file = %self.path.display(), %error, "skipping a torn line"),
                }
            }
        }
        Ok((!chunk.is_empty()).then_some(chunk))
    }

    /// Writes every record left into `store`, a chunk a transaction; returns how many.
    pub(crate) async fn insert_into(mut self, store: &Store) -> Result<u64, FileError> {
        let mut read = 0;
        while let Some(chunk) = self.next_chunk()? {
            store.insert_batch(&chunk).await?;
            read += chunk.len() as u64;
        }
        Ok(read)
    }
}

/// The length of the lines a log file holds, as its header says (at most what a log can
/// hold): 0 for a new file (empty, or a header of zeros); `None` for a file that is not a
/// pending log.
fn header(file: &File) -> io::Result<Option<usize>> {
    let mut header = [0u8; HEADER];
    match file.read_exact_at(&mut header, 0) {
        Ok(()) if &header[..8] == MAGIC => {
            let used = u64::from_le_bytes(header[8..].try_into().unwrap_or_default());
            Ok(Some(usize::try_from(used).unwrap_or(usize::MAX).min(LOG_BYTES - HEADER)))
        }
        Ok(()) => Ok(header.iter().all(|b| *b == 0).then_some(0)),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok((file.metadata()?.len() == 0).then_some(0)),
        Err(e) => Err(e),
    }
}

/// The records a pending log file at `path` holds, as far as its header says; `None` when it
/// holds none (empty, or not a pending log).
pub(crate) fn read_log(path: &Path, batch: usize) -> Result<Option<Chunks<'_, BufReader<io::Take<File>>>>, FileError> {
    let io_error = |error| FileError::Io { path: path.to_path_buf(), error };
    let mut file = File::open(path).map_err(io_error)?;
    let used = match header(&file).map_err(io_error)? {
        Some(0) | None => return Ok(None),
        Some(used) => used as u64,
    };
    file.seek(SeekFrom::Start(HEADER as u64)).map_err(io_error)?;
    Ok(Some(Chunks::new(BufReader::new(file.take(used)), path, batch)))
}

/// Applies and empties every log beside `store`'s SQLite file that no running writer holds
/// (left by a writer that died). A log that cannot be applied now is left as it is, with a
/// warning: the next open, or the next writer to claim it, applies it. Returns how many records
/// it read.
pub(crate) async fn take_orphans(store: &Store, db: &Path) -> u64 {
    let mut taken = 0;
    for path in (0..MAX_LOGS).flat_map(|n| log_paths(db, n)) {
        let file = match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(error) => {
                tracing::warn!(log = %path.display(), %error, "cannot open a pending log");
                continue;
            }
        };
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => continue,
            Err(TryLockError::Error(error)) => {
                tracing::warn!(log = %path.display(), %error, "cannot lock a pending log");
                continue;
            }
        }
        match take(store, &file, &path).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(log = %path.display(), records = n, "applied a pending log left by a stopped writer");
                taken += n;
            }
            Err(error) => tracing::warn!(%error, "a pending log left by a stopped writer is kept for later"),
        }
    }
    taken
}

/// One orphaned log into the store, then emptied; the caller holds its lock.
async fn take(store: &Store, file: &File, path: &Path) -> Result<u64, FileError> {
    let Some(chunks) = read_log(path, 512)? else { return Ok(0) };
    let read = chunks.insert_into(store).await?;
    file.write_all_at(&0u64.to_le_bytes(), 8).map_err(|error| FileError::Io { path: path.to_path_buf(), error })?;
    Ok(read)
}

#[cfg(test)]
mod tests {
    use switchyard_testkit::TempDir;

    use super::*;

    fn record(i: usize) -> RequestRecord {
        RequestRecord::new(format!("req-{i}").as_str(), 1_000 + i as i64, "tenant", "key_0")
    }

    fn read_all(path: &Path) -> Vec<RequestRecord> {
        let mut out = Vec::new();
        if let Some(mut chunks) = read_log(path, 2).unwrap() {
            while let Some(chunk) = chunks.next_chunk().unwrap() {
                out.extend(chunk);
            }
        }
        out
    }

    /// The same log, mapped (where the filesystem allows) and written with `pwrite(2)`.
    #[test]
    fn appends_swaps_and_empties_read_back_mapped_or_not() {
        for map in [true, false] {
            let dir = TempDir::new("switchyard-pending").unwrap();
            let db = dir.path().join("ledger.db");
            let log = PendingLog::claim_with(&db, 10, 100, map).unwrap();
            let paths = log.paths();
            let mapped = {
                let inner = log.lock();
                (inner.files[0].map.is_some(), crate::map::can_map(&inner.files[0].file))
            };
            assert_eq!(mapped.0, map && mapped.1);
            for i in 0..3 {
                log.append(record(i)).unwrap();
            }
            assert_eq!(read_all(&paths[0]), (0..3).map(record).collect::<Vec<_>>(), "map: {map}");
            let taken = log.take();
            assert_eq!(taken.records.len(), 3);
            log.append(record(3)).unwrap();
            assert_eq!(read_all(&paths[1]), vec![record(3)], "the other file");
            log.applied(&taken).unwrap();
            assert!(read_all(&paths[0]).is_empty(), "emptied");
            // A second claim beside the same file takes the next pair; dropped, its lock frees.
            let other = PendingLog::claim_with(&db, 10, 100, map).unwrap();
            assert!(other.paths()[0].ends_with("ledger.db-pending-1-0"));
            drop(other);
            log.stop();
            assert!(log.append(record(4)).is_err(), "stopped");
            drop(log);
            // What the dropped log held is a dead writer's: the next claim starts closed on it.
            let again = PendingLog::claim_with(&db, 10, 100, map).unwrap();
            assert!(!again.is_open());
            assert_eq!(read_all(&again.paths()[1]), vec![record(3)]);
            again.reopen().unwrap();
            assert!(again.is_open() && read_all(&again.paths()[1]).is_empty());
        }
    }
}
