//! Anthropic error bodies ⇄ canonical errors.

use serde_json::{Value, json};

use crate::canonical::{ErrorClass, ErrorObject};
use crate::display::for_log;

/// Reads an Anthropic error body answered with `status`. Any body is read: the status and
/// whatever text it holds are enough to classify. The error's `type` is kept as its code.
pub fn decode_error(status: u16, body: &[u8]) -> ErrorObject {
    let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    read_error(Some(status), &value, body)
}

/// Reads an error object; `status` is `None` for an `error` event of a stream.
pub(super) fn read_error(status: Option<u16>, value: &Value, raw: &[u8]) -> ErrorObject {
    let error = match value.get("error") {
        Some(e @ Value::Object(_)) => e,
        Some(_) | None => value,
    };
    let kind = error.get("type").and_then(Value::as_str).map(str::to_owned);
    let message = match error.get("message").and_then(Value::as_str) {
        Some(m) => m.to_owned(),
        None => for_log(&String::from_utf8_lossy(&raw[..raw.len().min(512)]), 512).into_owned(),
    };
    let class = classify(status, kind.as_deref(), &message);
    ErrorObject { class, message, code: kind, param: None }
}

fn classify(status: Option<u16>, kind: Option<&str>, message: &str) -> ErrorClass {
    match kind {
        Some("invalid_request_error" | "request_too_large") if too_long(message) => ErrorClass::ContextLength,
        Some("invalid_request_error" | "request_too_large") => ErrorClass::InvalidRequest,
        Some("authentication_error") => ErrorClass::Authentication,
        Some("permission_error" | "billing_error") => ErrorClass::Permission,
        Some("not_found_error") => ErrorClass::NotFound,
        Some("rate_limit_error") => ErrorClass::RateLimit,
        Some("overloaded_error") => ErrorClass::Overloaded,
        Some("api_error" | "timeout_error") => ErrorClass::Server,
        // A type this codec does not know, or none: the status says.
        Some(_) | None => ErrorClass::of_status(status, too_long(message)),
    }
}

/// Whether a message says the prompt does not fit the context window.
fn too_long(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    lower.contains("prompt is too long") || lower.contains("context limit") || lower.contains("context window")
}

/// The HTTP status and Anthropic-style body of an error.
pub fn encode_error(error: &ErrorObject) -> (u16, Value) {
    let (status, kind) = error_type(error);
    (status, json!({"type": "error", "error": {"type": kind, "message": error.message}}))
}

/// The HTTP status and error `type` of a class.
pub(super) fn error_type(error: &ErrorObject) -> (u16, &'static str) {
    match error.class {
        ErrorClass::InvalidRequest | ErrorClass::ContextLength | ErrorClass::ContentFilter => {
            (400, "invalid_request_error")
        }
        ErrorClass::Authentication => (401, "authentication_error"),
        ErrorClass::Permission => (403, "permission_error"),
        ErrorClass::NotFound => (404, "not_found_error"),
        ErrorClass::RateLimit => (429, "rate_limit_error"),
        ErrorClass::Server => (500, "api_error"),
        ErrorClass::Overloaded => (529, "overloaded_error"),
    }
}
