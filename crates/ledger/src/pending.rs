//! The pending log: records made durable beside a SQLite file but not yet in it, one JSON line
//! each, so that a commit to the database holds hundreds of records, and a caller waiting for
//! its record waits for one `write(2)` on its own thread instead of a commit on another.
//!
//! A SQLite commit has a fixed cost (its WAL frames, their checksums, the WAL index and its
//! locks, a dozen system calls) that the few records waiting at any moment would pay again and
//! again, and handing a record to the writer's thread and back costs two thread wake-ups. So
//! [`crate::Ledger::submit`] appends the record to this log itself, under a lock, in one
//! `write(2)` on the submitter's own thread: once that returns, the bytes are in the kernel's page cache and survive a crash of
//! the process, the same promise as a commit under `synchronous=NORMAL` (see the crate's
//! durability notes). The writer's thread applies what the log holds to the database in large
//! transactions, at most [`crate::Settings::apply`] after the first record or once `batch` are
//! waiting.
//!
//! A log is two files, `<file>-pending-<n>-0` and `-1`: records go to one while what the other
//! held is applied; the swap and every append take one lock, so every record in the file set
//! aside is among those taken for the transaction, and the file is emptied once that
//! transaction commits. (It may hold records applied before, when emptying it failed, or a torn
//! line: applied again, each record is kept once; a torn line had no receipt.) Each writer holds both files under an exclusive lock (`flock`) for as long as it
//! runs, `n` being the first pair whose locks are free, so that several processes can write one
//! SQLite file. A file whose lock is free and that holds records was left by a writer that
//! died; opening the store ([`crate::Store::open`]) applies it and empties it. Files are
//! emptied, never removed: a writer that opened the path just before would otherwise lock a file
//! no one else can find.
//!
//! When a transaction fails (a full disk, a database locked too long), the log stops taking
//! records: submissions go through the writer's queue, and its failure policy, while the writer
//! retries applying both files from disk.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::json::write_record;
use crate::record::RequestRecord;
use crate::store::{Store, StoreError};

/// Logs per SQLite file, at most: as many writers as may run on it at once.
const MAX_LOGS: usize = 64;

/// A writer's pending log, both files locked for as long as it is held.
pub(crate) struct PendingLog {
    inner: Mutex<Inner>,
    /// The two files again (the same open files), for emptying one outside the lock.
    handles: [File; 2],
    /// Appends are taken: the writer applies what they hold. Read without the lock by
    /// submitters, set only under it.
    open: AtomicBool,
    /// Woken when the log turns from empty to not, when it holds a batch, and when it closes.
    pub(crate) wake: tokio::sync::Notify,
    /// Records per transaction the writer is asked for; the log takes at most `room` records
    /// before submissions wait in the writer's queue (back-pressure).
    batch: usize,
    room: usize,
    /// Records made durable here, counted in [`crate::Counts::written`].
    written: AtomicU64,
}

struct Inner {
    files: [LogFile; 2],
    /// The file appends go to; `records` is what it holds.
    current: usize,
    records: Vec<RequestRecord>,
}

struct LogFile {
    path: PathBuf,
    file: File,
    /// Its last line may be torn (a failed append): the next append starts on a new line.
    torn: bool,
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
        'pairs: for n in 0..MAX_LOGS {
            let mut files = Vec::with_capacity(2);
            for path in log_paths(db, n) {
                let file = OpenOptions::new().read(true).append(true).create(true).open(&path)?;
                match file.try_lock() {
                    Ok(()) => files.push(LogFile { path, file, torn: false }),
                    Err(TryLockError::WouldBlock) => continue 'pairs,
                    Err(TryLockError::Error(e)) => return Err(e),
                }
            }
            let [a, b]: [LogFile; 2] = files.try_into().unwrap_or_else(|_| unreachable!("two files"));
            let empty = a.file.metadata()?.len() == 0 && b.file.metadata()?.len() == 0;
            let handles = [a.file.try_clone()?, b.file.try_clone()?];
            let inner = Inner { files: [a, b], current: 0, records: Vec::new() };
            return Ok(PendingLog {
                inner: Mutex::new(inner),
                handles,
                open: AtomicBool::new(empty),
                wake: tokio::sync::Notify::new(),
                batch: batch.max(1),
                room: room.max(1),
                written: AtomicU64::new(0),
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

    /// Appends `record` as one JSON line in one `write(2)`, under the lock: once this returns
    /// `Ok`, the record survives a crash of this process. No fsync: the same promise as the
    /// database's own commits. Gives the record back when the log is closed or full (the caller
    /// queues it for the writer), or when the write fails, which closes the log.
    #[expect(clippy::result_large_err, reason = "the record given back goes to the queue: boxing would allocate")]
    pub(crate) fn append(&self, record: RequestRecord) -> Result<(), RequestRecord> {
        if !self.is_open() {
            return Err(record);
        }
        // A newline first after a failed write: its torn line cannot glue onto this one.
        let mut line = String::with_capacity(512);
        line.push('\n');
        write_record(&mut line, &record);
        line.push('\n');
        let mut inner = self.lock();
        if !self.is_open() || inner.records.len() >= self.room {
            return Err(record);
        }
        let current = inner.current;
        let file = &mut inner.files[current];
        let start = usize::from(!file.torn);
        if let Err(error) = (&file.file).write_all(&line.as_bytes()[start..]) {
            file.torn = true;
            tracing::error!(log = %file.path.display(), %error, "the ledger's pending log failed; records go through the writer's queue");
            self.open.store(false, Ordering::Release);
            drop(inner);
            self.wake.notify_one();
            return Err(record);
        }
        file.torn = false;
        inner.records.push(record);
        let n = inner.records.len();
        drop(inner);
        self.written.fetch_add(1, Ordering::Relaxed);
        if n == 1 || n == self.batch {
            self.wake.notify_one();
        }
        Ok(())
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
        // Not under the lock: appends go to the other file until the writer's next `take`, and
        // a truncation may wait on the disk.
        self.handles[taken.file].set_len(0)?;
        self.lock().files[taken.file].torn = false;
        Ok(())
    }

    /// Stops taking records (a transaction failed): what both files hold is to be applied from
    /// disk ([`PendingLog::files`], then [`PendingLog::reopen`]); the records in memory are
    /// dropped.
    pub(crate) fn close(&self) {
        let mut inner = self.lock();
        self.open.store(false, Ordering::Release);
        inner.records.clear();
    }

    /// Both files, to be read from their start ([`Chunks`]) and applied, before
    /// [`PendingLog::reopen`]. Submitters do not wait meanwhile: while the log is closed they go
    /// through the writer's queue.
    pub(crate) fn files(&self) -> Result<[(File, PathBuf); 2], FileError> {
        let inner = self.lock();
        // Opened afresh: a reader of its own, with its own offset.
        let open = |f: &LogFile| match File::open(&f.path) {
            Ok(file) => Ok((file, f.path.clone())),
            Err(error) => Err(FileError::Io { path: f.path.clone(), error }),
        };
        Ok([open(&inner.files[0])?, open(&inner.files[1])?])
    }

    /// What both files held is in the database: empties them and takes records again.
    pub(crate) fn reopen(&self) -> Result<(), FileError> {
        let mut inner = self.lock();
        for f in &mut inner.files {
            f.file.set_len(0).map_err(|error| FileError::Io { path: f.path.clone(), error })?;
            f.torn = false;
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

/// Reads a file of JSON lines from its start, `batch` records at a time. A line that does not
/// parse (torn by a crash mid-append: no receipt was given for it) is skipped with a warning.
/// The pending log's and the spool's reader.
pub(crate) struct Chunks<'a> {
    reader: BufReader<&'a File>,
    path: &'a Path,
    batch: usize,
    line: Vec<u8>,
}

impl<'a> Chunks<'a> {
    pub(crate) fn new(file: &'a File, path: &'a Path, batch: usize) -> Result<Chunks<'a>, FileError> {
        let mut reader = BufReader::new(file);
        reader.seek(SeekFrom::Start(0)).map_err(|error| FileError::Io { path: path.to_path_buf(), error })?;
        Ok(Chunks { reader, path, batch: batch.max(1), line: Vec::new() })
    }

    /// The next records, at most `batch`; `None` at the end of the file.
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
        if file.metadata().is_ok_and(|m| m.len() == 0) {
            continue;
        }
        match take(store, &file, &path).await {
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
    let mut chunks = Chunks::new(file, path, 512)?;
    let mut read = 0;
    while let Some(chunk) = chunks.next_chunk()? {
        store.insert_batch(&chunk).await?;
        read += chunk.len() as u64;
    }
    file.set_len(0).map_err(|error| FileError::Io { path: path.to_path_buf(), error })?;
    Ok(read)
}
