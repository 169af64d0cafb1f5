//! The HTML report: one page, inline SVG line charts over time per policy (share per cloud,
//! latency percentiles, cumulative spend, commitment burn-down against pace). No scripts.

use std::fmt::Write;

use crate::report::table;
use crate::results::{Report, RunResult};

const COLORS: &[&str] = &["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];
const W: f64 = 640.0;
const H: f64 = 200.0;
const PAD: f64 = 40.0;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// A number with as many decimals as its size calls for.
fn number(v: f64) -> String {
    match v.abs() {
        a if a >= 100.0 => format!("{v:.0}"),
        a if a >= 1.0 => format!("{v:.1}"),
        _ => format!("{v:.3}"),
    }
}

/// Seconds as the largest sensible unit.
fn duration(seconds: f64) -> String {
    match seconds {
        s if s >= 2.0 * 86_400.0 => format!("{:.0} days", s / 86_400.0),
        s if s >= 2.0 * 3_600.0 => format!("{:.1} h", s / 3_600.0),
        s if s >= 120.0 => format!("{:.0} min", s / 60.0),
        s => format!("{s:.0} s"),
    }
}

/// A line chart of `series` (name, points (x, y)) with axis labels.
fn chart(title: &str, unit: &str, series: &[(String, Vec<(f64, f64)>)]) -> String {
    let xs = series.iter().flat_map(|s| s.1.iter().map(|p| p.0));
    let ys = series.iter().flat_map(|s| s.1.iter().map(|p| p.1));
    let x_max = xs.fold(0.0f64, f64::max).max(1e-9);
    let y_max = match unit {
        "%" => 100.0,
        _ => ys.fold(0.0f64, f64::max).max(1e-9) * 1.05,
    };
    let mut svg = format!(
        "<figure><figcaption>{}</figcaption><svg viewBox=\"0 0 {} {}\" width=\"{}\" height=\"{}\" role=\"img\">",
        escape(title),
        W + PAD + 120.0,
        H + PAD,
        W + PAD + 120.0,
        H + PAD
    );
    let _ = write!(svg, "<line x1=\"{PAD}\" y1=\"{H}\" x2=\"{}\" y2=\"{H}\" stroke=\"#888\"/>", W + PAD);
    let _ = write!(svg, "<line x1=\"{PAD}\" y1=\"0\" x2=\"{PAD}\" y2=\"{H}\" stroke=\"#888\"/>");
    let _ = write!(svg, "<text x=\"2\" y=\"12\" font-size=\"10\">{} {}</text>", number(y_max), escape(unit));
    let _ =
        write!(svg, "<text x=\"{}\" y=\"{}\" font-size=\"10\">{}</text>", W + PAD - 40.0, H + 14.0, duration(x_max));
    for (i, (name, points)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let path: Vec<String> =
            points.iter().map(|(x, y)| format!("{:.1},{:.1}", PAD + x / x_max * W, H - y / y_max * H)).collect();
        let _ = write!(
            svg,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\" points=\"{}\"/>",
            path.join(" ")
        );
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{}\" font-size=\"11\" fill=\"{color}\">{}</text>",
            W + PAD + 8.0,
            14.0 + 14.0 * i as f64,
            escape(name)
        );
    }
    svg.push_str("</svg></figure>");
    svg
}

fn run_section(report: &Report, run: &RunResult) -> String {
    let t: Vec<f64> = run.series.iter().map(|s| s.t_s).collect();
    let shares: Vec<(String, Vec<(f64, f64)>)> = report
        .clouds
        .iter()
        .enumerate()
        .map(|(c, name)| {
            let points = run
                .series
                .iter()
                .zip(&t)
                .map(|(s, t)| {
                    let served: u64 = s.per_cloud.iter().sum();
                    (*t, s.per_cloud[c] as f64 / served.max(1) as f64 * 100.0)
                })
                .collect();
            (name.clone(), points)
        })
        .collect();
    let latency = vec![
        ("p50".to_owned(), run.series.iter().zip(&t).map(|(s, t)| (*t, s.latency_p50_ms)).collect()),
        ("p99".to_owned(), run.series.iter().zip(&t).map(|(s, t)| (*t, s.latency_p99_ms)).collect()),
    ];
    let spend =
        vec![("spend".to_owned(), run.series.iter().zip(&t).map(|(s, t)| (*t, s.cumulative_spend_usd)).collect())];
    let mut html = format!("<section><h2>{}</h2>", escape(&run.policy));
    html.push_str(&chart("Share of served requests per cloud", "%", &shares));
    html.push_str(&chart("Latency per step", "ms", &latency));
    html.push_str(&chart("Cumulative spend", "$", &spend));
    if !run.commitments.is_empty() {
        let mut burn = Vec::new();
        for (i, c) in run.commitments.iter().enumerate() {
            burn.push((
                format!("{} spent", c.name),
                run.series.iter().zip(&t).map(|(s, t)| (*t, s.commitments[i].0)).collect(),
            ));
            burn.push((
                format!("{} pace", c.name),
                run.series.iter().zip(&t).map(|(s, t)| (*t, s.commitments[i].1)).collect(),
            ));
        }
        html.push_str(&chart("Commitment burn-down against pace", "$", &burn));
    }
    html.push_str("</section>");
    html
}

pub fn page(report: &Report) -> String {
    let mut html = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Switchyard simulation</title>\
         <style>body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}pre{font-size:12px;overflow-x:auto}\
         figure{display:inline-block;margin:0 1em 1em 0}figcaption{font-size:13px;color:#333}</style></head><body>",
    );
    let _ = write!(html, "<h1>Simulation: {}</h1><pre>{}</pre>", escape(&report.scenario), escape(&table(report)));
    for run in &report.runs {
        html.push_str(&run_section(report, run));
    }
    html.push_str("</body></html>\n");
    html
}
