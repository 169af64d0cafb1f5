//! Whole answers (non-streaming chat, embeddings) driven by the core's machine; what each
//! request sends to a deployment; and how a request the machine gave up on is told to the caller.

use bytes::Bytes;
use switchyard_core::AttemptError;
use switchyard_core::attempt::Exhausted;
use switchyard_core::config::{Alias, Deployment, DeploymentId};
use switchyard_core::lifecycle::{AttemptId, Failure, Finished, Timing};
use switchyard_providers::Operation;
use switchyard_wire::chat::{ChatRequest, EmbeddingsRequest, WireUsage};
use tokio::time::Instant;

use crate::Gateway;
use crate::drive::{AFTER_FINISH_GRACE, Driver, Payload};
use crate::error::{ApiError, FailedAttempt};
use crate::io::IoEvent;

impl Payload for ChatRequest {
    fn operation(&self) -> Operation {
        Operation::ChatCompletions
    }
    fn streaming(&self) -> bool {
        self.stream
    }
    fn body(&self, deployment: &Deployment) -> Vec<u8> {
        self.upstream_body(&deployment.model)
    }
    fn continuation(&self, deployment: &Deployment, delivered: &str, delivered_tokens: u32) -> Vec<u8> {
        self.continuation_body(&deployment.model, delivered, delivered_tokens)
    }
}

impl Payload for EmbeddingsRequest {
    fn operation(&self) -> Operation {
        Operation::Embeddings
    }
    fn streaming(&self) -> bool {
        false
    }
    fn body(&self, deployment: &Deployment) -> Vec<u8> {
        self.upstream_body(&deployment.model)
    }
    /// Embeddings never stream, so they are never continued; the whole request is sent again.
    fn continuation(&self, deployment: &Deployment, _delivered: &str, _delivered_tokens: u32) -> Vec<u8> {
        self.upstream_body(&deployment.model)
    }
}

/// The clock of a request that arrived at `started`: the configured timeouts and the alias's
/// hedge.
pub(crate) fn timing(gw: &Gateway, alias: &Alias, started: Instant) -> Timing {
    let timeouts = &gw.config.server.timeouts;
    let left = timeouts.request.saturating_sub(started.elapsed());
    Timing {
        deadline: gw.now() + left,
        first_byte: timeouts.first_byte,
        first_token: timeouts.first_token,
        stream_idle: timeouts.stream_idle,
        after_finish: AFTER_FINISH_GRACE,
        hedge_after: alias.hedge_after,
    }
}

/// A whole answer: what it said, which deployment said it, and whether it reported usage.
pub(crate) struct Answer {
    pub(crate) bytes: Bytes,
    pub(crate) deployment: DeploymentId,
    pub(crate) reported_usage: bool,
}

/// Drives a request whose answers come whole. `read` checks an answer and gives its usage
/// and the output tokens it counted; an answer it refuses is a failed attempt.
pub(crate) async fn whole(
    driver: &mut Driver,
    read: impl Fn(&[u8]) -> Result<(Option<WireUsage>, u64), String>,
) -> Result<Answer, ApiError> {
    let mut answers: Vec<(AttemptId, Bytes, bool)> = Vec::new();
    loop {
        if let Some(finished) = driver.finished.clone() {
            return match finished {
                Finished::Answered { attempt, deployment } => {
                    let (bytes, reported_usage) = answers
                        .into_iter()
                        .find(|(a, ..)| *a == attempt)
                        .map(|(_, bytes, reported)| (bytes, reported))
                        .unwrap_or_default();
                    Ok(Answer { bytes, deployment, reported_usage })
                }
                Finished::Failed(failure) => Err(api_error(failure, driver)),
            };
        }
        let Some((id, event)) = driver.next().await else { continue };
        match event {
            IoEvent::Headers => driver.machine.on_headers(id),
            IoEvent::Whole(bytes) => match read(&bytes) {
                Ok((usage, output)) => {
                    if let Some(o) = driver.open_mut(id) {
                        o.usage = usage;
                        o.n_output_chunks = output;
                        o.answering = true;
                    }
                    answers.push((id, bytes, usage.is_some()));
                    driver.done(id);
                }
                Err(detail) => driver.failed(id, AttemptError::InvalidResponse { detail }),
            },
            IoEvent::Failed(error) => driver.failed(id, error),
            IoEvent::Event(_) | IoEvent::End | IoEvent::Cut | IoEvent::Garbage => {
                let detail = "response body cut off".into();
                driver.failed(id, AttemptError::InvalidResponse { detail })
            }
        }
    }
}

/// The caller's error for a request the machine gave up on.
pub(crate) fn api_error(failure: Failure, driver: &Driver) -> ApiError {
    let attempts = driver.failures();
    match failure {
        Failure::NoRoute(why) if why.is_untranslatable() => match driver.why_untranslatable() {
            // As the adapter's own refusal reads, with no attempt made.
            Some((message, _param)) => ApiError::Upstream {
                status: 400,
                message,
                code: Some("unsupported_parameter".to_owned()),
                attempts: Vec::new(),
            },
            None => ApiError::NoRoute(why),
        },
        Failure::NoRoute(why) => ApiError::NoRoute(why),
        Failure::Exhausted(reason) => ApiError::AllAttemptsFailed { reason, attempts },
        Failure::Deadline { .. } => ApiError::Deadline { attempts },
        Failure::Rejected(error) => returned_to_caller(error, attempts),
        Failure::ContextTooLarge(error) => ApiError::Upstream {
            status: 400,
            message: match error {
                AttemptError::ContextLengthExceeded { message } => message,
                other => other.to_string(),
            },
            code: Some("context_length_exceeded".to_owned()),
            attempts,
        },
        // Only a stream that had content can be interrupted; its caller gets an error event.
        Failure::Interrupted(_) => ApiError::AllAttemptsFailed { reason: Exhausted::Plan, attempts },
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
