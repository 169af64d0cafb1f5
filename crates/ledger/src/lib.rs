//! The ledger: one record per request, written off the request path, in SQLite or PostgreSQL;
//! the API keys; and the spend reports read from them.
//!
//! - [`Store`] is the database, opened from a URL (`sqlite:PATH`, a path, `sqlite::memory:`, or
//!   `postgres://…`), with the same schema and ordered migrations on both backends.
//! - [`Ledger`] is the writer: [`Ledger::submit`] queues a [`RequestRecord`] in a bounded queue
//!   and returns a [`Receipt`]; one task writes what is queued in batches, one transaction each.
//!   On a SQLite file a record goes to the pending log first (`pending.rs`: a copy into a
//!   memory-mapped file, `map.rs`, on the submitter's thread), and the writer, on a thread of
//!   its own with its own connection (`direct.rs`, over the FFI in `lite.rs`), applies the log
//!   to the database in large transactions. `lite.rs` and `map.rs` are the crate's only unsafe
//!   code, each behind a safe API.
//! - [`Keys`] creates, lists and revokes API keys; only a secret's SHA-256 is stored.
//!
//! # Durability
//!
//! The promise: **once a receipt resolves `Ok`, the record survives a `kill -9` of this process.**
//! The gateway awaits the receipt before it releases the last byte of a response, so every
//! request whose response a client received complete is in the ledger after a crash and a
//! restart. The argument, step by step:
//!
//! 1. A receipt resolves [`Durable::Committed`] only after the transaction holding its record
//!    committed, or, on a SQLite file, after its line was written to the pending log (step 2).
//!    On a SQLite file the writer's own connection writes a batch between
//!    `BEGIN IMMEDIATE` and `COMMIT` (a batch of one is a single statement, which commits as it
//!    ends); through the pool (an in-memory database, a spool replay) a batch of up to 512 is
//!    one statement (a larger one an explicit transaction); on PostgreSQL, `COMMIT`.
//!    Many receipts share one transaction (group commit), so waiting costs one commit per
//!    batch, not per request.
//! 2. SQLite runs in WAL mode with `synchronous=NORMAL`: a commit appends its pages to the WAL
//!    file with `write(2)` before `COMMIT` returns. The data is then in the kernel's page cache,
//!    which outlives the process; killing the process cannot take it back. On the next open
//!    SQLite recovers the WAL. (What `NORMAL` gives up is the fsync at each commit: after a
//!    power loss or a kernel crash, the last transactions before the WAL's last sync, at
//!    checkpoint, may be lost. That is the worst case for the embedded default.) The pending
//!    log gives the same promise: a record's line, then the header's new length, are in the
//!    file's pages in the page cache before the receipt resolves (copied into the mapped file,
//!    or written with `pwrite(2)`), with no fsync; the kernel keeps and writes back a killed
//!    process's pages. A line the header does not count yet had no receipt and is never read.
//!    Its file is emptied only after the transaction that applied it
//!    committed, and a writer holds its files under an exclusive lock, so a file that holds
//!    records and whose lock is free was left by a writer that died: [`Store::open`] applies
//!    it (each record kept once, step 4) before anything reads the store.
//! 3. PostgreSQL acknowledges a `COMMIT` after its WAL record is flushed (the default
//!    `synchronous_commit=on`), so a committed record survives a crash of the client, and of
//!    the server too.
//! 4. With [`Policy::Spool`], a batch the store refuses is appended to the spool file and
//!    fsynced before its receipts resolve [`Durable::Spooled`]; on the next start (or once the
//!    store answers) the spool is replayed into the store. Writes are idempotent on the request
//!    id, so a record replayed twice, or written both directly and from the spool (or the
//!    pending log), is kept once.
//! 5. A record the writer could not make durable is never acknowledged: its receipt stays
//!    pending while the writer retries, and resolves [`Unrecorded`] only if the ledger shuts
//!    down first, when it is logged with its request id and counted in [`Counts::lost`].
//!
//! The worst case, then: records whose receipts had not resolved when the process died (their
//! responses were not complete either), and, for SQLite, the last commits (and pending-log
//! writes) before a power loss.
//!
//! Tests: `tests/crash.rs` runs a child process that writes through a [`Ledger`] and prints each
//! request id once its receipt resolves, kills it with SIGKILL mid-load, reopens the store and
//! finds every printed id, on SQLite and on PostgreSQL.

mod direct;
mod json;
pub mod keys;
mod lite;
mod map;
mod pending;
pub mod record;
mod schema;
mod spool;
pub mod store;
pub mod writer;

pub use keys::{Changed, KeyError, KeyRow, Keys, hash_secret};
pub use lite::LiteError;
pub use record::{AttemptRecord, RequestRecord, Text};
pub use store::{Backend, Group, SpendRow, Store, StoreError};
pub use writer::{Counts, Durable, Ledger, Policy, Receipt, Settings, SubmitError, Unrecorded};
