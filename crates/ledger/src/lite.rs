//! A plain SQLite connection over `libsqlite3-sys` (the library sqlx links), for the ledger's
//! writer thread: prepared statements kept for the connection's life, values bound without
//! copying, no channel to another thread. Unsafe code (with `map.rs`, the crate's only), behind a
//! safe API.
//!
//! [`Connection`] owns one `sqlite3` handle and its statements ([`Stmt`] is an index into
//! them). [`Connection::run`] binds a row of [`Value`]s, steps the statement to its end, resets
//! it and clears its bindings before it returns, so a statement never outlives the text it
//! borrowed. The handle is opened `SQLITE_OPEN_NOMUTEX` (no locking inside SQLite): every use
//! goes through `&mut self`, so only one thread uses it at a time.

#![expect(unsafe_code, reason = "FFI to SQLite; each unsafe block says why it is sound")]

use std::ffi::{CStr, CString, c_char, c_int};
use std::path::Path;
use std::ptr::{self, NonNull};
use std::time::Duration;

use libsqlite3_sys as ffi;

/// What SQLite said went wrong: its result code and message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SQLite error {code}: {message}")]
pub struct LiteError {
    /// The (extended) result code, `SQLITE_…`.
    pub code: i32,
    pub message: String,
}

/// One value to bind. Text is borrowed: SQLite reads it in place (`SQLITE_STATIC`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Value<'a> {
    Null,
    Int(i64),
    Real(f64),
    Text(&'a str),
}

/// A statement prepared on a [`Connection`]: valid on that connection only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stmt(usize);

/// An open SQLite database with its prepared statements.
pub(crate) struct Connection {
    db: NonNull<ffi::sqlite3>,
    stmts: Vec<NonNull<ffi::sqlite3_stmt>>,
}

// SAFETY: the handle is opened with `SQLITE_OPEN_NOMUTEX` (multi-thread mode): SQLite allows a
// connection and its statements to move between threads as long as no two threads use them at
// once. Every use goes through `&mut self`, and `Connection` is not `Sync`.
unsafe impl Send for Connection {}

// === impl Connection ===

impl Connection {
    /// Opens (creating if missing) the database file at `path`, the way sqlx opens it: a
    /// `file:` URI is taken as one. Statements wait up to `busy` for another connection's lock.
    pub(crate) fn open(path: &Path, busy: Duration) -> Result<Connection, LiteError> {
        // SAFETY: a plain query of how the library was built.
        if unsafe { ffi::sqlite3_threadsafe() } == 0 {
            // `Send` (below) rests on a library built thread-safe.
            let message = "this SQLite was built without thread safety".to_owned();
            return Err(LiteError { code: ffi::SQLITE_MISUSE, message });
        }
        let name = CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| LiteError { code: ffi::SQLITE_MISUSE, message: "a NUL byte in the path".to_owned() })?;
        let flags =
            ffi::SQLITE_OPEN_READWRITE | ffi::SQLITE_OPEN_CREATE | ffi::SQLITE_OPEN_NOMUTEX | ffi::SQLITE_OPEN_URI;
        let mut db = ptr::null_mut();
        // SAFETY: `name` is a NUL-terminated string that outlives the call; `db` is a valid out
        // pointer; a null VFS name means the default VFS.
        let rc = unsafe { ffi::sqlite3_open_v2(name.as_ptr(), &mut db, flags, ptr::null()) };
        let Some(db) = NonNull::new(db) else {
            return Err(LiteError { code: rc, message: errstr(rc) });
        };
        // From here `conn` owns the handle: an error below closes it.
        let conn = Connection { db, stmts: Vec::new() };
        if rc != ffi::SQLITE_OK {
            return Err(conn.error(rc));
        }
        let ms = c_int::try_from(busy.as_millis()).unwrap_or(c_int::MAX);
        // SAFETY: `conn.db` is an open handle.
        let rc = unsafe { ffi::sqlite3_busy_timeout(conn.db.as_ptr(), ms) };
        conn.check(rc)?;
        Ok(conn)
    }

    /// Prepares `sql` (one statement) to be run many times.
    pub(crate) fn prepare(&mut self, sql: &str) -> Result<Stmt, LiteError> {
        let len = c_int::try_from(sql.len())
            .map_err(|_| LiteError { code: ffi::SQLITE_TOOBIG, message: "statement too long".to_owned() })?;
        let mut stmt = ptr::null_mut();
        let mut tail: *const c_char = ptr::null();
        // SAFETY: `sql` is valid for `len` bytes during the call (SQLite copies what it keeps);
        // `stmt` and `tail` are valid out pointers.
        let rc = unsafe {
            ffi::sqlite3_prepare_v3(
                self.db.as_ptr(),
                sql.as_ptr().cast::<c_char>(),
                len,
                ffi::SQLITE_PREPARE_PERSISTENT,
                &mut stmt,
                &mut tail,
            )
        };
        self.check(rc)?;
        let stmt = NonNull::new(stmt)
            .ok_or_else(|| LiteError { code: ffi::SQLITE_MISUSE, message: "no statement in the text".to_owned() })?;
        // Owned from here: pushed, it is finalized with the connection.
        self.stmts.push(stmt);
        // What follows the first statement: `tail` points into `sql` (or is null).
        let used = if tail.is_null() { sql.len() } else { (tail as usize).saturating_sub(sql.as_ptr() as usize) };
        if !sql.get(used..).unwrap_or_default().trim().trim_end_matches(';').trim().is_empty() {
            let message = "more than one statement in the text".to_owned();
            return Err(LiteError { code: ffi::SQLITE_MISUSE, message });
        }
        Ok(Stmt(self.stmts.len() - 1))
    }

    /// Binds `values` to `stmt`'s parameters (the first to `?1`), runs it to its end (rows it
    /// returns are skipped) and returns how many rows it changed.
    pub(crate) fn run(&mut self, stmt: Stmt, values: &[Value<'_>]) -> Result<u64, LiteError> {
        let s = self.stmts[stmt.0].as_ptr();
        let result = self.bind_and_step(s, values);
        // SAFETY: `s` is a live statement of this connection. Resetting ends its run (releasing
        // its locks); clearing drops every pointer to `values`, which are borrowed only for
        // this call. Their result codes repeat the step's error, already taken.
        unsafe {
            ffi::sqlite3_reset(s);
            ffi::sqlite3_clear_bindings(s);
        }
        result
    }

    /// [`Connection::run`] for a statement given as text, prepared (and finalized) on the spot.
    pub(crate) fn execute(&mut self, sql: &str) -> Result<u64, LiteError> {
        let stmt = self.prepare(sql)?;
        let result = self.run(stmt, &[]);
        if let Some(s) = self.stmts.pop() {
            // SAFETY: `s` was prepared by this connection and is not used again.
            unsafe { ffi::sqlite3_finalize(s.as_ptr()) };
        }
        result
    }

    fn bind_and_step(&mut self, s: *mut ffi::sqlite3_stmt, values: &[Value<'_>]) -> Result<u64, LiteError> {
        // SAFETY: `s` is a live statement of this connection.
        let params = unsafe { ffi::sqlite3_bind_parameter_count(s) };
        if usize::try_from(params).ok() != Some(values.len()) {
            let message = format!("{} values for {params} parameters", values.len());
            return Err(LiteError { code: ffi::SQLITE_RANGE, message });
        }
        for (i, value) in values.iter().enumerate() {
            let i = c_int::try_from(i + 1).unwrap_or(c_int::MAX);
            // SAFETY: `s` is live and `i` is within its parameters (counted above). Text is bound
            // `SQLITE_STATIC` for `len` bytes: SQLite reads it in place until the binding is
            // cleared, which `run` does before `values` can go away.
            let rc = unsafe {
                match *value {
                    Value::Null => ffi::sqlite3_bind_null(s, i),
                    Value::Int(v) => ffi::sqlite3_bind_int64(s, i, v),
                    Value::Real(v) => ffi::sqlite3_bind_double(s, i, v),
                    Value::Text(t) => match c_int::try_from(t.len()) {
                        Ok(len) => ffi::sqlite3_bind_text(s, i, t.as_ptr().cast::<c_char>(), len, ffi::SQLITE_STATIC()),
                        Err(_) => ffi::SQLITE_TOOBIG,
                    },
                }
            };
            self.check(rc)?;
        }
        loop {
            // SAFETY: `s` is live, with every parameter bound.
            match unsafe { ffi::sqlite3_step(s) } {
                ffi::SQLITE_ROW => continue,
                ffi::SQLITE_DONE => break,
                rc => return Err(self.error(rc)),
            }
        }
        // SAFETY: `self.db` is an open handle.
        let changed = unsafe { ffi::sqlite3_changes64(self.db.as_ptr()) };
        Ok(u64::try_from(changed).unwrap_or(0))
    }

    fn check(&self, rc: c_int) -> Result<(), LiteError> {
        if rc == ffi::SQLITE_OK { Ok(()) } else { Err(self.error(rc)) }
    }

    /// The error for `rc`, with the connection's message when it has one.
    fn error(&self, rc: c_int) -> LiteError {
        // SAFETY: `self.db` is an open handle; the message is a NUL-terminated string SQLite
        // owns until the next call on the handle, and it is copied at once.
        let message = unsafe {
            let m = ffi::sqlite3_errmsg(self.db.as_ptr());
            if m.is_null() { errstr(rc) } else { CStr::from_ptr(m).to_string_lossy().into_owned() }
        };
        LiteError { code: rc, message }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // SAFETY: every statement was prepared on `self.db` and is finalized once, before the
        // handle is closed; nothing uses either afterwards.
        unsafe {
            for s in self.stmts.drain(..) {
                ffi::sqlite3_finalize(s.as_ptr());
            }
            ffi::sqlite3_close(self.db.as_ptr());
        }
    }
}

/// SQLite's text for a result code.
fn errstr(rc: c_int) -> String {
    // SAFETY: `sqlite3_errstr` returns a static NUL-terminated string for any code.
    unsafe { CStr::from_ptr(ffi::sqlite3_errstr(rc)).to_string_lossy().into_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch() -> (std::path::PathBuf, Connection) {
        static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("switchyard-lite-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let conn = Connection::open(&dir.join("t.db"), Duration::from_millis(100)).unwrap();
        (dir, conn)
    }

    #[test]
    fn values_round_trip_and_changes_are_counted() {
        let (dir, mut c) = scratch();
        c.execute("CREATE TABLE t (a TEXT PRIMARY KEY, b INTEGER, c REAL, d TEXT)").unwrap();
        let insert = c.prepare("INSERT INTO t VALUES (?, ?, ?, ?) ON CONFLICT (a) DO NOTHING").unwrap();
        {
            // Text borrowed from a buffer that is dropped right after: the statement keeps no
            // pointer to it (the next run binds anew, and reading back gets SQLite's copy).
            let owned = String::from("héllo \u{FFFD} 'quoted'");
            let row = [Value::Text(&owned), Value::Int(-7), Value::Real(0.25), Value::Null];
            assert_eq!(c.run(insert, &row).unwrap(), 1);
        }
        let again = [Value::Text("héllo \u{FFFD} 'quoted'"), Value::Int(1), Value::Null, Value::Null];
        assert_eq!(c.run(insert, &again).unwrap(), 0, "a conflict changes nothing");
        assert_eq!(c.run(insert, &[Value::Text("b"), Value::Null, Value::Null, Value::Text("")]).unwrap(), 1);
        drop(c);

        // Read back through sqlx: the same file, another library's view.
        let url = format!("sqlite:{}", dir.join("t.db").display());
        type Row = (String, Option<i64>, Option<f64>, Option<String>);
        let rows: Vec<Row> =
            tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
                use sqlx::Connection as _;
                let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
                sqlx::query_as("SELECT a, b, c, d FROM t ORDER BY a").fetch_all(&mut conn).await.unwrap()
            });
        assert_eq!(
            rows,
            [
                ("b".to_owned(), None, None, Some(String::new())),
                ("héllo \u{FFFD} 'quoted'".to_owned(), Some(-7), Some(0.25), None),
            ]
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn errors_carry_sqlite_code_and_message_and_leave_the_statement_usable() {
        let (dir, mut c) = scratch();
        let e = c.prepare("SELEC 1").unwrap_err();
        assert_eq!(e.code, ffi::SQLITE_ERROR);
        assert!(e.message.contains("syntax error"), "{e}");
        // One statement a text: a second is refused, not left unrun; a trailing `;` is fine.
        let e = c.execute("CREATE TABLE x (a); DROP TABLE x").unwrap_err();
        assert!(e.message.contains("more than one statement"), "{e}");
        c.prepare("SELECT 1;  ").unwrap();

        c.execute("CREATE TABLE t (a TEXT NOT NULL UNIQUE)").unwrap();
        let insert = c.prepare("INSERT INTO t VALUES (?)").unwrap();
        let e = c.run(insert, &[]).unwrap_err();
        assert_eq!(e.code, ffi::SQLITE_RANGE, "{e}");
        c.run(insert, &[Value::Text("x")]).unwrap();
        let e = c.run(insert, &[Value::Text("x")]).unwrap_err();
        assert_eq!(e.code & 0xff, ffi::SQLITE_CONSTRAINT, "{e}");
        let e = c.run(insert, &[Value::Null]).unwrap_err();
        assert_eq!(e.code & 0xff, ffi::SQLITE_CONSTRAINT, "{e}");
        assert!(e.message.contains("NOT NULL"), "{e}");
        assert_eq!(c.run(insert, &[Value::Text("y")]).unwrap(), 1, "usable after errors");
        assert_eq!(c.execute("DELETE FROM t").unwrap(), 2);
        drop(c);

        let missing = dir.join("no-such-dir").join("t.db");
        let e = Connection::open(&missing, Duration::ZERO).err().expect("a missing directory");
        assert_eq!(e.code, ffi::SQLITE_CANTOPEN, "{e}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_transaction_rolled_back_leaves_nothing() {
        let (dir, mut c) = scratch();
        c.execute("CREATE TABLE t (a INTEGER)").unwrap();
        let insert = c.prepare("INSERT INTO t VALUES (?)").unwrap();
        c.execute("BEGIN IMMEDIATE").unwrap();
        c.run(insert, &[Value::Int(1)]).unwrap();
        c.execute("ROLLBACK").unwrap();
        c.execute("BEGIN IMMEDIATE").unwrap();
        c.run(insert, &[Value::Int(2)]).unwrap();
        c.execute("COMMIT").unwrap();
        assert_eq!(c.execute("DELETE FROM t WHERE a = 1").unwrap(), 0, "the rolled back row is not there");
        assert_eq!(c.execute("DELETE FROM t WHERE a = 2").unwrap(), 1, "the committed one is");
        drop(c);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
