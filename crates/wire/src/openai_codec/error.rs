//! OpenAI error bodies ⇄ canonical errors.

use serde_json::{Value, json};

use crate::canonical::{ErrorClass, ErrorObject};
use crate::display::for_log;

/// Reads an OpenAI-style error body answered with `status`. Any body is read: a status and
/// whatever text it holds are enough to classify.
pub fn decode_error(status: u16, body: &[u8]) -> ErrorObject {
    let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    read_error(Some(status), &value, body)
}

/// Reads an error object; `status` is `None` for one that came inside a stream.
pub(super) fn read_error(status: Option<u16>, value: &Value, raw: &[u8]) -> ErrorObject {
    let error = match value.get("error") {
        Some(e @ Value::Object(_)) => e,
        Some(_) | None => value,
    };
    let text = |key: &str| match error.get(key) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(_) | None => None,
    };
    let message = match (text("message"), value.get("error")) {
        (Some(m), _) => m,
        (None, Some(Value::String(m))) => m.clone(),
        (None, _) => for_log(&String::from_utf8_lossy(&raw[..raw.len().min(512)]), 512).into_owned(),
    };
    let code = text("code");
    let kind = text("type");
    let class = classify(status, &message, code.as_deref(), kind.as_deref(), error);
    ErrorObject { class, message, code, param: text("param") }
}

fn classify(status: Option<u16>, message: &str, code: Option<&str>, kind: Option<&str>, error: &Value) -> ErrorClass {
    let lower = message.to_ascii_lowercase();
    let client_side = status.is_none_or(|s| (400..500).contains(&s));
    if client_side
        && (code == Some("context_length_exceeded")
            || lower.contains("maximum context length")
            || lower.contains("context window"))
    {
        return ErrorClass::ContextLength;
    }
    let inner = error.pointer("/innererror/code").and_then(Value::as_str);
    if client_side
        && (matches!(code, Some("content_filter" | "content_policy_violation"))
            || inner == Some("ResponsibleAIPolicyViolation"))
    {
        return ErrorClass::ContentFilter;
    }
    match status {
        Some(400 | 413 | 422) => ErrorClass::InvalidRequest,
        Some(401) => ErrorClass::Authentication,
        Some(403) => ErrorClass::Permission,
        Some(404) => ErrorClass::NotFound,
        Some(429) => ErrorClass::RateLimit,
        Some(503 | 529) => ErrorClass::Overloaded,
        Some(s) if (400..500).contains(&s) => ErrorClass::InvalidRequest,
        Some(s) if (500..600).contains(&s) => ErrorClass::Server,
        // In a stream, or with a status that is not an error's: the body says.
        Some(_) | None => match (kind, code) {
            (_, Some("overloaded")) | (Some("overloaded_error"), _) => ErrorClass::Overloaded,
            (Some("invalid_request_error"), _) => ErrorClass::InvalidRequest,
            (Some("authentication_error"), _) | (_, Some("invalid_api_key")) => ErrorClass::Authentication,
            (Some("permission_error"), _) => ErrorClass::Permission,
            (Some("not_found_error"), _) | (_, Some("model_not_found")) => ErrorClass::NotFound,
            (Some("rate_limit_error" | "requests" | "tokens" | "insufficient_quota"), _)
            | (_, Some("rate_limit_exceeded")) => ErrorClass::RateLimit,
            (Some(_) | None, _) => ErrorClass::Server,
        },
    }
}

/// The HTTP status and OpenAI-style body of an error. A context-length or content-filter
/// error carries OpenAI's own code for it, which clients look for; other classes keep the
/// provider's code.
pub fn encode_error(error: &ErrorObject) -> (u16, Value) {
    let (status, kind, default_code) = match error.class {
        ErrorClass::InvalidRequest => (400, "invalid_request_error", None),
        ErrorClass::ContextLength => (400, "invalid_request_error", Some("context_length_exceeded")),
        ErrorClass::ContentFilter => (400, "invalid_request_error", Some("content_filter")),
        ErrorClass::RateLimit => (429, "rate_limit_error", Some("rate_limit_exceeded")),
        ErrorClass::Overloaded => (503, "api_error", Some("overloaded")),
        ErrorClass::Authentication => (401, "authentication_error", Some("invalid_api_key")),
        ErrorClass::Permission => (403, "permission_error", None),
        ErrorClass::NotFound => (404, "invalid_request_error", Some("not_found")),
        ErrorClass::Server => (500, "api_error", None),
    };
    let code = match error.class {
        ErrorClass::ContextLength | ErrorClass::ContentFilter => default_code.map(str::to_owned),
        ErrorClass::InvalidRequest
        | ErrorClass::RateLimit
        | ErrorClass::Overloaded
        | ErrorClass::Authentication
        | ErrorClass::Permission
        | ErrorClass::NotFound
        | ErrorClass::Server => error.code.clone().or_else(|| default_code.map(str::to_owned)),
    };
    let body = json!({
        "error": {"message": error.message, "type": kind, "param": error.param, "code": code}
    });
    (status, body)
}
