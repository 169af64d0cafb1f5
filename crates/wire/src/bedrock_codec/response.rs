//! Converse answers ⇄ canonical responses.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::content::write_tool_use;
use super::{RawUsage, read_stop_reason, write_stop, write_usage};
use crate::canonical::{DecodeError, OutputPart, Response, ToolUse};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawResponse {
    output: RawOutput,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: Option<RawUsage>,
    #[serde(default)]
    additional_model_response_fields: Option<Value>,
}

#[derive(Deserialize)]
struct RawOutput {
    message: RawMessage,
}

#[derive(Deserialize)]
struct RawMessage {
    #[serde(default)]
    role: Option<String>,
    content: Vec<AnyBlock>,
}

/// A content block of an answer. Others (`reasoningContent` from a reasoning model,
/// `citationsContent`) are not carried: they are skipped, and the text and tool calls
/// delivered.
#[derive(Deserialize)]
#[serde(untagged)]
enum AnyBlock {
    Known(RawBlock),
    Other(serde::de::IgnoredAny),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
enum RawBlock {
    Text(String),
    ToolUse(RawToolUse),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawToolUse {
    tool_use_id: String,
    name: String,
    input: Value,
}

/// Reads a Converse answer. It has no id and no model: both are empty.
pub fn decode_response(body: &[u8]) -> Result<Response, DecodeError> {
    let raw: RawResponse =
        serde_json::from_slice(body).map_err(|e| DecodeError::new(format!("not a Converse answer: {e}")))?;
    if let Some(role) = raw.output.message.role.as_deref().filter(|r| *r != "assistant") {
        return Err(DecodeError::new(format!("an answer in the role '{role}', not 'assistant'")));
    }
    let content = raw
        .output
        .message
        .content
        .into_iter()
        .filter_map(|block| match block {
            AnyBlock::Known(RawBlock::Text(text)) => Some(OutputPart::Text(text)),
            AnyBlock::Known(RawBlock::ToolUse(RawToolUse { tool_use_id, name, input })) => {
                Some(OutputPart::ToolUse(ToolUse { id: tool_use_id, name, input }))
            }
            AnyBlock::Other(_) => None,
        })
        .collect();
    Ok(Response {
        id: String::new(),
        model: String::new(),
        content,
        finish: read_stop_reason(raw.stop_reason.as_deref(), raw.additional_model_response_fields.as_ref()),
        usage: raw.usage.map(|u| u.canonical()),
    })
}

/// Writes a Converse answer. Without usage, the counts are zero (Converse's `usage` is
/// required); the latency is zero. A known stop sequence is written as Anthropic's
/// `additionalModelResponseFields.stop_sequence`.
pub fn encode_response(response: &Response) -> Value {
    let content: Vec<Value> = response
        .content
        .iter()
        .map(|part| match part {
            OutputPart::Text(text) => json!({"text": text}),
            OutputPart::ToolUse(call) => write_tool_use(call),
        })
        .collect();
    let mut body = Map::new();
    body.insert("output".into(), json!({"message": {"role": "assistant", "content": content}}));
    write_stop(&response.finish, &mut body);
    body.insert("usage".into(), write_usage(&response.usage.unwrap_or_default()));
    body.insert("metrics".into(), json!({"latencyMs": 0}));
    Value::Object(body)
}
