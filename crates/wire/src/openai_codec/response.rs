//! OpenAI `chat.completion` bodies ⇄ canonical responses, and `usage` both ways.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::request::parse_arguments;
use super::{finish_reason, read_finish_reason};
use crate::canonical::{DecodeError, OutputPart, Response, ToolUse, Usage};

#[derive(Deserialize)]
struct RawCompletion {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    model: Option<String>,
    choices: Vec<RawChoice>,
    #[serde(default)]
    usage: Option<RawUsage>,
}

#[derive(Deserialize)]
struct RawChoice {
    #[serde(default)]
    index: u32,
    message: RawMessage,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct RawMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<RawToolCall>>,
}

#[derive(Deserialize)]
struct RawToolCall {
    id: String,
    function: RawFunction,
}

#[derive(Deserialize)]
struct RawFunction {
    name: String,
    #[serde(default)]
    arguments: Option<String>,
}

/// `usage` as OpenAI writes it.
#[derive(Deserialize)]
pub(super) struct RawUsage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
    #[serde(default)]
    prompt_tokens_details: Option<RawPromptDetails>,
    #[serde(default)]
    completion_tokens_details: Option<RawCompletionDetails>,
}

#[derive(Deserialize)]
struct RawPromptDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct RawCompletionDetails {
    #[serde(default)]
    reasoning_tokens: Option<u64>,
}

// === impl RawUsage ===

impl RawUsage {
    pub(super) fn canonical(&self) -> Usage {
        Usage {
            input_tokens: self.prompt_tokens.unwrap_or(0),
            output_tokens: self.completion_tokens.unwrap_or(0),
            cache_read_tokens: self.prompt_tokens_details.as_ref().and_then(|d| d.cached_tokens).unwrap_or(0),
            cache_write_tokens: 0,
            reasoning_tokens: self.completion_tokens_details.as_ref().and_then(|d| d.reasoning_tokens).unwrap_or(0),
        }
    }
}

/// `usage` as OpenAI writes it. Cache writes have no field: they are counted in
/// `prompt_tokens`, as every input token is.
pub(super) fn write_usage(usage: &Usage) -> Value {
    json!({
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens.saturating_add(usage.output_tokens),
        "prompt_tokens_details": {"cached_tokens": usage.cache_read_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    })
}

/// A tool call's arguments, read: not JSON is a garbage answer.
pub(super) fn arguments(name: &str, arguments: &str) -> Result<Value, DecodeError> {
    parse_arguments(arguments)
        .ok_or_else(|| DecodeError::new(format!("the arguments of a call of '{name}' are not JSON")))
}

/// Reads a `chat.completion` body. A refusal is read as text.
pub fn decode_response(body: &[u8]) -> Result<Response, DecodeError> {
    let raw: RawCompletion =
        serde_json::from_slice(body).map_err(|e| DecodeError::new(format!("not a chat completion: {e}")))?;
    let mut choices = raw.choices.into_iter();
    let choice = match (choices.next(), choices.next()) {
        (Some(choice), None) if choice.index == 0 => choice,
        (None, _) => return Err(DecodeError::new("a chat completion without choices")),
        (Some(_), _) => return Err(DecodeError::new("a chat completion with more than one choice")),
    };
    let mut content = Vec::new();
    let message = choice.message;
    if let Some(text) = message.content.filter(|t| !t.is_empty()) {
        content.push(OutputPart::Text(text));
    }
    if let Some(refusal) = message.refusal.filter(|t| !t.is_empty()) {
        content.push(OutputPart::Text(refusal));
    }
    for call in message.tool_calls.into_iter().flatten() {
        let input = arguments(&call.function.name, call.function.arguments.as_deref().unwrap_or(""))?;
        content.push(OutputPart::ToolUse(ToolUse { id: call.id, name: call.function.name, input }));
    }
    Ok(Response {
        id: raw.id.unwrap_or_default(),
        model: raw.model.unwrap_or_default(),
        content,
        finish: read_finish_reason(choice.finish_reason.as_deref()),
        usage: raw.usage.as_ref().map(RawUsage::canonical),
    })
}

/// Writes a `chat.completion` body; `created` is its Unix time in seconds.
pub fn encode_response(response: &Response, created: u64) -> Value {
    let mut text = String::new();
    let mut has_text = false;
    let mut calls = Vec::new();
    for part in &response.content {
        match part {
            OutputPart::Text(t) => {
                text.push_str(t);
                has_text = true;
            }
            OutputPart::ToolUse(call) => calls.push(json!({
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.input.to_string()},
            })),
        }
    }
    let mut message = Map::new();
    message.insert("role".into(), json!("assistant"));
    message.insert("content".into(), if has_text { json!(text) } else { Value::Null });
    if !calls.is_empty() {
        message.insert("tool_calls".into(), Value::Array(calls));
    }
    let mut body = json!({
        "id": response.id,
        "object": "chat.completion",
        "created": created,
        "model": response.model,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": finish_reason(&response.finish),
        }],
    });
    if let Some(usage) = &response.usage {
        body["usage"] = write_usage(usage);
    }
    body
}
