//! `kill -9` under load loses no acknowledged record: a child process (this test binary, run
//! as [`child`]) writes through a `Ledger` and prints each request id once its receipt resolves;
//! the parent kills it with SIGKILL mid-stream, reopens the store, and finds every printed id.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard_ledger::{Ledger, Settings, Store};

use crate::common::{Case, each_backend, pending_bytes, record};

/// Set (to the store's URL) in the child process only.
const CHILD_ENV: &str = "SWITCHYARD_LEDGER_CRASH_CHILD_URL";

/// Ids the parent reads before it kills the child.
const BEFORE_KILL: usize = 2_000;

/// Set in the child to keep every record in the pending log (a SQLite file's) until the kill.
const HOLD_ENV: &str = "SWITCHYARD_LEDGER_CRASH_HOLD";

#[tokio::test]
async fn kill_9_under_load_loses_no_acknowledged_record() {
    each_backend(async |case| crash_and_check(case, false).await).await;
}

/// On a SQLite file, with nothing applied before the kill: every acknowledged record is only in
/// the dead writer's pending log, and opening the store applies it.
#[tokio::test]
async fn kill_9_with_every_record_in_the_pending_log_loses_none() {
    let case = Case::sqlite();
    crash_and_check(&case, true).await;
    let logs = pending_bytes(case.dir());
    assert_eq!(logs, 0, "the logs were applied and emptied at open");
}

async fn crash_and_check(case: &Case, hold: bool) {
    {
        let exe = std::env::current_exe().expect("this test binary");
        let stderr = std::fs::File::create(case.dir().join("child.stderr")).unwrap();
        let mut child = Command::new(exe)
            .args(["crash::child", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &case.url)
            .env(HOLD_ENV, if hold { "1" } else { "" })
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn the child");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut acknowledged = Vec::new();
        while acknowledged.len() < BEFORE_KILL {
            match lines.next() {
                Some(Ok(line)) => acknowledged.extend(line.strip_prefix("durable ").map(str::to_owned)),
                _ => panic!(
                    "the child stopped after {} ids: {}",
                    acknowledged.len(),
                    std::fs::read_to_string(case.dir().join("child.stderr")).unwrap_or_default()
                ),
            }
        }
        child.kill().expect("SIGKILL");
        child.wait().unwrap();
        // What it printed before it died counts too.
        acknowledged.extend(lines.map_while(Result::ok).filter_map(|l| l.strip_prefix("durable ").map(str::to_owned)));

        let held = pending_bytes(case.dir());
        if hold {
            assert!(held > 0, "the records were in the pending log at the kill");
        }
        let store = case.open().await;
        let count = store.count().await.unwrap();
        assert!(count >= acknowledged.len() as u64, "{count} records, {} acknowledged", acknowledged.len());
        for id in &acknowledged {
            assert!(store.get(id).await.unwrap().is_some(), "{id} was acknowledged, then lost");
        }
        eprintln!(
            "{} acknowledged, {count} in the store after kill -9 ({held} bytes in pending logs)",
            acknowledged.len()
        );
    }
}

/// The child's body; a no-op unless run by the test above. Sixteen tasks submit records and
/// print each id once its receipt resolves, until killed (or, bounded, after a minute).
#[test]
fn child() {
    let Ok(url) = std::env::var(CHILD_ENV) else { return };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let store = Store::open(&url).await.expect("open the store");
        let settings = match std::env::var(HOLD_ENV).is_ok_and(|v| v == "1") {
            true => Settings {
                batch: 1_000_000,
                queue: 1_000_000,
                apply: Duration::from_secs(3_600),
                ..Settings::default()
            },
            false => Settings { batch: 64, ..Settings::default() },
        };
        let ledger = Arc::new(Ledger::start(store, settings));
        let deadline = Instant::now() + Duration::from_secs(60);
        let tasks: Vec<_> = (0..16)
            .map(|t| {
                let ledger = ledger.clone();
                tokio::spawn(async move {
                    for i in 0..1_000_000 {
                        if Instant::now() > deadline {
                            break;
                        }
                        let mut r = record(i);
                        r.request_id = format!("crash-{t}-{i}").into();
                        let id = r.request_id.clone();
                        let receipt = ledger.submit(r).await.expect("submit");
                        receipt.await.expect("durable");
                        writeln!(std::io::stdout(), "durable {id}").expect("stdout");
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    });
}
