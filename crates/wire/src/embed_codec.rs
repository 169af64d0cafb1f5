//! Embeddings in the clouds' own APIs. An OpenAI embeddings request is read into [`Embed`]
//! (text inputs, `dimensions`, `encoding_format`; what an API cannot take is a [`Refusal`]
//! naming the parameter; more than [`MAX_INPUTS`] inputs is refused as OpenAI refuses them),
//! split into the calls the deployment's [`Api`] allows ([`Api::calls`]: at most
//! [`Api::max_inputs`] each, and for Vertex AI under its tokens-per-call limit by the
//! project's estimate, with a margin), each call written ([`Api::encode`]) and its answer read
//! ([`Api::decode`]), and the answers merged into one OpenAI embeddings response ([`merge`]):
//! `data[i].index` in input order, usage summed, base64 written here when the caller asked for
//! it. Pure: the calls themselves are `switchyard-providers`' (`embed.rs`).
//!
//! One arm per API: Amazon Titan Text Embeddings v1 and v2 and Cohere Embed (v3, v4) on
//! Bedrock's `InvokeModel`, the Gemini API's `batchEmbedContents`, Vertex AI's `predict`, OCI
//! Generative AI's `embedText`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::chat::MAX_PLAUSIBLE_TOKENS;
use crate::tokens::estimate_tokens;

/// An embeddings API that is not OpenAI's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    /// Amazon Titan Text Embeddings G1 (`amazon.titan-embed-text-v1`): one `inputText` per
    /// call, 1536 dimensions.
    TitanV1,
    /// Amazon Titan Text Embeddings v2 (`amazon.titan-embed-text-v2:0`): one `inputText` per
    /// call, `dimensions` 256, 512 or 1024.
    TitanV2,
    /// Cohere Embed on Bedrock (`cohere.embed-english-v3`, `cohere.embed-multilingual-v3`,
    /// `cohere.embed-v4:0`): up to 96 `texts` per call.
    Cohere { v4: bool },
    /// The Gemini API's `batchEmbedContents`: up to 100 requests per call.
    Gemini,
    /// Vertex AI's `predict` on a Google publisher model: up to 250 `instances` per call (one
    /// for `gemini-embedding-*`).
    Vertex { one_per_call: bool },
    /// OCI Generative AI's `embedText` (Cohere Embed models, or a dedicated endpoint): up to
    /// 96 `inputs` per call, each answered at the model's own `dimensions` (`EmbedTextDetails`
    /// has no field to ask for others: `dimensions` is taken only when it is that size). The
    /// body [`Api::encode`] writes lacks the `compartmentId`, which is the deployment's cloud's.
    Oci { dimensions: u32 },
}

/// A caller's embeddings request, as the APIs here take it.
#[derive(Clone, Debug, PartialEq)]
pub struct Embed {
    pub inputs: Vec<String>,
    pub dimensions: Option<u32>,
    /// `encoding_format: base64`: the vectors go back as base64 of little-endian `f32`s.
    pub base64: bool,
}

/// What an API cannot take: the parameter, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Refusal {
    pub param: String,
    pub message: String,
}

/// One call's answer: a vector per input, in order, and the tokens the API counted (if it did).
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    pub vectors: Vec<Vec<f32>>,
    pub tokens: Option<u64>,
}

/// The header Bedrock counts a call's input tokens in (Cohere's answers carry no count).
pub const BEDROCK_INPUT_TOKENS_HEADER: &str = "x-amzn-bedrock-input-token-count";

/// The most inputs one embeddings request may have: OpenAI's own limit (its embeddings API
/// refuses more), held to on the APIs whose calls are made here.
pub const MAX_INPUTS: usize = 2048;

/// The most `dimensions` the Gemini API and Vertex AI make (`gemini-embedding-001`'s 3072).
pub const GOOGLE_MAX_DIMENSIONS: u32 = 3072;

/// The most input tokens one Vertex AI `predict` of a text embeddings model takes.
pub const VERTEX_MAX_TOKENS: u64 = 20_000;

/// The tokens, by the project's estimate, the calls are packed under for Vertex AI: a fifth
/// below [`VERTEX_MAX_TOKENS`], as the estimate is not Vertex AI's tokenizer.
const VERTEX_PACKED_TOKENS: u64 = VERTEX_MAX_TOKENS / 5 * 4;

impl Api {
    /// The API of a Google endpoint: Vertex AI's `predict` under a publisher
    /// (`…/publishers/google`), else the Gemini API's `batchEmbedContents`.
    pub fn google(base: &str, model: &str) -> Api {
        if base.trim_end_matches('/').ends_with("/publishers/google") {
            Api::Vertex { one_per_call: model.starts_with("gemini-embedding") }
        } else {
            Api::Gemini
        }
    }

    /// The API of an OCI native deployment's model, with the dimensions it makes: Cohere Embed
    /// v4 1536, a v3 light model (`-light-`) 384, the other v3 models (and a dedicated
    /// endpoint, whose model the id does not say) 1024.
    pub fn oci(model: &str) -> Api {
        let dimensions = if model.contains("embed-v4") {
            1536
        } else if model.contains("-light-") {
            384
        } else {
            1024
        };
        Api::Oci { dimensions }
    }

    /// What the API is called in refusals.
    pub fn name(self) -> &'static str {
        match self {
            Api::TitanV1 => "Amazon Titan Text Embeddings G1",
            Api::TitanV2 => "Amazon Titan Text Embeddings v2",
            Api::Cohere { .. } => "Cohere Embed on Bedrock",
            Api::Gemini => "the Gemini API",
            Api::Vertex { .. } => "Vertex AI",
            Api::Oci { .. } => "OCI Generative AI's embedText",
        }
    }

    /// The most inputs one call takes.
    pub fn max_inputs(self) -> usize {
        match self {
            Api::TitanV1 | Api::TitanV2 | Api::Vertex { one_per_call: true } => 1,
            Api::Cohere { .. } | Api::Oci { .. } => 96,
            Api::Gemini => 100,
            Api::Vertex { one_per_call: false } => 250,
        }
    }

    /// The calls `embed` takes, in order: each a range of its inputs, at most
    /// [`Api::max_inputs`] of them, packed greedily; for Vertex AI also under
    /// [`VERTEX_MAX_TOKENS`] (less a margin) by the project's estimate. An input alone over it
    /// is a call of its own, for Vertex AI to refuse.
    pub fn calls(self, embed: &Embed) -> impl Iterator<Item = std::ops::Range<usize>> + use<> {
        let (size, budget) = match self {
            Api::Vertex { one_per_call: false } => (self.max_inputs(), VERTEX_PACKED_TOKENS),
            _ => (self.max_inputs(), u64::MAX),
        };
        let mut calls = Vec::with_capacity(embed.inputs.len().div_ceil(size));
        let (mut start, mut tokens) = (0, 0u64);
        for (i, text) in embed.inputs.iter().enumerate() {
            let cost = u64::from(estimate_tokens(text));
            if i > start && (i - start == size || tokens.saturating_add(cost) > budget) {
                calls.push(start..i);
                (start, tokens) = (i, 0);
            }
            tokens = tokens.saturating_add(cost);
        }
        if start < embed.inputs.len() {
            calls.push(start..embed.inputs.len());
        }
        calls.into_iter()
    }

    /// Reads an OpenAI embeddings body for this API; what it cannot take is refused, naming
    /// the parameter. `model` and `user` (OpenAI's abuse-monitoring id, which no API here
    /// takes) are read past.
    pub fn read(self, body: &[u8]) -> Result<Embed, Refusal> {
        let refuse = |param: &str, message: String| Refusal { param: param.to_owned(), message };
        let object: Map<String, Value> = match serde_json::from_slice(body) {
            Ok(Value::Object(object)) => object,
            _ => return Err(refuse("input", "the body must be a JSON object".into())),
        };
        let mut embed = Embed { inputs: Vec::new(), dimensions: None, base64: false };
        for (key, value) in &object {
            match (key.as_str(), value) {
                ("model" | "user", _) | (_, Value::Null) => {}
                ("input", Value::String(text)) => embed.inputs.push(text.clone()),
                ("input", Value::Array(items)) if !items.is_empty() => {
                    for item in items {
                        match item {
                            Value::String(text) => embed.inputs.push(text.clone()),
                            _ => {
                                let message =
                                    format!("token arrays cannot be sent to {}: give 'input' as text", self.name());
                                return Err(refuse("input", message));
                            }
                        }
                    }
                }
                ("input", _) => return Err(refuse("input", "'input' must be a string or a non-empty array".into())),
                ("dimensions", Value::Number(n)) => {
                    let d = n.as_u64().and_then(|d| u32::try_from(d).ok()).filter(|d| *d > 0);
                    embed.dimensions =
                        Some(d.ok_or_else(|| refuse("dimensions", "'dimensions' must be a positive integer".into()))?);
                }
                ("encoding_format", Value::String(f)) if f == "float" => {}
                ("encoding_format", Value::String(f)) if f == "base64" => embed.base64 = true,
                ("dimensions" | "encoding_format", _) => {
                    let message = format!("'{key}' has a value that is not valid");
                    return Err(refuse(key, message));
                }
                (other, _) => {
                    let message = format!("unsupported parameter for {}: '{other}'", self.name());
                    return Err(refuse(other, message));
                }
            }
        }
        if embed.inputs.is_empty() {
            return Err(refuse("input", "'input' must be a string or a non-empty array".into()));
        }
        if embed.inputs.len() > MAX_INPUTS {
            let message = format!("'input' has {} items: at most {MAX_INPUTS} are taken", embed.inputs.len());
            return Err(refuse("input", message));
        }
        if let Some(d) = embed.dimensions {
            let native = [self.oci_dimensions().unwrap_or(0)];
            let allowed: &[u32] = match self {
                Api::TitanV1 => &[1536],
                Api::TitanV2 => &[256, 512, 1024],
                Api::Cohere { v4: false } => &[1024],
                Api::Cohere { v4: true } => &[256, 512, 1024, 1536],
                // What the model makes, which is not sent.
                Api::Oci { .. } => &native,
                Api::Gemini | Api::Vertex { .. } => &[],
            };
            if matches!(self, Api::Gemini | Api::Vertex { .. }) && d > GOOGLE_MAX_DIMENSIONS {
                let message = format!("{} takes 'dimensions' up to {GOOGLE_MAX_DIMENSIONS}, not {d}", self.name());
                return Err(refuse("dimensions", message));
            }
            if !allowed.is_empty() && !allowed.contains(&d) {
                let message = format!("{} takes 'dimensions' {allowed:?} only, not {d}", self.name());
                return Err(refuse("dimensions", message));
            }
        }
        Ok(embed)
    }

    /// The dimensions an OCI model makes ([`Api::oci`]).
    pub fn oci_dimensions(self) -> Option<u32> {
        match self {
            Api::Oci { dimensions } => Some(dimensions),
            _ => None,
        }
    }

    /// The body of the call for `embed`'s inputs in `range`, to `model`.
    pub fn encode(self, model: &str, embed: &Embed, range: std::ops::Range<usize>) -> Value {
        let inputs = &embed.inputs[range];
        match self {
            Api::TitanV1 => json!({"inputText": inputs.first()}),
            Api::TitanV2 => {
                let mut body = json!({"inputText": inputs.first(), "normalize": true});
                if let Some(d) = embed.dimensions {
                    body["dimensions"] = json!(d);
                }
                body
            }
            Api::Cohere { v4 } => {
                let mut body = json!({"texts": inputs, "input_type": "search_document", "embedding_types": ["float"]});
                if let Some(d) = embed.dimensions.filter(|_| v4) {
                    body["output_dimension"] = json!(d);
                }
                body
            }
            Api::Gemini => {
                let requests: Vec<Value> = inputs
                    .iter()
                    .map(|text| {
                        let mut request =
                            json!({"model": format!("models/{model}"), "content": {"parts": [{"text": text}]}});
                        if let Some(d) = embed.dimensions {
                            request["outputDimensionality"] = json!(d);
                        }
                        request
                    })
                    .collect();
                json!({"requests": requests})
            }
            // `dimensions`, when given, is the model's own ([`Api::read`]): nothing to send.
            Api::Oci { .. } => json!({"servingMode": crate::oci_codec::serving_mode(model), "inputs": inputs,
                "inputType": "SEARCH_DOCUMENT", "truncate": "NONE"}),
            Api::Vertex { .. } => {
                let instances: Vec<Value> = inputs.iter().map(|text| json!({"content": text})).collect();
                let mut body = json!({"instances": instances});
                if let Some(d) = embed.dimensions {
                    body["parameters"] = json!({"outputDimensionality": d});
                }
                body
            }
        }
    }

    /// A call's answer for `n` inputs; `header_tokens` is Bedrock's token-count header, when
    /// there. Anything else than `n` vectors of numbers is refused.
    pub fn decode(self, body: &[u8], n: usize, header_tokens: Option<u64>) -> Result<Answer, String> {
        let value: Value = serde_json::from_slice(body).map_err(|e| format!("not an embeddings answer: {e}"))?;
        let count = |v: Option<&Value>| v.and_then(Value::as_u64).map(|t| t.min(MAX_PLAUSIBLE_TOKENS));
        let (vectors, tokens) = match self {
            Api::TitanV1 | Api::TitanV2 => {
                let vector = vector(value.get("embedding"))?;
                (vec![vector], count(value.get("inputTextTokenCount")).or(header_tokens))
            }
            Api::Cohere { .. } => {
                let embeddings = value.get("embeddings");
                // An array of vectors, or (with `embedding_types`) an object of them by type.
                let list = embeddings.and_then(|e| e.get("float")).or(embeddings);
                (vectors(list, |v| Some(v))?, header_tokens)
            }
            Api::Gemini => (vectors(value.get("embeddings"), |e| e.get("values"))?, None),
            Api::Oci { .. } => {
                (vectors(value.get("embeddings"), |v| Some(v))?, count(value.pointer("/usage/promptTokens")))
            }
            Api::Vertex { .. } => {
                let predictions = value.get("predictions");
                let vectors = vectors(predictions, |p| p.pointer("/embeddings/values"))?;
                let counts = predictions.and_then(Value::as_array).into_iter().flatten();
                let counted: Option<Vec<u64>> =
                    counts.map(|p| count(p.pointer("/embeddings/statistics/token_count"))).collect();
                (vectors, counted.map(|c| c.iter().sum::<u64>().min(MAX_PLAUSIBLE_TOKENS)))
            }
        };
        if vectors.len() != n {
            return Err(format!("{} answered {} embeddings for {n} inputs", self.name(), vectors.len()));
        }
        Ok(Answer { vectors, tokens })
    }
}

fn vector(value: Option<&Value>) -> Result<Vec<f32>, String> {
    let items = value.and_then(Value::as_array).ok_or("an embedding that is not an array")?;
    items
        .iter()
        .map(|v| v.as_f64().map(|f| f as f32).ok_or_else(|| "an embedding value that is not a number".into()))
        .collect()
}

fn vectors(list: Option<&Value>, each: impl Fn(&Value) -> Option<&Value>) -> Result<Vec<Vec<f32>>, String> {
    let items = list.and_then(Value::as_array).ok_or("an answer without its embeddings")?;
    items.iter().map(|item| vector(each(item))).collect()
}

/// The OpenAI embeddings response for `embed`, from its calls' answers in order (each for the
/// inputs of the call, in [`Api::calls`]' order): `data[i].index` is input `i`, usage the sum
/// of the counts, a call without one counted with the project's estimate.
pub fn merge(model: &str, embed: &Embed, calls: &[std::ops::Range<usize>], answers: Vec<Answer>) -> Vec<u8> {
    let mut data = Vec::with_capacity(embed.inputs.len());
    let mut tokens: u64 = 0;
    for (range, answer) in calls.iter().zip(answers) {
        let counted = answer
            .tokens
            .unwrap_or_else(|| embed.inputs[range.clone()].iter().map(|text| u64::from(estimate_tokens(text))).sum());
        tokens = tokens.saturating_add(counted);
        for vector in answer.vectors {
            let embedding = if embed.base64 { Embedding::Base64(base64_of(&vector)) } else { Embedding::Float(vector) };
            data.push(Item { object: "embedding", index: data.len(), embedding });
        }
    }
    let usage = Usage { prompt_tokens: tokens, total_tokens: tokens };
    let out = Out { object: "list", data, model, usage };
    serde_json::to_vec(&out).unwrap_or_default()
}

/// Standard base64 of the values' little-endian bytes (OpenAI's `encoding_format: base64`).
pub fn base64_of(values: &[f32]) -> String {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    STANDARD.encode(bytes)
}

#[derive(Serialize)]
struct Out<'a> {
    object: &'static str,
    data: Vec<Item>,
    model: &'a str,
    usage: Usage,
}

#[derive(Serialize)]
struct Item {
    object: &'static str,
    index: usize,
    embedding: Embedding,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Embedding {
    Float(Vec<f32>),
    Base64(String),
}

#[derive(Serialize)]
struct Usage {
    prompt_tokens: u64,
    total_tokens: u64,
}

#[cfg(test)]
mod tests;
