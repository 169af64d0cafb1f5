//! The attempt loop shared by every API: ask the core for the next deployment, try it, feed
//! the outcome back, and follow the core's decision (retry, fail over, larger context, stop).

use std::time::Duration;

use switchyard_core::AttemptError;
use switchyard_core::attempt::{AttemptSession, Decision};
use switchyard_core::config::{AliasId, Deployment, DeploymentId};
use switchyard_core::plan::{PlanRequest, plan, plan_larger_context};
use switchyard_core::state::Outcome;
use switchyard_core::usage::{Usage, list_cost};
use tokio::time::Instant;
use tracing::Instrument;

use crate::Gateway;
use crate::error::ApiError;
use crate::metrics::AttemptResult;

/// A request in the attempt loop.
pub(crate) struct Attempts<'a> {
    pub(crate) gw: &'a Gateway,
    pub(crate) plan_request: PlanRequest<'a>,
    pub(crate) session: AttemptSession,
    pub(crate) deadline: Instant,
    /// Tokens reserved against rate limits per attempt.
    pub(crate) estimated_tokens: u32,
}

/// A successful attempt: its value and where it ran.
pub(crate) struct Won<T> {
    pub(crate) value: T,
    pub(crate) deployment: DeploymentId,
    pub(crate) alias: AliasId,
}

impl<'a> Attempts<'a> {
    /// Plans the request; the plan's failure is the caller's error.
    pub(crate) fn start(
        gw: &'a Gateway,
        plan_request: PlanRequest<'a>,
        deadline: Instant,
        estimated_tokens: u32,
    ) -> Result<Attempts<'a>, ApiError> {
        let now = gw.now();
        let planned = {
            let mut router = gw.router();
            router.on_request(now);
            plan(&gw.config, &router, &plan_request, now, &mut *gw.rng())
        };
        let planned = planned.map_err(ApiError::NoRoute)?;
        let session = AttemptSession::new(planned.deployments, gw.config.server.max_attempts);
        Ok(Attempts { gw, plan_request, session, deadline, estimated_tokens })
    }

    /// Failed attempts so far as (deployment, reason), for errors and logs.
    pub(crate) fn failures(&self) -> Vec<(String, String)> {
        self.session.failures.iter().map(|(d, e)| (self.gw.config.deployment(*d).name.clone(), e.to_string())).collect()
    }

    /// Runs attempts until one succeeds or the core says stop. The winner's attempt is left
    /// open in the router: the caller ends it with the real outcome.
    pub(crate) async fn run<T, F, Fut>(&mut self, mut attempt: F) -> Result<Won<T>, ApiError>
    where
        F: FnMut(&'a Deployment, Instant) -> Fut,
        Fut: std::future::Future<Output = Result<T, AttemptError>>,
    {
        let gw = self.gw;
        loop {
            let next = {
                let now = gw.now();
                self.session.next(&mut gw.router(), now)
            };
            let next = next.map_err(|reason| ApiError::AllAttemptsFailed { reason, attempts: self.failures() })?;
            if !next.delay.is_zero() {
                tokio::time::sleep_until((Instant::now() + next.delay).min(self.deadline)).await;
            }
            if Instant::now() >= self.deadline {
                return Err(ApiError::Deadline { attempts: self.failures() });
            }
            let deployment = gw.config.deployment(next.deployment);
            gw.router().begin_attempt(deployment.id, self.estimated_tokens, gw.now());
            let span = tracing::debug_span!("attempt", deployment = %deployment.name, n = self.session.n_attempts());
            let result =
                tokio::time::timeout_at(self.deadline, attempt(deployment, self.deadline)).instrument(span).await;
            let error = match result {
                Ok(Ok(value)) => {
                    if !self.session.failures.is_empty() {
                        gw.metrics.failover();
                    }
                    return Ok(Won { value, deployment: deployment.id, alias: self.plan_request.alias });
                }
                Ok(Err(error)) => error,
                Err(_) => {
                    self.end(deployment.id, Outcome::Abandoned);
                    return Err(ApiError::Deadline { attempts: self.failures() });
                }
            };
            self.end(deployment.id, Outcome::Failure(&error));
            gw.metrics.attempt(deployment.id, AttemptResult::Failed(&error));
            tracing::warn!(message = "Upstream attempt failed.", deployment = %deployment.name, kind = error.kind(), %error);
            let cap = gw.config.server.retry_after_cap;
            match self.session.on_failure(deployment.id, error.clone(), cap) {
                Decision::RetrySame { .. } | Decision::NextDeployment | Decision::ContinueStream => (),
                Decision::LargerContext => self.fall_back_to_larger_context(deployment, &error)?,
                Decision::ReturnToCaller => return Err(returned_to_caller(error)),
            }
        }
    }

    /// Ends an attempt in the router.
    pub(crate) fn end(&self, deployment: DeploymentId, outcome: Outcome<'_>) {
        self.gw.router().end_attempt(deployment, self.estimated_tokens, outcome, self.gw.now());
    }

    /// Re-plans on the alias's fallbacks with deployments of a larger window than the one that
    /// refused; never the same model again.
    fn fall_back_to_larger_context(&mut self, failed: &Deployment, error: &AttemptError) -> Result<(), ApiError> {
        let gw = self.gw;
        let now = gw.now();
        let fallback = plan_larger_context(&gw.config, &gw.router(), &self.plan_request, failed, now, &mut *gw.rng());
        if let Some((request, plan)) = fallback {
            self.plan_request = request;
            self.session.replace_plan(plan);
            return Ok(());
        }
        Err(ApiError::Upstream {
            status: 400,
            message: match error {
                AttemptError::ContextLengthExceeded { message } => message.clone(),
                other => other.to_string(),
            },
            code: Some("context_length_exceeded"),
        })
    }
}

fn returned_to_caller(error: AttemptError) -> ApiError {
    match error {
        AttemptError::ContentFiltered { message } => {
            ApiError::Upstream { status: 400, message, code: Some("content_filter") }
        }
        AttemptError::ClientError { status, message } => ApiError::Upstream { status, message, code: None },
        other => ApiError::Internal(format!("unexpected decision for {other}")),
    }
}

/// Records what an answered attempt used and cost, and burns it down from its commitment.
pub(crate) fn account(gw: &Gateway, deployment: &Deployment, usage: &Usage) {
    let dollars = list_cost(&deployment.price, usage);
    gw.metrics.usage(deployment.id, usage, dollars);
    if deployment.commitment.is_some() {
        gw.router().record_spend(deployment.commitment, dollars);
    }
}

/// Time remaining until `deadline`, at most `limit`.
pub(crate) fn within(deadline: Instant, limit: Duration) -> Duration {
    deadline.saturating_duration_since(Instant::now()).min(limit)
}
