//! `switchyard place JOB.yaml` and `switchyard jobs [logs ID | cancel ID]`: GPU jobs on the
//! placer's engines, their progress while provisioning, and a status table.

use std::path::Path;
use std::process::ExitCode;

use switchyard_placer::date::{format_duration, format_time};
use switchyard_placer::lifecycle::Status;
use switchyard_placer::table::{self, grid, usd};
use switchyard_placer_engines::{Placer, Progress, wall_clock};

use crate::placer_args::{PlacerArgs, load_config, load_job};
use crate::{errln, out, outln};

#[derive(clap::Subcommand, Clone, Debug)]
pub(crate) enum JobsAction {
    /// Print every attempt's output.
    Logs { id: String },
    /// Stop the job and mark it cancelled.
    Cancel { id: String },
}

fn print_progress(p: Progress) {
    errln!("{p}");
}

pub(crate) async fn place(args: &PlacerArgs, job: &Path, dry_run: bool, detach: bool) -> anyhow::Result<ExitCode> {
    let config = load_config(&args.config)?;
    let (spec, text) = load_job(job)?;
    let placer = Placer::open(config, &args.state).await?;
    if dry_run {
        let plan = placer.dry_run(&spec).await?;
        outln!(
            "{}: {}x {}:{} for {}, {} workload, jurisdictions {}",
            spec.name,
            spec.nodes,
            spec.accelerator,
            spec.per_node,
            format_duration(spec.duration),
            spec.workload,
            if spec.jurisdictions.is_empty() { "any".to_owned() } else { spec.jurisdictions.join(", ") }
        )?;
        outln!("\nCandidates, best first:")?;
        out!("{}", table::ranked(&plan))?;
        outln!("\nRejected:")?;
        out!("{}", table::rejected(&plan))?;
        return Ok(match plan.best() {
            Some(best) => {
                outln!("\nWould place on {} (expected cost {}).", best.offering, usd(best.cost_usd))?;
                ExitCode::SUCCESS
            }
            None => {
                outln!("\nNothing fits.")?;
                ExitCode::FAILURE
            }
        });
    }
    let id = placer.submit(&spec, &text).await?;
    errln!("{id}: submitted");
    let status = placer.place(&id, false, &mut print_progress).await?;
    let status = match status {
        Status::Running if !detach => placer.supervise(&id, &mut print_progress).await?,
        other => other,
    };
    let row = placer.store.job(&id).await?;
    if status == Status::Unplaceable
        && let Some(row) = row
    {
        outln!("{id}: nothing fits. Every candidate and why it was rejected:\n{}", row.detail)?;
    } else {
        outln!("{id}: {status}")?;
    }
    Ok(if matches!(status, Status::Succeeded | Status::Running) { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

pub(crate) async fn jobs(args: &PlacerArgs, action: Option<&JobsAction>) -> anyhow::Result<ExitCode> {
    let placer = Placer::open(load_config(&args.config)?, &args.state).await?;
    match action {
        Some(JobsAction::Logs { id }) => {
            out!("{}", placer.logs(id).await?)?;
            Ok(ExitCode::SUCCESS)
        }
        Some(JobsAction::Cancel { id }) => {
            let status = placer.cancel(id).await?;
            outln!("{id}: {status}")?;
            Ok(ExitCode::SUCCESS)
        }
        None => {
            placer.reconcile(&mut print_progress).await?;
            let now = wall_clock();
            let mut rows = Vec::new();
            for job in placer.store.jobs().await? {
                let attempts = placer.store.attempts(&job.id).await?;
                let spend: f64 = attempts.iter().map(|a| a.spend(now)).sum();
                let place = attempts.last().map_or("-".to_owned(), |a| a.offering.clone());
                let status = match job.unreachable_since {
                    Some(since) => format!("{} (unreachable since {})", job.status, format_time(since)),
                    None => job.status.to_string(),
                };
                let detail = job.detail.lines().next().unwrap_or("").chars().take(60).collect::<String>();
                rows.push(vec![
                    job.id.clone(),
                    status,
                    place,
                    attempts.len().to_string(),
                    format_time(job.created),
                    usd(spend),
                    detail,
                ]);
            }
            out!("{}", grid(&["id", "status", "where", ">attempts", "submitted", ">spend", "detail"], &rows))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
