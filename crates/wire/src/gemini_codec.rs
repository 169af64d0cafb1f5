//! Google's Gemini API and Vertex AI `generateContent` ⇄ the canonical model: requests, whole
//! answers, stream chunks and error bodies, both ways. What Gemini deployments speak.
//!
//! - [`encode_request`] writes a `GenerateContentRequest`; the model is not in it but in the
//!   URL (`{base}/models/{model}:generateContent`, or `:streamGenerateContent?alt=sse`, which
//!   says whether the answer streams). Roles are `user` and `model`; consecutive messages of
//!   one role are joined. Tool calls (`functionCall`) carry no id on the wire: a tool result
//!   (`functionResponse`) is sent with the name of the call it answers, found by its id in the
//!   conversation. What Gemini cannot express (a prefill, an image URL, a system message inside
//!   the conversation, `parallel_tool_calls`, strict tools, the user id, another protocol's
//!   parameters) is [`Unsupported`](crate::canonical::Unsupported). [`decode_request`] reads
//!   such a body, for the emulator.
//! - [`decode_response`] / [`encode_response`]: `candidates[0].content.parts`, `finishReason`,
//!   `usageMetadata`. A prompt blocked by Google's filter (`promptFeedback.blockReason`, no
//!   candidates) is [`blocked`]: a content filter.
//! - [`StreamDecoder`] / [`StreamEncoder`]: `streamGenerateContent?alt=sse`, each SSE `data:`
//!   a whole `GenerateContentResponse` chunk. A `functionCall` part arrives whole: a tool block
//!   with its arguments in one delta.
//! - [`decode_error`] / [`encode_error`]: `{"error": {"code", "message", "status"}}`.
//!
//! Thought parts (`"thought": true`) are not carried: they are skipped.

mod content;
mod error;
mod request;
mod response;
mod stream;
#[cfg(test)]
mod tests;

pub use error::{decode_error, encode_error};
pub use request::{decode_request, encode_request};
pub use response::{blocked, decode_response, encode_response};
pub use stream::{StreamDecoder, StreamEncoder, decode_stream};

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::canonical::{FinishReason, Usage};

/// A `finishReason` as Gemini writes it. Gemini says `STOP` for a natural end, a stop sequence
/// and a turn that called tools alike.
fn finish_reason(finish: &FinishReason) -> &'static str {
    match finish {
        FinishReason::Stop | FinishReason::ToolUse | FinishReason::StopSequence(_) => "STOP",
        FinishReason::Length => "MAX_TOKENS",
        FinishReason::ContentFilter => "SAFETY",
        FinishReason::Other => "OTHER",
    }
}

/// A `finishReason` read; `tools` says whether the answer called a tool (Gemini's `STOP`
/// then means it waits for the results).
fn read_finish(reason: &str, tools: bool) -> FinishReason {
    match reason {
        "STOP" if tools => FinishReason::ToolUse,
        "STOP" => FinishReason::Stop,
        "MAX_TOKENS" => FinishReason::Length,
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => {
            FinishReason::ContentFilter
        }
        _ => FinishReason::Other,
    }
}

/// `usageMetadata` as Gemini writes it: `promptTokenCount` includes the cached
/// `cachedContentTokenCount`; `candidatesTokenCount` leaves out `thoughtsTokenCount`.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawUsage {
    #[serde(default)]
    prompt_token_count: Option<u64>,
    #[serde(default)]
    candidates_token_count: Option<u64>,
    #[serde(default)]
    cached_content_token_count: Option<u64>,
    #[serde(default)]
    thoughts_token_count: Option<u64>,
}

// === impl RawUsage ===

impl RawUsage {
    fn canonical(&self) -> Usage {
        let thoughts = self.thoughts_token_count.unwrap_or(0);
        let input = self.prompt_token_count.unwrap_or(0);
        Usage {
            input_tokens: input,
            output_tokens: self.candidates_token_count.unwrap_or(0).saturating_add(thoughts),
            cache_read_tokens: self.cached_content_token_count.unwrap_or(0).min(input),
            cache_write_tokens: 0,
            reasoning_tokens: thoughts,
        }
    }
}

/// `usageMetadata` as Gemini writes it; the cache and thought counts when there are any.
fn write_usage(usage: &Usage) -> Value {
    let mut out = Map::new();
    let candidates = usage.output_tokens.saturating_sub(usage.reasoning_tokens);
    out.insert("promptTokenCount".into(), json!(usage.input_tokens));
    out.insert("candidatesTokenCount".into(), json!(candidates));
    out.insert("totalTokenCount".into(), json!(usage.input_tokens.saturating_add(usage.output_tokens)));
    if usage.cache_read_tokens > 0 {
        out.insert("cachedContentTokenCount".into(), json!(usage.cache_read_tokens));
    }
    if usage.reasoning_tokens > 0 {
        out.insert("thoughtsTokenCount".into(), json!(usage.reasoning_tokens));
    }
    Value::Object(out)
}
