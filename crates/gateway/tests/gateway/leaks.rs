//! Nothing leaks when a caller leaves: in-flight counts, token reservations and half-open
//! probes all come back, whatever point the caller hangs up at.

use std::time::Duration;

use serde_json::json;
use switchyard_core::{Rng, SplitMix64};

use crate::support::*;

/// Waits (bounded) until nothing is in flight at any deployment.
async fn settled(h: &Harness) -> bool {
    for _ in 0..250 {
        let state = h.gateway.router();
        if h.gateway.config.deployments.iter().all(|d| state.deployment(d.id).in_flight == 0) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

fn metric(text: &str, prefix: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Config with limits on d1 and d2 and a slow enough answer to be left at any point.
fn limited(tpm: u64) -> String {
    config_text(true, false)
        .replace(
            "capabilities: { context_window: 4096, prefill: true, tools: true }",
            &format!("capabilities: {{ context_window: 4096, prefill: true, tools: true }}\n    limits: {{ concurrency: 64, tpm: {tpm} }}"),
        )
        .replace(
            "capabilities: { context_window: 4096, prefill: PREFILL2 }",
            &format!("capabilities: {{ context_window: 4096, prefill: true }}\n    limits: {{ concurrency: 32, tpm: {tpm} }}"),
        )
        .replace("ttft_ms: { fixed: 5 }, tokens_per_s: { fixed: 1000 }", "ttft_ms: { fixed: 30 }, tokens_per_s: { fixed: 200 }")
}

#[tokio::test(start_paused = true)]
async fn a_thousand_abandoned_requests_leave_nothing_taken() {
    let tpm = 5_000_000;
    let h = Harness::memory_with(&limited(tpm)).await;
    let mut rng = SplitMix64::new(7);
    let mut plans = Vec::new();
    for i in 0..1000 {
        // 0: a whole answer left before it comes; 1: a stream left before its first token;
        // 2: a stream left after its first chunk.
        plans.push((i, rng.next_u64() % 3, 1 + rng.next_u64() % 40));
    }
    for wave in plans.chunks(50) {
        let calls = wave.iter().map(|&(i, mode, wait_ms)| {
            let h = &h;
            async move {
                let body = json!({"model": "chat", "max_tokens": 50, "messages": [{"role": "user", "content": format!("leave {i}")}]});
                let wait = Duration::from_millis(wait_ms);
                match mode {
                    0 => {
                        let _ = tokio::time::timeout(wait, h.chat(body)).await;
                    }
                    1 => {
                        let _ = tokio::time::timeout(wait, h.open_stream(KEY, body)).await;
                    }
                    _ => {
                        let mut stream = h.open_stream(KEY, body).await;
                        let _ = stream.chunk().await;
                    }
                }
            }
        });
        futures_util::future::join_all(calls).await;
    }
    assert!(settled(&h).await, "attempts still open after every caller left");
    let state = h.gateway.router();
    let now = h.gateway.now();
    for d in &h.gateway.config.deployments {
        let s = state.deployment(d.id);
        assert_eq!(s.in_flight, 0, "{}", d.name);
        assert!(!s.health.is_ejected(now), "{} ejected: leaving is not the deployment's fault", d.name);
    }
    // Reservations are back: what is still charged is only what was really produced (a few
    // dozen tokens per stream left mid-way), far below one request's reservation each.
    let d1 = h.gateway.config.deployment_by_name("d1").unwrap().id;
    assert!(state.has_headroom(d1, u32::try_from(tpm).unwrap() - 200_000, now));
    let r = h.chat(ask("chat", "after the storm")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let metrics = h.metrics().await;
    let abandoned = metric(&metrics, "switchyard_upstream_attempts_total{deployment=\"d1\",result=\"abandoned\"}")
        + metric(&metrics, "switchyard_upstream_attempts_total{deployment=\"d2\",result=\"abandoned\"}");
    assert!(abandoned > 300, "abandoned attempts are counted: {abandoned}");
    assert!(metrics.contains("outcome=\"client_closed\""), "abandoned requests are counted");
}

#[tokio::test(start_paused = true)]
async fn an_abandoned_request_gives_its_token_reservation_back() {
    let h = Harness::memory_with(&limited(4_000)).await;
    h.faults("d1", r#"[{"kind":"slow_first_token","delay_ms":3000}]"#);
    // Nearly the whole minute's allowance is reserved by a request whose caller leaves.
    let mut body = ask("solo", "a big reservation");
    body["max_tokens"] = json!(3_500);
    let left = tokio::time::timeout(Duration::from_millis(300), h.chat(body)).await;
    assert!(left.is_err(), "the caller left before the answer");
    assert!(settled(&h).await);
    h.faults("d1", "[]");
    let mut body = ask("solo", "next");
    body["max_tokens"] = json!(3_500);
    let r = h.chat(body).await;
    assert_eq!(r.status, 200, "the allowance is back at once: {}", r.body);
}

#[tokio::test(start_paused = true)]
async fn an_abandoned_probe_does_not_keep_a_deployment_ejected() {
    let h = Harness::memory().await;
    h.faults("d1", r#"[{"kind":"outage"}]"#);
    for i in 0..3 {
        assert_eq!(h.chat(ask("chat", &format!("eject {i}"))).await.status, 200);
    }
    let d1 = h.gateway.config.deployment_by_name("d1").unwrap().id;
    assert!(h.gateway.router().deployment(d1).health.is_ejected(h.gateway.now()));
    // Past the 1 s ejection the next request to d1 is its half-open probe; its caller leaves.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    h.faults("d1", r#"[{"kind":"slow_first_token","delay_ms":3000}]"#);
    let left = tokio::time::timeout(Duration::from_millis(300), h.chat(ask("solo", "probe"))).await;
    assert!(left.is_err());
    assert!(settled(&h).await);
    assert!(!h.gateway.router().deployment(d1).health.is_ejected(h.gateway.now()), "probe slot is free");
    h.faults("d1", "[]");
    let r = h.chat(ask("solo", "probe again")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(header(&r.headers, "x-switchyard-deployment"), "d1");
}

#[tokio::test(start_paused = true)]
async fn a_caller_who_leaves_during_a_hedge_releases_both_attempts() {
    let text = config_text(true, false).replace(
        "  - { name: solo, policy: priority, deployments: [d1] }",
        "  - { name: solo, policy: priority, deployments: [d1] }\n  - { name: hedged, policy: priority, deployments: [d1, d2], hedge_after_ms: 50 }",
    );
    let h = Harness::memory_with(&text).await;
    for d in ["d1", "d2"] {
        h.faults(d, r#"[{"kind":"slow_first_token","delay_ms":3000}]"#);
    }
    let left = tokio::time::timeout(Duration::from_millis(300), h.open_stream(KEY, ask("hedged", "leave both"))).await;
    assert!(left.is_err(), "the caller left before any content");
    assert!(settled(&h).await, "both the first attempt and its hedge are closed");
    let metrics = h.metrics().await;
    assert!(metrics.contains("switchyard_hedges_total{result=\"started\"} 1"), "{metrics}");
    for d in ["d1", "d2"] {
        let line = format!("switchyard_upstream_attempts_total{{deployment=\"{d}\",result=\"abandoned\"}} 1");
        assert!(metrics.contains(&line), "{line}\n{metrics}");
    }
}
