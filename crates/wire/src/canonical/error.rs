//! Errors as the protocols carry them: a closed class, the message, and the provider's code.

use std::fmt;

/// What kind of failure an error reports. Each codec maps its protocol's error types and HTTP
/// statuses onto these, and back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// The request is malformed or asks for something the model cannot do.
    InvalidRequest,
    /// The prompt (with the output asked for) does not fit the model's context window.
    ContextLength,
    /// The provider's content filter refused the request.
    ContentFilter,
    /// The caller or the account is over a rate limit or quota (throttling).
    RateLimit,
    /// The provider has no capacity now (Anthropic's 529 `overloaded_error`, a 503).
    Overloaded,
    /// The credentials are missing or wrong.
    Authentication,
    /// The credentials may not use this resource.
    Permission,
    /// The model or resource does not exist.
    NotFound,
    /// The provider failed.
    Server,
}

/// An error, in the canonical model.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{class}: {message}")]
pub struct ErrorObject {
    pub class: ErrorClass,
    pub message: String,
    /// The provider's own code or type (`context_length_exceeded`, `overloaded_error`).
    pub code: Option<String>,
    /// The request parameter at fault, when the provider names one.
    pub param: Option<String>,
}

// === impl ErrorClass ===

impl ErrorClass {
    /// The class an HTTP status says, for an error whose body names no type the codec knows;
    /// `too_long`: its message says the prompt does not fit (a 400, 413 or 422 then is
    /// [`ErrorClass::ContextLength`]). A 503 or Anthropic's 529 is no capacity; a 408 or 424
    /// (Bedrock's model timeout and model error) the provider's failure. No status (an error
    /// inside a stream) is the provider's.
    pub fn of_status(status: Option<u16>, too_long: bool) -> ErrorClass {
        match status {
            Some(400 | 413 | 422) if too_long => ErrorClass::ContextLength,
            Some(401) => ErrorClass::Authentication,
            Some(403) => ErrorClass::Permission,
            Some(404) => ErrorClass::NotFound,
            Some(429) => ErrorClass::RateLimit,
            Some(503 | 529) => ErrorClass::Overloaded,
            Some(408 | 424) => ErrorClass::Server,
            Some(s) if (400..500).contains(&s) => ErrorClass::InvalidRequest,
            Some(_) | None => ErrorClass::Server,
        }
    }

    /// A bounded label, for metrics.
    pub fn kind(self) -> &'static str {
        match self {
            ErrorClass::InvalidRequest => "invalid_request",
            ErrorClass::ContextLength => "context_length",
            ErrorClass::ContentFilter => "content_filter",
            ErrorClass::RateLimit => "rate_limit",
            ErrorClass::Overloaded => "overloaded",
            ErrorClass::Authentication => "authentication",
            ErrorClass::Permission => "permission",
            ErrorClass::NotFound => "not_found",
            ErrorClass::Server => "server",
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind())
    }
}

// === impl ErrorObject ===

impl ErrorObject {
    pub fn new(class: ErrorClass, message: impl Into<String>) -> ErrorObject {
        ErrorObject { class, message: message.into(), code: None, param: None }
    }

    pub fn with_code(mut self, code: impl Into<String>) -> ErrorObject {
        self.code = Some(code.into());
        self
    }

    pub fn with_param(mut self, param: impl Into<String>) -> ErrorObject {
        self.param = Some(param.into());
        self
    }
}
