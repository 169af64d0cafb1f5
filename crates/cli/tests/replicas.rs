//! Two `switchyard serve` replicas sharing one Redis and one PostgreSQL hold a tenant's tokens
//! per minute and its daily budget cluster-wide, within the overshoot `crates/shared` documents,
//! under concurrent load from both sides; and without Redis each replica holds the limit on its
//! own, so the pair lets about twice as much through; and an ejection on one replica is
//! honoured by the other (deployment signals through Redis). Emulated deployments run in this
//! process.
//!
//! The bounds, from `crates/shared`'s docs, with `N` replicas, `W` worker threads per replica
//! (the threads that may check then reserve at once), `A` the largest reservation and
//! `S = unconfirmed_share · limit` (0.1 by default), `U = max(S, A) + (W − 1)·A`:
//!
//! - tokens per minute, over `t` seconds: at most `T·(1 + t/60) + (N − 1)·U + (W − 1)·A + E`;
//! - a day's budget: at most `B + (N − 1)·U + (W − 1)·A + E`,
//!
//! where `E` is what settlements took beyond their estimates (none here: answers are shorter
//! than `max_tokens`, which every reservation includes), and for budgets also charges that a
//! push separated from their give-back, each at most one request's cost, counted here once per
//! worker thread of each replica.

mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use common::{Serve, spend_json};
use serde_json::Value;
use switchyard_core::calendar::format_utc;
use switchyard_core::config::{Config, Fault, FaultKind, FaultWindow, NoSecrets, key_hash_text};
use switchyard_core::usage::{Usage, list_cost};
use switchyard_emulator::{Bind, Emulator, Seen};
use switchyard_testkit::{Postgres, Redis, TempDir};
use switchyard_wire::ChatRequest;
use tokio::task::JoinHandle;
use tokio::time::Instant;

const KEY: &str = "sk-replicas-test";
const TENANT: &str = "team";
/// Gateway processes, and worker threads in each (`Serve` starts them with `--workers 2`).
const REPLICAS: usize = 2;
const WORKERS: usize = 2;
/// Callers per replica, each sending one request after another.
const CALLERS: usize = 8;
/// Every request asks for at most this many tokens; the emulator answers `ANSWER_TOKENS`.
const MAX_TOKENS: u32 = 20;
const ANSWER_TOKENS: u32 = 8;
/// `crates/shared`'s default `unconfirmed_share`, which the configs here keep.
const UNCONFIRMED_SHARE: f64 = 0.1;

/// The tenant's tokens per minute, and how long the callers keep asking.
const TPM: u64 = 3_000;
const TPM_LOAD: Duration = Duration::from_secs(3);

/// The tenant's daily budget, prices that spend it in a few hundred requests, and how long the
/// callers may take to exhaust it.
const DAILY_USD: f64 = 10.0;
const PRICE: (f64, f64) = (1_000.0, 3_000.0);
const BUDGET_LOAD_LIMIT: Duration = Duration::from_secs(10);

/// One test at a time: four gateway processes, their callers, PostgreSQL and Redis at once are
/// too much for a small machine.
static SERIAL: Mutex<()> = Mutex::new(());

#[test]
fn two_replicas_hold_tokens_per_minute_together() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (Some(pg), Some(redis)) = (switchyard_testkit::postgres(), switchyard_testkit::redis()) else { return };
    let began = std::time::Instant::now();
    runtime().block_on(async {
        let shared = tokens_per_minute(&pg, Some(&redis)).await;
        let alone = tokens_per_minute(&pg, None).await;
        let t_limit = TPM as f64;
        let a = f64::from(shared.reservation);
        let s = UNCONFIRMED_SHARE * t_limit;
        let (n, w) = (REPLICAS as f64, WORKERS as f64);
        let u = s.max(a) + (w - 1.0) * a;
        let overshoot = (n - 1.0) * u + (w - 1.0) * a;
        let bound = t_limit * (1.0 + shared.secs / 60.0) + overshoot;
        eprintln!(
            "tokens per minute, shared: {} tokens admitted in {:.2}s ({} answers, {} refused, the first after \
             {} ms, {} while the cluster had used under half the limit); bound {bound:.0} = {TPM}·(1 + t/60) + \
             {overshoot:.0} (A = {a}, S = {s}, U = {u}); Redis syncs failed: {:?}",
            shared.tokens,
            shared.secs,
            shared.ok,
            shared.refused,
            shared.first_refusal_ms,
            shared.premature,
            shared.sync_failures,
        );
        let local_bound = n * (t_limit * (1.0 + alone.secs / 60.0) + w * a);
        eprintln!(
            "tokens per minute, each replica alone: {} tokens admitted in {:.2}s ({} answers, {} refused, the \
             first after {} ms); the replicas' own bounds (one racing reservation per worker) add up to \
             {local_bound:.0}",
            alone.tokens, alone.secs, alone.ok, alone.refused, alone.first_refusal_ms,
        );
        assert!(
            (shared.tokens as f64) <= bound,
            "two replicas sharing Redis admitted {} tokens in {:.2}s, above the documented bound {bound:.0}",
            shared.tokens,
            shared.secs
        );
        assert!(
            (shared.tokens as f64) >= 0.5 * t_limit,
            "two replicas sharing Redis admitted only {} tokens of {TPM} per minute: the limit refuses too much",
            shared.tokens
        );
        assert!(
            (alone.tokens as f64) > 1.5 * t_limit,
            "two replicas without Redis admitted {} tokens, not much more than the {TPM} they share with it",
            alone.tokens
        );
        assert!(
            (alone.tokens as f64) <= local_bound,
            "two replicas without Redis admitted {} tokens, above twice one replica's bound ({local_bound:.0})",
            alone.tokens
        );
    });
    eprintln!("whole test {:.1}s", began.elapsed().as_secs_f64());
}

#[test]
fn two_replicas_hold_a_daily_budget_together() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (Some(pg), Some(redis)) = (switchyard_testkit::postgres(), switchyard_testkit::redis()) else { return };
    let began = std::time::Instant::now();
    runtime().block_on(daily_budget(&pg, &redis));
    eprintln!("whole test {:.1}s", began.elapsed().as_secs_f64());
}

/// `fast-b` goes down. Replica 1 ejects it after three requests on `chat-b` (which tries it
/// first; each is answered by `fast-a`); replica 2, which sent it nothing, reports it ejected
/// within about a sync interval and sends its own requests straight to `fast-a`.
#[test]
fn an_ejection_on_one_replica_is_honoured_by_the_other() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(redis) = switchyard_testkit::redis() else { return };
    let began = std::time::Instant::now();
    runtime().block_on(async {
        let shared = (redis.url(), "eject".to_owned());
        let mut cluster = Cluster::start("eject", "none", Some(&shared), "limits: { rpm: 1000000 }").await;
        let down =
            Fault { window: FaultWindow { from: Duration::ZERO, until: None }, rate: 1.0, kind: FaultKind::Outage };
        cluster.emulator.set_faults("fast-b", vec![down]).expect("fast-b is emulated");
        let (one, two) = (cluster.replicas[0].base.clone(), cluster.replicas[1].base.clone());
        for i in 0..3 {
            assert_eq!(chat_b(&cluster.client, &one, i).await, ("fast-a".to_owned(), 2), "request {i} on replica 1");
        }
        assert_eq!(ejected(&cluster.client, &one).await, Some(true), "replica 1 ejected fast-b");
        let waited = Instant::now();
        while ejected(&cluster.client, &two).await != Some(true) {
            assert!(waited.elapsed() < Duration::from_secs(3), "replica 2 never heard; logs: {}", cluster.logs());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        eprintln!("replica 2 reported fast-b ejected {} ms after replica 1 did", waited.elapsed().as_millis());
        let resets = || cluster.emulator.deployment("fast-b").expect("fast-b").count(Seen::ConnectionReset);
        let before = resets();
        assert_eq!(before, 3);
        for i in 3..6 {
            assert_eq!(chat_b(&cluster.client, &two, i).await, ("fast-a".to_owned(), 1), "request {i} on replica 2");
        }
        assert_eq!(resets(), before, "replica 2 did not try fast-b");
        let metrics = cluster.client.get(format!("{two}/metrics")).send().await.expect("metrics");
        let metrics = metrics.text().await.expect("metrics text");
        // The link's state is reported (its value is not asserted: a loaded machine may miss a round).
        assert!(metrics.contains("switchyard_shared_signals_status{state=\"connected\"} "), "{metrics}");
        assert!(metrics.contains("switchyard_shared_signals_syncs_total{result=\"ok\"} "), "{metrics}");
        cluster.stop().await;
    });
    eprintln!("whole test {:.1}s", began.elapsed().as_secs_f64());
}

/// A request on `chat-b`: the deployment that answered it, and how many attempts it took.
async fn chat_b(client: &reqwest::Client, base: &str, i: u32) -> (String, u32) {
    let body = serde_json::json!({
        "model": "chat-b",
        "messages": [{ "role": "user", "content": format!("eject {i}") }],
        "max_tokens": MAX_TOKENS,
    });
    let response = client
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(KEY)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("the replica answers");
    assert_eq!(response.status(), 200);
    let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let deployment = header("x-switchyard-deployment").unwrap_or_default();
    let attempts = header("x-switchyard-attempts").and_then(|n| n.parse().ok()).unwrap_or(0);
    (deployment, attempts)
}

/// Whether a replica's `/metrics` says `fast-b` is ejected.
async fn ejected(client: &reqwest::Client, base: &str) -> Option<bool> {
    let text = client.get(format!("{base}/metrics")).send().await.ok()?.text().await.ok()?;
    let line = text.lines().find_map(|l| l.strip_prefix("switchyard_deployment_ejected{deployment=\"fast-b\"} "))?;
    Some(line.trim() == "1")
}

/// What one run of callers against a pair of replicas saw.
struct Run {
    /// `usage.total_tokens` of every 200, summed.
    tokens: u64,
    ok: u64,
    refused: u64,
    premature: u64,
    first_refusal_ms: u64,
    /// From the first request to the last response.
    secs: f64,
    /// What one request reserved: its prompt estimate plus `max_tokens`.
    reservation: u32,
    /// Failed syncs with Redis, per replica, from `/metrics`.
    sync_failures: Vec<u64>,
}

/// Loads two replicas, sharing `redis` or not, for [`TPM_LOAD`]; every 200 and 429 is checked.
async fn tokens_per_minute(pg: &Postgres, redis: Option<&Redis>) -> Run {
    let name = if redis.is_some() { "tpm-shared" } else { "tpm-alone" };
    let shared = redis.map(|r| (r.url(), name.to_owned()));
    let mut cluster = Cluster::start(name, &pg.url(), shared.as_ref(), &format!("limits: {{ tpm: {TPM} }}")).await;
    let reservation = prompt_estimate() + MAX_TOKENS;
    let expect = Expect {
        code: "tokens_per_minute_exceeded",
        message: format!("this tenant's limit of {TPM} tokens per minute is reached"),
        weights: (1.0, 1.0),
        half: TPM as f64 / 2.0,
    };
    let tally = Arc::new(Tally::new(expect));
    let started = Instant::now();
    let callers = cluster.callers(&tally, started + TPM_LOAD);
    for c in callers {
        tokio::time::timeout(Duration::from_secs(30), c).await.expect("callers stop").expect("a caller panicked");
    }
    let secs = started.elapsed().as_secs_f64();
    let sync_failures = cluster.sync_failures().await;
    cluster.stop().await;
    tally.check(&cluster);
    Run {
        tokens: tally.tokens.load(Ordering::SeqCst),
        ok: tally.ok.load(Ordering::SeqCst),
        refused: tally.refused.load(Ordering::SeqCst),
        premature: tally.premature.load(Ordering::SeqCst),
        first_refusal_ms: tally.first_refusal.load(Ordering::SeqCst),
        secs,
        reservation,
        sync_failures,
    }
}

/// Loads two replicas sharing `redis` until most requests are refused for the budget, then
/// checks what the ledger recorded for the day against the documented bound.
async fn daily_budget(pg: &Postgres, redis: &Redis) {
    let day = utc_day();
    let shared = (redis.url(), "budget".to_owned());
    let tenant = format!("budgets: {{ daily_usd: {DAILY_USD} }}");
    let mut cluster = Cluster::start("budget", &pg.url(), Some(&shared), &tenant).await;
    let price = &cluster.config.deployments[0].price;
    let prompt = u64::from(prompt_estimate());
    let cost = |completion: u32| {
        list_cost(price, &Usage { prompt_tokens: prompt, completion_tokens: u64::from(completion), ..Usage::default() })
    };
    let (reservation, per_request) = (cost(MAX_TOKENS), cost(ANSWER_TOKENS));
    let expect = Expect {
        code: "daily_budget_exceeded",
        message: format!(
            "this tenant's daily budget of ${DAILY_USD:.2} is spent; it resets at {}",
            format_utc((day + 1) * 86_400_000)
        ),
        weights: (price.input_per_mtok / 1e6, price.output_per_mtok / 1e6),
        half: DAILY_USD / 2.0,
    };
    let tally = Arc::new(Tally::new(expect));
    let started = Instant::now();
    let callers = cluster.callers(&tally, started + BUDGET_LOAD_LIMIT);
    // Stop once most answers are refusals: three 100 ms slices in a row of at least 90%.
    let (mut seen, mut streak) = ((0, 0), 0);
    let exhausted = loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if started.elapsed() >= BUDGET_LOAD_LIMIT {
            break false;
        }
        let now = (tally.responses.load(Ordering::SeqCst), tally.refused.load(Ordering::SeqCst));
        let (answered, refused) = (now.0 - seen.0, now.1 - seen.1);
        seen = now;
        streak = if answered >= 10 && refused * 10 >= answered * 9 { streak + 1 } else { 0 };
        if streak >= 3 {
            break true;
        }
    };
    tally.stop.store(true, Ordering::SeqCst);
    for c in callers {
        tokio::time::timeout(Duration::from_secs(30), c).await.expect("callers stop").expect("a caller panicked");
    }
    let secs = started.elapsed().as_secs_f64();
    let sync_failures = cluster.sync_failures().await;
    cluster.stop().await;
    // Every 200 was on record before it was sent; refusals are never recorded.
    let spend = spend_json(&cluster.config_path);
    tally.check(&cluster);
    if utc_day() != day {
        eprintln!("skipping the budget's bounds: the run crossed UTC midnight, into another day's window");
        return;
    }
    let ok = tally.ok.load(Ordering::SeqCst);
    let refused = tally.refused.load(Ordering::SeqCst);
    assert!(
        exhausted,
        "the callers did not exhaust the daily budget within {BUDGET_LOAD_LIMIT:?}: {ok} answered, {refused} refused"
    );
    let budgets = spend["budgets"].as_array().expect("budgets in spend --json");
    let today = budgets
        .iter()
        .find(|b| b["tenant"] == TENANT && b["period"] == "day")
        .unwrap_or_else(|| panic!("no daily budget row for {TENANT}: {spend}"));
    let spent = today["spent_usd"].as_f64().expect("spent_usd");
    let row = spend["spend"]["tenant"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["name"] == TENANT))
        .unwrap_or_else(|| panic!("no spend row for {TENANT}: {spend}"));
    assert_eq!(row["requests"].as_u64(), Some(ok), "the ledger's requests against the callers' 200s: {spend}");
    let billed = tally.used();
    assert!((spent - billed).abs() <= 1e-9 * DAILY_USD, "the ledger says ${spent} spent, the 200s' usage ${billed}");

    let (n, w) = (REPLICAS as f64, WORKERS as f64);
    let s = UNCONFIRMED_SHARE * DAILY_USD;
    let u = s.max(reservation) + (w - 1.0) * reservation;
    let split = n * w * per_request;
    let overshoot = (n - 1.0) * u + (w - 1.0) * reservation + split;
    let bound = DAILY_USD + overshoot;
    eprintln!(
        "daily budget, shared: ${spent:.4} spent today in {ok} requests over {secs:.2}s, {refused} refused \
         (the first after {} ms, {} while the cluster had spent under half the budget); bound ${bound:.4} = \
         ${DAILY_USD} + ${overshoot:.4} (A = ${reservation:.4}, S = ${s}, U = ${u:.4}, E ≤ ${split:.4}; \
         ${:.4} without E); Redis syncs failed: {sync_failures:?}",
        tally.first_refusal.load(Ordering::SeqCst),
        tally.premature.load(Ordering::SeqCst),
        bound - split,
    );
    assert!(
        spent <= bound,
        "two replicas spent ${spent:.4} of a ${DAILY_USD} daily budget, above the bound ${bound:.4}"
    );
    assert!(
        spent >= 0.7 * DAILY_USD,
        "two replicas spent only ${spent:.4} of a ${DAILY_USD} daily budget before refusing most requests"
    );
}

/// The emulator, the config both replicas read, and the replicas.
/// Dropped in this order: the replicas (killed, if still running), the emulator, the files.
struct Cluster {
    replicas: Vec<Serve>,
    emulator: Emulator,
    client: reqwest::Client,
    config: Config,
    config_path: PathBuf,
    _dir: TempDir,
}

impl Cluster {
    /// Starts the emulator and [`REPLICAS`] gateways on one config: the ledger at `ledger`,
    /// Redis (URL, key prefix) if `shared`, and the tenant's `limits` (YAML flow mapping
    /// entries).
    async fn start(name: &str, ledger: &str, shared: Option<&(String, String)>, limits: &str) -> Cluster {
        let dir = TempDir::new(&format!("switchyard-replicas-{name}")).unwrap();
        let placeholder = config_text(["http://127.0.0.1:1/v1", "http://127.0.0.1:2/v1"], ledger, shared, limits);
        let emulated = Config::from_yaml(&placeholder, &NoSecrets).expect("the test's config is valid");
        let emulator = Emulator::start(&emulated, Bind::Ephemeral, None, 7).await.expect("start the emulator");
        let endpoint = |name: &str| emulator.deployment(name).expect("an emulated deployment").endpoint();
        let text = config_text([&endpoint("fast-a"), &endpoint("fast-b")], ledger, shared, limits);
        let config = Config::from_yaml(&text, &NoSecrets).expect("the test's config is valid");
        let config_path = dir.path().join("switchyard.yaml");
        std::fs::write(&config_path, text).unwrap();
        let client = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(15))
            .pool_max_idle_per_host(CALLERS)
            .build()
            .unwrap();
        let mut replicas = Vec::new();
        for i in 1..=REPLICAS {
            // A working directory each: the default ledger spool is relative to it.
            let home = dir.path().join(format!("{name}-{i}"));
            std::fs::create_dir(&home).unwrap();
            replicas.push(Serve::start(&config_path, &home, &format!("{name}-{i}"), &client).await);
        }
        Cluster { replicas, emulator, client, config, config_path, _dir: dir }
    }

    /// [`CALLERS`] per replica, asking until `until` or until told to stop.
    fn callers(&self, tally: &Arc<Tally>, until: Instant) -> Vec<JoinHandle<()>> {
        (0..REPLICAS * CALLERS)
            .map(|i| {
                let base = self.replicas[i % REPLICAS].base.clone();
                tokio::spawn(caller(self.client.clone(), base, i, tally.clone(), until))
            })
            .collect()
    }

    /// `switchyard_shared_syncs_total{result="failed"}` of each replica (none without Redis).
    async fn sync_failures(&self) -> Vec<u64> {
        let mut failed = Vec::new();
        for r in &self.replicas {
            let text = match self.client.get(format!("{}/metrics", r.base)).send().await {
                Ok(response) => response.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            let line = text.lines().find_map(|l| l.strip_prefix("switchyard_shared_syncs_total{result=\"failed\"} "));
            if let Some(n) = line.and_then(|n| n.trim().parse().ok()) {
                failed.push(n);
            }
        }
        failed
    }

    /// Stops every replica with SIGTERM; each must exit cleanly.
    async fn stop(&mut self) {
        for r in &mut self.replicas {
            r.stop().await;
        }
    }

    fn logs(&self) -> String {
        self.replicas.iter().map(Serve::log).collect()
    }
}

/// What the callers expect a refusal to say, and how usage is weighed against the limit.
struct Expect {
    code: &'static str,
    message: String,
    /// The limit's units per prompt and per completion token (1 and 1 for tokens, prices for
    /// dollars).
    weights: (f64, f64),
    /// Half the limit: a refusal before the cluster used this much is premature.
    half: f64,
}

/// What the callers saw.
struct Tally {
    expect: Expect,
    stop: AtomicBool,
    responses: AtomicU64,
    ok: AtomicU64,
    tokens: AtomicU64,
    prompt: AtomicU64,
    completion: AtomicU64,
    refused: AtomicU64,
    premature: AtomicU64,
    /// When the callers started, and how long after it the first refusal came (ms).
    started: Instant,
    first_refusal: AtomicU64,
    /// Anything that was neither a 200 with its usage nor the expected 429.
    bad: Mutex<Vec<String>>,
}

impl Tally {
    fn new(expect: Expect) -> Tally {
        Tally {
            expect,
            stop: AtomicBool::new(false),
            responses: AtomicU64::new(0),
            ok: AtomicU64::new(0),
            tokens: AtomicU64::new(0),
            prompt: AtomicU64::new(0),
            completion: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            premature: AtomicU64::new(0),
            started: Instant::now(),
            first_refusal: AtomicU64::new(u64::MAX),
            bad: Mutex::new(Vec::new()),
        }
    }

    /// The limit's units the 200s used so far.
    fn used(&self) -> f64 {
        let (p, c) = self.expect.weights;
        self.prompt.load(Ordering::SeqCst) as f64 * p + self.completion.load(Ordering::SeqCst) as f64 * c
    }

    /// Every response was a 200 or the expected 429.
    fn check(&self, cluster: &Cluster) {
        let bad = self.bad.lock().unwrap();
        let logs = || cluster.logs();
        assert!(
            bad.is_empty(),
            "{} unexpected responses, e.g. {:?}; logs: {}",
            bad.len(),
            &bad[..bad.len().min(5)],
            logs()
        );
        assert!(self.ok.load(Ordering::SeqCst) > 0, "no request was answered; logs: {}", logs());
    }
}

/// One caller: requests one after another to `base` until `until` or a stop.
async fn caller(client: reqwest::Client, base: String, task: usize, tally: Arc<Tally>, until: Instant) {
    let mut i = 0u32;
    while !tally.stop.load(Ordering::SeqCst) && Instant::now() < until {
        i += 1;
        let result = call(&client, &base, &request_body(task, i), &tally).await;
        tally.responses.fetch_add(1, Ordering::SeqCst);
        match result {
            Ok(true) => {}
            // Refused: a short pause, so that refusals do not spin the callers (it bears on
            // nothing asserted).
            Ok(false) => tokio::time::sleep(Duration::from_millis(10)).await,
            Err(e) => {
                let mut bad = tally.bad.lock().unwrap();
                bad.push(format!("{base} request {task}/{i}: {e}"));
                if bad.len() > 100 {
                    return;
                }
            }
        }
    }
}

/// One chat completion: `Ok(true)` for a 200 (its usage counted), `Ok(false)` for the expected
/// 429 (its Retry-After and message checked).
async fn call(client: &reqwest::Client, base: &str, body: &str, tally: &Tally) -> Result<bool, String> {
    let response = client
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(KEY)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .map_err(|e| format!("send: {e}"))?;
    let status = response.status().as_u16();
    let retry_after = response.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let bytes = response.bytes().await.map_err(|e| format!("body: {e}"))?;
    let doc: Value = serde_json::from_slice(&bytes)
        .map_err(|e| format!("status {status}, not JSON ({e}): {}", String::from_utf8_lossy(&bytes)))?;
    match status {
        200 => {
            let usage = &doc["usage"];
            let field = |name: &str| usage[name].as_u64().ok_or_else(|| format!("no usage.{name} in {doc}"));
            let (prompt, completion, total) =
                (field("prompt_tokens")?, field("completion_tokens")?, field("total_tokens")?);
            // The prompt as the gateway estimated it when it reserved, and a shorter answer than
            // `max_tokens`: no settlement takes more than its reservation.
            let expected = (u64::from(prompt_estimate()), u64::from(ANSWER_TOKENS));
            if (prompt, completion) != expected || total != prompt + completion {
                return Err(format!("usage {usage}, expected {expected:?} tokens"));
            }
            tally.prompt.fetch_add(prompt, Ordering::SeqCst);
            tally.completion.fetch_add(completion, Ordering::SeqCst);
            tally.tokens.fetch_add(total, Ordering::SeqCst);
            tally.ok.fetch_add(1, Ordering::SeqCst);
            Ok(true)
        }
        429 => {
            let expect = &tally.expect;
            let error = &doc["error"];
            if error["code"] != expect.code {
                return Err(format!("429 with code {} (expected {}): {doc}", error["code"], expect.code));
            }
            let message = error["message"].as_str().unwrap_or_default();
            if message != expect.message {
                return Err(format!("429 saying {message:?}, expected {:?}", expect.message));
            }
            let wait = retry_after.as_deref().and_then(|s| s.parse::<u64>().ok());
            let Some(wait) = wait.filter(|w| *w >= 1) else {
                return Err(format!("429 with Retry-After {retry_after:?}"));
            };
            // A budget's refusal asks to come back when its window resets (next UTC midnight).
            if expect.code == "daily_budget_exceeded" {
                let left = (utc_day() + 1) * 86_400 - unix_ms() / 1_000;
                if wait.abs_diff(left.max(1) as u64) > 5 {
                    return Err(format!("Retry-After {wait}s, but the day ends in {left}s"));
                }
            }
            if tally.used() < expect.half {
                tally.premature.fetch_add(1, Ordering::SeqCst);
            }
            let after = u64::try_from(tally.started.elapsed().as_millis()).unwrap_or(u64::MAX);
            tally.first_refusal.fetch_min(after, Ordering::SeqCst);
            tally.refused.fetch_add(1, Ordering::SeqCst);
            Ok(false)
        }
        _ => Err(format!("status {status}: {doc}")),
    }
}

/// The request body: the same length for every task and sequence number, so that every request
/// has the same prompt estimate.
fn request_body(task: usize, i: u32) -> String {
    serde_json::json!({
        "model": "chat",
        "messages": [{ "role": "user", "content": format!("replicas {task:03} {i:07}") }],
        "max_tokens": MAX_TOKENS,
    })
    .to_string()
}

/// The gateway's own prompt estimate of [`request_body`].
fn prompt_estimate() -> u32 {
    ChatRequest::parse(Bytes::from(request_body(0, 0))).expect("a valid request").input_tokens
}

fn unix_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Days since 1970, UTC.
fn utc_day() -> i64 {
    unix_ms().div_euclid(86_400_000)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// Two fast chat deployments on two clouds behind `chat`, answering [`ANSWER_TOKENS`] tokens;
/// one tenant with [`KEY`] and `limits`; the ledger at `ledger`; Redis if `shared` (URL, key
/// prefix), failing closed, so that a sync lost on a loaded machine refuses rather than lets
/// each replica use the whole limit.
fn config_text(endpoints: [&str; 2], ledger: &str, shared: Option<&(String, String)>, limits: &str) -> String {
    let [a, b] = endpoints;
    let hash = key_hash_text(KEY);
    let (input, output) = PRICE;
    let shared = match shared {
        Some((url, prefix)) => {
            format!("shared: {{ redis: \"{url}\", sync_ms: 50, prefix: \"{prefix}\", on_failure: closed }}")
        }
        None => String::new(),
    };
    let deployment = |name: &str, cloud: &str, model: &str, endpoint: &str| {
        format!(
            r#"
  - name: {name}
    cloud: {cloud}
    region: r-{cloud}
    jurisdiction: us
    model: {model}
    endpoint: "{endpoint}"
    price: {{ input_per_mtok: {input}, output_per_mtok: {output} }}
    emulation:
      ttft_ms: {{ fixed: 1 }}
      tokens_per_s: {{ fixed: 5000 }}
      answer_tokens: [{ANSWER_TOKENS}, {ANSWER_TOKENS}]"#
        )
    };
    let (a, b) = (deployment("fast-a", "one", "model-a", a), deployment("fast-b", "two", "model-b", b));
    format!(
        r#"
server:
  timeouts:
    {{ connect_ms: 2000, first_byte_ms: 10000, first_token_ms: 10000, stream_idle_ms: 10000, request_ms: 15000 }}
clouds:
  - {{ name: one, protocol: openai }}
  - {{ name: two, protocol: openai }}
deployments:{a}{b}
aliases:
  - {{ name: chat, deployments: [fast-a, fast-b] }}
  - {{ name: chat-b, policy: priority, deployments: [fast-b, fast-a] }}
routing:
  outlier: {{ base_ejection_ms: 10000 }}
tenants:
  - {{ name: {TENANT}, keys: ["{hash}"], jurisdictions: [us], aliases: ["*"], {limits} }}
ledger:
  url: "{ledger}"
{shared}
"#
    )
}
