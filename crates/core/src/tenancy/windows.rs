//! [`LocalWindows`]: budget windows kept by this process, the in-process store of tenants' and
//! keys' dollars per UTC day and month (`switchyard-shared`'s `RedisWindows` is the shared one).

use std::collections::HashMap;
use std::sync::Mutex;

use super::{BudgetSpec, Calendar, Period, window_of};
use crate::counters::{Counters, Grow, LimitId, Padded, add_named, index_id};
use crate::time::Time;

/// One budget kept in memory: its period, and under its lock (current window, dollars used
/// there, the budget's dollars).
type Window = (Period, Padded<(i64, f64, f64)>);

/// Budget windows kept by this process: dollars used in the current window of each budget.
#[derive(Debug)]
pub struct LocalWindows {
    windows: Grow<Window>,
    /// Budgets added at run time, by name.
    added: Mutex<HashMap<String, LimitId>>,
    calendar: Calendar,
}

impl LocalWindows {
    pub fn new(specs: &[BudgetSpec], calendar: Calendar) -> LocalWindows {
        let windows = Grow::new(specs.iter().map(|s| (s.period, Padded::new((i64::MIN, 0.0, s.usd)))));
        LocalWindows { windows, added: Mutex::default(), calendar }
    }

    /// Dollars used in the budget's current window.
    pub fn used(&self, budget: LimitId, now: Time) -> f64 {
        self.windows.get(budget.0 as usize).map_or(0.0, |(period, cell)| {
            let (window, used, _) = *cell.lock();
            if window == window_of(*period, self.calendar.unix_ms(now)) { used } else { 0.0 }
        })
    }

    fn usd(&self, budget: LimitId) -> Option<f64> {
        self.windows.get(budget.0 as usize).map(|(_, cell)| cell.lock().2)
    }
}

impl Counters for LocalWindows {
    fn has_room(&self, budget: LimitId, usd: f64, now: Time) -> bool {
        self.usd(budget).is_none_or(|limit| self.used(budget, now) + usd <= limit)
    }

    fn remaining(&self, budget: LimitId, now: Time) -> Option<f64> {
        Some(self.usd(budget)? - self.used(budget, now))
    }

    /// Taken (negative) or given back in the window `at` falls in; a change to a window that
    /// has ended is dropped (that window's budget no longer matters).
    fn adjust(&self, budget: LimitId, delta: f64, at: Time) {
        let Some((period, cell)) = self.windows.get(budget.0 as usize) else { return };
        if !delta.is_finite() {
            return;
        }
        let window = window_of(*period, self.calendar.unix_ms(at));
        let mut cell = cell.lock();
        if window > cell.0 {
            (cell.0, cell.1) = (window, 0.0);
        }
        if window == cell.0 {
            cell.1 = (cell.1 - delta).max(0.0);
        }
    }

    /// A budget made at run time (a key's), or the one of that name with `spec`'s dollars.
    fn add_budget(&self, spec: &BudgetSpec) -> Option<LimitId> {
        add_named(&self.added, &spec.name, |id| match id {
            Some(id) => {
                let (period, cell) = self.windows.get(id.0 as usize)?;
                // A name means one period (`…/daily_usd`); another would be another budget.
                (*period == spec.period).then(|| cell.lock().2 = spec.usd)?;
                Some(id)
            }
            None => self.windows.push((spec.period, Padded::new((i64::MIN, 0.0, spec.usd)))).and_then(index_id),
        })
    }
}
