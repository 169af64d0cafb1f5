//! What replicas tell each other about deployments, behind one seam, [`Signals`]: ejections
//! (outlier detection), 429 cool-downs and recoveries (a half-open probe that succeeded), and
//! attempts in flight, so that a deployment's concurrency limit holds for the cluster; and, as
//! named gauges, the requests in progress of tenants and managed keys with a concurrency limit,
//! so that theirs does too ([`Signals::add_gauge`], [`gauge_cap`]).
//!
//! Without a shared store the router has no `Signals` at all (`RouterState` keeps an
//! `Option`): every check is then the replica's own, at the cost of one branch. With one
//! (`switchyard-shared`'s `RedisSignals`), the router tells it each transition as it happens
//! ([`Signals::publish`], under the deployment's lock: it must not wait) and asks it, each time it
//! reads a deployment to plan or start an attempt, what the other replicas said
//! ([`Signals::heard_since`], which answers `None` at the cost of one atomic load when nothing
//! changed) and how to count the concurrency limit ([`Signals::cluster`]). A store answers from
//! memory and syncs off the request path.
//!
//! Instants cross replicas as Unix milliseconds ([`UnixMs`]): each process's [`Time`] starts at
//! its own zero, and the router's `Calendar` maps one to the other.
//!
//! [`Time`]: crate::time::Time

use crate::config::{Config, DeploymentId};

/// Milliseconds since 1970 (UTC): an instant every replica reads the same way (within the
/// skew of their clocks).
pub type UnixMs = i64;

/// A transition of a deployment on this replica, for the others.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// Ejected by outlier detection at `at`, until `until`.
    Ejected { at: UnixMs, until: UnixMs },
    /// Rate limited by the provider (a 429): no attempts until `until`.
    Cooling { until: UnixMs },
    /// A half-open probe succeeded at `at`: ejections made until then are over.
    Recovered { at: UnixMs },
}

/// The latest of what the replicas said about one deployment; zero where nothing was said.
/// The ejection is the latest made; it stands only if it was made after the latest recovery
/// (`ejected_at > recovered_at`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Heard {
    pub ejected_at: UnixMs,
    pub ejected_until: UnixMs,
    pub recovered_at: UnixMs,
    pub cooling_until: UnixMs,
}

// === impl Heard ===

impl Heard {
    /// Takes in one more signal, as the shared store does (its script follows this): a
    /// recovery moves `recovered_at` on; of the ejections, the latest made (then the one ending
    /// last) is kept, and one made no later than the latest recovery is stale and ignored; a
    /// cool-down keeps the later end. Returns whether anything changed. What is said in the end
    /// does not depend on the order signals arrive in, nor on repeats.
    pub fn record(&mut self, signal: Signal) -> bool {
        let before = *self;
        match signal {
            Signal::Recovered { at } => self.recovered_at = self.recovered_at.max(at),
            Signal::Ejected { at, until } => {
                if at > self.recovered_at && (at, until) > (self.ejected_at, self.ejected_until) {
                    (self.ejected_at, self.ejected_until) = (at, until);
                }
            }
            Signal::Cooling { until } => self.cooling_until = self.cooling_until.max(until),
        }
        *self != before
    }

    /// Whether the latest ejection stands (was made after the latest recovery).
    pub fn stands(&self) -> bool {
        self.ejected_at > self.recovered_at
    }

    /// Every signal this holds, for a store to pass on: the recovery, the ejection (if it
    /// stands), the cool-down.
    pub fn signals(&self) -> impl Iterator<Item = Signal> {
        let recovered = (self.recovered_at != 0).then_some(Signal::Recovered { at: self.recovered_at });
        let ejected = self.stands().then_some(Signal::Ejected { at: self.ejected_at, until: self.ejected_until });
        let cooling = (self.cooling_until != 0).then_some(Signal::Cooling { until: self.cooling_until });
        [recovered, ejected, cooling].into_iter().flatten()
    }
}

/// How a deployment's configured concurrency limit is counted now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Cluster {
    /// By this replica's attempts alone: no shared store, or one that lost its link and fails
    /// open.
    #[default]
    Alone,
    /// Cluster-wide: `others` is the other replicas' attempts in flight as they last published
    /// them; `unconfirmed` counts the attempts this replica began since the count the store
    /// last confirmed, which may not reach past `cap` (what bounds the overshoot).
    Shared { others: u32, unconfirmed: u32, cap: u32 },
    /// The store lost its link and fails closed: no attempt starts where a concurrency limit
    /// is configured.
    Closed,
}

// === impl Cluster ===

impl Cluster {
    /// What the other replicas have in flight, to count with this replica's own against the
    /// limit (none when counted alone); `None`: nothing may start now (the store fails closed,
    /// or this replica has begun its cap of unconfirmed attempts).
    pub fn others(self) -> Option<u32> {
        match self {
            Cluster::Alone => Some(0),
            Cluster::Closed => None,
            Cluster::Shared { unconfirmed, cap, .. } if unconfirmed >= cap.max(1) => None,
            Cluster::Shared { others, .. } => Some(others),
        }
    }
}

/// What a shared store is told about each deployment, by its place in the config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignalSpec {
    /// The deployment's name, what the store keys it by (the same on every replica).
    pub name: String,
    /// Its configured concurrency limit: only those are counted across replicas.
    pub concurrency: Option<u32>,
}

/// Deployment signals shared with other replicas. Every method answers at once from memory
/// (and may be called with a deployment's lock held); the store syncs off the request path.
pub trait Signals: Send + Sync + std::fmt::Debug {
    /// A transition here, to pass on.
    fn publish(&self, deployment: DeploymentId, signal: Signal);

    /// What the replicas said about `deployment`, if it changed since the version `seen` (0
    /// before the first): the new version and what was heard.
    fn heard_since(&self, deployment: DeploymentId, seen: u64) -> Option<(u64, Heard)>;

    /// An attempt began on `deployment` here.
    fn began(&self, deployment: DeploymentId);

    /// An attempt on `deployment` here ended.
    fn ended(&self, deployment: DeploymentId);

    /// How to count `deployment`'s configured concurrency `limit` now.
    fn cluster(&self, deployment: DeploymentId, limit: u32) -> Cluster;

    /// Adds a gauge of requests in progress under `name` (the same on every replica:
    /// `tenant/<name>/concurrency`, `key/<id>/concurrency`), or finds the one of that name
    /// again; `None` when the store cannot add one (the limit cannot be held cluster-wide).
    fn add_gauge(&self, name: &str) -> Option<GaugeId>;

    /// Stops syncing a gauge no longer used (a revoked key's); adding it again resumes it.
    fn retire_gauge(&self, gauge: GaugeId);

    /// A request counted by `gauge` began here.
    fn gauge_began(&self, gauge: GaugeId);

    /// A request counted by `gauge` here ended.
    fn gauge_ended(&self, gauge: GaugeId);

    /// How to count `gauge` against its `limit` now: for a [`Cluster::Shared`] gauge, `cap`
    /// is [`gauge_cap`]'s.
    fn gauge_cluster(&self, gauge: GaugeId, limit: u32) -> Cluster;
}

/// A gauge of requests in progress in a [`Signals`] store, by the order it was added.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GaugeId(pub u32);

/// How many requests a replica may admit between two confirmations of its count against a
/// gauge's `limit`: its fixed [`unconfirmed_cap`] (`share` of the limit), or its share of the
/// room the cluster had when its count was last confirmed (`others` in progress elsewhere,
/// `confirmed` here, among `replicas` replicas alive), whichever is larger. Each replica taking
/// at most its share of the room, a burst far from the limit is admitted at once, and the
/// cluster overshoots the limit by at most one fixed cap per replica.
pub fn gauge_cap(limit: u32, share: f64, others: u32, confirmed: u32, replicas: u32) -> u32 {
    let room = limit.saturating_sub(others.saturating_add(confirmed));
    unconfirmed_cap(limit, share).max(room / replicas.max(1))
}

/// The deployments of `config`, in order, as a shared store is to know them.
pub fn signal_specs(config: &Config) -> Vec<SignalSpec> {
    config.deployments.iter().map(|d| SignalSpec { name: d.name.clone(), concurrency: d.limits.concurrency }).collect()
}

/// At most this many attempts may begin on a replica between two confirmations of its count,
/// for a concurrency `limit` and an unconfirmed `share` of it: `share · limit`, rounded down,
/// and at least one (so that a replica is never shut out).
pub fn unconfirmed_cap(limit: u32, share: f64) -> u32 {
    let cap = (f64::from(limit) * share).floor();
    if cap.is_finite() && cap >= 1.0 { cap.min(f64::from(u32::MAX)) as u32 } else { 1 }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn signal() -> impl Strategy<Value = Signal> {
        prop_oneof![
            (1i64..100, 0i64..50).prop_map(|(at, d)| Signal::Ejected { at, until: at + d }),
            (1i64..100).prop_map(|at| Signal::Recovered { at }),
            (1i64..150).prop_map(|until| Signal::Cooling { until }),
        ]
    }

    #[test]
    fn a_recovery_ends_ejections_made_before_it_only() {
        let mut h = Heard::default();
        assert!(h.record(Signal::Ejected { at: 10, until: 40 }));
        assert!(h.record(Signal::Ejected { at: 12, until: 30 }), "a later start");
        assert_eq!((h.ejected_at, h.ejected_until), (12, 30), "the latest ejection says");
        assert!(!h.record(Signal::Ejected { at: 10, until: 90 }));
        assert!(h.record(Signal::Recovered { at: 20 }));
        assert!(!h.stands());
        assert!(!h.record(Signal::Ejected { at: 15, until: 90 }), "made before the recovery: stale");
        assert!(h.record(Signal::Ejected { at: 25, until: 35 }));
        assert_eq!((h.ejected_at, h.ejected_until), (25, 35), "a new ejection replaces the one that ended");
        assert!(h.stands());
        assert!(!h.record(Signal::Cooling { until: 0 }));
        assert!(h.record(Signal::Cooling { until: 50 }) && !h.record(Signal::Cooling { until: 45 }));
        assert_eq!(h.signals().count(), 3);
    }

    #[test]
    fn a_gauges_cap_is_its_share_of_the_room_or_the_fixed_cap() {
        assert_eq!(gauge_cap(16, 0.1, 0, 0, 1), 16, "alone, the whole room");
        assert_eq!(gauge_cap(16, 0.1, 0, 0, 2), 8, "half of it with two replicas");
        assert_eq!(gauge_cap(16, 0.1, 6, 4, 2), 3);
        assert_eq!(gauge_cap(16, 0.1, 15, 0, 2), 1, "near the limit, the fixed cap");
        assert_eq!(gauge_cap(16, 0.1, 30, 9, 0), 1, "past it (or no replica known), too");
        assert_eq!(gauge_cap(100, 0.1, 95, 0, 3), 10);
    }

    #[test]
    fn the_cap_is_a_share_of_the_limit_and_at_least_one() {
        assert_eq!(unconfirmed_cap(4, 0.1), 1);
        assert_eq!(unconfirmed_cap(100, 0.1), 10);
        assert_eq!(unconfirmed_cap(u32::MAX, 1.0), u32::MAX);
        assert_eq!(unconfirmed_cap(10, f64::NAN), 1);
    }

    proptest! {
        /// Whatever order signals arrive in, and however often each is sent again, what is
        /// heard is the same: replicas that took in the same signals agree.
        #[test]
        fn what_is_heard_does_not_depend_on_order_or_repeats(
            signals in prop::collection::vec(signal(), 0..12),
            seed in any::<u64>(),
        ) {
            let mut one = Heard::default();
            for s in &signals {
                one.record(*s);
            }
            let mut shuffled: Vec<Signal> = signals.iter().chain(&signals).copied().collect();
            let mut rng = crate::SplitMix64::new(seed);
            for i in (1..shuffled.len()).rev() {
                shuffled.swap(i, crate::Rng::below(&mut rng, i + 1));
            }
            let mut other = Heard::default();
            for s in &shuffled {
                other.record(*s);
            }
            // Compared by what they say: an ejection that no longer stands says nothing.
            let said = |h: &Heard| (h.recovered_at, h.cooling_until, h.stands().then_some((h.ejected_at, h.ejected_until)));
            prop_assert_eq!(said(&one), said(&other));
            // And passing on what one heard tells another the same.
            let mut relayed = Heard::default();
            for s in one.signals() {
                relayed.record(s);
            }
            prop_assert_eq!(said(&relayed), said(&one));
        }
    }
}
