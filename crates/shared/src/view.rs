//! One replica's view of one shared allowance: pure arithmetic, no IO, time passed in.
//!
//! The view is a token bucket, like [`switchyard_core::counters::Bucket`], whose level is reset
//! to Redis's answer at each sync (plus what this replica did since the push that answer
//! reflects). Between syncs it refills by the callers' clock and takes every local adjustment
//! at once, so [`View::has_room`] answers from memory. It also keeps the running total of every
//! adjustment made here: the sync pushes totals, not deltas, so that a push whose answer was
//! lost is never counted twice (see `bucket.lua`).

use std::sync::{Mutex, MutexGuard, PoisonError};

use switchyard_core::Time;

/// One allowance's (or budget's) view under its own lock, on its own cache line.
#[derive(Debug)]
#[repr(align(64))]
pub(crate) struct Slot<T>(Mutex<T>);

/// One allowance as this replica sees it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct View {
    per_minute: f64,
    /// What is left, as of `stamp`.
    level: f64,
    /// When `level` was last refilled, in the callers' time. `None` right after a sync
    /// answered: the first call stamps it, so the refill between Redis's reading and that
    /// call is not counted (a little less room, never more).
    stamp: Option<Time>,
    /// Every adjustment made here, summed, unclamped.
    total: f64,
    /// `total` as of the push in flight (or the last one).
    sent: f64,
    /// `sent` of the last push Redis answered.
    acked: f64,
}

// === impl Slot ===

impl<T> Slot<T> {
    pub(crate) fn new(view: T) -> Slot<T> {
        Slot(Mutex::new(view))
    }

    /// The view, locked; a panic elsewhere while it was held does not poison routing.
    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

// === impl View ===

impl View {
    /// A full bucket, as a new allowance starts in Redis too.
    pub(crate) fn new(per_minute: f64) -> View {
        let per_minute = if per_minute.is_finite() { per_minute.max(0.0) } else { 0.0 };
        View { per_minute, level: per_minute, stamp: None, total: 0.0, sent: 0.0, acked: 0.0 }
    }

    pub(crate) fn per_minute(&self) -> f64 {
        self.per_minute
    }

    /// A new size (a key's limit changed): what was used stays; the level is cut to the size,
    /// as Redis cuts the bucket at the next push.
    pub(crate) fn resize(&mut self, per_minute: f64) {
        if per_minute.is_finite() && per_minute >= 0.0 {
            self.per_minute = per_minute;
            self.level = self.level.clamp(-per_minute, per_minute);
        }
    }

    fn refill(&mut self, now: Time) {
        match self.stamp {
            None => self.stamp = Some(now),
            Some(stamp) if now > stamp => {
                let elapsed_min = now.saturating_since(stamp).as_secs_f64() / 60.0;
                self.level = (self.level + elapsed_min * self.per_minute).min(self.per_minute);
                self.stamp = Some(now);
            }
            Some(_) => {}
        }
    }

    /// What is left now (negative while overdrawn).
    pub(crate) fn level(&mut self, now: Time) -> f64 {
        self.refill(now);
        self.level
    }

    /// Whether `amount` fits now, by this view alone. As with the core's bucket, an amount
    /// larger than the whole allowance fits once the bucket is full.
    pub(crate) fn has_room(&mut self, amount: f64, now: Time) -> bool {
        self.level(now) >= amount.min(self.per_minute)
    }

    /// Whether this replica may take `amount` more before Redis has seen what it took
    /// already: its use since the last answered push stays within `cap`, or is nothing yet
    /// (so that an amount larger than `cap` still gets through, alone).
    pub(crate) fn within_unconfirmed(&self, amount: f64, cap: f64) -> bool {
        let unconfirmed = self.unconfirmed();
        unconfirmed <= 0.0 || unconfirmed + amount.min(self.per_minute) <= cap
    }

    /// Net use made here that no answer from Redis reflects yet.
    pub(crate) fn unconfirmed(&self) -> f64 {
        self.acked - self.total
    }

    /// Takes `-delta` (or gives `delta` back), here at once and in the total the next push
    /// carries. A delta beyond two minutes' worth moves a bucket no further than two minutes'
    /// worth does, so it is cut to that (which also keeps the total finite).
    pub(crate) fn adjust(&mut self, delta: f64, now: Time) {
        if !delta.is_finite() {
            return;
        }
        let delta = delta.clamp(-2.0 * self.per_minute, 2.0 * self.per_minute);
        self.refill(now);
        self.level = (self.level + delta).clamp(-self.per_minute, self.per_minute);
        self.total += delta;
    }

    /// What the next push carries: the last acknowledged total and the total now.
    pub(crate) fn take(&mut self) -> (f64, f64) {
        self.sent = self.total;
        (self.acked, self.total)
    }

    /// Redis answered the last push with `remote`, its level after that push. Adjustments made
    /// since [`View::take`] are not in it yet and are kept on top.
    pub(crate) fn answer(&mut self, remote: f64) {
        if !remote.is_finite() {
            return;
        }
        let since = self.total - self.sent;
        self.level = (remote.min(self.per_minute) + since).clamp(-self.per_minute, self.per_minute);
        self.stamp = None;
        self.acked = self.sent;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use proptest::prelude::*;
    use switchyard_core::counters::Bucket;

    use super::*;

    fn at(ms: u64) -> Time {
        Time::from_millis(ms)
    }

    #[test]
    fn refills_by_local_time_after_an_answer_and_keeps_what_came_since() {
        let mut v = View::new(6_000.0);
        v.adjust(-1_000.0, at(0));
        let (acked, total) = v.take();
        assert_eq!((acked, total), (0.0, -1_000.0));
        // Made while the push was in flight: not in Redis's answer.
        v.adjust(-200.0, at(5));
        assert!((v.unconfirmed() - 1_200.0).abs() < 1e-9);
        // Redis saw this replica's 1,000 and another's 2,000.
        v.answer(3_000.0);
        assert!((v.unconfirmed() - 200.0).abs() < 1e-9);
        // Stamped by the first call after the answer, then refilled by 100 a second.
        assert!((v.level(at(1_000)) - 2_800.0).abs() < 1e-9);
        assert!((v.level(at(2_000)) - 2_900.0).abs() < 1e-9);
        assert!(v.has_room(2_900.0, at(2_000)) && !v.has_room(2_901.0, at(2_000)));
    }

    #[test]
    fn unconfirmed_use_is_capped_but_never_blocks_a_lone_large_amount() {
        let mut v = View::new(1_000.0);
        assert!(v.within_unconfirmed(500.0, 100.0), "nothing unconfirmed: anything passes");
        v.adjust(-60.0, Time::ZERO);
        assert!(v.within_unconfirmed(40.0, 100.0));
        assert!(!v.within_unconfirmed(41.0, 100.0));
        v.adjust(60.0, Time::ZERO);
        assert!(v.within_unconfirmed(500.0, 100.0), "given back: nothing unconfirmed");
        v.adjust(-60.0, Time::ZERO);
        v.take();
        v.answer(940.0);
        assert!(v.within_unconfirmed(100.0, 100.0), "answered: confirmed");
    }

    #[test]
    fn nonsense_is_ignored_and_huge_deltas_are_cut() {
        let mut v = View::new(100.0);
        v.adjust(f64::NAN, Time::ZERO);
        v.adjust(f64::INFINITY, Time::ZERO);
        v.answer(f64::NAN);
        assert_eq!(v.level(Time::ZERO), 100.0);
        v.adjust(-1e300, Time::ZERO);
        assert_eq!(v.level(Time::ZERO), -100.0);
        assert_eq!(v.take(), (0.0, -200.0));
    }

    proptest! {
        /// With no sync at all (Redis away, fail-open), the view is exactly the core's bucket.
        #[test]
        fn without_syncs_the_view_is_the_core_bucket(
            per_minute in 1.0f64..100_000.0,
            steps in prop::collection::vec((0u64..5_000, -2.0f64..2.0), 1..60),
        ) {
            let mut v = View::new(per_minute);
            let mut b = Bucket::new(per_minute, Time::ZERO);
            let mut now = Time::ZERO;
            v.level(now);
            for (ms, share) in steps {
                now = now + Duration::from_millis(ms);
                let delta = share * per_minute;
                v.adjust(delta, now);
                b.adjust(delta, now);
                prop_assert!((v.level(now) - b.level(now)).abs() <= 1e-9 * per_minute);
            }
        }

        /// After an answer, the view is Redis's level plus what was done here since the push,
        /// refilled by local time from the first call on, within the bucket's bounds.
        #[test]
        fn after_an_answer_the_view_is_remote_plus_since(
            per_minute in 1.0f64..100_000.0,
            before in prop::collection::vec(-1.0f64..1.0, 0..10),
            since in prop::collection::vec(-1.0f64..1.0, 0..10),
            remote_share in -1.0f64..1.0,
            later_ms in 0u64..120_000,
        ) {
            let mut v = View::new(per_minute);
            for d in &before {
                v.adjust(d * per_minute, Time::ZERO);
            }
            let (_, total) = v.take();
            prop_assert_eq!(total, v.total);
            let mut sum_since = 0.0;
            for d in &since {
                v.adjust(d * per_minute, Time::ZERO);
                sum_since += (d * per_minute).clamp(-2.0 * per_minute, 2.0 * per_minute);
            }
            let remote = remote_share * per_minute;
            v.answer(remote);
            prop_assert!((v.unconfirmed() + sum_since).abs() <= 1e-6 * per_minute);
            let first = at(1_000);
            let expect = (remote + sum_since).clamp(-per_minute, per_minute);
            prop_assert!((v.level(first) - expect).abs() <= 1e-6 * per_minute);
            let later = first + Duration::from_millis(later_ms);
            let refilled = (expect + later_ms as f64 / 60_000.0 * per_minute).min(per_minute);
            prop_assert!((v.level(later) - refilled).abs() <= 1e-6 * per_minute);
        }
    }
}
