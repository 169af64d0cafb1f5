//! The simulator: replays traffic and cloud behaviour (outages, brownouts, 429 storms, price
//! changes, capacity ramps) against routing policies, running the very request state machine,
//! planner, health tracker and budgets the gateway runs, under a virtual clock.

pub mod engine;
pub mod histogram;
pub mod html;
pub mod jobs;
pub mod oracle;
pub mod policy;
pub mod report;
pub mod results;
pub mod scenario;
mod tally;
pub mod traffic;
mod world;

use engine::{Engine, PolicyChoice};
use results::{Report, round};
use scenario::Scenario;
pub use traffic::{Arrival, traffic};

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
