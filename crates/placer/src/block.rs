//! Failures classified into blocks: each failure to provision or keep a job blocks a scope (an
//! offering, a pool, a region or a whole cloud) until an expiry, and the next plan leaves that
//! scope out. What each class blocks, and for how long, is decided in one closed match.

use std::fmt;
use std::time::Duration;

use switchyard_core::Time;

use crate::catalog::{Offering, PoolKey};
use crate::config::BlockTtls;

/// Why provisioning or a running job failed, as an engine reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FailureClass {
    /// The pool has no free capacity of this kind (e.g. InsufficientInstanceCapacity).
    NoCapacity,
    /// Our account's quota for the pool is used up.
    Quota,
    /// The engine refused our credentials.
    Auth,
    /// The engine could not be reached (connect refused, timeout).
    Unreachable,
    /// A zone of the region is failing.
    ZoneOutage,
    RegionOutage,
    CloudOutage,
    /// Spot capacity was taken back.
    Preempted,
    /// The cluster under a running job went away.
    ClusterLost,
    /// The engine refused the job itself: the spec is at fault, not the place.
    InvalidJob,
}

impl FailureClass {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::NoCapacity => "no capacity",
            FailureClass::Quota => "quota",
            FailureClass::Auth => "auth",
            FailureClass::Unreachable => "unreachable",
            FailureClass::ZoneOutage => "zone outage",
            FailureClass::RegionOutage => "region outage",
            FailureClass::CloudOutage => "cloud outage",
            FailureClass::Preempted => "preempted",
            FailureClass::ClusterLost => "cluster lost",
            FailureClass::InvalidJob => "invalid job",
        }
    }
}

/// A failure with what the engine said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub class: FailureClass,
    pub detail: String,
}

impl Failure {
    pub fn new(class: FailureClass, detail: impl Into<String>) -> Failure {
        Failure { class, detail: detail.into() }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.class.as_str(), self.detail)
    }
}

/// What a block covers.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// One offering (one instance type and price kind in one region).
    Offering(String),
    /// Every offering of a pool (cloud × region × accelerator).
    Pool(PoolKey),
    Region {
        cloud: String,
        region: String,
    },
    Cloud(String),
}

impl Scope {
    pub fn covers(&self, o: &Offering) -> bool {
        match self {
            Scope::Offering(id) => *id == o.id,
            Scope::Pool(key) => key.cloud == o.cloud && key.region == o.region && key.accelerator == o.accelerator,
            Scope::Region { cloud, region } => *cloud == o.cloud && *region == o.region,
            Scope::Cloud(cloud) => *cloud == o.cloud,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Offering(id) => write!(f, "offering {id}"),
            Scope::Pool(key) => write!(f, "pool {key}"),
            Scope::Region { cloud, region } => write!(f, "region {cloud}/{region}"),
            Scope::Cloud(cloud) => write!(f, "cloud {cloud}"),
        }
    }
}

/// What a failure leads to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Consequence {
    /// Block a scope around the offering for a while, and re-plan.
    Block(ScopeKind, Duration),
    /// The job itself is at fault: stop, and say why.
    FailJob,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScopeKind {
    Offering,
    Pool,
    Region,
    Cloud,
}

/// The one decision: what each failure class blocks, and for how long. No wildcard arm: a new
/// class must be decided here.
pub fn consequence(class: FailureClass, ttl: &BlockTtls) -> Consequence {
    match class {
        // Capacity is per instance type and price kind: spot may be gone while on-demand is not.
        FailureClass::NoCapacity => Consequence::Block(ScopeKind::Offering, ttl.no_capacity),
        // Quotas are per accelerator family and region.
        FailureClass::Quota => Consequence::Block(ScopeKind::Pool, ttl.quota),
        // Credentials are per cloud account.
        FailureClass::Auth => Consequence::Block(ScopeKind::Cloud, ttl.auth),
        // One engine (one cluster) serves a region.
        FailureClass::Unreachable => Consequence::Block(ScopeKind::Region, ttl.unreachable),
        // Pools are per region, not per zone: a failing zone takes the pool out.
        FailureClass::ZoneOutage => Consequence::Block(ScopeKind::Pool, ttl.zone),
        FailureClass::RegionOutage => Consequence::Block(ScopeKind::Region, ttl.region),
        FailureClass::CloudOutage => Consequence::Block(ScopeKind::Cloud, ttl.cloud),
        FailureClass::Preempted => Consequence::Block(ScopeKind::Offering, ttl.preempted),
        FailureClass::ClusterLost => Consequence::Block(ScopeKind::Region, ttl.cluster_lost),
        FailureClass::InvalidJob => Consequence::FailJob,
    }
}

/// A scope left out of plans until `until`.
#[derive(Clone, Debug, PartialEq)]
pub struct Block {
    pub scope: Scope,
    pub class: FailureClass,
    pub detail: String,
    pub since: Time,
    pub until: Time,
}

/// The blocks in force, oldest first.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Blocks {
    list: Vec<Block>,
}

impl Blocks {
    pub fn new(list: Vec<Block>) -> Blocks {
        Blocks { list }
    }

    /// Records `failure` of `offering` at `now`. Returns the block added, or `None` when the
    /// failure is the job's own (see [`consequence`]). A block on a scope already blocked
    /// replaces it with the later expiry.
    pub fn record(&mut self, failure: &Failure, offering: &Offering, now: Time, ttl: &BlockTtls) -> Option<Block> {
        let Consequence::Block(kind, ttl) = consequence(failure.class, ttl) else { return None };
        let scope = match kind {
            ScopeKind::Offering => Scope::Offering(offering.id.clone()),
            ScopeKind::Pool => Scope::Pool(offering.pool()),
            ScopeKind::Region => Scope::Region { cloud: offering.cloud.clone(), region: offering.region.clone() },
            ScopeKind::Cloud => Scope::Cloud(offering.cloud.clone()),
        };
        let block = Block { scope, class: failure.class, detail: failure.detail.clone(), since: now, until: now + ttl };
        match self.list.iter_mut().find(|b| b.scope == block.scope) {
            Some(existing) if existing.until >= block.until => return Some(existing.clone()),
            Some(existing) => *existing = block.clone(),
            None => self.list.push(block.clone()),
        }
        Some(block)
    }

    /// Drops every block expired at `now`.
    pub fn prune(&mut self, now: Time) {
        self.list.retain(|b| b.until > now);
    }

    /// The block in force at `now` that covers `offering`, if any (the longest-lasting).
    pub fn covering(&self, offering: &Offering, now: Time) -> Option<&Block> {
        self.list.iter().filter(|b| b.until > now && b.scope.covers(offering)).max_by_key(|b| b.until)
    }

    pub fn active(&self, now: Time) -> impl Iterator<Item = &Block> {
        self.list.iter().filter(move |b| b.until > now)
    }

    pub fn all(&self) -> &[Block] {
        &self.list
    }
}

#[cfg(test)]
mod tests;
