//! The gauges of [`RedisSignals`](crate::RedisSignals): tenants' and managed keys' requests in
//! progress, counted per replica under leases in Redis (`gauges.lua`) as deployments' attempts
//! in flight are, added by name at run time, answered from memory and synced in the signals'
//! rounds. With them, the replicas alive, so that a replica's unconfirmed admissions can be held
//! to its share of the room ([`gauge_cap`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use redis::Script;
use redis::aio::ConnectionManager;
use switchyard_core::counters::Grow;
use switchyard_core::signals::{Cluster, GaugeId, gauge_cap};

use crate::settings::{Policy, Status};
use crate::sync::{self, CHUNK};

/// The script each round runs over the gauges (see the file for its contract).
const GAUGES_LUA: &str = include_str!("gauges.lua");

/// Every gauge, and what Redis last said of the replicas alive.
pub(crate) struct Gauges {
    table: Grow<Gauge>,
    names: Mutex<HashMap<String, GaugeId>>,
    prefix: String,
    /// `{prefix}:replicas`: who is alive.
    replicas_key: String,
    /// Replicas alive (this one included), as Redis last answered; 1 before it did.
    replicas: AtomicU32,
    script: Script,
}

/// One gauge: its key, and this replica's count as deployments' entries keep theirs.
struct Gauge {
    /// `{prefix}:gauge:{name}`.
    key: String,
    /// Whether it is in use (a retired one, a revoked key's, is no longer synced).
    live: AtomicBool,
    in_flight: AtomicU32,
    begun: AtomicU64,
    /// `begun` as of the count Redis last confirmed, and that count.
    acked: AtomicU64,
    confirmed: AtomicU32,
    /// Other replicas' requests in progress, as Redis last answered.
    others: AtomicU32,
    /// The fixed unconfirmed cap of the limit last asked about (for waking the sync thread
    /// early).
    cap: AtomicU32,
}

impl Gauges {
    pub(crate) fn new(prefix: &str) -> Gauges {
        Gauges {
            table: Grow::new([]),
            names: Mutex::default(),
            prefix: prefix.to_owned(),
            replicas_key: format!("{prefix}:replicas"),
            replicas: AtomicU32::new(1),
            script: Script::new(GAUGES_LUA),
        }
    }

    /// Adds the gauge `name`, or finds it again (live again if it was retired). Returns
    /// whether it was added, to sync it at once.
    pub(crate) fn add(&self, name: &str) -> Option<(GaugeId, bool)> {
        let mut names = self.names.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(&id) = names.get(name) {
            self.get(id)?.live.store(true, Ordering::Release);
            return Some((id, false));
        }
        let gauge = Gauge {
            key: format!("{}:gauge:{name}", self.prefix),
            live: AtomicBool::new(true),
            in_flight: AtomicU32::new(0),
            begun: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            confirmed: AtomicU32::new(0),
            others: AtomicU32::new(0),
            cap: AtomicU32::new(1),
        };
        let id = GaugeId(u32::try_from(self.table.push(gauge)?).ok()?);
        names.insert(name.to_owned(), id);
        Some((id, true))
    }

    pub(crate) fn retire(&self, id: GaugeId) {
        if let Some(g) = self.get(id) {
            g.live.store(false, Ordering::Release);
        }
    }

    /// A request began: whether this replica has now begun its cap unconfirmed (time to sync).
    pub(crate) fn began(&self, id: GaugeId) -> bool {
        let Some(g) = self.get(id) else { return false };
        // In progress first: a round reads `begun` before `in_flight`, so a request it counts
        // as begun is in the count it publishes.
        g.in_flight.fetch_add(1, Ordering::SeqCst);
        let begun = g.begun.fetch_add(1, Ordering::SeqCst) + 1;
        begun.saturating_sub(g.acked.load(Ordering::SeqCst)) >= u64::from(g.cap.load(Ordering::Relaxed))
    }

    pub(crate) fn ended(&self, id: GaugeId) {
        if let Some(g) = self.get(id) {
            let _ = g.in_flight.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        }
    }

    /// How to count gauge `id` against `limit` now, the link being in `status` under `policy`.
    pub(crate) fn cluster(&self, id: GaugeId, limit: u32, share: f64, status: Status, policy: Policy) -> Cluster {
        let Some(g) = self.get(id) else { return Cluster::Alone };
        match (status, policy) {
            (Status::Connected, _) => {
                // The acknowledgement first (see `exchange`).
                let acked = g.acked.load(Ordering::SeqCst);
                let others = g.others.load(Ordering::Acquire);
                let confirmed = g.confirmed.load(Ordering::Acquire);
                let cap = gauge_cap(limit, share, others, confirmed, self.replicas.load(Ordering::Acquire));
                // A round is asked for once the fixed cap is begun unconfirmed, however much
                // room there is: the sooner the others hear of a burst, the less they overlap.
                let fixed = switchyard_core::signals::unconfirmed_cap(limit, share);
                if g.cap.load(Ordering::Relaxed) != fixed {
                    g.cap.store(fixed, Ordering::Relaxed);
                }
                let unconfirmed = g.begun.load(Ordering::SeqCst).saturating_sub(acked);
                Cluster::Shared { others, unconfirmed: u32::try_from(unconfirmed).unwrap_or(u32::MAX), cap }
            }
            (Status::Connecting | Status::Disconnected, Policy::FailOpen) => Cluster::Alone,
            (Status::Connecting | Status::Disconnected, Policy::FailClosed) => Cluster::Closed,
        }
    }

    /// Other replicas' requests in progress on gauge `id`, as Redis last answered.
    pub(crate) fn others(&self, id: GaugeId) -> Option<u32> {
        self.get(id).map(|g| g.others.load(Ordering::Acquire))
    }

    /// Replicas alive, as Redis last answered.
    pub(crate) fn replicas(&self) -> u32 {
        self.replicas.load(Ordering::Acquire)
    }

    fn get(&self, id: GaugeId) -> Option<&Gauge> {
        self.table.get(id.0 as usize)
    }

    /// Publishes every live gauge's count and takes in the others', chunk by chunk.
    pub(crate) async fn exchange(
        &self,
        conn: &mut ConnectionManager,
        timeout: Duration,
        field: &str,
        lease_ms: u64,
    ) -> Result<(), String> {
        let live: Vec<&Gauge> = self.table.iter().map(|(_, g)| g).filter(|g| g.live.load(Ordering::Acquire)).collect();
        for chunk in live.chunks(CHUNK) {
            let mut call = self.script.prepare_invoke();
            call.key(&self.replicas_key).arg(lease_ms).arg(field);
            let mut sent = Vec::with_capacity(chunk.len());
            for g in chunk {
                // `begun` before `in_flight` (see `began`).
                let begun = g.begun.load(Ordering::SeqCst);
                let count = g.in_flight.load(Ordering::SeqCst);
                call.key(&g.key).arg(count);
                sent.push((begun, count));
            }
            let answers = sync::invoke(&call, conn, timeout, chunk.len() + 1).await?;
            let replicas = answers.first().map(|t| count(t)).transpose()?.unwrap_or(1);
            self.replicas.store(replicas.max(1), Ordering::Release);
            for ((g, (begun, sent)), text) in chunk.iter().zip(sent).zip(&answers[1..]) {
                // The counts before the acknowledgement: a reader that sees the new `acked`
                // (little unconfirmed) sees the counts it goes with; one that sees the old
                // `acked` is only stricter.
                g.others.store(count(text)?, Ordering::Release);
                g.confirmed.store(sent, Ordering::Release);
                g.acked.fetch_max(begun, Ordering::SeqCst);
            }
        }
        Ok(())
    }

    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }
}

/// A count as the script answers it.
fn count(text: &str) -> Result<u32, String> {
    let n: i64 = text.parse().map_err(|_| format!("an answer that is not an integer: {text:?}"))?;
    Ok(u32::try_from(n.max(0)).unwrap_or(u32::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gauge_is_found_again_by_name_and_revived() {
        let gauges = Gauges::new("p");
        let (a, added) = gauges.add("tenant/t/concurrency").expect("added");
        assert!(added);
        let (b, _) = gauges.add("key/k/concurrency").expect("added");
        assert_ne!(a, b);
        gauges.retire(a);
        assert_eq!(gauges.add("tenant/t/concurrency"), Some((a, false)));
        assert!(gauges.get(a).expect("a").live.load(Ordering::Acquire));
        assert_eq!(gauges.get(a).map(|g| g.key.as_str()), Some("p:gauge:tenant/t/concurrency"));
    }

    #[test]
    fn counts_never_go_below_zero_and_wake_at_the_cap() {
        let gauges = Gauges::new("p");
        let (id, _) = gauges.add("g").expect("added");
        gauges.ended(id);
        assert!(gauges.began(id), "the cap is one before anything was answered");
        let cluster = gauges.cluster(id, 10, 0.1, Status::Connected, Policy::FailOpen);
        assert_eq!(cluster, Cluster::Shared { others: 0, unconfirmed: 1, cap: 10 });
        assert!(gauges.began(id), "the fixed cap (one of ten) is what wakes the sync thread");
        assert_eq!(gauges.cluster(id, 10, 0.1, Status::Disconnected, Policy::FailClosed), Cluster::Closed);
        assert_eq!(gauges.cluster(id, 10, 0.1, Status::Connecting, Policy::FailOpen), Cluster::Alone);
        assert_eq!(count("-3"), Ok(0));
        assert!(count("x").is_err());
    }
}
