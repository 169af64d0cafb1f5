//! Token buckets for a deployment's requests-per-minute and tokens-per-minute limits.
//!
//! A bucket holds up to one minute's allowance and refills continuously. Reservations are made
//! with an estimate when an attempt starts and corrected with the real figure when it ends, so
//! the level may go below zero; it then blocks until refilled.

use crate::time::Time;

#[derive(Clone, Copy, Debug)]
pub struct Bucket {
    per_minute: f64,
    level: f64,
    stamp: Time,
}

impl Bucket {
    pub fn new(per_minute: u64, now: Time) -> Bucket {
        Bucket { per_minute: per_minute as f64, level: per_minute as f64, stamp: now }
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

    pub fn take(&mut self, amount: f64, now: Time) {
        self.adjust(-amount, now);
    }

    /// Gives back (or, when negative, takes more of) the difference between estimate and actual.
    /// The level never goes below minus one minute's allowance, whatever the figures say.
    pub fn adjust(&mut self, delta: f64, now: Time) {
        self.refill(now);
        if delta.is_finite() {
            self.level = (self.level + delta).clamp(-self.per_minute, self.per_minute);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn bucket_blocks_when_spent_and_refills_per_minute() {
        let t = Time::ZERO;
        let mut b = Bucket::new(60, t);
        for _ in 0..60 {
            assert!(b.has_room(1.0, t));
            b.take(1.0, t);
        }
        assert!(!b.has_room(1.0, t));
        assert!(b.has_room(1.0, t + Duration::from_secs(1)));
        b.adjust(-10.0, t + Duration::from_secs(1));
        assert!(!b.has_room(1.0, t + Duration::from_secs(5)));
        assert!(b.has_room(1.0, t + Duration::from_secs(11)));
    }
}
