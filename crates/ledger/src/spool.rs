//! The spool: a local file of JSON lines that holds records while the database cannot take them,
//! replayed into the database once it can, then emptied.
//!
//! An append is fsynced before its records count as durable. A crash in the middle of an append
//! leaves a torn last line; that line held only records no receipt was given for, so replay
//! skips it (with a warning), and the next append starts on a new line so as not to glue a good
//! record to it.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::pending::{Chunks, FileError};
use crate::record::RequestRecord;
use crate::store::Store;

pub(crate) struct Spool {
    path: PathBuf,
    /// It holds records not yet replayed.
    dirty: bool,
    /// Its last line may be torn: start the next append with a newline.
    torn: bool,
}

// === impl Spool ===

impl Spool {
    /// The spool at `path`; whatever it holds from an earlier run is to be replayed.
    pub(crate) async fn open(path: PathBuf) -> Spool {
        let len = tokio::fs::metadata(&path).await.map(|m| m.len()).unwrap_or(0);
        // Whether the tail is torn is not worth a read: a spurious newline is a blank line.
        Spool { path, dirty: len > 0, torn: len > 0 }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// Appends `records`, one JSON line each, and fsyncs: once this returns `Ok`, they survive
    /// a crash of this process (and of the machine, as far as the disk keeps its promises).
    pub(crate) async fn append(&mut self, records: &[RequestRecord]) -> Result<(), FileError> {
        let mut bytes = Vec::with_capacity(records.len() * 512 + 1);
        if self.torn {
            bytes.push(b'\n');
        }
        for record in records {
            serde_json::to_writer(&mut bytes, record).map_err(|e| self.io(io::Error::other(e)))?;
            bytes.push(b'\n');
        }
        let path = self.path.clone();
        let written = tokio::task::spawn_blocking(move || -> io::Result<()> {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            let mut file = OpenOptions::new().create(true).append(true).open(&path)?;
            file.write_all(&bytes)?;
            file.sync_data()
        })
        .await
        .unwrap_or_else(|e| Err(io::Error::other(e)));
        match written {
            Ok(()) => {
                self.dirty = true;
                self.torn = false;
                Ok(())
            }
            Err(error) => {
                // Part of it may be on disk: complete lines are replayed (harmless, the batch
                // is written again later and kept once), a torn one is skipped.
                self.dirty = true;
                self.torn = true;
                Err(self.io(error))
            }
        }
    }

    /// Writes everything the spool holds into `store`, `batch` records a transaction, then
    /// empties it. Returns how many records it read. On an error nothing is emptied: a later
    /// replay writes the same records again, and the store keeps each once.
    pub(crate) async fn replay(&mut self, store: &Store, batch: usize) -> Result<u64, FileError> {
        if !self.dirty {
            return Ok(0);
        }
        let file = match std::fs::File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.dirty = false;
                return Ok(0);
            }
            Err(e) => return Err(self.io(e)),
        };
        let read = Chunks::new(std::io::BufReader::new(&file), &self.path, batch).insert_into(store).await?;
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || OpenOptions::new().write(true).open(&path)?.set_len(0))
            .await
            .unwrap_or_else(|e| Err(io::Error::other(e)))
            .map_err(|e| self.io(e))?;
        self.dirty = false;
        self.torn = false;
        Ok(read)
    }

    fn io(&self, error: io::Error) -> FileError {
        FileError::Io { path: self.path.clone(), error }
    }
}
