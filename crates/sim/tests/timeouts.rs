//! The gateway's timeouts in the simulated world, decided by the core's request state machine:
//! a brownout past `first_token_ms` (and a whole answer past `first_byte_ms`) fails over, a
//! stream slower per token than `stream_idle_ms` is continued elsewhere. Seeded, so exact.

use switchyard_sim::engine::PolicyChoice;
use switchyard_sim::results::RunResult;
use switchyard_sim::scenario::Scenario;
use switchyard_sim::simulate;

/// Two deployments, `primary` (cloud one) first by priority, `backup` (cloud two) after it.
fn scenario(first_token_ms: u32, streaming_share: f64, primary: &str, events: &str) -> String {
    format!(
        r#"
name: timeouts
duration_s: 120
step_s: 10
arrivals: {{ rate_per_s: 10 }}
mix:
  input_tokens: {{ fixed: 100 }}
  output_tokens: {{ fixed: 20 }}
  streaming_share: {streaming_share}
  tenants: [ {{ tenant: t, alias: chat, share: 1 }} ]
events: [{events}]
gateway:
  server:
    timeouts: {{ first_byte_ms: 5000, first_token_ms: {first_token_ms}, stream_idle_ms: 1000, request_ms: 30000 }}
  routing:
    outlier: {{ consecutive_failures: 3, base_ejection_ms: 2000, max_ejection_ms: 4000, max_ejected_share: 0.5 }}
  clouds: [ {{ name: one, protocol: openai }}, {{ name: two, protocol: openai }} ]
  deployments:
    - {{ name: primary, cloud: one, region: r1, jurisdiction: us, model: m, endpoint: "http://127.0.0.1:1/v1", price: {{ input_per_mtok: 1 }}, capabilities: {{ prefill: true }}, emulation: {primary} }}
    - {{ name: backup, cloud: two, region: r2, jurisdiction: us, model: m, endpoint: "http://127.0.0.1:1/v1", price: {{ input_per_mtok: 2 }}, capabilities: {{ prefill: true }}, emulation: {{ ttft_ms: {{ fixed: 150 }}, tokens_per_s: {{ fixed: 100 }} }} }}
  aliases: [ {{ name: chat, policy: priority, deployments: [primary, backup] }} ]
  tenants: [ {{ name: t, keys: ["sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"], jurisdictions: [us], aliases: ["*"] }} ]
"#
    )
}

const STEADY: &str = "{ ttft_ms: { fixed: 100 }, tokens_per_s: { fixed: 100 } }";
/// The primary's first token (and every token) 20 times slower from 30 s to 90 s: 2 s to the
/// first token, 200 ms a token.
const BROWNOUT: &str = "{ at_s: 30, until_s: 90, kind: brownout, deployment: primary, latency_multiplier: 20 }";

fn run(text: &str) -> RunResult {
    let scenario = Scenario::from_yaml(text).expect("valid scenario");
    let policy = PolicyChoice::parse("priority", &scenario.config).unwrap();
    simulate(&scenario, &[policy], 5, &mut |_, _| ()).runs.remove(0)
}

#[test]
fn a_brownout_past_first_token_fails_over_and_every_request_still_succeeds() {
    let calm = run(&scenario(1000, 0.7, STEADY, ""));
    assert_eq!(calm.failovers, 0, "no brownout, no timeout");
    assert_eq!(calm.per_cloud[1].requests, 0, "everything served by the primary");

    let brownout = run(&scenario(1000, 0.7, STEADY, BROWNOUT));
    assert_eq!(brownout.success_rate, 1.0);
    assert!(brownout.failovers > 0, "first-token (and first-byte) timeouts failed over");
    // Timed-out attempts eject the primary for a while: the backup carries the brownout.
    let during = brownout.series.iter().filter(|s| s.t_s > 40.0 && s.t_s <= 90.0);
    assert!(during.clone().all(|s| s.per_cloud[1] > 0), "the backup served during the brownout");
    let after = brownout.series.iter().filter(|s| s.t_s > 100.0);
    assert!(after.clone().all(|s| s.per_cloud[1] == 0), "back on the primary once it recovered");
    // A caller whose stream failed over waited out the first-token timeout first.
    assert!(brownout.ttft_ms.p99 >= 1000.0, "p99 time to first token {}", brownout.ttft_ms.p99);

    // With a first-token timeout above the brownout's 2 s, the same brownout is only slow.
    let slow = run(&scenario(3000, 1.0, STEADY, BROWNOUT));
    assert_eq!(slow.success_rate, 1.0);
    assert_eq!(slow.failovers, 0, "nothing timed out");
    assert!(slow.ttft_ms.p99 >= 1900.0, "p99 time to first token {}", slow.ttft_ms.p99);
}

#[test]
fn a_stream_slower_per_token_than_stream_idle_is_continued_elsewhere() {
    // The primary answers its first token at once, then one token every 2 s: past the 1 s
    // stream_idle, so the stream stalls after its first token and is continued on the backup.
    let trickle = "{ ttft_ms: { fixed: 100 }, tokens_per_s: { fixed: 0.5 } }";
    let r = run(&scenario(1000, 1.0, trickle, ""));
    assert_eq!(r.success_rate, 1.0);
    assert!(r.continuations > 0, "stalled streams were continued");
    assert!(r.per_cloud[1].requests > 0, "finished on the backup");
    // The same per-token time within stream_idle is slow, not stalled.
    let steady = "{ ttft_ms: { fixed: 100 }, tokens_per_s: { fixed: 1.25 } }";
    let r = run(&scenario(1000, 1.0, steady, ""));
    assert_eq!(r.success_rate, 1.0);
    assert_eq!((r.continuations, r.failovers), (0, 0));
}

/// The primary has a heavy tail of first-token latency (median 150 ms, p99 3 s), well inside
/// `first_token_ms`: nothing times out, some requests are just slow to start.
const TAIL: &str = "{ ttft_ms: { lognormal: [150, 3000] }, tokens_per_s: { fixed: 100 } }";

#[test]
fn hedging_cuts_the_first_token_tail_within_the_retry_budget() {
    let plain = scenario(10_000, 1.0, TAIL, "");
    let hedged =
        plain.replace("deployments: [primary, backup] }", "deployments: [primary, backup], hedge_after_ms: 400 }");
    let (plain, hedged) = (run(&plain), run(&hedged));
    assert_eq!(plain.hedges, 0);
    assert!(hedged.hedges > 0, "slow first tokens were hedged");
    assert!(
        hedged.ttft_ms.p99 < plain.ttft_ms.p99 * 0.5,
        "p99 time to first token: {} ms hedged, {} ms not",
        hedged.ttft_ms.p99,
        plain.ttft_ms.p99
    );
    // Hedges are retries: within the budget's ratio (0.2 by default) plus its floor.
    let extra = hedged.attempts - plain.attempts;
    assert!(extra <= hedged.requests / 5 + 5 * 10, "{extra} extra attempts for {} requests", hedged.requests);
    eprintln!(
        "hedging: p99 TTFT {} -> {} ms, {} hedges, {} extra attempts of {} requests",
        plain.ttft_ms.p99, hedged.ttft_ms.p99, hedged.hedges, extra, hedged.requests
    );
}
