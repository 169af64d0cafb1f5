//! `switchyard catalog`: the GPU catalog as a table, filtered by accelerator and cloud, with the
//! config's negotiated prices and reservations when a config is given.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use switchyard_placer::Catalog;
use switchyard_placer::catalog::PriceKind;
use switchyard_placer::date::format_date;
use switchyard_placer::table::grid;

use crate::outln;
use crate::placer_args::{load_config, load_error};

pub(crate) fn run(
    accelerator: Option<&str>,
    cloud: Option<&str>,
    catalog: Option<&Path>,
    config: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let catalog = match (catalog, config) {
        (_, Some(config)) => load_config(config)?.catalog,
        (Some(path), None) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            Catalog::from_yaml(&text).map_err(|e| load_error(path, &e))?
        }
        (None, None) => Catalog::shipped(),
    };
    let rows: Vec<Vec<String>> = catalog
        .offerings
        .iter()
        .filter(|o| accelerator.is_none_or(|a| o.accelerator.eq_ignore_ascii_case(a)))
        .filter(|o| cloud.is_none_or(|c| o.cloud == c))
        .map(|o| {
            let price = match (o.kind, o.usd_per_hour) {
                (_, Some(p)) => format!("{p:.2}"),
                (PriceKind::Contract, None) => "contract".to_owned(),
                (_, None) => "-".to_owned(),
            };
            let per_gpu = o.usd_per_hour.map_or("-".to_owned(), |p| format!("{:.3}", p / f64::from(o.gpus)));
            let basis = match (&o.prepaid, &o.negotiated) {
                (Some(p), _) => format!("prepaid {} until {}", p.reservation, format_date(p.until)),
                (None, Some(n)) => format!("negotiated {n}"),
                (None, None) if o.usd_per_hour.is_some() => "list".to_owned(),
                (None, None) => String::new(),
            };
            vec![
                o.cloud.clone(),
                o.region.clone(),
                o.jurisdiction.clone(),
                o.instance.clone(),
                format!("{}x{}", o.gpus, o.accelerator),
                o.kind.to_string(),
                price,
                per_gpu,
                basis,
                format_date(o.checked),
                o.source.clone(),
            ]
        })
        .collect();
    crate::out!(
        "{}",
        grid(
            &[
                "cloud",
                "region",
                "jur",
                "instance",
                "accelerators",
                "kind",
                ">$/inst-h",
                ">$/GPU-h",
                "price basis",
                "checked",
                "source"
            ],
            &rows,
        )
    )?;
    outln!(
        "{} offerings; catalog as of {}. Prices change: check `checked` and the source.",
        rows.len(),
        format_date(catalog.as_of)
    )?;
    Ok(ExitCode::SUCCESS)
}
