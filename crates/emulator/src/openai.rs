//! OpenAI Chat Completions, Embeddings and Models: the fast path. A chat body is read with
//! `ChatRequest::parse` (the gateway's own view: token estimate, `max_tokens`, stream) and
//! only its messages, and its tools or `response_format` when present, are parsed further;
//! answers and chunks are written directly. A trailing assistant message is continued when
//! `continue_final_message` is set (vLLM's convention, what the gateway's continuations send).
//! Azure OpenAI's deployments (`azure.rs`) are served by the same code once their URL and key
//! are checked.

use std::sync::Arc;

use bytes::Bytes;
use http::request::Parts;
use http::{StatusCode, header};
use serde_json::{Value, json};
use switchyard_wire::canonical::{BlockKind, FinishReason, StreamEvent, Usage};
use switchyard_wire::chat::ChatRequest;
use switchyard_wire::error::error_body;
use switchyard_wire::sse::{DONE_EVENT, data_event};

use crate::answer::{Ask, Content, Plan, Refusal, Shape};
use crate::server::{self, Reply, Speaker, json_response, respond};
use crate::stream::Encode;
use crate::text::conversation_key;
use crate::{EmulatedDeployment, Seen, embeddings};

pub(crate) async fn handle(dep: Arc<EmulatedDeployment>, parts: &Parts, body: Bytes) -> Reply {
    let path = parts.uri.path();
    if path.ends_with("/models") {
        let list = json!({"object": "list", "data": [{"id": dep.model, "object": "model", "owned_by": dep.cloud}]});
        return json_response(StatusCode::OK, list.to_string().into_bytes());
    }
    if dep.auth.check(parts, &body, std::time::SystemTime::now()).is_err() {
        dep.record(Seen::Unauthorized, false, false);
        if dep.auth.is_oci() {
            return oci_not_authenticated();
        }
        return error(StatusCode::UNAUTHORIZED, "invalid api key", "invalid_request_error", Some("invalid_api_key"));
    }
    let route = if path.ends_with("/embeddings") {
        Some(Route::Embeddings)
    } else if path.ends_with("/chat/completions") {
        Some(Route::Chat)
    } else {
        None
    };
    serve(dep, path, body, route, Flavor::OpenAi).await
}

/// Whose OpenAI this is: OpenAI's own, or Azure OpenAI's, which answers the same bodies but
/// writes its capacity and content-filter refusals its own way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flavor {
    OpenAi,
    Azure,
}

/// What an authenticated request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    Chat,
    Embeddings,
}

/// Serves an authenticated request on `route` (`None`: a path with nothing behind it): the
/// connection faults, then embeddings or the chat pipeline.
pub(crate) async fn serve(
    dep: Arc<EmulatedDeployment>,
    path: &str,
    body: Bytes,
    route: Option<Route>,
    flavor: Flavor,
) -> Reply {
    let faults = dep.active_faults();
    if let Some(reply) = server::hang_up(&dep, &faults).await {
        return reply;
    }
    match route {
        Some(Route::Embeddings) => return embeddings::answer(&dep, body),
        Some(Route::Chat) => {}
        None => return error(StatusCode::NOT_FOUND, &format!("no route for {path}"), "invalid_request_error", None),
    }
    let request = match ChatRequest::parse(body) {
        Ok(r) => r,
        Err(e) => {
            dep.record(Seen::BadRequest, false, false);
            return error(StatusCode::BAD_REQUEST, &e.message, "invalid_request_error", None);
        }
    };
    let speaker = Chat { include_usage: request.include_usage, flavor };
    server::chat(dep, speaker, ask(&request), faults).await
}

pub(crate) fn error(status: StatusCode, message: &str, kind: &str, code: Option<&str>) -> Reply {
    json_response(status, error_body(message, kind, code, None))
}

/// What the answer depends on. The conversation is keyed by its messages as sent, without a
/// prefill to be continued.
fn ask(request: &ChatRequest) -> Ask {
    let mut messages: Vec<Value> =
        request.object.get("messages").and_then(|m| serde_json::from_str(m).ok()).unwrap_or_default();
    let continues = request.object.get("continue_final_message") == Some("true");
    let prefill = match messages.last() {
        Some(last) if continues && last.get("role").and_then(Value::as_str) == Some("assistant") => {
            let text = last.get("content").and_then(Value::as_str).unwrap_or("").to_owned();
            messages.pop();
            Some(text)
        }
        _ => None,
    };
    Ask {
        key: conversation_key(&messages),
        shape: shape(request, &messages, prefill.is_some()),
        user_text: user_text(&messages),
        prefill,
        input_tokens: request.input_tokens,
        max_tokens: request.max_tokens,
        stream: request.stream,
    }
}

fn field(request: &ChatRequest, key: &str) -> Option<Value> {
    request.object.get(key).and_then(|v| serde_json::from_str(v).ok())
}

fn shape(request: &ChatRequest, messages: &[Value], prefill: bool) -> Shape {
    let user_last = messages.last().is_some_and(|m| m.get("role").and_then(Value::as_str) == Some("user"));
    if request.tools && user_last && !prefill {
        let tools = match field(request, "tools") {
            Some(Value::Array(tools)) => tools,
            _ => Vec::new(),
        };
        let name_of = |t: &Value| t.pointer("/function/name").and_then(Value::as_str).map(str::to_owned);
        let tool = match field(request, "tool_choice") {
            Some(Value::String(choice)) if choice == "none" => None,
            Some(choice @ Value::Object(_)) => {
                let named = choice.pointer("/function/name").and_then(Value::as_str);
                tools.iter().find(|t| name_of(t).as_deref() == named).or(tools.first())
            }
            _ => tools.first(),
        };
        if let Some(tool) = tool {
            let schema = tool.pointer("/function/parameters").cloned().unwrap_or_else(|| json!({"type": "object"}));
            return Shape::Tool { name: name_of(tool).unwrap_or_default(), schema };
        }
    }
    let Some(format) = request.object.get("response_format").map(|_| field(request, "response_format")) else {
        return Shape::Text;
    };
    let format = format.unwrap_or(Value::Null);
    match format.get("type").and_then(Value::as_str) {
        Some("json_object") => Shape::JsonObject,
        Some("json_schema") => {
            Shape::JsonSchema(format.pointer("/json_schema/schema").cloned().unwrap_or_else(|| json!({})))
        }
        _ => Shape::Text,
    }
}

/// The last user message's text (a string, or its text parts).
fn user_text(messages: &[Value]) -> String {
    let Some(last) = messages.iter().rev().find(|m| m.get("role").and_then(Value::as_str) == Some("user")) else {
        return String::new();
    };
    match last.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => {
            parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join("\n")
        }
        _ => String::new(),
    }
}

fn finish_reason(finish: &FinishReason) -> &'static str {
    match finish {
        FinishReason::Stop | FinishReason::StopSequence(_) | FinishReason::Other => "stop",
        FinishReason::Length => "length",
        FinishReason::ToolUse => "tool_calls",
        FinishReason::ContentFilter => "content_filter",
    }
}

fn usage(usage: &Usage) -> Value {
    json!({
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
    })
}

fn created() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A chat completion's writer.
struct Chat {
    include_usage: bool,
    flavor: Flavor,
}

impl Speaker for Chat {
    type Encoder = Chunks;
    const IN_BAND_FILTER: bool = false;
    const TOOL_ID_PREFIX: &'static str = "call_";

    fn refuse(&self, _dep: &EmulatedDeployment, refusal: &Refusal) -> Reply {
        if self.flavor == Flavor::Azure
            && let Some(reply) = crate::azure::refuse(refusal)
        {
            return reply;
        }
        match *refusal {
            Refusal::Capacity { retry_after } => {
                let body =
                    error_body("capacity exceeded, retry later", "rate_limit_error", Some("rate_limit_exceeded"), None);
                respond(StatusCode::TOO_MANY_REQUESTS, "application/json", Some(retry_after), body)
            }
            Refusal::Status { status, retry_after } => {
                let body = error_body(&format!("emulated error {status}"), "server_error", None, None);
                respond(server::status(status), "application/json", retry_after, body)
            }
            Refusal::ContextLength { input, max_tokens, window } => {
                let message = format!(
                    "This model's maximum context length is {window} tokens. However, you requested {} tokens.",
                    input.saturating_add(max_tokens)
                );
                error(StatusCode::BAD_REQUEST, &message, "invalid_request_error", Some("context_length_exceeded"))
            }
            Refusal::ContentFilter => error(
                StatusCode::BAD_REQUEST,
                "The response was filtered due to the prompt triggering the content management policy.",
                "invalid_request_error",
                Some("content_filter"),
            ),
            Refusal::PrefillRejected => error(
                StatusCode::BAD_REQUEST,
                "continue_final_message is not supported by this deployment",
                "invalid_request_error",
                Some("unsupported_parameter"),
            ),
        }
    }

    fn whole(&self, dep: &EmulatedDeployment, plan: &Plan) -> Reply {
        let answer = &plan.answer;
        let message = match &answer.content {
            Content::Text(pieces) => json!({"role": "assistant", "content": pieces.concat()}),
            Content::Tool { id, name, pieces } => json!({"role": "assistant", "content": null, "tool_calls": [
                {"id": id, "type": "function", "function": {"name": name, "arguments": pieces.concat()}},
            ]}),
        };
        let mut body = json!({
            "id": id(dep, plan), "object": "chat.completion", "created": created(), "model": dep.model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish_reason(&answer.finish)}],
            "usage": usage(&answer.usage),
        });
        if self.flavor == Flavor::Azure {
            body["prompt_filter_results"] = crate::azure::prompt_filter_results();
            body["choices"][0]["content_filter_results"] = crate::azure::annotations();
        }
        let headroom = if self.flavor == Flavor::Azure { crate::azure::headroom(dep) } else { Vec::new() };
        server::respond_with(StatusCode::OK, "application/json", None, &headroom, body.to_string().into_bytes())
    }

    fn stream(&self, dep: &EmulatedDeployment, plan: &Plan) -> (Chunks, StreamEvent, http::response::Builder) {
        let id = id(dep, plan);
        let encoder = Chunks {
            id: id.clone(),
            created: created(),
            model: dep.model.clone(),
            include_usage: self.include_usage,
            role_sent: false,
            azure: self.flavor == Flavor::Azure,
        };
        let start = StreamEvent::MessageStart { id, model: dep.model.clone(), usage: None };
        let mut head = http::Response::builder()
            .header(header::CONTENT_TYPE, "text/event-stream")
            .header(header::CACHE_CONTROL, "no-cache");
        if self.flavor == Flavor::Azure {
            for (name, value) in crate::azure::headroom(dep) {
                head = head.header(name, value);
            }
        }
        (encoder, start, head)
    }
}

fn id(dep: &EmulatedDeployment, plan: &Plan) -> String {
    format!("chatcmpl-{}-{}", dep.name, plan.nonce)
}

/// `chat.completion.chunk` events: the role rides on the first delta, the usage chunk (when
/// asked for) follows the finish, and `[DONE]` ends the stream.
struct Chunks {
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
    role_sent: bool,
    /// Azure's annotations: the prompt's in a first chunk of their own (no id, no choices, as
    /// Azure sends it), each chunk's choice its own.
    azure: bool,
}

impl Chunks {
    fn chunk(&mut self, mut delta: Value, finish: Option<&str>, out: &mut Vec<u8>) {
        if !self.role_sent && finish.is_none() {
            self.role_sent = true;
            delta["role"] = json!("assistant");
            if self.azure {
                let prompt = json!({"choices": [], "created": 0, "id": "", "model": "", "object": "",
                    "prompt_filter_results": crate::azure::prompt_filter_results()});
                out.extend_from_slice(&data_event(prompt.to_string().as_bytes()));
            }
        }
        let mut chunk = json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        });
        if self.azure {
            chunk["choices"][0]["content_filter_results"] = crate::azure::annotations();
        }
        out.extend_from_slice(&data_event(chunk.to_string().as_bytes()));
    }
}

impl Encode for Chunks {
    fn encode(&mut self, event: &StreamEvent, out: &mut Vec<u8>) {
        match event {
            StreamEvent::MessageStart { .. }
            | StreamEvent::BlockStart { block: BlockKind::Text, .. }
            | StreamEvent::BlockStop { .. }
            | StreamEvent::Ping => (),
            StreamEvent::BlockStart { block: BlockKind::ToolUse { id, name }, .. } => {
                let call =
                    json!({"index": 0, "id": id, "type": "function", "function": {"name": name, "arguments": ""}});
                self.chunk(json!({"content": null, "tool_calls": [call]}), None, out);
            }
            StreamEvent::TextDelta { text, .. } => self.chunk(json!({"content": text}), None, out),
            StreamEvent::ToolInputDelta { partial_json, .. } => {
                let call = json!({"index": 0, "function": {"arguments": partial_json}});
                self.chunk(json!({"tool_calls": [call]}), None, out);
            }
            StreamEvent::MessageDelta { finish, usage: answer_usage } => {
                self.chunk(json!({}), Some(finish_reason(finish)), out);
                if let (true, Some(u)) = (self.include_usage, answer_usage) {
                    let chunk = json!({
                        "id": self.id, "object": "chat.completion.chunk", "created": self.created,
                        "model": self.model, "choices": [], "usage": usage(u),
                    });
                    out.extend_from_slice(&data_event(chunk.to_string().as_bytes()));
                }
            }
            StreamEvent::MessageStop => out.extend_from_slice(DONE_EVENT),
            StreamEvent::Error(e) => {
                let body = error_body(&e.message, "server_error", None, None);
                out.extend_from_slice(&data_event(&body));
            }
        }
    }

    fn malformed(&mut self) -> Vec<u8> {
        b"data: {\"choices\": [{\"delta\": {\"content\n\n".to_vec()
    }
}

/// OCI's 401 for a missing or wrong request signature (the same for every reason).
fn oci_not_authenticated() -> Reply {
    let body = json!({
        "code": "NotAuthenticated",
        "message": "The required information to complete authentication was not provided or was incorrect."
    });
    json_response(StatusCode::UNAUTHORIZED, body.to_string().into_bytes())
}
