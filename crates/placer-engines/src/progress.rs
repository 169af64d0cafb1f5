//! What the placer reports while it works, one line per event, for the CLI and the demo.

use std::fmt;

use switchyard_placer::block::Block;
use switchyard_placer::date::format_time;
use switchyard_placer::lifecycle::Status;
use switchyard_placer::{Failure, Plan};

#[derive(Clone, Debug)]
pub enum Progress {
    /// A plan was made; `best` is what will be tried.
    Planned {
        job: String,
        plan: Plan,
    },
    Trying {
        job: String,
        offering: String,
        engine: String,
        resume: bool,
    },
    /// Provisioning failed; the scope now blocked, if the failure blamed the place.
    Failed {
        job: String,
        offering: String,
        failure: Failure,
        block: Option<Block>,
    },
    Started {
        job: String,
        offering: String,
        attempt: u32,
        resumed: bool,
    },
    /// The engine cannot be reached under a running job (not the job's failure).
    Unreachable {
        job: String,
        offering: String,
        detail: String,
    },
    /// A running attempt ended; what follows comes next.
    AttemptEnded {
        job: String,
        offering: String,
        attempt: u32,
        how: String,
    },
    Finished {
        job: String,
        status: Status,
        detail: String,
    },
}

impl fmt::Display for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Progress::Planned { job, plan } => match plan.best() {
                Some(best) => write!(
                    f,
                    "{job}: {} candidates, {} rejected; best {} (expected ${:.0})",
                    plan.ranked.len(),
                    plan.rejected.len(),
                    best.offering,
                    best.cost_usd
                ),
                None => write!(f, "{job}: nothing fits ({} offerings rejected)", plan.rejected.len()),
            },
            Progress::Trying { job, offering, engine, resume } => {
                write!(
                    f,
                    "{job}: provisioning {offering} on engine {engine}{}",
                    if *resume { " (resuming)" } else { "" }
                )
            }
            Progress::Failed { job, offering, failure, block } => {
                write!(f, "{job}: {offering} failed: {failure}")?;
                if let Some(b) = block {
                    write!(f, "; blocked {} until {}", b.scope, format_time(b.until))?;
                }
                Ok(())
            }
            Progress::Started { job, offering, attempt, resumed } => write!(
                f,
                "{job}: running on {offering} (attempt {attempt}{})",
                if *resumed { ", resumed from its checkpoint" } else { "" }
            ),
            Progress::Unreachable { job, offering, detail } => {
                write!(f, "{job}: cannot reach the job on {offering}: {detail} (the job has not failed)")
            }
            Progress::AttemptEnded { job, offering, attempt, how } => {
                write!(f, "{job}: attempt {attempt} on {offering} ended: {how}")
            }
            Progress::Finished { job, status, detail } => {
                write!(f, "{job}: {status}")?;
                if !detail.is_empty() && !detail.contains('\n') {
                    write!(f, ": {detail}")?;
                }
                Ok(())
            }
        }
    }
}
