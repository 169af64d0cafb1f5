//! A tenant's own limits and budgets, and a managed key's: a request is admitted against them
//! (its estimate reserved), and settled to what the caller is billed when it ends.
//!
//! Requests and tokens per minute are allowances in the router's [`Counters`] (so a shared
//! implementation shares them across replicas); dollars per UTC day and month are windows in a
//! second `Counters` over [`BudgetSpec`]s ([`LocalWindows`] keeps them in this process); requests
//! in progress are an atomic count per tenant. Admission checks every limit, then takes from each:
//! concurrent admissions may pass the same check, so a limit or budget can be overdrawn by the
//! estimates of requests admitted at the same instant (at most one per worker), and by what
//! requests in flight use beyond their estimates. Both are settled exactly afterwards.
//!
//! With shared [`Signals`] (Redis), a tenant's or key's concurrency limit holds for the
//! cluster: its requests in progress are a gauge (`tenant/<name>/concurrency`,
//! `key/<id>/concurrency`) every replica publishes its count of, and admission counts the
//! others' as last heard, within [`gauge_cap`]'s bound on what may begin here unconfirmed.
//! Without them, or when the store fails open, each replica counts its own.
//!
//! A managed key with limits or budgets of its own ([`KeySettings`]) has a [`KeyGate`]: the
//! same kinds of limits, registered in the same two stores at run time under names stable
//! across replicas (`key/<id>/tpm`, `key/<id>/daily_usd`), checked, reserved and settled exactly
//! like the tenant's, with the same overshoot. A request must fit both.

mod gate;
mod key;
mod windows;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use gate::KeyGate;
use gate::KeyState;
pub use key::{KeyChangeError, KeyField, KeySettingError, KeySettings};
pub use windows::LocalWindows;

pub use crate::calendar::{
    Calendar, Period, civil_from_days, days_from_civil, format_utc, window_end, window_of, window_start,
};
use crate::config::{Config, Tenant, TenantId};
use crate::counters::{Counters, LimitId};
use crate::signals::{GaugeId, Signals};
use crate::time::Time;

/// One budget: a name stable across replicas, its window and its dollars.
#[derive(Clone, Debug, PartialEq)]
pub struct BudgetSpec {
    /// E.g. `tenant/acme/daily_usd`.
    pub name: String,
    pub period: Period,
    pub usd: f64,
}

/// What admitting a request reserves: its token estimate and its dollar estimate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Estimate {
    pub tokens: u32,
    pub usd: f64,
}

impl Estimate {
    /// What a request on `alias` reserves: its prompt and the output it may produce, those
    /// tokens priced at the alias's dearest deployment (wherever it is routed, it costs no more).
    pub fn for_alias(config: &Config, alias: &crate::config::Alias, input_tokens: u32, output_tokens: u32) -> Estimate {
        let usage = crate::usage::Usage {
            prompt_tokens: u64::from(input_tokens),
            completion_tokens: u64::from(output_tokens),
            cached_prompt_tokens: 0,
        };
        let usd = alias
            .deployments
            .iter()
            .map(|d| crate::usage::list_cost(&config.deployment(*d).price, &usage))
            .fold(0.0, f64::max);
        Estimate { tokens: input_tokens.saturating_add(output_tokens), usd }
    }
}

/// A request admitted for a tenant (and its key); give it back to [`Tenancy::settle`] exactly
/// once.
#[derive(Debug)]
#[must_use = "an admission holds the tenant's reservations until settled"]
pub struct Admission {
    tenant: TenantId,
    /// The managed key's gate, when its key has limits or budgets of its own.
    key: Option<Arc<KeyGate>>,
    estimate: Estimate,
    at: Time,
}

/// Why a request was not admitted, with when to try again.
#[derive(Clone, Debug, PartialEq)]
pub enum Refusal {
    RequestsPerMinute {
        limit: u32,
        retry_after: Duration,
    },
    TokensPerMinute {
        limit: u64,
        retry_after: Duration,
    },
    Concurrency {
        limit: u32,
    },
    Budget {
        period: Period,
        usd: f64,
        resets_at_unix_ms: i64,
    },
    /// The key's own limit or budget said no (one of the above, never itself `Key`).
    Key(Box<Refusal>),
}

impl Refusal {
    /// Whether it was the key's own limit or budget rather than the tenant's.
    pub fn is_key(&self) -> bool {
        matches!(self, Refusal::Key(_))
    }

    /// Which limit or budget it was, whoever's it is.
    pub fn limit(&self) -> &Refusal {
        match self {
            Refusal::Key(inner) => inner.limit(),
            other => other,
        }
    }

    fn of_key(self) -> Refusal {
        match self {
            key @ Refusal::Key(_) => key,
            other => Refusal::Key(Box::new(other)),
        }
    }
}

/// One holder's limits (a tenant's or a key's): each allowance's or budget's id in its store,
/// with its size.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Limits {
    rpm: Option<(LimitId, u32)>,
    tpm: Option<(LimitId, u64)>,
    concurrency: Option<u32>,
    daily: Option<(LimitId, f64)>,
    monthly: Option<(LimitId, f64)>,
}

#[derive(Debug, Default)]
struct TenantSlot {
    in_flight: AtomicU32,
    limits: Limits,
    /// Its gauge in the shared signals, when its concurrency limit is held cluster-wide.
    gauge: Option<GaugeId>,
    /// `tenant/<name>/concurrency`: the gauge's name.
    gauge_name: String,
}

/// Every tenant's admission state, and the managed keys' that have limits of their own.
#[derive(Debug)]
pub struct Tenancy {
    tenants: Box<[TenantSlot]>,
    budgets: Arc<dyn Counters>,
    calendar: Calendar,
    /// Per managed key (by id): its requests in progress, kept across reloads of the key, and
    /// the budgets whose earlier spend was counted already (see [`Tenancy::preload_key`]).
    keys: Mutex<HashMap<String, KeyState>>,
    /// Where concurrency limits are counted cluster-wide, if anywhere.
    signals: Option<Arc<dyn Signals>>,
}

/// The budgets a config defines, in a fixed order: each tenant's daily then monthly, where set.
pub fn budget_specs(config: &Config) -> Vec<BudgetSpec> {
    let mut specs = Vec::new();
    for t in &config.tenants {
        if let Some(usd) = t.budgets.daily_usd {
            specs.push(BudgetSpec { name: format!("tenant/{}/daily_usd", t.name), period: Period::Day, usd });
        }
        if let Some(usd) = t.budgets.monthly_usd {
            specs.push(BudgetSpec { name: format!("tenant/{}/monthly_usd", t.name), period: Period::Month, usd });
        }
    }
    specs
}

// === impl Tenancy ===

impl Tenancy {
    /// `tenant_limits[i]` are tenant `i`'s (rpm, tpm) ids in the router's counters; `budgets`
    /// holds [`budget_specs`]`(config)`.
    pub fn new(
        config: &Config,
        tenant_limits: &[(Option<LimitId>, Option<LimitId>)],
        budgets: Arc<dyn Counters>,
        calendar: Calendar,
    ) -> Tenancy {
        let mut next_budget = 0u32;
        let mut budget = |usd: Option<f64>| {
            usd.map(|usd| {
                next_budget += 1;
                (LimitId(next_budget - 1), usd)
            })
        };
        let tenants = config
            .tenants
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let (rpm, tpm) = tenant_limits.get(i).copied().unwrap_or_default();
                let limits = Limits {
                    rpm: rpm.zip(t.limits.rpm),
                    tpm: tpm.zip(t.limits.tpm),
                    concurrency: t.limits.concurrency,
                    daily: budget(t.budgets.daily_usd),
                    monthly: budget(t.budgets.monthly_usd),
                };
                let gauge_name = format!("tenant/{}/concurrency", t.name);
                TenantSlot { in_flight: AtomicU32::new(0), limits, gauge: None, gauge_name }
            })
            .collect();
        Tenancy { tenants, budgets, calendar, keys: Mutex::default(), signals: None }
    }

    /// Counts concurrency limits cluster-wide through `signals` from now on: each tenant with
    /// one gets its gauge (keys get theirs as they are registered). A store that cannot add a
    /// gauge leaves that tenant counted by this replica alone, and says so.
    pub fn share_in_flight(&mut self, signals: Arc<dyn Signals>) -> Result<(), String> {
        let mut unshared = Vec::new();
        for slot in self.tenants.iter_mut().filter(|s| s.limits.concurrency.is_some()) {
            slot.gauge = signals.add_gauge(&slot.gauge_name);
            if slot.gauge.is_none() {
                unshared.push(slot.gauge_name.clone());
            }
        }
        self.signals = Some(signals);
        match unshared.is_empty() {
            true => Ok(()),
            false => Err(format!("the store cannot count {} across replicas", unshared.join(", "))),
        }
    }

    pub fn calendar(&self) -> Calendar {
        self.calendar
    }

    /// Checks every limit and budget of the tenant, then of its key (if it has a gate), and
    /// reserves the estimate against each. A key's refusal is [`Refusal::Key`].
    pub fn admit(
        &self,
        counters: &dyn Counters,
        tenant: &Tenant,
        key: Option<&Arc<KeyGate>>,
        estimate: Estimate,
        now: Time,
    ) -> Result<Admission, Refusal> {
        let slot = self.tenants.get(usize::from(tenant.id.0));
        if let Some(slot) = slot {
            self.check(counters, &slot.limits, estimate, now)?;
        }
        if let Some(key) = key {
            self.check(counters, &key.limits, estimate, now).map_err(Refusal::of_key)?;
        }
        if let Some(slot) = slot {
            self.enter(&slot.in_flight, slot.limits.concurrency, slot.gauge)?;
        }
        if let Some(key) = key
            && let Err(refusal) = self.enter(&key.in_flight, key.limits.concurrency, key.gauge)
        {
            if let Some(slot) = slot {
                self.leave(&slot.in_flight, slot.gauge);
            }
            return Err(refusal.of_key());
        }
        for limits in slot.map(|s| &s.limits).into_iter().chain(key.map(|k| &k.limits)) {
            self.take(counters, limits, estimate, now);
        }
        Ok(Admission { tenant: tenant.id, key: key.cloned(), estimate, at: now })
    }

    /// Whether `estimate` fits every limit and budget in `limits` now.
    fn check(&self, counters: &dyn Counters, limits: &Limits, estimate: Estimate, now: Time) -> Result<(), Refusal> {
        if let Some((id, limit)) = limits.rpm
            && !counters.has_room(id, 1.0, now)
        {
            return Err(Refusal::RequestsPerMinute { limit, retry_after: counters.wait_for(id, 1.0, now) });
        }
        let tokens = f64::from(estimate.tokens);
        if let Some((id, limit)) = limits.tpm
            && !counters.has_room(id, tokens, now)
        {
            return Err(Refusal::TokensPerMinute { limit, retry_after: counters.wait_for(id, tokens, now) });
        }
        for (budget, period) in [(limits.daily, Period::Day), (limits.monthly, Period::Month)] {
            if let Some((id, usd)) = budget
                && !self.budgets.has_room(id, estimate.usd, now)
            {
                let resets_at_unix_ms = window_end(period, self.calendar.unix_ms(now));
                return Err(Refusal::Budget { period, usd, resets_at_unix_ms });
            }
        }
        Ok(())
    }

    /// Reserves `estimate` against every limit and budget in `limits`.
    fn take(&self, counters: &dyn Counters, limits: &Limits, estimate: Estimate, now: Time) {
        if let Some((id, _)) = limits.rpm {
            counters.adjust(id, -1.0, now);
        }
        if let Some((id, _)) = limits.tpm {
            counters.adjust(id, -f64::from(estimate.tokens), now);
        }
        for (id, _) in [limits.daily, limits.monthly].into_iter().flatten() {
            self.budgets.adjust(id, -estimate.usd, now);
        }
    }

    /// The request ended: gives back its estimate (in the windows it was taken from) and takes
    /// what the caller is billed for, from the tenant's limits and budgets and its key's.
    /// Failed attempts cost the caller nothing.
    pub fn settle(&self, counters: &dyn Counters, admission: Admission, tokens: u64, usd: f64, now: Time) {
        let usd = if usd.is_finite() && usd > 0.0 { usd } else { 0.0 };
        if let Some(slot) = self.tenants.get(usize::from(admission.tenant.0)) {
            self.leave(&slot.in_flight, slot.gauge);
            self.give_back(counters, &slot.limits, &admission, tokens, usd, now);
        }
        if let Some(key) = &admission.key {
            self.leave(&key.in_flight, key.gauge);
            self.give_back(counters, &key.limits, &admission, tokens, usd, now);
        }
    }

    fn give_back(
        &self,
        counters: &dyn Counters,
        limits: &Limits,
        admission: &Admission,
        tokens: u64,
        usd: f64,
        now: Time,
    ) {
        // One adjustment where one will do: a give-back and a charge made apart would let an
        // admission in between see the one without the other.
        if let Some((id, _)) = limits.tpm {
            counters.adjust(id, f64::from(admission.estimate.tokens) - tokens as f64, now);
        }
        for (budget, period) in [(limits.daily, Period::Day), (limits.monthly, Period::Month)] {
            let Some((id, _)) = budget else { continue };
            let same_window =
                window_of(period, self.calendar.unix_ms(admission.at)) == window_of(period, self.calendar.unix_ms(now));
            if same_window {
                self.budgets.adjust(id, admission.estimate.usd - usd, now);
            } else {
                self.budgets.adjust(id, admission.estimate.usd, admission.at);
                self.budgets.adjust(id, -usd, now);
            }
        }
    }

    /// Counts spend recorded before this process started (from the ledger) against a tenant's
    /// budget windows: `today_usd` against the day's, `month_usd` against the month's.
    pub fn preload(&self, tenant: TenantId, today_usd: f64, month_usd: f64, now: Time) {
        let Some(slot) = self.tenants.get(usize::from(tenant.0)) else { return };
        self.preload_limits(&slot.limits, today_usd, month_usd, now);
    }

    fn preload_limits(&self, limits: &Limits, today_usd: f64, month_usd: f64, now: Time) {
        for (budget, usd) in [(limits.daily, today_usd), (limits.monthly, month_usd)] {
            if let Some((id, _)) = budget
                && usd.is_finite()
                && usd > 0.0
            {
                self.budgets.preload(id, usd, now);
            }
        }
    }

    /// Dollars left in the tenant's budget for `period` now, if it has one (and the budget
    /// store can tell).
    pub fn budget_left(&self, tenant: TenantId, period: Period, now: Time) -> Option<f64> {
        let slot = self.tenants.get(usize::from(tenant.0))?;
        let (id, _) = match period {
            Period::Day => slot.limits.daily?,
            Period::Month => slot.limits.monthly?,
        };
        self.budgets.remaining(id, now)
    }

    /// Requests of the tenant in progress (on this replica).
    pub fn in_flight(&self, tenant: TenantId) -> u32 {
        self.tenants.get(usize::from(tenant.0)).map_or(0, |s| s.in_flight.load(Ordering::Acquire))
    }

    /// The tenant's gauge in the shared signals, when its concurrency limit is counted there.
    pub fn gauge(&self, tenant: TenantId) -> Option<GaugeId> {
        self.tenants.get(usize::from(tenant.0)).and_then(|s| s.gauge)
    }

    /// Takes a place among the requests in progress, within `limit`: this replica's alone, or
    /// with `gauge` the cluster's (the others' as last heard), refused when the store fails
    /// closed or this replica has begun its cap of unconfirmed requests.
    fn enter(&self, in_flight: &AtomicU32, limit: Option<u32>, gauge: Option<GaugeId>) -> Result<(), Refusal> {
        let (Some(limit), Some(gauge), Some(signals)) = (limit, gauge, &self.signals) else {
            return enter(in_flight, limit);
        };
        let others = signals.gauge_cluster(gauge, limit).others().ok_or(Refusal::Concurrency { limit })?;
        let room = limit.saturating_sub(others);
        enter(in_flight, Some(room)).map_err(|_| Refusal::Concurrency { limit })?;
        signals.gauge_began(gauge);
        Ok(())
    }

    fn leave(&self, in_flight: &AtomicU32, gauge: Option<GaugeId>) {
        leave(in_flight);
        if let (Some(gauge), Some(signals)) = (gauge, &self.signals) {
            signals.gauge_ended(gauge);
        }
    }
}

/// Takes a place among the requests in progress, within `limit`.
fn enter(in_flight: &AtomicU32, limit: Option<u32>) -> Result<(), Refusal> {
    match limit {
        Some(limit) => in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < limit).then_some(n + 1))
            .map(|_| ())
            .map_err(|_| Refusal::Concurrency { limit }),
        None => {
            in_flight.fetch_add(1, Ordering::AcqRel);
            Ok(())
        }
    }
}

/// Gives a place back; never below zero, whatever the caller of settle does.
fn leave(in_flight: &AtomicU32) {
    let _ = in_flight.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
}

#[cfg(test)]
mod tests;
