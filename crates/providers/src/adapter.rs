//! The upstream protocols behind one closed enum: for each deployment, how an attempt's request
//! is built (URL, auth, body in the deployment's protocol) and how a refusal is classified.
//!
//! The gateway always hands over an OpenAI Chat Completions body (the byte pass-through's
//! shape). An OpenAI or Azure OpenAI deployment gets it as it is: the fast path (Azure differs
//! only in its URLs and auth). An Anthropic, Bedrock, Gemini or OCI native one
//! gets it decoded into the canonical model and encoded in its own protocol; what that protocol
//! cannot express is a 400 naming the parameter ([`AttemptError::ClientError`], returned to the
//! caller), never dropped.
//!
//! `auth.rs`: the endpoint as configured and its credentials, prepared and put on requests;
//! `classify.rs`: a refusal read into an `AttemptError`; `untranslatable.rs`: which protocols
//! cannot express a request, before planning.

mod auth;
mod classify;
mod untranslatable;

use std::time::SystemTime;

use bytes::Bytes;
use http::Uri;
use http::header::{CONTENT_TYPE, HeaderValue};
use http_body_util::Full;
use serde_json::Value;
use switchyard_core::AttemptError;
use switchyard_core::config::{BedrockEmbedder, OciFormat, Protocol};
use switchyard_wire::canonical::{Part, Request as Canonical, Role, Unsupported};
use switchyard_wire::embed_codec::{Api as EmbedApi, Embed};
use switchyard_wire::{anthropic_codec, bedrock_codec, gemini_codec, oci_codec, openai_codec};

use crate::google::TokenSource;
use crate::{ClientBuildError, Operation};
pub use auth::{Auth, AzureCredential, Endpoint, GeminiCredential, OciCredential, OciNative};
use auth::{PreparedAuth, oci_format};
pub(crate) use classify::in_stream;
pub use untranslatable::{cohere_untranslatable, untranslatable};

/// The field of a gateway body that carries an Anthropic caller's own request, when it asks for
/// what OpenAI's protocol cannot express (`top_k`, a prefill, `thinking`, ...). The rest of the
/// body is that request without those, for routing; Anthropic and Bedrock deployments are sent
/// the carried request whole, and OpenAI deployments are passed over.
pub const CARRIED_ANTHROPIC: &str = "x_switchyard_anthropic";

/// `max_tokens` sent to Anthropic when the caller gave none: Anthropic requires one.
pub const DEFAULT_ANTHROPIC_MAX_TOKENS: u32 = 4096;

/// A deployment's prepared target: its URLs and auth, built once.
#[derive(Debug)]
pub(crate) struct Target {
    pub(crate) protocol: Protocol,
    pub(crate) model: String,
    /// Chat (OpenAI, Anthropic) or Converse (Bedrock).
    chat: Uri,
    /// ConverseStream (Bedrock); the chat URL otherwise.
    stream: Uri,
    pub(crate) embeddings: Uri,
    /// The embeddings API behind `embeddings` when it is not OpenAI's (`embed.rs`).
    pub(crate) embed: Option<EmbedApi>,
    auth: PreparedAuth,
    /// An OCI native deployment's compartment and request format.
    oci: Option<(String, oci_codec::Format)>,
}

impl Target {
    pub(crate) fn new(e: &Endpoint) -> Result<Target, ClientBuildError> {
        let uri = |path: &str| {
            format!("{}{path}", e.base)
                .parse::<Uri>()
                .map_err(|err| ClientBuildError::Url(e.base.clone(), err.to_string()))
        };
        let auth = PreparedAuth::new(e)?;
        let oci = match &e.auth {
            Auth::OciNative(native) => Some((native.compartment.clone(), native.format)),
            _ if e.protocol == Protocol::Oci => {
                return Err(ClientBuildError::Client(
                    "an oci deployment needs its compartment (Auth::OciNative)".into(),
                ));
            }
            _ => None,
        };
        let (chat, stream, embeddings) = match e.protocol {
            Protocol::OpenAi => (uri("/chat/completions")?, uri("/chat/completions")?, uri("/embeddings")?),
            // Azure's v1 API: OpenAI's paths under `/openai/v1`, no api-version, the deployment
            // named by the body's `model`.
            Protocol::AzureOpenAi if e.base.ends_with("/openai/v1") => {
                (uri("/chat/completions")?, uri("/chat/completions")?, uri("/embeddings")?)
            }
            Protocol::AzureOpenAi => {
                let version = match &e.auth {
                    Auth::Azure { api_version, .. } => api_version.as_str(),
                    _ => switchyard_core::config::DEFAULT_AZURE_API_VERSION,
                };
                let query = format!("?api-version={}", path_segment(version));
                let deployment = format!("/openai/deployments/{}", path_segment(&e.model));
                let chat = uri(&format!("{deployment}/chat/completions{query}"))?;
                (chat.clone(), chat, uri(&format!("{deployment}/embeddings{query}"))?)
            }
            Protocol::Anthropic => (uri("/messages")?, uri("/messages")?, uri("/messages")?),
            Protocol::Bedrock => {
                let model = path_segment(&e.model);
                let converse = uri(&format!("/model/{model}/converse"))?;
                (converse, uri(&format!("/model/{model}/converse-stream"))?, uri(&format!("/model/{model}/invoke"))?)
            }
            // Gemini API (`…/v1beta`) and Vertex AI (`…/publishers/google`) alike.
            Protocol::Gemini => {
                let model = format!("/models/{}", path_segment(&e.model));
                let generate = uri(&format!("{model}:generateContent"))?;
                // Embeddings: Vertex AI's `predict`, the Gemini API's `batchEmbedContents`.
                let embed = match EmbedApi::google(&e.base, &e.model) {
                    EmbedApi::Vertex { .. } => uri(&format!("{model}:predict"))?,
                    _ => uri(&format!("{model}:batchEmbedContents"))?,
                };
                (generate, uri(&format!("{model}:streamGenerateContent?alt=sse"))?, embed)
            }
            // OCI's native API: one action for plain and streamed chat (`isStream` in the body).
            Protocol::Oci => {
                let chat = uri("/20231130/actions/chat")?;
                (chat.clone(), chat, uri("/20231130/actions/embedText")?)
            }
        };
        let embed = match e.protocol {
            Protocol::Bedrock => BedrockEmbedder::of_model(&e.model).map(|model| match model {
                BedrockEmbedder::TitanV1 => EmbedApi::TitanV1,
                BedrockEmbedder::TitanV2 => EmbedApi::TitanV2,
                BedrockEmbedder::Cohere { v4 } => EmbedApi::Cohere { v4 },
            }),
            Protocol::Gemini => Some(EmbedApi::google(&e.base, &e.model)),
            Protocol::Oci => Some(EmbedApi::oci(&e.model)),
            _ => None,
        };
        Ok(Target { protocol: e.protocol, model: e.model.clone(), chat, stream, embeddings, embed, auth, oci })
    }

    /// An OCI native deployment's compartment and request format (`Target::new` holds one for
    /// every `oci` deployment).
    fn oci_target(&self) -> (&str, oci_codec::Format) {
        match &self.oci {
            Some((compartment, format)) => (compartment, *format),
            None => ("", oci_format(OciFormat::of_model(&self.model))),
        }
    }

    /// The body of an embeddings call of `embed`'s inputs in `range` in `api` (`embed.rs`); an
    /// OCI deployment's names its compartment.
    pub(crate) fn embed_body(&self, api: EmbedApi, embed: &Embed, range: std::ops::Range<usize>) -> Bytes {
        let mut body = api.encode(&self.model, embed, range);
        if let (Some((compartment, _)), Some(fields)) = (&self.oci, body.as_object_mut()) {
            fields.insert("compartmentId".into(), Value::String(compartment.clone()));
        }
        Bytes::from(body.to_string())
    }

    /// A service account's tokens, when the deployment authenticates with one.
    pub(crate) fn tokens(&self) -> Option<&TokenSource> {
        match &self.auth {
            PreparedAuth::Google(tokens) => Some(tokens),
            _ => None,
        }
    }

    /// The request for one attempt: `body` is an OpenAI body, translated when the deployment
    /// speaks another protocol; and the whitespace cut from the end of its prefill. The clock
    /// is read only to sign.
    pub(crate) fn build(
        &self,
        operation: Operation,
        body: Bytes,
        now: impl FnOnce() -> SystemTime,
    ) -> Result<(http::Request<Full<Bytes>>, String), AttemptError> {
        let mut trimmed = String::new();
        let (uri, body) = match (self.protocol, operation) {
            (Protocol::OpenAi | Protocol::AzureOpenAi, Operation::ChatCompletions) => (self.chat.clone(), body),
            (Protocol::OpenAi | Protocol::AzureOpenAi, Operation::Embeddings) => (self.embeddings.clone(), body),
            (_, Operation::Embeddings) => {
                let detail = format!("{} deployments serve no embeddings", self.protocol.name());
                return Err(AttemptError::InvalidResponse { detail });
            }
            (Protocol::Anthropic, Operation::ChatCompletions) => {
                let mut request = canonical(&body)?;
                request.max_tokens = request.max_tokens.or(Some(DEFAULT_ANTHROPIC_MAX_TOKENS));
                trimmed = trim_prefill(&mut request);
                (self.chat.clone(), encoded(anthropic_codec::encode_request(&request))?)
            }
            (Protocol::Bedrock, Operation::ChatCompletions) => {
                let mut request = canonical(&body)?;
                // Claude on Bedrock refuses a prefill ending in whitespace, as Anthropic does.
                trimmed = trim_prefill(&mut request);
                let uri = if request.stream { self.stream.clone() } else { self.chat.clone() };
                (uri, encoded(bedrock_codec::encode_request(&request))?)
            }
            (Protocol::Gemini, Operation::ChatCompletions) => {
                let request = canonical(&body)?;
                let uri = if request.stream { self.stream.clone() } else { self.chat.clone() };
                (uri, encoded(gemini_codec::encode_request(&request))?)
            }
            (Protocol::Oci, Operation::ChatCompletions) => {
                let request = canonical(&body)?;
                let (compartment, format) = self.oci_target();
                let chat = oci_codec::encode_request(&request, format).map_err(refusal)?;
                let details = oci_codec::chat_details(compartment, &self.model, chat);
                (self.chat.clone(), Bytes::from(details.to_string()))
            }
        };
        Ok((self.request(uri, body, now)?, trimmed))
    }

    /// A POST of `body` (JSON) to `uri` with the deployment's auth: a header, or a signature
    /// made at `now()`.
    pub(crate) fn request(
        &self,
        uri: Uri,
        body: Bytes,
        now: impl FnOnce() -> SystemTime,
    ) -> Result<http::Request<Full<Bytes>>, AttemptError> {
        let unbuildable = |e: http::Error| AttemptError::ConnectFailed { detail: e.to_string() };
        // The body is kept aside only to sign it.
        let signing = self.auth.signs().then(|| body.clone());
        let mut request = http::Request::post(uri)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(Full::new(body))
            .map_err(unbuildable)?;
        self.auth.apply(&mut request, signing, now)?;
        Ok(request)
    }
}

/// The gateway's OpenAI body in the canonical model. A continuation's
/// `continue_final_message` (vLLM's way to continue a prefill) becomes the model's `prefill`.
/// A carried Anthropic request ([`CARRIED_ANTHROPIC`]) is the request, with the body's model,
/// stream, `max_tokens` and continuation.
fn canonical(body: &[u8]) -> Result<Canonical, AttemptError> {
    let refused = |message: String| AttemptError::ClientError {
        status: 400,
        message,
        code: Some("invalid_request_error".into()),
    };
    let mut request = openai_codec::decode_request(body).map_err(|e| refused(e.message))?;
    let mut continues = false;
    let mut carried = None;
    if let Some(extra) = &mut request.extra {
        let fields = &mut extra.fields;
        continues = fields.remove("continue_final_message") == Some(Value::Bool(true));
        fields.remove("add_generation_prompt");
        carried = fields.remove(CARRIED_ANTHROPIC);
        if fields.is_empty() {
            request.extra = None;
        }
    }
    let Some(carried) = carried else {
        request.prefill |= continues;
        return Ok(request);
    };
    let mut own = anthropic_codec::decode_request(carried.to_string().as_bytes()).map_err(|e| refused(e.message))?;
    own.model = std::mem::take(&mut request.model);
    own.stream = request.stream;
    own.include_usage = request.include_usage;
    own.max_tokens = request.max_tokens.or(own.max_tokens);
    if continues {
        // The delivered text is the routing body's last message: it continues the caller's
        // own prefill, if there was one, or starts one.
        let delivered: String = request
            .messages
            .last()
            .into_iter()
            .flat_map(|m| &m.content)
            .filter_map(|p| match p {
                Part::Text(text) => Some(text.as_str()),
                _ => None,
            })
            .collect();
        match own.messages.last_mut() {
            Some(last) if own.prefill && last.role == Role::Assistant => match last.content.last_mut() {
                Some(Part::Text(text)) => text.push_str(&delivered),
                _ => last.content.push(Part::Text(delivered)),
            },
            _ => own.messages.push(switchyard_wire::canonical::Message {
                role: Role::Assistant,
                content: vec![Part::Text(delivered)],
            }),
        }
        own.prefill = true;
    }
    Ok(own)
}

/// Cuts the trailing whitespace off a prefill's text, which Anthropic refuses ("final assistant
/// content cannot end with trailing whitespace"), and returns what was cut.
fn trim_prefill(request: &mut Canonical) -> String {
    if !request.prefill {
        return String::new();
    }
    let Some(last) = request.messages.last_mut().filter(|m| m.role == Role::Assistant) else {
        return String::new();
    };
    let Some(Part::Text(text)) = last.content.last_mut() else { return String::new() };
    let kept = text.trim_end().len();
    let cut = text.split_off(kept);
    if text.is_empty() {
        // A prefill of only whitespace is no prefill: the model starts the answer.
        last.content.pop();
        if last.content.is_empty() {
            request.messages.pop();
            request.prefill = false;
        }
    }
    cut
}

/// An encoded body, or the 400 that names what the protocol cannot express.
fn encoded(result: Result<Value, Unsupported>) -> Result<Bytes, AttemptError> {
    result.map(|value| Bytes::from(value.to_string())).map_err(refusal)
}

/// The 400 that names what the protocol cannot express.
fn refusal(e: Unsupported) -> AttemptError {
    unsupported(e.to_string())
}

/// The 400 for a parameter the deployment's API cannot take (`message` names it): the
/// caller's to fix, never failed over.
pub(crate) fn unsupported(message: String) -> AttemptError {
    AttemptError::ClientError { status: 400, message, code: Some("unsupported_parameter".into()) }
}

/// A path segment percent-encoded as botocore does: all but unreserved characters (a model
/// id's `:` becomes `%3A`).
fn path_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_ids_are_encoded_in_the_path() {
        assert_eq!(path_segment("us.meta.llama3-3-70b-instruct-v1:0"), "us.meta.llama3-3-70b-instruct-v1%3A0");
        assert_eq!(path_segment("arn:aws:x/y"), "arn%3Aaws%3Ax%2Fy");
    }

    #[test]
    fn a_prefill_loses_its_trailing_whitespace_for_anthropic() {
        let body =
            br#"{"model":"m","messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"Hello, \n"}],
            "continue_final_message":true}"#;
        let mut request = canonical(body).expect("decodes");
        assert_eq!(trim_prefill(&mut request), ", \n".trim_start_matches(','));
        assert_eq!(request.messages.last().map(|m| m.content.clone()), Some(vec![Part::Text("Hello,".into())]));
        let body = br#"{"model":"m","messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"  "}],
            "continue_final_message":true}"#;
        let mut request = canonical(body).expect("decodes");
        assert_eq!(trim_prefill(&mut request), "  ");
        assert!(!request.prefill && request.messages.len() == 1, "nothing left to continue from");
    }

    #[test]
    fn a_carried_anthropic_request_is_sent_whole_with_the_bodys_model_and_continuation() {
        let own = serde_json::json!({"model": "alias", "max_tokens": 64, "top_k": 5, "thinking": {"type": "enabled", "budget_tokens": 1024},
            "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Once"}]});
        let body = serde_json::json!({"model": "claude-x", "stream": true, "max_tokens": 40,
            "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Once"},
                {"role": "assistant", "content": " upon a"}],
            "continue_final_message": true, CARRIED_ANTHROPIC: own});
        let request = canonical(body.to_string().as_bytes()).expect("decodes");
        assert_eq!((request.model.as_str(), request.stream, request.max_tokens), ("claude-x", true, Some(40)));
        assert_eq!(request.sampling.top_k, Some(5));
        assert!(request.prefill);
        assert_eq!(
            request.messages.last().map(|m| m.content.clone()),
            Some(vec![Part::Text("Once upon a".into())]),
            "the delivered text continues the caller's own prefill"
        );
        let sent = anthropic_codec::encode_request(&request).expect("Anthropic can carry it all");
        assert_eq!(
            (sent["top_k"].as_u64(), sent["thinking"]["budget_tokens"].as_u64()),
            (Some(5), Some(1024)),
            "{sent}"
        );
    }

    #[test]
    fn a_continuation_becomes_a_prefill() {
        let body = br#"{"model":"m","messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"Hel"}],
            "continue_final_message":true,"add_generation_prompt":false,"stream":true}"#;
        let request = canonical(body).expect("decodes");
        assert!(request.prefill && request.extra.is_none(), "{request:?}");
    }
}
