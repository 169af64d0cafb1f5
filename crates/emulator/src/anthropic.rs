//! Anthropic Messages: `POST …/messages` (and `…/messages/count_tokens`), `GET …/models`.
//! Requests are decoded with `anthropic_codec` into the canonical model; answers are written
//! as `message` bodies or SSE streams (`message_start`, a `ping`, `content_block_*`,
//! `message_delta`, `message_stop`) by its encoders; errors in Anthropic's shape. As
//! Anthropic does: a wrong or missing `x-api-key` is 401, a missing `anthropic-version` 400,
//! a full deployment 529 `overloaded_error`, a prompt over the window "prompt is too long",
//! a trailing assistant message a prefill that is continued, and the content filter a
//! `refusal` stop.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::request::Parts;
use http::{Method, StatusCode, header};
use serde_json::{Value, json};
use switchyard_wire::anthropic_codec;
use switchyard_wire::canonical::{Part, Request, Role, StreamEvent, Usage};

use crate::answer::{Plan, Refusal};
use crate::server::{self, Reply, Speaker, respond_with};
use crate::stream::Encode;
use crate::{EmulatedDeployment, Seen, conversation};

pub(crate) async fn handle(dep: Arc<EmulatedDeployment>, parts: &Parts, body: Bytes) -> Reply {
    let path = parts.uri.path();
    if dep.auth.check(parts, &body, SystemTime::now()).is_err() {
        dep.record(Seen::Unauthorized, false, false);
        return error(StatusCode::UNAUTHORIZED, "authentication_error", "invalid x-api-key", None);
    }
    if !parts.headers.contains_key("anthropic-version") {
        dep.record(Seen::BadRequest, false, false);
        return error(StatusCode::BAD_REQUEST, "invalid_request_error", "anthropic-version: header is required", None);
    }
    if parts.method == Method::GET && path.ends_with("/models") {
        let model = json!({"type": "model", "id": dep.model, "display_name": dep.model,
            "created_at": "2025-01-01T00:00:00Z"});
        let list = json!({"data": [model], "has_more": false, "first_id": dep.model, "last_id": dep.model});
        return respond_with(StatusCode::OK, "application/json", None, &[], list.to_string().into_bytes());
    }
    let faults = dep.active_faults();
    if let Some(reply) = server::hang_up(&dep, &faults).await {
        return reply;
    }
    let counting = path.ends_with("/messages/count_tokens");
    if parts.method != Method::POST || !(counting || path.ends_with("/messages")) {
        return error(StatusCode::NOT_FOUND, "not_found_error", "Not Found", None);
    }
    let body = if counting { with_max_tokens(&body) } else { body };
    let request = match anthropic_codec::decode_request(&body) {
        Ok(r) => r,
        Err(e) => {
            dep.record(Seen::BadRequest, false, false);
            return error(StatusCode::BAD_REQUEST, "invalid_request_error", &e.message, None);
        }
    };
    if request.model != dep.model {
        dep.record(Seen::BadRequest, request.stream, false);
        return error(StatusCode::NOT_FOUND, "not_found_error", &format!("model: {}", request.model), None);
    }
    if ends_in_whitespace(&request) {
        // Anthropic's own rule for a prefill.
        dep.record(Seen::BadRequest, request.stream, true);
        let message = "messages: final assistant content cannot end with trailing whitespace";
        return error(StatusCode::BAD_REQUEST, "invalid_request_error", message, None);
    }
    let ask = conversation::ask(&request);
    if counting {
        let count = json!({"input_tokens": ask.input_tokens});
        return respond_with(StatusCode::OK, "application/json", None, &[], count.to_string().into_bytes());
    }
    server::chat(dep, Messages, ask, faults).await
}

/// A trailing assistant message (a prefill) whose text ends in whitespace.
fn ends_in_whitespace(request: &Request) -> bool {
    let Some(last) = request.messages.last().filter(|m| m.role == Role::Assistant) else { return false };
    matches!(last.content.last(), Some(Part::Text(text)) if text.ends_with(char::is_whitespace))
}

/// A count_tokens body, which has no `max_tokens`, with one, so that it decodes.
fn with_max_tokens(body: &Bytes) -> Bytes {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(mut map)) => {
            map.entry("max_tokens").or_insert(json!(1));
            Bytes::from(Value::Object(map).to_string())
        }
        _ => body.clone(),
    }
}

/// An error in Anthropic's shape.
fn error(status: StatusCode, kind: &str, message: &str, retry_after: Option<std::time::Duration>) -> Reply {
    let body = json!({"type": "error", "error": {"type": kind, "message": message}});
    respond_with(status, "application/json", retry_after, &[], body.to_string().into_bytes())
}

/// The error type Anthropic gives a status.
fn error_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        504 => "timeout_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    }
}

fn message_id(dep: &EmulatedDeployment, plan: &Plan) -> String {
    format!("msg_{:014x}{:010x}", plan.nonce, switchyard_core::rng::stable_hash(dep.name.as_bytes()) >> 24)
}

/// A Messages answer's writer.
struct Messages;

impl Speaker for Messages {
    type Encoder = Events;
    const IN_BAND_FILTER: bool = true;
    const TOOL_ID_PREFIX: &'static str = "toolu_";

    fn refuse(&self, _dep: &EmulatedDeployment, refusal: &Refusal) -> Reply {
        match *refusal {
            Refusal::Capacity { retry_after } => {
                error(server::status(529), "overloaded_error", "Overloaded", Some(retry_after))
            }
            Refusal::Status { status, retry_after } => {
                let message = match status {
                    429 => "This request would exceed the rate limit for your organization (emulated).".to_owned(),
                    _ => format!("emulated error {status}"),
                };
                error(server::status(status), error_type(status), &message, retry_after)
            }
            Refusal::ContextLength { input, max_tokens, window } => {
                let message = if input <= window && input.saturating_add(max_tokens) > window {
                    format!(
                        "input length and `max_tokens` exceed context limit: {input} + {max_tokens} > {window}, \
                         decrease input length or `max_tokens` and try again"
                    )
                } else {
                    format!("prompt is too long: {} tokens > {window} maximum", input.max(window.saturating_add(1)))
                };
                error(StatusCode::BAD_REQUEST, "invalid_request_error", &message, None)
            }
            Refusal::ContentFilter => error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "Output blocked by content filtering policy",
                None,
            ),
            Refusal::PrefillRejected => error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "This model does not support assistant message prefill. The conversation must end with a user message.",
                None,
            ),
        }
    }

    fn whole(&self, dep: &EmulatedDeployment, plan: &Plan) -> Reply {
        let response = plan.answer.response(message_id(dep, plan), dep.model.clone());
        let body = anthropic_codec::encode_response(&response).to_string().into_bytes();
        respond_with(StatusCode::OK, "application/json", None, &[("request-id", request_id(plan))], body)
    }

    fn stream(&self, dep: &EmulatedDeployment, plan: &Plan) -> (Events, StreamEvent, http::response::Builder) {
        let usage = Usage { input_tokens: plan.answer.usage.input_tokens, ..Usage::default() };
        let start =
            StreamEvent::MessageStart { id: message_id(dep, plan), model: dep.model.clone(), usage: Some(usage) };
        let head = http::Response::builder()
            .header(header::CONTENT_TYPE, "text/event-stream")
            .header(header::CACHE_CONTROL, "no-cache")
            .header("request-id", request_id(plan));
        (Events(anthropic_codec::StreamEncoder::new()), start, head)
    }
}

fn request_id(plan: &Plan) -> String {
    format!("req_{:020x}", plan.nonce)
}

/// Anthropic's SSE events, with a `ping` after `message_start` as Anthropic sends.
struct Events(anthropic_codec::StreamEncoder);

impl Encode for Events {
    fn encode(&mut self, event: &StreamEvent, out: &mut Vec<u8>) {
        self.0.encode(event, out);
        if let StreamEvent::MessageStart { .. } = event {
            self.0.encode(&StreamEvent::Ping, out);
        }
    }

    fn malformed(&mut self) -> Vec<u8> {
        b"event: content_block_delta\ndata: {\"type\": \"content_block_delta\", \"index\": 0, \"delta\": {\"text\n\n"
            .to_vec()
    }
}
