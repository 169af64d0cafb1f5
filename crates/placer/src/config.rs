//! The placer's config (`placer.yaml`): pools with their capacity, quota and engine; negotiated
//! prices and reservations laid over the catalog; commitments (the gateway config's shape);
//! workload rules; block lifetimes; retry bounds; Ray clusters.
//!
//! Parsed like the gateway's config: through a JSON value, unknown fields rejected, every error
//! reported at once with its path.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Deserialize;
use switchyard_core::Time;
use switchyard_core::config::raw::RawCommitment;
use switchyard_core::config::{CloudId, Commitment, CommitmentId};

use crate::LoadError;
use crate::catalog::{Catalog, Offering, PoolKey, Prepaid, PriceKind};
use crate::date::{parse_duration, parse_time};
use crate::job::Workload;
use crate::yaml::{self, Fields, check_name};

mod overlay;

/// Where a pool's jobs run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EngineKind {
    /// Local processes against the pool's logical GPUs (the embedded default).
    Local,
    /// A Ray cluster's Jobs REST API; `token` is a secret reference (`env:NAME`, `file:PATH`).
    Ray { address: String, token: Option<String> },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineSpec {
    pub name: String,
    pub kind: EngineKind,
}

/// A GPU pool the placer may provision in.
#[derive(Clone, Debug, PartialEq)]
pub struct Pool {
    pub key: PoolKey,
    /// Accelerators the pool has; a local engine's logical GPUs. `None`: learned by trying.
    pub capacity: Option<u32>,
    /// Accelerators our account may hold in the pool at once.
    pub quota: Option<u32>,
    pub engine: String,
    /// Time from provisioning to the job running.
    pub start: Duration,
}

/// A workload class's rule: clouds in order of preference, and optionally the only ones allowed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rule {
    pub prefer: Vec<String>,
    pub only: Option<Vec<String>>,
}

/// Preemption risk of spot capacity, and what a restart costs.
#[derive(Clone, Debug, PartialEq)]
pub struct SpotRisk {
    pub interruptions_per_hour: f64,
    pub per_cloud: BTreeMap<String, f64>,
    pub restart: Duration,
}

impl SpotRisk {
    pub fn rate(&self, cloud: &str) -> f64 {
        self.per_cloud.get(cloud).copied().unwrap_or(self.interruptions_per_hour)
    }
}

/// How long each kind of failure keeps its scope blocked.
#[derive(Clone, Debug, PartialEq)]
pub struct BlockTtls {
    pub no_capacity: Duration,
    pub quota: Duration,
    pub auth: Duration,
    pub unreachable: Duration,
    pub zone: Duration,
    pub region: Duration,
    pub cloud: Duration,
    pub preempted: Duration,
    pub cluster_lost: Duration,
}

/// Bounds on re-placing a job.
#[derive(Clone, Debug, PartialEq)]
pub struct Retries {
    /// Re-placements after preemption or a lost cluster, before the job is given up.
    pub max_replacements: u32,
    /// How long an engine may be unreachable under a running job before the job counts as lost.
    pub lost_after: Duration,
    /// How long a submitted job may wait to start before the pool counts as out of capacity.
    pub start_timeout: Duration,
}

#[derive(Clone, Debug)]
pub struct PlacerConfig {
    /// The catalog with the config's prices and reservations applied.
    pub catalog: Catalog,
    /// Sorted by key.
    pub pools: Vec<Pool>,
    pub engines: Vec<EngineSpec>,
    /// Commitments in the gateway config's model; `cloud` indexes [`PlacerConfig::clouds`].
    pub commitments: Vec<Commitment>,
    /// The date the commitments' `elapsed_days` and `spent_usd` were true.
    pub commitments_as_of: Time,
    /// Cloud names, sorted: what a commitment's `CloudId` indexes.
    pub clouds: Vec<String>,
    pub rules: BTreeMap<Workload, Rule>,
    pub spot: SpotRisk,
    pub blocks: BlockTtls,
    pub retries: Retries,
}

const SECTIONS: &[&str] = &[
    "catalog",
    "pools",
    "prices",
    "reservations",
    "commitments_as_of",
    "commitments",
    "workloads",
    "spot",
    "blocks",
    "retries",
    "engines",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPool {
    cloud: String,
    region: String,
    accelerator: String,
    capacity: Option<u32>,
    quota: Option<u32>,
    engine: Option<String>,
    start: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    prefer: Option<Vec<String>>,
    only: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSpot {
    interruptions_per_hour: Option<f64>,
    per_cloud: Option<BTreeMap<String, f64>>,
    restart: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawBlocks {
    no_capacity: Option<String>,
    quota: Option<String>,
    auth: Option<String>,
    unreachable: Option<String>,
    zone: Option<String>,
    region: Option<String>,
    cloud: Option<String>,
    preempted: Option<String>,
    cluster_lost: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRetries {
    max_replacements: Option<u32>,
    lost_after: Option<String>,
    start_timeout: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEngine {
    name: String,
    kind: String,
    address: Option<String>,
    token: Option<String>,
}

impl PlacerConfig {
    /// Parses and validates the config. `read(path)` reads the catalog file the config names
    /// (relative paths as the caller resolves them); without one, the shipped catalog is used.
    pub fn from_yaml(text: &str, read: &dyn Fn(&str) -> Result<String, String>) -> Result<PlacerConfig, LoadError> {
        let mut errors = Vec::new();
        let mut f = Fields::new(yaml::parse(text)?, "", SECTIONS, &mut errors);
        let catalog_path: Option<String> = f.optional("catalog", &mut errors);
        let pools = f.list("pools", &mut errors);
        let prices = f.list("prices", &mut errors);
        let reservations = f.list("reservations", &mut errors);
        let as_of: Option<String> = f.optional("commitments_as_of", &mut errors);
        let commitments = f.list("commitments", &mut errors);
        let workloads: Option<BTreeMap<String, serde_json::Value>> = f.optional("workloads", &mut errors);
        let spot: Option<RawSpot> = f.optional("spot", &mut errors);
        let blocks: Option<RawBlocks> = f.optional("blocks", &mut errors);
        let retries: Option<RawRetries> = f.optional("retries", &mut errors);
        let engines = f.list("engines", &mut errors);
        f.finish(&mut errors);

        let mut catalog = match catalog_path {
            None => Catalog::shipped(),
            Some(path) => match read(&path).map_err(LoadError::Parse).and_then(|t| Catalog::from_yaml(&t)) {
                Ok(c) => c,
                Err(e) => {
                    errors.extend(e.lines().into_iter().map(|l| format!("catalog ({path}): {l}")));
                    return Err(LoadError::Invalid(errors));
                }
            },
        };
        let clouds = catalog.clouds();
        overlay::prices(&mut catalog, prices, &mut errors);
        overlay::reservations(&mut catalog, reservations, &mut errors);

        let engines = engines_from(engines, &mut errors);
        let pools = pools_from(pools, &catalog, &engines, &mut errors);
        let commitments_as_of =
            as_of.and_then(|d| parse_time(&d).map_err(|e| errors.push(format!("commitments_as_of: {e}"))).ok());
        if commitments_as_of.is_none()
            && !commitments.is_empty()
            && !errors.iter().any(|e| e.starts_with("commitments_as_of"))
        {
            errors.push("commitments_as_of: required with commitments (the date their figures were true)".to_owned());
        }
        let commitments = commitments_from(commitments, &clouds, &mut errors);
        let rules = rules_from(workloads.unwrap_or_default(), &clouds, &mut errors);
        let duration = |text: Option<String>, default: u64, path: &str, errors: &mut Vec<String>| -> Duration {
            text.map_or(Ok(Duration::from_secs(default)), |t| parse_duration(&t)).unwrap_or_else(|e| {
                errors.push(format!("{path}: {e}"));
                Duration::from_secs(default)
            })
        };
        let spot = spot.unwrap_or_default();
        let spot = SpotRisk {
            interruptions_per_hour: rate(
                spot.interruptions_per_hour.unwrap_or(0.05),
                "spot.interruptions_per_hour",
                &mut errors,
            ),
            per_cloud: spot
                .per_cloud
                .unwrap_or_default()
                .into_iter()
                .map(|(c, r)| {
                    if !clouds.contains(&c) {
                        errors.push(format!("spot.per_cloud.{c}: unknown cloud"));
                    }
                    let r = rate(r, &format!("spot.per_cloud.{c}"), &mut errors);
                    (c, r)
                })
                .collect(),
            restart: duration(spot.restart, 600, "spot.restart", &mut errors),
        };
        let b = blocks.unwrap_or_default();
        let blocks = BlockTtls {
            no_capacity: duration(b.no_capacity, 600, "blocks.no_capacity", &mut errors),
            quota: duration(b.quota, 3_600, "blocks.quota", &mut errors),
            auth: duration(b.auth, 3_600, "blocks.auth", &mut errors),
            unreachable: duration(b.unreachable, 300, "blocks.unreachable", &mut errors),
            zone: duration(b.zone, 1_800, "blocks.zone", &mut errors),
            region: duration(b.region, 1_800, "blocks.region", &mut errors),
            cloud: duration(b.cloud, 1_800, "blocks.cloud", &mut errors),
            preempted: duration(b.preempted, 900, "blocks.preempted", &mut errors),
            cluster_lost: duration(b.cluster_lost, 900, "blocks.cluster_lost", &mut errors),
        };
        let r = retries.unwrap_or_default();
        let retries = Retries {
            max_replacements: r.max_replacements.unwrap_or(3),
            lost_after: duration(r.lost_after, 30, "retries.lost_after", &mut errors),
            start_timeout: duration(r.start_timeout, 60, "retries.start_timeout", &mut errors),
        };
        if retries.max_replacements > 100 {
            errors.push("retries.max_replacements: must be at most 100".to_owned());
        }
        let config = PlacerConfig {
            catalog,
            pools,
            engines,
            commitments,
            commitments_as_of: commitments_as_of.unwrap_or_default(),
            clouds,
            rules,
            spot,
            blocks,
            retries,
        };
        yaml::done(config, errors)
    }

    pub fn pool(&self, key: &PoolKey) -> Option<&Pool> {
        self.pools.binary_search_by(|p| p.key.cmp(key)).ok().map(|i| &self.pools[i])
    }

    pub fn engine(&self, name: &str) -> Option<&EngineSpec> {
        self.engines.iter().find(|e| e.name == name)
    }

    pub fn offering(&self, id: &str) -> Option<&Offering> {
        self.catalog.offerings.binary_search_by(|o| o.id.as_str().cmp(id)).ok().map(|i| &self.catalog.offerings[i])
    }

    /// The commitment that counts spend on `cloud`, if any (the first declared).
    pub fn commitment_of(&self, cloud: &str) -> Option<&Commitment> {
        let id = self.clouds.iter().position(|c| c == cloud)?;
        self.commitments.iter().find(|c| usize::from(c.cloud.0) == id)
    }
}

fn rate(r: f64, path: &str, errors: &mut Vec<String>) -> f64 {
    if !(r.is_finite() && (0.0..=10.0).contains(&r)) {
        errors.push(format!("{path}: must be between 0 and 10 interruptions per hour"));
        return 0.0;
    }
    r
}

fn engines_from(raw: Vec<(String, serde_json::Value)>, errors: &mut Vec<String>) -> Vec<EngineSpec> {
    let mut engines = vec![EngineSpec { name: "local".to_owned(), kind: EngineKind::Local }];
    for (path, value) in raw {
        let Some(e) = yaml::at::<RawEngine>(value, &path, errors) else { continue };
        check_name(&e.name, &format!("{path}.name"), errors);
        if engines.iter().any(|x| x.name == e.name) {
            errors.push(format!("{path}.name: duplicate engine {:?} (`local` is built in)", e.name));
        }
        let kind = match (e.kind.as_str(), e.address) {
            ("ray", Some(address)) => {
                if !(address.starts_with("http://") || address.starts_with("https://")) {
                    errors.push(format!("{path}.address: must be an http:// or https:// URL of the Ray dashboard"));
                }
                if let Some(t) = &e.token
                    && !(t.starts_with("env:") || t.starts_with("file:"))
                {
                    errors.push(format!(
                        "{path}.token: must be a reference, env:NAME or file:PATH (inline secrets are not accepted)"
                    ));
                }
                EngineKind::Ray { address: address.trim_end_matches('/').to_owned(), token: e.token }
            }
            ("ray", None) => {
                errors.push(format!("{path}.address: missing field `address`"));
                continue;
            }
            (other, _) => {
                errors.push(format!("{path}.kind: unknown engine kind {other:?} (expected ray; `local` is built in)"));
                continue;
            }
        };
        engines.push(EngineSpec { name: e.name, kind });
    }
    engines
}

fn pools_from(
    raw: Vec<(String, serde_json::Value)>,
    catalog: &Catalog,
    engines: &[EngineSpec],
    errors: &mut Vec<String>,
) -> Vec<Pool> {
    let mut pools: Vec<Pool> = Vec::new();
    let mut keys = BTreeSet::new();
    for (path, value) in raw {
        let Some(p) = yaml::at::<RawPool>(value, &path, errors) else { continue };
        let key = PoolKey { cloud: p.cloud, region: p.region, accelerator: p.accelerator };
        if !catalog.offerings.iter().any(|o| o.pool() == key) {
            errors.push(format!(
                "{path}: the catalog has no {} offering in {}/{}",
                key.accelerator, key.cloud, key.region
            ));
        }
        if !keys.insert(key.clone()) {
            errors.push(format!("{path}: duplicate pool {key}"));
        }
        let engine = p.engine.unwrap_or_else(|| "local".to_owned());
        match engines.iter().find(|e| e.name == engine) {
            None => errors.push(format!("{path}.engine: unknown engine {engine:?}")),
            Some(e) if e.kind == EngineKind::Local && p.capacity.is_none() => {
                errors.push(format!("{path}.capacity: required for the local engine (its logical GPUs)"));
            }
            Some(_) => (),
        }
        if p.capacity.is_some_and(|c| c > 1_000_000) || p.quota.is_some_and(|q| q > 1_000_000) {
            errors.push(format!("{path}: capacity and quota must be at most 1,000,000"));
        }
        let start = p.start.map_or(Ok(Duration::ZERO), |s| parse_duration(&s)).unwrap_or_else(|e| {
            errors.push(format!("{path}.start: {e}"));
            Duration::ZERO
        });
        pools.push(Pool { key, capacity: p.capacity, quota: p.quota, engine, start });
    }
    pools.sort_by(|a, b| a.key.cmp(&b.key));
    pools
}

fn commitments_from(
    raw: Vec<(String, serde_json::Value)>,
    clouds: &[String],
    errors: &mut Vec<String>,
) -> Vec<Commitment> {
    let mut out = Vec::new();
    let mut names = BTreeSet::new();
    for (i, (path, value)) in raw.into_iter().enumerate() {
        let Some(c) = yaml::at::<RawCommitment>(value, &path, errors) else { continue };
        check_name(&c.name, &format!("{path}.name"), errors);
        if !names.insert(c.name.clone()) {
            errors.push(format!("{path}.name: duplicate commitment {:?}", c.name));
        }
        let Some(cloud) = clouds.iter().position(|x| *x == c.cloud) else {
            errors.push(format!("{path}.cloud: unknown cloud {:?} (not in the catalog)", c.cloud));
            continue;
        };
        switchyard_core::config::check_commitment_numbers(&c, &path, errors);
        let elapsed = c.elapsed_days.unwrap_or(0.0);
        let spent = c.spent_usd.unwrap_or(0.0);
        if c.deployments.is_some() {
            errors.push(format!(
                "{path}.deployments: not used by the placer; a commitment counts every GPU offering of its cloud"
            ));
        }
        let day = |days: f64| Duration::try_from_secs_f64(days * 86_400.0).unwrap_or(Duration::ZERO);
        out.push(Commitment {
            id: CommitmentId(i as u16),
            name: c.name,
            cloud: CloudId(cloud as u16),
            amount_usd: c.amount_usd,
            term: day(c.term_days),
            elapsed_at_start: day(elapsed),
            spent_at_start: spent,
            deployments: Vec::new(),
        });
    }
    out
}

fn rules_from(
    raw: BTreeMap<String, serde_json::Value>,
    clouds: &[String],
    errors: &mut Vec<String>,
) -> BTreeMap<Workload, Rule> {
    let mut rules = BTreeMap::new();
    for (name, value) in raw {
        let path = format!("workloads.{name}");
        let Some(workload) = Workload::parse(&name) else {
            errors.push(format!("{path}: unknown workload (expected training, batch, research or inference)"));
            continue;
        };
        let Some(r) = yaml::at::<RawRule>(value, &path, errors) else { continue };
        let prefer = r.prefer.unwrap_or_default();
        for (i, c) in prefer.iter().enumerate() {
            if !clouds.contains(c) {
                errors.push(format!("{path}.prefer[{i}]: unknown cloud {c:?}"));
            }
        }
        if let Some(only) = &r.only {
            for (i, c) in only.iter().enumerate() {
                if !clouds.contains(c) {
                    errors.push(format!("{path}.only[{i}]: unknown cloud {c:?}"));
                }
            }
        }
        rules.insert(workload, Rule { prefer, only: r.only });
    }
    rules
}

/// Whether an offering can be bought on the fly at a known price.
pub fn price_kind_usable(o: &Offering) -> bool {
    match o.kind {
        PriceKind::OnDemand | PriceKind::Spot | PriceKind::CapacityBlock | PriceKind::Contract => {
            o.usd_per_hour.is_some()
        }
        PriceKind::Reserved => o.prepaid.is_some(),
    }
}

pub(crate) fn prepaid(name: String, gpus: u32, until: Time) -> Prepaid {
    Prepaid { reservation: name, gpus, until }
}

#[cfg(test)]
mod tests;
