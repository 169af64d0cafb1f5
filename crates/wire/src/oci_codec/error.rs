//! OCI's error bodies ⇄ canonical errors: `{"code", "message"}`, the code one of OCI's
//! (`InvalidParameter`, `NotAuthenticated`, `NotAuthorizedOrNotFound`, `TooManyRequests`,
//! `InternalServerError`, ...).

use serde_json::{Value, json};

use crate::canonical::{ErrorClass, ErrorObject};
use crate::display::for_log;

/// Reads an error answered with `status`. Any body is read: the status and whatever text it
/// holds are enough to classify. OCI's code is kept as the error's code.
pub fn decode_error(status: u16, body: &[u8]) -> ErrorObject {
    let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    read(Some(status), &value, body)
}

/// Reads an error object (a body, or a stream's error event).
pub(super) fn read(status: Option<u16>, error: &Value, raw: &[u8]) -> ErrorObject {
    let code = error.get("code").and_then(Value::as_str).filter(|c| !c.is_empty());
    let message = match (error.get("message").and_then(Value::as_str), code) {
        (Some(m), _) => m.to_owned(),
        (None, Some(code)) => code.to_owned(),
        (None, None) => for_log(&String::from_utf8_lossy(&raw[..raw.len().min(512)]), 512).into_owned(),
    };
    ErrorObject { class: classify(status, code, &message), message, code: code.map(str::to_owned), param: None }
}

fn classify(status: Option<u16>, code: Option<&str>, message: &str) -> ErrorClass {
    match code {
        Some("InvalidParameter" | "MissingParameter" | "CannotParseRequest" | "LimitExceeded") if too_long(message) => {
            ErrorClass::ContextLength
        }
        Some("InvalidParameter" | "MissingParameter" | "CannotParseRequest" | "IncorrectState" | "Conflict") => {
            ErrorClass::InvalidRequest
        }
        Some("TooManyRequests") => ErrorClass::RateLimit,
        Some("ServiceUnavailable") => ErrorClass::Overloaded,
        Some("NotAuthenticated" | "InvalidAuthentication" | "SignUpRequired") => ErrorClass::Authentication,
        Some("NotAuthorized" | "Forbidden" | "NotAllowed") => ErrorClass::Permission,
        Some("NotAuthorizedOrNotFound" | "NotFound" | "NamespaceNotFound") => ErrorClass::NotFound,
        Some("InternalServerError" | "InternalError" | "GatewayTimeout") => ErrorClass::Server,
        Some(_) | None => ErrorClass::of_status(status, too_long(message)),
    }
}

/// Whether a message says the prompt does not fit the model's context window.
fn too_long(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    ["context length", "context window", "maximum number of tokens", "too many tokens", "exceeds the maximum"]
        .iter()
        .any(|phrase| lower.contains(phrase))
}

/// The HTTP status and the body of an error, as OCI writes them. A content filter is an
/// `InvalidParameter`.
pub fn encode_error(error: &ErrorObject) -> (u16, Value) {
    let (status, code) = status_of(error.class);
    (status, json!({"code": code, "message": error.message}))
}

fn status_of(class: ErrorClass) -> (u16, &'static str) {
    match class {
        ErrorClass::InvalidRequest | ErrorClass::ContextLength | ErrorClass::ContentFilter => (400, "InvalidParameter"),
        ErrorClass::Authentication => (401, "NotAuthenticated"),
        ErrorClass::Permission | ErrorClass::NotFound => (404, "NotAuthorizedOrNotFound"),
        ErrorClass::RateLimit => (429, "TooManyRequests"),
        ErrorClass::Overloaded => (503, "ServiceUnavailable"),
        ErrorClass::Server => (500, "InternalServerError"),
    }
}
