//! Bedrock Runtime errors ⇄ canonical errors: HTTP errors (`{"message"}` with the type in the
//! `x-amzn-ErrorType` header) and ConverseStream's in-stream exceptions.

use serde_json::{Value, json};

use crate::canonical::{ErrorClass, ErrorObject};
use crate::display::for_log;

/// The header that names an HTTP error's type, as `ThrottlingException:http://...`. Header
/// names are case-insensitive; this is the lower-case spelling HTTP/2 and `http` use.
pub const ERROR_TYPE_HEADER: &str = "x-amzn-errortype";

/// Reads an error answered with `status`, the value of its [`ERROR_TYPE_HEADER`] header
/// (the part before ':' is the type) and its body. Without the header, the body's `__type`
/// or `code` names the type, as AWS's JSON protocols allow. Any body is read: the status and
/// whatever text it holds are enough to classify. The type is kept as the error's code.
pub fn decode_error(status: u16, error_type: Option<&str>, body: &[u8]) -> ErrorObject {
    let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let kind = error_type
        .or_else(|| value.get("__type").and_then(Value::as_str))
        .or_else(|| value.get("code").and_then(Value::as_str))
        .map(type_name)
        .filter(|k| !k.is_empty());
    read(Some(status), kind, &value, body)
}

/// Reads an in-stream exception (`throttlingException`, ...) and its payload.
pub(super) fn read_exception(exception_type: &str, payload: &[u8]) -> ErrorObject {
    let value: Value = serde_json::from_slice(payload).unwrap_or(Value::Null);
    let kind = Some(type_name(exception_type)).filter(|k| !k.is_empty());
    read(None, kind, &value, payload)
}

fn read(status: Option<u16>, kind: Option<&str>, value: &Value, raw: &[u8]) -> ErrorObject {
    let text = value.get("message").or_else(|| value.get("Message")).and_then(Value::as_str);
    let message = match (text, kind) {
        (Some(m), _) => m.to_owned(),
        (None, Some(kind)) if raw.trim_ascii().is_empty() => kind.to_owned(),
        (None, _) => for_log(&String::from_utf8_lossy(&raw[..raw.len().min(512)]), 512).into_owned(),
    };
    let class = classify(status, kind, &message);
    ErrorObject { class, message, code: kind.map(str::to_owned), param: None }
}

/// `ThrottlingException:http://internal.amazon.com/...` and
/// `com.amazon.coral.service#ThrottlingException` are both `ThrottlingException`.
fn type_name(raw: &str) -> &str {
    let before = raw.split(':').next().unwrap_or(raw);
    before.rsplit('#').next().unwrap_or(before).trim()
}

fn classify(status: Option<u16>, kind: Option<&str>, message: &str) -> ErrorClass {
    let kind = kind.map(str::to_ascii_lowercase);
    match kind.as_deref() {
        Some("validationexception") if too_long(message) => ErrorClass::ContextLength,
        Some("validationexception") => ErrorClass::InvalidRequest,
        Some("throttlingexception" | "servicequotaexceededexception") => ErrorClass::RateLimit,
        Some("serviceunavailableexception" | "modelnotreadyexception") => ErrorClass::Overloaded,
        Some("accessdeniedexception") => ErrorClass::Permission,
        Some("resourcenotfoundexception") => ErrorClass::NotFound,
        Some(
            "unrecognizedclientexception"
            | "invalidsignatureexception"
            | "incompletesignatureexception"
            | "missingauthenticationtokenexception"
            | "expiredtokenexception"
            | "invalidclienttokenid",
        ) => ErrorClass::Authentication,
        Some(
            "internalserverexception" | "modelerrorexception" | "modeltimeoutexception" | "modelstreamerrorexception",
        ) => ErrorClass::Server,
        // A type this codec does not know, or none: the status says.
        Some(_) | None => ErrorClass::of_status(status, too_long(message)),
    }
}

/// Whether a message says the prompt does not fit the model's context window, in the words
/// of Bedrock and of the models behind it.
fn too_long(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    [
        "input is too long",
        "too many input tokens",
        "prompt is too long",
        "context length",
        "context window",
        "context limit",
    ]
    .iter()
    .any(|phrase| lower.contains(phrase))
}

/// The HTTP status, the error type (for [`ERROR_TYPE_HEADER`]) and the body of an error.
pub fn encode_error(error: &ErrorObject) -> (u16, &'static str, Value) {
    let (status, kind) = match error.class {
        ErrorClass::InvalidRequest | ErrorClass::ContextLength | ErrorClass::ContentFilter => {
            (400, "ValidationException")
        }
        ErrorClass::Authentication => (403, "UnrecognizedClientException"),
        ErrorClass::Permission => (403, "AccessDeniedException"),
        ErrorClass::NotFound => (404, "ResourceNotFoundException"),
        ErrorClass::RateLimit => (429, "ThrottlingException"),
        ErrorClass::Overloaded => (503, "ServiceUnavailableException"),
        ErrorClass::Server => (500, "InternalServerException"),
    };
    (status, kind, json!({"message": error.message}))
}

/// The in-stream exception of an error: ConverseStream has five, so classes without their
/// own are a `validationException` (the request's fault) or an `internalServerException`.
pub(super) fn exception_type(error: &ErrorObject) -> &'static str {
    match error.class {
        ErrorClass::RateLimit => "throttlingException",
        ErrorClass::Overloaded => "serviceUnavailableException",
        ErrorClass::Server => "internalServerException",
        ErrorClass::InvalidRequest
        | ErrorClass::ContextLength
        | ErrorClass::ContentFilter
        | ErrorClass::Authentication
        | ErrorClass::Permission
        | ErrorClass::NotFound => "validationException",
    }
}
