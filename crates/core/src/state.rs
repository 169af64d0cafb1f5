//! What the router knows right now about every deployment: health, latency, load, rate
//! allowance, cool-downs; and the retry budget. Events in, no clock reads.
//!
//! Shared by every worker without a lock common to all requests: each deployment's state has
//! its own lock (on its own cache line), the retry budget and commitment spend are atomics,
//! and per-minute allowances sit behind the [`Counters`] seam. Never hold two deployment locks
//! at once; no method here does.
//!
//! Across replicas, ejections, cool-downs, recoveries and attempts in flight go through the
//! [`Signals`] seam when there is one (`signals.rs`): transitions are published as they happen,
//! and what other replicas said is taken in whenever a deployment is read to plan or start an
//! attempt ([`RouterState::deployment_at`]).

mod headroom;
mod signals;

pub use headroom::{DEFAULT_HEADROOM_RESET, Headroom, MAX_HEADROOM_WAIT, Reported};

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::attempt::{AttemptError, HealthSignal};
use crate::config::{
    Commitment, CommitmentId, Config, DeploymentId, OutlierSettings, Priority, Tenant, TenantBudgets, TenantId,
    TenantLimits,
};
use crate::counters::{Counters, DeploymentLimits, LocalCounters, Padded, limit_ids};
use crate::estimator::LatencyEstimate;
use crate::health::Health;
use crate::retry_budget::RetryBudget;
use crate::signals::{Cluster, Heard, Signals};
use crate::tenancy::{Admission, Calendar, Estimate, KeyGate, LocalWindows, Refusal, Tenancy, budget_specs};
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
    /// The headroom the deployment last reported on an answer (`x-ratelimit-remaining-*`).
    pub reported: Reported,
    /// Attempts in flight per tenant, and how many tenants have any (for the fair share).
    by_tenant: Vec<u32>,
    active_tenants: u32,
    /// What other replicas said, as last taken in: its version and what was applied.
    heard_version: u64,
    heard: Heard,
    /// The end (Unix ms) of the cool-down this replica published for a report of no requests
    /// left: heard back from the store, it is not taken for a 429's (a later report of room
    /// here ends it at once).
    reported_cooling: i64,
    /// How the configured concurrency limit is counted, as of the last read with
    /// [`RouterState::deployment_at`] (always [`Cluster::Alone`] without shared signals).
    cluster: Cluster,
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

#[derive(Debug)]
pub struct RouterState {
    deployments: Box<[Padded<DeploymentState>]>,
    counters: Arc<dyn Counters>,
    /// Each deployment's requests- and tokens-per-minute allowances in `counters`.
    limits: Box<[DeploymentLimits]>,
    /// Spend so far per commitment (including what was spent before this run), as f64 bits.
    commitment_spend: Box<[AtomicU64]>,
    commitments: Vec<Commitment>,
    started: Time,
    /// One retry budget per tenant (one in all when there are none), so that one tenant's
    /// failures cannot spend another's retries.
    budgets: Box<[RetryBudget]>,
    outlier: OutlierSettings,
    fair_share_above: f64,
    tenancy: Tenancy,
    /// Each deployment's [`Health::ejected_through`] (`Time`'s micros, 0 for none), mirrored
    /// out of its lock whenever it may change, so that the ejected share is counted without
    /// taking every deployment's lock (and under one, when adopting another replica's).
    ejections: Box<[AtomicU64]>,
    /// Ejections, cool-downs, recoveries and attempts in flight shared with other replicas;
    /// `None` (the default) keeps them in this replica, at the cost of one branch.
    signals: Option<Arc<dyn Signals>>,
    /// Maps [`Time`] to the wall clock, for instants shared with other replicas.
    calendar: Calendar,
}

/// A deployment's state, locked while this lives: read what you need and let it go.
pub type DeploymentGuard<'a> = std::sync::MutexGuard<'a, DeploymentState>;

// === impl DeploymentState ===

impl DeploymentState {
    /// Whether a new attempt of `tenant` at `priority` fits the deployment's concurrency:
    /// its configured and learned limits, of which a priority may fill only
    /// [`Priority::share`], and, once the deployment is `fair_share_above` full, the tenant's
    /// fair share (the limit over the tenants using it, this one included, and at least two
    /// when the config has more than one tenant: a tenant alone cannot take the last slots
    /// another would need). Its rate
    /// allowances are the router's: [`RouterState::has_headroom`].
    ///
    /// Shared across replicas ([`Cluster::Shared`]), the configured limit counts every
    /// replica's attempts (the others' as last published) and no more than the unconfirmed
    /// cap may begin here between confirmations; the learned limit stays this replica's own,
    /// against its own attempts. Whichever of the two is fuller binds.
    #[inline]
    pub fn has_concurrency_room(&self, tenant: TenantId, priority: Priority, fair_share_above: f64) -> bool {
        let configured = self.concurrency_limit.map_or(f64::INFINITY, f64::from);
        let learned = self.learned_limit.map_or(f64::INFINITY, |l| l.floor().max(1.0));
        let (in_flight, limit) = match self.cluster {
            Cluster::Alone => (f64::from(self.in_flight), configured.min(learned)),
            cluster => match self.binding(cluster, configured, learned) {
                Some(binding) => binding,
                None => return false,
            },
        };
        if limit.is_infinite() {
            return true;
        }
        if in_flight >= limit || in_flight >= (limit * priority.share()).floor().max(1.0) {
            return false;
        }
        if in_flight < limit * fair_share_above {
            return true;
        }
        let mine = self.by_tenant.get(usize::from(tenant.0)).copied().unwrap_or(0);
        // With other tenants configured, one alone still keeps room for a second: past the
        // line, a deployment is shared by at least two.
        let others_may_come = u32::from(self.by_tenant.len() > 1) + 1;
        let sharing = (self.active_tenants + u32::from(mine == 0)).max(others_may_come);
        f64::from(mine) < (limit / f64::from(sharing.max(1))).max(1.0)
    }

    /// The count and limit that bind when the configured limit is shared: the cluster's count
    /// against it, or this replica's against the learned one, whichever is fuller. `None`:
    /// nothing may start (the store fails closed, or the unconfirmed cap is reached).
    #[cold]
    fn binding(&self, cluster: Cluster, configured: f64, learned: f64) -> Option<(f64, f64)> {
        let local = f64::from(self.in_flight);
        let total = local + f64::from(cluster.others()?);
        Some(match (configured.is_finite(), learned.is_finite()) {
            (true, true) if total / configured < local / learned => (local, learned),
            (true, _) => (total, configured),
            (false, _) => (local, learned),
        })
    }

    /// Attempts of a tenant in flight here.
    pub fn tenant_in_flight(&self, tenant: TenantId) -> u32 {
        self.by_tenant.get(usize::from(tenant.0)).copied().unwrap_or(0)
    }

    pub fn cooling_down(&self, now: Time) -> bool {
        self.cooldown_until.is_some_and(|until| now < until)
    }

    /// Until when a request of `estimated_tokens` is to be planned elsewhere: a 429's
    /// cool-down, or the deployment's own report that it is full ([`Reported`]). Neither is a
    /// failure; `None` when neither binds now.
    #[inline]
    pub fn resting_until(&self, estimated_tokens: u32, now: Time) -> Option<Time> {
        let cooling = self.cooldown_until.filter(|until| now < *until);
        cooling.max(self.reported.full_until(estimated_tokens, now))
    }

    /// Other replicas' attempts in flight here, as they last published them (0 unless the
    /// concurrency limit is shared).
    pub fn in_flight_elsewhere(&self) -> u32 {
        match self.cluster {
            Cluster::Shared { others, .. } => others,
            Cluster::Alone | Cluster::Closed => 0,
        }
    }

    /// In-flight attempts (the cluster's, where the limit is shared) as a share of the
    /// concurrency limit (of 64 when unlimited).
    pub fn load(&self) -> f64 {
        let in_flight = f64::from(self.in_flight) + f64::from(self.in_flight_elsewhere());
        in_flight / f64::from(self.concurrency_limit.unwrap_or(64).max(1))
    }
}

// === impl RouterState ===

impl RouterState {
    /// State for `config` with allowances and budgets kept in this process, and `now` at the
    /// Unix epoch as far as budget windows are concerned.
    pub fn new(config: &Config, now: Time) -> RouterState {
        RouterState::with_counters(config, now, Arc::new(LocalCounters::for_config(config, now)))
    }

    /// State whose allowances live in `counters`, which must hold
    /// [`limit_specs`](crate::counters::limit_specs)`(config)`.
    pub fn with_counters(config: &Config, now: Time, counters: Arc<dyn Counters>) -> RouterState {
        let calendar = Calendar::default();
        let budgets = Arc::new(LocalWindows::new(&budget_specs(config), calendar));
        RouterState::with_stores(config, now, counters, budgets, calendar)
    }

    /// State with allowances in `counters` and tenants' budget windows in `budgets` (over
    /// [`budget_specs`]`(config)`), on a calendar that maps [`Time`] to the wall clock.
    pub fn with_stores(
        config: &Config,
        now: Time,
        counters: Arc<dyn Counters>,
        budgets: Arc<dyn Counters>,
        calendar: Calendar,
    ) -> RouterState {
        let n_tenants = config.tenants.len();
        let deployments = config
            .deployments
            .iter()
            .map(|d| {
                Padded::new(DeploymentState {
                    health: Health::default(),
                    latency: LatencyEstimate::new(now),
                    in_flight: 0,
                    concurrency_limit: d.limits.concurrency,
                    learned_limit: None,
                    cooldown_until: None,
                    reported: Reported::default(),
                    by_tenant: vec![0; n_tenants],
                    active_tenants: 0,
                    heard_version: 0,
                    heard: Heard::default(),
                    reported_cooling: 0,
                    cluster: Cluster::Alone,
                })
            })
            .collect();
        let ids = limit_ids(config);
        let tenancy = Tenancy::new(config, &ids.tenants, budgets, calendar);
        RouterState {
            deployments,
            counters,
            limits: ids.deployments.into(),
            commitment_spend: config.commitments.iter().map(|c| AtomicU64::new(c.spent_at_start.to_bits())).collect(),
            commitments: config.commitments.clone(),
            started: now,
            budgets: (0..n_tenants.max(1)).map(|_| RetryBudget::new(config.routing.retry_budget.clone())).collect(),
            outlier: config.routing.outlier.clone(),
            fair_share_above: config.routing.fair_share_above,
            tenancy,
            ejections: config.deployments.iter().map(|_| AtomicU64::new(0)).collect(),
            signals: None,
            calendar,
        }
    }

    pub fn fair_share_above(&self) -> f64 {
        self.fair_share_above
    }

    pub fn tenancy(&self) -> &Tenancy {
        &self.tenancy
    }

    /// Admits a request of `tenant` against its limits and budgets (see [`Tenancy::admit`]).
    pub fn admit(&self, tenant: &Tenant, estimate: Estimate, now: Time) -> Result<Admission, Refusal> {
        self.tenancy.admit(&*self.counters, tenant, None, estimate, now)
    }

    /// Admits a request made with a managed key against its tenant's limits and budgets and
    /// the key's own (`key`, when it has any): a request must fit both.
    pub fn admit_key(
        &self,
        tenant: &Tenant,
        key: Option<&Arc<KeyGate>>,
        estimate: Estimate,
        now: Time,
    ) -> Result<Admission, Refusal> {
        self.tenancy.admit(&*self.counters, tenant, key, estimate, now)
    }

    /// Registers managed key `key`'s own limits and budgets (see [`Tenancy::register_key`]).
    pub fn register_key(
        &self,
        key: &str,
        limits: TenantLimits,
        budgets: TenantBudgets,
        now: Time,
    ) -> Result<Arc<KeyGate>, String> {
        self.tenancy.register_key(&*self.counters, key, limits, budgets, now)
    }

    /// Retires the allowances and budgets of gates in `old` that gates in `new` no longer use.
    pub fn retire_keys(&self, old: &[Arc<KeyGate>], new: &[Arc<KeyGate>]) {
        self.tenancy.retire_unused(&*self.counters, old, new);
    }

    /// Settles an admitted request to the tokens and dollars the caller is billed.
    pub fn settle(&self, admission: Admission, tokens: u64, usd: f64, now: Time) {
        self.tenancy.settle(&*self.counters, admission, tokens, usd, now);
    }

    fn retry_budget(&self, tenant: TenantId) -> &RetryBudget {
        let i = usize::from(tenant.0).min(self.budgets.len() - 1);
        &self.budgets[i]
    }

    /// A deployment's state, locked, as this replica last knew it: drop the guard before
    /// asking for another. To plan or start an attempt, read it with
    /// [`RouterState::deployment_at`], which takes in what other replicas said.
    pub fn deployment(&self, id: DeploymentId) -> DeploymentGuard<'_> {
        self.deployments[usize::from(id.0)].lock()
    }

    /// Whether the deployment's rate allowances have room for one more request of
    /// `estimated_tokens` (takes no deployment lock).
    pub fn has_rate_room(&self, id: DeploymentId, estimated_tokens: u32, now: Time) -> bool {
        let (rpm, tpm) = self.limits[usize::from(id.0)];
        rpm.is_none_or(|l| self.counters.has_room(l, 1.0, now))
            && tpm.is_none_or(|l| self.counters.has_room(l, f64::from(estimated_tokens), now))
    }

    /// Whether a new attempt of a high-priority tenant fits the deployment's concurrency and
    /// rate limits.
    pub fn has_headroom(&self, id: DeploymentId, estimated_tokens: u32, now: Time) -> bool {
        let concurrency = self.deployment_at(id, now).has_concurrency_room(TenantId(0), Priority::High, 1.0);
        concurrency && self.has_rate_room(id, estimated_tokens, now)
    }

    /// Deployments not ejected, and among them those whose latest attempt did not fail: what
    /// the gateway's readiness reports (ready while any is usable).
    pub fn n_available_and_usable(&self, now: Time) -> (usize, usize) {
        self.ids().fold((0, 0), |(a, u), id| {
            let d = self.deployment_at(id, now);
            match d.health.is_ejected(now) {
                true => (a, u),
                false => (a + 1, u + usize::from(d.health.consecutive_failures() == 0)),
            }
        })
    }

    /// Deployments ejected now (a probe in flight keeps one ejected), read without locks.
    pub fn n_ejected(&self, now: Time) -> usize {
        self.ejections.iter().filter(|e| e.load(Ordering::Acquire) > now.0).count()
    }

    /// Whether one more deployment may be ejected now within `max_ejected_share`.
    pub(crate) fn may_eject_one_more(&self, now: Time) -> bool {
        ((self.n_ejected(now) + 1) as f64) <= self.outlier.max_ejected_share * self.deployments.len() as f64
    }

    /// Mirrors `d`'s ejection out of its lock (a store only when it changed).
    #[inline]
    pub(crate) fn mirror_ejection(&self, id: DeploymentId, d: &DeploymentState) {
        let through = d.health.ejected_through().map_or(0, |t| t.0.max(1));
        if let Some(slot) = self.ejections.get(usize::from(id.0))
            && slot.load(Ordering::Relaxed) != through
        {
            slot.store(through, Ordering::Release);
        }
    }

    fn ids(&self) -> impl Iterator<Item = DeploymentId> + '_ {
        (0..self.deployments.len()).filter_map(|i| u16::try_from(i).ok().map(DeploymentId))
    }

    /// Changes a deployment's configured concurrency limit (capacity added or taken away).
    pub fn set_concurrency_limit(&self, id: DeploymentId, limit: Option<u32>) {
        let mut d = self.deployment(id);
        d.concurrency_limit = limit;
        d.learned_limit = None;
        if limit.is_none() {
            d.cluster = Cluster::Alone;
        }
    }

    /// Records list-price spend counted against a deployment's commitment (burn-down).
    pub fn record_spend(&self, commitment: Option<CommitmentId>, dollars: f64) {
        if let Some(c) = commitment
            && dollars.is_finite()
            && dollars > 0.0
        {
            let add = |bits: u64| Some((f64::from_bits(bits) + dollars).to_bits());
            // The closure always answers Some, so the update cannot fail.
            let _ = self.commitment_spend[usize::from(c.0)].fetch_update(Ordering::AcqRel, Ordering::Acquire, add);
        }
    }

    /// (spent, pace) of a commitment at `now`: pace is where a straight line says spend should be.
    pub fn commitment_progress(&self, c: CommitmentId, now: Time) -> (f64, f64) {
        let i = usize::from(c.0);
        let spent = f64::from_bits(self.commitment_spend[i].load(Ordering::Acquire));
        (spent, self.commitments[i].pace(now.saturating_since(self.started)))
    }

    /// How far a commitment is behind its pace, as a share of its amount (0 when on or ahead).
    pub fn commitment_behind(&self, c: CommitmentId, now: Time) -> f64 {
        let (spent, pace) = self.commitment_progress(c, now);
        ((pace - spent) / self.commitments[usize::from(c.0)].amount_usd).max(0.0)
    }

    /// A request arrived: it earns its tenant's retry budget its share.
    pub fn on_request(&self, tenant: TenantId, now: Time) {
        self.retry_budget(tenant).deposit(now);
    }

    /// Takes one retry from the tenant's budget.
    pub fn try_retry(&self, tenant: TenantId, now: Time) -> bool {
        self.retry_budget(tenant).try_withdraw(now)
    }

    pub fn retry_budget_remaining(&self, tenant: TenantId, now: Time) -> f64 {
        self.retry_budget(tenant).remaining(now)
    }

    /// Books an attempt's start if the deployment still has room for it: planning checked a
    /// moment before without holding the deployment, and another worker may have taken the
    /// slot since. The check and the booking are one step under the deployment's lock, so a
    /// concurrency limit is never passed. `false`: nothing was booked.
    pub fn try_begin_attempt(
        &self,
        id: DeploymentId,
        tenant: TenantId,
        priority: Priority,
        estimated_tokens: u32,
        now: Time,
    ) -> bool {
        {
            let d = self.deployment_at(id, now);
            if !d.has_concurrency_room(tenant, priority, self.fair_share_above) {
                return false;
            }
            self.book_begin(id, d, tenant, now);
        }
        self.take_rate(id, estimated_tokens, now);
        true
    }

    /// Books an attempt's start whatever the deployment's room (tests and benchmarks; the
    /// request machine uses [`RouterState::try_begin_attempt`]).
    pub fn begin_attempt(&self, id: DeploymentId, tenant: TenantId, estimated_tokens: u32, now: Time) {
        self.book_begin(id, self.deployment(id), tenant, now);
        self.take_rate(id, estimated_tokens, now);
    }

    #[inline]
    fn book_begin(&self, id: DeploymentId, mut d: DeploymentGuard<'_>, tenant: TenantId, now: Time) {
        d.in_flight += 1;
        if let Some(signals) = &self.signals {
            signals.began(id);
        }
        d.health.on_attempt(now);
        self.mirror_ejection(id, &d);
        if let Some(n) = d.by_tenant.get_mut(usize::from(tenant.0)) {
            *n += 1;
            if *n == 1 {
                d.active_tenants += 1;
            }
        }
    }

    fn take_rate(&self, id: DeploymentId, estimated_tokens: u32, now: Time) {
        let (rpm, tpm) = self.limits[usize::from(id.0)];
        if let Some(l) = rpm {
            self.counters.adjust(l, -1.0, now);
        }
        if let Some(l) = tpm {
            self.counters.adjust(l, -f64::from(estimated_tokens), now);
        }
    }

    /// An attempt ended. `estimated_tokens` is what `begin_attempt` reserved: a success settles
    /// the reservation to its real total; a failed or abandoned attempt gives it all back (what
    /// such an attempt did use is charged with [`RouterState::charge_tokens`]).
    pub fn end_attempt(
        &self,
        id: DeploymentId,
        tenant: TenantId,
        estimated_tokens: u32,
        outcome: Outcome<'_>,
        now: Time,
    ) {
        let give_back = {
            let mut d = self.deployment(id);
            if let Some(n) = d.by_tenant.get_mut(usize::from(tenant.0))
                && *n > 0
            {
                *n -= 1;
                if *n == 0 {
                    d.active_tenants -= 1;
                }
            }
            self.book_end(id, &mut d, outcome, now);
            self.mirror_ejection(id, &d);
            match outcome {
                Outcome::Success { total_tokens, .. } => f64::from(estimated_tokens) - total_tokens as f64,
                Outcome::Failure(_) | Outcome::Abandoned => f64::from(estimated_tokens),
            }
        };
        if let (_, Some(l)) = self.limits[usize::from(id.0)] {
            self.counters.adjust(l, give_back, now);
        }
    }

    fn book_end(&self, id: DeploymentId, d: &mut DeploymentState, outcome: Outcome<'_>, now: Time) {
        let in_flight = d.in_flight;
        d.in_flight = d.in_flight.saturating_sub(1);
        if in_flight > 0
            && let Some(signals) = &self.signals
        {
            signals.ended(id);
        }
        match outcome {
            Outcome::Success { ttft, duration, output_tokens, .. } => {
                if d.health.on_success() {
                    self.publish_recovery(id, now);
                }
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
            }
            Outcome::Abandoned => d.health.on_neutral(),
            Outcome::Failure(error) => match error.health_signal() {
                HealthSignal::Failure => {
                    // Ejecting one more must keep the ejected share within the cap (counted
                    // without locks: a failure racing this one may eject past it by one).
                    let may_eject = self.may_eject_one_more(now);
                    if d.health.on_failure(now, &self.outlier, may_eject) {
                        self.publish_ejection(id, &d.health, now);
                    }
                }
                HealthSignal::Capacity { retry_after } => {
                    d.health.on_neutral();
                    let cut = (f64::from(in_flight) * 0.9).max(1.0);
                    d.learned_limit = Some(d.learned_limit.map_or(cut, |l| l.min(cut)));
                    let until = now + retry_after.unwrap_or(DEFAULT_COOLDOWN);
                    d.cooldown_until = Some(until);
                    self.publish_cooldown(id, until);
                }
                HealthSignal::Neutral => d.health.on_neutral(),
            },
        }
    }

    /// Charges tokens that an attempt ended without success really used (a stream cut or left
    /// after some output) to the deployment's tokens-per-minute allowance.
    pub fn charge_tokens(&self, id: DeploymentId, tokens: u64, now: Time) {
        if let (_, Some(l)) = self.limits[usize::from(id.0)] {
            self.counters.adjust(l, -(tokens as f64), now);
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
        let state = RouterState::new(&config, Time::ZERO);
        let id = config.deployments[0].id;
        let t = Time::ZERO;
        for _ in 0..10 {
            state.begin_attempt(id, crate::config::TenantId(0), 10, t);
        }
        let limited = AttemptError::RateLimited { retry_after: None };
        state.end_attempt(id, crate::config::TenantId(0), 10, Outcome::Failure(&limited), t);
        // 10 were in flight when the provider said no: the learned limit is 9.
        assert_eq!(state.deployment(id).learned_limit, Some(9.0));
        let later = t + Duration::from_secs(2);
        assert!(!state.has_headroom(id, 10, later), "9 still in flight");
        let ok =
            Outcome::Success { ttft: None, duration: Duration::from_millis(100), output_tokens: 1, total_tokens: 10 };
        state.end_attempt(id, crate::config::TenantId(0), 10, ok, later);
        assert!(state.has_headroom(id, 10, later), "8 in flight, limit grown past 9");
        for _ in 0..3000 {
            state.begin_attempt(id, crate::config::TenantId(0), 10, later);
            state.end_attempt(id, crate::config::TenantId(0), 10, ok, later);
        }
        assert_eq!(state.deployment(id).learned_limit, None, "grown back to the configured limit");
    }

    #[test]
    fn workers_sharing_the_state_leave_it_balanced() {
        // Four threads plan, begin and end attempts on the same deployments at once (some
        // failing, some rate limited, some abandoned): every attempt is released and every
        // token reservation settled exactly, with no lock held across another.
        let mut config = synthetic_config(8, "balanced");
        for d in &mut config.deployments {
            d.limits.tpm = Some(1_000_000_000);
        }
        let (specs, ids) = crate::counters::limit_specs(&config);
        let counters = Arc::new(LocalCounters::new(&specs, Time::ZERO));
        let state = RouterState::with_counters(&config, Time::ZERO, counters.clone());
        let request = crate::fixture::bench_request(&config);
        let t = Time::from_millis(1);
        let successes: Vec<Vec<u64>> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..4u64)
                .map(|worker| {
                    let (config, state, request) = (&config, &state, &request);
                    s.spawn(move || {
                        let mut rng = crate::SplitMix64::new(worker);
                        let mut successes = vec![0u64; config.deployments.len()];
                        for i in 0..2_000u64 {
                            let Ok(plan) = crate::plan::plan(config, state, request, t, &mut rng) else { continue };
                            let id = plan.deployments[0];
                            state.on_request(crate::config::TenantId(0), t);
                            state.begin_attempt(id, crate::config::TenantId(0), 100, t);
                            let error = match i % 5 {
                                0 => AttemptError::RateLimited { retry_after: Some(Duration::ZERO) },
                                1 => AttemptError::ServerError { status: 502 },
                                _ => AttemptError::StreamCut,
                            };
                            let outcome = match i % 3 {
                                0 => Outcome::Failure(&error),
                                1 => Outcome::Abandoned,
                                _ => {
                                    successes[usize::from(id.0)] += 1;
                                    let ok_ttft = Some(Duration::from_millis(1));
                                    Outcome::Success {
                                        ttft: ok_ttft,
                                        duration: Duration::ZERO,
                                        output_tokens: 1,
                                        total_tokens: 40,
                                    }
                                }
                            };
                            state.end_attempt(id, crate::config::TenantId(0), 100, outcome, t);
                            let _ = state.try_retry(crate::config::TenantId(0), t);
                        }
                        successes
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().expect("worker")).collect()
        });
        assert!(successes.iter().flatten().sum::<u64>() > 2_000, "the workers did route");
        for (i, d) in config.deployments.iter().enumerate() {
            assert_eq!(state.deployment(d.id).in_flight, 0, "{}", d.name);
            let n: u64 = successes.iter().map(|s| s[i]).sum();
            let level = counters.level(ids.deployments[i].1.expect("tpm"), t).expect("level");
            assert_eq!(level, 1e9 - 40.0 * n as f64, "{}: only real use stays charged", d.name);
        }
    }

    #[test]
    fn failed_and_abandoned_attempts_give_their_token_reservation_back() {
        let mut config = synthetic_config(2, "balanced");
        config.deployments[0].limits.tpm = Some(10_000);
        let state = RouterState::new(&config, Time::ZERO);
        let id = config.deployments[0].id;
        let t = Time::ZERO;
        let error = AttemptError::ServerError { status: 500 };
        for outcome in [Outcome::Abandoned, Outcome::Failure(&error)] {
            state.begin_attempt(id, crate::config::TenantId(0), 100_000, t);
            assert!(!state.has_headroom(id, 100, t), "the reservation holds the allowance");
            state.end_attempt(id, crate::config::TenantId(0), 100_000, outcome, t);
            assert!(state.has_headroom(id, 10_000, t), "all given back after {outcome:?}");
            assert_eq!(state.deployment(id).in_flight, 0);
        }
        // What a broken attempt did use is charged.
        state.begin_attempt(id, crate::config::TenantId(0), 500, t);
        state.end_attempt(id, crate::config::TenantId(0), 500, Outcome::Failure(&AttemptError::StreamCut), t);
        state.charge_tokens(id, 9_000, t);
        assert!(!state.has_headroom(id, 2_000, t));
        assert!(state.has_headroom(id, 1_000, t));
    }
}
