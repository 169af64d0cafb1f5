//! The retry budget: retries (failover attempts and hedges included) may add about `ratio` of
//! the request load plus a small floor per second, so that failover never turns into a retry
//! storm.
//!
//! Counts live in a ring of time slots covering the window, one atomic word per slot (slot
//! tag, requests, retries), so every worker deposits and withdraws without a lock. Time is
//! passed in.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::config::RetryBudgetSettings;
use crate::time::Time;

const SLOTS: usize = 10;
/// Per slot: requests and retries, 20 bits each (saturating), and a 24-bit tag of the slot
/// number (0 = never used) that tells a current slot from a stale one.
const COUNT_BITS: u32 = 20;
const COUNT_MAX: u64 = (1 << COUNT_BITS) - 1;
const TAG_CYCLE: u64 = (1 << 24) - 1;

#[derive(Debug)]
pub struct RetryBudget {
    settings: RetryBudgetSettings,
    slot_us: u64,
    slots: [AtomicU64; SLOTS],
}

fn tag(slot: u64) -> u64 {
    slot % TAG_CYCLE + 1
}

fn pack(tag: u64, requests: u64, retries: u64) -> u64 {
    (tag << (2 * COUNT_BITS)) | (requests.min(COUNT_MAX) << COUNT_BITS) | retries.min(COUNT_MAX)
}

/// (tag, requests, retries).
fn unpack(word: u64) -> (u64, u64, u64) {
    (word >> (2 * COUNT_BITS), (word >> COUNT_BITS) & COUNT_MAX, word & COUNT_MAX)
}

impl RetryBudget {
    pub fn new(settings: RetryBudgetSettings) -> RetryBudget {
        let slot_us = (settings.window.as_micros() as u64 / SLOTS as u64).max(1);
        RetryBudget { settings, slot_us, slots: Default::default() }
    }

    fn slot_number(&self, now: Time) -> u64 {
        now.as_micros() / self.slot_us
    }

    /// Requests and retries in the window's slots, leaving out slot `skip`.
    fn totals(&self, now: Time, skip: Option<u64>) -> (u64, u64) {
        let n = self.slot_number(now);
        (0..SLOTS as u64)
            .filter_map(|back| n.checked_sub(back))
            .filter(|s| Some(*s) != skip)
            .map(|s| (s, unpack(self.slots[(s % SLOTS as u64) as usize].load(Ordering::Acquire))))
            .filter(|(s, (t, _, _))| *t == tag(*s))
            .fold((0, 0), |(req, ret), (_, (_, r, t))| (req + r, ret + t))
    }

    fn allowed(&self, requests: u64, retries: u64) -> f64 {
        let window_s = self.settings.window.as_secs_f64();
        (requests as f64 * self.settings.ratio + self.settings.min_per_second * window_s - retries as f64).max(0.0)
    }

    /// Changes the current slot with `f(requests, retries)`; `None` from `f` changes nothing.
    fn update(&self, now: Time, f: impl Fn(u64, u64) -> Option<(u64, u64)>) -> bool {
        let n = self.slot_number(now);
        let t = tag(n);
        self.slots[(n % SLOTS as u64) as usize]
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |word| {
                let (old, requests, retries) = unpack(word);
                let (requests, retries) = if old == t { (requests, retries) } else { (0, 0) };
                f(requests, retries).map(|(req, ret)| pack(t, req, ret))
            })
            .is_ok()
    }

    /// A new request arrived.
    pub fn deposit(&self, now: Time) {
        self.update(now, |req, ret| Some((req + 1, ret)));
    }

    /// Retries still allowed now.
    pub fn remaining(&self, now: Time) -> f64 {
        let (requests, retries) = self.totals(now, None);
        self.allowed(requests, retries)
    }

    /// Takes one retry from the budget; false (and nothing taken) when it is spent. Past slots
    /// no longer change, and the check against the current one is atomic with the take, so
    /// concurrent withdrawals never overdraw the budget.
    pub fn try_withdraw(&self, now: Time) -> bool {
        let n = self.slot_number(now);
        let (past_requests, past_retries) = self.totals(now, Some(n));
        self.update(now, |req, ret| {
            (self.allowed(past_requests + req, past_retries + ret) >= 1.0).then_some((req, ret + 1))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn retries_are_bounded_by_ratio_plus_floor_and_refill_over_time() {
        let settings = RetryBudgetSettings { ratio: 0.2, min_per_second: 1.0, window: Duration::from_secs(10) };
        let b = RetryBudget::new(settings);
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

    #[test]
    fn concurrent_withdrawals_never_overdraw() {
        let settings = RetryBudgetSettings { ratio: 0.1, min_per_second: 0.0, window: Duration::from_secs(10) };
        let b = RetryBudget::new(settings);
        let t = Time::from_millis(2_500);
        for _ in 0..1_000 {
            b.deposit(t);
        }
        let granted = std::sync::atomic::AtomicU64::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..100 {
                        if b.try_withdraw(t) {
                            granted.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(granted.into_inner(), 100);
        assert_eq!(b.remaining(t), 0.0);
    }

    #[test]
    fn counts_saturate_and_a_slot_from_an_old_lap_is_stale() {
        let settings = RetryBudgetSettings { ratio: 1.0, min_per_second: 0.0, window: Duration::from_secs(10) };
        let b = RetryBudget::new(settings);
        let t = Time::from_millis(500);
        b.deposit(t);
        assert_eq!(b.remaining(t), 1.0);
        // Same ring position, ten slots later: last lap's count is not this one's.
        assert_eq!(b.remaining(t + Duration::from_secs(10)), 0.0);
        b.slots[0].store(pack(tag(0), COUNT_MAX, 0), Ordering::Relaxed);
        b.deposit(t);
        assert_eq!(unpack(b.slots[0].load(Ordering::Relaxed)), (1, COUNT_MAX, 0));
    }
}
