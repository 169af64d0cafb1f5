//! [`Flight`]: one count of what is in progress on this replica and shared through Redis under a
//! lease (a deployment's attempts in flight, a tenant's or key's requests in progress): what
//! began here, what Redis confirmed, and the other replicas' sum as it last answered. What
//! `RedisSignals` keeps per deployment and per gauge alike.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use switchyard_core::signals::Cluster;

use crate::settings::{Policy, Status};

pub(crate) struct Flight {
    /// This replica's count now, and what it ever began.
    in_flight: AtomicU32,
    begun: AtomicU64,
    /// `begun` as of the count Redis last confirmed, and that count.
    acked: AtomicU64,
    confirmed: AtomicU32,
    /// The other replicas' sum, as Redis last answered.
    others: AtomicU32,
    /// Unconfirmed beginnings that ask for a round at once.
    wake_at: AtomicU32,
}

impl Flight {
    pub(crate) fn new(wake_at: u32) -> Flight {
        Flight {
            in_flight: AtomicU32::new(0),
            begun: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            confirmed: AtomicU32::new(0),
            others: AtomicU32::new(0),
            wake_at: AtomicU32::new(wake_at),
        }
    }

    /// One began here: whether as many are now unconfirmed as should ask for a round at once.
    pub(crate) fn began(&self) -> bool {
        // In flight first: a round reads `begun` before `in_flight` (`for_round`), so one it
        // counts as begun is in the count it publishes.
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let begun = self.begun.fetch_add(1, Ordering::SeqCst) + 1;
        begun.saturating_sub(self.acked.load(Ordering::SeqCst)) >= u64::from(self.wake_at.load(Ordering::Relaxed))
    }

    /// One here ended (never below zero).
    pub(crate) fn ended(&self) {
        let _ = self.in_flight.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
    }

    /// What a round sends: `begun`, then the count (see `began`).
    pub(crate) fn for_round(&self) -> (u64, u32) {
        let begun = self.begun.load(Ordering::SeqCst);
        (begun, self.in_flight.load(Ordering::SeqCst))
    }

    /// Takes in Redis's answer to a round that sent `(begun, sent)`: the others' sum. The
    /// counts before the acknowledgement, so that a reader that sees the new `acked` (little
    /// unconfirmed) sees the counts it goes with; one that sees the old one is only stricter.
    pub(crate) fn answer(&self, (begun, sent): (u64, u32), others: u32) {
        self.others.store(others, Ordering::Release);
        self.confirmed.store(sent, Ordering::Release);
        self.acked.fetch_max(begun, Ordering::SeqCst);
    }

    /// The other replicas' sum, as Redis last answered.
    pub(crate) fn others(&self) -> u32 {
        self.others.load(Ordering::Acquire)
    }

    /// How to count it now, the link being in `status` under `policy`: alone or closed while
    /// Redis does not answer; else shared, with the cap `cap(others, confirmed)` gives, and
    /// `wake_at` unconfirmed beginnings asking for a round.
    pub(crate) fn cluster(
        &self,
        status: Status,
        policy: Policy,
        wake_at: u32,
        cap: impl FnOnce(u32, u32) -> u32,
    ) -> Cluster {
        match (status, policy) {
            (Status::Connected, _) => {
                // The acknowledgement first (see `answer`).
                let acked = self.acked.load(Ordering::SeqCst);
                let others = self.others.load(Ordering::Acquire);
                let cap = cap(others, self.confirmed.load(Ordering::Acquire));
                if self.wake_at.load(Ordering::Relaxed) != wake_at {
                    self.wake_at.store(wake_at, Ordering::Relaxed);
                }
                let unconfirmed = self.begun.load(Ordering::SeqCst).saturating_sub(acked);
                Cluster::Shared { others, unconfirmed: u32::try_from(unconfirmed).unwrap_or(u32::MAX), cap }
            }
            (Status::Connecting | Status::Disconnected, Policy::FailOpen) => Cluster::Alone,
            (Status::Connecting | Status::Disconnected, Policy::FailClosed) => Cluster::Closed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_count_never_goes_below_zero_and_an_answer_confirms_what_was_sent() {
        let f = Flight::new(2);
        f.ended();
        assert!(!f.began(), "one unconfirmed, below two");
        assert!(f.began(), "two unconfirmed ask for a round");
        let sent = f.for_round();
        assert_eq!(sent, (2, 2));
        f.answer(sent, 5);
        let cluster = f.cluster(Status::Connected, Policy::FailOpen, 2, |others, confirmed| others + confirmed);
        assert_eq!(cluster, Cluster::Shared { others: 5, unconfirmed: 0, cap: 7 });
        assert_eq!(f.cluster(Status::Disconnected, Policy::FailClosed, 2, |_, _| 1), Cluster::Closed);
        assert_eq!(f.cluster(Status::Connecting, Policy::FailOpen, 2, |_, _| 1), Cluster::Alone);
    }
}
