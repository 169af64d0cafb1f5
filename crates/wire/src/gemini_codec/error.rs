//! Google API errors ⇄ canonical errors: `{"error": {"code", "message", "status"}}`, the
//! status a `google.rpc.Code` name (`RESOURCE_EXHAUSTED`, `INVALID_ARGUMENT`, ...).

use serde_json::{Value, json};

use crate::canonical::{ErrorClass, ErrorObject};
use crate::display::for_log;

/// Reads an error answered with `status`. Any body is read (a list of errors, as a stream's
/// may be, gives its first): the status and whatever text it holds are enough to classify.
/// The Google status name is kept as the error's code.
pub fn decode_error(status: u16, body: &[u8]) -> ErrorObject {
    let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let value = match value {
        Value::Array(mut items) if !items.is_empty() => items.swap_remove(0),
        other => other,
    };
    read(Some(status), value.get("error").unwrap_or(&Value::Null), body)
}

/// Reads an `error` object (from a body or a stream chunk).
pub(super) fn read(status: Option<u16>, error: &Value, raw: &[u8]) -> ErrorObject {
    let kind = error.get("status").and_then(Value::as_str).filter(|s| !s.is_empty());
    let message = match (error.get("message").and_then(Value::as_str), kind) {
        (Some(m), _) => m.to_owned(),
        (None, Some(kind)) => kind.to_owned(),
        (None, None) => for_log(&String::from_utf8_lossy(&raw[..raw.len().min(512)]), 512).into_owned(),
    };
    let status = status.or_else(|| error.get("code").and_then(Value::as_u64).and_then(|c| u16::try_from(c).ok()));
    ErrorObject { class: classify(status, kind, &message), message, code: kind.map(str::to_owned), param: None }
}

fn classify(status: Option<u16>, kind: Option<&str>, message: &str) -> ErrorClass {
    match kind {
        Some("INVALID_ARGUMENT" | "OUT_OF_RANGE") if too_long(message) => ErrorClass::ContextLength,
        Some("INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE") => ErrorClass::InvalidRequest,
        Some("RESOURCE_EXHAUSTED") => ErrorClass::RateLimit,
        Some("UNAVAILABLE") => ErrorClass::Overloaded,
        Some("UNAUTHENTICATED") => ErrorClass::Authentication,
        Some("PERMISSION_DENIED") => ErrorClass::Permission,
        Some("NOT_FOUND") => ErrorClass::NotFound,
        Some("INTERNAL" | "UNKNOWN" | "DEADLINE_EXCEEDED" | "ABORTED" | "DATA_LOSS") => ErrorClass::Server,
        Some(_) | None => ErrorClass::of_status(status, too_long(message)),
    }
}

/// Whether a message says the prompt does not fit the model's context window, in Gemini's
/// words ("The input token count (…) exceeds the maximum number of tokens allowed (…)").
fn too_long(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    ["exceeds the maximum number of tokens", "input token count", "context window", "context length", "too long"]
        .iter()
        .any(|phrase| lower.contains(phrase))
}

/// The HTTP status and the body of an error. A content filter has no error of its own in
/// Gemini (a blocked prompt is an answer with `promptFeedback`): it is `INVALID_ARGUMENT`.
pub fn encode_error(error: &ErrorObject) -> (u16, Value) {
    let (status, kind) = status_of(error.class);
    (status, json!({"error": {"code": status, "message": error.message, "status": kind}}))
}

fn status_of(class: ErrorClass) -> (u16, &'static str) {
    match class {
        ErrorClass::InvalidRequest | ErrorClass::ContextLength | ErrorClass::ContentFilter => (400, "INVALID_ARGUMENT"),
        ErrorClass::Authentication => (401, "UNAUTHENTICATED"),
        ErrorClass::Permission => (403, "PERMISSION_DENIED"),
        ErrorClass::NotFound => (404, "NOT_FOUND"),
        ErrorClass::RateLimit => (429, "RESOURCE_EXHAUSTED"),
        ErrorClass::Overloaded => (503, "UNAVAILABLE"),
        ErrorClass::Server => (500, "INTERNAL"),
    }
}
