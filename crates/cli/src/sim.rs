//! `switchyard sim`: runs a scenario against policies and writes the reports.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use switchyard_sim::engine::PolicyChoice;
use switchyard_sim::scenario::Scenario;
use switchyard_sim::{DEFAULT_POLICIES, html, report, simulate};

use crate::{errln, outln};

pub(crate) fn run(path: &Path, policies: &[String], seed: u64, out: &Path) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    if switchyard_sim::jobs::is_job_scenario(&text) {
        return crate::sim_jobs::run(path, &text, policies, seed, out);
    }
    let scenario = Scenario::from_yaml(&text)
        .map_err(|e| anyhow::anyhow!("{}:\n  {}", path.display(), e.to_string().replace('\n', "\n  ")))?;
    let mut names: Vec<String> = policies.to_vec();
    if names.is_empty() {
        names = DEFAULT_POLICIES.iter().map(|s| (*s).to_owned()).collect();
        if let Some(first) = scenario.config.clouds.first() {
            names.push(format!("static:{}", first.name));
        }
    }
    let choices = names
        .iter()
        .map(|n| PolicyChoice::parse(n, &scenario.config))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!(e))?;
    let tty = std::io::stderr().is_terminal();
    let mut last = (usize::MAX, -1i64);
    let report = simulate(&scenario, &choices, seed, &mut |i, done| {
        let pct = (done * 100.0) as i64;
        if tty && (i, pct) != last {
            last = (i, pct);
            let filled = (pct / 5) as usize;
            let mut stderr = std::io::stderr().lock();
            let _ = write!(stderr, "\r{:<14} [{:<20}] {:>3}%", names[i], "#".repeat(filled.min(20)), pct);
            let _ = stderr.flush();
        }
    });
    if tty {
        errln!();
    }
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let json = serde_json::to_string_pretty(&report)? + "\n";
    std::fs::write(out.join("report.json"), json)?;
    std::fs::write(out.join("report.html"), html::page(&report))?;
    crate::out!("{}", report::table(&report))?;
    outln!("reports: {} and {}", out.join("report.json").display(), out.join("report.html").display())?;
    Ok(ExitCode::SUCCESS)
}
