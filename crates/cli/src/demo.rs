//! `switchyard demo`: emulated AWS-, Azure-, OCI- and Google-shaped clouds and an on-prem cluster (AWS on
//! Bedrock's protocol with SigV4, Azure on Azure OpenAI's, OCI on its own Generative AI API signed with an OCI
//! API key made at start, Google on Gemini's, on-prem on Anthropic's), the gateway in
//! front, mixed traffic from two tenants, one whole cloud taken down midway and brought back;
//! live progress, a closing table, and a report file.

use std::path::Path;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use switchyard_core::config::{Config, Fault, FaultKind, FaultWindow, SecretSource};
use switchyard_emulator::{Bind, Emulator};
use switchyard_gateway::Gateway;
use tokio::time::Instant;

use crate::load::{self, Caller, Outcome};
use crate::outln;
use crate::report::{Phases, summarise};

const DEMO_CONFIG: &str = include_str!("../../../examples/demo.yaml");
const WORKERS: usize = 24;
const CLOUD_DOWN: &str = "aws";
/// Azure's provisioned-throughput deployment, whose capacity the demo's load exceeds.
const PTU: &str = "azure-eastus";

pub(crate) async fn run(report_path: &Path, seconds: u64, seed: u64) -> anyhow::Result<ExitCode> {
    // OCI's API signing key, made now and held in memory only: the gateway signs with it and
    // the emulated OCI checks its signatures with the public half.
    let secrets = DemoSecrets { oci_private_key: switchyard_providers::oci::generate_pem()? };
    let emulated = Config::from_yaml(DEMO_CONFIG, &secrets).context("demo config")?;
    let emulator = Emulator::start(&emulated, Bind::Ephemeral, None, seed).await?;
    let mut config = Config::from_yaml(DEMO_CONFIG, &secrets).context("demo config")?;
    for d in &mut config.deployments {
        if let Some(e) = emulator.deployment(&d.name) {
            d.endpoint = e.endpoint();
        }
    }
    // Every request on record, in an in-memory ledger the report reads back.
    config.ledger.url = switchyard_core::config::Secret::new("sqlite::memory:".to_owned());
    let (store, ledger) = switchyard_gateway::open_ledger(&config).await?;
    let parts = switchyard_gateway::Parts { ledger: Some(ledger), store: Some(store.clone()), ..Default::default() };
    let gateway = Gateway::assemble(config, seed, parts)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(switchyard_gateway::serve(gateway.clone(), listener, async move {
        let _ = stop_rx.await;
    }));

    let config = gateway.config.clone();
    outln!(
        "Switchyard demo: {} clouds, {} deployments, gateway on http://{addr}",
        config.clouds.len(),
        config.deployments.len()
    )?;
    for d in &config.deployments {
        let cloud = config.cloud_of(d.id);
        outln!(
            "  {:<22} {:<6} {:<12} {:<15} {:<3} {}",
            d.name,
            cloud.name,
            cloud.protocol.name(),
            d.region,
            d.jurisdiction,
            emulator.deployment(&d.name).map(|e| e.endpoint()).unwrap_or_default()
        )?;
    }
    let total = Duration::from_secs(seconds.max(6));
    let outage_from = total / 3;
    let outage_until = total * 2 / 3;
    let (burst_from, burst_until) = (total / 6, total / 3);
    outln!(
        "Traffic: {WORKERS} callers (two tenants, half streaming) for {}s, {WORKERS} more from {}s to {}s (a burst); {CLOUD_DOWN} goes down at {}s and comes back at {}s.\n",
        total.as_secs(),
        burst_from.as_secs_f64(),
        burst_until.as_secs_f64(),
        outage_from.as_secs(),
        outage_until.as_secs()
    )?;

    let client = reqwest::Client::builder().tcp_nodelay(true).pool_max_idle_per_host(WORKERS * 2).build()?;
    let caller = Arc::new(Caller { client, base: format!("http://{addr}") });
    let keys = vec![(0usize, "sk-demo-acme".to_owned()), (1usize, "sk-demo-eurobank".to_owned())];
    let outcomes: Arc<Mutex<Vec<Outcome>>> = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let until = started + total;
    let traffic = tokio::spawn(load::run(caller.clone(), keys.clone(), WORKERS, started, until, outcomes.clone()));
    // The burst: as many callers again for a while. The PTU's 429s and its answers saying it
    // was full are counted as it starts and ends, for its table.
    let burst = {
        let (gateway, outcomes) = (gateway.clone(), outcomes.clone());
        tokio::spawn(async move {
            tokio::time::sleep_until(started + burst_from).await;
            let before = ptu_counts(&gateway);
            load::run(caller, keys, WORKERS, started, started + burst_until, outcomes).await;
            (before, ptu_counts(&gateway))
        })
    };

    let outage =
        [Fault { window: FaultWindow { from: Duration::ZERO, until: None }, rate: 1.0, kind: FaultKind::Outage }];
    let mut down = false;
    let mut restored = false;
    let mut seen = 0;
    let mut ptu_ejected = false;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    while Instant::now() < until {
        tick.tick().await;
        ptu_ejected |= ever_ejected(&gateway, PTU);
        let elapsed = started.elapsed();
        if !down && elapsed >= outage_from {
            let n = emulator.set_cloud_faults(CLOUD_DOWN, &outage);
            outln!(">>> {CLOUD_DOWN} is DOWN: {n} deployments now reset every connection")?;
            down = true;
        }
        if down && !restored && elapsed >= outage_until {
            emulator.set_cloud_faults(CLOUD_DOWN, &[]);
            outln!(">>> {CLOUD_DOWN} is back")?;
            restored = true;
        }
        let snapshot: Vec<Outcome> = outcomes.lock().map(|o| o.clone()).unwrap_or_default();
        let window = &snapshot[seen.min(snapshot.len())..];
        seen = snapshot.len();
        let failed = snapshot.iter().filter(|o| !o.ok).count();
        let mut shares = String::new();
        for cloud in &config.clouds {
            let n = window
                .iter()
                .filter(|o| o.ok)
                .filter(|o| {
                    o.deployment
                        .as_deref()
                        .and_then(|d| config.deployment_by_name(d))
                        .is_some_and(|d| config.cloud_of(d.id).name == cloud.name)
                })
                .count();
            let pct = if window.is_empty() { 0.0 } else { 100.0 * n as f64 / window.len() as f64 };
            shares.push_str(&format!("  {} {:>5.1}%", cloud.name, pct));
        }
        outln!(
            "[{:>3.0}s] {:>5} requests  {:>3} failed  {:>4} req/s {shares}",
            elapsed.as_secs_f64(),
            snapshot.len(),
            failed,
            window.len()
        )?;
    }
    let _ = traffic.await;
    let burst_counts = burst.await.unwrap_or_default();
    let _ = stop_tx.send(());
    let _ = server.await;

    let outcomes = outcomes.lock().map(|o| o.clone()).unwrap_or_default();
    let continuations = gateway.metrics.continuations();
    let phases = Phases { outage_from, outage_until, cloud_down: CLOUD_DOWN.to_owned() };
    let mut summary = summarise(&config, &outcomes, &phases, 1, continuations);
    let burst = Burst { from: burst_from, until: burst_until, ptu_counts: burst_counts };
    summary.text.push_str(&ptu_section(&gateway, &outcomes, &burst, ptu_ejected || ever_ejected(&gateway, PTU)));
    outln!("\n{}", summary.text)?;
    if let Some(ledger) = &gateway.ledger {
        ledger.flush().await;
    }
    let (spend, n_records) = spend_tables(&store).await?;
    outln!("{spend}")?;
    let report = format!(
        "# Switchyard demo report\n\n{} callers for {}s ({} more from {:.1}s to {:.1}s) over {} deployments in {} clouds; `{CLOUD_DOWN}` down from {}s to {}s. Seed {seed}.\n\n{}",
        WORKERS,
        total.as_secs(),
        WORKERS,
        burst_from.as_secs_f64(),
        burst_until.as_secs_f64(),
        config.deployments.len(),
        config.clouds.len(),
        outage_from.as_secs(),
        outage_until.as_secs(),
        summary.text
    ) + &spend;
    std::fs::write(report_path, report).with_context(|| format!("cannot write {}", report_path.display()))?;
    outln!("Report written to {}", report_path.display())?;
    if summary.n_failed > 0 || summary.eu_violations > 0 {
        outln!("FAILED: {} failed requests, {} EU violations", summary.n_failed, summary.eu_violations)?;
        return Ok(ExitCode::FAILURE);
    }
    if n_records != outcomes.len() as u64 {
        outln!("FAILED: {} requests made, {n_records} in the ledger", outcomes.len())?;
        return Ok(ExitCode::FAILURE);
    }
    outln!("OK: zero failed requests through the {CLOUD_DOWN} outage; the EU tenant never left the EU.")?;
    Ok(ExitCode::SUCCESS)
}

/// Whether the deployment is (or was, and has not yet been probed back) ejected.
fn ever_ejected(gateway: &Gateway, name: &str) -> bool {
    let Some(d) = gateway.config.deployment_by_name(name) else { return false };
    gateway.router().deployment(d.id).health.ejected_until().is_some()
}

/// The demo's burst: when, and the PTU's [`ptu_counts`] as it began and ended.
struct Burst {
    from: Duration,
    until: Duration,
    ptu_counts: ([u64; 2], [u64; 2]),
}

/// The PTU's 429s so far, and its answers that said it was full.
fn ptu_counts(gateway: &Gateway) -> [u64; 2] {
    let Some(d) = gateway.config.deployment_by_name(PTU) else { return [0; 2] };
    [gateway.metrics.rate_limited_count(d.id), gateway.metrics.reported_full_count(d.id)]
}

/// How the PTU filled and spilled: what it answered, its 429s (each request moved on at once
/// to an on-demand deployment), the answers whose headers said it was full (it was planned
/// around until their reset), and whether it was ever ejected (it should not be); then the
/// same before, during and after the burst, with the PTU's share of the answers.
fn ptu_section(gateway: &Gateway, outcomes: &[Outcome], burst: &Burst, ejected: bool) -> String {
    let Some(d) = gateway.config.deployment_by_name(PTU) else { return String::new() };
    let answered = outcomes.iter().filter(|o| o.ok && o.deployment.as_deref() == Some(PTU)).count();
    let n_429 = gateway.metrics.rate_limited_count(d.id);
    let full = gateway.metrics.reported_full_count(d.id);
    let mut text = format!(
        "\n## Provisioned throughput (PTU) spillover\n\n\
         | deployment | answered | its 429s (spilled at once) | answers saying it was full | ejected |\n\
         |---|---:|---:|---:|---|\n\
         | {PTU} (reserved) | {answered} | {n_429} | {full} | {} |\n\n\
         | phase | requests | answered by the PTU | its 429s (spilled) | its answers saying it was full |\n\
         |---|---:|---:|---:|---:|\n",
        if ejected { "yes" } else { "never" }
    );
    let (at_start, at_end) = burst.ptu_counts;
    let since = |later: [u64; 2], earlier: [u64; 2]| [0, 1].map(|i| later[i].saturating_sub(earlier[i]));
    let phases = [
        ("before the burst", Duration::ZERO, burst.from, at_start),
        ("the burst (twice the callers)", burst.from, burst.until, since(at_end, at_start)),
        ("after it", burst.until, Duration::MAX, since([n_429, full], at_end)),
    ];
    for (name, from, until, [n_429, n_full]) in phases {
        let sent: Vec<&Outcome> = outcomes.iter().filter(|o| o.at >= from && o.at < until).collect();
        let by_ptu = sent.iter().filter(|o| o.ok && o.deployment.as_deref() == Some(PTU)).count();
        let share = if sent.is_empty() { 0.0 } else { 100.0 * by_ptu as f64 / sent.len() as f64 };
        text.push_str(&format!("| {name} | {} | {by_ptu} ({share:.0}%) | {n_429} | {n_full} |\n", sent.len()));
    }
    text
}

/// The demo's made-up credentials, and the OCI signing key it made at start.
struct DemoSecrets {
    oci_private_key: String,
}

impl SecretSource for DemoSecrets {
    fn env(&self, name: &str) -> Option<String> {
        let value = match name {
            "DEMO_OCI_PRIVATE_KEY" => self.oci_private_key.as_str(),
            "DEMO_AWS_ACCESS_KEY_ID" => "AKIDSWITCHYARDDEMO",
            "DEMO_AWS_SECRET_ACCESS_KEY" => "demo/secret/access/key/for/sigv4",
            "DEMO_ONPREM_API_KEY" => "sk-onprem-demo",
            "DEMO_AZURE_API_KEY" => "azure-demo-resource-key",
            "DEMO_GEMINI_API_KEY" => "gemini-demo-key",
            _ => return None,
        };
        Some(value.to_owned())
    }

    fn file(&self, path: &str) -> Result<String, String> {
        Err(format!("the demo reads no files ({path})"))
    }
}

/// Spend per tenant and per key, read back from the ledger, as markdown tables; and how many
/// records it holds.
async fn spend_tables(store: &switchyard_ledger::Store) -> anyhow::Result<(String, u64)> {
    use std::fmt::Write as _;
    let mut out = String::from("\n## Spend, from the ledger\n");
    for (group, title) in [(switchyard_ledger::Group::Tenant, "tenant"), (switchyard_ledger::Group::Key, "key")] {
        let rows = store.spend(group, 0, i64::MAX).await?;
        let _ =
            writeln!(out, "\n| {title} | requests | input tokens | output tokens | cost |\n|---|---:|---:|---:|---:|");
        for r in rows {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | ${:.4} |",
                r.key, r.requests, r.input_tokens, r.output_tokens, r.cost_usd
            );
        }
    }
    Ok((out, store.count().await?))
}
