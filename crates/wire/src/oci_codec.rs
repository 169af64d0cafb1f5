//! OCI Generative AI's native inference API (`POST /20231130/actions/chat`) ⇄ the canonical
//! model: requests in both of its formats, whole answers, stream events and error bodies, both
//! ways. What `protocol: oci` deployments speak.
//!
//! - [`chat_details`] wraps a `chatRequest` in OCI's `ChatDetails`: the compartment and the
//!   serving mode, `ON_DEMAND` with the `modelId` or, for a model id that is a dedicated AI
//!   cluster's endpoint (`ocid1.generativeaiendpoint…`), `DEDICATED` with the `endpointId`.
//! - [`encode_request`] writes the `chatRequest` in a [`Format`]: `GENERIC` (`messages` with
//!   roles `SYSTEM`, `USER`, `ASSISTANT`, `TOOL` and typed `TEXT`/`IMAGE` content, `toolCalls`
//!   and `tools` as `FUNCTION`s, `toolChoice`, `responseFormat`) or `COHERE` (the last user
//!   turn as `message` or `toolResults`, the rest as `chatHistory` with roles `USER`,
//!   `CHATBOT`, `SYSTEM`, `TOOL`, the system prompt as `preambleOverride`, tools with
//!   `parameterDefinitions`). Which format a model speaks is config's (`api_format`, or
//!   `switchyard_core`'s `OciFormat::of_model`). OpenAI's `frequency_penalty`,
//!   `presence_penalty` and `seed` (and `logit_bias`, GENERIC only) have their places; what OCI cannot express (a prefill, the
//!   user id, strict tools, images or tool choice for Cohere, ...) is
//!   [`Unsupported`](crate::canonical::Unsupported). [`decode_request`] reads such a body,
//!   for the emulator.
//! - [`decode_response`] / [`encode_response`]: a `ChatResult` (`modelId`, `chatResponse`),
//!   GENERIC `choices[0].message` or COHERE `text` and `toolCalls`, the `finishReason`, and
//!   `usage` (`promptTokens`, `completionTokens`, `totalTokens`). Cohere's tool calls carry no
//!   id: they get `call_<message>_<n>`, and a tool result is sent back with the call it answers.
//! - [`StreamDecoder`] / [`StreamEncoder`]: `isStream: true` answers SSE events whose data is
//!   JSON: GENERIC `{"index", "message": {"content": [{"type": "TEXT", "text"}], "toolCalls"}}`
//!   deltas, then an event with `finishReason`, then (asked for with `streamOptions`) one with
//!   `usage`; COHERE `{"apiFormat": "COHERE", "text"}` deltas, `toolCalls` whole, then the
//!   event with `finishReason` (its `text` the whole answer, not a delta).
//! - [`decode_error`] / [`encode_error`]: OCI's `{"code", "message"}` (`TooManyRequests`,
//!   `NotAuthenticated`, `NotAuthorizedOrNotFound`, `InvalidParameter`, ...).

mod cohere;
mod error;
mod generic;
mod response;
mod stream;
#[cfg(test)]
mod tests;

pub use error::{decode_error, encode_error};
pub use response::{decode_response, encode_response};
pub use stream::{StreamDecoder, StreamEncoder, decode_stream};

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::canonical::{FinishReason, Protocol, Request, Unsupported, Usage};
use crate::chat::RequestError;
use crate::read::{as_object, bad, object, str_field, take};

pub(crate) const TARGET: Protocol = Protocol::Oci;

/// The prefix of a dedicated AI cluster's endpoint OCID: such a model id is served `DEDICATED`.
pub const DEDICATED_ENDPOINT_PREFIX: &str = "ocid1.generativeaiendpoint";

/// The `apiFormat` of a `chatRequest`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `GENERIC`: Meta, xAI, Google, OpenAI and Mistral models.
    Generic,
    /// `COHERE`: Cohere's Command models.
    Cohere,
}

impl Format {
    /// The `apiFormat` value.
    pub fn name(self) -> &'static str {
        match self {
            Format::Generic => "GENERIC",
            Format::Cohere => "COHERE",
        }
    }
}

/// Writes a canonical request as a `chatRequest` in `format`. Streams always ask for usage:
/// the gateway bills on it.
pub fn encode_request(request: &Request, format: Format) -> Result<Value, Unsupported> {
    match format {
        Format::Generic => generic::encode(request),
        Format::Cohere => cohere::encode(request),
    }
}

/// `ChatDetails`: the compartment, the serving mode for `model` (a dedicated endpoint's OCID
/// or a model id) and the `chatRequest`.
pub fn chat_details(compartment: &str, model: &str, chat_request: Value) -> Value {
    json!({"compartmentId": compartment, "servingMode": serving_mode(model), "chatRequest": chat_request})
}

/// The `servingMode` of `model`: `DEDICATED` with the `endpointId` for a dedicated endpoint's
/// OCID, else `ON_DEMAND` with the `modelId` (chat and `embedText` alike).
pub fn serving_mode(model: &str) -> Value {
    if model.starts_with(DEDICATED_ENDPOINT_PREFIX) {
        json!({"servingType": "DEDICATED", "endpointId": model})
    } else {
        json!({"servingType": "ON_DEMAND", "modelId": model})
    }
}

/// A `ChatDetails` body read: where it is to run and what it asks.
#[derive(Clone, Debug, PartialEq)]
pub struct ChatDetails {
    pub compartment: String,
    /// The `modelId` (ON_DEMAND) or the `endpointId` (DEDICATED).
    pub model: String,
    pub format: Format,
    /// The request; its `model` is the one above.
    pub request: Request,
}

/// Reads a `ChatDetails` body (for the emulator). Fields of the `chatRequest` the model has no
/// place for are kept in [`Request::extra`].
pub fn decode_request(body: &[u8]) -> Result<ChatDetails, RequestError> {
    let mut body = object(body)?;
    let compartment = str_field(&body, "compartmentId", "compartmentId", "compartmentId")?;
    let serving = take(&mut body, "servingMode").ok_or_else(|| bad("servingMode", "servingMode", "is required"))?;
    let s = as_object(&serving, "servingMode", "servingMode")?;
    let model = match s.get("servingType").and_then(Value::as_str) {
        Some("ON_DEMAND") => str_field(s, "modelId", "servingMode", "servingMode")?,
        Some("DEDICATED") => str_field(s, "endpointId", "servingMode", "servingMode")?,
        _ => return Err(bad("servingMode", "servingMode.servingType", "must be ON_DEMAND or DEDICATED")),
    };
    let chat = take(&mut body, "chatRequest").ok_or_else(|| bad("chatRequest", "chatRequest", "is required"))?;
    let mut chat = as_object(&chat, "chatRequest", "chatRequest")?.clone();
    let (format, mut request) = match take(&mut chat, "apiFormat").as_ref().and_then(Value::as_str) {
        Some("GENERIC") => (Format::Generic, generic::decode(chat)?),
        Some("COHERE") => (Format::Cohere, cohere::decode(chat)?),
        _ => return Err(bad("chatRequest", "chatRequest.apiFormat", "must be GENERIC or COHERE")),
    };
    request.model.clone_from(&model);
    Ok(ChatDetails { compartment, model, format, request })
}

/// A parameter OCI cannot express.
fn unsupported(param: impl Into<String>, reason: &'static str) -> Unsupported {
    Unsupported { param: param.into(), target: TARGET, reason }
}

/// The fields both formats share, from a canonical request: sampling, the limit, penalties
/// and seed (from OpenAI's extras), streaming, each under `format`'s names. The first extra
/// that neither format has is refused.
fn write_common(request: &Request, format: Format, out: &mut Map<String, Value>) -> Result<(), Unsupported> {
    if request.user_id.is_some() {
        return Err(unsupported("user", "OCI Generative AI takes no end-user id"));
    }
    if let Some(n) = request.max_tokens {
        out.insert("maxTokens".into(), json!(n));
    }
    if let Some(t) = request.sampling.temperature {
        out.insert("temperature".into(), json!(t));
    }
    if let Some(p) = request.sampling.top_p {
        out.insert("topP".into(), json!(p));
    }
    if let Some(k) = request.sampling.top_k {
        out.insert("topK".into(), json!(k));
    }
    if !request.stop.is_empty() {
        let key = if format == Format::Cohere { "stopSequences" } else { "stop" };
        out.insert(key.into(), json!(request.stop));
    }
    if request.stream {
        out.insert("isStream".into(), json!(true));
        out.insert("streamOptions".into(), json!({"isIncludeUsage": true}));
    }
    match &request.extra {
        None => {}
        Some(extra) if extra.protocol == TARGET => {
            for (key, value) in &extra.fields {
                out.entry(key.clone()).or_insert_with(|| value.clone());
            }
        }
        Some(extra) if extra.protocol == Protocol::OpenAiChat => {
            for (key, value) in &extra.fields {
                let name = match key.as_str() {
                    "frequency_penalty" => "frequencyPenalty",
                    "presence_penalty" => "presencePenalty",
                    "seed" => "seed",
                    "logit_bias" if format == Format::Generic => "logitBias",
                    _ => {
                        return Err(unsupported(
                            key.clone(),
                            "a parameter of the caller's protocol that OCI Generative AI has no equivalent for",
                        ));
                    }
                };
                out.insert(name.into(), value.clone());
            }
        }
        Some(_) => {
            request.check_extra(TARGET)?;
        }
    }
    Ok(())
}

/// The fields both formats share, read into a request (the reverse of [`write_common`]).
/// Penalties and the seed are kept in its extras under OCI's names.
fn read_common(chat: &mut Map<String, Value>, request: &mut Request, stop_key: &str) -> Result<(), RequestError> {
    const AT: &str = "chatRequest";
    let number =
        |v: &Value, key: &str| v.as_f64().ok_or_else(|| bad(AT, format_args!("{AT}.{key}"), "must be a number"));
    if let Some(v) = take(chat, "maxTokens") {
        let n = v.as_u64().filter(|n| *n > 0).and_then(|n| u32::try_from(n).ok());
        request.max_tokens = Some(n.ok_or_else(|| bad(AT, "chatRequest.maxTokens", "must be a positive integer"))?);
    }
    if let Some(v) = take(chat, "temperature") {
        request.sampling.temperature = Some(number(&v, "temperature")?);
    }
    if let Some(v) = take(chat, "topP") {
        request.sampling.top_p = Some(number(&v, "topP")?);
    }
    if let Some(v) = take(chat, "topK") {
        // OCI's -1 (and 0) mean "all tokens": no top-k.
        let k = v.as_i64().ok_or_else(|| bad(AT, "chatRequest.topK", "must be an integer"))?;
        request.sampling.top_k = u32::try_from(k).ok().filter(|k| *k > 0);
    }
    if let Some(v) = take(chat, stop_key) {
        request.stop = crate::read::strings(&v, "chatRequest")?;
    }
    if let Some(v) = take(chat, "isStream") {
        request.stream = v.as_bool().ok_or_else(|| bad(AT, "chatRequest.isStream", "must be a boolean"))?;
    }
    if let Some(v) = take(chat, "streamOptions") {
        let o = as_object(&v, AT, "chatRequest.streamOptions")?;
        request.include_usage = o.get("isIncludeUsage").and_then(Value::as_bool).unwrap_or(false);
    }
    chat.retain(|_, value| !crate::read::is_unset(value));
    if !chat.is_empty() {
        request.extra = Some(crate::canonical::Extra { protocol: TARGET, fields: std::mem::take(chat) });
    }
    Ok(())
}

/// A `finishReason` as each format writes it. GENERIC's are OpenAI's words.
fn finish_reason(finish: &FinishReason, format: Format) -> &'static str {
    match (format, finish) {
        (Format::Generic, FinishReason::Stop | FinishReason::StopSequence(_)) => "stop",
        (Format::Generic, FinishReason::Length) => "length",
        (Format::Generic, FinishReason::ToolUse) => "tool_calls",
        (Format::Generic, FinishReason::ContentFilter) => "content_filter",
        (Format::Generic, FinishReason::Other) => "error",
        (Format::Cohere, FinishReason::Stop | FinishReason::StopSequence(_) | FinishReason::ToolUse) => "COMPLETE",
        (Format::Cohere, FinishReason::Length) => "MAX_TOKENS",
        (Format::Cohere, FinishReason::ContentFilter) => "ERROR_TOXIC",
        (Format::Cohere, FinishReason::Other) => "ERROR",
    }
}

/// A `finishReason` read, in either format's words; `tools` says whether the answer called a
/// tool (Cohere's `COMPLETE` then means it waits for the results).
fn read_finish(reason: &str, tools: bool) -> FinishReason {
    match reason.to_ascii_lowercase().as_str() {
        "stop" | "complete" | "end_turn" if tools => FinishReason::ToolUse,
        "stop" | "complete" | "end_turn" => FinishReason::Stop,
        "length" | "max_tokens" | "error_limit" => FinishReason::Length,
        "tool_calls" | "tool_call" | "function_call" => FinishReason::ToolUse,
        "content_filter" | "error_toxic" => FinishReason::ContentFilter,
        _ => FinishReason::Other,
    }
}

/// OCI's `usage`: `promptTokens` includes the cached `promptTokensDetails.cachedTokens`;
/// `completionTokens` includes `completionTokensDetails.reasoningTokens`.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawUsage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
    #[serde(default)]
    prompt_tokens_details: Option<RawDetails>,
    #[serde(default)]
    completion_tokens_details: Option<RawDetails>,
}

#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
    #[serde(default)]
    reasoning_tokens: Option<u64>,
}

impl RawUsage {
    fn canonical(&self) -> Usage {
        let input = self.prompt_tokens.unwrap_or(0);
        let output = self.completion_tokens.unwrap_or(0);
        let cached = self.prompt_tokens_details.and_then(|d| d.cached_tokens).unwrap_or(0);
        let reasoning = self.completion_tokens_details.and_then(|d| d.reasoning_tokens).unwrap_or(0);
        Usage {
            input_tokens: input,
            output_tokens: output,
            cache_read_tokens: cached.min(input),
            cache_write_tokens: 0,
            reasoning_tokens: reasoning.min(output),
        }
    }
}

/// `usage` as OCI writes it; the details when there are any.
fn write_usage(usage: &Usage) -> Value {
    let mut out = Map::new();
    out.insert("promptTokens".into(), json!(usage.input_tokens));
    out.insert("completionTokens".into(), json!(usage.output_tokens));
    out.insert("totalTokens".into(), json!(usage.input_tokens.saturating_add(usage.output_tokens)));
    if usage.cache_read_tokens > 0 {
        out.insert("promptTokensDetails".into(), json!({"cachedTokens": usage.cache_read_tokens}));
    }
    if usage.reasoning_tokens > 0 {
        out.insert("completionTokensDetails".into(), json!({"reasoningTokens": usage.reasoning_tokens}));
    }
    Value::Object(out)
}

/// The id a Cohere tool call (which has none on the wire) gets: its place in the answer or
/// the conversation.
fn call_id(message: usize, call: usize) -> String {
    format!("call_{message}_{call}")
}
