//! What the router knows right now about every deployment: health, latency, load, rate
//! allowance, cool-downs; and the retry budget. Events in, no clock reads.

use std::time::Duration;

use crate::attempt::{AttemptError, HealthSignal};
use crate::budget::RetryBudget;
use crate::config::{Config, DeploymentId, OutlierSettings};
use crate::estimator::LatencyEstimate;
use crate::health::Health;
use crate::ratelimit::Bucket;
use crate::time::Time;

/// Cool-down after a 429 that carried no Retry-After.
pub const DEFAULT_COOLDOWN: Duration = Duration::from_secs(1);

#[derive(Clone, Debug)]
pub struct DeploymentState {
    pub health: Health,
    pub latency: LatencyEstimate,
    pub in_flight: u32,
    pub concurrency_limit: Option<u32>,
    /// A concurrency limit learned from 429s (AIMD): cut to 90% of what was in flight when
    /// the provider said no, grown back by about one per limit's worth of successes.
    pub learned_limit: Option<f64>,
    pub cooldown_until: Option<Time>,
    rpm: Option<Bucket>,
    tpm: Option<Bucket>,
}

/// The end of an attempt, as the router needs to know it.
#[derive(Clone, Copy, Debug)]
pub enum Outcome<'a> {
    /// `ttft` is `None` when it could not be seen (a non-streaming answer arrives whole).
    Success {
        ttft: Option<Duration>,
        duration: Duration,
        output_tokens: u32,
        total_tokens: u64,
    },
    Failure(&'a AttemptError),
    /// Given up by us (caller gone, request deadline): says nothing about the deployment.
    Abandoned,
}

#[derive(Clone, Debug)]
pub struct RouterState {
    deployments: Vec<DeploymentState>,
    /// Spend so far per commitment (including what was spent before this run).
    commitment_spend: Vec<f64>,
    commitments: Vec<crate::config::Commitment>,
    started: Time,
    budget: RetryBudget,
    outlier: OutlierSettings,
}

// === impl DeploymentState ===

impl DeploymentState {
    /// Whether a new attempt fits the deployment's concurrency and rate limits.
    pub fn has_headroom(&self, estimated_tokens: u32, now: Time) -> bool {
        self.concurrency_limit.is_none_or(|limit| self.in_flight < limit)
            && self.learned_limit.is_none_or(|limit| f64::from(self.in_flight) < limit.floor().max(1.0))
            && self.rpm.is_none_or(|b| b.has_room(1.0, now))
            && self.tpm.is_none_or(|b| b.has_room(f64::from(estimated_tokens), now))
    }

    pub fn cooling_down(&self, now: Time) -> bool {
        self.cooldown_until.is_some_and(|until| now < until)
    }

    /// In-flight attempts as a share of the concurrency limit (of 64 when unlimited).
    pub fn load(&self) -> f64 {
        f64::from(self.in_flight) / f64::from(self.concurrency_limit.unwrap_or(64).max(1))
    }
}

// === impl RouterState ===

impl RouterState {
    pub fn new(config: &Config, now: Time) -> RouterState {
        let deployments = config
            .deployments
            .iter()
            .map(|d| DeploymentState {
                health: Health::default(),
                latency: LatencyEstimate::new(now),
                in_flight: 0,
                concurrency_limit: d.limits.concurrency,
                learned_limit: None,
                cooldown_until: None,
                rpm: d.limits.rpm.map(|r| Bucket::new(u64::from(r), now)),
                tpm: d.limits.tpm.map(|t| Bucket::new(t, now)),
            })
            .collect();
        RouterState {
            deployments,
            commitment_spend: config.commitments.iter().map(|c| c.spent_at_start).collect(),
            commitments: config.commitments.clone(),
            started: now,
            budget: RetryBudget::new(config.routing.retry_budget.clone()),
            outlier: config.routing.outlier.clone(),
        }
    }

    pub fn deployment(&self, id: DeploymentId) -> &DeploymentState {
        &self.deployments[usize::from(id.0)]
    }

    fn deployment_mut(&mut self, id: DeploymentId) -> &mut DeploymentState {
        &mut self.deployments[usize::from(id.0)]
    }

    /// Deployments not ejected, and among them those whose latest attempt did not fail: what
    /// the gateway's readiness reports (ready while any is usable).
    pub fn n_available_and_usable(&self, now: Time) -> (usize, usize) {
        let available = self.deployments.iter().filter(|d| !d.health.is_ejected(now));
        available.fold((0, 0), |(a, u), d| (a + 1, u + usize::from(d.health.consecutive_failures() == 0)))
    }

    pub fn n_ejected(&self, now: Time) -> usize {
        self.deployments.iter().filter(|d| d.health.is_ejected(now)).count()
    }

    /// Changes a deployment's configured concurrency limit (capacity added or taken away).
    pub fn set_concurrency_limit(&mut self, id: DeploymentId, limit: Option<u32>) {
        let d = self.deployment_mut(id);
        d.concurrency_limit = limit;
        d.learned_limit = None;
    }

    /// Records list-price spend counted against a deployment's commitment (burn-down).
    pub fn record_spend(&mut self, commitment: Option<crate::config::CommitmentId>, dollars: f64) {
        if let Some(c) = commitment
            && dollars.is_finite()
            && dollars > 0.0
        {
            self.commitment_spend[usize::from(c.0)] += dollars;
        }
    }

    /// (spent, pace) of a commitment at `now`: pace is where a straight line says spend should be.
    pub fn commitment_progress(&self, c: crate::config::CommitmentId, now: Time) -> (f64, f64) {
        let i = usize::from(c.0);
        (self.commitment_spend[i], self.commitments[i].pace(now.saturating_since(self.started)))
    }

    /// How far a commitment is behind its pace, as a share of its amount (0 when on or ahead).
    pub fn commitment_behind(&self, c: crate::config::CommitmentId, now: Time) -> f64 {
        let (spent, pace) = self.commitment_progress(c, now);
        ((pace - spent) / self.commitments[usize::from(c.0)].amount_usd).max(0.0)
    }

    /// A request arrived: it earns the retry budget its share.
    pub fn on_request(&mut self, now: Time) {
        self.budget.deposit(now);
    }

    /// Takes one retry from the budget.
    pub fn try_retry(&mut self, now: Time) -> bool {
        self.budget.try_withdraw(now)
    }

    pub fn retry_budget_remaining(&self, now: Time) -> f64 {
        self.budget.remaining(now)
    }

    pub fn begin_attempt(&mut self, id: DeploymentId, estimated_tokens: u32, now: Time) {
        let d = self.deployment_mut(id);
        d.in_flight += 1;
        d.health.on_attempt(now);
        if let Some(b) = &mut d.rpm {
            b.take(1.0, now);
        }
        if let Some(b) = &mut d.tpm {
            b.take(f64::from(estimated_tokens), now);
        }
    }

    /// An attempt ended. `estimated_tokens` is what `begin_attempt` reserved: a success settles
    /// the reservation to its real total; a failed or abandoned attempt gives it all back (what
    /// such an attempt did use is charged with [`RouterState::charge_tokens`]).
    pub fn end_attempt(&mut self, id: DeploymentId, estimated_tokens: u32, outcome: Outcome<'_>, now: Time) {
        let n_deployments = self.deployments.len();
        let n_ejected = self.n_ejected(now);
        let outlier = self.outlier.clone();
        let d = self.deployment_mut(id);
        let in_flight = d.in_flight;
        d.in_flight = d.in_flight.saturating_sub(1);
        match outcome {
            Outcome::Success { ttft, duration, output_tokens, total_tokens } => {
                d.health.on_success();
                d.cooldown_until = None;
                if let Some(limit) = d.learned_limit {
                    let grown = limit + 1.0 / limit.max(1.0);
                    let ceiling = d.concurrency_limit.map_or(f64::INFINITY, f64::from);
                    d.learned_limit = (grown < ceiling).then_some(grown);
                }
                match ttft {
                    Some(ttft) => d.latency.observe(ttft, output_tokens, duration, now),
                    None => d.latency.observe_whole(output_tokens, duration, now),
                }
                if let Some(b) = &mut d.tpm {
                    b.adjust(f64::from(estimated_tokens) - total_tokens as f64, now);
                }
                return;
            }
            Outcome::Abandoned => d.health.on_neutral(),
            Outcome::Failure(error) => match error.health_signal() {
                HealthSignal::Failure => {
                    // Ejecting one more must keep the ejected share within the cap.
                    let may_eject = ((n_ejected + 1) as f64) <= outlier.max_ejected_share * n_deployments as f64;
                    d.health.on_failure(now, &outlier, may_eject);
                }
                HealthSignal::Capacity { retry_after } => {
                    d.health.on_neutral();
                    let cut = (f64::from(in_flight) * 0.9).max(1.0);
                    d.learned_limit = Some(d.learned_limit.map_or(cut, |l| l.min(cut)));
                    d.cooldown_until = Some(now + retry_after.unwrap_or(DEFAULT_COOLDOWN));
                }
                HealthSignal::Neutral => d.health.on_neutral(),
            },
        }
        if let Some(b) = &mut d.tpm {
            b.adjust(f64::from(estimated_tokens), now);
        }
    }

    /// Charges tokens that an attempt ended without success really used (a stream cut or left
    /// after some output) to the deployment's tokens-per-minute allowance.
    pub fn charge_tokens(&mut self, id: DeploymentId, tokens: u64, now: Time) {
        if let Some(b) = &mut self.deployment_mut(id).tpm {
            b.take(tokens as f64, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::synthetic_config;

    #[test]
    fn a_429_teaches_a_concurrency_limit_that_grows_back() {
        let config = synthetic_config(8, "balanced");
        let mut state = RouterState::new(&config, Time::ZERO);
        let id = config.deployments[0].id;
        let t = Time::ZERO;
        for _ in 0..10 {
            state.begin_attempt(id, 10, t);
        }
        let limited = AttemptError::RateLimited { retry_after: None };
        state.end_attempt(id, 10, Outcome::Failure(&limited), t);
        // 10 were in flight when the provider said no: the learned limit is 9.
        assert_eq!(state.deployment(id).learned_limit, Some(9.0));
        let later = t + Duration::from_secs(2);
        assert!(!state.deployment(id).has_headroom(10, later), "9 still in flight");
        let ok =
            Outcome::Success { ttft: None, duration: Duration::from_millis(100), output_tokens: 1, total_tokens: 10 };
        state.end_attempt(id, 10, ok, later);
        assert!(state.deployment(id).has_headroom(10, later), "8 in flight, limit grown past 9");
        for _ in 0..3000 {
            state.begin_attempt(id, 10, later);
            state.end_attempt(id, 10, ok, later);
        }
        assert_eq!(state.deployment(id).learned_limit, None, "grown back to the configured limit");
    }

    #[test]
    fn failed_and_abandoned_attempts_give_their_token_reservation_back() {
        let mut config = synthetic_config(2, "balanced");
        config.deployments[0].limits.tpm = Some(10_000);
        let mut state = RouterState::new(&config, Time::ZERO);
        let id = config.deployments[0].id;
        let t = Time::ZERO;
        let error = AttemptError::ServerError { status: 500 };
        for outcome in [Outcome::Abandoned, Outcome::Failure(&error)] {
            state.begin_attempt(id, 100_000, t);
            assert!(!state.deployment(id).has_headroom(100, t), "the reservation holds the allowance");
            state.end_attempt(id, 100_000, outcome, t);
            assert!(state.deployment(id).has_headroom(10_000, t), "all given back after {outcome:?}");
            assert_eq!(state.deployment(id).in_flight, 0);
        }
        // What a broken attempt did use is charged.
        state.begin_attempt(id, 500, t);
        state.end_attempt(id, 500, Outcome::Failure(&AttemptError::StreamCut), t);
        state.charge_tokens(id, 9_000, t);
        assert!(!state.deployment(id).has_headroom(2_000, t));
        assert!(state.deployment(id).has_headroom(1_000, t));
    }
}
