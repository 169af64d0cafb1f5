//! The writer: everything submitted lands, receipts mean committed, back-pressure, shutdown,
//! and the failure policies (spool and replay; refuse).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use switchyard_ledger::{Durable, Ledger, Policy, Settings, Store, SubmitError, Unrecorded};

use crate::common::{each_backend, record};

/// Quick retries: the tests wait on receipts and health, never on the clock.
fn settings(on_failure: Policy) -> Settings {
    Settings {
        queue: 1_024,
        batch: 256,
        linger: Duration::ZERO,
        on_failure,
        apply: Duration::from_millis(50),
        retry_min: Duration::from_millis(1),
        retry_max: Duration::from_millis(5),
    }
}

/// Polls `f` once: is it still pending?
async fn pending<F: Future + Unpin>(f: &mut F) -> bool {
    std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *f).poll(cx).is_pending())).await
}

async fn wait_health(ledger: &Ledger, healthy: bool) {
    ledger.health().wait_for(|h| *h == healthy).await.expect("the ledger's health");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_records_from_many_tasks_all_land() {
    each_backend(async |case| {
        let store = case.open().await;
        let ledger = Arc::new(Ledger::start(store.clone(), settings(Policy::Refuse)));
        let tasks: Vec<_> = (0..50)
            .map(|t| {
                let (ledger, store) = (ledger.clone(), store.clone());
                tokio::spawn(async move {
                    for i in 0..200 {
                        let n = t * 200 + i;
                        let receipt = ledger.submit(record(n)).await.unwrap();
                        assert_eq!(receipt.await, Ok(Durable::Committed));
                        if i.is_multiple_of(50) {
                            // A resolved receipt means the record is durable; a flush, that it is
                            // in the store (on SQLite it may wait in the pending log till then).
                            ledger.flush().await;
                            assert!(store.get(&format!("req-{n}")).await.unwrap().is_some(), "req-{n}");
                        }
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let counts = ledger.shutdown().await;
        assert_eq!((counts.written, counts.failed, counts.spooled, counts.lost), (10_000, 0, 0, 0));
        assert_eq!(store.count().await.unwrap(), 10_000);
        assert_eq!(ledger.depth(), 0);
    })
    .await;
}

#[tokio::test]
async fn a_receipt_resolves_only_after_commit() {
    each_backend(async |case| {
        let store = case.open().await;
        store.fail_next_writes(u32::MAX);
        let ledger = Ledger::start(store.clone(), settings(Policy::Refuse));
        let mut receipt = ledger.submit(record(1)).await.unwrap();
        wait_health(&ledger, false).await;
        assert!(pending(&mut receipt).await, "resolved before any commit");
        assert_eq!(store.get("req-1").await.unwrap(), None);
        assert!(ledger.failed() >= 1);

        store.fail_next_writes(0);
        assert_eq!(receipt.await, Ok(Durable::Committed));
        assert!(store.get("req-1").await.unwrap().is_some());
        assert!(ledger.healthy(), "a successful write restores health");
        assert_eq!(ledger.written(), 1);
    })
    .await;
}

#[tokio::test]
async fn a_full_queue_pushes_back() {
    each_backend(async |case| {
        let store = case.open().await;
        store.fail_next_writes(u32::MAX);
        let ledger = Ledger::start(store.clone(), Settings { queue: 2, batch: 1, ..settings(Policy::Refuse) });
        let mut receipts = Vec::new();
        let full = loop {
            match ledger.try_submit(record(receipts.len())) {
                Ok(receipt) => receipts.push(receipt),
                Err(full) => break full,
            }
            assert!(receipts.len() <= 3, "a queue of 2 (and a writer holding 1) took more");
        };
        assert!(matches!(full, SubmitError::Full(_)), "{full:?}");
        assert_eq!(full.into_record(), record(receipts.len()), "the record comes back");
        assert_eq!(ledger.depth(), 2);

        // `submit` waits for room instead.
        let mut waiting = Box::pin(ledger.submit(record(100)));
        assert!(pending(&mut waiting).await);
        store.fail_next_writes(0);
        receipts.push(waiting.await.unwrap());
        for receipt in receipts {
            assert_eq!(receipt.await, Ok(Durable::Committed));
        }
        assert_eq!(store.count().await.unwrap(), ledger.written());
    })
    .await;
}

#[tokio::test]
async fn shutdown_flushes_what_is_queued() {
    each_backend(async |case| {
        let store = case.open().await;
        // A long linger: only shutdown makes these go.
        let ledger =
            Ledger::start(store.clone(), Settings { linger: Duration::from_secs(600), ..settings(Policy::Refuse) });
        let mut receipts = Vec::new();
        for i in 0..100 {
            receipts.push(ledger.submit(record(i)).await.unwrap());
        }
        let counts = ledger.shutdown().await;
        assert_eq!(counts.written, 100);
        assert_eq!(store.count().await.unwrap(), 100);
        for receipt in receipts {
            assert_eq!(receipt.await, Ok(Durable::Committed));
        }
        assert!(matches!(ledger.submit(record(200)).await, Err(SubmitError::Closed(_))));
        assert!(matches!(ledger.try_submit(record(201)), Err(SubmitError::Closed(_))));
        assert_eq!(ledger.shutdown().await, counts, "a second shutdown changes nothing");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_store_spools_then_replays_without_loss_or_duplicates() {
    each_backend(async |case| {
        let store = case.open().await;
        store.fail_next_writes(3);
        let ledger = Arc::new(Ledger::start(store.clone(), settings(Policy::Spool(case.spool()))));
        let tasks: Vec<_> = (0..10)
            .map(|t| {
                let ledger = ledger.clone();
                tokio::spawn(async move {
                    let mut spooled = 0;
                    for i in 0..50 {
                        let receipt = ledger.submit(record(t * 50 + i)).await.unwrap();
                        match receipt.await {
                            Ok(Durable::Spooled) => spooled += 1,
                            Ok(Durable::Committed) => {}
                            Err(Unrecorded) => panic!("record {} unrecorded", t * 50 + i),
                        }
                    }
                    spooled
                })
            })
            .collect();
        let mut spooled = 0;
        for task in tasks {
            spooled += task.await.unwrap();
        }
        assert!(spooled > 0, "the first write failed: its records went to the spool");
        assert!(ledger.healthy(), "spooling keeps the ledger serving");
        // Each flush tries a replay; at most three fail.
        for _ in 0..10 {
            if !ledger.spooling() {
                break;
            }
            ledger.flush().await;
        }
        assert!(!ledger.spooling());
        let counts = ledger.shutdown().await;
        assert_eq!(counts.spooled, spooled);
        assert!(counts.replayed >= spooled, "{counts:?}");
        assert!(counts.failed >= 1);
        assert_eq!(counts.lost, 0);
        assert_eq!(store.count().await.unwrap(), 500, "none lost, none twice");
        for i in 0..500 {
            assert!(store.get(&format!("req-{i}")).await.unwrap().is_some(), "req-{i}");
        }
        assert_eq!(std::fs::metadata(case.spool()).unwrap().len(), 0, "the spool is emptied");
    })
    .await;
}

#[tokio::test]
async fn a_leftover_spool_is_replayed_at_start_once() {
    each_backend(async |case| {
        let store = case.open().await;
        let records: Vec<_> = (0..50).map(record).collect();
        // Half of them reached the store before the crash too.
        store.insert_batch(&records[..25]).await.unwrap();
        let mut lines = String::new();
        for r in &records {
            lines.push_str(&serde_json::to_string(r).unwrap());
            lines.push('\n');
        }
        // A write cut short by the crash: never acknowledged, skipped.
        lines.push_str(r#"{"request_id":"req-torn","at_"#);
        std::fs::write(case.spool(), lines).unwrap();

        let ledger = Ledger::start(store.clone(), settings(Policy::Spool(case.spool())));
        let counts = ledger.flush().await;
        assert_eq!(counts.replayed, 50);
        assert_eq!(store.count().await.unwrap(), 50);
        assert_eq!(store.get("req-7").await.unwrap(), Some(record(7)));
        assert_eq!(std::fs::metadata(case.spool()).unwrap().len(), 0);
        assert_eq!(ledger.submit(record(60)).await.unwrap().await, Ok(Durable::Committed));
        ledger.flush().await;
        assert_eq!(store.count().await.unwrap(), 51);
    })
    .await;
}

#[tokio::test]
async fn a_failing_spool_turns_the_ledger_unhealthy_until_a_write_succeeds() {
    each_backend(async |case| {
        let store = case.open().await;
        store.fail_next_writes(u32::MAX);
        // A spool inside a regular file cannot be written.
        let file = case.dir().join("file");
        std::fs::write(&file, "").unwrap();
        let ledger = Ledger::start(store.clone(), settings(Policy::Spool(file.join("spool.jsonl"))));
        let mut receipt = ledger.submit(record(1)).await.unwrap();
        wait_health(&ledger, false).await;
        assert!(pending(&mut receipt).await);
        store.fail_next_writes(0);
        assert_eq!(receipt.await, Ok(Durable::Committed));
        assert!(ledger.healthy());
        assert_eq!(ledger.spooled(), 0);
    })
    .await;
}

#[tokio::test]
async fn shutdown_gives_up_loudly_when_nothing_works() {
    each_backend(async |case| {
        let store: Store = case.open().await;
        store.fail_next_writes(u32::MAX);
        let ledger = Ledger::start(store.clone(), settings(Policy::Refuse));
        let receipt = ledger.submit(record(1)).await.unwrap();
        wait_health(&ledger, false).await;
        let counts = ledger.shutdown().await;
        assert_eq!(counts.lost, 1);
        assert_eq!(receipt.await, Err(Unrecorded));
        store.fail_next_writes(0);
        assert_eq!(store.count().await.unwrap(), 0);
    })
    .await;
}
