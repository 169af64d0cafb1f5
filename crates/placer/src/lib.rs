//! GPU job placement, pure: a job spec and a catalog snapshot in, a ranked plan out.
//!
//! Nothing here does IO, reads a clock or spawns a task, in the core's style: the current time
//! ([`Time`], microseconds since the Unix epoch at the edge) is an argument, and the same
//! inputs always give the same plan, ties broken by offering id. The engines that provision
//! jobs (local processes, Ray clusters) and the job store live at the edge, in
//! `switchyard-placer-engines`, and only feed this crate facts: free capacity, failures, job
//! status.
//!
//! - [`job`]: the job spec (`JOB.yaml`), validated with paths.
//! - [`catalog`]: GPU offerings per cloud and region, with price kind, source and date.
//! - [`config`]: the placer's config: pools (capacity, quota, engine), negotiated prices,
//!   reservations, commitments, workload rules, block lifetimes.
//! - [`optimize`]: candidates, filters, effective cost, ranking, and why each was rejected.
//! - [`block`]: failures classified into blocks with a scope and an expiry.
//! - [`lifecycle`]: what happens to a job after each attempt: done, failed, re-placed, lost.

pub mod block;
pub mod catalog;
pub mod config;
pub mod cost;
pub mod date;
pub mod job;
pub mod lifecycle;
pub mod optimize;
pub mod table;
#[cfg(test)]
mod testing;
mod yaml;

pub use block::{Block, Blocks, Failure, FailureClass, Scope};
pub use catalog::{Catalog, Offering, PriceKind};
pub use config::PlacerConfig;
pub use job::JobSpec;
pub use optimize::{Candidate, Plan, PoolUse, Reason, Rejected, Snapshot, plan};
pub use switchyard_core::Time;

/// Loading a file failed: YAML syntax, or every shape or validation error found, each with its
/// path (`offerings[3].usd_per_hour: must be > 0`).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{0}")]
    Parse(String),
    #[error("{}", .0.join("\n"))]
    Invalid(Vec<String>),
}

impl LoadError {
    /// Every message, one per line, for printing under the file name.
    pub fn lines(&self) -> Vec<String> {
        match self {
            LoadError::Parse(m) => vec![m.clone()],
            LoadError::Invalid(errors) => errors.clone(),
        }
    }
}
