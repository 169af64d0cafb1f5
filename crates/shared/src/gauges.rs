//! The gauges of [`RedisSignals`](crate::RedisSignals): tenants' and managed keys' requests in
//! progress, counted per replica under leases in Redis (`gauges.lua`) as deployments' attempts
//! in flight are, added by name at run time, answered from memory and synced in the signals'
//! rounds. With them, the replicas alive, so that a replica's unconfirmed admissions can be held
//! to its share of the room ([`gauge_cap`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use redis::Script;
use redis::aio::ConnectionManager;
use switchyard_core::counters::Grow;
use switchyard_core::signals::{Cluster, GaugeId, gauge_cap, unconfirmed_cap};

use crate::flight::Flight;
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

/// One gauge: its key, and its count as deployments' entries keep theirs.
struct Gauge {
    /// `{prefix}:gauge:{name}`.
    key: String,
    /// Whether it is in use (a retired one, a revoked key's, is no longer synced).
    live: AtomicBool,
    count: Flight,
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
        let gauge =
            Gauge { key: format!("{}:gauge:{name}", self.prefix), live: AtomicBool::new(true), count: Flight::new(1) };
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
        self.get(id).is_some_and(|g| g.count.began())
    }

    pub(crate) fn ended(&self, id: GaugeId) {
        if let Some(g) = self.get(id) {
            g.count.ended();
        }
    }

    /// How to count gauge `id` against `limit` now, the link being in `status` under `policy`:
    /// its unconfirmed cap is [`gauge_cap`]'s; a round is asked for once the fixed cap is begun
    /// unconfirmed, however much room there is (the sooner the others hear of a burst, the less
    /// they overlap).
    pub(crate) fn cluster(&self, id: GaugeId, limit: u32, share: f64, status: Status, policy: Policy) -> Cluster {
        let Some(g) = self.get(id) else { return Cluster::Alone };
        let replicas = self.replicas.load(Ordering::Acquire);
        let fixed = unconfirmed_cap(limit, share);
        g.count.cluster(status, policy, fixed, |others, confirmed| gauge_cap(limit, share, others, confirmed, replicas))
    }

    /// Other replicas' requests in progress on gauge `id`, as Redis last answered.
    pub(crate) fn others(&self, id: GaugeId) -> Option<u32> {
        self.get(id).map(|g| g.count.others())
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
                let counted = g.count.for_round();
                call.key(&g.key).arg(counted.1);
                sent.push(counted);
            }
            let answers = sync::invoke(&call, conn, timeout, chunk.len() + 1).await?;
            let replicas = answers.first().map(|t| count(t)).transpose()?.unwrap_or(1);
            self.replicas.store(replicas.max(1), Ordering::Release);
            for ((g, counted), text) in chunk.iter().zip(sent).zip(&answers[1..]) {
                g.count.answer(counted, count(text)?);
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
