//! What went wrong with an upstream attempt, and what to do about it: decided here, once, in
//! closed matches with no catch-all arm, so that a new failure kind forces a decision.

use std::time::Duration;

use crate::config::{DeploymentId, TenantId};
use crate::state::RouterState;
use crate::time::Time;

/// Why one attempt at one deployment failed. The gateway's providers produce these.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AttemptError {
    #[error("connection failed: {detail}")]
    ConnectFailed { detail: String },
    #[error("connect timed out")]
    ConnectTimeout,
    #[error("connection reset before response headers")]
    ResetBeforeHeaders,
    #[error("no response headers within the first-byte timeout")]
    FirstByteTimeout,
    #[error("no content within the first-token timeout")]
    FirstTokenTimeout,
    #[error("rate limited (429)")]
    RateLimited { retry_after: Option<Duration> },
    #[error("upstream server error ({status})")]
    ServerError { status: u16 },
    #[error("context length exceeded: {message}")]
    ContextLengthExceeded { message: String },
    /// `code` is the provider's own error code, passed on to the caller as it is.
    #[error("content filtered: {message}")]
    ContentFiltered { message: String, code: Option<String> },
    #[error("rejected by upstream ({status}): {message}")]
    ClientError { status: u16, message: String, code: Option<String> },
    #[error("invalid upstream response: {detail}")]
    InvalidResponse { detail: String },
    #[error("stream ended before any content")]
    CutBeforeContent,
    #[error("deployment refused the request ({status}): credentials or model id are wrong")]
    UpstreamRefused { status: u16 },
    #[error("stream cut after content was sent")]
    StreamCut,
    #[error("stream stalled after content was sent")]
    StreamStalled,
    /// The gateway itself ran short (file descriptors, ephemeral ports, memory) before the
    /// request left: says nothing about the deployment.
    #[error("the gateway is out of local resources: {detail}")]
    LocalResource { detail: String },
}

/// What the attempt loop does next after a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Try the same deployment again after this long.
    RetrySame { after: Duration },
    /// Move on to the next deployment in the plan.
    NextDeployment,
    /// Move to the alias's larger-context fallback, never the same model.
    LargerContext,
    /// Content already reached the caller: continue the answer elsewhere with a prefill.
    ContinueStream,
    /// The caller's problem (or the provider's verdict on the content): return it as is.
    ReturnToCaller,
}

/// How a failure bears on the deployment's health.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HealthSignal {
    Failure,
    /// Out of capacity: cool down for this long; not a failure.
    Capacity {
        retry_after: Option<Duration>,
    },
    /// Says nothing about the deployment (the request was at fault).
    Neutral,
}

// === impl AttemptError ===

impl AttemptError {
    /// Every value [`AttemptError::kind`] can take, in [`AttemptError::kind_index`] order.
    pub const KINDS: [&'static str; 16] = [
        "connect_failed",
        "connect_timeout",
        "reset",
        "first_byte_timeout",
        "first_token_timeout",
        "rate_limited",
        "server_error",
        "context_length",
        "content_filter",
        "client_error",
        "invalid_response",
        "cut_before_content",
        "upstream_refused",
        "stream_cut",
        "stream_stalled",
        "local_resource",
    ];

    /// A bounded label for metrics.
    pub fn kind(&self) -> &'static str {
        Self::KINDS[self.kind_index()]
    }

    /// The position of [`AttemptError::kind`] in [`AttemptError::KINDS`].
    pub fn kind_index(&self) -> usize {
        match self {
            AttemptError::ConnectFailed { .. } => 0,
            AttemptError::ConnectTimeout => 1,
            AttemptError::ResetBeforeHeaders => 2,
            AttemptError::FirstByteTimeout => 3,
            AttemptError::FirstTokenTimeout => 4,
            AttemptError::RateLimited { .. } => 5,
            AttemptError::ServerError { .. } => 6,
            AttemptError::ContextLengthExceeded { .. } => 7,
            AttemptError::ContentFiltered { .. } => 8,
            AttemptError::ClientError { .. } => 9,
            AttemptError::InvalidResponse { .. } => 10,
            AttemptError::CutBeforeContent => 11,
            AttemptError::UpstreamRefused { .. } => 12,
            AttemptError::StreamCut => 13,
            AttemptError::StreamStalled => 14,
            AttemptError::LocalResource { .. } => 15,
        }
    }

    pub fn health_signal(&self) -> HealthSignal {
        match self {
            AttemptError::ConnectFailed { .. }
            | AttemptError::ConnectTimeout
            | AttemptError::ResetBeforeHeaders
            | AttemptError::FirstByteTimeout
            | AttemptError::FirstTokenTimeout
            | AttemptError::ServerError { .. }
            | AttemptError::InvalidResponse { .. }
            | AttemptError::CutBeforeContent
            | AttemptError::UpstreamRefused { .. }
            | AttemptError::StreamCut
            | AttemptError::StreamStalled => HealthSignal::Failure,
            AttemptError::RateLimited { retry_after } => HealthSignal::Capacity { retry_after: *retry_after },
            AttemptError::ContextLengthExceeded { .. }
            | AttemptError::ContentFiltered { .. }
            | AttemptError::ClientError { .. }
            | AttemptError::LocalResource { .. } => HealthSignal::Neutral,
        }
    }
}

/// What a deployment's 429 leads to: waiting for its Retry-After on the same deployment (when
/// it is within `up_to`, once), or spilling to the next deployment at once, whatever it says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnRateLimit {
    /// On-demand capacity: a short Retry-After is waited for on the same deployment.
    Wait { up_to: Duration },
    /// Reserved (provisioned) capacity with more deployments planned behind it: a 429 there
    /// says it is full, and the capacity behind it answers now.
    Spill,
}

/// The one place that decides what follows a failed attempt.
///
/// `same_retries` counts retries already made on this deployment for this request.
pub fn decide(error: &AttemptError, same_retries: u32, on_rate_limit: OnRateLimit) -> Decision {
    match error {
        // A deployment that did not answer in time is not asked again.
        AttemptError::ConnectFailed { .. }
        | AttemptError::ConnectTimeout
        | AttemptError::ResetBeforeHeaders
        | AttemptError::FirstByteTimeout
        | AttemptError::FirstTokenTimeout
        | AttemptError::InvalidResponse { .. }
        | AttemptError::CutBeforeContent
        | AttemptError::UpstreamRefused { .. }
        // Another deployment may still have a pooled connection.
        | AttemptError::LocalResource { .. } => Decision::NextDeployment,
        AttemptError::RateLimited { retry_after } => match (on_rate_limit, retry_after) {
            (OnRateLimit::Wait { up_to }, Some(wait)) if *wait <= up_to && same_retries == 0 => {
                Decision::RetrySame { after: *wait }
            }
            (OnRateLimit::Wait { .. } | OnRateLimit::Spill, _) => Decision::NextDeployment,
        },
        AttemptError::ServerError { status } => match status {
            500 | 502 | 503 | 504 if same_retries == 0 => Decision::RetrySame { after: Duration::ZERO },
            _ => Decision::NextDeployment,
        },
        AttemptError::ContextLengthExceeded { .. } => Decision::LargerContext,
        AttemptError::ContentFiltered { .. } | AttemptError::ClientError { .. } => Decision::ReturnToCaller,
        AttemptError::StreamCut | AttemptError::StreamStalled => Decision::ContinueStream,
    }
}

/// Why the attempt loop stopped without an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exhausted {
    /// Every deployment in the plan was tried.
    Plan,
    /// `server.max_attempts` reached.
    MaxAttempts,
    /// The retry budget is spent: retrying now would feed a retry storm.
    RetryBudget,
}

/// The next attempt to make.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NextAttempt {
    pub deployment: DeploymentId,
    /// Wait this long first (a short Retry-After on the same deployment).
    pub delay: Duration,
}

/// One request's walk through its plan: which deployment next, within attempts and budget.
#[derive(Debug)]
pub struct AttemptSession {
    plan: Vec<DeploymentId>,
    position: usize,
    max_attempts: u32,
    n_attempts: u32,
    same_retries: u32,
    retry_same: Option<NextAttempt>,
    /// Every failed attempt, in order.
    pub failures: Vec<(DeploymentId, AttemptError)>,
}

// === impl AttemptSession ===

impl AttemptSession {
    pub fn new(plan: Vec<DeploymentId>, max_attempts: u32) -> AttemptSession {
        AttemptSession {
            plan,
            position: 0,
            max_attempts,
            n_attempts: 0,
            same_retries: 0,
            retry_same: None,
            failures: Vec::new(),
        }
    }

    pub fn n_attempts(&self) -> u32 {
        self.n_attempts
    }

    /// The next attempt, skipping plan entries ejected since planning (unless none is left).
    /// Every attempt after the first takes from the retry budget.
    pub fn next(&mut self, state: &RouterState, tenant: TenantId, now: Time) -> Result<NextAttempt, Exhausted> {
        if self.n_attempts >= self.max_attempts {
            return Err(Exhausted::MaxAttempts);
        }
        // A deployment ejected by its last failure (a failed half-open probe, say) is not
        // asked again at once.
        let retry_same =
            self.retry_same.take().filter(|r| !state.deployment_at(r.deployment, now).health.is_ejected(now));
        let next = match retry_same {
            Some(next) => next,
            None => {
                let remaining = &self.plan[self.position.min(self.plan.len())..];
                let healthy = remaining.iter().position(|d| !state.deployment_at(*d, now).health.is_ejected(now));
                let skip = healthy.unwrap_or(0);
                let Some(deployment) = remaining.get(skip).copied() else {
                    return Err(Exhausted::Plan);
                };
                self.position += skip + 1;
                self.same_retries = 0;
                NextAttempt { deployment, delay: Duration::ZERO }
            }
        };
        if self.n_attempts > 0 && !state.try_retry(tenant, now) {
            return Err(Exhausted::RetryBudget);
        }
        self.n_attempts += 1;
        Ok(next)
    }

    /// Whether the plan has deployments not yet tried.
    pub fn has_more(&self) -> bool {
        self.position < self.plan.len()
    }

    /// The attempt `next` gave could not start (its deployment filled up since planning): it
    /// does not count against `max_attempts`, and the plan moves on past it.
    pub fn unstart(&mut self) {
        self.n_attempts = self.n_attempts.saturating_sub(1);
    }

    /// Records a failure and decides what follows.
    pub fn on_failure(
        &mut self,
        deployment: DeploymentId,
        error: AttemptError,
        on_rate_limit: OnRateLimit,
    ) -> Decision {
        let decision = decide(&error, self.same_retries, on_rate_limit);
        if let Decision::RetrySame { after } = decision {
            self.same_retries += 1;
            self.retry_same = Some(NextAttempt { deployment, delay: after });
        }
        self.failures.push((deployment, error));
        decision
    }

    /// Switches to another plan (a larger-context fallback); attempts made so far still count.
    pub fn replace_plan(&mut self, plan: Vec<DeploymentId>) {
        self.plan = plan;
        self.position = 0;
        self.retry_same = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Outcome;

    const WAIT_1S: OnRateLimit = OnRateLimit::Wait { up_to: Duration::from_secs(1) };

    fn check(error: AttemptError, same_retries: u32, expected: Decision) {
        assert_eq!(decide(&error, same_retries, WAIT_1S), expected, "{error:?}");
    }

    #[test]
    fn every_failure_class_has_its_decision() {
        use AttemptError as E;
        use Decision as D;
        check(E::ConnectFailed { detail: "refused".into() }, 0, D::NextDeployment);
        check(E::ConnectTimeout, 0, D::NextDeployment);
        check(E::ResetBeforeHeaders, 0, D::NextDeployment);
        check(E::FirstByteTimeout, 0, D::NextDeployment);
        check(E::FirstTokenTimeout, 0, D::NextDeployment);
        check(E::InvalidResponse { detail: "garbage".into() }, 0, D::NextDeployment);
        check(E::CutBeforeContent, 0, D::NextDeployment);
        check(E::UpstreamRefused { status: 401 }, 0, D::NextDeployment);
        let short = Some(Duration::from_millis(200));
        check(E::RateLimited { retry_after: short }, 0, D::RetrySame { after: Duration::from_millis(200) });
        check(E::RateLimited { retry_after: short }, 1, D::NextDeployment);
        check(E::RateLimited { retry_after: Some(Duration::from_secs(30)) }, 0, D::NextDeployment);
        check(E::RateLimited { retry_after: None }, 0, D::NextDeployment);
        // Reserved capacity spills whatever its Retry-After says, a zero one too.
        for retry_after in [None, Some(Duration::ZERO), short] {
            let error = E::RateLimited { retry_after };
            assert_eq!(decide(&error, 0, OnRateLimit::Spill), D::NextDeployment, "{retry_after:?}");
        }
        check(E::ServerError { status: 503 }, 0, D::RetrySame { after: Duration::ZERO });
        check(E::ServerError { status: 503 }, 1, D::NextDeployment);
        check(E::ServerError { status: 501 }, 0, D::NextDeployment);
        check(E::ContextLengthExceeded { message: String::new() }, 0, D::LargerContext);
        check(E::ContentFiltered { message: String::new(), code: None }, 0, D::ReturnToCaller);
        check(E::ClientError { status: 422, message: String::new(), code: None }, 0, D::ReturnToCaller);
        check(E::StreamCut, 0, D::ContinueStream);
        check(E::StreamStalled, 0, D::ContinueStream);
        check(E::LocalResource { detail: "EMFILE".into() }, 0, D::NextDeployment);
        assert_eq!(E::LocalResource { detail: String::new() }.health_signal(), HealthSignal::Neutral);
    }

    #[test]
    fn a_failed_half_open_probe_is_not_retried_at_once() {
        let config = crate::fixture::synthetic_config(4, "balanced");
        let state = RouterState::new(&config, Time::ZERO);
        let (a, b) = (config.deployments[0].id, config.deployments[1].id);
        let error = AttemptError::ServerError { status: 503 };
        let mut t = Time::ZERO;
        while !state.deployment(a).health.is_ejected(t) {
            state.begin_attempt(a, crate::config::TenantId(0), 10, t);
            state.end_attempt(a, crate::config::TenantId(0), 10, Outcome::Failure(&error), t);
        }
        // Past the ejection: `a` is half-open and this request's first attempt is its probe.
        t = t + config.routing.outlier.max_ejection + Duration::from_millis(1);
        let mut session = AttemptSession::new(vec![a, b], 5);
        assert_eq!(session.next(&state, crate::config::TenantId(0), t).map(|n| n.deployment), Ok(a));
        state.begin_attempt(a, crate::config::TenantId(0), 10, t);
        state.end_attempt(a, crate::config::TenantId(0), 10, Outcome::Failure(&error), t);
        assert!(matches!(session.on_failure(a, error, WAIT_1S), Decision::RetrySame { .. }));
        assert_eq!(
            session.next(&state, crate::config::TenantId(0), t).map(|n| n.deployment),
            Ok(b),
            "the re-ejected probe is not retried"
        );
    }
}
