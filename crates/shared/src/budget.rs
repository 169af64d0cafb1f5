//! One replica's view of one shared budget: pure arithmetic, no IO, windows passed in.
//!
//! A budget is counted per fixed window (a UTC day or month, numbered as the core's
//! `window_of` does). The view keeps, for the current window and the one before it (a
//! settlement gives back a reservation in the window it was made in), what Redis last answered
//! was used there and the running total of what this replica used there. Older windows are
//! dropped: their budgets no longer matter. As with allowances, the sync pushes totals, not
//! deltas, so a push whose answer was lost is never counted twice (see `window.lua`).

/// One budget as this replica sees it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BudgetView {
    usd: f64,
    /// Whether a caller has used the view. Until then its window is the sync thread's guess,
    /// which a caller's first window replaces, whichever way it lies.
    anchored: bool,
    current: Option<Entry>,
    previous: Option<Entry>,
}

/// One window of a budget.
#[derive(Clone, Copy, Debug)]
struct Entry {
    window: i64,
    /// Dollars used in the window, as Redis last answered (zero before any answer).
    remote: f64,
    /// Dollars this replica used in the window, summed (give-backs subtract).
    total: f64,
    /// `total` as of the push in flight (or the last one).
    sent: f64,
    /// `sent` of the last push Redis answered.
    acked: f64,
    /// Spend counted before this start, to push as the window's floor (until answered).
    floor: Option<f64>,
    /// `floor` as of the push in flight.
    floor_sent: Option<f64>,
    /// What the floor adds here until an answer reflects it.
    lift: f64,
}

// === impl BudgetView ===

impl BudgetView {
    /// Nothing used, in no window yet.
    pub(crate) fn new(usd: f64) -> BudgetView {
        BudgetView { usd, anchored: false, current: None, previous: None }
    }

    pub(crate) fn usd(&self) -> f64 {
        self.usd
    }

    /// A new size (a key's budget changed); what was used stays.
    pub(crate) fn set_usd(&mut self, usd: f64) {
        self.usd = usd;
    }

    /// A caller is in `window`. Returns whether that moved the view to a new window (or
    /// anchored it), so that the sync thread should read it at once.
    pub(crate) fn touch(&mut self, window: i64) -> bool {
        if self.anchored {
            return self.roll(window);
        }
        self.anchored = true;
        if self.current.is_none_or(|c| c.window != window) {
            self.current = Some(Entry::new(window));
            self.previous = None;
        }
        true
    }

    /// The sync thread guesses that callers are in `window`: the latest window a caller moved
    /// into (`from_callers`), or the system clock's before any call. Once a caller has used the
    /// view it follows only the callers' guesses, and only forward: a clock guess taken before
    /// the first call and applied after it must not move the view off the callers' calendar.
    pub(crate) fn follow(&mut self, window: i64, from_callers: bool) {
        if self.anchored {
            if from_callers {
                self.roll(window);
            }
        } else if self.current.is_none_or(|c| c.window != window) {
            self.current = Some(Entry::new(window));
            self.previous = None;
        }
    }

    /// Moves to `window` if it is later than the current one; the current one stays as the
    /// previous if it is the window just before.
    fn roll(&mut self, window: i64) -> bool {
        match self.current {
            Some(c) if c.window >= window => false,
            Some(c) => {
                self.previous = (c.window == window - 1).then_some(c);
                self.current = Some(Entry::new(window));
                true
            }
            None => {
                self.current = Some(Entry::new(window));
                true
            }
        }
    }

    fn entry(&self, window: i64) -> Option<&Entry> {
        [self.current.as_ref(), self.previous.as_ref()].into_iter().flatten().find(|e| e.window == window)
    }

    fn entry_mut(&mut self, window: i64) -> Option<&mut Entry> {
        [self.current.as_mut(), self.previous.as_mut()].into_iter().flatten().find(|e| e.window == window)
    }

    /// Dollars used in `window` as this replica sees it: Redis's last answer plus what it used
    /// since the push that answer reflects. Zero for a window it does not keep.
    pub(crate) fn used(&self, window: i64) -> f64 {
        self.entry(window).map_or(0.0, Entry::used)
    }

    /// Whether `usd` more fits in `window`'s budget, by this view alone.
    pub(crate) fn has_room(&self, window: i64, usd: f64) -> bool {
        self.used(window) + usd <= self.usd
    }

    /// Whether this replica may take `usd` more in `window` before Redis has seen what it took
    /// there already: its use since the last answered push stays within `cap`, or is nothing
    /// yet (so that an amount larger than `cap` still gets through, alone).
    pub(crate) fn within_unconfirmed(&self, window: i64, usd: f64, cap: f64) -> bool {
        let unconfirmed = self.unconfirmed(window);
        unconfirmed <= 0.0 || unconfirmed + usd <= cap
    }

    /// Net use in `window` made here that no answer from Redis reflects yet.
    pub(crate) fn unconfirmed(&self, window: i64) -> f64 {
        self.entry(window).map_or(0.0, |e| e.total - e.acked)
    }

    /// Takes `-delta` dollars (or gives `delta` back) in `window`, here at once and in the
    /// total the next push carries. A change to a window the view does not keep is dropped.
    pub(crate) fn adjust(&mut self, window: i64, delta: f64) {
        if !delta.is_finite() {
            return;
        }
        if let Some(e) = self.entry_mut(window) {
            e.total -= delta;
        }
    }

    /// Spend counted elsewhere before this start (the ledger's) makes `window`'s use at least
    /// `usd`: here at once, and in Redis with the next push, as a floor under what every
    /// replica pushed by then (so replicas that each count the same spend count it once).
    pub(crate) fn preload(&mut self, window: i64, usd: f64) {
        if !usd.is_finite() || usd <= 0.0 {
            return;
        }
        if let Some(e) = self.entry_mut(window) {
            e.floor = Some(e.floor.map_or(usd, |f| f.max(usd)));
            e.lift = e.lift.max(usd - (e.remote + e.total - e.acked));
        }
    }

    /// The windows the next push carries: the current one always (to read it), the previous
    /// one while it holds something Redis has not acknowledged (or a push of it went
    /// unanswered: Redis may hold that push's total, not the acknowledged one).
    pub(crate) fn pushes(&self) -> impl Iterator<Item = i64> + use<> {
        let current = self.current.map(|e| e.window);
        let pending = |e: &Entry| e.total != e.acked || e.sent != e.acked || e.floor.is_some();
        let previous = self.previous.filter(pending).map(|e| e.window);
        current.into_iter().chain(previous)
    }

    /// What the next push carries for `window`: this replica's total there and the floor to
    /// apply, if any.
    pub(crate) fn take(&mut self, window: i64) -> Option<(f64, Option<f64>)> {
        let e = self.entry_mut(window)?;
        e.sent = e.total;
        e.floor_sent = e.floor;
        Some((e.total, e.floor))
    }

    /// Redis answered the last push for `window` with `used`, the window's use after it. Uses
    /// since [`BudgetView::take`] are not in it yet and are kept on top.
    pub(crate) fn answer(&mut self, window: i64, used: f64) {
        if !used.is_finite() {
            return;
        }
        let Some(e) = self.entry_mut(window) else { return };
        e.remote = used;
        e.acked = e.sent;
        if e.floor_sent.is_some() && e.floor == e.floor_sent {
            e.floor = None;
            e.lift = 0.0;
        }
        e.floor_sent = None;
    }
}

// === impl Entry ===

impl Entry {
    fn new(window: i64) -> Entry {
        Entry { window, remote: 0.0, total: 0.0, sent: 0.0, acked: 0.0, floor: None, floor_sent: None, lift: 0.0 }
    }

    fn used(&self) -> f64 {
        (self.remote + (self.total - self.acked) + self.lift).max(0.0)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use switchyard_core::Time;
    use switchyard_core::counters::{Counters, LimitId};
    use switchyard_core::tenancy::{BudgetSpec, Calendar, LocalWindows, Period};

    use super::*;

    const DAY: i64 = 20_000;

    #[test]
    fn a_push_and_its_answer_keep_what_came_since() {
        let mut v = BudgetView::new(10.0);
        assert!(v.touch(DAY));
        v.adjust(DAY, -1.0);
        assert_eq!(v.pushes().collect::<Vec<_>>(), [DAY]);
        assert_eq!(v.take(DAY), Some((1.0, None)));
        // Made while the push was in flight: not in Redis's answer.
        v.adjust(DAY, -0.25);
        assert!((v.unconfirmed(DAY) - 1.25).abs() < 1e-12);
        // Redis saw this replica's 1 and another's 3.
        v.answer(DAY, 4.0);
        assert!((v.unconfirmed(DAY) - 0.25).abs() < 1e-12);
        assert!((v.used(DAY) - 4.25).abs() < 1e-12);
        assert!(v.has_room(DAY, 5.75) && !v.has_room(DAY, 5.76));
        assert!(v.within_unconfirmed(DAY, 0.75, 1.0) && !v.within_unconfirmed(DAY, 0.76, 1.0));
        // A give-back makes nothing unconfirmed: anything passes the cap.
        v.adjust(DAY, 0.5);
        assert!(v.within_unconfirmed(DAY, 5.0, 1.0));
    }

    #[test]
    fn windows_roll_forward_keep_the_previous_one_and_drop_older() {
        let mut v = BudgetView::new(10.0);
        v.touch(DAY);
        v.adjust(DAY, -2.0);
        v.take(DAY);
        v.answer(DAY, 2.0);
        assert!(!v.touch(DAY), "same window: nothing moves");
        assert!(v.touch(DAY + 1), "midnight");
        assert_eq!(v.used(DAY + 1), 0.0);
        assert_eq!(v.used(DAY), 2.0, "yesterday is kept");
        assert_eq!(v.pushes().collect::<Vec<_>>(), [DAY + 1], "yesterday holds nothing unpushed");
        // A settlement gives back yesterday's reservation in yesterday's window, not today's.
        v.adjust(DAY + 1, -3.0);
        v.adjust(DAY, 2.0);
        assert_eq!(v.used(DAY), 0.0);
        assert_eq!(v.used(DAY + 1), 3.0);
        assert_eq!(v.pushes().collect::<Vec<_>>(), [DAY + 1, DAY]);
        // A caller a moment behind, still in yesterday, does not move the view back.
        assert!(!v.touch(DAY));
        assert!(v.has_room(DAY, 10.0));
        // Two windows on, both go; a change to a window no longer kept is dropped.
        assert!(v.touch(DAY + 3));
        v.adjust(DAY + 1, 3.0);
        v.adjust(DAY, -100.0);
        assert_eq!((v.used(DAY), v.used(DAY + 1), v.used(DAY + 3)), (0.0, 0.0, 0.0));
        assert_eq!(v.pushes().collect::<Vec<_>>(), [DAY + 3]);
    }

    #[test]
    fn a_previous_window_is_pushed_until_an_answer_covers_its_last_push() {
        let mut v = BudgetView::new(10.0);
        v.touch(DAY);
        v.adjust(DAY, -5.0);
        v.take(DAY);
        v.answer(DAY, 5.0);
        v.touch(DAY + 1);
        v.adjust(DAY, 1.0);
        assert_eq!(v.take(DAY), Some((4.0, None)));
        // That push went unanswered (Redis may have run it), and a late reservation brought
        // the total back to what was acknowledged: it is pushed again all the same.
        v.adjust(DAY, -1.0);
        assert_eq!(v.pushes().collect::<Vec<_>>(), [DAY + 1, DAY]);
        assert_eq!(v.take(DAY), Some((5.0, None)));
        v.answer(DAY, 5.0);
        assert_eq!(v.pushes().collect::<Vec<_>>(), [DAY + 1]);
    }

    #[test]
    fn the_sync_threads_guess_gives_way_to_the_first_callers_window() {
        let mut v = BudgetView::new(10.0);
        v.follow(DAY + 7, false);
        v.take(DAY + 7);
        v.answer(DAY + 7, 9.0);
        assert_eq!(v.used(DAY + 7), 9.0);
        // The callers' calendar is a week behind the system clock: their window wins.
        assert!(v.touch(DAY));
        assert_eq!(v.pushes().collect::<Vec<_>>(), [DAY]);
        v.answer(DAY + 7, 9.0);
        assert_eq!(v.used(DAY), 0.0);
        // A clock guess taken before that call, applied after it, does not move the view.
        v.follow(DAY + 7, false);
        assert_eq!(v.pushes().collect::<Vec<_>>(), [DAY]);
        // From then on the callers' guess only moves the view forward.
        v.follow(DAY - 1, true);
        assert_eq!(v.pushes().collect::<Vec<_>>(), [DAY]);
        v.follow(DAY + 1, true);
        assert_eq!(v.pushes().collect::<Vec<_>>(), [DAY + 1]);
    }

    #[test]
    fn a_preload_is_a_floor_until_redis_answers_with_it() {
        let mut v = BudgetView::new(10.0);
        v.touch(DAY);
        v.take(DAY);
        v.answer(DAY, 1.0);
        v.preload(DAY, 4.0);
        assert_eq!(v.used(DAY), 4.0);
        v.adjust(DAY, -0.5);
        assert_eq!(v.used(DAY), 4.5, "use on top of the floor counts");
        assert_eq!(v.take(DAY), Some((0.5, Some(4.0))));
        // Redis lifted its 1.5 to the floor, plus the use pushed since: 4.5.
        v.answer(DAY, 4.5);
        assert_eq!(v.used(DAY), 4.5);
        assert_eq!(v.take(DAY), Some((0.5, None)), "the floor is pushed once answered");
        // A floor below what is known changes nothing.
        v.preload(DAY, 2.0);
        assert_eq!(v.used(DAY), 4.5);
    }

    #[test]
    fn nonsense_is_ignored() {
        let mut v = BudgetView::new(10.0);
        v.touch(DAY);
        for x in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            v.adjust(DAY, x);
            v.preload(DAY, x);
            v.answer(DAY, x);
        }
        assert_eq!(v.used(DAY), 0.0);
        assert!(!v.has_room(DAY, f64::NAN));
        assert_eq!(v.take(DAY), Some((0.0, None)));
    }

    proptest! {
        /// With no sync at all (Redis away, fail-open), the view's current window is exactly the
        /// core's `LocalWindows`, for admissions settled in the window they were made in or
        /// the next.
        #[test]
        fn without_syncs_the_view_is_the_cores_local_windows(
            steps in prop::collection::vec((0u64..4 * 3_600_000, 0.0f64..2.0, 0.0f64..3.0, any::<bool>()), 1..60),
        ) {
            let calendar = Calendar { unix_ms_at_zero: 1_750_000_000_000 };
            let spec = BudgetSpec { name: "t/daily".to_owned(), period: Period::Day, usd: 25.0 };
            let local = LocalWindows::new(std::slice::from_ref(&spec), calendar);
            let id = LimitId(0);
            let mut v = BudgetView::new(spec.usd);
            let window = |t: Time| switchyard_core::tenancy::window_of(Period::Day, calendar.unix_ms(t));
            let mut now = Time::ZERO;
            let mut open: Vec<(Time, f64)> = Vec::new();
            for (ms, estimate, real, settle) in steps {
                now = now + std::time::Duration::from_millis(ms);
                v.touch(window(now));
                if settle && let Some((at, estimate)) = open.pop() {
                    for (delta, t) in [(estimate, at), (-real, now)] {
                        local.adjust(id, delta, t);
                        v.adjust(window(t), delta);
                    }
                } else if local.has_room(id, estimate, now) {
                    prop_assert!(v.has_room(window(now), estimate));
                    local.adjust(id, -estimate, now);
                    v.adjust(window(now), -estimate);
                    open.push((now, estimate));
                } else {
                    prop_assert!(!v.has_room(window(now), estimate));
                }
                prop_assert!((v.used(window(now)) - local.used(id, now)).abs() < 1e-9);
            }
        }
    }
}
