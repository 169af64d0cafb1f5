//! The ledger writer's own connection to a SQLite file: a batch is one transaction in which one
//! prepared single-row `INSERT` runs once per record, its text bound in place from the record,
//! on the writer's thread. No pool, no channel to a connection thread, no copy of a value.
//!
//! Used by [`crate::Ledger`] for a SQLite file; an in-memory database (private to the pool's one
//! connection), PostgreSQL and direct calls of [`crate::Store::insert_batch`] go through sqlx.

use std::borrow::Cow;
use std::path::Path;

use crate::json::write_attempts;
use crate::lite::{Connection, LiteError, Stmt, Value};
use crate::record::RequestRecord;
use crate::store::{BUSY_TIMEOUT, int, opt, sqlite_insert_sql, stored_cost, text};

/// A connection with the writer's statements prepared.
pub(crate) struct Direct {
    conn: Connection,
    insert: Stmt,
    begin: Stmt,
    commit: Stmt,
    rollback: Stmt,
    /// The `attempts` JSON of the record being written: one buffer, reused.
    attempts: String,
}

// === impl Direct ===

impl Direct {
    /// Opens the SQLite file a [`crate::Store`] was opened on (its schema is up to date), with the
    /// store's settings: WAL, `synchronous=NORMAL`, the same busy timeout.
    pub(crate) fn open(path: &Path) -> Result<Direct, LiteError> {
        let mut conn = Connection::open(path, BUSY_TIMEOUT)?;
        conn.execute("PRAGMA journal_mode = WAL")?;
        conn.execute("PRAGMA synchronous = NORMAL")?;
        // The store's single-row statement (its smallest size is one row).
        let (_, insert) = sqlite_insert_sql(1);
        Ok(Direct {
            insert: conn.prepare(insert)?,
            begin: conn.prepare("BEGIN IMMEDIATE")?,
            commit: conn.prepare("COMMIT")?,
            rollback: conn.prepare("ROLLBACK")?,
            conn,
            attempts: String::new(),
        })
    }

    /// Writes `records` in one transaction (a single record commits as its statement ends) and
    /// returns how many were new: a `request_id` already stored is skipped. When this returns
    /// `Ok`, the transaction committed; on `Err` nothing of it is kept.
    pub(crate) fn insert(&mut self, records: &[RequestRecord]) -> Result<u64, LiteError> {
        if let [record] = records {
            return self.insert_one(record);
        }
        self.conn.run(self.begin, &[])?;
        match self.insert_each(records).and_then(|n| self.conn.run(self.commit, &[]).map(|_| n)) {
            Ok(inserted) => Ok(inserted),
            Err(error) => {
                // The transaction may be open still (a failed statement or `COMMIT`); an error
                // here means SQLite already rolled it back.
                let _ = self.conn.run(self.rollback, &[]);
                Err(error)
            }
        }
    }

    fn insert_each(&mut self, records: &[RequestRecord]) -> Result<u64, LiteError> {
        let mut inserted = 0;
        for r in records {
            inserted += self.insert_one(r)?;
        }
        Ok(inserted)
    }

    fn insert_one(&mut self, r: &RequestRecord) -> Result<u64, LiteError> {
        self.attempts.clear();
        write_attempts(&mut self.attempts, &r.attempts);
        let (id, tenant, key, alias) = (text(&r.request_id), text(&r.tenant), text(&r.key_id), text(&r.alias));
        let (protocol, outcome) = (text(&r.protocol), text(&r.outcome));
        let (deployment, cloud, region, jurisdiction) =
            (opt(&r.deployment), opt(&r.cloud), opt(&r.region), opt(&r.jurisdiction));
        let row = [
            Value::Text(&id),
            Value::Int(r.at_ms),
            Value::Text(&tenant),
            Value::Text(&key),
            Value::Text(&alias),
            maybe(&deployment),
            maybe(&cloud),
            maybe(&region),
            maybe(&jurisdiction),
            Value::Text(&protocol),
            Value::Int(i64::from(r.stream)),
            Value::Int(i64::from(r.status)),
            Value::Text(&outcome),
            Value::Int(int(r.input_tokens)),
            Value::Int(int(r.output_tokens)),
            Value::Int(int(r.cached_tokens)),
            Value::Real(stored_cost(r.cost_usd)),
            Value::Int(int(r.latency_ms)),
            r.ttft_ms.map_or(Value::Null, |v| Value::Int(int(v))),
            Value::Text(&self.attempts),
        ];
        self.conn.run(self.insert, &row)
    }
}

/// An optional text column's value.
fn maybe<'a>(v: &'a Option<Cow<'_, str>>) -> Value<'a> {
    v.as_deref().map_or(Value::Null, Value::Text)
}

#[cfg(test)]
mod tests {
    use switchyard_testkit::TempDir;

    use super::*;
    use crate::record::{AttemptRecord, Text};
    use crate::store::{Db, Store};

    fn record(id: &str) -> RequestRecord {
        let mut r = RequestRecord::new(id, 1_000, "tenant", "key_0");
        (r.alias, r.deployment, r.cloud) = ("chat".into(), Some("aws-d0".into()), Some(Text::from_static("aws")));
        (r.input_tokens, r.output_tokens, r.cost_usd, r.ttft_ms) = (100, 10, 0.25, Some(20));
        r.attempts.push(AttemptRecord {
            deployment: "aws-d0".into(),
            outcome: Text::from_static("ok"),
            started_ms: 0,
            duration_ms: 50,
            output_tokens: 10,
        });
        r
    }

    async fn open(dir: &TempDir) -> (Store, Direct) {
        let store = Store::open(&format!("sqlite:{}", dir.path().join("ledger.db").display())).await.unwrap();
        let direct = Direct::open(store.sqlite_file().expect("a SQLite file")).unwrap();
        (store, direct)
    }

    #[tokio::test]
    async fn records_read_back_as_written_and_only_new_ones_count() {
        let dir = TempDir::new("switchyard-direct").unwrap();
        let (store, mut direct) = open(&dir).await;
        let mut odd = record("req-odd");
        (odd.tenant, odd.region, odd.cost_usd, odd.input_tokens) = ("nul\0here".into(), None, f64::NAN, u64::MAX);
        (odd.ttft_ms, odd.status, odd.stream) = (None, 499, true);
        odd.attempts[0].outcome = "quote\" \\ \n nul\0".into();

        assert_eq!(direct.insert(&[record("req-1"), record("req-1"), odd.clone()]).unwrap(), 2, "a repeat in a batch");
        assert_eq!(direct.insert(&[record("req-1"), record("req-2")]).unwrap(), 1, "one already stored");
        assert_eq!(direct.insert(&[record("req-2")]).unwrap(), 0, "a batch of one");
        assert_eq!(direct.insert(&[]).unwrap(), 0);
        assert_eq!(store.count().await.unwrap(), 3);

        assert_eq!(store.get("req-2").await.unwrap(), Some(record("req-2")));
        let back = store.get("req-odd").await.unwrap().unwrap();
        assert_eq!((back.tenant.as_str(), back.region, back.cost_usd), ("nul\u{FFFD}here", None, 0.0));
        assert_eq!((back.input_tokens, back.ttft_ms, back.status, back.stream), (i64::MAX as u64, None, 499, true));
        assert_eq!(back.attempts[0].outcome, "quote\" \\ \n nul\u{FFFD}");
    }

    #[tokio::test]
    async fn a_batch_that_fails_part_way_keeps_nothing() {
        let dir = TempDir::new("switchyard-direct").unwrap();
        let (store, mut direct) = open(&dir).await;
        // A failure on the second record of three, as a full disk would fail a write.
        let trigger = "CREATE TRIGGER boom BEFORE INSERT ON requests WHEN NEW.request_id = 'req-boom'
            BEGIN SELECT RAISE(ABORT, 'boom'); END";
        let Db::Sqlite(pool) = &store.db else { unreachable!("a SQLite store") };
        sqlx::query(trigger).execute(pool).await.unwrap();

        let error = direct.insert(&[record("req-a"), record("req-boom"), record("req-c")]).unwrap_err();
        assert!(error.message.contains("boom"), "{error}");
        assert!(direct.insert(&[record("req-boom")]).is_err());
        assert_eq!(store.count().await.unwrap(), 0, "none of the failed batch is kept");
        // The connection is still good, and the same records go in once the cause is gone.
        sqlx::query("DROP TRIGGER boom").execute(pool).await.unwrap();
        assert_eq!(direct.insert(&[record("req-a"), record("req-boom"), record("req-c")]).unwrap(), 3);
        assert_eq!(store.count().await.unwrap(), 3);
    }
}
