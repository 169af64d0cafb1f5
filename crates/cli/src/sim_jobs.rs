//! `switchyard sim` on a job-placement scenario (`kind: jobs`): policies side by side, a table
//! and a JSON report.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use switchyard_sim::jobs::{JobPolicy, JobScenario, simulate, table};

use crate::outln;
use crate::placer_args::load_error;

pub(crate) fn run(path: &Path, text: &str, policies: &[String], seed: u64, out: &Path) -> anyhow::Result<ExitCode> {
    let scenario = JobScenario::from_yaml(text).map_err(|e| load_error(path, &e))?;
    let mut names: Vec<String> = policies.to_vec();
    if names.is_empty() {
        names = vec!["ours".to_owned(), "cheapest".to_owned()];
        let single = scenario.placer.rules.values().find_map(|r| r.prefer.first().cloned());
        names.push(format!("single:{}", single.unwrap_or_else(|| scenario.placer.clouds[0].clone())));
    }
    let choices = names
        .iter()
        .map(|n| JobPolicy::parse(n, &scenario))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!(e))?;
    let report = simulate(&scenario, &choices, seed);
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    std::fs::write(out.join("report.json"), serde_json::to_string_pretty(&report)? + "\n")?;
    crate::out!("{}", table(&report))?;
    outln!("report: {}", out.join("report.json").display())?;
    Ok(ExitCode::SUCCESS)
}
