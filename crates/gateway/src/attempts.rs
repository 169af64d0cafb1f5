//! The attempt loop shared by every API: ask the core for the next deployment, try it, feed
//! the outcome back, and follow the core's decision (retry, fail over, larger context, stop).

use std::sync::Arc;
use std::time::Duration;

use switchyard_core::AttemptError;
use switchyard_core::attempt::{AttemptSession, Decision};
use switchyard_core::config::{AliasId, Deployment, DeploymentId};
use switchyard_core::plan::{PlanRequest, plan_larger_context, plan_with_fallbacks};
use switchyard_core::state::Outcome;
use switchyard_core::usage::{Usage, list_cost};
use tokio::time::Instant;
use tracing::Instrument;

use crate::Gateway;
use crate::error::{ApiError, FailedAttempt};
use crate::metrics::AttemptResult;

/// An attempt open in the router (in flight, holding its rate reservation, perhaps a probe).
/// It is closed exactly once: by [`AttemptGuard::close`] with its outcome, or, when the future
/// that holds it is dropped (the caller hung up), as abandoned by `Drop`.
pub(crate) struct AttemptGuard {
    gw: Arc<Gateway>,
    deployment: DeploymentId,
    reserved: u32,
    open: bool,
}

impl AttemptGuard {
    pub(crate) fn begin(gw: &Arc<Gateway>, deployment: DeploymentId, reserved: u32) -> AttemptGuard {
        gw.router().begin_attempt(deployment, reserved, gw.now());
        AttemptGuard { gw: gw.clone(), deployment, reserved, open: true }
    }

    pub(crate) fn deployment(&self) -> DeploymentId {
        self.deployment
    }

    /// Closes the attempt. `used_tokens` is what it really used: a success settles its
    /// reservation to that; a failed or abandoned one gives the reservation back and is
    /// charged only what it used (zero when it produced nothing).
    pub(crate) fn close(mut self, outcome: Outcome<'_>, used_tokens: u64) {
        self.close_inner(outcome, used_tokens);
    }

    /// Closes the attempt as given up by the gateway, saying why in the log.
    pub(crate) fn abandon(mut self, why: &'static str, used_tokens: u64) {
        self.abandoned(why, used_tokens);
    }

    fn abandoned(&mut self, why: &'static str, used_tokens: u64) {
        let deployment = &self.gw.config.deployment(self.deployment).name;
        tracing::info!(message = "Upstream attempt abandoned.", %deployment, why);
        self.close_inner(Outcome::Abandoned, used_tokens);
    }

    fn close_inner(&mut self, outcome: Outcome<'_>, used_tokens: u64) {
        if !std::mem::replace(&mut self.open, false) {
            return;
        }
        let gw = &self.gw;
        let now = gw.now();
        {
            let mut router = gw.router();
            router.end_attempt(self.deployment, self.reserved, outcome, now);
            if !matches!(outcome, Outcome::Success { .. }) && used_tokens > 0 {
                router.charge_tokens(self.deployment, used_tokens, now);
            }
        }
        let result = match outcome {
            Outcome::Success { .. } => AttemptResult::Ok,
            Outcome::Failure(e) => AttemptResult::Failed(e),
            Outcome::Abandoned => AttemptResult::Abandoned,
        };
        gw.metrics.attempt(self.deployment, result);
    }
}

impl Drop for AttemptGuard {
    fn drop(&mut self) {
        if self.open {
            self.abandoned("the caller went away", 0);
        }
    }
}

/// A request in the attempt loop.
pub(crate) struct Attempts<'a> {
    pub(crate) gw: &'a Arc<Gateway>,
    pub(crate) plan_request: PlanRequest<'a>,
    pub(crate) session: AttemptSession,
    pub(crate) deadline: Instant,
    /// Tokens reserved against rate limits per attempt.
    pub(crate) estimated_tokens: u32,
}

/// A successful attempt: its value and its still-open attempt, which says where it ran.
pub(crate) struct Won<T> {
    pub(crate) value: T,
    pub(crate) attempt: AttemptGuard,
    pub(crate) alias: AliasId,
}

impl<'a> Attempts<'a> {
    /// Plans the request; the plan's failure is the caller's error.
    /// A prompt too large for the alias is planned on its larger-context fallbacks.
    pub(crate) fn start(
        gw: &'a Arc<Gateway>,
        plan_request: PlanRequest<'a>,
        deadline: Instant,
        estimated_tokens: u32,
    ) -> Result<Attempts<'a>, ApiError> {
        let now = gw.now();
        let planned = {
            let mut router = gw.router();
            router.on_request(now);
            plan_with_fallbacks(&gw.config, &router, &plan_request, now, &mut *gw.rng())
        };
        let (plan_request, planned) = planned.map_err(ApiError::NoRoute)?;
        let session = AttemptSession::new(planned.deployments, gw.config.server.max_attempts);
        Ok(Attempts { gw, plan_request, session, deadline, estimated_tokens })
    }

    /// Failed attempts so far as (deployment, reason), for errors and logs.
    pub(crate) fn failures(&self) -> Vec<FailedAttempt> {
        self.session.failures.iter().map(|(d, e)| (self.gw.config.deployment(*d).name.clone(), e.clone())).collect()
    }

    /// Runs attempts until one succeeds or the core says stop. The winner's attempt is left
    /// open in the router: the caller ends it with the real outcome.
    pub(crate) async fn run<T, F, Fut>(&mut self, mut call: F) -> Result<Won<T>, ApiError>
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
            let attempt = AttemptGuard::begin(gw, deployment.id, self.estimated_tokens);
            let span = tracing::debug_span!("attempt", deployment = %deployment.name, n = self.session.n_attempts());
            let result = tokio::time::timeout_at(self.deadline, call(deployment, self.deadline)).instrument(span).await;
            let error = match result {
                Ok(Ok(value)) => {
                    if !self.session.failures.is_empty() {
                        gw.metrics.failover();
                    }
                    return Ok(Won { value, attempt, alias: self.plan_request.alias });
                }
                Ok(Err(error)) => error,
                Err(_) => {
                    attempt.abandon("the request deadline passed", 0);
                    return Err(ApiError::Deadline { attempts: self.failures() });
                }
            };
            attempt.close(Outcome::Failure(&error), 0);
            tracing::warn!(message = "Upstream attempt failed.", deployment = %deployment.name, kind = error.kind(), %error);
            let cap = gw.config.server.retry_after_cap;
            match self.session.on_failure(deployment.id, error.clone(), cap) {
                Decision::RetrySame { .. } | Decision::NextDeployment | Decision::ContinueStream => (),
                Decision::LargerContext => self.fall_back_to_larger_context(deployment, &error)?,
                Decision::ReturnToCaller => return Err(returned_to_caller(error, self.failures())),
            }
        }
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
            code: Some("context_length_exceeded".to_owned()),
            attempts: self.failures(),
        })
    }
}

/// The provider's verdict on the request, passed on with its own code when it gave one.
fn returned_to_caller(error: AttemptError, attempts: Vec<FailedAttempt>) -> ApiError {
    match error {
        AttemptError::ContentFiltered { message, code } => ApiError::Upstream {
            status: 400,
            message,
            code: Some(code.unwrap_or_else(|| "content_filter".to_owned())),
            attempts,
        },
        AttemptError::ClientError { status, message, code } => ApiError::Upstream { status, message, code, attempts },
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
