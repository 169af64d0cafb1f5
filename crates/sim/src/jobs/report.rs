//! The job simulator's report: per policy, jobs done and waiting, wait-time percentiles, spend,
//! commitment burn against pace, GPU-hours per cloud, preemptions; as JSON and a table.

use std::fmt::Write;

use serde::Serialize;
use switchyard_core::Time;
use switchyard_placer::cost::hours;

use super::engine::{JobPolicy, SimJob, Tally};
use super::scenario::JobScenario;
use crate::results::round;

#[derive(Debug, Clone, Serialize)]
pub struct JobReport {
    pub scenario: String,
    pub seed: u64,
    pub days: f64,
    pub clouds: Vec<String>,
    pub policies: Vec<PolicyResult>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PolicyResult {
    pub policy: String,
    pub jobs: usize,
    pub completed: usize,
    /// Jobs no pool could ever take (e.g. a jurisdiction with no pool).
    pub unplaceable: usize,
    /// Started or waiting when the simulation ended.
    pub unfinished: usize,
    /// Arrived but never started.
    pub never_started: usize,
    pub wait_p50_h: f64,
    pub wait_p95_h: f64,
    pub wait_max_h: f64,
    pub spend_usd: f64,
    /// Spend plus what lagging commitments are short of their pace at the end.
    pub effective_cost_usd: f64,
    pub preemptions: u64,
    /// Jobs placed outside their allowed jurisdictions (must be 0).
    pub outside_jurisdiction: u64,
    pub gpu_hours_share: Vec<CloudShare>,
    pub commitments: Vec<CommitmentBurn>,
    /// GPU-hours run on prepaid reservations.
    pub reserved_gpu_hours: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CloudShare {
    pub cloud: String,
    pub share: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CommitmentBurn {
    pub name: String,
    pub spent_usd: f64,
    pub pace_usd: f64,
}

impl JobReport {
    pub(super) fn new(scenario: &JobScenario, seed: u64, policies: Vec<PolicyResult>) -> JobReport {
        JobReport {
            scenario: scenario.name.clone(),
            seed,
            days: scenario.days,
            clouds: scenario.placer.clouds.clone(),
            policies,
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[(((sorted.len() - 1) as f64) * p).round() as usize]
}

pub(super) fn summarise(
    scenario: &JobScenario,
    policy: &JobPolicy,
    jobs: &[SimJob],
    tally: &Tally,
    end: Time,
) -> PolicyResult {
    let mut waits: Vec<f64> = jobs.iter().filter_map(|j| j.first_start.map(|s| hours(j.arrival, s))).collect();
    waits.sort_by(f64::total_cmp);
    let total_gpu_hours: f64 = tally.gpu_hours.values().sum();
    let config = &scenario.placer;
    let commitments: Vec<CommitmentBurn> = config
        .commitments
        .iter()
        .map(|c| CommitmentBurn {
            name: c.name.clone(),
            spent_usd: round(c.spent_at_start + tally.commitment_spend.get(&c.name).copied().unwrap_or(0.0), 2),
            pace_usd: round(c.pace(end.saturating_since(config.commitments_as_of)), 2),
        })
        .collect();
    let shortfall: f64 = commitments.iter().map(|c| (c.pace_usd - c.spent_usd).max(0.0)).sum();
    PolicyResult {
        policy: policy.name(),
        jobs: jobs.len(),
        completed: jobs.iter().filter(|j| j.done).count(),
        unplaceable: jobs.iter().filter(|j| j.unplaceable).count(),
        unfinished: jobs.iter().filter(|j| !j.done && !j.unplaceable).count(),
        never_started: jobs.iter().filter(|j| j.first_start.is_none() && !j.unplaceable).count(),
        wait_p50_h: round(percentile(&waits, 0.5), 3),
        wait_p95_h: round(percentile(&waits, 0.95), 3),
        wait_max_h: round(waits.last().copied().unwrap_or(0.0), 3),
        spend_usd: round(tally.spend, 2),
        effective_cost_usd: round(tally.spend + shortfall, 2),
        preemptions: jobs.iter().map(|j| u64::from(j.preemptions)).sum(),
        outside_jurisdiction: tally.outside_jurisdiction,
        gpu_hours_share: config
            .clouds
            .iter()
            .map(|c| CloudShare {
                cloud: c.clone(),
                share: round(tally.gpu_hours.get(c).copied().unwrap_or(0.0) / total_gpu_hours.max(1e-9), 4),
            })
            .collect(),
        commitments,
        reserved_gpu_hours: round(tally.reserved_gpu_hours, 1),
    }
}

/// The terminal table: one row per policy.
pub fn table(report: &JobReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "job scenario {} · seed {} · {} days simulated", report.scenario, report.seed, report.days);
    let clouds: Vec<String> = report.clouds.iter().map(|c| format!("{c:>6}")).collect();
    let _ = writeln!(
        out,
        "{:<14} {:>5} {:>5} {:>6} {:>7} {:>7} {:>7} {:>13} {:>13} {:>6} {} {:>6}",
        "policy",
        "jobs",
        "done",
        "unfin",
        "wait50",
        "wait95",
        "waitmx",
        "spend $",
        "effective $",
        "preem",
        clouds.join(" "),
        "burn"
    );
    for r in &report.policies {
        let shares: Vec<String> = r.gpu_hours_share.iter().map(|c| format!("{:>5.1}%", c.share * 100.0)).collect();
        let spent: f64 = r.commitments.iter().map(|c| c.spent_usd).sum();
        let pace: f64 = r.commitments.iter().map(|c| c.pace_usd).sum();
        let burn =
            if r.commitments.is_empty() { "-".to_owned() } else { format!("{:.0}%", 100.0 * spent / pace.max(1e-9)) };
        let _ = writeln!(
            out,
            "{:<14} {:>5} {:>5} {:>6} {:>6.1}h {:>6.1}h {:>6.1}h {:>13.0} {:>13.0} {:>6} {} {:>6}",
            r.policy,
            r.jobs,
            r.completed,
            r.unfinished,
            r.wait_p50_h,
            r.wait_p95_h,
            r.wait_max_h,
            r.spend_usd,
            r.effective_cost_usd,
            r.preemptions,
            shares.join(" "),
            burn
        );
        if r.outside_jurisdiction > 0 {
            let _ = writeln!(out, "  !! {} jobs placed outside their allowed jurisdictions", r.outside_jurisdiction);
        }
    }
    let _ = writeln!(
        out,
        "wait: arrival to start, over started jobs; effective: spend plus commitments' shortfall against pace at the end; burn: commitment spend against pace"
    );
    out
}
