//! The router's side of the [`Signals`] seam: publishing a deployment's transitions (ejected,
//! cooling down, recovered) as Unix instants, and taking in what other replicas said whenever
//! a deployment is read to plan or start an attempt.
//!
//! What is taken in is applied once per change (the store's version says when), each part on
//! its own rule: a recovery ends ejections made here no later than it; an ejection still
//! running (made after the latest recovery) is adopted, extending one of this replica's that
//! ends sooner; a cool-down still running is adopted when it ends later than this replica's.
//! Local outlier detection goes on as before: a replica may eject on its own, and the half-open
//! probe after an adopted ejection is this replica's.

use std::sync::Arc;

use super::{DeploymentGuard, DeploymentState, RouterState};
use crate::config::DeploymentId;
use crate::health::Health;
use crate::signals::{Cluster, Signal, Signals};
use crate::time::Time;

// === impl RouterState ===

impl RouterState {
    /// This state, with ejections, cool-downs, recoveries and attempts in flight shared
    /// through `signals`, and tenants' and keys' concurrency limits counted there too.
    /// Instants are converted with the calendar the state was made with
    /// ([`RouterState::with_stores`]), which must map [`Time`] to the wall clock. Fails,
    /// naming which, when the store cannot count a tenant's concurrency limit.
    pub fn with_signals(mut self, signals: Arc<dyn Signals>) -> Result<RouterState, String> {
        self.tenancy.share_in_flight(signals.clone())?;
        self.signals = Some(signals);
        Ok(self)
    }

    /// Whether deployment signals are shared with other replicas.
    pub fn shares_signals(&self) -> bool {
        self.signals.is_some()
    }

    /// A deployment's state, locked, with what other replicas said about it taken in (without
    /// shared signals, exactly [`RouterState::deployment`]). Drop the guard before asking for
    /// another.
    #[inline]
    pub fn deployment_at(&self, id: DeploymentId, now: Time) -> DeploymentGuard<'_> {
        let mut d = self.deployment(id);
        if let Some(signals) = &self.signals {
            take_in(self, &mut d, &**signals, id, now);
        }
        d
    }

    pub(super) fn publish_ejection(&self, id: DeploymentId, health: &Health, now: Time) {
        if let (Some(signals), Some(until)) = (&self.signals, health.ejected_until()) {
            let (at, until) = (self.calendar.unix_ms(now), self.calendar.unix_ms(until));
            signals.publish(id, Signal::Ejected { at, until });
        }
    }

    pub(super) fn publish_cooldown(&self, id: DeploymentId, until: Time) {
        if let Some(signals) = &self.signals {
            signals.publish(id, Signal::Cooling { until: self.calendar.unix_ms(until) });
        }
    }

    pub(super) fn publish_recovery(&self, id: DeploymentId, now: Time) {
        if let Some(signals) = &self.signals {
            signals.publish(id, Signal::Recovered { at: self.calendar.unix_ms(now) });
        }
    }
}

/// Applies what changed in what the replicas said since it was last taken in, and sets how
/// the concurrency limit is counted now. Out of line: without shared signals it is never
/// called, and the read it sits on stays small.
///
/// An ejection is adopted only within `max_ejected_share`, counted as for this replica's own
/// (one that extends an ejection here always is): replicas each ejecting within the cap must not
/// together eject more. One passed over is not taken in later, and ends when it would have.
#[inline(never)]
fn take_in(state: &RouterState, d: &mut DeploymentState, signals: &dyn Signals, id: DeploymentId, now: Time) {
    let calendar = &state.calendar;
    if let Some((version, heard)) = signals.heard_since(id, d.heard_version) {
        let applied = d.heard;
        if heard.recovered_at > applied.recovered_at {
            d.health.recover(calendar.time_of(heard.recovered_at));
        }
        let stands = heard.ejected_at > heard.recovered_at;
        let new = (heard.ejected_at, heard.ejected_until) != (applied.ejected_at, applied.ejected_until);
        if stands && new {
            let until = calendar.time_of(heard.ejected_until);
            if until > now && (d.health.is_ejected(now) || state.may_eject_one_more(now)) {
                d.health.adopt(calendar.time_of(heard.ejected_at), until);
            }
        }
        // This replica's own report of no requests left, heard back, is its `reported` headroom
        // already (which a later report of room ends): not a 429's cool-down.
        if heard.cooling_until > applied.cooling_until && heard.cooling_until != d.reported_cooling {
            let until = calendar.time_of(heard.cooling_until);
            if until > now && d.cooldown_until.is_none_or(|mine| mine < until) {
                d.cooldown_until = Some(until);
            }
        }
        d.heard_version = version;
        d.heard = heard;
        state.mirror_ejection(id, d);
    }
    d.cluster = match d.concurrency_limit {
        Some(limit) => signals.cluster(id, limit),
        None => Cluster::Alone,
    };
}

#[cfg(test)]
mod tests;
