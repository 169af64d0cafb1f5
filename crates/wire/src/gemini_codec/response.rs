//! `GenerateContentResponse` bodies ⇄ canonical responses; the parts of a candidate, shared
//! with the stream side.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::content::{call_id, write_call};
use super::{RawUsage, finish_reason, read_finish, write_usage};
use crate::canonical::{DecodeError, ErrorClass, ErrorObject, FinishReason, OutputPart, Response, ToolUse};

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct RawResponse {
    #[serde(default)]
    pub(super) candidates: Vec<RawCandidate>,
    #[serde(default)]
    pub(super) usage_metadata: Option<RawUsage>,
    #[serde(default)]
    pub(super) prompt_feedback: Option<PromptFeedback>,
    #[serde(default)]
    pub(super) model_version: Option<String>,
    #[serde(default)]
    pub(super) response_id: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct PromptFeedback {
    #[serde(default)]
    pub(super) block_reason: Option<String>,
    #[serde(default)]
    pub(super) block_reason_message: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct RawCandidate {
    #[serde(default)]
    pub(super) content: Option<RawContent>,
    #[serde(default)]
    pub(super) finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
pub(super) struct RawContent {
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    pub(super) parts: Vec<RawPart>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct RawPart {
    #[serde(default)]
    pub(super) text: Option<String>,
    #[serde(default)]
    pub(super) thought: Option<bool>,
    #[serde(default)]
    pub(super) function_call: Option<RawCall>,
}

#[derive(Deserialize)]
pub(super) struct RawCall {
    #[serde(default)]
    id: Option<String>,
    name: String,
    #[serde(default)]
    args: Option<Value>,
}

// === impl RawResponse ===

impl RawResponse {
    pub(super) fn parse(body: &[u8]) -> Result<RawResponse, DecodeError> {
        serde_json::from_slice(body).map_err(|e| DecodeError::new(format!("not a Gemini answer: {e}")))
    }

    /// A prompt the filter blocked: no candidates, a `blockReason`.
    pub(super) fn blocked(&self) -> Option<ErrorObject> {
        let feedback = self.prompt_feedback.as_ref()?;
        let reason = feedback.block_reason.as_deref().filter(|r| *r != "BLOCK_REASON_UNSPECIFIED")?;
        if !self.candidates.is_empty() {
            return None;
        }
        let message =
            feedback.block_reason_message.clone().unwrap_or_else(|| format!("the prompt was blocked: {reason}"));
        Some(ErrorObject::new(ErrorClass::ContentFilter, message).with_code(reason))
    }
}

// === impl RawContent ===

impl RawContent {
    pub(super) fn check_role(&self) -> Result<(), DecodeError> {
        match self.role.as_deref() {
            None | Some("model") => Ok(()),
            Some(role) => Err(DecodeError::new(format!("an answer in the role '{role}', not 'model'"))),
        }
    }
}

// === impl RawCall ===

impl RawCall {
    /// The call as a tool use; `at` numbers it when Gemini gave no id.
    pub(super) fn tool_use(self, at: usize) -> Result<ToolUse, DecodeError> {
        let input = self.args.filter(|a| !a.is_null()).unwrap_or_else(|| json!({}));
        if !input.is_object() {
            return Err(DecodeError::new(format!("the arguments of a call of '{}' are not an object", self.name)));
        }
        Ok(ToolUse { id: self.id.unwrap_or_else(|| call_id(0, at)), name: self.name, input })
    }
}

/// A prompt Google's filter blocked (`promptFeedback.blockReason`, no candidates): the
/// content filter's error, with the reason as its code. `None` for any other body.
pub fn blocked(body: &[u8]) -> Option<ErrorObject> {
    RawResponse::parse(body).ok()?.blocked()
}

/// Reads a `generateContent` answer: the first candidate. A blocked prompt (see [`blocked`])
/// is an empty answer ended by the content filter. The id is `responseId`, the model
/// `modelVersion` (empty when absent).
pub fn decode_response(body: &[u8]) -> Result<Response, DecodeError> {
    let raw = RawResponse::parse(body)?;
    let usage = raw.usage_metadata.map(|u| u.canonical());
    let id = raw.response_id.clone().unwrap_or_default();
    let model = raw.model_version.clone().unwrap_or_default();
    if raw.blocked().is_some() {
        return Ok(Response { id, model, content: Vec::new(), finish: FinishReason::ContentFilter, usage });
    }
    let Some(candidate) = raw.candidates.into_iter().next() else {
        return Err(DecodeError::new("a Gemini answer without candidates"));
    };
    let mut content = Vec::new();
    let mut calls = 0;
    if let Some(c) = candidate.content {
        c.check_role()?;
        for part in c.parts {
            if part.thought == Some(true) {
                continue;
            }
            if let Some(call) = part.function_call {
                content.push(OutputPart::ToolUse(call.tool_use(calls)?));
                calls += 1;
            } else if let Some(text) = part.text {
                match content.last_mut() {
                    Some(OutputPart::Text(last)) => last.push_str(&text),
                    _ => content.push(OutputPart::Text(text)),
                }
            }
        }
    }
    let finish = read_finish(candidate.finish_reason.as_deref().unwrap_or("STOP"), calls > 0);
    Ok(Response { id, model, content, finish, usage })
}

/// Writes a `generateContent` answer: one candidate. Without usage, the counts are zero.
pub fn encode_response(response: &Response) -> Value {
    let parts: Vec<Value> = response
        .content
        .iter()
        .map(|part| match part {
            OutputPart::Text(text) => json!({"text": text}),
            OutputPart::ToolUse(call) => write_call(call),
        })
        .collect();
    let mut body = Map::new();
    let candidate = json!({
        "content": {"role": "model", "parts": parts},
        "finishReason": finish_reason(&response.finish),
        "index": 0,
    });
    body.insert("candidates".into(), json!([candidate]));
    body.insert("usageMetadata".into(), write_usage(&response.usage.unwrap_or_default()));
    body.insert("modelVersion".into(), json!(response.model));
    body.insert("responseId".into(), json!(response.id));
    Value::Object(body)
}
