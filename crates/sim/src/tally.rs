//! A run's accounts: requests that succeeded and failed, failovers and continuations, latency
//! and time to first token, spend per cloud, a time series per step, and the `RunResult` they
//! make at the end.

use std::time::Duration;

use switchyard_core::config::Config;
use switchyard_core::{RouterState, Time};

use crate::histogram::Histogram;
use crate::results::{CloudResult, CommitmentResult, Percentiles, RunResult, Step, round};

/// How one request ended, as the tally records it.
pub(crate) struct Served {
    pub(crate) latency: Duration,
    /// For a stream: when its first content reached the caller, after arrival.
    pub(crate) ttft: Option<Duration>,
    pub(crate) failover: bool,
    pub(crate) cloud: usize,
    pub(crate) outside_jurisdiction: bool,
}

#[derive(Default)]
pub(crate) struct Tally {
    pub(crate) n_requests: u64,
    n_succeeded: u64,
    n_failed: u64,
    n_failovers: u64,
    n_continuations: u64,
    n_attempts: u64,
    n_hedges: u64,
    n_outside: u64,
    latency: Histogram,
    ttft: Histogram,
    spend: f64,
    cloud_requests: Vec<u64>,
    cloud_spend: Vec<f64>,
    step_latency: Histogram,
    step_requests: u64,
    step_failed: u64,
    step_cloud: Vec<u64>,
    series: Vec<Step>,
}

impl Tally {
    pub(crate) fn new(n_clouds: usize) -> Tally {
        Tally {
            cloud_requests: vec![0; n_clouds],
            cloud_spend: vec![0.0; n_clouds],
            step_cloud: vec![0; n_clouds],
            ..Tally::default()
        }
    }

    pub(crate) fn failed(&mut self) {
        self.n_failed += 1;
        self.step_requests += 1;
        self.step_failed += 1;
    }

    pub(crate) fn succeeded(&mut self, served: &Served) {
        self.n_succeeded += 1;
        self.step_requests += 1;
        self.n_failovers += u64::from(served.failover);
        self.n_outside += u64::from(served.outside_jurisdiction);
        let latency = served.latency.as_secs_f64() * 1e6;
        self.latency.record(latency);
        self.step_latency.record(latency);
        if let Some(ttft) = served.ttft {
            self.ttft.record(ttft.as_secs_f64() * 1e6);
        }
        self.cloud_requests[served.cloud] += 1;
        self.step_cloud[served.cloud] += 1;
    }

    /// A request's attempts, and how many of them were hedges.
    pub(crate) fn attempts(&mut self, attempts: u32, hedges: u32) {
        self.n_attempts += u64::from(attempts);
        self.n_hedges += u64::from(hedges);
    }

    /// A request whose answer came from more than one deployment.
    pub(crate) fn continued(&mut self) {
        self.n_continuations += 1;
    }

    /// On-demand spend at a cloud.
    pub(crate) fn spend(&mut self, cloud: usize, dollars: f64) {
        self.spend += dollars;
        self.cloud_spend[cloud] += dollars;
    }

    pub(crate) fn close_step(&mut self, config: &Config, state: &RouterState, now: Time) {
        let commitments = config
            .commitments
            .iter()
            .map(|c| {
                let (spent, pace) = state.commitment_progress(c.id, now);
                (round(spent, 2), round(pace, 2))
            })
            .collect();
        self.series.push(Step {
            t_s: round(now.as_micros() as f64 / 1e6, 3),
            requests: self.step_requests,
            failed: self.step_failed,
            per_cloud: std::mem::replace(&mut self.step_cloud, vec![0; config.clouds.len()]),
            latency_p50_ms: round(self.step_latency.quantile(0.5) / 1000.0, 3),
            latency_p99_ms: round(self.step_latency.quantile(0.99) / 1000.0, 3),
            cumulative_spend_usd: round(self.spend, 4),
            commitments,
        });
        self.step_latency = Histogram::default();
        self.step_requests = 0;
        self.step_failed = 0;
    }

    pub(crate) fn result(self, policy: String, config: &Config, state: &RouterState, end: Time) -> RunResult {
        let ms = |h: &Histogram| Percentiles {
            p50: round(h.quantile(0.5) / 1000.0, 3),
            p95: round(h.quantile(0.95) / 1000.0, 3),
            p99: round(h.quantile(0.99) / 1000.0, 3),
        };
        let n_served: u64 = self.cloud_requests.iter().sum();
        let per_cloud = config
            .clouds
            .iter()
            .enumerate()
            .map(|(i, c)| CloudResult {
                cloud: c.name.clone(),
                requests: self.cloud_requests[i],
                share: round(self.cloud_requests[i] as f64 / n_served.max(1) as f64, 4),
                spend_usd: round(self.cloud_spend[i], 4),
            })
            .collect();
        let mut forfeited = 0.0;
        let commitments = config
            .commitments
            .iter()
            .map(|c| {
                let (spent, pace) = state.commitment_progress(c.id, end);
                forfeited += (pace - spent).max(0.0);
                CommitmentResult {
                    name: c.name.clone(),
                    amount_usd: c.amount_usd,
                    spent_usd: round(spent, 2),
                    pace_usd: round(pace, 2),
                    burn_vs_pace: round(spent / pace.max(1e-9), 4),
                }
            })
            .collect();
        let total = self.n_succeeded + self.n_failed;
        RunResult {
            policy,
            requests: self.n_requests,
            succeeded: self.n_succeeded,
            failed: self.n_failed,
            success_rate: round(self.n_succeeded as f64 / total.max(1) as f64, 6),
            failovers: self.n_failovers,
            continuations: self.n_continuations,
            attempts: self.n_attempts,
            hedges: self.n_hedges,
            latency_ms: ms(&self.latency),
            ttft_ms: ms(&self.ttft),
            spend_usd: round(self.spend, 4),
            spend_vs_oracle: 0.0,
            effective_cost_usd: round(self.spend + forfeited, 4),
            outside_jurisdiction: self.n_outside,
            per_cloud,
            commitments,
            series: self.series,
        }
    }
}
