//! Fidelity: the same short scenario in the simulator and live (the emulator and the gateway
//! on loopback, the same timing model, traffic and fault schedule) must agree: share per cloud
//! within 5 percentage points, success rate within 0.5 points, p50 latency within 15%. The
//! scenario has an outage and a cloud slower than `first_token_ms`, so both the failure path
//! and the timeout path of the core's request state machine are compared. 15 s of traffic.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use switchyard_core::config::{Fault, FaultKind, FaultWindow, Policy};
use switchyard_emulator::{Bind, Emulator};
use switchyard_gateway::Gateway;
use switchyard_sim::engine::PolicyChoice;
use switchyard_sim::scenario::{EventKind, Scenario};
use switchyard_sim::{simulate, traffic};
use tokio::time::Instant;

const SEED: u64 = 11;

struct Seen {
    ok: bool,
    deployment: Option<String>,
    latency: Duration,
}

async fn call(client: &reqwest::Client, base: &str, input: u32, output: u32, stream: bool, n: usize) -> Seen {
    let started = Instant::now();
    let prompt = format!("request {n} {}", "x".repeat(input as usize * 4));
    let body = serde_json::json!({
        "model": "chat",
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": output,
        "stream": stream,
    });
    let sent = client
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth("test")
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await;
    let Ok(response) = sent else { return Seen { ok: false, deployment: None, latency: started.elapsed() } };
    let ok = response.status().is_success();
    let deployment = response.headers().get("x-switchyard-deployment").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let mut body = response.bytes_stream();
    let mut text = Vec::new();
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(c) => text.extend_from_slice(&c),
            Err(_) => return Seen { ok: false, deployment, latency: started.elapsed() },
        }
    }
    let complete = !stream || String::from_utf8_lossy(&text).contains("[DONE]");
    Seen { ok: ok && complete, deployment, latency: started.elapsed() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulator_and_live_gateway_agree() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fidelity.yaml")).unwrap();
    let scenario = Scenario::from_yaml(&text).unwrap();
    let report = simulate(&scenario, &[PolicyChoice::Core(Policy::Cost)], SEED, &mut |_, _| ());
    let sim = &report.runs[0];
    assert!(sim.failovers > 0, "the outage and the first-token timeouts fail over");

    // Live: the same deployments emulated, the gateway in front, the same traffic replayed.
    let emulator = Emulator::start(&scenario.config, Bind::Ephemeral, None, SEED).await.unwrap();
    let mut config = scenario.config.clone();
    for d in &mut config.deployments {
        d.endpoint = emulator.deployment(&d.name).unwrap().endpoint();
    }
    let gateway = Gateway::new(config, SEED).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(switchyard_gateway::serve(gateway, listener, std::future::pending()));
    let client = reqwest::Client::builder().pool_max_idle_per_host(512).build().unwrap();

    for event in &scenario.events {
        assert_eq!(event.kind, EventKind::Outage, "the fidelity scenario only schedules outages");
        let fault =
            Fault { window: FaultWindow { from: event.from, until: event.until }, rate: 1.0, kind: FaultKind::Outage };
        for d in &event.deployments {
            let name = &scenario.config.deployment(*d).name;
            emulator.set_faults(name, vec![fault.clone()]).unwrap();
        }
    }
    let start = Instant::now();
    let arrivals = traffic(&scenario, SEED);
    let client = Arc::new(client);
    let base = Arc::new(base);
    let mut tasks = Vec::new();
    for (n, a) in arrivals.iter().copied().enumerate() {
        let (client, base) = (client.clone(), base.clone());
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(start + a.at).await;
            call(&client, &base, a.input_tokens, a.output_tokens, a.stream, n).await
        }));
    }
    let mut seen = Vec::new();
    for t in tasks {
        seen.push(t.await.unwrap());
    }

    let n = seen.len() as f64;
    let ok: Vec<&Seen> = seen.iter().filter(|s| s.ok).collect();
    let live_success = ok.len() as f64 / n;
    let mut latencies: Vec<f64> = ok.iter().map(|s| s.latency.as_secs_f64() * 1000.0).collect();
    latencies.sort_by(f64::total_cmp);
    let live_p50 = latencies[latencies.len() / 2];
    let cloud_of = |name: &str| {
        let d = scenario.config.deployment_by_name(name).unwrap();
        scenario.config.cloud_of(d.id).name.clone()
    };
    let mut report_lines = Vec::new();
    for c in &sim.per_cloud {
        let live = ok.iter().filter(|s| s.deployment.as_deref().is_some_and(|d| cloud_of(d) == c.cloud)).count() as f64
            / ok.len().max(1) as f64;
        report_lines.push(format!("{}: sim {:.3} live {:.3}", c.cloud, c.share, live));
        assert!((c.share - live).abs() <= 0.05, "share of {}: sim {:.3} vs live {:.3}", c.cloud, c.share, live);
    }
    assert!(
        (sim.success_rate - live_success).abs() <= 0.005,
        "success: sim {:.4} vs live {:.4}",
        sim.success_rate,
        live_success
    );
    let ratio = live_p50 / sim.latency_ms.p50;
    assert!(
        (0.85..=1.15).contains(&ratio),
        "p50: sim {:.1} ms vs live {:.1} ms ({report_lines:?})",
        sim.latency_ms.p50,
        live_p50
    );
    eprintln!(
        "fidelity: {report_lines:?}; success sim {} live {live_success}; p50 sim {} live {live_p50:.1}",
        sim.success_rate, sim.latency_ms.p50
    );
}
