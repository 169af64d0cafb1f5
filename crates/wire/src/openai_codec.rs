//! OpenAI Chat Completions ⇄ the canonical model: requests, whole answers, streamed chunks and
//! error bodies, both ways.
//!
//! This is the slow path, for when the caller's protocol and the deployment's differ; between
//! two OpenAI ends the gateway forwards the caller's bytes ([`crate::chat`]).
//!
//! - [`decode_request`] reads a caller's body; [`encode_request`] writes one for a deployment,
//!   refusing what OpenAI cannot express (`top_k`, an assistant prefill, an erroneous tool
//!   result, another protocol's parameters) with [`Unsupported`](crate::canonical::Unsupported).
//! - [`decode_response`] / [`encode_response`]: `chat.completion` bodies.
//! - [`StreamDecoder`] turns `chat.completion.chunk` events into canonical stream events
//!   (tool-call deltas by index become blocks); [`StreamEncoder`] writes chunks, ending with
//!   `[DONE]`.
//! - [`decode_error`] / [`encode_error`]: `{"error": {"message", "type", "param", "code"}}`
//!   with its HTTP status.

mod error;
mod request;
mod response;
mod stream;

pub use error::{decode_error, encode_error};
pub(crate) use request::read_function;
pub use request::{decode_request, encode_request};
pub use response::{decode_response, encode_response};
pub use stream::{StreamDecoder, StreamEncoder, decode_stream};

use crate::canonical::FinishReason;

/// A `finish_reason` as OpenAI writes it.
fn finish_reason(finish: &FinishReason) -> &'static str {
    match finish {
        FinishReason::Stop | FinishReason::StopSequence(_) | FinishReason::Other => "stop",
        FinishReason::Length => "length",
        FinishReason::ToolUse => "tool_calls",
        FinishReason::ContentFilter => "content_filter",
    }
}

/// A `finish_reason` read: unknown or missing ones are `Other`.
fn read_finish_reason(reason: Option<&str>) -> FinishReason {
    match reason {
        Some("stop") => FinishReason::Stop,
        Some("length") => FinishReason::Length,
        Some("tool_calls" | "function_call") => FinishReason::ToolUse,
        Some("content_filter") => FinishReason::ContentFilter,
        Some(_) | None => FinishReason::Other,
    }
}
