//! Watching running jobs: one reconcile pass reads each job's engine and moves the job on
//! (finished, failed, unreachable, or lost and re-placed); `supervise` repeats it until a job
//! is done; `cancel` and `logs` act on a job's attempts.

use switchyard_core::Time;
use switchyard_placer::lifecycle::{AttemptEnd, Next, Status, after_attempt, is_lost};

use super::{Placer, RunError};
use crate::engine::{Engine, EngineError, RunState};
use crate::progress::Progress;
use crate::store::{AttemptRow, JobRow};
use crate::wall_clock;

impl Placer {
    /// One pass over every job that is not finished.
    pub async fn reconcile(&self, progress: &mut dyn FnMut(Progress)) -> Result<(), RunError> {
        for row in self.store.jobs().await? {
            if !row.status.is_terminal() {
                self.reconcile_job(&row, progress).await?;
            }
        }
        Ok(())
    }

    /// Runs reconcile passes for one job until it is finished; returns its final status.
    pub async fn supervise(&self, id: &str, progress: &mut dyn FnMut(Progress)) -> Result<Status, RunError> {
        loop {
            let row = self.row(id).await?;
            if row.status.is_terminal() {
                return Ok(row.status);
            }
            self.reconcile_job(&row, progress).await?;
            let row = self.row(id).await?;
            if row.status.is_terminal() {
                return Ok(row.status);
            }
            tokio::time::sleep(self.poll).await;
        }
    }

    async fn open_attempt(&self, id: &str) -> Result<Option<AttemptRow>, RunError> {
        Ok(self.store.attempts(id).await?.into_iter().rev().find(|a| a.ended.is_none()))
    }

    async fn reconcile_job(&self, row: &JobRow, progress: &mut dyn FnMut(Progress)) -> Result<(), RunError> {
        let Some(attempt) = self.open_attempt(&row.id).await? else {
            // Queued, or interrupted while provisioning: place it now.
            self.place(&row.id, row.replacements > 0, progress).await?;
            return Ok(());
        };
        let now = wall_clock();
        let end = match self.engine(&attempt.engine).status(&attempt.engine_id).await {
            Ok(RunState::Pending | RunState::Running) => {
                if row.unreachable_since.is_some() {
                    self.store.set_unreachable(&row.id, None).await?;
                    self.store.set_status(&row.id, Status::Running, &attempt.offering, now).await?;
                }
                return Ok(());
            }
            Ok(RunState::Succeeded) => AttemptEnd::Succeeded,
            Ok(RunState::Failed { exit_code, detail }) => AttemptEnd::Failed { exit_code, detail },
            Ok(RunState::Stopped) => AttemptEnd::Cancelled,
            Ok(RunState::Gone(detail)) => AttemptEnd::ClusterLost(detail),
            Err(EngineError(failure)) => {
                let since = row.unreachable_since.unwrap_or(now);
                if row.unreachable_since.is_none() {
                    self.store.set_unreachable(&row.id, Some(now)).await?;
                    self.store.set_status(&row.id, Status::Unreachable, &failure.to_string(), now).await?;
                    progress(Progress::Unreachable {
                        job: row.id.clone(),
                        offering: attempt.offering.clone(),
                        detail: failure.to_string(),
                    });
                }
                if !is_lost(since, now, &self.config.retries) {
                    return Ok(());
                }
                AttemptEnd::ClusterLost(format!("unreachable since {}: {failure}", since.0 / 1_000_000))
            }
        };
        self.finish_attempt(row, &attempt, end, now, progress).await
    }

    async fn finish_attempt(
        &self,
        row: &JobRow,
        attempt: &AttemptRow,
        end: AttemptEnd,
        now: Time,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<(), RunError> {
        let how = match &end {
            AttemptEnd::Succeeded => "succeeded".to_owned(),
            AttemptEnd::Failed { exit_code: Some(c), .. } => format!("failed (exit {c})"),
            AttemptEnd::Failed { detail, .. } => format!("failed: {detail}"),
            AttemptEnd::Preempted(d) => format!("preempted: {d}"),
            AttemptEnd::ClusterLost(d) => format!("lost: {d}"),
            AttemptEnd::Cancelled => "stopped".to_owned(),
        };
        self.store.end_attempt(&row.id, attempt.n, now, &how).await?;
        self.store.set_unreachable(&row.id, None).await?;
        progress(Progress::AttemptEnded {
            job: row.id.clone(),
            offering: attempt.offering.clone(),
            attempt: attempt.n,
            how,
        });
        let job = Self::spec(row)?;
        match after_attempt(&end, row.replacements, &self.config.retries, job.checkpoint.is_some()) {
            Next::Finish(status, detail) => {
                self.store.set_status(&row.id, status, &detail, now).await?;
                progress(Progress::Finished { job: row.id.clone(), status, detail });
            }
            Next::Replace { failure, resume } => {
                self.block(&row.id, &attempt.offering, failure, progress).await?;
                self.store.count_replacement(&row.id).await?;
                self.place(&row.id, resume, progress).await?;
            }
        }
        Ok(())
    }

    /// Stops a job's running attempt and marks the job cancelled.
    pub async fn cancel(&self, id: &str) -> Result<Status, RunError> {
        let row = self.row(id).await?;
        if row.status.is_terminal() {
            return Ok(row.status);
        }
        let now = wall_clock();
        self.store.set_status(id, Status::Cancelled, "cancelled", now).await?;
        if let Some(attempt) = self.open_attempt(id).await? {
            let result = self.engine(&attempt.engine).stop(&attempt.engine_id).await;
            let how = match result {
                Ok(()) => "cancelled".to_owned(),
                Err(e) => format!("cancelled; the engine could not confirm the stop: {e}"),
            };
            self.store.end_attempt(id, attempt.n, wall_clock(), &how).await?;
        }
        Ok(Status::Cancelled)
    }

    /// Every attempt's log, each under a header naming where it ran.
    pub async fn logs(&self, id: &str) -> Result<String, RunError> {
        self.row(id).await?;
        let mut out = String::new();
        for a in self.store.attempts(id).await? {
            let text = match self.engine(&a.engine).logs(&a.engine_id).await {
                Ok(t) => t,
                Err(e) => format!("(logs unavailable: {e})\n"),
            };
            out.push_str(&format!(
                "== attempt {} on {}{} ==\n",
                a.n,
                a.offering,
                if a.resumed { " (resumed)" } else { "" }
            ));
            out.push_str(&text);
            if !text.ends_with('\n') && !text.is_empty() {
                out.push('\n');
            }
        }
        Ok(out)
    }
}
