//! Per-minute allowances (requests and tokens per minute) behind one seam, [`Counters`], so
//! that a replica can keep them itself ([`LocalCounters`]) or share them with other replicas.
//!
//! An allowance is a token bucket that holds up to one minute's worth and refills
//! continuously. Reservations are made with an estimate when an attempt starts and corrected
//! with the real figure when it ends, so the level may go below zero; it then blocks until
//! refilled. Each allowance has its own lock: no lock is shared by every request.
//!
//! A store starts with the allowances a config defines ([`limit_specs`]) and takes more at run
//! time ([`Counters::add_limit`]: a managed key's, made after start), found again by name, so a
//! key's allowance has the same name on every replica (`key/<id>/tpm`).

mod grow;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

pub use grow::Grow;

use crate::config::Config;
use crate::tenancy::BudgetSpec;
use crate::time::Time;

/// One allowance, by its place in the list [`limit_specs`] returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LimitId(pub u32);

/// What an allowance is: a name stable across replicas and restarts, and its size.
#[derive(Clone, Debug, PartialEq)]
pub struct LimitSpec {
    /// E.g. `deployment/aws-use1-llama/tpm`: what a shared store keys it by.
    pub name: String,
    pub per_minute: f64,
}

/// Allowances the router reserves from and settles to. Implementations answer at once from
/// what they hold (a shared one syncs with its peers off the request path), so calling them
/// never waits on a network.
pub trait Counters: Send + Sync + std::fmt::Debug {
    /// Whether `amount` fits now (without taking it).
    fn has_room(&self, limit: LimitId, amount: f64, now: Time) -> bool;
    /// Takes `-delta` (a reservation, when negative) or gives `delta` back.
    fn adjust(&self, limit: LimitId, delta: f64, now: Time);

    /// Counts `amount` used before this process started (read from the ledger). A store shared
    /// by replicas that each bring the same figure must count it once: it overrides this.
    fn preload(&self, limit: LimitId, amount: f64, now: Time) {
        self.adjust(limit, -amount, now);
    }

    /// What is left of an allowance now, when the implementation can tell (for metrics).
    fn remaining(&self, _limit: LimitId, _now: Time) -> Option<f64> {
        None
    }

    /// About how long until `amount` fits (for a Retry-After); one second unless known better.
    fn wait_for(&self, _limit: LimitId, _amount: f64, _now: Time) -> Duration {
        Duration::from_secs(1)
    }

    /// Adds an allowance made at run time (a managed key's), or finds the one of that name
    /// added before and gives it `spec`'s size; returns its id. `None` when this store holds
    /// only what it was built with (or is full): the caller must then not rely on the limit.
    /// Called off the request path (when keys are loaded); takes a lock of its own.
    fn add_limit(&self, _spec: &LimitSpec, _now: Time) -> Option<LimitId> {
        None
    }

    /// [`Counters::add_limit`] for a store of budget windows: a run-time budget by name.
    fn add_budget(&self, _spec: &BudgetSpec) -> Option<LimitId> {
        None
    }

    /// An allowance or budget added at run time is no longer used (its key was revoked or
    /// changed): a shared store may stop syncing it. Adding it again revives it.
    fn retire(&self, _limit: LimitId) {}
}

/// A deployment's or a tenant's (requests per minute, tokens per minute) allowance, where set.
pub type DeploymentLimits = (Option<LimitId>, Option<LimitId>);

/// Allowance ids: each deployment's, then each tenant's.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LimitIds {
    pub deployments: Vec<DeploymentLimits>,
    pub tenants: Vec<DeploymentLimits>,
}

/// The allowances a config defines, in a fixed order: each deployment's requests per minute
/// then tokens per minute, where set, then each tenant's. Returns the list and the ids in it.
pub fn limit_specs(config: &Config) -> (Vec<LimitSpec>, LimitIds) {
    let mut specs = Vec::new();
    let ids = walk(config, |name: &dyn Fn() -> String, per_minute| {
        specs.push(LimitSpec { name: name(), per_minute });
    });
    (specs, ids)
}

/// Calls `each` for every allowance in [`limit_specs`]' order (the name built only if asked
/// for) and returns the ids.
fn walk(config: &Config, mut each: impl FnMut(&dyn Fn() -> String, f64)) -> LimitIds {
    let mut n = 0u32;
    let mut next = |name: &dyn Fn() -> String, per_minute: f64| {
        each(name, per_minute);
        n += 1;
        LimitId(n - 1)
    };
    let mut pair = |kind: &str, who: &str, rpm: Option<u32>, tpm: Option<u64>| {
        let rpm = rpm.map(|r| next(&|| format!("{kind}/{who}/rpm"), f64::from(r)));
        let tpm = tpm.map(|t| next(&|| format!("{kind}/{who}/tpm"), t as f64));
        (rpm, tpm)
    };
    let deployments =
        config.deployments.iter().map(|d| pair("deployment", &d.name, d.limits.rpm, d.limits.tpm)).collect();
    let tenants = config.tenants.iter().map(|t| pair("tenant", &t.name, t.limits.rpm, t.limits.tpm)).collect();
    LimitIds { deployments, tenants }
}

/// The allowance ids [`limit_specs`] numbers, without building names.
pub fn limit_ids(config: &Config) -> LimitIds {
    walk(config, |_, _| {})
}

/// The token bucket of one allowance.
#[derive(Clone, Copy, Debug)]
pub struct Bucket {
    per_minute: f64,
    level: f64,
    stamp: Time,
}

impl Bucket {
    pub fn new(per_minute: f64, now: Time) -> Bucket {
        Bucket { per_minute, level: per_minute, stamp: now }
    }

    fn refill(&mut self, now: Time) {
        if now > self.stamp {
            let elapsed_min = now.saturating_since(self.stamp).as_secs_f64() / 60.0;
            self.level = (self.level + elapsed_min * self.per_minute).min(self.per_minute);
            self.stamp = now;
        }
    }

    /// Whether `amount` fits now (without taking it).
    pub fn has_room(&self, amount: f64, now: Time) -> bool {
        let mut probe = *self;
        probe.refill(now);
        // A request larger than the whole allowance is let through once the bucket is full.
        probe.level >= amount.min(self.per_minute)
    }

    /// Gives back (or, when negative, takes more of) the difference between estimate and actual.
    /// The level never goes below minus one minute's allowance, whatever the figures say.
    pub fn adjust(&mut self, delta: f64, now: Time) {
        self.refill(now);
        if delta.is_finite() {
            self.level = (self.level + delta).clamp(-self.per_minute, self.per_minute);
        }
    }

    /// Gives the allowance a new size (a key's limit changed), keeping what was used.
    pub fn resize(&mut self, per_minute: f64, now: Time) {
        self.refill(now);
        if per_minute.is_finite() && per_minute >= 0.0 {
            self.per_minute = per_minute;
            self.level = self.level.clamp(-per_minute, per_minute);
        }
    }

    /// About how long until `amount` fits.
    pub fn wait_for(&self, amount: f64, now: Time) -> Duration {
        let missing = amount.min(self.per_minute) - self.level(now);
        if missing <= 0.0 || self.per_minute <= 0.0 {
            return Duration::ZERO;
        }
        Duration::try_from_secs_f64(missing / self.per_minute * 60.0).unwrap_or(Duration::from_secs(60))
    }

    /// What is left now (negative while overdrawn).
    pub fn level(&self, now: Time) -> f64 {
        let mut probe = *self;
        probe.refill(now);
        probe.level
    }
}

/// A lock on its own cache line, so that neighbours do not contend through false sharing.
#[derive(Debug, Default)]
#[repr(align(64))]
pub(crate) struct Padded<T>(pub(crate) Mutex<T>);

impl<T> Padded<T> {
    pub(crate) fn new(value: T) -> Padded<T> {
        Padded(Mutex::new(value))
    }

    /// The value, locked; a panic elsewhere while it was held does not poison routing.
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, T> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Allowances kept by this replica alone.
#[derive(Debug)]
pub struct LocalCounters {
    buckets: Grow<Padded<Bucket>>,
    /// Allowances added at run time, by name.
    added: Mutex<HashMap<String, LimitId>>,
}

impl LocalCounters {
    pub fn new(specs: &[LimitSpec], now: Time) -> LocalCounters {
        let buckets = Grow::new(specs.iter().map(|s| Padded::new(Bucket::new(s.per_minute, now))));
        LocalCounters { buckets, added: Mutex::default() }
    }

    /// The allowances [`limit_specs`] lists for `config`, each full.
    pub fn for_config(config: &Config, now: Time) -> LocalCounters {
        let mut buckets = Vec::new();
        walk(config, |_, per_minute| buckets.push(Padded::new(Bucket::new(per_minute, now))));
        LocalCounters { buckets: Grow::new(buckets), added: Mutex::default() }
    }

    /// What is left of an allowance now.
    pub fn level(&self, limit: LimitId, now: Time) -> Option<f64> {
        self.buckets.get(limit.0 as usize).map(|b| b.lock().level(now))
    }
}

impl Counters for LocalCounters {
    fn has_room(&self, limit: LimitId, amount: f64, now: Time) -> bool {
        self.buckets.get(limit.0 as usize).is_none_or(|b| b.lock().has_room(amount, now))
    }

    fn adjust(&self, limit: LimitId, delta: f64, now: Time) {
        if let Some(b) = self.buckets.get(limit.0 as usize) {
            b.lock().adjust(delta, now);
        }
    }

    fn wait_for(&self, limit: LimitId, amount: f64, now: Time) -> Duration {
        self.buckets.get(limit.0 as usize).map_or(Duration::ZERO, |b| b.lock().wait_for(amount, now))
    }

    fn remaining(&self, limit: LimitId, now: Time) -> Option<f64> {
        self.level(limit, now)
    }

    fn add_limit(&self, spec: &LimitSpec, now: Time) -> Option<LimitId> {
        add_named(&self.added, &spec.name, |id| match id {
            Some(id) => {
                self.buckets.get(id.0 as usize)?.lock().resize(spec.per_minute, now);
                Some(id)
            }
            None => self.buckets.push(Padded::new(Bucket::new(spec.per_minute, now))).and_then(index_id),
        })
    }
}

/// Finds `name` among the entries added by name, or adds it: `add(Some(id))` updates the entry
/// found, `add(None)` makes one. Under `names`' lock, so two callers never add one name twice.
pub fn add_named(
    names: &Mutex<HashMap<String, LimitId>>,
    name: &str,
    add: impl FnOnce(Option<LimitId>) -> Option<LimitId>,
) -> Option<LimitId> {
    let mut names = names.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let found = names.get(name).copied();
    let id = add(found)?;
    if found.is_none() {
        names.insert(name.to_owned(), id);
    }
    Some(id)
}

/// The id of the entry at `index` in a store's list; `None` past what an id can count.
pub fn index_id(index: usize) -> Option<LimitId> {
    u32::try_from(index).ok().map(LimitId)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn bucket_blocks_when_spent_and_refills_per_minute() {
        let t = Time::ZERO;
        let mut b = Bucket::new(60.0, t);
        for _ in 0..60 {
            assert!(b.has_room(1.0, t));
            b.adjust(-1.0, t);
        }
        assert!(!b.has_room(1.0, t));
        assert!(b.has_room(1.0, t + Duration::from_secs(1)));
        b.adjust(-10.0, t + Duration::from_secs(1));
        assert!(!b.has_room(1.0, t + Duration::from_secs(5)));
        assert!(b.has_room(1.0, t + Duration::from_secs(11)));
    }

    #[test]
    fn specs_name_each_deployment_limit_once_in_config_order() {
        let mut config = crate::fixture::synthetic_config(3, "balanced");
        for d in &mut config.deployments {
            (d.limits.rpm, d.limits.tpm) = (None, None);
        }
        config.deployments[0].limits.tpm = Some(1_000);
        config.deployments[2].limits.rpm = Some(60);
        config.deployments[2].limits.tpm = Some(9_000);
        let (specs, ids) = limit_specs(&config);
        let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        let d = |i: usize| config.deployments[i].name.clone();
        assert_eq!(
            names,
            [
                format!("deployment/{}/tpm", d(0)),
                format!("deployment/{}/rpm", d(2)),
                format!("deployment/{}/tpm", d(2))
            ]
        );
        assert_eq!(ids.deployments, [(None, Some(LimitId(0))), (None, None), (Some(LimitId(1)), Some(LimitId(2)))]);
        assert_eq!(ids.tenants, [(None, None)]);
        let counters = LocalCounters::new(&specs, Time::ZERO);
        counters.adjust(LimitId(1), -60.0, Time::ZERO);
        assert!(!counters.has_room(LimitId(1), 1.0, Time::ZERO));
        assert!(counters.has_room(LimitId(2), 9_000.0, Time::ZERO));
    }

    #[test]
    fn allowances_added_at_run_time_are_found_again_by_name() {
        let counters =
            LocalCounters::new(&[LimitSpec { name: "deployment/d/tpm".into(), per_minute: 10.0 }], Time::ZERO);
        let spec = |per_minute| LimitSpec { name: "key/key_0/tpm".into(), per_minute };
        let id = counters.add_limit(&spec(1_000.0), Time::ZERO).expect("added");
        assert_eq!(id, LimitId(1));
        counters.adjust(id, -600.0, Time::ZERO);
        assert!(!counters.has_room(id, 500.0, Time::ZERO));
        // Added again (a reload of the key): the same allowance, what was used kept, a new size.
        assert_eq!(counters.add_limit(&spec(500.0), Time::ZERO), Some(id));
        assert_eq!(counters.level(id, Time::ZERO), Some(400.0));
        assert_eq!(counters.add_limit(&spec(100.0), Time::ZERO), Some(id));
        assert_eq!(counters.level(id, Time::ZERO), Some(100.0), "cut to the smaller size");
        let other = counters.add_limit(&LimitSpec { name: "key/key_1/tpm".into(), per_minute: 5.0 }, Time::ZERO);
        assert_eq!(other, Some(LimitId(2)));
        assert_eq!(counters.level(LimitId(0), Time::ZERO), Some(10.0), "the config's are untouched");
    }
}
