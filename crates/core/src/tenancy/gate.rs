//! A managed key's own limits and budgets, made at run time: [`Tenancy::register_key`] adds
//! them to the router's counters and to the budget windows under names stable across replicas
//! (`key/<id>/rpm`, `key/<id>/tpm`, `key/<id>/daily_usd`, `key/<id>/monthly_usd`; its
//! concurrency as the gauge `key/<id>/concurrency` in the shared signals, if any), so a shared
//! store shares them cluster-wide, and returns the key's [`KeyGate`], which admission checks and
//! settles exactly like the tenant's limits. Registering a key again (each reload of the key
//! table) finds the same allowances and budgets by name, with the sizes it now has; what a key
//! no longer has is retired ([`Tenancy::retire_unused`]).

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use super::{BudgetSpec, Limits, Period, Tenancy};
use crate::config::{TenantBudgets, TenantLimits};
use crate::counters::{Counters, LimitId, LimitSpec};
use crate::signals::GaugeId;
use crate::time::Time;

/// A managed key's limits and budgets as admission uses them. Shared by the key table and the
/// admissions made through it: a request settles to the gate it was admitted with.
#[derive(Debug)]
pub struct KeyGate {
    key: String,
    pub(super) in_flight: Arc<AtomicU32>,
    pub(super) limits: Limits,
    /// Its gauge in the shared signals, when its concurrency limit is held cluster-wide.
    pub(super) gauge: Option<GaugeId>,
}

/// What the tenancy keeps per key across reloads.
#[derive(Debug, Default)]
pub(super) struct KeyState {
    in_flight: Arc<AtomicU32>,
    /// Budget ids whose spend before this start was counted (once each).
    preloaded: HashSet<LimitId>,
}

// === impl KeyGate ===

impl KeyGate {
    /// The key's id (`key_…`).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The key's requests in progress (on this replica).
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Whether it has a daily or a monthly budget.
    pub fn has_budgets(&self) -> bool {
        self.limits.daily.is_some() || self.limits.monthly.is_some()
    }

    /// Its allowances (in the router's counters) and its budgets (in the budget windows).
    fn ids(&self) -> (impl Iterator<Item = LimitId>, impl Iterator<Item = LimitId>) {
        let l = &self.limits;
        let allowances = [l.rpm.map(|r| r.0), l.tpm.map(|t| t.0)].into_iter().flatten();
        let budgets = [l.daily.map(|d| d.0), l.monthly.map(|m| m.0)].into_iter().flatten();
        (allowances, budgets)
    }
}

// === impl Tenancy ===

impl Tenancy {
    /// Adds (or finds again, by name) managed key `key`'s allowances in `counters` (the
    /// router's) and its budgets in the budget windows, and returns its gate. Its requests in
    /// progress are counted across registrations. Fails, naming what, when a store cannot add
    /// at run time: the key's limit could not be kept, and the key must not be used.
    pub fn register_key(
        &self,
        counters: &dyn Counters,
        key: &str,
        limits: TenantLimits,
        budgets: TenantBudgets,
        now: Time,
    ) -> Result<Arc<KeyGate>, String> {
        let name = |kind: &str| format!("key/{key}/{kind}");
        let cannot = |what: String| format!("the store cannot add {what} at run time");
        let allowance = |kind: &str, per_minute: f64| {
            let spec = LimitSpec { name: name(kind), per_minute };
            counters.add_limit(&spec, now).ok_or_else(|| cannot(spec.name))
        };
        let budget = |kind: &str, period: Period, usd: f64| {
            let spec = BudgetSpec { name: name(kind), period, usd };
            self.budgets.add_budget(&spec).ok_or_else(|| cannot(spec.name))
        };
        let limits = Limits {
            rpm: limits.rpm.map(|r| allowance("rpm", f64::from(r)).map(|id| (id, r))).transpose()?,
            tpm: limits.tpm.map(|t| allowance("tpm", t as f64).map(|id| (id, t))).transpose()?,
            concurrency: limits.concurrency,
            daily: budgets.daily_usd.map(|u| budget("daily_usd", Period::Day, u).map(|id| (id, u))).transpose()?,
            monthly: budgets
                .monthly_usd
                .map(|u| budget("monthly_usd", Period::Month, u).map(|id| (id, u)))
                .transpose()?,
        };
        let gauge = match (&self.signals, limits.concurrency) {
            (Some(signals), Some(_)) => {
                let name = name("concurrency");
                Some(signals.add_gauge(&name).ok_or_else(|| cannot(name))?)
            }
            _ => None,
        };
        let in_flight = self.key_state(key, |s| s.in_flight.clone());
        Ok(Arc::new(KeyGate { key: key.to_owned(), in_flight, limits, gauge }))
    }

    /// Retires what gates in `old` use and gates in `new` do not (keys revoked, expired or
    /// changed since the last load), so a shared store stops syncing it.
    pub fn retire_unused(&self, counters: &dyn Counters, old: &[Arc<KeyGate>], new: &[Arc<KeyGate>]) {
        let (mut kept_allowances, mut kept_budgets) = (HashSet::new(), HashSet::new());
        for gate in new {
            let (allowances, budgets) = gate.ids();
            kept_allowances.extend(allowances);
            kept_budgets.extend(budgets);
        }
        let kept_gauges: HashSet<GaugeId> = new.iter().filter_map(|g| g.gauge).collect();
        for gate in old {
            let (allowances, budgets) = gate.ids();
            allowances.filter(|id| !kept_allowances.contains(id)).for_each(|id| counters.retire(id));
            budgets.filter(|id| !kept_budgets.contains(id)).for_each(|id| self.budgets.retire(id));
            if let (Some(gauge), Some(signals)) = (gate.gauge, &self.signals)
                && !kept_gauges.contains(&gauge)
            {
                signals.retire_gauge(gauge);
            }
        }
    }

    /// Whether some budget of the gate has not yet had its spend before this start counted.
    pub fn wants_preload(&self, gate: &KeyGate) -> bool {
        let (_, budgets) = gate.ids();
        let budgets: Vec<LimitId> = budgets.collect();
        !budgets.is_empty() && self.key_state(&gate.key, |s| budgets.iter().any(|id| !s.preloaded.contains(id)))
    }

    /// Counts the key's spend recorded before this start (the ledger's, today and this month)
    /// against its budgets, once per budget however often it is called.
    pub fn preload_key(&self, gate: &KeyGate, today_usd: f64, month_usd: f64, now: Time) {
        let fresh = |budget: Option<(LimitId, f64)>, s: &mut KeyState| budget.filter(|(id, _)| s.preloaded.insert(*id));
        let (daily, monthly) =
            self.key_state(&gate.key, |s| (fresh(gate.limits.daily, s), fresh(gate.limits.monthly, s)));
        let limits = Limits { daily, monthly, ..Limits::default() };
        self.preload_limits(&limits, today_usd, month_usd, now);
    }

    fn key_state<R>(&self, key: &str, f: impl FnOnce(&mut KeyState) -> R) -> R {
        let mut keys = self.keys.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        f(keys.entry(key.to_owned()).or_default())
    }
}
