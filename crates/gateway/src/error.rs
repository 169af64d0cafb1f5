//! Every way a request can fail, mapped once to a status, an error type and code, and the
//! headers that go with it (`Retry-After` on every 429 and 503, `x-switchyard-*` on errors
//! that reached a deployment); written as an OpenAI-shaped JSON error, or for `/v1/messages`
//! as an Anthropic-shaped one (`anthropic_kind` maps the status to Anthropic's type).

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use switchyard_core::attempt::Exhausted;
use switchyard_core::tenancy::{Period, Refusal, format_utc};
use switchyard_core::{AttemptError, NoRoute};
use switchyard_wire::error_body;

/// Caller-supplied text is cut to this many bytes in error messages.
pub(crate) const ECHO_LIMIT: usize = 256;

/// Longest error message sent to a caller, in bytes.
const MESSAGE_LIMIT: usize = 4096;

/// A failed attempt as the caller is told of it: the deployment's name and what went wrong.
pub(crate) type FailedAttempt = (String, AttemptError);

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadRequest { message: String, param: Option<&'static str> },
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("{0}")]
    Forbidden(String),
    #[error("the model '{0}' does not exist")]
    UnknownModel(String),
    #[error("the request body is larger than the limit of {0} bytes")]
    PayloadTooLarge(usize),
    #[error("the request body did not arrive within {} s", .0.as_secs_f64())]
    BodyTimeout(Duration),
    #[error("the gateway is holding too many request bodies at once; retry shortly")]
    Overloaded,
    #[error("unknown endpoint '{0}'; the API is under /v1 (e.g. POST /v1/chat/completions)")]
    NotFound(String),
    #[error("method {method} is not allowed here; allowed: {allow}")]
    MethodNotAllowed { method: String, allow: String },
    #[error("{0}")]
    NoRoute(Box<NoRoute>),
    /// The provider's verdict on the request (content filter, other 4xx), passed on with its
    /// own code.
    #[error("{message}")]
    Upstream { status: u16, message: String, code: Option<String>, attempts: Vec<FailedAttempt> },
    #[error("{}", all_failed_message(.reason, .attempts))]
    AllAttemptsFailed { reason: Exhausted, attempts: Vec<FailedAttempt> },
    #[error("the request deadline passed after {} attempt(s)", .attempts.len())]
    Deadline { attempts: Vec<FailedAttempt> },
    #[error("internal error: {0}")]
    Internal(String),
    /// A tenant's own limit or budget said no.
    #[error("{}", refusal_message(.0))]
    TenantLimit(Refusal),
    /// Something the gateway needs (the ledger, under `on_failure: refuse`) is not working.
    #[error("{0}")]
    Unavailable(String),
    #[error("no API key has the id '{0}'")]
    UnknownKey(String),
}

fn refusal_message(refusal: &Refusal) -> String {
    let whose = if refusal.is_key() { "this key" } else { "this tenant" };
    match refusal.limit() {
        Refusal::RequestsPerMinute { limit, .. } => {
            format!("{whose}'s limit of {limit} requests per minute is reached")
        }
        Refusal::TokensPerMinute { limit, .. } => {
            format!("{whose}'s limit of {limit} tokens per minute is reached")
        }
        Refusal::Concurrency { limit } => format!("{whose} already has {limit} requests in progress (its limit)"),
        Refusal::Budget { period, usd, resets_at_unix_ms } => format!(
            "{whose}'s {} budget of ${usd:.2} is spent; it resets at {}",
            match period {
                Period::Day => "daily",
                Period::Month => "monthly",
            },
            format_utc(*resets_at_unix_ms)
        ),
        Refusal::Key(_) => format!("{whose}'s own limit is reached"),
    }
}

/// The error code of a limit or budget's refusal: the tenant's (`tokens_per_minute_exceeded`)
/// or its key's own (`key_tokens_per_minute`).
fn refusal_code(refusal: &Refusal) -> &'static str {
    let key = refusal.is_key();
    match (refusal.limit(), key) {
        (Refusal::RequestsPerMinute { .. }, false) => "requests_per_minute_exceeded",
        (Refusal::TokensPerMinute { .. }, false) => "tokens_per_minute_exceeded",
        (Refusal::Concurrency { .. }, false) => "concurrency_limit_exceeded",
        (Refusal::Budget { period: Period::Day, .. }, false) => "daily_budget_exceeded",
        (Refusal::Budget { period: Period::Month, .. }, false) => "monthly_budget_exceeded",
        (Refusal::RequestsPerMinute { .. }, true) => "key_requests_per_minute",
        (Refusal::TokensPerMinute { .. }, true) => "key_tokens_per_minute",
        (Refusal::Concurrency { .. }, true) => "key_concurrency",
        (Refusal::Budget { period: Period::Day, .. }, true) => "key_daily_budget",
        (Refusal::Budget { period: Period::Month, .. }, true) => "key_monthly_budget",
        (Refusal::Key(_), _) => "key_limit",
    }
}

fn all_failed_message(reason: &Exhausted, attempts: &[FailedAttempt]) -> String {
    let why = match reason {
        Exhausted::Plan if all_rate_limited(attempts) => "every eligible deployment is rate limited",
        Exhausted::Plan if all_local(attempts) => "the gateway is out of local resources",
        Exhausted::Plan => "every eligible deployment failed",
        Exhausted::MaxAttempts => "the attempt limit was reached",
        Exhausted::RetryBudget => "the retry budget is spent (too many failures right now)",
    };
    let list: Vec<String> = attempts.iter().map(|(d, e)| format!("{d}: {e}")).collect();
    format!("{why}; attempts: [{}]", list.join("; "))
}

fn all_local(attempts: &[FailedAttempt]) -> bool {
    !attempts.is_empty() && attempts.iter().all(|(_, e)| matches!(e, AttemptError::LocalResource { .. }))
}

fn all_rate_limited(attempts: &[FailedAttempt]) -> bool {
    !attempts.is_empty() && attempts.iter().all(|(_, e)| matches!(e, AttemptError::RateLimited { .. }))
}

/// The soonest any of the rate-limited attempts said to come back, at least a second.
fn soonest_retry(attempts: &[FailedAttempt]) -> Duration {
    let soonest = attempts
        .iter()
        .filter_map(|(_, e)| match e {
            AttemptError::RateLimited { retry_after } => *retry_after,
            _ => None,
        })
        .min();
    soonest.unwrap_or(Duration::from_secs(1))
}

/// The status line and body fields of an error, and how long to ask the caller to wait.
struct Parts {
    status: StatusCode,
    kind: &'static str,
    code: Option<String>,
    param: Option<&'static str>,
    retry_after: Option<Duration>,
}

impl Parts {
    fn new(status: StatusCode, kind: &'static str, code: Option<&str>, param: Option<&'static str>) -> Parts {
        Parts { status, kind, code: code.map(str::to_owned), param, retry_after: None }
    }

    fn retry_after(mut self, wait: Duration) -> Parts {
        self.retry_after = Some(wait);
        self
    }
}

impl ApiError {
    /// Every value [`ApiError::kind`] can take, in [`ApiError::kind_index`] order.
    pub const KINDS: [&'static str; 18] = [
        "bad_request",
        "unauthorized",
        "forbidden",
        "unknown_model",
        "payload_too_large",
        "body_timeout",
        "overloaded",
        "not_found",
        "method_not_allowed",
        "no_route",
        "upstream_rejected",
        "upstream_failed",
        "upstream_rate_limited",
        "deadline",
        "internal",
        "tenant_limited",
        "unavailable",
        "unknown_key",
    ];

    /// The HTTP status the caller gets.
    pub fn status(&self) -> u16 {
        self.parts().status.as_u16()
    }

    /// A bounded label for metrics.
    pub fn kind(&self) -> &'static str {
        Self::KINDS[self.kind_index()]
    }

    pub fn kind_index(&self) -> usize {
        match self {
            ApiError::BadRequest { .. } => 0,
            ApiError::Unauthorized(_) => 1,
            ApiError::Forbidden(_) => 2,
            ApiError::UnknownModel(_) => 3,
            ApiError::PayloadTooLarge(_) => 4,
            ApiError::BodyTimeout(_) => 5,
            ApiError::Overloaded => 6,
            ApiError::NotFound(_) => 7,
            ApiError::MethodNotAllowed { .. } => 8,
            ApiError::NoRoute(_) => 9,
            ApiError::Upstream { .. } => 10,
            ApiError::AllAttemptsFailed { reason: Exhausted::Plan, attempts } if all_rate_limited(attempts) => 12,
            ApiError::AllAttemptsFailed { .. } => 11,
            ApiError::Deadline { .. } => 13,
            ApiError::Internal(_) => 14,
            ApiError::TenantLimit(_) => 15,
            ApiError::Unavailable(_) => 16,
            ApiError::UnknownKey(_) => 17,
        }
    }

    /// The attempts made before the error, if it got as far as a deployment.
    fn attempts(&self) -> Option<&[FailedAttempt]> {
        match self {
            ApiError::Upstream { attempts, .. }
            | ApiError::AllAttemptsFailed { attempts, .. }
            | ApiError::Deadline { attempts } => Some(attempts),
            _ => None,
        }
    }

    fn parts(&self) -> Parts {
        use StatusCode as S;
        let second = Duration::from_secs(1);
        match self {
            ApiError::BadRequest { param, .. } => Parts::new(S::BAD_REQUEST, "invalid_request_error", None, *param),
            ApiError::Unauthorized(_) => {
                Parts::new(S::UNAUTHORIZED, "invalid_request_error", Some("invalid_api_key"), None)
            }
            ApiError::Forbidden(_) => {
                Parts::new(S::FORBIDDEN, "permission_error", Some("model_not_allowed"), Some("model"))
            }
            ApiError::UnknownModel(_) => {
                Parts::new(S::NOT_FOUND, "invalid_request_error", Some("model_not_found"), Some("model"))
            }
            ApiError::PayloadTooLarge(_) => {
                Parts::new(S::PAYLOAD_TOO_LARGE, "invalid_request_error", Some("request_too_large"), None)
            }
            ApiError::BodyTimeout(_) => {
                Parts::new(S::REQUEST_TIMEOUT, "invalid_request_error", Some("request_timeout"), None)
            }
            ApiError::Overloaded => {
                Parts::new(S::SERVICE_UNAVAILABLE, "api_error", Some("overloaded"), None).retry_after(second)
            }
            ApiError::NotFound(_) => Parts::new(S::NOT_FOUND, "invalid_request_error", Some("unknown_url"), None),
            ApiError::MethodNotAllowed { .. } => {
                Parts::new(S::METHOD_NOT_ALLOWED, "invalid_request_error", Some("method_not_allowed"), None)
            }
            ApiError::NoRoute(why) => {
                if why.outside_jurisdiction == why.n_candidates {
                    Parts::new(S::FORBIDDEN, "permission_error", Some("jurisdiction_not_allowed"), Some("model"))
                } else if why.is_capacity() {
                    let wait = why.retry_in.unwrap_or(second).max(second);
                    Parts::new(S::TOO_MANY_REQUESTS, "rate_limit_error", Some("no_capacity"), None).retry_after(wait)
                } else if why.is_context() {
                    Parts::new(
                        S::BAD_REQUEST,
                        "invalid_request_error",
                        Some("context_length_exceeded"),
                        Some("messages"),
                    )
                } else {
                    Parts::new(S::BAD_REQUEST, "invalid_request_error", Some("no_eligible_deployment"), None)
                }
            }
            ApiError::Upstream { status, code, .. } => Parts::new(
                StatusCode::from_u16(*status).unwrap_or(S::BAD_REQUEST),
                "invalid_request_error",
                code.as_deref(),
                None,
            ),
            ApiError::AllAttemptsFailed { reason, attempts } => match reason {
                Exhausted::RetryBudget => {
                    Parts::new(S::SERVICE_UNAVAILABLE, "api_error", Some("retry_budget_exhausted"), None)
                        .retry_after(second)
                }
                Exhausted::Plan if all_local(attempts) => {
                    Parts::new(S::SERVICE_UNAVAILABLE, "api_error", Some("overloaded"), None).retry_after(second)
                }
                Exhausted::Plan if all_rate_limited(attempts) => {
                    Parts::new(S::TOO_MANY_REQUESTS, "rate_limit_error", Some("rate_limit_exceeded"), None)
                        .retry_after(soonest_retry(attempts).max(second))
                }
                Exhausted::Plan | Exhausted::MaxAttempts => {
                    Parts::new(S::BAD_GATEWAY, "api_error", Some("all_attempts_failed"), None)
                }
            },
            ApiError::Deadline { .. } => Parts::new(S::GATEWAY_TIMEOUT, "api_error", Some("deadline_exceeded"), None),
            ApiError::Internal(_) => Parts::new(S::INTERNAL_SERVER_ERROR, "api_error", None, None),
            ApiError::TenantLimit(refusal) => {
                let wait = match refusal.limit() {
                    Refusal::RequestsPerMinute { retry_after, .. } | Refusal::TokensPerMinute { retry_after, .. } => {
                        (*retry_after).max(second)
                    }
                    // Until the window resets, at most a day (a month's is a long way off).
                    Refusal::Budget { resets_at_unix_ms, .. } => {
                        let now_ms = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
                        let left = u64::try_from(resets_at_unix_ms.saturating_sub(now_ms)).unwrap_or(0);
                        Duration::from_millis(left).clamp(second, Duration::from_secs(86_400))
                    }
                    Refusal::Concurrency { .. } | Refusal::Key(_) => second,
                };
                Parts::new(S::TOO_MANY_REQUESTS, "rate_limit_error", Some(refusal_code(refusal)), None)
                    .retry_after(wait)
            }
            ApiError::Unavailable(_) => {
                Parts::new(S::SERVICE_UNAVAILABLE, "api_error", Some("unavailable"), None).retry_after(second)
            }
            ApiError::UnknownKey(_) => Parts::new(S::NOT_FOUND, "invalid_request_error", Some("key_not_found"), None),
        }
    }
}

/// How an error body is written: the protocol of the endpoint that was called.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Shape {
    /// `{"error": {"message", "type", "param", "code"}}`.
    OpenAi,
    /// `{"type": "error", "error": {"type", "message"}}`.
    Anthropic,
}

impl Shape {
    /// Anthropic's for a caller that sends `anthropic-version` (Anthropic's SDKs always do),
    /// else OpenAI's.
    pub(crate) fn of(headers: &axum::http::HeaderMap) -> Shape {
        if headers.contains_key("anthropic-version") { Shape::Anthropic } else { Shape::OpenAi }
    }
}

/// The status and error `type` an Anthropic client gets for an error the gateway answers with
/// `status`, as Anthropic's API uses them: 401, 403, 404, 413 and 429 have their own types,
/// other 4xx are `invalid_request_error`; a 503 (no capacity right now) is Anthropic's 529
/// `overloaded_error`, a 504 its `timeout_error`, other 5xx `api_error`.
pub(crate) fn anthropic_kind(status: StatusCode) -> (StatusCode, &'static str) {
    match status.as_u16() {
        401 => (status, "authentication_error"),
        403 => (status, "permission_error"),
        404 => (status, "not_found_error"),
        413 => (status, "request_too_large"),
        429 => (status, "rate_limit_error"),
        503 => (StatusCode::from_u16(529).unwrap_or(status), "overloaded_error"),
        504 => (status, "timeout_error"),
        500..=599 => (status, "api_error"),
        _ => (status, "invalid_request_error"),
    }
}

/// Anthropic's error body.
pub(crate) fn anthropic_body(kind: &str, message: &str) -> Vec<u8> {
    json!({"type": "error", "error": {"type": kind, "message": message}}).to_string().into_bytes()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.respond(Shape::OpenAi)
    }
}

impl ApiError {
    /// The error as Anthropic's API would answer it (for `/v1/messages`): the same headers as
    /// [`IntoResponse`], the status and type of [`anthropic_kind`].
    pub fn into_anthropic_response(self) -> Response {
        self.respond(Shape::Anthropic)
    }

    pub(crate) fn respond(self, shape: Shape) -> Response {
        let parts = self.parts();
        // Messages can quote the caller or a provider: bounded, control characters escaped.
        let message = self.to_string();
        let message = switchyard_wire::for_log(&message, MESSAGE_LIMIT);
        let (status, body) = match shape {
            Shape::OpenAi => (parts.status, error_body(&message, parts.kind, parts.code.as_deref(), parts.param)),
            Shape::Anthropic => {
                let (status, kind) = anthropic_kind(parts.status);
                (status, anthropic_body(kind, &message))
            }
        };
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(wait) = parts.retry_after {
            // Whole seconds, rounded up: what every SDK reads; the ms form for those that can.
            let ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
            headers.insert(header::RETRY_AFTER, HeaderValue::from(ms.div_ceil(1000)));
            headers.insert("retry-after-ms", HeaderValue::from(ms));
        }
        if let Some(attempts) = self.attempts() {
            headers.insert(crate::chat::ATTEMPTS_HEADER, HeaderValue::from(attempts.len()));
            if let Some(v) = attempts.last().and_then(|(d, _)| HeaderValue::from_str(d).ok()) {
                headers.insert(crate::chat::DEPLOYMENT_HEADER, v);
            }
        }
        if let ApiError::MethodNotAllowed { allow, .. } = &self
            && let Ok(v) = HeaderValue::from_str(allow)
        {
            headers.insert(header::ALLOW, v);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anthropic_errors_keep_the_headers_and_take_anthropics_status_and_type() {
        let overloaded = ApiError::Overloaded.into_anthropic_response();
        assert_eq!(overloaded.status().as_u16(), 529);
        assert_eq!(overloaded.headers()[header::RETRY_AFTER], "1");
        let limited = ApiError::TenantLimit(Refusal::Concurrency { limit: 2 }).into_anthropic_response();
        assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(limited.headers()[header::RETRY_AFTER], "1");
        for (status, kind) in [
            (400, "invalid_request_error"),
            (408, "invalid_request_error"),
            (401, "authentication_error"),
            (403, "permission_error"),
            (404, "not_found_error"),
            (413, "request_too_large"),
            (429, "rate_limit_error"),
            (500, "api_error"),
            (502, "api_error"),
            (504, "timeout_error"),
        ] {
            let status = StatusCode::from_u16(status).unwrap();
            assert_eq!(anthropic_kind(status), (status, kind));
        }
    }
}
