//! A tenant's own limits and budgets: a request is admitted against them (its estimate
//! reserved), and settled to what the caller is billed when it ends.
//!
//! Requests and tokens per minute are allowances in the router's [`Counters`] (so a shared
//! implementation shares them across replicas); dollars per UTC day and month are windows in a
//! second `Counters` over [`BudgetSpec`]s ([`LocalWindows`] keeps them in this process); requests
//! in progress are an atomic count per tenant. Admission checks every limit, then takes from each:
//! concurrent admissions may pass the same check, so a limit or budget can be overdrawn by the
//! estimates of requests admitted at the same instant (at most one per worker), and by what
//! requests in flight use beyond their estimates. Both are settled exactly afterwards.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

pub use crate::calendar::{
    Calendar, Period, civil_from_days, days_from_civil, format_utc, window_end, window_of, window_start,
};
use crate::config::{Config, Tenant, TenantId};
use crate::counters::{Counters, LimitId, Padded};
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

/// A request admitted for a tenant; give it back to [`Tenancy::settle`] exactly once.
#[derive(Debug)]
#[must_use = "an admission holds the tenant's reservations until settled"]
pub struct Admission {
    tenant: TenantId,
    estimate: Estimate,
    at: Time,
}

/// Why a request was not admitted, with when to try again.
#[derive(Clone, Debug, PartialEq)]
pub enum Refusal {
    RequestsPerMinute { limit: u32, retry_after: Duration },
    TokensPerMinute { limit: u64, retry_after: Duration },
    Concurrency { limit: u32 },
    Budget { period: Period, usd: f64, resets_at_unix_ms: i64 },
}

#[derive(Debug, Default)]
struct TenantSlot {
    in_flight: AtomicU32,
    rpm: Option<LimitId>,
    tpm: Option<LimitId>,
    daily: Option<LimitId>,
    monthly: Option<LimitId>,
}

/// Every tenant's admission state.
#[derive(Debug)]
pub struct Tenancy {
    tenants: Box<[TenantSlot]>,
    limits: Vec<(Option<u32>, Option<u64>, Option<u32>)>,
    budgets: std::sync::Arc<dyn Counters>,
    calendar: Calendar,
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
        budgets: std::sync::Arc<dyn Counters>,
        calendar: Calendar,
    ) -> Tenancy {
        let mut next_budget = 0u32;
        let mut budget_id = |set: bool| {
            set.then(|| {
                next_budget += 1;
                LimitId(next_budget - 1)
            })
        };
        let tenants = config
            .tenants
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let (rpm, tpm) = tenant_limits.get(i).copied().unwrap_or_default();
                let daily = budget_id(t.budgets.daily_usd.is_some());
                let monthly = budget_id(t.budgets.monthly_usd.is_some());
                TenantSlot { in_flight: AtomicU32::new(0), rpm, tpm, daily, monthly }
            })
            .collect();
        let limits = config.tenants.iter().map(|t| (t.limits.rpm, t.limits.tpm, t.limits.concurrency)).collect();
        Tenancy { tenants, limits, budgets, calendar }
    }

    pub fn calendar(&self) -> Calendar {
        self.calendar
    }

    /// Checks every limit and budget of the tenant and reserves the estimate against each.
    pub fn admit(
        &self,
        counters: &dyn Counters,
        tenant: &Tenant,
        estimate: Estimate,
        now: Time,
    ) -> Result<Admission, Refusal> {
        let i = usize::from(tenant.id.0);
        let admission = Admission { tenant: tenant.id, estimate, at: now };
        let (Some(slot), Some(&(rpm, tpm, concurrency))) = (self.tenants.get(i), self.limits.get(i)) else {
            return Ok(admission);
        };
        let room = |id: Option<LimitId>, amount: f64| id.is_none_or(|id| counters.has_room(id, amount, now));
        if let (Some(id), Some(limit)) = (slot.rpm, rpm)
            && !room(Some(id), 1.0)
        {
            return Err(Refusal::RequestsPerMinute { limit, retry_after: counters.wait_for(id, 1.0, now) });
        }
        let tokens = f64::from(estimate.tokens);
        if let (Some(id), Some(limit)) = (slot.tpm, tpm)
            && !room(Some(id), tokens)
        {
            return Err(Refusal::TokensPerMinute { limit, retry_after: counters.wait_for(id, tokens, now) });
        }
        for (id, period) in [(slot.daily, Period::Day), (slot.monthly, Period::Month)] {
            if let Some(id) = id
                && !self.budgets.has_room(id, estimate.usd, now)
            {
                let usd = self.budget_usd(tenant, period);
                let resets_at_unix_ms = window_end(period, self.calendar.unix_ms(now));
                return Err(Refusal::Budget { period, usd, resets_at_unix_ms });
            }
        }
        if let Some(limit) = concurrency {
            let took =
                slot.in_flight.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < limit).then_some(n + 1));
            if took.is_err() {
                return Err(Refusal::Concurrency { limit });
            }
        } else {
            slot.in_flight.fetch_add(1, Ordering::AcqRel);
        }
        let take = |id: Option<LimitId>, amount: f64| {
            if let Some(id) = id {
                counters.adjust(id, -amount, now);
            }
        };
        take(slot.rpm, 1.0);
        take(slot.tpm, tokens);
        for id in [slot.daily, slot.monthly].into_iter().flatten() {
            self.budgets.adjust(id, -estimate.usd, now);
        }
        Ok(admission)
    }

    /// The request ended: gives back its estimate (in the windows it was taken from) and takes
    /// what the caller is billed for. Failed attempts cost the caller nothing.
    pub fn settle(&self, counters: &dyn Counters, admission: Admission, tokens: u64, usd: f64, now: Time) {
        let Some(slot) = self.tenants.get(usize::from(admission.tenant.0)) else { return };
        // Never below zero, whatever the caller of settle does.
        let _ = slot.in_flight.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        // One adjustment where one will do: a give-back and a charge made apart would let an
        // admission in between see the one without the other.
        if let Some(id) = slot.tpm {
            counters.adjust(id, f64::from(admission.estimate.tokens) - tokens as f64, now);
        }
        let usd = if usd.is_finite() && usd > 0.0 { usd } else { 0.0 };
        for (id, period) in [(slot.daily, Period::Day), (slot.monthly, Period::Month)] {
            let Some(id) = id else { continue };
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
        for (id, usd) in [(slot.daily, today_usd), (slot.monthly, month_usd)] {
            if let Some(id) = id
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
        let id = match period {
            Period::Day => slot.daily?,
            Period::Month => slot.monthly?,
        };
        self.budgets.remaining(id, now)
    }

    /// Requests of the tenant in progress.
    pub fn in_flight(&self, tenant: TenantId) -> u32 {
        self.tenants.get(usize::from(tenant.0)).map_or(0, |s| s.in_flight.load(Ordering::Acquire))
    }

    fn budget_usd(&self, tenant: &Tenant, period: Period) -> f64 {
        match period {
            Period::Day => tenant.budgets.daily_usd.unwrap_or(0.0),
            Period::Month => tenant.budgets.monthly_usd.unwrap_or(0.0),
        }
    }
}

/// One budget kept in memory: its period, its dollars, and (current window, dollars used).
type Window = (Period, f64, Padded<(i64, f64)>);

/// Budget windows kept by this process: dollars used in the current window of each budget.
#[derive(Debug)]
pub struct LocalWindows {
    windows: Box<[Window]>,
    calendar: Calendar,
}

impl LocalWindows {
    pub fn new(specs: &[BudgetSpec], calendar: Calendar) -> LocalWindows {
        let windows = specs.iter().map(|s| (s.period, s.usd, Padded::new((i64::MIN, 0.0)))).collect();
        LocalWindows { windows, calendar }
    }

    /// Dollars used in the budget's current window.
    pub fn used(&self, budget: LimitId, now: Time) -> f64 {
        self.windows.get(budget.0 as usize).map_or(0.0, |(period, _, cell)| {
            let (window, used) = *cell.lock();
            if window == window_of(*period, self.calendar.unix_ms(now)) { used } else { 0.0 }
        })
    }
}

impl Counters for LocalWindows {
    fn has_room(&self, budget: LimitId, usd: f64, now: Time) -> bool {
        self.windows.get(budget.0 as usize).is_none_or(|(_, limit, _)| self.used(budget, now) + usd <= *limit)
    }

    fn remaining(&self, budget: LimitId, now: Time) -> Option<f64> {
        let (_, limit, _) = self.windows.get(budget.0 as usize)?;
        Some(limit - self.used(budget, now))
    }

    /// Taken (negative) or given back in the window `at` falls in; a change to a window that
    /// has ended is dropped (that window's budget no longer matters).
    fn adjust(&self, budget: LimitId, delta: f64, at: Time) {
        let Some((period, _, cell)) = self.windows.get(budget.0 as usize) else { return };
        if !delta.is_finite() {
            return;
        }
        let window = window_of(*period, self.calendar.unix_ms(at));
        let mut cell = cell.lock();
        if window > cell.0 {
            *cell = (window, 0.0);
        }
        if window == cell.0 {
            cell.1 = (cell.1 - delta).max(0.0);
        }
    }
}

#[cfg(test)]
mod tests;
