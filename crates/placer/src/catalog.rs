//! The GPU catalog: offerings per cloud and region, each with its price kind, source and the
//! date it was read. Offerings sold only under contract carry no price; a negotiated price is
//! an overlay in the placer's config, never a guess in the catalog.
//!
//! The shipped catalog is `catalog/gpus.yaml` at the repository root, compiled in as the
//! default; any other file is read at run time. Nothing is downloaded.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use switchyard_core::Time;

use crate::LoadError;
use crate::date::parse_time;
use crate::yaml::{self, Fields, check_jurisdiction, check_name};

/// The catalog shipped with Switchyard.
pub const SHIPPED: &str = include_str!("../../../catalog/gpus.yaml");

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PriceKind {
    OnDemand,
    /// Interruptible capacity, weighed by its preemption risk.
    Spot,
    /// Capacity paid for whether used or not: about zero at the margin while it lasts.
    Reserved,
    /// Capacity bought ahead for a fixed window (e.g. EC2 Capacity Blocks for ML).
    CapacityBlock,
    /// Sold only under contract: no public price.
    Contract,
}

impl PriceKind {
    pub const ALL: [PriceKind; 5] =
        [PriceKind::OnDemand, PriceKind::Spot, PriceKind::Reserved, PriceKind::CapacityBlock, PriceKind::Contract];

    pub fn as_str(self) -> &'static str {
        match self {
            PriceKind::OnDemand => "on_demand",
            PriceKind::Spot => "spot",
            PriceKind::Reserved => "reserved",
            PriceKind::CapacityBlock => "capacity_block",
            PriceKind::Contract => "contract",
        }
    }

    pub fn parse(text: &str) -> Option<PriceKind> {
        PriceKind::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

impl fmt::Display for PriceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One region of one cloud and the jurisdiction its data centres are in.
#[derive(Clone, Debug, PartialEq)]
pub struct Region {
    pub cloud: String,
    pub region: String,
    pub jurisdiction: String,
    pub location: String,
}

/// One way to buy one instance type in one region.
#[derive(Clone, Debug, PartialEq)]
pub struct Offering {
    /// `cloud/region/instance/kind`: unique, and the tie-breaker everywhere.
    pub id: String,
    pub cloud: String,
    pub region: String,
    pub jurisdiction: String,
    pub instance: String,
    pub accelerator: String,
    /// Accelerators per instance.
    pub gpus: u32,
    pub kind: PriceKind,
    /// The price per instance-hour as the source lists it; `None` when the source has no public
    /// price (always for `contract`).
    pub list_usd_per_hour: Option<f64>,
    /// The price per instance-hour the placer uses: the list price, or a negotiated one from
    /// the config's `prices` overlay.
    pub usd_per_hour: Option<f64>,
    /// The overlay that set `usd_per_hour`, when it is not the list price.
    pub negotiated: Option<String>,
    /// Capacity already paid for (a reservation in the config): how many accelerators, until when.
    pub prepaid: Option<Prepaid>,
    pub source: String,
    /// When the source was read.
    pub checked: Time,
    pub note: Option<String>,
}

/// A reservation's capacity: paid for whether used or not, so about free at the margin.
#[derive(Clone, Debug, PartialEq)]
pub struct Prepaid {
    pub reservation: String,
    pub gpus: u32,
    pub until: Time,
}

impl Offering {
    /// The pool this offering draws on: cloud, region and accelerator.
    pub fn pool(&self) -> PoolKey {
        PoolKey { cloud: self.cloud.clone(), region: self.region.clone(), accelerator: self.accelerator.clone() }
    }
}

/// A GPU pool: cloud × region × accelerator.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PoolKey {
    pub cloud: String,
    pub region: String,
    pub accelerator: String,
}

impl fmt::Display for PoolKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.cloud, self.region, self.accelerator)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Catalog {
    /// The date the catalog as a whole was last reviewed.
    pub as_of: Time,
    pub regions: Vec<Region>,
    /// Sorted by id.
    pub offerings: Vec<Offering>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegion {
    cloud: String,
    region: String,
    jurisdiction: String,
    location: Option<String>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOffering {
    cloud: String,
    region: String,
    instance: String,
    accelerator: String,
    gpus: u32,
    kind: String,
    usd_per_hour: Option<f64>,
    source: String,
    checked: String,
    note: Option<String>,
}

impl Catalog {
    /// The shipped catalog. It is checked by a test, so this cannot fail in a release.
    pub fn shipped() -> Catalog {
        match Catalog::from_yaml(SHIPPED) {
            Ok(c) => c,
            Err(e) => unreachable!("the shipped catalog is invalid: {e}"),
        }
    }

    pub fn from_yaml(text: &str) -> Result<Catalog, LoadError> {
        let mut errors = Vec::new();
        let mut f = Fields::new(yaml::parse(text)?, "", &["as_of", "regions", "offerings"], &mut errors);
        let as_of: Option<String> = f.required("as_of", &mut errors);
        let raw_regions = f.list("regions", &mut errors);
        let raw_offerings = f.list("offerings", &mut errors);
        f.finish(&mut errors);
        let as_of = as_of.and_then(|d| parse_time(&d).map_err(|e| errors.push(format!("as_of: {e}"))).ok());

        let mut regions: BTreeMap<(String, String), Region> = BTreeMap::new();
        for (path, value) in raw_regions {
            let Some(r) = yaml::at::<RawRegion>(value, &path, &mut errors) else { continue };
            check_name(&r.cloud, &format!("{path}.cloud"), &mut errors);
            check_name(&r.region, &format!("{path}.region"), &mut errors);
            check_jurisdiction(&r.jurisdiction, &format!("{path}.jurisdiction"), &mut errors);
            let key = (r.cloud.clone(), r.region.clone());
            let region = Region {
                cloud: r.cloud,
                region: r.region,
                jurisdiction: r.jurisdiction,
                location: r.location.unwrap_or_default(),
            };
            if regions.insert(key, region).is_some() {
                errors.push(format!("{path}: duplicate region"));
            }
        }
        let mut offerings = Vec::new();
        let mut ids = BTreeSet::new();
        for (path, value) in raw_offerings {
            let Some(o) = yaml::at::<RawOffering>(value, &path, &mut errors) else { continue };
            if let Some(o) = offering(o, &path, &regions, &mut errors) {
                if !ids.insert(o.id.clone()) {
                    errors.push(format!("{path}: duplicate offering {}", o.id));
                }
                offerings.push(o);
            }
        }
        offerings.sort_by(|a, b| a.id.cmp(&b.id));
        let catalog = Catalog { as_of: as_of.unwrap_or_default(), regions: regions.into_values().collect(), offerings };
        yaml::done(catalog, errors)
    }

    pub fn region(&self, cloud: &str, region: &str) -> Option<&Region> {
        self.regions.iter().find(|r| r.cloud == cloud && r.region == region)
    }

    /// The distinct clouds, sorted.
    pub fn clouds(&self) -> Vec<String> {
        let set: BTreeSet<&str> = self.regions.iter().map(|r| r.cloud.as_str()).collect();
        set.into_iter().map(str::to_owned).collect()
    }
}

fn offering(
    o: RawOffering,
    path: &str,
    regions: &BTreeMap<(String, String), Region>,
    errors: &mut Vec<String>,
) -> Option<Offering> {
    check_name(&o.instance, &format!("{path}.instance"), errors);
    let accelerator = match crate::job::parse_accelerators(&format!("{}:1", o.accelerator)) {
        Ok((a, _)) if a == o.accelerator => a,
        _ => {
            errors.push(format!("{path}.accelerator: must be an upper-case model name such as H100 or GB200"));
            return None;
        }
    };
    if !(1..=1_024).contains(&o.gpus) {
        errors.push(format!("{path}.gpus: must be between 1 and 1024"));
    }
    let Some(kind) = PriceKind::parse(&o.kind) else {
        errors.push(format!(
            "{path}.kind: unknown price kind {:?} (expected on_demand, spot, reserved, capacity_block or contract)",
            o.kind
        ));
        return None;
    };
    match (kind, o.usd_per_hour) {
        (PriceKind::Contract, Some(_)) => {
            errors.push(format!("{path}.usd_per_hour: a contract offering has no public price; put a negotiated one in the placer's config"));
        }
        (_, Some(p)) if !(p.is_finite() && p > 0.0 && p < 1e6) => {
            errors.push(format!("{path}.usd_per_hour: must be > 0 and below 1,000,000"));
        }
        _ => (),
    }
    if !o.source.starts_with("https://") {
        errors.push(format!("{path}.source: must be an https:// URL"));
    }
    let checked = parse_time(&o.checked).map_err(|e| errors.push(format!("{path}.checked: {e}"))).ok()?;
    let Some(region) = regions.get(&(o.cloud.clone(), o.region.clone())) else {
        errors.push(format!("{path}.region: {}/{} is not in `regions`", o.cloud, o.region));
        return None;
    };
    Some(Offering {
        id: format!("{}/{}/{}/{}", o.cloud, o.region, o.instance, kind),
        cloud: o.cloud,
        region: o.region,
        jurisdiction: region.jurisdiction.clone(),
        instance: o.instance,
        accelerator,
        gpus: o.gpus,
        kind,
        list_usd_per_hour: o.usd_per_hour,
        usd_per_hour: o.usd_per_hour,
        negotiated: None,
        prepaid: None,
        source: o.source,
        checked,
        note: o.note,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_catalog_is_valid_dated_and_sourced() {
        let c = Catalog::from_yaml(SHIPPED).unwrap_or_else(|e| panic!("{e}"));
        assert!(c.offerings.len() >= 20);
        for cloud in ["aws", "azure", "gcp", "oci"] {
            assert!(c.offerings.iter().any(|o| o.cloud == cloud), "{cloud}");
        }
        for o in &c.offerings {
            assert!(o.source.starts_with("https://"), "{}", o.id);
            assert!(o.checked.0 > 0, "{}", o.id);
            if o.kind == PriceKind::Contract {
                assert!(o.list_usd_per_hour.is_none(), "{}", o.id);
            }
        }
        for model in ["H100", "GB200", "B200"] {
            assert!(c.offerings.iter().any(|o| o.accelerator == model), "{model}");
        }
    }

    #[test]
    fn bad_rows_are_all_reported() {
        let text = r#"
as_of: 2026-12-01
regions:
  - { cloud: aws, region: us-east-1, jurisdiction: US }
offerings:
  - { cloud: aws, region: us-east-1, instance: p5.48xlarge, accelerator: H100, gpus: 8, kind: contract, usd_per_hour: 10, source: "https://x", checked: 2026-12-01 }
  - { cloud: aws, region: us-west-9, instance: p5.48xlarge, accelerator: H100, gpus: 8, kind: on_demand, source: "http://x", checked: 2026-12-01 }
  - { cloud: aws, region: us-east-1, instance: p5.48xlarge, accelerator: h100, gpus: 0, kind: cheap, source: "https://x", checked: soon }
  - { cloud: aws, region: us-east-1, instance: p5.48xlarge, accelerator: H100, gpus: 8, kind: spot, usd_per_hour: -1, source: "https://x", checked: 2026-12-01, colour: red }
"#;
        let errors = Catalog::from_yaml(text).unwrap_err().lines();
        let want = [
            "regions[0].jurisdiction: must be a lower-case code",
            "offerings[0].usd_per_hour: a contract offering has no public price",
            "offerings[1].source: must be an https:// URL",
            "offerings[1].region: aws/us-west-9 is not in `regions`",
            "offerings[2].accelerator: must be an upper-case model name",
            "offerings[3].colour: unknown field `colour`",
        ];
        for w in want {
            assert!(errors.iter().any(|e| e.starts_with(w)), "missing {w:?} in {errors:#?}");
        }
    }
}
