//! Canonical answers → Responses API `response` objects.

use serde_json::{Map, Value, json};

use super::{incomplete_reason, write_usage};
use crate::canonical::{FinishReason, OutputPart, Request, ResponseFormat, ToolChoice, Usage};

/// What a `response` object says besides its output: its id and creation time (Unix seconds),
/// and what it repeats of its request (the model as the caller named it, instructions, tools,
/// sampling, the output limit and text format).
#[derive(Clone, Debug, PartialEq)]
pub struct Envelope {
    /// `resp_…`; its items' ids are made from it (`msg_…`, `fc_…`).
    pub id: String,
    pub created_at: u64,
    fields: Map<String, Value>,
}

// === impl Envelope ===

impl Envelope {
    /// The envelope of the answer to `request`. `id` is without its `resp_` prefix (letters,
    /// digits, `_` or `-`).
    pub fn of(request: &Request, id: &str, created_at: u64) -> Envelope {
        let mut fields = Map::new();
        fields.insert("model".into(), json!(request.model));
        let instructions = request.system.first().map_or(Value::Null, |s| json!(s));
        fields.insert("instructions".into(), instructions);
        let tools: Vec<Value> = request
            .tools
            .iter()
            .map(|t| {
                json!({"type": "function", "name": t.name, "description": t.description,
                    "parameters": t.input_schema, "strict": t.strict})
            })
            .collect();
        fields.insert("tools".into(), Value::Array(tools));
        let choice = match &request.tool_choice {
            None | Some(ToolChoice::Auto) => json!("auto"),
            Some(ToolChoice::None) => json!("none"),
            Some(ToolChoice::Any) => json!("required"),
            Some(ToolChoice::Tool { name }) => json!({"type": "function", "name": name}),
        };
        fields.insert("tool_choice".into(), choice);
        fields.insert("parallel_tool_calls".into(), json!(request.parallel_tool_calls.unwrap_or(true)));
        fields.insert("temperature".into(), json!(request.sampling.temperature));
        fields.insert("top_p".into(), json!(request.sampling.top_p));
        fields.insert("max_output_tokens".into(), json!(request.max_tokens));
        let format = match &request.response_format {
            None => json!({"type": "text"}),
            Some(ResponseFormat::JsonObject) => json!({"type": "json_object"}),
            Some(ResponseFormat::JsonSchema { name, description, schema, strict }) => {
                json!({"type": "json_schema", "name": name, "description": description, "schema": schema,
                    "strict": strict})
            }
        };
        fields.insert("text".into(), json!({"format": format}));
        fields.insert("user".into(), json!(request.user_id));
        Envelope { id: format!("resp_{id}"), created_at, fields }
    }

    /// The id of the message item of the answer.
    pub(super) fn message_id(&self) -> String {
        format!("msg_{}", self.bare_id())
    }

    /// The id of the answer's `n`th function-call item.
    pub(super) fn call_item_id(&self, n: usize) -> String {
        format!("fc_{}_{n}", self.bare_id())
    }

    fn bare_id(&self) -> &str {
        self.id.strip_prefix("resp_").unwrap_or(&self.id)
    }

    /// The `response` object: `status` (`in_progress`, `completed`, `incomplete`, `failed`),
    /// `output`, `usage`, `incomplete_details` and `error` as given.
    pub(super) fn response(
        &self,
        status: &str,
        output: Vec<Value>,
        usage: Option<&Usage>,
        finish: Option<&FinishReason>,
        error: Value,
    ) -> Value {
        let mut body = Map::new();
        body.insert("id".into(), json!(self.id));
        body.insert("object".into(), json!("response"));
        body.insert("created_at".into(), json!(self.created_at));
        body.insert("status".into(), json!(status));
        body.insert("error".into(), error);
        let incomplete = finish.and_then(incomplete_reason).map_or(Value::Null, |r| json!({"reason": r}));
        body.insert("incomplete_details".into(), incomplete);
        for (key, value) in &self.fields {
            body.insert(key.clone(), value.clone());
        }
        body.insert("output".into(), Value::Array(output));
        body.insert("usage".into(), usage.map_or(Value::Null, write_usage));
        body.insert("store".into(), json!(false));
        body.insert("metadata".into(), json!({}));
        body.insert("background".into(), json!(false));
        body.insert("previous_response_id".into(), Value::Null);
        body.insert("reasoning".into(), json!({"effort": null, "summary": null}));
        body.insert("truncation".into(), json!("disabled"));
        Value::Object(body)
    }
}

/// The status of an answer that ended with `finish`.
pub(super) fn status(finish: &FinishReason) -> &'static str {
    if incomplete_reason(finish).is_some() { "incomplete" } else { "completed" }
}

/// A message item holding `text`.
pub(super) fn message_item(id: &str, status: &str, text: Option<&str>) -> Value {
    let content: Vec<Value> = text.into_iter().map(output_text).collect();
    json!({"id": id, "type": "message", "status": status, "role": "assistant", "content": content})
}

/// An `output_text` part.
pub(super) fn output_text(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
}

/// A function-call item.
pub(super) fn call_item(id: &str, status: &str, call_id: &str, name: &str, arguments: &str) -> Value {
    json!({"id": id, "type": "function_call", "status": status, "call_id": call_id, "name": name, "arguments": arguments})
}

/// Writes a whole answer as a `response` object: its text as one message item (first), each
/// tool call as a `function_call` item.
pub fn encode_response(envelope: &Envelope, response: &crate::canonical::Response) -> Value {
    let status = status(&response.finish);
    let item_status = if status == "incomplete" { "incomplete" } else { "completed" };
    let mut output = Vec::new();
    let text = response.text();
    if !text.is_empty() || response.content.is_empty() {
        output.push(message_item(&envelope.message_id(), item_status, Some(&text)));
    }
    let calls = response.content.iter().filter_map(|p| match p {
        OutputPart::ToolUse(call) => Some(call),
        OutputPart::Text(_) => None,
    });
    for (n, call) in calls.enumerate() {
        let arguments = call.input.to_string();
        output.push(call_item(&envelope.call_item_id(n), "completed", &call.id, &call.name, &arguments));
    }
    envelope.response(status, output, response.usage.as_ref(), Some(&response.finish), Value::Null)
}
