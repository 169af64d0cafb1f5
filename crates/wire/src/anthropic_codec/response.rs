//! Anthropic `message` bodies ⇄ canonical responses.

use serde::Deserialize;
use serde_json::{Value, json};

use super::{RawUsage, read_stop_reason, stop_reason, write_usage};
use crate::canonical::{DecodeError, OutputPart, Response, ToolUse};

#[derive(Deserialize)]
struct RawMessage {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    model: Option<String>,
    content: Vec<RawBlock>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    stop_sequence: Option<String>,
    #[serde(default)]
    usage: Option<RawUsage>,
}

/// A content block of an answer. Other types (thinking, server tools) are not carried: they
/// are skipped, and the text and tool calls delivered.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum RawBlock {
    Text {
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
    #[serde(other)]
    Other,
}

/// Reads a `message` body.
pub fn decode_response(body: &[u8]) -> Result<Response, DecodeError> {
    let raw: RawMessage =
        serde_json::from_slice(body).map_err(|e| DecodeError::new(format!("not an Anthropic message: {e}")))?;
    if raw.kind != "message" {
        return Err(DecodeError::new(format!("an answer of type '{}', not 'message'", raw.kind)));
    }
    let content = raw
        .content
        .into_iter()
        .filter_map(|block| match block {
            RawBlock::Text { text } => Some(OutputPart::Text(text)),
            RawBlock::ToolUse { id, name, input } => Some(OutputPart::ToolUse(ToolUse { id, name, input })),
            RawBlock::Other => None,
        })
        .collect();
    Ok(Response {
        id: raw.id.unwrap_or_default(),
        model: raw.model.unwrap_or_default(),
        content,
        finish: read_stop_reason(raw.stop_reason.as_deref(), raw.stop_sequence),
        usage: raw.usage.map(|u| u.canonical()),
    })
}

/// Writes a `message` body. Without usage, the counts are zero (Anthropic's `usage` is
/// required).
pub fn encode_response(response: &Response) -> Value {
    let content: Vec<Value> = response
        .content
        .iter()
        .map(|part| match part {
            OutputPart::Text(text) => json!({"type": "text", "text": text}),
            OutputPart::ToolUse(call) => {
                json!({"type": "tool_use", "id": call.id, "name": call.name, "input": call.input})
            }
        })
        .collect();
    let (reason, sequence) = stop_reason(&response.finish);
    json!({
        "id": response.id,
        "type": "message",
        "role": "assistant",
        "model": response.model,
        "content": content,
        "stop_reason": reason,
        "stop_sequence": sequence,
        "usage": write_usage(&response.usage.unwrap_or_default()),
    })
}
