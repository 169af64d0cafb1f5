//! The one trait every engine implements, and the closed set of engines.

use std::collections::BTreeMap;
use std::path::PathBuf;

use switchyard_placer::Failure;
use switchyard_placer::catalog::PoolKey;

use crate::local::LocalEngine;
use crate::ray::RayEngine;

/// One attempt of a job, as an engine launches it.
#[derive(Clone, Debug)]
pub struct Launch {
    pub job_id: String,
    pub attempt: u32,
    pub pool: PoolKey,
    pub offering: String,
    /// Accelerators the attempt holds in the pool (whole instances).
    pub gpus: u32,
    /// The shell command: the job's `run`, or its checkpoint's `resume` when re-placed.
    pub command: String,
    /// The job's environment plus the placer's `SWITCHYARD_*` variables.
    pub env: BTreeMap<String, String>,
    pub log_path: PathBuf,
}

/// What an engine says of a job it runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunState {
    /// Submitted, waiting for resources.
    Pending,
    Running,
    Succeeded,
    /// The job's own failure.
    Failed {
        exit_code: Option<i32>,
        detail: String,
    },
    /// Stopped at our request.
    Stopped,
    /// The job is gone without an exit status: its process was killed or its cluster lost it.
    Gone(String),
}

/// An engine's own trouble (not the job's): it cannot be reached, or refused us.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct EngineError(pub Failure);

/// Runs jobs somewhere. Submission failures are classified into the placer's failure classes,
/// so that the placer can block the right scope and re-plan.
pub trait Engine {
    /// Accelerators of the pool free right now, when the engine can tell.
    fn free(&self, pool: &PoolKey) -> impl Future<Output = Result<Option<u32>, EngineError>> + Send;
    /// Starts an attempt; returns the engine's id for it.
    fn submit(&self, launch: &Launch) -> impl Future<Output = Result<String, EngineError>> + Send;
    fn status(&self, id: &str) -> impl Future<Output = Result<RunState, EngineError>> + Send;
    fn logs(&self, id: &str) -> impl Future<Output = Result<String, EngineError>> + Send;
    fn stop(&self, id: &str) -> impl Future<Output = Result<(), EngineError>> + Send;
}

/// The engines there are; each call goes to the one named in the pool's config.
pub enum AnyEngine {
    Local(LocalEngine),
    Ray(RayEngine),
}

impl Engine for AnyEngine {
    async fn free(&self, pool: &PoolKey) -> Result<Option<u32>, EngineError> {
        match self {
            AnyEngine::Local(e) => e.free(pool).await,
            AnyEngine::Ray(e) => e.free(pool).await,
        }
    }
    async fn submit(&self, launch: &Launch) -> Result<String, EngineError> {
        match self {
            AnyEngine::Local(e) => e.submit(launch).await,
            AnyEngine::Ray(e) => e.submit(launch).await,
        }
    }
    async fn status(&self, id: &str) -> Result<RunState, EngineError> {
        match self {
            AnyEngine::Local(e) => e.status(id).await,
            AnyEngine::Ray(e) => e.status(id).await,
        }
    }
    async fn logs(&self, id: &str) -> Result<String, EngineError> {
        match self {
            AnyEngine::Local(e) => e.logs(id).await,
            AnyEngine::Ray(e) => e.logs(id).await,
        }
    }
    async fn stop(&self, id: &str) -> Result<(), EngineError> {
        match self {
            AnyEngine::Local(e) => e.stop(id).await,
            AnyEngine::Ray(e) => e.stop(id).await,
        }
    }
}
