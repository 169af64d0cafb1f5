//! Azure OpenAI: OpenAI's bodies at Azure's URLs, served by the OpenAI fast path
//! (`openai::serve`) once the URL and the key are checked as Azure checks them.
//!
//! - `/openai/deployments/{deployment}/chat/completions?api-version=…` (and `/embeddings`):
//!   no `api-version` is a 404 `Resource not found`; another deployment name is a 404
//!   `DeploymentNotFound`.
//! - `/openai/v1/chat/completions` (and `/embeddings`), Azure's v1 API: no `api-version`; the
//!   body's `model` names the deployment.
//!
//! A missing or wrong `api-key` (or Entra ID token) is Azure's 401. Capacity is Azure's 429, a
//! content filter its 400 with `innererror.code: ResponsibleAIPolicyViolation` and the
//! `content_filter_result` that says which category. Answers carry Azure's annotations: the
//! prompt's `prompt_filter_results` (a stream's first chunk, with no choices) and each choice's
//! `content_filter_results` ([`annotations`]).

use std::sync::Arc;

use bytes::Bytes;
use http::StatusCode;
use http::request::Parts;
use serde_json::{Value, json};

use crate::answer::Refusal;
use crate::auth::Rule;
use crate::openai::{self, Flavor, Route};
use crate::server::{Reply, json_response, respond};
use crate::{EmulatedDeployment, Seen};

/// Azure's answer to a missing or wrong `api-key`.
const INVALID_KEY: &str = "Access denied due to invalid subscription key or wrong API endpoint. Make sure to \
     provide a valid key for an active subscription and use a correct regional API endpoint for your resource.";
/// Azure's answer to a missing or wrong Entra ID token.
const INVALID_TOKEN: &str = "Unauthorized. Access token is missing, invalid, audience is incorrect \
     (https://cognitiveservices.azure.com), or have expired.";
const DEPLOYMENT_NOT_FOUND: &str = "The API deployment for this resource does not exist. If you created the \
     deployment within the last 5 minutes, please wait a moment and try again.";

pub(crate) async fn handle(dep: Arc<EmulatedDeployment>, parts: &Parts, body: Bytes) -> Reply {
    let path = parts.uri.path();
    let (named, operation) = if let Some(rest) = path.strip_prefix("/openai/deployments/") {
        let Some((name, operation)) = rest.split_once('/') else { return not_found(&dep) };
        if api_version(parts).is_none() {
            return not_found(&dep);
        }
        (Some(name), operation)
    } else if let Some(operation) = path.strip_prefix("/openai/v1/") {
        (None, operation)
    } else {
        return not_found(&dep);
    };
    let route = match operation {
        "chat/completions" => Route::Chat,
        "embeddings" => Route::Embeddings,
        _ => return not_found(&dep),
    };
    if dep.auth.check(parts, &body, std::time::SystemTime::now()).is_err() {
        dep.record(Seen::Unauthorized, false, false);
        let message = if matches!(dep.auth, Rule::Bearer(_)) { INVALID_TOKEN } else { INVALID_KEY };
        return error(StatusCode::UNAUTHORIZED, "401", message);
    }
    // The deployment is named in the path, or on the v1 path by the body's `model`.
    let deployment = match named {
        Some(name) => Some(name.to_owned()),
        None => serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("model").and_then(|m| m.as_str()).map(str::to_owned)),
    };
    if deployment.as_deref().is_some_and(|name| name != dep.model) {
        dep.record(Seen::BadRequest, false, false);
        return error(StatusCode::NOT_FOUND, "DeploymentNotFound", DEPLOYMENT_NOT_FOUND);
    }
    openai::serve(dep, path, body, Some(route), Flavor::Azure).await
}

/// The `api-version` query parameter, if given (and not empty).
fn api_version(parts: &Parts) -> Option<&str> {
    let query = parts.uri.query()?;
    query.split('&').find_map(|pair| pair.strip_prefix("api-version=")).filter(|v| !v.is_empty())
}

fn not_found(dep: &EmulatedDeployment) -> Reply {
    dep.record(Seen::BadRequest, false, false);
    error(StatusCode::NOT_FOUND, "404", "Resource not found")
}

/// Azure's own error shape: `{"error": {"code", "message"}}`.
fn error(status: StatusCode, code: &str, message: &str) -> Reply {
    json_response(status, json!({"error": {"code": code, "message": message}}).to_string().into_bytes())
}

/// Azure's refusals where they differ from OpenAI's: capacity, and the content filter.
pub(crate) fn refuse(refusal: &Refusal) -> Option<Reply> {
    match *refusal {
        Refusal::Capacity { retry_after } => {
            let seconds = retry_after.as_secs_f64().ceil().max(1.0);
            let message = format!(
                "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have \
                 exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after {seconds} \
                 seconds."
            );
            let body = json!({"error": {"code": "429", "message": message}});
            Some(respond(
                StatusCode::TOO_MANY_REQUESTS,
                "application/json",
                Some(retry_after),
                body.to_string().into_bytes(),
            ))
        }
        Refusal::ContentFilter => {
            let safe = json!({"filtered": false, "severity": "safe"});
            let body = json!({"error": {
                "message": "The response was filtered due to the prompt triggering Azure OpenAI's content management \
                    policy. Please modify your prompt and retry. To learn more about our content filtering policies \
                    please read our documentation: https://go.microsoft.com/fwlink/?linkid=2198766",
                "type": null,
                "param": "prompt",
                "code": "content_filter",
                "status": 400,
                "innererror": {
                    "code": "ResponsibleAIPolicyViolation",
                    "content_filter_result": {
                        "hate": safe,
                        "jailbreak": {"filtered": false, "detected": false},
                        "self_harm": safe,
                        "sexual": safe,
                        "violence": {"filtered": true, "severity": "medium"},
                    },
                },
            }});
            Some(json_response(StatusCode::BAD_REQUEST, body.to_string().into_bytes()))
        }
        Refusal::Status { .. } | Refusal::ContextLength { .. } | Refusal::PrefillRejected => None,
    }
}

/// Azure's content-filter annotations on an answer that passed: every category `safe`.
pub(crate) fn annotations() -> Value {
    let safe = json!({"filtered": false, "severity": "safe"});
    json!({"hate": safe, "self_harm": safe, "sexual": safe, "violence": safe})
}

/// The prompt's annotations, as an answer's `prompt_filter_results`.
pub(crate) fn prompt_filter_results() -> Value {
    json!([{"prompt_index": 0, "content_filter_results": annotations()}])
}

/// The headroom Azure reports on an answer, for a deployment with an emulated capacity:
/// `x-ratelimit-remaining-requests` is the capacity less the requests in flight (this one too,
/// while it streams), and `x-ratelimit-reset-requests` the deployment's Retry-After. Empty
/// without a capacity.
pub(crate) fn headroom(dep: &EmulatedDeployment) -> Vec<(&'static str, String)> {
    let Some(capacity) = dep.spec.max_concurrency else { return Vec::new() };
    let remaining = capacity.saturating_sub(dep.in_flight.load(std::sync::atomic::Ordering::Relaxed));
    vec![
        ("x-ratelimit-remaining-requests", remaining.to_string()),
        ("x-ratelimit-reset-requests", format!("{}ms", dep.spec.retry_after.as_millis())),
    ]
}
