//! `ChatResult` bodies ⇄ canonical responses, in both formats; the raw shapes of an answer,
//! shared with the stream side (a stream event is a piece of the same `chatResponse`).

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{Format, RawUsage, call_id, finish_reason, read_finish, write_usage};
use crate::canonical::{DecodeError, OutputPart, Response, ToolUse};

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawResult {
    #[serde(default)]
    model_id: Option<String>,
    chat_response: RawChat,
}

/// A `chatResponse`, or a stream event: GENERIC's `choices` (a stream event's `message` and
/// `finishReason` are one choice's), COHERE's `text` and `toolCalls`.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct RawChat {
    #[serde(default)]
    pub(super) api_format: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    choices: Vec<RawChoice>,
    #[serde(default)]
    pub(super) message: Option<RawMessage>,
    #[serde(default)]
    pub(super) text: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub(super) tool_calls: Vec<RawCall>,
    #[serde(default)]
    pub(super) finish_reason: Option<String>,
    #[serde(default)]
    pub(super) usage: Option<RawUsage>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawChoice {
    #[serde(default)]
    message: Option<RawMessage>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct RawMessage {
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    pub(super) content: Option<Vec<RawContent>>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub(super) tool_calls: Vec<RawCall>,
}

#[derive(Deserialize, Default)]
pub(super) struct RawContent {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    text: Option<String>,
}

/// A tool call: GENERIC's (`id`, `name`, `arguments` as a JSON string, in a stream any of them
/// a piece) or COHERE's (`name`, `parameters` as an object).
#[derive(Deserialize, Default)]
pub(super) struct RawCall {
    #[serde(default)]
    pub(super) id: Option<String>,
    #[serde(default)]
    pub(super) name: Option<String>,
    #[serde(default)]
    pub(super) arguments: Option<String>,
    #[serde(default)]
    pub(super) parameters: Option<Value>,
}

/// A list that OCI may write as `null` (`"toolCalls": null`, `"choices": null`): empty.
fn null_as_empty<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
}

// === impl RawChat ===

impl RawChat {
    pub(super) fn format(&self) -> Format {
        match self.api_format.as_deref() {
            Some("COHERE") => Format::Cohere,
            _ => Format::Generic,
        }
    }
}

// === impl RawMessage ===

impl RawMessage {
    pub(super) fn check_role(&self) -> Result<(), DecodeError> {
        match self.role.as_deref() {
            None | Some("ASSISTANT") => Ok(()),
            Some(role) => Err(DecodeError::new(format!("an answer in the role '{role}', not 'ASSISTANT'"))),
        }
    }

    /// The text of its `TEXT` parts, joined.
    pub(super) fn text(&self) -> String {
        let parts = self.content.iter().flatten();
        parts.filter(|c| c.kind.as_deref().is_none_or(|k| k == "TEXT")).filter_map(|c| c.text.as_deref()).collect()
    }
}

// === impl RawCall ===

impl RawCall {
    /// A whole call as a tool use; `at` numbers it when it has no id (Cohere's).
    pub(super) fn tool_use(self, at: usize) -> Result<ToolUse, DecodeError> {
        let name = self.name.filter(|n| !n.is_empty()).ok_or_else(|| DecodeError::new("a tool call without a name"))?;
        let input = match (self.parameters, self.arguments.as_deref()) {
            (Some(Value::Null) | None, None | Some("")) => json!({}),
            (Some(Value::Null) | None, Some(arguments)) => serde_json::from_str(arguments)
                .map_err(|_| DecodeError::new(format!("the arguments of a call of '{name}' are not JSON")))?,
            (Some(parameters), _) => parameters,
        };
        if !input.is_object() {
            return Err(DecodeError::new(format!("the arguments of a call of '{name}' are not an object")));
        }
        Ok(ToolUse { id: self.id.filter(|id| !id.is_empty()).unwrap_or_else(|| call_id(0, at)), name, input })
    }
}

/// Reads a `ChatResult`: GENERIC's first choice, or COHERE's text and tool calls. The id is
/// empty (OCI's answers have none); the model is `modelId`.
pub fn decode_response(body: &[u8]) -> Result<Response, DecodeError> {
    let raw: RawResult =
        serde_json::from_slice(body).map_err(|e| DecodeError::new(format!("not an OCI chat result: {e}")))?;
    let model = raw.model_id.unwrap_or_default();
    let chat = raw.chat_response;
    let usage = chat.usage.map(|u| u.canonical());
    let mut content = Vec::new();
    let (calls, reason) = match chat.format() {
        Format::Cohere => (chat.tool_calls, chat.finish_reason),
        Format::Generic => {
            let Some(choice) = chat.choices.into_iter().next() else {
                return Err(DecodeError::new("an OCI answer without choices"));
            };
            let message = choice.message.unwrap_or_default();
            message.check_role()?;
            let text = message.text();
            if !text.is_empty() {
                content.push(OutputPart::Text(text));
            }
            (message.tool_calls, choice.finish_reason)
        }
    };
    if let Some(text) = chat.text.filter(|t| !t.is_empty()) {
        content.push(OutputPart::Text(text));
    }
    let tools = !calls.is_empty();
    for (n, call) in calls.into_iter().enumerate() {
        content.push(OutputPart::ToolUse(call.tool_use(n)?));
    }
    let finish = read_finish(reason.as_deref().unwrap_or("stop"), tools);
    Ok(Response { id: String::new(), model, content, finish, usage })
}

/// Writes a `ChatResult` in `format`, created at `created` (an RFC 3339 time, GENERIC's
/// `timeCreated`). Without usage, the counts are zero.
pub fn encode_response(response: &Response, format: Format, created: &str) -> Value {
    let usage = write_usage(&response.usage.unwrap_or_default());
    let finish = finish_reason(&response.finish, format);
    let mut chat = Map::new();
    chat.insert("apiFormat".into(), json!(format.name()));
    match format {
        Format::Generic => {
            let mut content = Vec::new();
            let mut calls = Vec::new();
            for part in &response.content {
                match part {
                    OutputPart::Text(t) => content.push(json!({"type": "TEXT", "text": t})),
                    OutputPart::ToolUse(call) => calls.push(json!({
                        "id": call.id, "type": "FUNCTION", "name": call.name, "arguments": call.input.to_string(),
                    })),
                }
            }
            let mut message = Map::new();
            message.insert("role".into(), json!("ASSISTANT"));
            message.insert("content".into(), Value::Array(content));
            if !calls.is_empty() {
                message.insert("toolCalls".into(), Value::Array(calls));
            }
            chat.insert("timeCreated".into(), json!(created));
            chat.insert("choices".into(), json!([{"index": 0, "message": message, "finishReason": finish}]));
        }
        Format::Cohere => {
            chat.insert("text".into(), json!(response.text()));
            let calls: Vec<Value> = response
                .content
                .iter()
                .filter_map(|p| match p {
                    OutputPart::ToolUse(call) => Some(json!({"name": call.name, "parameters": call.input})),
                    OutputPart::Text(_) => None,
                })
                .collect();
            if !calls.is_empty() {
                chat.insert("toolCalls".into(), Value::Array(calls));
            }
            chat.insert("finishReason".into(), json!(finish));
        }
    }
    chat.insert("usage".into(), usage);
    json!({"modelId": response.model, "modelVersion": "1.0", "chatResponse": chat})
}
