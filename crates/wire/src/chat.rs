//! OpenAI Chat Completions and Embeddings: parsing inbound requests into what routing needs,
//! building upstream bodies, and reading upstream responses and stream chunks.
//!
//! The caller's body is kept as a JSON object and passed through: only `model`, `stream`,
//! `stream_options` and (for continuations) `messages` are changed.

use std::borrow::Cow;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::object::{Edit, RawObject};
use crate::tokens::{MESSAGE_OVERHEAD_TOKENS, estimate_tokens};

/// A request the caller got wrong: the message says what, `param` names the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RequestError {
    pub message: String,
    pub param: Option<&'static str>,
}

fn bad(message: impl Into<String>, param: Option<&'static str>) -> RequestError {
    RequestError { message: message.into(), param }
}

/// An inbound chat request, parsed for routing. The caller's bytes are kept and forwarded with
/// only the fields that must change rewritten.
#[derive(Clone, Debug)]
pub struct ChatRequest {
    pub object: RawObject,
    pub model: String,
    pub stream: bool,
    /// The caller asked for a usage chunk (`stream_options.include_usage`).
    pub include_usage: bool,
    pub max_tokens: Option<u32>,
    pub input_tokens: u32,
    pub tools: bool,
    pub vision: bool,
}

/// An inbound embeddings request, parsed for routing.
#[derive(Clone, Debug)]
pub struct EmbeddingsRequest {
    pub object: RawObject,
    pub model: String,
    /// Estimated tokens of every input together (what is reserved and billed).
    pub input_tokens: u32,
    /// Estimated tokens of the longest input: what a model's context window must hold, each
    /// input being embedded on its own.
    pub longest_input_tokens: u32,
}

/// The most tokens one usage number of one request can plausibly count: 100 million, ten
/// times the largest context window offered today. An upstream's larger numbers are clamped
/// to this, so that sums of a few of them cannot overflow and one bad answer cannot book an
/// absurd spend.
pub const MAX_PLAUSIBLE_TOKENS: u64 = 100_000_000;

/// Token usage as a provider reports it, made safe to add up: each number is at most
/// [`MAX_PLAUSIBLE_TOKENS`] and `cached_tokens` is at most `prompt_tokens`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WireUsage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cached_tokens: u64,
    /// The provider's numbers could not be taken as they were: one was negative, fractional or
    /// above [`MAX_PLAUSIBLE_TOKENS`], more tokens were cached than prompted, or the total was
    /// below one of its parts. The numbers above are then clamped into range; a caller may
    /// prefer its own count.
    pub implausible: bool,
}

impl WireUsage {
    /// Usage from counts, clamped and flagged as an upstream's would be.
    pub fn new(prompt_tokens: u64, completion_tokens: u64, cached_tokens: u64) -> WireUsage {
        WireUsage::checked(Count::of(prompt_tokens), Count::of(completion_tokens), Count::of(cached_tokens), None)
    }

    fn checked(prompt: Count, completion: Count, cached: Count, total: Option<Count>) -> WireUsage {
        let mut implausible = prompt.odd || completion.odd || cached.odd;
        if cached.value > prompt.value {
            implausible = true;
        }
        if let Some(total) = total {
            implausible |= total.odd || total.value < prompt.value.max(completion.value);
        }
        WireUsage {
            prompt_tokens: prompt.value,
            completion_tokens: completion.value,
            cached_tokens: cached.value.min(prompt.value),
            implausible,
        }
    }
}

/// What matters in one upstream stream chunk.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChunkView {
    pub content: String,
    pub tool_calls: bool,
    pub finish_reason: Option<String>,
    pub usage: Option<WireUsage>,
}

/// What matters in a whole (non-streaming) upstream response.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompletionView {
    pub content: String,
    pub finish_reason: Option<String>,
    pub usage: Option<WireUsage>,
}

/// How an upstream 4xx body reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpstreamRejection {
    ContextLength,
    ContentFilter,
    Other,
}

fn parse_object(bytes: Bytes) -> Result<RawObject, RequestError> {
    RawObject::parse(bytes).map_err(|e| bad(e.to_string(), None))
}

fn model_of(object: &RawObject) -> Result<String, RequestError> {
    match object.get("model").map(serde_json::from_str::<Value>) {
        Some(Ok(Value::String(m))) if !m.is_empty() => Ok(m),
        Some(_) => Err(bad("'model' must be a non-empty string", Some("model"))),
        None => Err(bad("you must provide a model parameter", Some("model"))),
    }
}

/// One message, borrowed from the body; only what routing reads.
#[derive(Deserialize)]
struct MessageView<'a> {
    #[serde(borrow, default)]
    role: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    content: Option<&'a RawValue>,
    #[serde(borrow, default)]
    tool_calls: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct PartView<'a> {
    #[serde(borrow, default, rename = "type")]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    text: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct StreamOptionsView {
    #[serde(default)]
    include_usage: Option<bool>,
}

/// Tokens in a JSON string's raw text (escapes counted as written: close enough to estimate).
fn raw_tokens(raw: &RawValue) -> u32 {
    estimate_tokens(raw.get().trim_matches('"'))
}

fn json_string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_owned())
}

// === impl ChatRequest ===

impl ChatRequest {
    pub fn parse(bytes: Bytes) -> Result<ChatRequest, RequestError> {
        let object = parse_object(bytes)?;
        let model = model_of(&object)?;
        let field = |key: &str| object.get(key).filter(|v| *v != "null");
        let stream = match field("stream") {
            None => false,
            Some("true") => true,
            Some("false") => false,
            Some(_) => return Err(bad("'stream' must be a boolean", Some("stream"))),
        };
        let include_usage = match field("stream_options").map(serde_json::from_str::<StreamOptionsView>) {
            None => false,
            Some(Ok(o)) => o.include_usage.unwrap_or(false),
            Some(Err(_)) => {
                return Err(bad(
                    "'stream_options' must be an object with a boolean include_usage",
                    Some("stream_options"),
                ));
            }
        };
        let max_tokens = match field("max_completion_tokens").or_else(|| field("max_tokens")) {
            None => None,
            Some(v) => match v.parse::<u32>() {
                Ok(n) if n > 0 => Some(n),
                _ => return Err(bad("'max_tokens' must be a positive integer", Some("max_tokens"))),
            },
        };
        if let Some(n) = field("n")
            && n != "1"
        {
            return Err(bad("only n = 1 is supported", Some("n")));
        }
        let Some(messages) = field("messages") else {
            return Err(bad("'messages' must be an array of messages", Some("messages")));
        };
        let messages: Vec<MessageView<'_>> = serde_json::from_str(messages)
            .map_err(|_| bad("'messages' must be an array of message objects", Some("messages")))?;
        if messages.is_empty() {
            return Err(bad("'messages' must contain at least one message", Some("messages")));
        }
        let mut input_tokens: u32 = 0;
        let mut vision = false;
        for (i, m) in messages.iter().enumerate() {
            match m.role.as_deref() {
                Some("system" | "developer" | "user" | "assistant" | "tool" | "function") => (),
                Some(other) => {
                    return Err(bad(format!("messages[{i}].role: unknown role '{other}'"), Some("messages")));
                }
                None => return Err(bad(format!("messages[{i}].role is required"), Some("messages"))),
            }
            input_tokens = input_tokens.saturating_add(MESSAGE_OVERHEAD_TOKENS);
            let content = m.content.map(|c| c.get()).unwrap_or("null");
            match content.as_bytes().first() {
                Some(b'n') => (),
                Some(b'"') => input_tokens = input_tokens.saturating_add(estimate_tokens(content) - 1),
                Some(b'[') => {
                    let parts: Vec<PartView<'_>> = serde_json::from_str(content).map_err(|_| {
                        bad(format!("messages[{i}].content must be a string or an array of parts"), Some("messages"))
                    })?;
                    for part in parts {
                        let cost = match part.kind.as_deref() {
                            Some("text") => part.text.map_or(0, raw_tokens),
                            Some("image_url" | "input_image") => {
                                vision = true;
                                // A typical image tile costs a few hundred tokens.
                                765
                            }
                            _ => 16,
                        };
                        input_tokens = input_tokens.saturating_add(cost);
                    }
                }
                _ => {
                    return Err(bad(format!("messages[{i}].content must be a string or an array"), Some("messages")));
                }
            }
            if let Some(calls) = m.tool_calls {
                input_tokens = input_tokens.saturating_add(estimate_tokens(calls.get()));
            }
        }
        let tools = match field("tools") {
            None => false,
            Some(t) => {
                input_tokens = input_tokens.saturating_add(estimate_tokens(t));
                let list: Vec<&RawValue> =
                    serde_json::from_str(t).map_err(|_| bad("'tools' must be an array", Some("tools")))?;
                !list.is_empty()
            }
        };
        Ok(ChatRequest { object, model, stream, include_usage, max_tokens, input_tokens, tools, vision })
    }

    /// The body for an upstream attempt: the caller's bytes with the provider's model id and,
    /// on streams, usage requested.
    pub fn upstream_body(&self, provider_model: &str) -> Vec<u8> {
        let mut edits = vec![Edit::Set("model", json_string(provider_model))];
        if self.stream && !self.include_usage {
            edits.push(Edit::Set("stream_options", self.stream_options_with_usage()));
        }
        self.object.write(&edits)
    }

    fn stream_options_with_usage(&self) -> String {
        let mut options = match self.object.get("stream_options").map(serde_json::from_str::<Value>) {
            Some(Ok(Value::Object(o))) => o,
            _ => serde_json::Map::new(),
        };
        options.insert("include_usage".into(), Value::Bool(true));
        Value::Object(options).to_string()
    }

    /// A continuation: the delivered text as an assistant prefill to be continued, in the
    /// convention vLLM and compatible servers accept (`continue_final_message`).
    pub fn continuation_body(&self, provider_model: &str, delivered: &str, delivered_tokens: u32) -> Vec<u8> {
        let mut edits = vec![
            Edit::Set("model", json_string(provider_model)),
            Edit::Set("stream", "true".into()),
            Edit::Set("stream_options", self.stream_options_with_usage()),
            Edit::Set("continue_final_message", "true".into()),
            Edit::Set("add_generation_prompt", "false".into()),
        ];
        if let Some(span) = self.object.span("messages") {
            let prefill = json!({ "role": "assistant", "content": delivered });
            edits.push(Edit::Insert(span.end - 1, format!(",{prefill}")));
        }
        if let Some(max) = self.max_tokens {
            let rest = max.saturating_sub(delivered_tokens).max(1);
            let key =
                if self.object.get("max_completion_tokens").is_some() { "max_completion_tokens" } else { "max_tokens" };
            edits.push(Edit::Set(key, rest.to_string()));
        }
        self.object.write(&edits)
    }
}

// === impl EmbeddingsRequest ===

impl EmbeddingsRequest {
    pub fn parse(bytes: Bytes) -> Result<EmbeddingsRequest, RequestError> {
        let object = parse_object(bytes)?;
        let model = model_of(&object)?;
        let input: Option<Value> = object.get("input").and_then(|i| serde_json::from_str(i).ok());
        let (input_tokens, longest_input_tokens) = match input {
            Some(Value::String(s)) => (estimate_tokens(&s), estimate_tokens(&s)),
            // One array of token ids is one input.
            Some(Value::Array(items)) if !items.is_empty() && items.iter().all(Value::is_number) => {
                let n = u32::try_from(items.len()).unwrap_or(u32::MAX);
                (n, n)
            }
            Some(Value::Array(items)) if !items.is_empty() => {
                let (mut n, mut longest): (u32, u32) = (0, 0);
                for item in items {
                    let tokens = match item {
                        Value::String(s) => estimate_tokens(&s),
                        Value::Number(_) => 1,
                        Value::Array(tokens) => u32::try_from(tokens.len()).unwrap_or(u32::MAX),
                        _ => return Err(bad("'input' items must be strings or token arrays", Some("input"))),
                    };
                    (n, longest) = (n.saturating_add(tokens), longest.max(tokens));
                }
                (n, longest)
            }
            _ => return Err(bad("'input' must be a string or a non-empty array", Some("input"))),
        };
        Ok(EmbeddingsRequest { object, model, input_tokens, longest_input_tokens })
    }

    pub fn upstream_body(&self, provider_model: &str) -> Vec<u8> {
        self.object.write(&[Edit::Set("model", json_string(provider_model))])
    }
}

// === reading upstream responses ===

#[derive(Deserialize)]
struct RawUsage {
    #[serde(default)]
    prompt_tokens: Count,
    #[serde(default)]
    completion_tokens: Count,
    #[serde(default)]
    total_tokens: Option<Count>,
    #[serde(default)]
    prompt_tokens_details: Option<RawPromptDetails>,
}

#[derive(Deserialize)]
struct RawPromptDetails {
    #[serde(default)]
    cached_tokens: Count,
}

impl From<RawUsage> for WireUsage {
    fn from(u: RawUsage) -> WireUsage {
        let cached = u.prompt_tokens_details.map_or(Count::default(), |d| d.cached_tokens);
        WireUsage::checked(u.prompt_tokens, u.completion_tokens, cached, u.total_tokens)
    }
}

/// A token count as an upstream wrote it, read without trusting it: any JSON number (or
/// null, read as zero) becomes a count in `0..=MAX_PLAUSIBLE_TOKENS`, and `odd` says whether
/// it had to be changed to fit. Other JSON types are refused, as before.
#[derive(Clone, Copy, Debug, Default)]
struct Count {
    value: u64,
    odd: bool,
}

impl Count {
    fn of(n: u64) -> Count {
        Count { value: n.min(MAX_PLAUSIBLE_TOKENS), odd: n > MAX_PLAUSIBLE_TOKENS }
    }

    fn of_float(n: f64) -> Count {
        if n.is_nan() || n < 0.0 {
            return Count { value: 0, odd: true };
        }
        // Clamped, then rounded down: the `as` conversion is exact and cannot overflow.
        let clamped = n.min(MAX_PLAUSIBLE_TOKENS as f64);
        Count { value: clamped.floor() as u64, odd: clamped != n || n.fract() != 0.0 }
    }
}

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Count, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Count;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a token count")
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Count, E> {
                Ok(Count::of(n))
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Count, E> {
                Ok(u64::try_from(n).map_or(Count { value: 0, odd: true }, Count::of))
            }
            fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<Count, E> {
                Ok(Count::of_float(n))
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Count, E> {
                Ok(Count::default())
            }
        }
        deserializer.deserialize_any(V)
    }
}

#[derive(Deserialize)]
struct RawChunk {
    #[serde(default)]
    choices: Vec<RawChoice>,
    #[serde(default)]
    usage: Option<RawUsage>,
}

#[derive(Deserialize)]
struct RawChoice {
    #[serde(default)]
    delta: Option<RawMessage>,
    #[serde(default)]
    message: Option<RawMessage>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct RawMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    tool_calls: Option<Value>,
}

impl ChunkView {
    /// Reads a `chat.completion.chunk` event's data; `None` when it is not one.
    pub fn parse(data: &str) -> Option<ChunkView> {
        let raw: RawChunk = serde_json::from_str(data).ok()?;
        let mut view = ChunkView { usage: raw.usage.map(WireUsage::from), ..ChunkView::default() };
        if let Some(choice) = raw.choices.into_iter().next() {
            if let Some(delta) = choice.delta {
                view.content = delta.content.unwrap_or_default();
                view.tool_calls = delta.tool_calls.is_some_and(|t| !t.is_null());
            }
            view.finish_reason = choice.finish_reason;
        }
        Some(view)
    }

    /// Whether this chunk carries something the caller will see as output.
    pub fn has_output(&self) -> bool {
        !self.content.is_empty() || self.tool_calls
    }
}

impl CompletionView {
    /// Reads a `chat.completion` body; an error says what is wrong with it.
    pub fn parse(body: &[u8]) -> Result<CompletionView, String> {
        let raw: RawChunk = serde_json::from_slice(body).map_err(|e| format!("not a chat completion: {e}"))?;
        let Some(choice) = raw.choices.into_iter().next() else {
            return Err("a chat completion without choices".to_owned());
        };
        let message = choice.message.ok_or("a chat completion choice without a message")?;
        Ok(CompletionView {
            content: message.content.unwrap_or_default(),
            finish_reason: choice.finish_reason,
            usage: raw.usage.map(WireUsage::from),
        })
    }
}

/// Reads an embeddings response's usage; an error says what is wrong with it.
pub fn parse_embeddings_usage(body: &[u8]) -> Result<Option<WireUsage>, String> {
    #[derive(Deserialize)]
    struct RawEmbeddings {
        data: Vec<Value>,
        #[serde(default)]
        usage: Option<RawUsage>,
    }
    let raw: RawEmbeddings = serde_json::from_slice(body).map_err(|e| format!("not an embeddings response: {e}"))?;
    if raw.data.is_empty() {
        return Err("an embeddings response without data".to_owned());
    }
    Ok(raw.usage.map(WireUsage::from))
}

/// Reads an upstream error body: context-length and content-filter rejections are told apart.
/// Returns the class and the provider's message.
pub fn classify_rejection(body: &[u8]) -> (UpstreamRejection, String) {
    let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let error = value.get("error").unwrap_or(&value);
    let message = error
        .get("message")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned());
    let code = error.get("code").and_then(Value::as_str).unwrap_or("");
    let inner = error.pointer("/innererror/code").and_then(Value::as_str).unwrap_or("");
    let lower = message.to_ascii_lowercase();
    let class = if code == "context_length_exceeded"
        || lower.contains("maximum context length")
        || lower.contains("context window")
    {
        UpstreamRejection::ContextLength
    } else if matches!(code, "content_filter" | "content_policy_violation") || inner == "ResponsibleAIPolicyViolation" {
        UpstreamRejection::ContentFilter
    } else {
        UpstreamRejection::Other
    };
    (class, message)
}

#[cfg(test)]
mod tests;
