//! The optimizer: a job and a snapshot of the world in, a ranked list of candidates and the
//! reason each other offering was rejected out.
//!
//! Steps: expand the job into candidate offerings (every offering of its accelerator); filter
//! (jurisdiction, workload rule, node size, price kind, engine, blocks, quota, capacity,
//! reservation term, spot risk, deadline); cost each by effective price (prepaid reservations
//! about zero, a commitment behind pace at its shadow price, spot weighed by preemption risk);
//! rank by workload preference, then cost (or finish time), then finish, then id.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::time::Duration;

use switchyard_core::Time;

use crate::block::Blocks;
use crate::catalog::{Offering, PoolKey, PriceKind};
use crate::config::PlacerConfig;
use crate::cost::{expected_run, shadow_factor};
use crate::job::{JobSpec, Objective};

mod reason;

pub use reason::Reason;

/// What our jobs hold in a pool, and what its engine says is free.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolUse {
    /// Accelerators held by jobs the placer runs there.
    pub used: u32,
    /// Free accelerators as the engine reports them live, when it can.
    pub live_free: Option<u32>,
}

/// The world as the placer last saw it.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub pools: BTreeMap<PoolKey, PoolUse>,
    /// Accelerators held on each prepaid offering (by offering id).
    pub reserved_used: BTreeMap<String, u32>,
    /// Spend counted against each commitment (by name) since `commitments_as_of`.
    pub commitment_spent: BTreeMap<String, f64>,
    pub blocks: Blocks,
}

/// An offering that can take the job, with what it would cost.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    pub offering: String,
    pub cloud: String,
    pub region: String,
    pub jurisdiction: String,
    pub instance: String,
    pub kind: PriceKind,
    pub pool: PoolKey,
    /// Instances (one per node) and the accelerators they hold.
    pub instances: u32,
    pub gpus: u32,
    /// Price per instance-hour paid (zero on a prepaid reservation).
    pub usd_per_hour: f64,
    /// Expected run time, spot interruptions included.
    pub expected: Duration,
    /// Expected cash spend.
    pub cost_usd: f64,
    /// The cost that ranks: cash, at a lagging commitment's shadow price.
    pub effective_usd: f64,
    pub finish: Time,
    /// Position of the cloud in the workload's preference list (0 first; unlisted clouds last).
    pub tier: u32,
    /// The commitment the spend counts against, if any.
    pub commitment: Option<String>,
    /// Notes on how the cost was reached, for the plan table.
    pub notes: Vec<String>,
}

/// An offering that cannot take the job, and the first reason why.
#[derive(Clone, Debug, PartialEq)]
pub struct Rejected {
    pub offering: String,
    pub cloud: String,
    pub region: String,
    pub jurisdiction: String,
    pub kind: PriceKind,
    pub reason: Reason,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// Best first.
    pub ranked: Vec<Candidate>,
    /// In offering id order.
    pub rejected: Vec<Rejected>,
}

impl Plan {
    pub fn best(&self) -> Option<&Candidate> {
        self.ranked.first()
    }
}

/// Plans `job` at `now` over `config`'s catalog and pools and what `snapshot` says of them.
/// Deterministic: the same inputs give the same plan, in any catalog order.
pub fn plan(config: &PlacerConfig, snapshot: &Snapshot, job: &JobSpec, now: Time) -> Plan {
    let mut ranked = Vec::new();
    let mut rejected = Vec::new();
    for o in config.catalog.offerings.iter().filter(|o| o.accelerator == job.accelerator) {
        match consider(config, snapshot, job, o, now) {
            Ok(c) => ranked.push(c),
            Err(reason) => rejected.push(Rejected {
                offering: o.id.clone(),
                cloud: o.cloud.clone(),
                region: o.region.clone(),
                jurisdiction: o.jurisdiction.clone(),
                kind: o.kind,
                reason,
            }),
        }
    }
    ranked.sort_by(|a, b| rank(job.objective, a, b));
    rejected.sort_by(|a, b| a.offering.cmp(&b.offering));
    Plan { ranked, rejected }
}

fn rank(objective: Objective, a: &Candidate, b: &Candidate) -> Ordering {
    let key = |c: &Candidate| match objective {
        Objective::Cost => c.effective_usd,
        Objective::Finish => c.finish.0 as f64,
    };
    a.tier
        .cmp(&b.tier)
        .then(key(a).total_cmp(&key(b)))
        .then(a.finish.cmp(&b.finish))
        .then(a.effective_usd.total_cmp(&b.effective_usd))
        .then_with(|| a.offering.cmp(&b.offering))
}

fn consider(
    config: &PlacerConfig,
    snapshot: &Snapshot,
    job: &JobSpec,
    o: &Offering,
    now: Time,
) -> Result<Candidate, Reason> {
    if !job.allows(&o.jurisdiction) {
        return Err(Reason::Jurisdiction { jurisdiction: o.jurisdiction.clone(), allowed: job.jurisdictions.clone() });
    }
    let rule = config.rules.get(&job.workload);
    if let Some(only) = rule.and_then(|r| r.only.as_ref())
        && !only.contains(&o.cloud)
    {
        return Err(Reason::WorkloadRule { workload: job.workload, only: only.clone() });
    }
    if job.per_node > o.gpus {
        return Err(Reason::NodeTooLarge { per_node: job.per_node, per_instance: o.gpus });
    }
    if o.kind == PriceKind::Spot && !job.spot {
        return Err(Reason::SpotNotAllowed);
    }
    let price = match (o.kind, &o.prepaid, o.usd_per_hour) {
        (PriceKind::Reserved, Some(_), _) => 0.0,
        (PriceKind::Reserved, None, _) => return Err(Reason::NotReserved),
        (PriceKind::Contract, None, None) => return Err(Reason::ContractOnly),
        (_, _, None) => return Err(Reason::NoPrice),
        (_, _, Some(p)) => p,
    };
    let Some(pool) = config.pool(&o.pool()) else { return Err(Reason::NoEngine) };
    if let Some(b) = snapshot.blocks.covering(o, now) {
        return Err(Reason::Blocked {
            scope: b.scope.clone(),
            class: b.class,
            detail: b.detail.clone(),
            until: b.until,
        });
    }
    let instances = job.nodes;
    let gpus = instances.saturating_mul(o.gpus);
    let pool_use = snapshot.pools.get(&pool.key).copied().unwrap_or_default();
    if let Some(quota) = pool.quota {
        let free = quota.saturating_sub(pool_use.used);
        if gpus > free {
            return Err(Reason::Quota { free, need: gpus });
        }
    }
    let free = [pool.capacity.map(|c| c.saturating_sub(pool_use.used)), pool_use.live_free].into_iter().flatten().min();
    if let Some(free) = free
        && gpus > free
    {
        return Err(Reason::NoCapacity { free, need: gpus });
    }
    let expected = if o.kind == PriceKind::Spot {
        let every = job.checkpoint.as_ref().map(|c| c.every);
        match expected_run(job.duration, config.spot.rate(&o.cloud), every, config.spot.restart) {
            Some(e) => e,
            None => return Err(Reason::SpotTooRisky),
        }
    } else {
        job.duration
    };
    let finish = now + pool.start + expected;
    let mut notes = Vec::new();
    if let Some(prepaid) = &o.prepaid {
        let held = snapshot.reserved_used.get(&o.id).copied().unwrap_or(0);
        let free = prepaid.gpus.saturating_sub(held);
        if gpus > free {
            return Err(Reason::NoCapacity { free, need: gpus });
        }
        if finish > prepaid.until {
            return Err(Reason::ReservationEnds { until: prepaid.until });
        }
        notes.push(format!("prepaid reservation {}: no cost at the margin", prepaid.reservation));
    }
    if let Some(tier_note) = o.negotiated.as_ref().filter(|_| o.prepaid.is_none()) {
        notes.push(format!("negotiated price {tier_note}"));
    }
    if let Some(deadline) = job.deadline
        && finish > deadline
    {
        return Err(Reason::Deadline { finish, deadline });
    }
    let hours = expected.as_secs_f64() / 3_600.0;
    let cost_usd = price * f64::from(instances) * hours;
    let mut effective_usd = cost_usd;
    let mut commitment = None;
    if o.prepaid.is_none()
        && let Some(c) = config.commitment_of(&o.cloud)
    {
        let spent = c.spent_at_start + snapshot.commitment_spent.get(&c.name).copied().unwrap_or(0.0);
        let factor = shadow_factor(c, spent, now.saturating_since(config.commitments_as_of));
        if factor < 1.0 {
            notes.push(format!("commitment {} behind pace: spend counts at {:.0}%", c.name, factor * 100.0));
        }
        effective_usd *= factor;
        commitment = Some(c.name.clone());
    }
    if o.kind == PriceKind::Spot && expected > job.duration {
        notes.push(format!(
            "spot: {:.2}x expected run time at {} interruptions/h",
            expected.as_secs_f64() / job.duration.as_secs_f64().max(1.0),
            config.spot.rate(&o.cloud)
        ));
    }
    let tier = rule.and_then(|r| r.prefer.iter().position(|c| *c == o.cloud)).unwrap_or(usize::MAX);
    let tier = u32::try_from(tier).unwrap_or(u32::MAX);
    Ok(Candidate {
        offering: o.id.clone(),
        cloud: o.cloud.clone(),
        region: o.region.clone(),
        jurisdiction: o.jurisdiction.clone(),
        instance: o.instance.clone(),
        kind: o.kind,
        pool: pool.key.clone(),
        instances,
        gpus,
        usd_per_hour: price,
        expected,
        cost_usd,
        effective_usd,
        finish,
        tier,
        commitment,
        notes,
    })
}

#[cfg(test)]
mod tests;
