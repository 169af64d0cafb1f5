//! OpenAI's Responses API (`POST /v1/responses`) ⇄ the canonical model, as the gateway answers
//! it inbound: callers' requests are decoded, answers encoded, whole or streamed.
//!
//! - [`decode_request`] reads a caller's body: `input` as a string or a list of items
//!   (messages of `input_text` / `input_image` / `output_text` parts, `function_call` and
//!   `function_call_output` items), `instructions` as the first system prompt, function
//!   `tools`, `tool_choice`, `max_output_tokens`, sampling, `text.format`. What the gateway
//!   cannot do is a [`RequestError`](crate::chat::RequestError) naming it: hosted tools,
//!   unknown parameters, and `previous_response_id` / `conversation` (no response state is
//!   kept). `store` is accepted; nothing is stored.
//! - [`Envelope`] is what a `response` object repeats of its request, with its id and time.
//! - [`encode_response`] writes a whole answer as a `response` object: `status` `completed`,
//!   or `incomplete` with `incomplete_details.reason` (`max_output_tokens`, `content_filter`).
//! - [`StreamEncoder`] writes canonical stream events as the typed SSE events (`response.created`
//!   ... `response.completed`), each with its `sequence_number`; a failure is `response.failed`
//!   (or an `error` event before the response was created).

mod request;
mod response;
mod stream;
#[cfg(test)]
mod tests;

pub use request::{NO_STATE, decode_request};
pub use response::{Envelope, encode_response};
pub use stream::StreamEncoder;

use serde_json::{Value, json};

use crate::canonical::{FinishReason, Usage};

/// `usage` as the Responses API writes it.
fn write_usage(usage: &Usage) -> Value {
    json!({
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {"cached_tokens": usage.cache_read_tokens},
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.input_tokens.saturating_add(usage.output_tokens),
    })
}

/// Why an answer is incomplete, as `incomplete_details.reason` says it; `None` when it is
/// complete.
fn incomplete_reason(finish: &FinishReason) -> Option<&'static str> {
    match finish {
        FinishReason::Length => Some("max_output_tokens"),
        FinishReason::ContentFilter => Some("content_filter"),
        FinishReason::Stop | FinishReason::StopSequence(_) | FinishReason::ToolUse | FinishReason::Other => None,
    }
}
