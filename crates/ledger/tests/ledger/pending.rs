//! The pending log beside a SQLite file: receipts resolve once a record is in it, a flush (or
//! its time) applies it, a dead writer's log is applied when the store opens and a running
//! writer's is not, and a failed apply sends records through the queue until the files apply.

use std::time::Duration;

use switchyard_ledger::{Durable, Ledger, Policy, Settings, Store};

use crate::common::{Case, pending_bytes, pending_file, record};

/// Records wait in the log until a flush: nothing is applied on its own during a test.
fn held() -> Settings {
    Settings {
        apply: Duration::from_secs(3_600),
        batch: 100_000,
        retry_min: Duration::from_millis(1),
        retry_max: Duration::from_millis(5),
        ..Settings::default()
    }
}

fn sqlite_pool(store: &Store) -> sqlx::SqlitePool {
    // The tests reach the database beside the store, for triggers.
    let url = store.url().to_owned();
    sqlx::sqlite::SqlitePoolOptions::new().max_connections(1).connect_lazy(&url).unwrap()
}

#[tokio::test]
async fn a_receipt_means_in_the_log_and_a_flush_applies_it() {
    let case = Case::sqlite();
    let store = case.open().await;
    let ledger = Ledger::start(store.clone(), held());
    for i in 0..10 {
        assert_eq!(ledger.submit(record(i)).await.unwrap().await, Ok(Durable::Committed));
    }
    assert_eq!(store.count().await.unwrap(), 0, "held in the log");
    assert!(pending_bytes(case.dir()) > 0);
    assert_eq!(ledger.depth(), 10, "the depth counts records waiting in the log");
    assert_eq!(ledger.flush().await.written, 10);
    assert_eq!(store.count().await.unwrap(), 10);
    assert_eq!(pending_bytes(case.dir()), 0, "emptied once applied");
    assert_eq!(store.get("req-7").await.unwrap(), Some(record(7)));
    // Its time applies it too.
    let ledger2 = Ledger::start(store.clone(), Settings { apply: Duration::from_millis(1), ..held() });
    ledger2.submit(record(10)).await.unwrap().await.unwrap();
    while store.count().await.unwrap() < 11 {
        tokio::task::yield_now().await;
    }
    assert_eq!(ledger.shutdown().await.written, 10);
    assert_eq!(ledger2.shutdown().await.written, 1);
}

#[tokio::test]
async fn a_dead_writers_log_is_applied_at_open_and_a_running_writers_is_not() {
    let case = Case::sqlite();
    let store = case.open().await;
    // A running writer holds the first pair; a second writer on the same file takes the next.
    let running = Ledger::start(store.clone(), held());
    running.submit(record(1)).await.unwrap().await.unwrap();
    let second = Ledger::start(store.clone(), held());
    second.submit(record(2)).await.unwrap().await.unwrap();
    assert!(case.dir().join("ledger.db-pending-1-0").exists(), "a pair of its own");
    assert_eq!(case.open().await.count().await.unwrap(), 0, "running writers' logs are theirs");

    // What a writer that died left: whole lines, a blank one, and a torn last one.
    let mut lines = String::new();
    for i in 20..25 {
        lines.push_str(&serde_json::to_string(&record(i)).unwrap());
        lines.push_str("\n\n");
    }
    lines.push_str(r#"{"request_id":"req-torn","at_"#);
    let dead = case.dir().join("ledger.db-pending-7-1");
    let mut bytes = pending_file(&lines);
    // A line written past the header's length (the process died before the header said so).
    bytes.extend_from_slice(serde_json::to_string(&record(99)).unwrap().as_bytes());
    std::fs::write(&dead, bytes).unwrap();
    // And files that are not pending logs, or hold nothing, are left as they are.
    std::fs::write(case.dir().join("ledger.db-pending-8-0"), "not a log").unwrap();
    std::fs::write(case.dir().join("ledger.db-pending-8-1"), pending_file("")).unwrap();
    let reopened = case.open().await;
    assert_eq!(reopened.count().await.unwrap(), 5, "the dead writer's log, not the running ones'");
    let header = std::fs::read(&dead).unwrap()[..16].to_vec();
    assert_eq!(header, pending_file("")[..16], "emptied (its header says 0), not removed");
    assert_eq!(reopened.get("req-22").await.unwrap(), Some(record(22)));
    assert_eq!(case.open().await.count().await.unwrap(), 5, "applied once");

    running.shutdown().await;
    second.shutdown().await;
    assert_eq!(store.count().await.unwrap(), 7);
    assert_eq!(pending_bytes(case.dir()), 0);
}

#[tokio::test]
async fn a_failed_apply_sends_records_through_the_queue_until_the_log_applies() {
    let case = Case::sqlite();
    let store = case.open().await;
    let pool = sqlite_pool(&store);
    let ledger = Ledger::start(store.clone(), Settings { on_failure: Policy::Refuse, ..held() });
    for i in 0..5 {
        ledger.submit(record(i)).await.unwrap().await.unwrap();
    }
    // The database refuses one of the logged records, as a full disk would refuse them all.
    sqlx::query(
        "CREATE TRIGGER boom BEFORE INSERT ON requests WHEN NEW.request_id = 'req-3'
         BEGIN SELECT RAISE(ABORT, 'boom'); END",
    )
    .execute(&pool)
    .await
    .unwrap();
    let counts = ledger.flush().await;
    assert!(counts.failed >= 1, "{counts:?}");
    assert_eq!(store.count().await.unwrap(), 0, "nothing of the failed transaction");
    assert!(pending_bytes(case.dir()) > 0, "still in the log");
    // The log is closed: a new record goes through the queue, committed by the writer.
    assert_eq!(ledger.submit(record(5)).await.unwrap().await, Ok(Durable::Committed));
    assert_eq!(store.count().await.unwrap(), 1);
    assert_eq!(ledger.depth(), 0);
    // Once the cause is gone the files apply and the log takes records again.
    sqlx::query("DROP TRIGGER boom").execute(&pool).await.unwrap();
    ledger.flush().await;
    assert_eq!(store.count().await.unwrap(), 6);
    assert_eq!(pending_bytes(case.dir()), 0);
    ledger.submit(record(6)).await.unwrap().await.unwrap();
    assert_eq!(ledger.depth(), 1, "in the log again");
    let counts = ledger.shutdown().await;
    assert_eq!((counts.written, counts.lost), (7, 0));
    assert_eq!(store.count().await.unwrap(), 7);
}

#[tokio::test]
async fn a_record_is_in_the_log_when_submit_returns() {
    let case = Case::sqlite();
    let store = case.open().await;
    let ledger = Ledger::start(store.clone(), held());
    // Its receipt is resolved already: the record was written before `submit` returned.
    let receipt = ledger.try_submit(record(1)).unwrap();
    assert_eq!(ledger.depth(), 1);
    let bytes = pending_bytes(case.dir());
    assert!(bytes > 0);
    assert_eq!(receipt.await, Ok(Durable::Committed));
    let receipt = ledger.submit(record(2)).await.unwrap();
    assert!(pending_bytes(case.dir()) > bytes);
    assert_eq!(receipt.await, Ok(Durable::Committed));
    assert_eq!(ledger.shutdown().await.written, 2);
    assert_eq!(store.count().await.unwrap(), 2);
}

#[tokio::test]
async fn a_full_log_applies_at_once_and_sends_the_record_through_the_queue() {
    let case = Case::sqlite();
    let store = case.open().await;
    let ledger = Ledger::start(store.clone(), held());
    // Long text fills a 4 MiB file in a few hundred records.
    let big = |i: usize| {
        let mut r = record(i);
        r.alias = "x".repeat(20_000).into();
        r
    };
    let mut n = 0;
    while ledger.depth() == n {
        assert_eq!(ledger.submit(big(n)).await.unwrap().await, Ok(Durable::Committed));
        n += 1;
        assert!(n < 1_000, "the log never filled");
    }
    // The record that did not fit went through the queue; the full file made the writer apply
    // what the log held without waiting for its hour.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while store.count().await.unwrap() < n as u64 {
        assert!(std::time::Instant::now() < deadline, "the full log was not applied");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // And the log takes records again.
    ledger.submit(record(5_000)).await.unwrap().await.unwrap();
    assert_eq!(ledger.depth(), 1);
    let counts = ledger.shutdown().await;
    assert_eq!((counts.written, counts.lost), (n as u64 + 1, 0));
    assert_eq!(store.count().await.unwrap(), n as u64 + 1);
}

#[tokio::test]
async fn a_writer_that_claims_a_log_holding_records_applies_them_first() {
    let case = Case::sqlite();
    let store = case.open().await;
    // Written after the store opened: the next writer to claim the pair finds them.
    let mut lines = String::new();
    for i in 0..3 {
        lines.push_str(&serde_json::to_string(&record(i)).unwrap());
        lines.push('\n');
    }
    std::fs::write(case.dir().join("ledger.db-pending-0-1"), pending_file(&lines)).unwrap();
    let ledger = Ledger::start(store.clone(), held());
    ledger.flush().await;
    assert_eq!(store.count().await.unwrap(), 3);
    assert_eq!(pending_bytes(case.dir()), 0);
    ledger.submit(record(3)).await.unwrap().await.unwrap();
    assert_eq!(ledger.depth(), 1, "then it takes records");
    ledger.shutdown().await;
    assert_eq!(store.count().await.unwrap(), 4);
}

#[tokio::test]
async fn files_that_are_not_pending_logs_are_left_alone() {
    let case = Case::sqlite();
    let store = case.open().await;
    let foreign = case.dir().join("ledger.db-pending-0-0");
    std::fs::write(&foreign, "someone else's file").unwrap();
    // A header claiming more than a log holds: what is there is read, no more.
    let mut bytes = b"SYPLOG01".to_vec();
    bytes.extend_from_slice(&u64::MAX.to_le_bytes());
    bytes.extend_from_slice(serde_json::to_string(&record(7)).unwrap().as_bytes());
    bytes.push(b'\n');
    std::fs::write(case.dir().join("ledger.db-pending-5-0"), bytes).unwrap();
    assert_eq!(case.open().await.count().await.unwrap(), 1);

    let ledger = Ledger::start(store.clone(), held());
    ledger.submit(record(1)).await.unwrap().await.unwrap();
    assert_eq!(ledger.depth(), 1);
    assert!(case.dir().join("ledger.db-pending-1-0").exists(), "the next pair was claimed");
    assert_eq!(std::fs::read_to_string(&foreign).unwrap(), "someone else's file");
    ledger.shutdown().await;
    assert_eq!(store.count().await.unwrap(), 2);
}
