//! The ledger's kill -9 guarantee, end to end: `switchyard serve` as a child process in front of
//! emulated deployments, sixteen callers (half streaming), SIGKILL mid-load; then every request
//! whose response a caller received complete must be in the ledger, with status 200. The
//! gateway then restarts on the same database, and `switchyard spend` counts those requests.
//! On a SQLite file always, and on a real PostgreSQL server when testkit can start one.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Serve, spend_json};
use serde_json::Value;
use switchyard_core::config::{Config, NoSecrets, key_hash_text};
use switchyard_emulator::{Bind, Emulator};
use switchyard_ledger::Store;
use switchyard_testkit::TempDir;
use tokio::sync::Notify;
use tokio::time::Instant;

const KEY: &str = "sk-crash-test";
const TENANT: &str = "crash";
const CLIENTS: usize = 16;
/// The kill comes once this many responses were received complete...
const KILL_AFTER: usize = 1_000;
/// ...or after this long, whichever is first.
const LOAD_LIMIT: Duration = Duration::from_secs(20);
/// Fewer completions than this by the kill and the run proves too little: the test fails.
const AT_LEAST: usize = 50;
/// Requests per caller, at most.
const PER_CLIENT: usize = 1_000;

/// One run at a time: two gateways, an emulator and a database under load at once are too much
/// for a small machine.
static SERIAL: Mutex<()> = Mutex::new(());

#[test]
fn kill_9_loses_no_completed_request_on_sqlite() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = TempDir::new("switchyard-crash-sqlite").unwrap();
    let url = format!("sqlite:{}", dir.path().join("ledger.db").display());
    kill_9_under_load(dir.path(), &url);
}

#[test]
fn kill_9_loses_no_completed_request_on_postgres() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(pg) = switchyard_testkit::postgres() else { return };
    let dir = TempDir::new("switchyard-crash-postgres").unwrap();
    kill_9_under_load(dir.path(), &pg.url());
}

/// The whole test, on the ledger at `url`, with its files in `dir`.
fn kill_9_under_load(dir: &Path, url: &str) {
    let began = std::time::Instant::now();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (completed, config) = runtime.block_on(crash_and_check(dir, url));

    // `spend` reads the ledger the restarted gateway left: every completed request is counted.
    let doc = spend_json(&config);
    let tenants = doc["spend"]["tenant"].as_array().expect("spend per tenant");
    let requests: u64 = tenants.iter().map(|r| r["requests"].as_u64().unwrap_or(0)).sum();
    let ours = tenants.iter().find(|r| r["name"] == TENANT).expect("the tenant's row");
    // The completed requests, and the one made after the restart.
    assert!(requests > completed as u64, "spend counts {requests} requests, {completed} completed (+1 after restart)");
    assert!(ours["cost_usd"].as_f64().is_some_and(|c| c > 0.0), "no cost for the completed requests: {ours}");
    eprintln!("spend: {requests} requests; whole test {:.1}s", began.elapsed().as_secs_f64());
    drop(runtime);
}

/// Load, kill -9, check the ledger, restart. Returns the number of completed requests and the
/// config file's path.
async fn crash_and_check(dir: &Path, url: &str) -> (usize, PathBuf) {
    let placeholder = config_text(["http://127.0.0.1:1/v1", "http://127.0.0.1:2/v1"], "sqlite::memory:", dir);
    let emulated = Config::from_yaml(&placeholder, &NoSecrets).expect("the test's config is valid");
    let emulator = Emulator::start(&emulated, Bind::Ephemeral, None, 11).await.expect("start the emulator");
    let endpoint = |name: &str| emulator.deployment(name).expect("an emulated deployment").endpoint();
    let config = dir.join("switchyard.yaml");
    std::fs::write(&config, config_text([&endpoint("fast-a"), &endpoint("fast-b")], url, dir)).unwrap();
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(15))
        .pool_max_idle_per_host(CLIENTS)
        .build()
        .unwrap();

    let mut gateway = Serve::start(&config, dir, "serve-1", &client).await;
    let load = Arc::new(Load::default());
    let callers: Vec<_> = (0..CLIENTS)
        .map(|task| tokio::spawn(caller(client.clone(), gateway.base.clone(), task, load.clone())))
        .collect();
    let deadline = Instant::now() + LOAD_LIMIT;
    loop {
        let more = load.progress.notified();
        if load.n_completed() >= KILL_AFTER {
            break;
        }
        if tokio::time::timeout_at(deadline, more).await.is_err() {
            break;
        }
    }
    // No new requests from here; the ones in flight are cut by the kill.
    load.stop.store(true, Ordering::SeqCst);
    let in_flight = load.in_flight.load(Ordering::SeqCst);
    gateway.kill_9();
    for c in callers {
        tokio::time::timeout(Duration::from_secs(20), c)
            .await
            .expect("callers stop once the gateway is gone")
            .expect("a caller panicked");
    }
    let completed = load.completed.lock().unwrap().clone();
    let interrupted = load.interrupted.lock().unwrap().clone();
    let failures = load.failures.lock().unwrap().clone();
    assert!(
        completed.len() >= AT_LEAST,
        "only {} requests completed before the kill; failures: {failures:?}; log: {}",
        completed.len(),
        gateway.log()
    );

    // Every completed request is in the database as it was left at the kill.
    let spool = dir.join("ledger.spool");
    let spooled = std::fs::metadata(&spool).map_or(0, |m| m.len());
    let store = Store::open(url).await.expect("reopen the ledger after kill -9");
    let count = store.count().await.expect("count records");
    let mut missing = Vec::new();
    let mut wrong = Vec::new();
    for (id, stream) in &completed {
        match store.get(id).await.expect("read a record") {
            None => missing.push(id.clone()),
            Some(r) if r.status != 200 || r.outcome != "ok" || r.stream != *stream || r.tenant != TENANT => {
                wrong.push(format!(
                    "{id}: status {} outcome {} stream {} tenant {}",
                    r.status, r.outcome, r.stream, r.tenant
                ));
            }
            Some(_) => {}
        }
    }
    let mut recorded_not_received = 0;
    for id in &interrupted {
        if store.get(id).await.expect("read a record").is_some() {
            recorded_not_received += 1;
        }
    }
    store.close().await;
    let streamed = completed.iter().filter(|(_, s)| *s).count();
    eprintln!(
        "{}: {} completed ({streamed} streamed), {in_flight} in flight at the kill, {} cut by it \
         ({recorded_not_received} of those recorded), {} other failures; {count} records in the store",
        backend(url),
        completed.len(),
        interrupted.len(),
        failures.len(),
    );
    assert!(
        missing.is_empty(),
        "{} of {} completed requests are not in the ledger after kill -9 (spool: {spooled} bytes), e.g. {:?}; log: {}",
        missing.len(),
        completed.len(),
        &missing[..missing.len().min(10)],
        gateway.log()
    );
    assert!(wrong.is_empty(), "completed requests recorded wrongly: {wrong:?}");
    assert!(count >= completed.len() as u64, "{count} records for {} completed requests", completed.len());
    if !failures.is_empty() {
        eprintln!("requests that failed before the kill: {:?}", &failures[..failures.len().min(10)]);
    }

    // The same database serves a restart: it opens, answers, records, and stops cleanly.
    let mut restarted = Serve::start(&config, dir, "serve-2", &client).await;
    let after = call(&client, &restarted.base, "crash-after-restart", false).await;
    assert!(after.is_ok(), "a request after the restart: {after:?}; log: {}", restarted.log());
    restarted.stop().await;
    drop(emulator);
    (completed.len(), config)
}

fn backend(url: &str) -> &'static str {
    if url.starts_with("sqlite:") { "sqlite" } else { "postgres" }
}

/// Two fast chat deployments on two clouds behind `chat`, one tenant with [`KEY`], and the
/// ledger at `ledger` with its spool in `dir`.
fn config_text(endpoints: [&str; 2], ledger: &str, dir: &Path) -> String {
    let [a, b] = endpoints;
    let hash = key_hash_text(KEY);
    let spool = dir.join("ledger.spool");
    let spool = spool.display();
    format!(
        r#"
server:
  timeouts: {{ connect_ms: 2000, first_byte_ms: 10000, first_token_ms: 10000, stream_idle_ms: 10000, request_ms: 15000 }}
clouds:
  - {{ name: one, protocol: openai }}
  - {{ name: two, protocol: openai }}
deployments:
  - name: fast-a
    cloud: one
    region: r1
    jurisdiction: us
    model: model-a
    endpoint: "{a}"
    price: {{ input_per_mtok: 1, output_per_mtok: 2 }}
    emulation: {{ ttft_ms: {{ fixed: 2 }}, tokens_per_s: {{ fixed: 2000 }}, answer_tokens: [4, 12] }}
  - name: fast-b
    cloud: two
    region: r2
    jurisdiction: us
    model: model-b
    endpoint: "{b}"
    price: {{ input_per_mtok: 1, output_per_mtok: 2 }}
    emulation: {{ ttft_ms: {{ fixed: 2 }}, tokens_per_s: {{ fixed: 2000 }}, answer_tokens: [4, 12] }}
aliases:
  - {{ name: chat, deployments: [fast-a, fast-b] }}
tenants:
  - {{ name: {TENANT}, keys: ["{hash}"], jurisdictions: [us], aliases: ["*"] }}
ledger:
  url: "{ledger}"
  spool_path: "{spool}"
"#
    )
}

/// What the callers saw.
#[derive(Default)]
struct Load {
    stop: AtomicBool,
    in_flight: AtomicUsize,
    n_completed: AtomicUsize,
    /// Woken at each completion.
    progress: Notify,
    /// Ids whose response was received whole, and whether they streamed.
    completed: Mutex<Vec<(String, bool)>>,
    /// Ids whose request was under way when the callers were stopped, and failed.
    interrupted: Mutex<Vec<String>>,
    /// Requests that failed before the stop: none are expected.
    failures: Mutex<Vec<String>>,
}

impl Load {
    fn n_completed(&self) -> usize {
        self.n_completed.load(Ordering::SeqCst)
    }
}

/// One caller: requests one after another, alternating streaming and not, until stopped.
async fn caller(client: reqwest::Client, base: String, task: usize, load: Arc<Load>) {
    for i in 0..PER_CLIENT {
        if load.stop.load(Ordering::SeqCst) {
            return;
        }
        let id = format!("crash-{task}-{i}");
        let stream = (task + i).is_multiple_of(2);
        load.in_flight.fetch_add(1, Ordering::SeqCst);
        let result = call(&client, &base, &id, stream).await;
        load.in_flight.fetch_sub(1, Ordering::SeqCst);
        match result {
            Ok(()) => {
                load.completed.lock().unwrap().push((id, stream));
                load.n_completed.fetch_add(1, Ordering::SeqCst);
                load.progress.notify_one();
            }
            Err(_) if load.stop.load(Ordering::SeqCst) => {
                load.interrupted.lock().unwrap().push(id);
                return;
            }
            Err(e) => load.failures.lock().unwrap().push(format!("{id}: {e}")),
        }
    }
}

/// One chat completion. `Ok` only when the whole response arrived: status 200 and the parsed
/// JSON body, or the event stream read to its end with `data: [DONE]`.
async fn call(client: &reqwest::Client, base: &str, id: &str, stream: bool) -> Result<(), String> {
    let body = serde_json::json!({
        "model": "chat",
        "messages": [{ "role": "user", "content": format!("crash test {id}") }],
        "stream": stream,
    });
    let response = client
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(KEY)
        .header("x-request-id", id)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| format!("send: {e}"))?;
    let status = response.status().as_u16();
    let echoed = response.headers().get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let bytes = response.bytes().await.map_err(|e| format!("body: {e}"))?;
    let text = String::from_utf8_lossy(&bytes);
    if status != 200 {
        return Err(format!("status {status}: {text}"));
    }
    if echoed.as_deref() != Some(id) {
        return Err(format!("x-request-id came back as {echoed:?}"));
    }
    if stream {
        let last = text.lines().rev().find(|l| !l.is_empty() && !l.starts_with(':'));
        if last != Some("data: [DONE]") {
            return Err(format!("the stream did not end with [DONE]: {text}"));
        }
    } else {
        let doc: Value = serde_json::from_slice(&bytes).map_err(|e| format!("JSON: {e}: {text}"))?;
        if !doc["choices"][0]["message"]["content"].is_string() {
            return Err(format!("no answer in {doc}"));
        }
    }
    Ok(())
}

impl Serve {
    /// SIGKILL, and reap it.
    fn kill_9(&mut self) {
        self.child.kill().expect("SIGKILL the gateway");
        let status = self.child.wait().expect("reap the gateway");
        assert!(!status.success(), "the gateway exited on its own: {status}");
    }
}
