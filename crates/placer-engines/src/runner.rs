//! The placing loop and the supervisor: plan, provision the best, block what failed and plan
//! again until placed or nothing fits; then watch running jobs, and re-place a job whose node or
//! cluster is lost, resuming from its checkpoint, within the configured bounds.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use switchyard_core::Time;
use switchyard_placer::catalog::PriceKind;
use switchyard_placer::config::EngineKind;
use switchyard_placer::lifecycle::Status;
use switchyard_placer::{Candidate, Failure, FailureClass, JobSpec, PlacerConfig, Snapshot, plan, table};

use crate::engine::{AnyEngine, Engine, EngineError, Launch, RunState};
use crate::local::{self, LocalEngine};
use crate::progress::Progress;
use crate::ray::RayEngine;
use crate::store::{AttemptRow, JobRow, Store, StoreError};
use crate::wall_clock;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Setup(String),
    #[error("no job {0:?}")]
    NoJob(String),
    #[error("job {id}: its stored spec no longer parses: {error}")]
    Spec { id: String, error: String },
}

pub struct Placer {
    pub config: PlacerConfig,
    pub store: Store,
    engines: BTreeMap<String, AnyEngine>,
    state: PathBuf,
    /// How often the supervisor polls engines.
    pub poll: Duration,
}

/// Resolves a secret reference: `env:NAME` or `file:PATH` (trailing whitespace dropped).
fn secret(reference: &str) -> Result<String, String> {
    if let Some(name) = reference.strip_prefix("env:") {
        return std::env::var(name).map_err(|_| format!("environment variable {name} is not set"));
    }
    if let Some(path) = reference.strip_prefix("file:") {
        return std::fs::read_to_string(path)
            .map(|s| s.trim_end().to_owned())
            .map_err(|e| format!("cannot read {path}: {e}"));
    }
    Err("must be env:NAME or file:PATH".to_owned())
}

/// At most this many provisioning tries per placement: every failure blocks at least the
/// offering tried, so the loop ends anyway; this bounds it against a misbehaving engine.
const MAX_TRIES: usize = 64;

impl Placer {
    /// Opens the job store under `state` and builds the engines the config names.
    pub async fn open(config: PlacerConfig, state: &Path) -> Result<Placer, RunError> {
        std::fs::create_dir_all(state.join("logs"))
            .map_err(|e| RunError::Setup(format!("cannot create {}: {e}", state.display())))?;
        let store = Store::open(&state.join("jobs.sqlite")).await?;
        let mut engines = BTreeMap::new();
        for spec in &config.engines {
            let engine = match &spec.kind {
                EngineKind::Local => {
                    let pools = config
                        .pools
                        .iter()
                        .filter(|p| p.engine == spec.name)
                        .filter_map(|p| p.capacity.map(|c| (p.key.clone(), c)))
                        .collect();
                    let engine = LocalEngine::new(local::dir(state), pools)
                        .map_err(|e| RunError::Setup(format!("local engine: {e}")))?;
                    AnyEngine::Local(engine)
                }
                EngineKind::Ray { address, token } => {
                    let token = token
                        .as_deref()
                        .map(secret)
                        .transpose()
                        .map_err(|e| RunError::Setup(format!("engine {}: token: {e}", spec.name)))?;
                    AnyEngine::Ray(RayEngine::new(&spec.name, address, token).map_err(RunError::Setup)?)
                }
            };
            engines.insert(spec.name.clone(), engine);
        }
        Ok(Placer { config, store, engines, state: state.to_owned(), poll: Duration::from_millis(250) })
    }

    fn engine(&self, name: &str) -> &AnyEngine {
        // Pools only name engines the config declares (validated), and `open` built each one.
        &self.engines[name]
    }

    /// The world as seen now: what our attempts hold, what engines report free, spend against
    /// commitments, and the blocks in force.
    pub async fn snapshot(&self, now: Time) -> Result<Snapshot, RunError> {
        let mut snapshot = Snapshot { blocks: self.store.blocks(now).await?, ..Snapshot::default() };
        for a in self.store.open_attempts().await? {
            snapshot.pools.entry(a.pool.clone()).or_default().used += a.gpus;
            if a.prepaid {
                *snapshot.reserved_used.entry(a.offering.clone()).or_default() += a.gpus;
            }
        }
        for pool in &self.config.pools {
            let live_free = self.engine(&pool.engine).free(&pool.key).await.unwrap_or(None);
            let entry = snapshot.pools.entry(pool.key.clone()).or_default();
            entry.live_free = live_free;
        }
        snapshot.commitment_spent = self.store.commitment_spend(self.config.commitments_as_of, now).await?;
        Ok(snapshot)
    }

    /// The plan for `job` right now, without provisioning anything (`--dry-run`).
    pub async fn dry_run(&self, job: &JobSpec) -> Result<switchyard_placer::Plan, RunError> {
        let now = wall_clock();
        Ok(plan(&self.config, &self.snapshot(now).await?, job, now))
    }

    /// Records a job, queued, and returns its id.
    pub async fn submit(&self, job: &JobSpec, spec_text: &str) -> Result<String, RunError> {
        Ok(self.store.insert_job(&job.name, spec_text, wall_clock()).await?)
    }

    fn spec(row: &JobRow) -> Result<JobSpec, RunError> {
        JobSpec::from_yaml(&row.spec).map_err(|e| RunError::Spec { id: row.id.clone(), error: e.to_string() })
    }

    async fn row(&self, id: &str) -> Result<JobRow, RunError> {
        self.store.job(id).await?.ok_or_else(|| RunError::NoJob(id.to_owned()))
    }

    /// Places a job: plan, provision the best candidate, and on failure block its scope and
    /// plan again, until it runs or nothing fits (then the job is `unplaceable`, and its detail
    /// is the table of every candidate and why it was rejected).
    pub async fn place(&self, id: &str, resume: bool, progress: &mut dyn FnMut(Progress)) -> Result<Status, RunError> {
        let row = self.row(id).await?;
        let job = Self::spec(&row)?;
        for _ in 0..MAX_TRIES {
            let now = wall_clock();
            let snapshot = self.snapshot(now).await?;
            let plan = plan(&self.config, &snapshot, &job, now);
            progress(Progress::Planned { job: id.to_owned(), plan: plan.clone() });
            let Some(best) = plan.best().cloned() else {
                let detail = table::rejected(&plan);
                self.store.set_status(id, Status::Unplaceable, &detail, now).await?;
                progress(Progress::Finished { job: id.to_owned(), status: Status::Unplaceable, detail });
                return Ok(Status::Unplaceable);
            };
            self.store.set_status(id, Status::Provisioning, &best.offering, now).await?;
            match self.provision(&row, &job, &best, resume, progress).await? {
                Ok(()) => return Ok(Status::Running),
                Err(failure) if failure.class == FailureClass::InvalidJob => {
                    let detail = failure.to_string();
                    self.store.set_status(id, Status::Failed, &detail, wall_clock()).await?;
                    progress(Progress::Failed { job: id.to_owned(), offering: best.offering, failure, block: None });
                    progress(Progress::Finished { job: id.to_owned(), status: Status::Failed, detail });
                    return Ok(Status::Failed);
                }
                Err(failure) => self.block(id, &best.offering, failure, progress).await?,
            }
        }
        let detail = format!("gave up after {MAX_TRIES} provisioning failures");
        self.store.set_status(id, Status::Unplaceable, &detail, wall_clock()).await?;
        Ok(Status::Unplaceable)
    }

    async fn block(
        &self,
        job: &str,
        offering: &str,
        failure: Failure,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<(), RunError> {
        let now = wall_clock();
        let mut blocks = self.store.blocks(now).await?;
        let block = match self.config.offering(offering) {
            Some(o) => blocks.record(&failure, o, now, &self.config.blocks),
            None => None,
        };
        if let Some(b) = &block {
            self.store.save_block(b).await?;
        }
        progress(Progress::Failed { job: job.to_owned(), offering: offering.to_owned(), failure, block });
        Ok(())
    }

    /// Submits one attempt on `best` and waits for it to leave `pending` (within the start
    /// timeout). The outer error is the store's; the inner one is the engine's failure.
    async fn provision(
        &self,
        row: &JobRow,
        job: &JobSpec,
        best: &Candidate,
        resume: bool,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Result<(), Failure>, RunError> {
        let Some(pool) = self.config.pool(&best.pool) else {
            return Ok(Err(Failure::new(FailureClass::NoCapacity, "pool not in the config")));
        };
        let engine = self.engine(&pool.engine);
        let n = self.store.attempts(&row.id).await?.len() as u32 + 1;
        let checkpoints = self.state.join("checkpoints").join(&row.id);
        std::fs::create_dir_all(&checkpoints)
            .map_err(|e| RunError::Setup(format!("{}: {e}", checkpoints.display())))?;
        let command = match (&job.checkpoint, resume) {
            (Some(c), true) => c.resume.clone(),
            _ => job.run.clone(),
        };
        let mut env = job.env.clone();
        let vars: [(&str, String); 8] = [
            ("SWITCHYARD_JOB_ID", row.id.clone()),
            ("SWITCHYARD_ATTEMPT", n.to_string()),
            ("SWITCHYARD_OFFERING", best.offering.clone()),
            ("SWITCHYARD_CLOUD", best.cloud.clone()),
            ("SWITCHYARD_REGION", best.region.clone()),
            ("SWITCHYARD_GPUS", best.gpus.to_string()),
            ("SWITCHYARD_CHECKPOINT_DIR", checkpoints.display().to_string()),
            ("SWITCHYARD_RESUMED", u8::from(resume).to_string()),
        ];
        env.extend(vars.into_iter().map(|(k, v)| (k.to_owned(), v)));
        let launch = Launch {
            job_id: row.id.clone(),
            attempt: n,
            pool: best.pool.clone(),
            offering: best.offering.clone(),
            gpus: best.gpus,
            command,
            env,
            log_path: self.state.join("logs").join(format!("{}.{n}.log", row.id)),
        };
        progress(Progress::Trying {
            job: row.id.clone(),
            offering: best.offering.clone(),
            engine: pool.engine.clone(),
            resume,
        });
        let engine_id = match engine.submit(&launch).await {
            Ok(id) => id,
            Err(EngineError(failure)) => return Ok(Err(failure)),
        };
        let deadline = tokio::time::Instant::now() + self.config.retries.start_timeout;
        loop {
            match engine.status(&engine_id).await {
                Ok(RunState::Pending) if tokio::time::Instant::now() < deadline => tokio::time::sleep(self.poll).await,
                Ok(RunState::Pending) => {
                    let _ = engine.stop(&engine_id).await;
                    let waited = self.config.retries.start_timeout.as_secs();
                    return Ok(Err(Failure::new(FailureClass::NoCapacity, format!("still pending after {waited}s"))));
                }
                Ok(_) | Err(_) => break,
            }
        }
        let now = wall_clock();
        let attempt = AttemptRow {
            job_id: row.id.clone(),
            n,
            offering: best.offering.clone(),
            pool: best.pool.clone(),
            engine: pool.engine.clone(),
            engine_id,
            gpus: best.gpus,
            instances: best.instances,
            usd_per_hour: best.usd_per_hour,
            commitment: best.commitment.clone(),
            prepaid: best.kind == PriceKind::Reserved,
            resumed: resume,
            started: now,
            ended: None,
            outcome: None,
        };
        self.store.add_attempt(&attempt).await?;
        self.store.set_status(&row.id, Status::Running, &best.offering, now).await?;
        progress(Progress::Started {
            job: row.id.clone(),
            offering: best.offering.clone(),
            attempt: n,
            resumed: resume,
        });
        Ok(Ok(()))
    }
}

mod supervise;
