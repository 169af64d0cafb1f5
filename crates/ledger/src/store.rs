//! The ledger's database: SQLite (the embedded default) or PostgreSQL (shared by replicas),
//! opened from a URL, migrated at open, and read and written through the same methods.
//!
//! Runtime queries only, written once per backend (see `schema.rs`); rows are decoded by one
//! function generic over the backend's row type.

use std::borrow::Cow;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{AssertSqlSafe, ColumnIndex, Connection, Decode, Row, Type};

use crate::json::write_attempts;
use crate::record::{AttemptRecord, RequestRecord, Text};
use crate::schema::{self, Sql};

/// How long opening a database (or taking a connection later) may wait for it to answer.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a SQLite statement waits for another writer's lock before failing.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("ledger database {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("ledger database {url} did not answer: {cause}")]
    Unreachable { url: String, cause: sqlx::Error },
    #[error("ledger database {url} did not answer within {} s", CONNECT_TIMEOUT.as_secs())]
    Timeout { url: String },
    #[error("ledger database {url} is at schema version {found}, newer than this build knows ({known})")]
    NewerSchema { url: String, found: i64, known: usize },
    #[error("ledger database: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("ledger database: corrupt row: {0}")]
    Corrupt(String),
    #[error("ledger database: {0}")]
    Lite(#[from] crate::lite::LiteError),
    #[error("ledger database: injected write failure (Store::fail_next_writes)")]
    Injected,
}

/// Which database a [`Store`] talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// What a spend report groups by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    Cloud,
    Tenant,
    Key,
    Alias,
    Deployment,
}

/// One group's spend over a time range.
#[derive(Clone, Debug, PartialEq)]
pub struct SpendRow {
    /// The cloud, tenant, key id, alias or deployment; empty for requests that ran no attempt
    /// (no cloud, no deployment).
    pub key: String,
    pub requests: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
}

/// An open ledger database. Cheap to clone: clones share the connection pool.
#[derive(Clone)]
pub struct Store {
    pub(crate) db: Db,
    /// The URL without its password, for messages.
    url: Arc<str>,
    /// The SQLite file, for a store on one (not in memory): the ledger's writer opens a
    /// connection of its own to it (`direct.rs`).
    file: Option<Arc<Path>>,
    /// Writes still to fail on purpose ([`Store::fail_next_writes`]).
    faults: Arc<AtomicU32>,
}

#[derive(Clone)]
pub(crate) enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to the backend's pool: the body is compiled once per backend.
macro_rules! on_backend {
    ($db:expr, |$pool:ident| $body:expr) => {
        match $db {
            crate::store::Db::Sqlite($pool) => $body,
            crate::store::Db::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_backend;

// === impl StoreError ===

impl StoreError {
    /// A bounded label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            StoreError::BadUrl { .. } => "bad_url",
            StoreError::Unreachable { .. } => "unreachable",
            StoreError::Timeout { .. } => "timeout",
            StoreError::NewerSchema { .. } => "newer_schema",
            StoreError::Sql(_) | StoreError::Lite(_) => "sql",
            StoreError::Corrupt(_) => "corrupt",
            StoreError::Injected => "injected",
        }
    }
}

// === impl Group ===

impl Group {
    pub const ALL: [Group; 5] = [Group::Cloud, Group::Tenant, Group::Key, Group::Alias, Group::Deployment];

    fn column(self) -> &'static str {
        match self {
            Group::Cloud => "cloud",
            Group::Tenant => "tenant",
            Group::Key => "key_id",
            Group::Alias => "alias",
            Group::Deployment => "deployment",
        }
    }
}

// === impl Db ===

impl Db {
    /// `sql` in this backend's dialect.
    pub(crate) fn sql(&self, sql: Sql) -> &'static str {
        match self {
            Db::Sqlite(_) => sql.sqlite,
            Db::Postgres(_) => sql.postgres,
        }
    }
}

// === impl Store ===

impl Store {
    /// Opens the ledger at `url` and brings its schema up to date.
    ///
    /// - `sqlite:PATH`, `sqlite://PATH` or a bare path: a SQLite file, created when missing, in
    ///   WAL mode with `synchronous=NORMAL`; `sqlite::memory:` for a private in-memory database.
    /// - `postgres://USER[:PASSWORD]@HOST[:PORT]/DB` (or `postgresql://`): PostgreSQL, without
    ///   TLS (meant for loopback or a private network).
    ///
    /// A database that does not answer within [`CONNECT_TIMEOUT`] is an error naming the URL
    /// (without its password).
    ///
    /// On a SQLite file, what the pending logs of writers that died hold is applied first
    /// (`pending.rs`), so the store holds every record a receipt was given for.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        let shown: Arc<str> = redact(url).into();
        let bad = |reason: String| StoreError::BadUrl { url: shown.to_string(), reason };
        let mut file = None;
        let db = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url).map_err(|e| bad(e.to_string()))?;
            // One plain connection first: the pool retries a refused connection until its
            // timeout, and then reports only the timeout; this fails at once, with the cause.
            connect(PgConnection::connect_with(&options), &shown).await?.close().await?;
            let pool = PgPoolOptions::new().max_connections(4).acquire_timeout(CONNECT_TIMEOUT).connect_with(options);
            Db::Postgres(connect(pool, &shown).await?)
        } else {
            let options = sqlite_options(url).map_err(bad)?;
            let memory = url.contains(":memory:") || url.contains("mode=memory");
            if !memory {
                file = Some(Arc::from(options.get_filename()));
            }
            let pool = SqlitePoolOptions::new().acquire_timeout(CONNECT_TIMEOUT);
            // An in-memory database lives as long as its one connection.
            let pool = match memory {
                true => pool.max_connections(1).min_connections(1).idle_timeout(None).max_lifetime(None),
                false => pool.max_connections(4),
            };
            Db::Sqlite(connect(pool.connect_with(options), &shown).await?)
        };
        let store = Store { db, url: shown, file, faults: Arc::new(AtomicU32::new(0)) };
        store.migrate().await?;
        if let Some(file) = &store.file {
            crate::pending::take_orphans(&store, file).await;
        }
        Ok(store)
    }

    pub fn backend(&self) -> Backend {
        match self.db {
            Db::Sqlite(_) => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    /// The URL it was opened with, password replaced by `***`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Closes the pool; clones of this store stop working too. (A [`crate::Ledger`] on a SQLite
    /// file writes through a connection of its own, closed when the ledger shuts down.)
    pub async fn close(&self) {
        match &self.db {
            Db::Sqlite(pool) => pool.close().await,
            Db::Postgres(pool) => pool.close().await,
        }
    }

    /// A test hook: makes the next `n` calls of [`Store::insert_batch`] (on this store or any
    /// clone) fail with [`StoreError::Injected`], as a full disk or a lost database would,
    /// without touching the database. `0` clears it.
    pub fn fail_next_writes(&self, n: u32) {
        self.faults.store(n, Ordering::SeqCst);
    }

    /// Whether failures asked for by [`Store::fail_next_writes`] are left.
    pub(crate) fn faults_pending(&self) -> bool {
        self.faults.load(Ordering::SeqCst) > 0
    }

    /// Takes one of the failures [`Store::fail_next_writes`] asked for, if any are left.
    pub(crate) fn take_fault(&self) -> bool {
        self.faults.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok()
    }

    /// The SQLite file this store is on; `None` for PostgreSQL and an in-memory database.
    pub(crate) fn sqlite_file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// Applies the migrations the database has not had, in one transaction; on PostgreSQL under
    /// an advisory lock, so that replicas starting together migrate once.
    async fn migrate(&self) -> Result<(), StoreError> {
        let now = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis())
            .unwrap_or(i64::MAX);
        let migrations = match self.backend() {
            Backend::Sqlite => schema::SQLITE,
            Backend::Postgres => schema::POSTGRES,
        };
        let (current, record) = (self.db.sql(schema::CURRENT_VERSION), self.db.sql(schema::RECORD_VERSION));
        on_backend!(&self.db, |pool| {
            let mut tx = pool.begin().await?;
            // Lock first: even `CREATE TABLE IF NOT EXISTS` races on PostgreSQL.
            if self.backend() == Backend::Postgres {
                sqlx::query(schema::PG_MIGRATION_LOCK).execute(&mut *tx).await?;
            }
            sqlx::query(schema::VERSION_TABLE).execute(&mut *tx).await?;
            let found: i64 = sqlx::query(current).fetch_one(&mut *tx).await?.try_get("v")?;
            let done = usize::try_from(found).unwrap_or(0);
            if done > migrations.len() {
                return Err(StoreError::NewerSchema { url: self.url.to_string(), found, known: migrations.len() });
            }
            for (i, statements) in migrations.iter().enumerate().skip(done) {
                for statement in *statements {
                    sqlx::query(*statement).execute(&mut *tx).await?;
                }
                let version = i64::try_from(i + 1).unwrap_or(i64::MAX);
                sqlx::query(record).bind(version).bind(now).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Writes `records` in one transaction and returns how many were new: a record whose
    /// `request_id` is already there (re-sent, replayed from the spool) is skipped.
    pub async fn insert_batch(&self, records: &[RequestRecord]) -> Result<u64, StoreError> {
        if self.take_fault() {
            return Err(StoreError::Injected);
        }
        if records.is_empty() {
            return Ok(0);
        }
        let inserted = match &self.db {
            Db::Sqlite(pool) => insert_sqlite(pool, records).await?,
            Db::Postgres(pool) => {
                let rows: Vec<Bound<'_>> = records.iter().map(Bound::of).collect();
                insert_postgres(pool, &rows).await?
            }
        };
        Ok(inserted)
    }

    /// How many requests the ledger holds.
    pub async fn count(&self) -> Result<u64, StoreError> {
        let q = self.db.sql(schema::COUNT_REQUESTS);
        let n: i64 = on_backend!(&self.db, |pool| sqlx::query(q).fetch_one(pool).await?.try_get("n")?);
        Ok(nat(n))
    }

    /// The record of one request, if the ledger has it.
    pub async fn get(&self, request_id: &str) -> Result<Option<RequestRecord>, StoreError> {
        let q = self.db.sql(schema::GET_REQUEST);
        on_backend!(&self.db, |pool| {
            let row = sqlx::query(q).bind(request_id).fetch_optional(pool).await?;
            row.as_ref().map(record_of).transpose()
        })
    }

    /// The latest `limit` requests, newest first (the same arrival time in request-id order).
    pub async fn recent(&self, limit: u32) -> Result<Vec<RequestRecord>, StoreError> {
        let q = self.db.sql(schema::RECENT);
        on_backend!(&self.db, |pool| {
            let rows = sqlx::query(q).bind(i64::from(limit)).fetch_all(pool).await?;
            rows.iter().map(record_of).collect()
        })
    }

    /// Spend per `group` over requests that arrived in `[from_ms, to_ms)`, most costly first. A
    /// request's whole cost goes to its last deployment (and that deployment's cloud).
    pub async fn spend(&self, group: Group, from_ms: i64, to_ms: i64) -> Result<Vec<SpendRow>, StoreError> {
        // The column comes from a closed enum, never from the caller's text.
        let q = self.db.sql(schema::SPEND).replace("{col}", group.column());
        on_backend!(&self.db, |pool| {
            let rows = sqlx::query(AssertSqlSafe(q.as_str())).bind(from_ms).bind(to_ms).fetch_all(pool).await?;
            rows.iter().map(spend_of).collect()
        })
    }

    /// The cost of the requests answered by any of `deployments` in `[from_ms, to_ms)`: what a
    /// commitment over those deployments has burned.
    pub async fn spend_for_deployments(
        &self,
        deployments: &[String],
        from_ms: i64,
        to_ms: i64,
    ) -> Result<f64, StoreError> {
        if deployments.is_empty() {
            return Ok(0.0);
        }
        let rows = self.spend(Group::Deployment, from_ms, to_ms).await?;
        Ok(rows.iter().filter(|r| deployments.contains(&r.key)).map(|r| r.cost_usd).sum())
    }
}

/// SQLite: a batch of up to 512 records is one multi-row `INSERT`, which is its own
/// transaction: one round trip to the connection's thread (no `BEGIN`, no `COMMIT`). Its text
/// is one of a few fixed sizes ([`SQLITE_SIZES`]), so sqlx prepares each once per connection
/// and caches it, instead of SQLite parsing a new text per batch. Text is bound as `Arc<str>`,
/// which sqlx hands to SQLite without copying it again. A larger batch is several statements
/// in one transaction.
async fn insert_sqlite(pool: &SqlitePool, records: &[RequestRecord]) -> Result<u64, sqlx::Error> {
    if records.len() <= SQLITE_MAX_ROWS {
        return insert_sqlite_rows(pool, records).await;
    }
    let mut tx = pool.begin().await?;
    let mut inserted = 0;
    for chunk in records.chunks(SQLITE_MAX_ROWS) {
        inserted += insert_sqlite_rows(&mut *tx, chunk).await?;
    }
    tx.commit().await?;
    Ok(inserted)
}

/// Rows per statement at most: 20 values each keeps it well under SQLite's 32,766 bound values.
const SQLITE_MAX_ROWS: usize = 512;

/// The statement sizes: a batch of n rows uses the smallest size that holds it and repeats its
/// last row to fill the rest; a repeated row is a conflict, skipped, so the count of inserted
/// rows is unchanged. At most a quarter of a statement's rows are padding past 8.
const SQLITE_SIZES: &[usize] = &[
    1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 28, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320,
    384, 448, 512,
];

/// The statement for `rows` rows (at most [`SQLITE_MAX_ROWS`]) and the number of rows it takes.
pub(crate) fn sqlite_insert_sql(rows: usize) -> (usize, &'static str) {
    static SQL: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let texts = SQL.get_or_init(|| {
        SQLITE_SIZES
            .iter()
            .map(|&n| {
                let row = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
                let mut sql = String::from(schema::INSERT_REQUESTS_SQLITE_HEAD);
                sql.push_str(" VALUES ");
                for i in 0..n {
                    if i > 0 {
                        sql.push(',');
                    }
                    sql.push_str(row);
                }
                sql.push_str(" ON CONFLICT (request_id) DO NOTHING");
                sql
            })
            .collect()
    });
    let i = SQLITE_SIZES.partition_point(|&n| n < rows).min(SQLITE_SIZES.len() - 1);
    (SQLITE_SIZES[i], texts[i].as_str())
}

/// One statement: `records` (at most [`SQLITE_MAX_ROWS`]), the last repeated up to the
/// statement's size. Returns how many were new.
async fn insert_sqlite_rows<'c>(
    conn: impl sqlx::Executor<'c, Database = sqlx::Sqlite>,
    records: &[RequestRecord],
) -> Result<u64, sqlx::Error> {
    let (size, sql) = sqlite_insert_sql(records.len());
    let mut q = sqlx::query(sql);
    let owned = |s: &str| -> Arc<str> { Arc::from(text(s)) };
    let mut last = None;
    for r in records {
        let mut attempts = String::with_capacity(2 + r.attempts.len() * 96);
        write_attempts(&mut attempts, &r.attempts);
        let texts: [Option<Arc<str>>; 11] = [
            Some(owned(&r.request_id)),
            Some(owned(&r.tenant)),
            Some(owned(&r.key_id)),
            Some(owned(&r.alias)),
            r.deployment.as_deref().map(owned),
            r.cloud.as_deref().map(owned),
            r.region.as_deref().map(owned),
            r.jurisdiction.as_deref().map(owned),
            Some(owned(&r.protocol)),
            Some(owned(&r.outcome)),
            Some(Arc::from(attempts)),
        ];
        q = bind_row(q, r, &texts);
        last = Some((r, texts));
    }
    if let Some((r, texts)) = &last {
        for _ in records.len()..size {
            q = bind_row(q, r, texts);
        }
    }
    Ok(q.execute(conn).await?.rows_affected())
}

/// Binds one row: `t` holds its text columns, in column order.
fn bind_row<'q>(
    q: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>,
    r: &RequestRecord,
    t: &[Option<Arc<str>>; 11],
) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments> {
    q.bind(t[0].clone())
        .bind(r.at_ms)
        .bind(t[1].clone())
        .bind(t[2].clone())
        .bind(t[3].clone())
        .bind(t[4].clone())
        .bind(t[5].clone())
        .bind(t[6].clone())
        .bind(t[7].clone())
        .bind(t[8].clone())
        .bind(r.stream)
        .bind(i64::from(r.status))
        .bind(t[9].clone())
        .bind(int(r.input_tokens))
        .bind(int(r.output_tokens))
        .bind(int(r.cached_tokens))
        .bind(stored_cost(r.cost_usd))
        .bind(int(r.latency_ms))
        .bind(r.ttft_ms.map(int))
        .bind(t[10].clone())
}

/// Non-finite costs are stored as 0 (SQLite would turn NaN into NULL, JSON has no NaN).
pub(crate) fn stored_cost(v: f64) -> f64 {
    if v.is_finite() { v } else { 0.0 }
}

/// PostgreSQL: the whole batch in one statement, one array per column (`UNNEST`), so a batch
/// costs one round trip instead of one per record.
async fn insert_postgres(pool: &PgPool, rows: &[Bound<'_>]) -> Result<u64, sqlx::Error> {
    fn col<'a, T>(rows: &'a [Bound<'_>], f: impl Fn(&'a RequestRecord) -> T) -> Vec<T> {
        rows.iter().map(|row| f(row.record)).collect()
    }
    let mut tx = pool.begin().await?;
    let inserted = sqlx::query(schema::INSERT_REQUESTS_POSTGRES)
        .bind(col(rows, |r| text(&r.request_id)))
        .bind(col(rows, |r| r.at_ms))
        .bind(col(rows, |r| text(&r.tenant)))
        .bind(col(rows, |r| text(&r.key_id)))
        .bind(col(rows, |r| text(&r.alias)))
        .bind(col(rows, |r| opt(&r.deployment)))
        .bind(col(rows, |r| opt(&r.cloud)))
        .bind(col(rows, |r| opt(&r.region)))
        .bind(col(rows, |r| opt(&r.jurisdiction)))
        .bind(col(rows, |r| text(&r.protocol)))
        .bind(col(rows, |r| r.stream))
        .bind(col(rows, |r| i64::from(r.status)))
        .bind(col(rows, |r| text(&r.outcome)))
        .bind(col(rows, |r| int(r.input_tokens)))
        .bind(col(rows, |r| int(r.output_tokens)))
        .bind(col(rows, |r| int(r.cached_tokens)))
        .bind(rows.iter().map(|row| row.cost_usd).collect::<Vec<_>>())
        .bind(col(rows, |r| int(r.latency_ms)))
        .bind(col(rows, |r| r.ttft_ms.map(int)))
        .bind(rows.iter().map(|row| text(&row.attempts)).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    Ok(inserted)
}

/// Connects (a pool: its first connection) within [`CONNECT_TIMEOUT`].
async fn connect<P>(pool: impl Future<Output = Result<P, sqlx::Error>>, url: &Arc<str>) -> Result<P, StoreError> {
    match tokio::time::timeout(CONNECT_TIMEOUT + Duration::from_millis(500), pool).await {
        Ok(Ok(pool)) => Ok(pool),
        Ok(Err(sqlx::Error::PoolTimedOut)) | Err(_) => Err(StoreError::Timeout { url: url.to_string() }),
        Ok(Err(cause)) => Err(StoreError::Unreachable { url: url.to_string(), cause }),
    }
}

fn sqlite_options(url: &str) -> Result<SqliteConnectOptions, String> {
    let options = if url.starts_with("sqlite:") {
        SqliteConnectOptions::from_str(url).map_err(|e| e.to_string())?
    } else if url.is_empty() {
        return Err("empty; expected sqlite:PATH, a path, or postgres://…".to_owned());
    } else if url.contains("://") {
        return Err("unknown scheme; expected sqlite:PATH, a path, or postgres://…".to_owned());
    } else {
        SqliteConnectOptions::new().filename(url)
    };
    Ok(options
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(BUSY_TIMEOUT))
}

/// `url` with the password (in the authority or a `password=` parameter) replaced by `***`.
pub(crate) fn redact(url: &str) -> String {
    let Some(start) = url.find("://").map(|i| i + 3) else { return url.to_owned() };
    let rest = &url[start..];
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let mut out = url[..start].to_owned();
    match authority.rfind('@') {
        Some(at) => {
            let user = &authority[..at];
            match user.split_once(':') {
                Some((name, _)) => out.extend([name, ":***"]),
                None => out.push_str(user),
            }
            out.push_str(&authority[at..]);
        }
        None => out.push_str(authority),
    }
    match tail.split_once('?') {
        Some((path, query)) => {
            out.extend([path, "?"]);
            let params: Vec<&str> = query
                .split('&')
                .map(|p| match p.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => "password=***",
                    _ => p,
                })
                .collect();
            out.push_str(&params.join("&"));
        }
        None => out.push_str(tail),
    }
    out
}

/// A record's values that need preparing before they are bound.
struct Bound<'a> {
    record: &'a RequestRecord,
    attempts: String,
    /// Non-finite costs are stored as 0 (SQLite would turn NaN into NULL).
    cost_usd: f64,
}

impl<'a> Bound<'a> {
    fn of(record: &'a RequestRecord) -> Bound<'a> {
        let mut attempts = String::with_capacity(2 + record.attempts.len() * 96);
        write_attempts(&mut attempts, &record.attempts);
        Bound { record, attempts, cost_usd: stored_cost(record.cost_usd) }
    }
}

/// Text as stored: PostgreSQL refuses NUL in text, so both backends store U+FFFD instead.
pub(crate) fn text(s: &str) -> Cow<'_, str> {
    match s.contains('\0') {
        true => Cow::Owned(s.replace('\0', "\u{FFFD}")),
        false => Cow::Borrowed(s),
    }
}

pub(crate) fn opt(v: &Option<Text>) -> Option<Cow<'_, str>> {
    v.as_deref().map(text)
}

/// A count as stored (clamped to `i64::MAX`).
pub(crate) fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A count as read back (negative values, which the ledger never writes, read as 0).
pub(crate) fn nat(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn record_of<'r, R>(r: &'r R) -> Result<RequestRecord, StoreError>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    bool: Decode<'r, R::Database> + Type<R::Database>,
    f64: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
{
    let attempts: String = r.try_get("attempts")?;
    let attempts: Vec<AttemptRecord> =
        serde_json::from_str(&attempts).map_err(|e| StoreError::Corrupt(format!("attempts: {e}")))?;
    let status: i64 = r.try_get("status")?;
    Ok(RequestRecord {
        request_id: r.try_get::<String, _>("request_id")?.into(),
        at_ms: r.try_get("at_ms")?,
        tenant: r.try_get::<String, _>("tenant")?.into(),
        key_id: r.try_get::<String, _>("key_id")?.into(),
        alias: r.try_get::<String, _>("alias")?.into(),
        deployment: r.try_get::<Option<String>, _>("deployment")?.map(Text::from),
        cloud: r.try_get::<Option<String>, _>("cloud")?.map(Text::from),
        region: r.try_get::<Option<String>, _>("region")?.map(Text::from),
        jurisdiction: r.try_get::<Option<String>, _>("jurisdiction")?.map(Text::from),
        protocol: r.try_get::<String, _>("protocol")?.into(),
        stream: r.try_get("stream")?,
        status: u16::try_from(status).map_err(|_| StoreError::Corrupt(format!("status {status}")))?,
        outcome: r.try_get::<String, _>("outcome")?.into(),
        input_tokens: nat(r.try_get("input_tokens")?),
        output_tokens: nat(r.try_get("output_tokens")?),
        cached_tokens: nat(r.try_get("cached_tokens")?),
        cost_usd: r.try_get("cost_usd")?,
        latency_ms: nat(r.try_get("latency_ms")?),
        ttft_ms: r.try_get::<Option<i64>, _>("ttft_ms")?.map(nat),
        attempts,
    })
}

fn spend_of<'r, R>(r: &'r R) -> Result<SpendRow, StoreError>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    f64: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(SpendRow {
        key: r.try_get("k")?,
        requests: nat(r.try_get("requests")?),
        input_tokens: nat(r.try_get("input_tokens")?),
        output_tokens: nat(r.try_get("output_tokens")?),
        cost_usd: r.try_get("cost_usd")?,
    })
}
