//! The demo's closing table and report: requests and share per deployment, success rate,
//! failovers, latency percentiles, cost per cloud, and the EU residency check.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use switchyard_core::config::Config;
use switchyard_core::usage::{Usage, list_cost};

use crate::load::Outcome;

pub(crate) struct Phases {
    pub(crate) outage_from: Duration,
    pub(crate) outage_until: Duration,
    pub(crate) cloud_down: String,
}

pub(crate) struct Summary {
    pub(crate) text: String,
    pub(crate) n_failed: usize,
    pub(crate) eu_violations: usize,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

pub(crate) fn summarise(
    config: &Config,
    outcomes: &[Outcome],
    phases: &Phases,
    eu_tenant: usize,
    continuations: (u64, u64),
) -> Summary {
    let mut out = String::new();
    let n = outcomes.len();
    let n_ok = outcomes.iter().filter(|o| o.ok).count();
    let n_failed = n - n_ok;
    let n_failover = outcomes.iter().filter(|o| o.ok && o.attempts > 1).count();
    let mut latencies: Vec<Duration> = outcomes.iter().filter(|o| o.ok).map(|o| o.latency).collect();
    latencies.sort();

    let _ = writeln!(out, "## Totals\n");
    let n_streams = outcomes.iter().filter(|o| o.stream).count();
    let _ = writeln!(
        out,
        "| requests | streaming | succeeded | failed | success rate | failovers | streams continued | p50 | p99 |"
    );
    let _ = writeln!(out, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let _ = writeln!(
        out,
        "| {n} | {n_streams} | {n_ok} | {n_failed} | {:.3}% | {n_failover} | {} ok / {} failed | {} | {} |\n",
        if n == 0 { 0.0 } else { 100.0 * n_ok as f64 / n as f64 },
        continuations.0,
        continuations.1,
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.99)),
    );

    let _ = writeln!(out, "## Per deployment\n");
    let _ = writeln!(out, "| deployment | cloud | region | jurisdiction | requests | share | p50 | p99 | cost |");
    let _ = writeln!(out, "|---|---|---|---|---:|---:|---:|---:|---:|");
    let mut by_cloud: BTreeMap<String, (usize, f64)> = BTreeMap::new();
    for d in &config.deployments {
        let served: Vec<&Outcome> =
            outcomes.iter().filter(|o| o.ok && o.deployment.as_deref() == Some(&d.name)).collect();
        let mut lat: Vec<Duration> = served.iter().map(|o| o.latency).collect();
        lat.sort();
        let cost: f64 = served
            .iter()
            .map(|o| {
                list_cost(
                    &d.price,
                    &Usage { prompt_tokens: o.usage.0, completion_tokens: o.usage.1, cached_prompt_tokens: 0 },
                )
            })
            .sum();
        let cloud = &config.cloud_of(d.id).name;
        let entry = by_cloud.entry(cloud.clone()).or_default();
        entry.0 += served.len();
        entry.1 += cost;
        if served.is_empty() && d.kind != switchyard_core::config::DeploymentKind::Chat {
            continue;
        }
        let _ = writeln!(
            out,
            "| {} | {cloud} | {} | {} | {} | {:.1}% | {} | {} | ${:.6} |",
            d.name,
            d.region,
            d.jurisdiction,
            served.len(),
            if n_ok == 0 { 0.0 } else { 100.0 * served.len() as f64 / n_ok as f64 },
            ms(percentile(&lat, 0.5)),
            ms(percentile(&lat, 0.99)),
            cost,
        );
    }

    let _ = writeln!(out, "\n## Per cloud, and share before / during / after the {} outage\n", phases.cloud_down);
    let _ = writeln!(out, "| cloud | requests | cost | before | during | after |");
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|");
    let phase_of = |o: &Outcome| {
        if o.at < phases.outage_from {
            0
        } else if o.at < phases.outage_until {
            1
        } else {
            2
        }
    };
    let cloud_of = |o: &Outcome| {
        o.deployment
            .as_deref()
            .and_then(|name| config.deployment_by_name(name))
            .map(|d| config.cloud_of(d.id).name.clone())
    };
    let mut phase_totals = [0usize; 3];
    for o in outcomes.iter().filter(|o| o.ok) {
        phase_totals[phase_of(o)] += 1;
    }
    for (cloud, (count, cost)) in &by_cloud {
        let mut shares = [0usize; 3];
        for o in outcomes.iter().filter(|o| o.ok && cloud_of(o).as_deref() == Some(cloud.as_str())) {
            shares[phase_of(o)] += 1;
        }
        let pct = |i: usize| {
            if phase_totals[i] == 0 { 0.0 } else { 100.0 * shares[i] as f64 / phase_totals[i] as f64 }
        };
        let _ = writeln!(out, "| {cloud} | {count} | ${cost:.6} | {:.1}% | {:.1}% | {:.1}% |", pct(0), pct(1), pct(2));
    }

    let eu: Vec<&Outcome> = outcomes.iter().filter(|o| o.tenant == eu_tenant).collect();
    let eu_violations = eu
        .iter()
        .filter(|o| {
            o.deployment
                .as_deref()
                .and_then(|name| config.deployment_by_name(name))
                .is_some_and(|d| d.jurisdiction != "eu")
        })
        .count();
    let _ = writeln!(out, "\n## EU residency\n");
    let _ = writeln!(
        out,
        "{} requests of the EU-only tenant; {} served outside the EU: {}",
        eu.len(),
        eu_violations,
        if eu_violations == 0 { "HOLDS" } else { "VIOLATED" }
    );
    let failures: Vec<&Outcome> = outcomes.iter().filter(|o| !o.ok).take(10).collect();
    if !failures.is_empty() {
        let _ = writeln!(out, "\n## First failures\n");
        for f in failures {
            let _ = writeln!(
                out,
                "- at {:.1}s status {}: {}",
                f.at.as_secs_f64(),
                f.status,
                f.error.as_deref().unwrap_or("")
            );
        }
    }
    Summary { text: out, n_failed, eu_violations }
}
