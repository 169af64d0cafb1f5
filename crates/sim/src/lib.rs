//! The simulator: replays traffic and cloud behaviour (outages, brownouts, 429 storms, price
//! changes, capacity ramps) against routing policies, running the very planner, attempt
//! session, health tracker and budgets the gateway runs, under a virtual clock.

pub mod engine;
pub mod histogram;
pub mod html;
pub mod oracle;
pub mod report;
pub mod results;
pub mod scenario;

use engine::{Engine, PolicyChoice};
use results::{Report, round};
use scenario::Scenario;

/// The policies compared when none are named.
pub const DEFAULT_POLICIES: &[&str] = &["cost", "latency", "balanced", "priority", "commitment", "round_robin"];

/// Runs every policy over the scenario with one seed; `progress(policy_index, share_done)`.
pub fn simulate(
    scenario: &Scenario,
    policies: &[PolicyChoice],
    seed: u64,
    progress: &mut dyn FnMut(usize, f64),
) -> Report {
    let oracle = oracle::lower_bound(scenario, seed);
    let runs = policies
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut result = Engine::new(scenario, *p, seed).run(&mut |f| progress(i, f));
            result.spend_vs_oracle = round(result.spend_usd / oracle.max(1e-9), 4);
            result
        })
        .collect();
    Report {
        scenario: scenario.name.clone(),
        seed,
        mode: if scenario.scale > 1.0 { format!("scaled 1:{}", scenario.scale) } else { "exact".to_owned() },
        duration_s: scenario.duration.as_secs_f64(),
        step_s: scenario.step.as_secs_f64(),
        clouds: scenario.config.clouds.iter().map(|c| c.name.clone()).collect(),
        oracle_spend_usd: round(oracle, 4),
        runs,
    }
}

/// One request of a scenario's traffic, as the simulator generates it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Arrival {
    pub at: std::time::Duration,
    /// Index into the scenario's `mix.tenants`.
    pub tenant: usize,
    pub input_tokens: u32,
    pub output_tokens: u32,
    pub stream: bool,
}

/// The scenario's traffic for `seed`: exactly the requests every simulated policy sees, for
/// replaying against a live gateway.
pub fn traffic(scenario: &Scenario, seed: u64) -> Vec<Arrival> {
    let mut rng_arrivals = switchyard_core::rng::SplitMix64::new(seed);
    let mut rng_mix = switchyard_core::rng::SplitMix64::new(seed ^ 0x5EED_0001);
    let cdf = engine::tenant_cdf(scenario);
    let end = switchyard_core::Time::ZERO + scenario.duration;
    let mut out = Vec::new();
    let mut now = engine::next_arrival(scenario, switchyard_core::Time::ZERO, &mut rng_arrivals);
    while now < end {
        let (tenant, input_tokens, output_tokens, stream) = engine::draw_request(scenario, &cdf, &mut rng_mix);
        out.push(Arrival {
            at: std::time::Duration::from_micros(now.as_micros()),
            tenant,
            input_tokens,
            output_tokens,
            stream,
        });
        now = engine::next_arrival(scenario, now, &mut rng_arrivals);
    }
    out
}
