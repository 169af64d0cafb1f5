//! The job scenario: parses with paths, is deterministic, and our policy beats the baselines on
//! what it is built for (commitment burn, waits under a crunch) without leaving a jurisdiction.

use super::*;

fn scenario() -> JobScenario {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../scenarios/month-of-training.yaml"))
        .unwrap();
    JobScenario::from_yaml(&text).unwrap_or_else(|e| panic!("{e}"))
}

fn policies(s: &JobScenario) -> Vec<JobPolicy> {
    ["ours", "cheapest", "single:azure"].iter().map(|p| JobPolicy::parse(p, s).unwrap()).collect()
}

#[test]
fn the_same_seed_gives_the_same_report() {
    let s = scenario();
    let a = serde_json::to_string(&simulate(&s, &policies(&s), 3)).unwrap();
    let b = serde_json::to_string(&simulate(&s, &policies(&s), 3)).unwrap();
    assert_eq!(a, b);
    assert!(is_job_scenario("kind: jobs\nname: x\n"));
    assert!(!is_job_scenario("name: request-scenario\n"));
}

#[test]
fn ours_against_the_baselines() {
    let s = scenario();
    let report = simulate(&s, &policies(&s), 1);
    let [ours, cheapest, single] = &report.policies[..] else { panic!("three policies") };
    for r in &report.policies {
        assert_eq!(r.outside_jurisdiction, 0, "{}", r.policy);
        assert!(r.jobs > 200, "{}: {}", r.policy, r.jobs);
    }
    let burn = |r: &report::PolicyResult| r.commitments[0].spent_usd / r.commitments[0].pace_usd;
    assert!(burn(ours) > burn(cheapest), "ours keeps the commitment closer to pace");
    assert!(
        ours.effective_cost_usd < cheapest.effective_cost_usd,
        "{} vs {}",
        ours.effective_cost_usd,
        cheapest.effective_cost_usd
    );
    assert!(ours.wait_p95_h < single.wait_p95_h, "one cloud queues under its crunch");
    assert!(ours.completed > single.completed);
    assert!(ours.reserved_gpu_hours > 0.0);
    let text = table(&report);
    assert!(text.contains("ours") && text.contains("cheapest-list") && text.contains("single:azure"), "{text}");
}

#[test]
fn scenario_errors_come_with_paths() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../scenarios/month-of-training.yaml"))
        .unwrap()
        .replace("days: 30", "days: 0")
        .replace("share: 0.25", "share: 2")
        .replace(
            "capacity: 32 }\n    - { cloud: oci, region: eu",
            "capacity: 32, colour: red }\n    - { cloud: oci, region: eu",
        );
    let errors = JobScenario::from_yaml(&text).unwrap_err().lines();
    for want in
        ["days: must be > 0", "events[0].share: must be between 0 and 1", "placer.pools[4].colour: unknown field"]
    {
        assert!(errors.iter().any(|e| e.starts_with(want)), "{want}: {errors:#?}");
    }
}
