//! Every way a request can fail, mapped once to an OpenAI-shaped JSON error and status.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use switchyard_core::NoRoute;
use switchyard_core::attempt::Exhausted;
use switchyard_wire::error_body;

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
    #[error("{0}")]
    NoRoute(Box<NoRoute>),
    /// The provider's verdict on the request (content filter, other 4xx), passed on.
    #[error("{message}")]
    Upstream { status: u16, message: String, code: Option<&'static str> },
    #[error("{}", all_failed_message(.reason, .attempts))]
    AllAttemptsFailed { reason: Exhausted, attempts: Vec<(String, String)> },
    #[error("the request deadline passed after {} attempt(s)", .attempts.len())]
    Deadline { attempts: Vec<(String, String)> },
    #[error("internal error: {0}")]
    Internal(String),
}

fn all_failed_message(reason: &Exhausted, attempts: &[(String, String)]) -> String {
    let why = match reason {
        Exhausted::Plan => "every eligible deployment failed",
        Exhausted::MaxAttempts => "the attempt limit was reached",
        Exhausted::RetryBudget => "the retry budget is spent (too many failures right now)",
    };
    let list: Vec<String> = attempts.iter().map(|(d, e)| format!("{d}: {e}")).collect();
    format!("{why}; attempts: [{}]", list.join("; "))
}

impl ApiError {
    /// Every value [`ApiError::kind`] can take, in [`ApiError::kind_index`] order.
    pub const KINDS: [&'static str; 10] = [
        "bad_request",
        "unauthorized",
        "forbidden",
        "unknown_model",
        "payload_too_large",
        "no_route",
        "upstream_rejected",
        "upstream_failed",
        "deadline",
        "internal",
    ];

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
            ApiError::NoRoute(_) => 5,
            ApiError::Upstream { .. } => 6,
            ApiError::AllAttemptsFailed { .. } => 7,
            ApiError::Deadline { .. } => 8,
            ApiError::Internal(_) => 9,
        }
    }

    fn parts(&self) -> (StatusCode, &'static str, Option<&'static str>, Option<&'static str>) {
        match self {
            ApiError::BadRequest { param, .. } => (StatusCode::BAD_REQUEST, "invalid_request_error", None, *param),
            ApiError::Unauthorized(_) => {
                (StatusCode::UNAUTHORIZED, "invalid_request_error", Some("invalid_api_key"), None)
            }
            ApiError::Forbidden(_) => {
                (StatusCode::FORBIDDEN, "permission_error", Some("model_not_allowed"), Some("model"))
            }
            ApiError::UnknownModel(_) => {
                (StatusCode::NOT_FOUND, "invalid_request_error", Some("model_not_found"), Some("model"))
            }
            ApiError::PayloadTooLarge(_) => {
                (StatusCode::PAYLOAD_TOO_LARGE, "invalid_request_error", Some("request_too_large"), None)
            }
            ApiError::NoRoute(why) => {
                if why.outside_jurisdiction == why.n_candidates {
                    (StatusCode::FORBIDDEN, "permission_error", Some("jurisdiction_not_allowed"), Some("model"))
                } else if why.is_capacity() {
                    (StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", Some("no_capacity"), None)
                } else if why.is_context() {
                    (
                        StatusCode::BAD_REQUEST,
                        "invalid_request_error",
                        Some("context_length_exceeded"),
                        Some("messages"),
                    )
                } else {
                    (StatusCode::BAD_REQUEST, "invalid_request_error", Some("no_eligible_deployment"), None)
                }
            }
            ApiError::Upstream { status, code, .. } => {
                (StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_REQUEST), "invalid_request_error", *code, None)
            }
            ApiError::AllAttemptsFailed { reason, .. } => match reason {
                Exhausted::RetryBudget => {
                    (StatusCode::SERVICE_UNAVAILABLE, "api_error", Some("retry_budget_exhausted"), None)
                }
                Exhausted::Plan | Exhausted::MaxAttempts => {
                    (StatusCode::BAD_GATEWAY, "api_error", Some("all_attempts_failed"), None)
                }
            },
            ApiError::Deadline { .. } => (StatusCode::GATEWAY_TIMEOUT, "api_error", Some("deadline_exceeded"), None),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "api_error", None, None),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, kind, code, param) = self.parts();
        let body = error_body(&self.to_string(), kind, code, param);
        let mut response = (status, body).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        response
    }
}
