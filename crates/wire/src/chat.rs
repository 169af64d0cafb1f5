//! OpenAI Chat Completions and Embeddings: parsing inbound requests into what routing needs,
//! building upstream bodies, and reading upstream responses and stream chunks.
//!
//! The caller's body is kept as a JSON object and passed through: only `model`, `stream`,
//! `stream_options` and (for continuations) `messages` are changed.

use serde::Deserialize;
use serde_json::{Map, Value, json};

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

/// An inbound chat request, parsed for routing.
#[derive(Clone, Debug)]
pub struct ChatRequest {
    pub body: Map<String, Value>,
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
    pub body: Map<String, Value>,
    pub model: String,
    pub input_tokens: u32,
}

/// Token usage as a provider reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WireUsage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cached_tokens: u64,
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

fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, RequestError> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(bad("the request body must be a JSON object", None)),
        Err(e) => Err(bad(format!("the request body is not valid JSON: {e}"), None)),
    }
}

fn model_of(body: &Map<String, Value>) -> Result<String, RequestError> {
    match body.get("model") {
        Some(Value::String(m)) if !m.is_empty() => Ok(m.clone()),
        Some(_) => Err(bad("'model' must be a non-empty string", Some("model"))),
        None => Err(bad("you must provide a model parameter", Some("model"))),
    }
}

// === impl ChatRequest ===

impl ChatRequest {
    pub fn parse(bytes: &[u8]) -> Result<ChatRequest, RequestError> {
        let body = parse_object(bytes)?;
        let model = model_of(&body)?;
        let stream = match body.get("stream") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(bad("'stream' must be a boolean", Some("stream"))),
        };
        let include_usage = match body.get("stream_options") {
            None | Some(Value::Null) => false,
            Some(Value::Object(o)) => match o.get("include_usage") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => *b,
                Some(_) => {
                    return Err(bad("'stream_options.include_usage' must be a boolean", Some("stream_options")));
                }
            },
            Some(_) => {
                return Err(bad("'stream_options' must be an object", Some("stream_options")));
            }
        };
        let max_tokens = match body.get("max_completion_tokens").or_else(|| body.get("max_tokens")) {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_u64().and_then(|n| u32::try_from(n).ok()) {
                Some(n) if n > 0 => Some(n),
                _ => {
                    return Err(bad("'max_tokens' must be a positive integer", Some("max_tokens")));
                }
            },
        };
        if let Some(n) = body.get("n")
            && n.as_u64() != Some(1)
            && !n.is_null()
        {
            return Err(bad("only n = 1 is supported", Some("n")));
        }
        let Some(Value::Array(messages)) = body.get("messages") else {
            return Err(bad("'messages' must be an array of messages", Some("messages")));
        };
        if messages.is_empty() {
            return Err(bad("'messages' must contain at least one message", Some("messages")));
        }
        let mut input_tokens: u32 = 0;
        let mut vision = false;
        for (i, m) in messages.iter().enumerate() {
            let Value::Object(m) = m else {
                return Err(bad(format!("messages[{i}] must be an object"), Some("messages")));
            };
            match m.get("role").and_then(Value::as_str) {
                Some("system" | "developer" | "user" | "assistant" | "tool" | "function") => (),
                Some(other) => {
                    return Err(bad(format!("messages[{i}].role: unknown role '{other}'"), Some("messages")));
                }
                None => {
                    return Err(bad(format!("messages[{i}].role is required"), Some("messages")));
                }
            }
            input_tokens = input_tokens.saturating_add(MESSAGE_OVERHEAD_TOKENS);
            match m.get("content") {
                None | Some(Value::Null) => (),
                Some(Value::String(s)) => input_tokens = input_tokens.saturating_add(estimate_tokens(s)),
                Some(Value::Array(parts)) => {
                    for part in parts {
                        match part.get("type").and_then(Value::as_str) {
                            Some("text") => {
                                let text = part.get("text").and_then(Value::as_str).unwrap_or("");
                                input_tokens = input_tokens.saturating_add(estimate_tokens(text));
                            }
                            Some("image_url" | "input_image") => {
                                vision = true;
                                // A typical image tile costs a few hundred tokens.
                                input_tokens = input_tokens.saturating_add(765);
                            }
                            _ => input_tokens = input_tokens.saturating_add(estimate_tokens(&part.to_string())),
                        }
                    }
                }
                Some(_) => {
                    return Err(bad(format!("messages[{i}].content must be a string or an array"), Some("messages")));
                }
            }
            if let Some(calls) = m.get("tool_calls") {
                input_tokens = input_tokens.saturating_add(estimate_tokens(&calls.to_string()));
            }
        }
        let tools = matches!(body.get("tools"), Some(Value::Array(t)) if !t.is_empty());
        if let Some(t) = body.get("tools") {
            input_tokens = input_tokens.saturating_add(estimate_tokens(&t.to_string()));
        }
        Ok(ChatRequest { body, model, stream, include_usage, max_tokens, input_tokens, tools, vision })
    }

    /// The body for an upstream attempt: the caller's, with the provider's model id and, on
    /// streams, usage requested.
    pub fn upstream_body(&self, provider_model: &str) -> Vec<u8> {
        let mut body = self.body.clone();
        body.insert("model".into(), Value::String(provider_model.to_owned()));
        if self.stream {
            let options = body.entry("stream_options").or_insert_with(|| json!({}));
            if let Value::Object(o) = options {
                o.insert("include_usage".into(), Value::Bool(true));
            }
        }
        serde_json::to_vec(&body).unwrap_or_default()
    }

    /// A continuation: the delivered text as an assistant prefill to be continued, in the
    /// convention vLLM and compatible servers accept (`continue_final_message`).
    pub fn continuation_body(&self, provider_model: &str, delivered: &str, delivered_tokens: u32) -> Vec<u8> {
        let mut body = self.body.clone();
        body.insert("model".into(), Value::String(provider_model.to_owned()));
        body.insert("stream".into(), Value::Bool(true));
        body.insert("stream_options".into(), json!({ "include_usage": true }));
        if let Some(Value::Array(messages)) = body.get_mut("messages") {
            messages.push(json!({ "role": "assistant", "content": delivered }));
        }
        body.insert("continue_final_message".into(), Value::Bool(true));
        body.insert("add_generation_prompt".into(), Value::Bool(false));
        if let Some(max) = self.max_tokens {
            let rest = max.saturating_sub(delivered_tokens).max(1);
            let key = if body.contains_key("max_completion_tokens") { "max_completion_tokens" } else { "max_tokens" };
            body.insert(key.into(), json!(rest));
        }
        serde_json::to_vec(&body).unwrap_or_default()
    }
}

// === impl EmbeddingsRequest ===

impl EmbeddingsRequest {
    pub fn parse(bytes: &[u8]) -> Result<EmbeddingsRequest, RequestError> {
        let body = parse_object(bytes)?;
        let model = model_of(&body)?;
        let input_tokens = match body.get("input") {
            Some(Value::String(s)) => estimate_tokens(s),
            Some(Value::Array(items)) if !items.is_empty() => {
                let mut n: u32 = 0;
                for item in items {
                    n = n.saturating_add(match item {
                        Value::String(s) => estimate_tokens(s),
                        Value::Number(_) => 1,
                        Value::Array(tokens) => u32::try_from(tokens.len()).unwrap_or(u32::MAX),
                        _ => {
                            return Err(bad("'input' items must be strings or token arrays", Some("input")));
                        }
                    });
                }
                n
            }
            _ => {
                return Err(bad("'input' must be a string or a non-empty array", Some("input")));
            }
        };
        Ok(EmbeddingsRequest { body, model, input_tokens })
    }

    pub fn upstream_body(&self, provider_model: &str) -> Vec<u8> {
        let mut body = self.body.clone();
        body.insert("model".into(), Value::String(provider_model.to_owned()));
        serde_json::to_vec(&body).unwrap_or_default()
    }
}

// === reading upstream responses ===

#[derive(Deserialize)]
struct RawUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    #[serde(default)]
    prompt_tokens_details: Option<RawPromptDetails>,
}

#[derive(Deserialize)]
struct RawPromptDetails {
    #[serde(default)]
    cached_tokens: u64,
}

impl From<RawUsage> for WireUsage {
    fn from(u: RawUsage) -> WireUsage {
        WireUsage {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
            cached_tokens: u.prompt_tokens_details.map_or(0, |d| d.cached_tokens),
        }
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
