//! Opening a store: URLs that work, URLs that do not (a clear error, quickly, never a panic).

use std::time::{Duration, Instant};

use sqlx::{Connection, Executor};
use switchyard_ledger::{Backend, Store, StoreError};
use switchyard_testkit::TempDir;

use crate::common::record;

async fn open_err(url: &str) -> StoreError {
    match Store::open(url).await {
        Ok(_) => panic!("{url} opened"),
        Err(e) => e,
    }
}

#[tokio::test]
async fn a_postgres_url_that_does_not_answer_fails_fast_and_clearly() {
    let started = Instant::now();
    let err = open_err("postgres://alice:hunter2@127.0.0.1:1/ledger").await;
    // A refused connection fails at once (a silent one within CONNECT_TIMEOUT, 5 s).
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    let message = err.to_string();
    assert!(message.contains("postgres://alice:***@127.0.0.1:1/ledger did not answer"), "{message}");
    assert!(message.contains("refused"), "the cause: {message}");
    assert!(!message.contains("hunter2"), "the password leaked: {message}");
    assert_eq!(err.kind(), "unreachable");

    let err = open_err("postgres://u@127.0.0.1:1/x?password=hunter2&sslmode=disable").await;
    assert!(err.to_string().contains("password=***&sslmode=disable"), "{err}");
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[tokio::test]
async fn garbage_urls_are_refused() {
    for url in ["mysql://db/ledger", "", "postgres://host:notaport/db", "sqlite:x?mode=sideways"] {
        let err = open_err(url).await;
        assert_eq!(err.kind(), "bad_url", "{url}: {err}");
        assert!(err.to_string().starts_with("ledger database"), "{err}");
    }
    let err = open_err("/nonexistent-switchyard-dir/ledger.db").await;
    assert!(err.to_string().contains("/nonexistent-switchyard-dir/ledger.db"), "{err}");
}

#[tokio::test]
async fn sqlite_opens_from_a_path_a_url_or_memory() {
    let dir = TempDir::new("switchyard-ledger-open").unwrap();
    let path = dir.path().join("bare.db");
    for url in [path.display().to_string(), format!("sqlite:{}", path.display()), "sqlite::memory:".to_owned()] {
        let store = Store::open(&url).await.unwrap();
        assert_eq!(store.backend(), Backend::Sqlite);
        store.insert_batch(&[record(1)]).await.unwrap();
        assert_eq!(store.count().await.unwrap(), 1, "{url}");
        if !url.contains(":memory:") {
            assert!(dir.path().join("bare.db-wal").exists(), "WAL mode");
        }
    }
    // The bare path and the sqlite: URL are one file (the record is there once); memory is its own.
    assert!(path.exists());
}

#[tokio::test]
async fn a_database_from_a_newer_build_is_refused() {
    let dir = TempDir::new("switchyard-ledger-open").unwrap();
    let url = format!("sqlite:{}", dir.path().join("ledger.db").display());
    Store::open(&url).await.unwrap().close().await;
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    conn.execute("INSERT INTO schema_version VALUES (99, 0)").await.unwrap();
    conn.close().await.unwrap();
    let err = open_err(&url).await;
    assert!(matches!(err, StoreError::NewerSchema { found: 99, known: 2, .. }), "{err:?}");
}
