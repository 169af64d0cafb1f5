//! The config's overlays on the catalog: negotiated prices, and reservations that become
//! prepaid offerings.

use serde::Deserialize;

use crate::catalog::{Catalog, Offering, PriceKind};
use crate::date::parse_time;
use crate::yaml::{self, check_name};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrice {
    name: String,
    cloud: String,
    region: Option<String>,
    instance: Option<String>,
    kind: Option<String>,
    usd_per_hour: Option<f64>,
    discount: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReservation {
    name: String,
    cloud: String,
    region: String,
    instance: String,
    instances: u32,
    usd_per_hour: Option<f64>,
    until: String,
}

/// Applies each negotiated price, in order, to every offering it matches: `usd_per_hour` sets
/// the instance-hour price (a contract offering gets its price this way), `discount` takes a
/// share off the list price.
pub(super) fn prices(catalog: &mut Catalog, raw: Vec<(String, serde_json::Value)>, errors: &mut Vec<String>) {
    for (path, value) in raw {
        let Some(p) = yaml::at::<RawPrice>(value, &path, errors) else { continue };
        check_name(&p.name, &format!("{path}.name"), errors);
        let kind = match p.kind.as_deref().map(|k| (k, PriceKind::parse(k))) {
            None => None,
            Some((_, Some(k))) => Some(k),
            Some((k, None)) => {
                errors.push(format!("{path}.kind: unknown price kind {k:?}"));
                continue;
            }
        };
        let set = match (p.usd_per_hour, p.discount) {
            (Some(usd), None) if usd.is_finite() && usd > 0.0 && usd < 1e6 => Ok(usd),
            (None, Some(d)) if (0.0..1.0).contains(&d) => Err(d),
            (Some(_), None) => {
                errors.push(format!("{path}.usd_per_hour: must be > 0 and below 1,000,000"));
                continue;
            }
            (None, Some(_)) => {
                errors.push(format!("{path}.discount: must be at least 0 and below 1"));
                continue;
            }
            _ => {
                errors.push(format!("{path}: give exactly one of `usd_per_hour` and `discount`"));
                continue;
            }
        };
        let matches = |o: &Offering| {
            o.cloud == p.cloud
                && p.region.as_ref().is_none_or(|r| *r == o.region)
                && p.instance.as_ref().is_none_or(|i| *i == o.instance)
                && kind.is_none_or(|k| k == o.kind)
                && o.kind != PriceKind::Reserved
        };
        let mut hit = false;
        for o in catalog.offerings.iter_mut().filter(|o| matches(o)) {
            match set {
                Ok(usd) => o.usd_per_hour = Some(usd),
                Err(d) => match o.list_usd_per_hour {
                    Some(list) => o.usd_per_hour = Some(list * (1.0 - d)),
                    None => continue,
                },
            }
            o.negotiated = Some(p.name.clone());
            hit = true;
        }
        if !hit {
            errors.push(format!(
                "{path}: matches no catalog offering{}",
                if set.is_err() { " with a list price to discount" } else { "" }
            ));
        }
    }
}

/// Adds each reservation as a prepaid offering, `cloud/region/instance/reserved:NAME`.
pub(super) fn reservations(catalog: &mut Catalog, raw: Vec<(String, serde_json::Value)>, errors: &mut Vec<String>) {
    for (path, value) in raw {
        let Some(r) = yaml::at::<RawReservation>(value, &path, errors) else { continue };
        check_name(&r.name, &format!("{path}.name"), errors);
        let Some(base) =
            catalog.offerings.iter().find(|o| o.cloud == r.cloud && o.region == r.region && o.instance == r.instance)
        else {
            errors.push(format!("{path}: the catalog has no {} in {}/{}", r.instance, r.cloud, r.region));
            continue;
        };
        if !(1..=100_000).contains(&r.instances) {
            errors.push(format!("{path}.instances: must be between 1 and 100000"));
        }
        if r.usd_per_hour.is_some_and(|p| !(0.0..1e6).contains(&p)) {
            errors.push(format!("{path}.usd_per_hour: must be >= 0 and below 1,000,000"));
        }
        let Some(until) = parse_time(&r.until).map_err(|e| errors.push(format!("{path}.until: {e}"))).ok() else {
            continue;
        };
        let id = format!("{}/{}/{}/reserved:{}", r.cloud, r.region, r.instance, r.name);
        if catalog.offerings.iter().any(|o| o.id == id) {
            errors.push(format!("{path}.name: duplicate reservation {:?}", r.name));
            continue;
        }
        let gpus = base.gpus.saturating_mul(r.instances);
        let offering = Offering {
            id,
            kind: PriceKind::Reserved,
            list_usd_per_hour: r.usd_per_hour,
            usd_per_hour: r.usd_per_hour,
            negotiated: Some(r.name.clone()),
            prepaid: Some(super::prepaid(r.name, gpus, until)),
            note: Some(format!("reservation of {} instances", r.instances)),
            ..base.clone()
        };
        catalog.offerings.push(offering);
    }
    catalog.offerings.sort_by(|a, b| a.id.cmp(&b.id));
}
