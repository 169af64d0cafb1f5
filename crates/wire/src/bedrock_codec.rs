//! AWS Bedrock Runtime Converse / ConverseStream ⇄ the canonical model: requests, whole
//! answers, stream events and error bodies, both ways. What Bedrock deployments speak.
//!
//! - [`encode_request`] writes a Converse body; the model id is not in it but in the URL path,
//!   `/model/{modelId}/converse` or `/model/{modelId}/converse-stream` (which one says whether
//!   the answer streams). It refuses what Converse cannot express (`response_format`,
//!   `parallel_tool_calls: false`, tool choice `none` with tools, an image given by URL, a
//!   system message inside the conversation, another protocol's parameters) with
//!   [`Unsupported`](crate::canonical::Unsupported). `top_k` travels as
//!   `additionalModelRequestFields.top_k` (what Anthropic models read) and the user id as
//!   `requestMetadata.user_id`; consecutive messages of one role are joined, as Converse
//!   wants the roles to alternate. [`decode_request`] reads such a body, for the emulator.
//! - [`decode_response`] / [`encode_response`]: Converse answers (`output.message`,
//!   `stopReason`, `usage`, `metrics`). Converse answers carry no id and no model: decoded ones
//!   have empty ones.
//! - [`StreamDecoder`] / [`StreamEncoder`]: the payloads of ConverseStream's eventstream
//!   messages, named by their `:event-type` (`messageStart`, `contentBlockStart`,
//!   `contentBlockDelta`, `contentBlockStop`, `messageStop`, `metadata`) or `:exception-type`
//!   header. The eventstream framing itself is the providers crate's.
//! - [`decode_error`] / [`encode_error`]: `{"message"}` bodies with the error type in the
//!   [`ERROR_TYPE_HEADER`] header (`ThrottlingException` 429, `ValidationException` 400, ...).
//!
//! `cachePoint` blocks (in the system prompt, messages or tools) are read and not carried:
//! they are cost hints, as Anthropic's `cache_control` marks are.

mod content;
mod error;
mod request;
mod response;
mod stream;
#[cfg(test)]
mod tests;

pub use error::{ERROR_TYPE_HEADER, decode_error, encode_error};
pub use request::{decode_request, encode_request};
pub use response::{decode_response, encode_response};
pub use stream::{EncodedEvent, StreamDecoder, StreamEncoder};

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::canonical::{FinishReason, Usage};

/// A `stopReason` as Converse writes it, with the stop sequence that ended the answer when
/// it is known (for `additionalModelResponseFields.stop_sequence`).
fn stop_reason(finish: &FinishReason) -> (&'static str, Option<&str>) {
    match finish {
        FinishReason::Stop | FinishReason::Other => ("end_turn", None),
        FinishReason::Length => ("max_tokens", None),
        FinishReason::ToolUse => ("tool_use", None),
        FinishReason::ContentFilter => ("content_filtered", None),
        FinishReason::StopSequence(sequence) => ("stop_sequence", sequence.as_deref()),
    }
}

/// A `stopReason` read. Which stop sequence matched is only known when the answer's
/// `additionalModelResponseFields` holds Anthropic's `stop_sequence` (asked for with
/// `additionalModelResponseFieldPaths`). Unknown or missing reasons (`malformed_tool_use`)
/// are `Other`.
fn read_stop_reason(reason: Option<&str>, fields: Option<&Value>) -> FinishReason {
    match reason {
        Some("end_turn") => FinishReason::Stop,
        Some("max_tokens" | "model_context_window_exceeded") => FinishReason::Length,
        Some("tool_use") => FinishReason::ToolUse,
        Some("stop_sequence") => {
            let sequence = fields.and_then(|f| f.get("stop_sequence")).and_then(Value::as_str);
            FinishReason::StopSequence(sequence.map(str::to_owned))
        }
        Some("guardrail_intervened" | "content_filtered") => FinishReason::ContentFilter,
        Some(_) | None => FinishReason::Other,
    }
}

/// The fields of an answer's end (a whole answer's top level, a `messageStop` payload):
/// `stopReason`, and the stop sequence when it is known.
fn write_stop(finish: &FinishReason, into: &mut Map<String, Value>) {
    let (reason, sequence) = stop_reason(finish);
    into.insert("stopReason".into(), json!(reason));
    if let Some(sequence) = sequence {
        into.insert("additionalModelResponseFields".into(), json!({"stop_sequence": sequence}));
    }
}

/// `usage` as Converse writes it: `inputTokens` leaves out the cached ones, `totalTokens`
/// counts them.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawUsage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    cache_write_input_tokens: Option<u64>,
}

// === impl RawUsage ===

impl RawUsage {
    fn canonical(&self) -> Usage {
        Usage::from_uncached(
            self.input_tokens,
            self.output_tokens,
            self.cache_read_input_tokens,
            self.cache_write_input_tokens,
        )
    }
}

/// `usage` as Converse writes it. The cache counts are written when there are any, as
/// Bedrock does; reasoning tokens have no field of their own: they are in `outputTokens`.
fn write_usage(usage: &Usage) -> Value {
    let mut out = Map::new();
    out.insert("inputTokens".into(), json!(usage.uncached_input_tokens()));
    out.insert("outputTokens".into(), json!(usage.output_tokens));
    out.insert("totalTokens".into(), json!(usage.input_tokens.saturating_add(usage.output_tokens)));
    if usage.cache_read_tokens > 0 {
        out.insert("cacheReadInputTokens".into(), json!(usage.cache_read_tokens));
    }
    if usage.cache_write_tokens > 0 {
        out.insert("cacheWriteInputTokens".into(), json!(usage.cache_write_tokens));
    }
    Value::Object(out)
}
