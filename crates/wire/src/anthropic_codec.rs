//! Anthropic Messages ⇄ the canonical model: requests, whole answers, SSE streams and error
//! bodies, both ways. What the gateway's `/v1/messages` endpoint and Anthropic-protocol
//! deployments speak.
//!
//! - [`decode_request`] reads a caller's body (`max_tokens` is required, as Anthropic requires
//!   it); [`encode_request`] writes one for a deployment, refusing what Anthropic cannot
//!   express (`response_format`, a missing `max_tokens`, `temperature` above 1, a system
//!   message inside the conversation, another protocol's parameters) with
//!   [`Unsupported`](crate::canonical::Unsupported).
//! - [`decode_response`] / [`encode_response`]: `"type": "message"` bodies.
//! - [`StreamDecoder`] / [`StreamEncoder`]: the SSE event types `message_start`,
//!   `content_block_start`, `content_block_delta` (`text_delta`, `input_json_delta`),
//!   `content_block_stop`, `message_delta`, `message_stop`, `ping` and `error`.
//! - [`decode_error`] / [`encode_error`]: `{"type": "error", "error": {"type", "message"}}`
//!   with its HTTP status; `overloaded_error` (529) is the overloaded class.
//!
//! `cache_control` marks on blocks and tools are read and not carried: they are cost hints,
//! and no other protocol here can express them.

mod error;
mod request;
mod response;
mod stream;

pub use error::{decode_error, encode_error};
pub use request::{decode_request, encode_request};
pub use response::{decode_response, encode_response};
pub use stream::{StreamDecoder, StreamEncoder, decode_stream};

use serde::Deserialize;
use serde_json::{Value, json};

use crate::canonical::{FinishReason, Usage};

/// A `stop_reason` and `stop_sequence` as Anthropic writes them.
fn stop_reason(finish: &FinishReason) -> (&'static str, Option<&str>) {
    match finish {
        FinishReason::Stop | FinishReason::Other => ("end_turn", None),
        FinishReason::Length => ("max_tokens", None),
        FinishReason::ToolUse => ("tool_use", None),
        FinishReason::ContentFilter => ("refusal", None),
        FinishReason::StopSequence(sequence) => ("stop_sequence", sequence.as_deref()),
    }
}

/// A `stop_reason` read: unknown or missing ones (`pause_turn`) are `Other`.
fn read_stop_reason(reason: Option<&str>, sequence: Option<String>) -> FinishReason {
    match reason {
        Some("end_turn") => FinishReason::Stop,
        Some("max_tokens" | "model_context_window_exceeded") => FinishReason::Length,
        Some("stop_sequence") => FinishReason::StopSequence(sequence),
        Some("tool_use") => FinishReason::ToolUse,
        Some("refusal") => FinishReason::ContentFilter,
        Some(_) | None => FinishReason::Other,
    }
}

/// `usage` as Anthropic writes it: its `input_tokens` leaves out the cached ones.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
struct RawUsage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
}

// === impl RawUsage ===

impl RawUsage {
    fn canonical(&self) -> Usage {
        Usage::from_uncached(
            self.input_tokens,
            self.output_tokens,
            self.cache_read_input_tokens,
            self.cache_creation_input_tokens,
        )
    }

    /// The numbers `later` gives replace these (a `message_delta`'s over a `message_start`'s).
    fn updated(self, later: RawUsage) -> RawUsage {
        RawUsage {
            input_tokens: later.input_tokens.or(self.input_tokens),
            output_tokens: later.output_tokens.or(self.output_tokens),
            cache_creation_input_tokens: later.cache_creation_input_tokens.or(self.cache_creation_input_tokens),
            cache_read_input_tokens: later.cache_read_input_tokens.or(self.cache_read_input_tokens),
        }
    }
}

/// `usage` as Anthropic writes it. Reasoning tokens have no field of their own: they are
/// counted in `output_tokens`.
fn write_usage(usage: &Usage) -> Value {
    json!({
        "input_tokens": usage.uncached_input_tokens(),
        "output_tokens": usage.output_tokens,
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_read_input_tokens": usage.cache_read_tokens,
    })
}
