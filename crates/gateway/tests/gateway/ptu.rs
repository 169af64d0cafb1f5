//! Azure provisioned-throughput (PTU) spillover, end to end on the paused clock: a `reserved`
//! Azure deployment is filled first; on its 429 (or when its `x-ratelimit-remaining-requests`
//! says it is full) traffic spills at once to on-demand deployments (Azure pay-as-you-go, then
//! another cloud), the PTU is never ejected, and it is planned first again as soon as it has room.

use std::time::Duration;

use futures_util::future::join_all;
use switchyard_core::config::SecretSource;
use switchyard_emulator::Seen;
use tokio::time::Instant;

use crate::support::*;

const AZURE_KEY: &str = "azure-resource-key";

/// `ptu` (reserved, Azure), `paygo` (on demand, Azure), `oa` (on demand, another cloud); the
/// cost policy puts the PTU first (marginal cost ~0), then pay-as-you-go, then `oa`. A 429's
/// Retry-After up to 1 s would be waited out on an on-demand deployment; outlier detection
/// ejects after 2 failures in a row.
const CONFIG: &str = r#"
server:
  timeouts: { connect_ms: 500, first_byte_ms: 3000, first_token_ms: 3000, stream_idle_ms: 2000, request_ms: 8000 }
  retry_after_cap_ms: 1000
routing:
  outlier: { consecutive_failures: 2, base_ejection_ms: 1000, max_ejection_ms: 2000, max_ejected_share: 1.0 }
clouds:
  - { name: azure, protocol: azure-openai, api_key: "env:AZURE_OPENAI_API_KEY" }
  - { name: oai, protocol: openai }
deployments:
  - name: ptu
    cloud: azure
    region: eastus
    jurisdiction: us
    model: gpt-4o-ptu
    endpoint: https://contoso.openai.azure.com
    price: { input_per_mtok: 2.5, output_per_mtok: 10 }
    tier: reserved
    capabilities: { context_window: 128000 }
    emulation: PTU_EMULATION
  - name: paygo
    cloud: azure
    region: eastus2
    jurisdiction: us
    model: gpt-4o-paygo
    endpoint: https://contoso.openai.azure.com
    price: { input_per_mtok: 2.5, output_per_mtok: 10 }
    capabilities: { context_window: 128000 }
    emulation: PAYGO_EMULATION
  - name: oa
    cloud: oai
    region: us
    jurisdiction: us
    model: gpt-4o
    endpoint: http://127.0.0.1:3/v1
    price: { input_per_mtok: 5, output_per_mtok: 15 }
    capabilities: { context_window: 128000 }
    emulation: OA_EMULATION
aliases:
  - { name: chat, policy: cost, deployments: [ptu, paygo, oa] }
tenants:
  - { name: global, keys: ["KEYHASH"], jurisdictions: [us], aliases: ["*"] }
"#;

struct AzureKey;

impl SecretSource for AzureKey {
    fn env(&self, name: &str) -> Option<String> {
        (name == "AZURE_OPENAI_API_KEY").then(|| AZURE_KEY.to_owned())
    }

    fn file(&self, path: &str) -> Result<String, String> {
        Err(format!("no file {path}"))
    }
}

/// An emulation answering 12 tokens after `ttft_ms`, with `extra` settings (capacity, ...).
fn emulation(ttft_ms: u32, extra: &str) -> String {
    format!("{{ ttft_ms: {{ fixed: {ttft_ms} }}, tokens_per_s: {{ fixed: 1000 }}, answer_tokens: [12, 12]{extra} }}")
}

async fn harness(ptu: &str, paygo: &str, oa: &str) -> Harness {
    let text = CONFIG
        .replace("PTU_EMULATION", ptu)
        .replace("PAYGO_EMULATION", paygo)
        .replace("OA_EMULATION", oa)
        .replace("KEYHASH", &switchyard_core::config::key_hash_text(KEY));
    Harness::memory_with_secrets(&text, &AzureKey, &AzureKey).await
}

/// Where a whole answer came from.
fn answered_by(r: &Reply) -> String {
    assert_eq!(r.status, 200, "{}", r.body);
    header(&r.headers, "x-switchyard-deployment").to_owned()
}

/// The PTU was never ejected, and 429s did not count as failures.
fn assert_never_ejected(h: &Harness) {
    let ptu = h.gateway.config.deployment_by_name("ptu").expect("ptu").id;
    let d = h.gateway.router().deployment(ptu);
    assert_eq!(d.health.ejected_until(), None, "the PTU was never ejected");
    assert_eq!(d.health.consecutive_failures(), 0, "its 429s are not failures");
}

#[tokio::test(start_paused = true)]
async fn a_ptu_spills_on_its_429s_without_waiting_and_takes_traffic_back_when_they_stop() {
    // The PTU answers 429 (Retry-After 200 ms) for its first 600 ms.
    let fast = emulation(5, "");
    let h = harness(&fast, &fast, &fast).await;
    h.faults("ptu", r#"[{"kind":"error","status":429,"retry_after_ms":200,"until_ms":600}]"#);
    let started = Instant::now();
    let mut first_back = None;
    while started.elapsed() < Duration::from_millis(2000) {
        let at = started.elapsed();
        let r = h.chat(ask("chat", &format!("at {}", at.as_millis()))).await;
        let by = answered_by(&r);
        assert!(r.elapsed < Duration::from_millis(100), "spilled at once, without the Retry-After: {:?}", r.elapsed);
        if at < Duration::from_millis(600) {
            assert_eq!(by, "paygo", "spilled within Azure at {at:?}");
        } else if by == "ptu" {
            first_back.get_or_insert(at);
        } else {
            assert!(first_back.is_none(), "back to {by} after the PTU took traffic again, at {at:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Room returned at 600 ms; the last cool-down (200 ms) ends by 800 ms.
    let back = first_back.expect("traffic came back to the PTU");
    assert!(back < Duration::from_millis(1600), "spill-back within a second of room returning: {back:?}");
    assert!(back <= Duration::from_millis(800), "no later than the cool-down the PTU asked for: {back:?}");
    // One 429 per cool-down, not one per request; more of them than it takes to eject.
    let n_429 = h.seen("ptu", Seen::ErrorStatus(429));
    assert!((3..=4).contains(&n_429), "{n_429} 429s");
    assert_never_ejected(&h);
    let metrics = h.metrics().await;
    assert!(metrics.contains("switchyard_deployment_ejected{deployment=\"ptu\"} 0"), "{metrics}");
}

#[tokio::test(start_paused = true)]
async fn a_burst_beyond_the_ptu_spills_within_azure_and_across_clouds() {
    // The PTU and pay-as-you-go each take 2 at once; answers take about half a second.
    let ptu = emulation(500, ", max_concurrency: 2, retry_after_ms: 300");
    let paygo = emulation(500, ", max_concurrency: 2, retry_after_ms: 5000");
    let h = harness(&ptu, &paygo, &emulation(500, "")).await;
    let burst = join_all((0..8).map(|i| h.chat(ask("chat", &format!("burst {i}"))))).await;
    let mut by: Vec<String> = burst.iter().map(answered_by).collect();
    by.sort();
    let count = |name: &str| by.iter().filter(|b| *b == name).count();
    assert_eq!(count("ptu"), 2, "the PTU is filled first: {by:?}");
    assert_eq!(count("paygo"), 2, "then Azure on demand: {by:?}");
    assert_eq!(count("oa"), 4, "then another cloud: {by:?}");
    assert_never_ejected(&h);
    // Its room is back: the next requests go to the PTU first again.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for i in 0..2 {
        let r = h.chat(ask("chat", &format!("after {i}"))).await;
        assert_eq!(answered_by(&r), "ptu");
    }
}

#[tokio::test(start_paused = true)]
async fn a_ptu_that_reports_no_requests_left_is_passed_over_until_its_reset() {
    // Capacity 1: a stream holding it reports `x-ratelimit-remaining-requests: 0`, reset 600 ms.
    // The stream takes about 200 ms; the gateway does not know it ended until the reset.
    let fast = emulation(5, "");
    let h = harness(&emulation(200, ", max_concurrency: 1, retry_after_ms: 600"), &fast, &fast).await;
    let started = Instant::now();
    let (held, during) = tokio::join!(h.stream(KEY, ask("chat", "holding the PTU")), async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let early = answered_by(&h.chat(ask("chat", "while full")).await);
        tokio::time::sleep(Duration::from_millis(400)).await;
        let later = answered_by(&h.chat(ask("chat", "still before the reset")).await);
        (early, later)
    });
    assert_eq!(header(&held.headers, "x-switchyard-deployment"), "ptu");
    assert!(held.done);
    assert_eq!(during, ("paygo".to_owned(), "paygo".to_owned()), "passed over until the reset");
    assert_eq!(h.seen("ptu", Seen::RateLimited), 0, "planned around, never asked");
    let reset = started + Duration::from_millis(600);
    tokio::time::sleep_until(reset).await;
    let r = h.chat(ask("chat", "after the reset")).await;
    assert_eq!(answered_by(&r), "ptu", "back when the reset passed");
    assert_never_ejected(&h);
    let metrics = h.metrics().await;
    assert!(
        metrics.contains("switchyard_deployment_reported_full_total{deployment=\"ptu\",cloud=\"azure\"} 1"),
        "{metrics}"
    );
}
