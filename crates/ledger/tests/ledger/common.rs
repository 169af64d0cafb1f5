//! What every test here shares: a backend to run against ([`each_backend`]) and records to write.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::{AssertSqlSafe, Connection, Executor};
use switchyard_ledger::{AttemptRecord, Backend, RequestRecord, Store, Text};
use switchyard_testkit::{Postgres, TempDir};

/// One backend a test runs against, with a fresh, empty database and a scratch directory.
pub(crate) struct Case {
    pub(crate) backend: Backend,
    pub(crate) url: String,
    dir: TempDir,
}

impl Case {
    /// A fresh SQLite file.
    pub(crate) fn sqlite() -> Case {
        let dir = TempDir::new("switchyard-ledger").expect("temporary directory");
        let url = format!("sqlite:{}", dir.path().join("ledger.db").display());
        Case { backend: Backend::Sqlite, url, dir }
    }

    /// Opens (again) the case's database.
    pub(crate) async fn open(&self) -> Store {
        Store::open(&self.url).await.unwrap_or_else(|e| panic!("opening {}: {e}", self.url))
    }

    /// A scratch directory of the test's own (for spool files).
    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn spool(&self) -> PathBuf {
        self.dir().join("spool.jsonl")
    }
}

/// Runs `test` against a fresh SQLite file, then against a fresh database on a real PostgreSQL
/// server (shared by the tests of this binary), unless PostgreSQL is not installed (then it says
/// `skipping: …`, or fails under `SWITCHYARD_REQUIRE_SERVICES=1`).
pub(crate) async fn each_backend(test: impl AsyncFn(&Case)) {
    let case = Case::sqlite();
    eprintln!("backend: sqlite ({})", case.url);
    test(&case).await;
    if let Some(url) = postgres_database().await {
        eprintln!("backend: postgres ({url})");
        let dir = TempDir::new("switchyard-ledger").expect("temporary directory");
        test(&Case { backend: Backend::Postgres, url, dir }).await;
    }
}

/// A new database on the shared server.
async fn postgres_database() -> Option<String> {
    static SERVER: OnceLock<Option<Postgres>> = OnceLock::new();
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let server = SERVER.get_or_init(switchyard_testkit::postgres).as_ref()?;
    let name = format!("t{}", SEQ.fetch_add(1, Ordering::Relaxed));
    let mut admin = sqlx::PgConnection::connect(&server.url_for("postgres")).await.expect("admin connection");
    admin.execute(AssertSqlSafe(format!("CREATE DATABASE {name}"))).await.expect("CREATE DATABASE");
    Some(server.url_for(&name))
}

/// Record `i`: tenants, clouds and aliases cycle, so groups are predictable.
pub(crate) fn record(i: usize) -> RequestRecord {
    let clouds = ["aws", "azure", "oci"];
    let cloud = clouds[i % 3];
    let deployment: Text = format!("{cloud}-d{}", i % 2).into();
    RequestRecord {
        alias: format!("alias-{}", i % 4).into(),
        deployment: Some(deployment.clone()),
        cloud: Some(cloud.into()),
        region: Some(format!("{cloud}-east").into()),
        jurisdiction: Some(Text::from_static("eu")),
        stream: i.is_multiple_of(2),
        input_tokens: 100 + i as u64,
        output_tokens: 10 + i as u64,
        cached_tokens: i as u64 % 7,
        cost_usd: 0.25,
        latency_ms: 50 + i as u64,
        ttft_ms: Some(20),
        attempts: vec![AttemptRecord {
            deployment,
            outcome: Text::from_static("ok"),
            started_ms: 0,
            duration_ms: 50,
            output_tokens: 10 + i as u64,
        }],
        ..RequestRecord::new(format!("req-{i}"), 1_000 + i as i64, format!("tenant-{}", i % 2), "key_0")
    }
}

/// What the pending logs beside a case's SQLite file hold: the sum of their headers' lengths
/// (`SYPLOG01`, then a little-endian `u64`).
pub(crate) fn pending_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains("-pending-"))
        .map(|e| {
            let bytes = std::fs::read(e.path()).unwrap();
            match bytes.get(..16) {
                Some(h) if &h[..8] == b"SYPLOG01" => u64::from_le_bytes(h[8..16].try_into().unwrap()),
                _ => 0,
            }
        })
        .sum()
}

/// A pending log file as a writer that died leaves it: the header, then `lines`.
pub(crate) fn pending_file(lines: &str) -> Vec<u8> {
    let mut bytes = b"SYPLOG01".to_vec();
    bytes.extend_from_slice(&(lines.len() as u64).to_le_bytes());
    bytes.extend_from_slice(lines.as_bytes());
    bytes
}
