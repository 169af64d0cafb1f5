//! OpenAI-shaped error bodies: `{"error": {"message", "type", "param", "code"}}`.

use serde_json::json;

/// The JSON body of an OpenAI-style error.
pub fn error_body(message: &str, kind: &str, code: Option<&str>, param: Option<&str>) -> Vec<u8> {
    let body = json!({
        "error": { "message": message, "type": kind, "param": param, "code": code }
    });
    body.to_string().into_bytes()
}

/// An SSE event carrying an OpenAI-style error, for failures after a stream has started.
pub fn error_event(message: &str, kind: &str, code: &str) -> Vec<u8> {
    let mut out = b"data: ".to_vec();
    out.extend(error_body(message, kind, Some(code), None));
    out.extend(b"\n\n");
    out
}
