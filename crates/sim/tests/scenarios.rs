//! The scenario library run through the simulator: determinism, the outage and EU checks.

use switchyard_sim::engine::PolicyChoice;
use switchyard_sim::results::Report;
use switchyard_sim::scenario::Scenario;
use switchyard_sim::simulate;

fn load(name: &str) -> String {
    std::fs::read_to_string(format!("{}/../../scenarios/{name}.yaml", env!("CARGO_MANIFEST_DIR"))).expect("scenario")
}

fn run(text: &str, policies: &[&str], seed: u64) -> Report {
    let scenario = Scenario::from_yaml(text).expect("valid scenario");
    let choices: Vec<PolicyChoice> =
        policies.iter().map(|p| PolicyChoice::parse(p, &scenario.config).unwrap()).collect();
    simulate(&scenario, &choices, seed, &mut |_, _| ())
}

fn policy<'a>(report: &'a Report, name: &str) -> &'a switchyard_sim::results::RunResult {
    report.runs.iter().find(|r| r.policy == name).expect("policy ran")
}

#[test]
fn every_scenario_in_the_library_is_valid() {
    let dir = format!("{}/../../scenarios", env!("CARGO_MANIFEST_DIR"));
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        if switchyard_sim::jobs::is_job_scenario(&text) {
            let scenario = switchyard_sim::jobs::scenario::JobScenario::from_yaml(&text);
            scenario.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        } else {
            Scenario::from_yaml(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
        n += 1;
    }
    assert!(n >= 5);
}

#[test]
fn same_scenario_and_seed_give_byte_identical_json() {
    // A lighter version of the EU scenario keeps the test quick.
    let text = load("eu-region-outage").replace("rate_per_s: 100", "rate_per_s: 5");
    let a = serde_json::to_string(&run(&text, &["balanced", "round_robin"], 7)).unwrap();
    let b = serde_json::to_string(&run(&text, &["balanced", "round_robin"], 7)).unwrap();
    assert_eq!(a, b);
    let c = serde_json::to_string(&run(&text, &["balanced", "round_robin"], 8)).unwrap();
    assert_ne!(a, c, "another seed, other traffic");
}

#[test]
fn a_cloud_outage_at_peak_keeps_failover_policies_up_and_sinks_the_static_baseline() {
    let text = load("cloud-outage-at-peak").replace("rate_per_s: 200", "rate_per_s: 10");
    let report = run(&text, &["balanced", "cost", "static:aws"], 1);
    for name in ["balanced", "cost"] {
        let r = policy(&report, name);
        assert!(r.success_rate >= 0.9999, "{name}: {}", r.success_rate);
    }
    let balanced = policy(&report, "balanced");
    assert!(balanced.failovers > 0, "balanced used AWS and failed over when it went down");
    let aws = report.clouds.iter().position(|c| c == "aws").unwrap();
    let during = balanced.series.iter().filter(|s| s.t_s > 2820.0 && s.t_s <= 4500.0);
    assert!(during.clone().all(|s| s.per_cloud[aws] == 0), "no request served by AWS while it is down");
    let stuck = policy(&report, "static:aws");
    // The outage is 30 of 120 minutes, at the daily peak: about a quarter of the traffic.
    assert!(stuck.success_rate < 0.8, "static baseline lost the outage: {}", stuck.success_rate);
    let during = stuck.series.iter().filter(|s| s.t_s > 2760.0 && s.t_s <= 4500.0);
    assert!(during.clone().all(|s| s.failed == s.requests), "nothing served by a dead cloud");
}

#[test]
fn the_eu_tenant_never_leaves_the_eu_and_fails_closed() {
    let text = load("eu-region-outage").replace("rate_per_s: 100", "rate_per_s: 10");
    let report = run(&text, &["balanced", "cost", "latency", "round_robin"], 3);
    for r in &report.runs {
        assert_eq!(r.outside_jurisdiction, 0, "{}", r.policy);
        // While every EU region is down the EU tenant's requests fail instead of leaving.
        let total_outage: Vec<_> = r.series.iter().filter(|s| s.t_s > 2430.0 && s.t_s <= 2700.0).collect();
        assert!(total_outage.iter().all(|s| s.failed > 0), "{}: EU requests failed closed", r.policy);
        // While only two EU regions are down, the third carries the EU: nothing fails.
        let partial: Vec<_> = r.series.iter().filter(|s| s.t_s > 960.0 && s.t_s <= 1800.0).collect();
        assert!(partial.iter().all(|s| s.failed == 0), "{}: OCI Frankfurt carried the EU", r.policy);
    }
}

#[test]
fn scenario_errors_name_their_path() {
    let text = load("brownout").replace("streaming_share: 0.7", "streaming_share: 7");
    let err = Scenario::from_yaml(&text).unwrap_err().to_string();
    assert!(err.contains("mix.streaming_share: must be between 0 and 1"), "{err}");
    let text = load("brownout").replace("kind: brownout", "kind: meteor");
    let err = Scenario::from_yaml(&text).unwrap_err().to_string();
    assert!(err.contains("events[0].kind: unknown event"), "{err}");
    let text = load("brownout").replace("input_per_mtok: 0.72", "input_per_mtok: -1");
    let err = Scenario::from_yaml(&text).unwrap_err().to_string();
    assert!(err.contains("gateway.deployments[0].price.input_per_mtok: must be >= 0"), "{err}");
}

#[test]
fn the_html_report_charts_every_policy() {
    let text = load("brownout").replace("rate_per_s: 120", "rate_per_s: 2");
    let report = run(&text, &["balanced", "static:aws"], 1);
    let page = switchyard_sim::html::page(&report);
    assert_eq!(page.matches("<section>").count(), 2);
    assert_eq!(page.matches("<svg").count(), 2 * 3, "share, latency and spend per policy");
    assert!(page.contains("Share of served requests per cloud"));
    assert!(page.contains("60 min"), "the time axis is in minutes for an hour-long run");
}

#[test]
fn a_deployment_queue_absorbs_bursts_that_would_otherwise_be_refused() {
    let scenario = |queue: u32| {
        format!(
            r#"
name: queue
duration_s: 120
arrivals: {{ rate_per_s: 12 }}
mix:
  input_tokens: {{ fixed: 100 }}
  output_tokens: {{ fixed: 20 }}
  tenants: [ {{ tenant: t, alias: chat, share: 1 }} ]
gateway:
  clouds: [ {{ name: one, protocol: openai }} ]
  deployments:
    - {{ name: only, cloud: one, region: r, jurisdiction: us, model: m, endpoint: "http://127.0.0.1:1/v1", price: {{ input_per_mtok: 1 }}, emulation: {{ ttft_ms: {{ fixed: 100 }}, tokens_per_s: {{ fixed: 100 }}, max_concurrency: 2, max_queue: {queue} }} }}
  aliases: [ {{ name: chat, deployments: [only] }} ]
  tenants: [ {{ name: t, keys: ["sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"], jurisdictions: [us], aliases: ["*"] }} ]
"#
        )
    };
    // 12 requests/s of 0.29 s each need about 3.5 slots; there are 2.
    let refused = run(&scenario(0), &["cost"], 5);
    let queued = run(&scenario(64), &["cost"], 5);
    let (refused, queued) = (&refused.runs[0], &queued.runs[0]);
    assert!(refused.success_rate < 0.9, "no queue: many refused ({})", refused.success_rate);
    assert!(queued.success_rate > refused.success_rate, "{} vs {}", queued.success_rate, refused.success_rate);
    assert!(queued.latency_ms.p99 > 1000.0, "queued requests wait: p99 {}", queued.latency_ms.p99);
}
