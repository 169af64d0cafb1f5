//! The terminal table: one row per policy.

use std::fmt::Write;

use crate::results::Report;

pub fn table(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "scenario {} · seed {} · mode {} · {:.0} s simulated · oracle spend ${:.2}",
        report.scenario, report.seed, report.mode, report.duration_s, report.oracle_spend_usd
    );
    let clouds: Vec<String> = report.clouds.iter().map(|c| format!("{c:>6}")).collect();
    let _ = writeln!(
        out,
        "{:<14} {:>10} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>12} {:>8} {:>12} {:>9} {:>8} {} {:>7}",
        "policy",
        "requests",
        "success",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "ttft50",
        "ttft99",
        "spend $",
        "÷oracle",
        "effective $",
        "failover",
        "hedges",
        clouds.join(" "),
        "burn"
    );
    for r in &report.runs {
        let shares: Vec<String> = r.per_cloud.iter().map(|c| format!("{:>5.1}%", c.share * 100.0)).collect();
        let burn = if r.commitments.is_empty() {
            "-".to_owned()
        } else {
            let spent: f64 = r.commitments.iter().map(|c| c.spent_usd).sum();
            let pace: f64 = r.commitments.iter().map(|c| c.pace_usd).sum();
            format!("{:.0}%", 100.0 * spent / pace.max(1e-9))
        };
        let _ = writeln!(
            out,
            "{:<14} {:>10} {:>8.3}% {:>8.0} {:>8.0} {:>8.0} {:>8.0} {:>8.0} {:>12.2} {:>8.3} {:>12.2} {:>9} {:>8} {} {:>7}",
            r.policy,
            r.requests,
            r.success_rate * 100.0,
            r.latency_ms.p50,
            r.latency_ms.p95,
            r.latency_ms.p99,
            r.ttft_ms.p50,
            r.ttft_ms.p99,
            r.spend_usd,
            r.spend_vs_oracle,
            r.effective_cost_usd,
            r.failovers,
            r.hedges,
            shares.join(" "),
            burn
        );
        if r.outside_jurisdiction > 0 {
            let _ =
                writeln!(out, "  !! {} requests served outside their tenant's jurisdictions", r.outside_jurisdiction);
        }
    }
    out
}
