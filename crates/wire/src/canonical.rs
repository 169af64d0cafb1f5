//! The canonical wire model: one request, response, stream-event and error shape that every
//! protocol the gateway speaks is translated to and from.
//!
//! Codecs ([`crate::openai_codec`], [`crate::anthropic_codec`]) decode a caller's protocol into
//! these types and encode them for a deployment's protocol. The model holds what the protocols
//! share; a protocol's own top-level parameters that it has no place for travel in
//! [`Request::extra`], so that encoding for the same protocol passes them on and encoding for
//! another is an [`Unsupported`] error naming them. Nothing is dropped silently.
//!
//! Conventions that hold across the model:
//! - Token counts in [`Usage`] are totals: `input_tokens` includes cached reads and writes,
//!   `output_tokens` includes reasoning.
//! - A conversation is `system` prompts, then messages. Tool results are parts of a user
//!   message (as in Anthropic's protocol); a system message in the middle of a conversation
//!   keeps its place as a [`Role::System`] message.

mod error;
mod stream;

use std::fmt;

use serde_json::{Map, Value};

pub use error::{ErrorClass, ErrorObject};
pub use stream::{BlockKind, SseDecoder, StreamCheck, StreamEvent, decode_sse};

/// A wire protocol the codecs speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// OpenAI Chat Completions (`/v1/chat/completions`).
    OpenAiChat,
    /// Anthropic Messages (`/v1/messages`).
    Anthropic,
    /// AWS Bedrock Runtime Converse (`/model/{modelId}/converse`, `/converse-stream`).
    Bedrock,
    /// Google's Gemini API and Vertex AI (`models/{model}:generateContent`,
    /// `:streamGenerateContent?alt=sse`).
    Gemini,
    /// OCI Generative AI's native chat (`/20231130/actions/chat`), GENERIC or COHERE format.
    Oci,
}

/// A request in the canonical model.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Request {
    pub model: String,
    /// System prompts before the conversation, in order.
    pub system: Vec<String>,
    pub messages: Vec<Message>,
    /// The last message is an assistant message that the model is to continue (Anthropic's
    /// prefill), rather than a finished turn of the history.
    pub prefill: bool,
    pub tools: Vec<Tool>,
    pub tool_choice: Option<ToolChoice>,
    /// Whether the model may call several tools in one turn; `None` leaves it to the provider.
    pub parallel_tool_calls: Option<bool>,
    pub stop: Vec<String>,
    pub sampling: Sampling,
    pub max_tokens: Option<u32>,
    pub response_format: Option<ResponseFormat>,
    /// The caller's end-user id (OpenAI `user`, Anthropic `metadata.user_id`).
    pub user_id: Option<String>,
    pub stream: bool,
    /// The caller asked for usage at the end of a stream (always so in Anthropic's protocol).
    pub include_usage: bool,
    /// Top-level parameters of the caller's protocol that the model has no place for.
    pub extra: Option<Extra>,
}

/// Parameters one protocol has and the model does not: passed on to the same protocol,
/// refused by any other.
#[derive(Clone, Debug, PartialEq)]
pub struct Extra {
    pub protocol: Protocol,
    pub fields: Map<String, Value>,
}

/// One message of the conversation.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    pub role: Role,
    pub content: Vec<Part>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A system message after the conversation has begun (only text parts).
    System,
    /// The caller's turn: text, images and tool results.
    User,
    /// The model's turn: text and tool calls.
    Assistant,
}

/// A part of a message's content.
#[derive(Clone, Debug, PartialEq)]
pub enum Part {
    Text(String),
    Image(Image),
    ToolUse(ToolUse),
    ToolResult(ToolResult),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    pub source: ImageSource,
    /// OpenAI's resolution hint; only OpenAI can express one other than `Auto`.
    pub detail: Option<ImageDetail>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageSource {
    Base64 { media_type: String, data: String },
    Url(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageDetail {
    Auto,
    Low,
    High,
}

/// A tool call the model made.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolUse {
    pub id: String,
    pub name: String,
    /// The arguments, as a JSON value (an object for every protocol here).
    pub input: Value,
}

/// What a tool call returned, sent back in a user message.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolResult {
    pub tool_use_id: String,
    pub content: Vec<ResultPart>,
    pub is_error: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResultPart {
    Text(String),
    Image(Image),
}

/// A tool the model may call.
#[derive(Clone, Debug, PartialEq)]
pub struct Tool {
    pub name: String,
    pub description: Option<String>,
    /// The JSON schema of the input.
    pub input_schema: Value,
    /// OpenAI's strict schema adherence.
    pub strict: Option<bool>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ToolChoice {
    /// The model decides.
    Auto,
    /// No tool calls.
    None,
    /// At least one tool call (OpenAI `required`, Anthropic `any`).
    Any,
    /// A call of this tool.
    Tool { name: String },
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Sampling {
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub top_k: Option<u32>,
}

/// A structured answer: any JSON object, or JSON matching a schema.
#[derive(Clone, Debug, PartialEq)]
pub enum ResponseFormat {
    JsonObject,
    JsonSchema { name: String, description: Option<String>, schema: Value, strict: Option<bool> },
}

/// A whole (non-streamed) answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Response {
    pub id: String,
    pub model: String,
    pub content: Vec<OutputPart>,
    pub finish: FinishReason,
    pub usage: Option<Usage>,
}

/// A part of an answer.
#[derive(Clone, Debug, PartialEq)]
pub enum OutputPart {
    Text(String),
    ToolUse(ToolUse),
}

/// Why the model stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FinishReason {
    /// A natural end of the turn.
    Stop,
    /// The output token limit (or the context window) was reached.
    Length,
    /// The model called tools and waits for their results.
    ToolUse,
    /// The provider's filter or the model's refusal ended the answer.
    ContentFilter,
    /// A stop sequence was generated; which one, when the protocol says.
    StopSequence(Option<String>),
    /// Ended for a reason no protocol here names (an upstream error, an unknown reason).
    Other,
}

/// Token usage, as totals: `cache_read_tokens` and `cache_write_tokens` are part of
/// `input_tokens`, `reasoning_tokens` part of `output_tokens`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    pub reasoning_tokens: u64,
}

/// A request the target protocol cannot express: encoding refuses it rather than drop it. The
/// gateway answers it with a 400 naming `param`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{param}` cannot be sent to a deployment speaking {target}: {reason}")]
pub struct Unsupported {
    /// The parameter, as a path into the canonical request (`top_k`, `messages[2].content[0]`).
    pub param: String,
    pub target: Protocol,
    pub reason: &'static str,
}

/// An upstream answer (body, stream or error) that is not what its protocol says it must be.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DecodeError {
    pub message: String,
}

// === impl Protocol ===

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::OpenAiChat => "OpenAI Chat Completions",
            Protocol::Anthropic => "Anthropic Messages",
            Protocol::Bedrock => "AWS Bedrock Converse",
            Protocol::Gemini => "Gemini generateContent",
            Protocol::Oci => "OCI Generative AI chat",
        })
    }
}

// === impl Request ===

impl Request {
    /// Refuses parameters that came from another protocol: the first one is named.
    pub fn check_extra(&self, target: Protocol) -> Result<Option<&Map<String, Value>>, Unsupported> {
        match &self.extra {
            None => Ok(None),
            Some(extra) if extra.protocol == target => Ok(Some(&extra.fields)),
            Some(extra) => match extra.fields.keys().next() {
                None => Ok(None),
                Some(key) => Err(Unsupported {
                    param: key.clone(),
                    target,
                    reason: "a parameter of the caller's protocol that this one has no equivalent for",
                }),
            },
        }
    }
}

// === impl Response ===

impl Response {
    /// All text parts, joined.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for part in &self.content {
            match part {
                OutputPart::Text(t) => out.push_str(t),
                OutputPart::ToolUse(_) => (),
            }
        }
        out
    }
}

// === impl FinishReason ===

impl FinishReason {
    /// A bounded label, for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::ToolUse => "tool_use",
            FinishReason::ContentFilter => "content_filter",
            FinishReason::StopSequence(_) => "stop_sequence",
            FinishReason::Other => "other",
        }
    }
}

// === impl Usage ===

impl Usage {
    /// From counts whose input leaves the cache's reads and writes out (Anthropic's and
    /// Bedrock's way); absent counts are zero.
    pub fn from_uncached(input: Option<u64>, output: Option<u64>, read: Option<u64>, write: Option<u64>) -> Usage {
        let (read, write) = (read.unwrap_or(0), write.unwrap_or(0));
        Usage {
            input_tokens: input.unwrap_or(0).saturating_add(read).saturating_add(write),
            output_tokens: output.unwrap_or(0),
            cache_read_tokens: read,
            cache_write_tokens: write,
            reasoning_tokens: 0,
        }
    }

    /// Input tokens neither read from nor written to a cache.
    pub fn uncached_input_tokens(&self) -> u64 {
        self.input_tokens.saturating_sub(self.cache_read_tokens).saturating_sub(self.cache_write_tokens)
    }
}

// === impl DecodeError ===

impl DecodeError {
    pub fn new(message: impl Into<String>) -> DecodeError {
        DecodeError { message: message.into() }
    }
}
