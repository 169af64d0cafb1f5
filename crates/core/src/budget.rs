//! The retry budget: retries (failover attempts included) may add about `ratio` of the request
//! load plus a small floor per second, so that failover never turns into a retry storm.
//!
//! Counts live in a ring of time slots covering the window; time is passed in.

use crate::config::RetryBudgetSettings;
use crate::time::Time;

const SLOTS: usize = 10;

#[derive(Clone, Debug)]
pub struct RetryBudget {
    settings: RetryBudgetSettings,
    slot_us: u64,
    /// (slot number, requests, retries) per ring position.
    slots: [(u64, u32, u32); SLOTS],
}

impl RetryBudget {
    pub fn new(settings: RetryBudgetSettings) -> RetryBudget {
        let slot_us = (settings.window.as_micros() as u64 / SLOTS as u64).max(1);
        RetryBudget { settings, slot_us, slots: [(u64::MAX, 0, 0); SLOTS] }
    }

    fn slot(&mut self, now: Time) -> &mut (u64, u32, u32) {
        let n = now.as_micros() / self.slot_us;
        let entry = &mut self.slots[(n % SLOTS as u64) as usize];
        if entry.0 != n {
            *entry = (n, 0, 0);
        }
        entry
    }

    fn totals(&self, now: Time) -> (u64, u64) {
        let n = now.as_micros() / self.slot_us;
        let oldest = n.saturating_sub(SLOTS as u64 - 1);
        self.slots
            .iter()
            .filter(|(s, _, _)| *s != u64::MAX && *s >= oldest && *s <= n)
            .fold((0, 0), |(r, t), (_, req, ret)| (r + u64::from(*req), t + u64::from(*ret)))
    }

    /// A new request arrived.
    pub fn deposit(&mut self, now: Time) {
        let s = self.slot(now);
        s.1 = s.1.saturating_add(1);
    }

    /// Retries still allowed now.
    pub fn remaining(&self, now: Time) -> f64 {
        let (requests, retries) = self.totals(now);
        let window_s = self.settings.window.as_secs_f64();
        let allowed = requests as f64 * self.settings.ratio + self.settings.min_per_second * window_s;
        (allowed - retries as f64).max(0.0)
    }

    /// Takes one retry from the budget; false (and nothing taken) when it is spent.
    pub fn try_withdraw(&mut self, now: Time) -> bool {
        if self.remaining(now) < 1.0 {
            return false;
        }
        let s = self.slot(now);
        s.2 = s.2.saturating_add(1);
        true
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn retries_are_bounded_by_ratio_plus_floor_and_refill_over_time() {
        let settings = RetryBudgetSettings { ratio: 0.2, min_per_second: 1.0, window: Duration::from_secs(10) };
        let mut b = RetryBudget::new(settings);
        let t = Time::from_millis(5_000);
        for _ in 0..100 {
            b.deposit(t);
        }
        // 100 * 0.2 + 1 * 10 = 30 retries.
        let granted = (0..1000).filter(|_| b.try_withdraw(t)).count();
        assert_eq!(granted, 30);
        // Once the window has passed, only the floor is left.
        let later = t + Duration::from_secs(11);
        let granted = (0..1000).filter(|_| b.try_withdraw(later)).count();
        assert_eq!(granted, 10);
    }
}
