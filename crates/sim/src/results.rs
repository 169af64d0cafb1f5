//! What a run produces: totals, per-cloud figures, a time series and commitment burn-down.
//! Serialised to JSON with a stable field order and rounded floats, so that the same scenario
//! and seed give byte-identical reports.

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: String,
    pub seed: u64,
    /// `exact` (every request simulated) or `scaled 1:N` (each simulated request stands for N).
    pub mode: String,
    pub duration_s: f64,
    pub step_s: f64,
    pub clouds: Vec<String>,
    pub oracle_spend_usd: f64,
    pub runs: Vec<RunResult>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    pub policy: String,
    pub requests: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub success_rate: f64,
    pub failovers: u64,
    pub continuations: u64,
    /// Upstream attempts made, every retry, failover, hedge and continuation included.
    pub attempts: u64,
    /// Hedged attempts among them.
    pub hedges: u64,
    pub latency_ms: Percentiles,
    pub ttft_ms: Percentiles,
    /// On-demand list-price spend (reserved capacity is prepaid: zero at the margin).
    pub spend_usd: f64,
    /// Spend relative to the oracle's (1.0 = as cheap as perfect knowledge allows).
    pub spend_vs_oracle: f64,
    /// Spend plus what lagging commitments forfeit at the end of the run, pro rata.
    pub effective_cost_usd: f64,
    /// Requests of tenants restricted to a jurisdiction served outside it (must be 0).
    pub outside_jurisdiction: u64,
    pub per_cloud: Vec<CloudResult>,
    pub commitments: Vec<CommitmentResult>,
    pub series: Vec<Step>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CloudResult {
    pub cloud: String,
    pub requests: u64,
    pub share: f64,
    pub spend_usd: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CommitmentResult {
    pub name: String,
    pub amount_usd: f64,
    pub spent_usd: f64,
    pub pace_usd: f64,
    /// spent / pace at the end of the run.
    pub burn_vs_pace: f64,
}

/// One step of the time series.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub t_s: f64,
    pub requests: u64,
    pub failed: u64,
    /// Served requests per cloud, in `Report::clouds` order.
    pub per_cloud: Vec<u64>,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    pub cumulative_spend_usd: f64,
    /// (spent, pace) per commitment.
    pub commitments: Vec<(f64, f64)>,
}

/// Rounds for stable, readable output.
pub(crate) fn round(v: f64, digits: i32) -> f64 {
    let m = 10f64.powi(digits);
    (v * m).round() / m
}
