//! Embeddings in each cloud's API, a deterministic unit vector per input text: the same text
//! gets the same vector whichever API asked (so a failover gives the same answer), of the
//! dimensions asked for.
//!
//! - OpenAI's (and Azure's): `dimensions` floats (8 by default), as JSON numbers or, with
//!   `encoding_format: "base64"` (what the openai Node SDK asks for by default), as the base64
//!   of their little-endian `f32` bytes.
//! - Bedrock `InvokeModel` ([`bedrock`]): Amazon Titan Text Embeddings (one `inputText`; v2's
//!   `dimensions` 256, 512 or 1024) and Cohere Embed (`texts`, at most 96; answered as a list
//!   or, with `embedding_types`, by type; the count in `X-Amzn-Bedrock-Input-Token-Count`).
//! - The Gemini API's `batchEmbedContents` ([`gemini`]: at most 100 requests, each naming the
//!   model, `outputDimensionality` at most 3072) and Vertex AI's `predict` ([`vertex`]: at most
//!   250 instances and 20,000 tokens, with token counts).
//!
//! Over the limit, a batch gets the API's own 400, so a caller that does not split is caught;
//! so do dimensions the API does not make. The APIs that count tokens count them with the
//! emulated tokenizer ([`counted`]), which is not the gateway's estimate, so a gateway that
//! reports the API's count rather than its own estimate is seen to.
//! A call in a cloud's own API takes a draw of the deployment's `ttft_ms` to answer.

use bytes::Bytes;
use http::StatusCode;
use serde_json::{Value, json};
use switchyard_core::config::BedrockEmbedder;
use switchyard_core::config::emulation::{Fault, FaultKind};
use switchyard_core::rng::{Rng, SplitMix64, stable_hash};
use switchyard_wire::chat::EmbeddingsRequest;
use switchyard_wire::estimate_tokens;

use crate::server::{Reply, json_response};
use crate::{EmulatedDeployment, Seen};

/// Dimensions when the request names none.
const DEFAULT_DIMENSIONS: usize = 8;
/// The most dimensions asked for that are answered (text-embedding-3-large has 3072).
const MAX_DIMENSIONS: u64 = 4096;

pub(crate) fn answer(dep: &EmulatedDeployment, body: Bytes) -> Reply {
    match respond(dep, body) {
        Ok(reply) => reply,
        Err((message, param)) => {
            dep.record(Seen::BadRequest, false, false);
            let body =
                json!({"error": {"message": message, "type": "invalid_request_error", "param": param, "code": null}});
            json_response(StatusCode::BAD_REQUEST, body.to_string().into_bytes())
        }
    }
}

fn respond(dep: &EmulatedDeployment, body: Bytes) -> Result<Reply, (String, Option<&'static str>)> {
    let request = EmbeddingsRequest::parse(body).map_err(|e| (e.message, e.param))?;
    let field = |key: &str| request.object.get(key).and_then(|v| serde_json::from_str::<Value>(v).ok());
    let dimensions = match field("dimensions") {
        None | Some(Value::Null) => DEFAULT_DIMENSIONS,
        Some(Value::Number(n)) if n.as_u64().is_some_and(|n| (1..=MAX_DIMENSIONS).contains(&n)) => {
            n.as_u64().map_or(DEFAULT_DIMENSIONS, |n| n as usize)
        }
        Some(_) => {
            return Err((format!("'dimensions' must be an integer from 1 to {MAX_DIMENSIONS}"), Some("dimensions")));
        }
    };
    let base64 = match field("encoding_format") {
        None | Some(Value::Null) => false,
        Some(Value::String(f)) if f == "float" => false,
        Some(Value::String(f)) if f == "base64" => true,
        Some(_) => return Err(("'encoding_format' must be 'float' or 'base64'".into(), Some("encoding_format"))),
    };
    let inputs: Vec<Value> = match field("input") {
        Some(Value::Array(items)) => items,
        Some(other) => vec![other],
        None => Vec::new(),
    };
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, input)| {
            let vector = vector(input, dimensions);
            let embedding =
                if base64 { json!(switchyard_wire::embed_codec::base64_of(&vector)) } else { json!(vector) };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    dep.record(Seen::Completed, false, false);
    let body = json!({
        "object": "list", "data": data, "model": dep.model,
        "usage": {"prompt_tokens": request.input_tokens, "total_tokens": request.input_tokens},
    });
    Ok(json_response(StatusCode::OK, body.to_string().into_bytes()))
}

/// An embeddings call in a cloud's own API, answered or refused.
pub(crate) enum Embedded {
    /// The answer's JSON, and the input tokens it counted.
    Answer { body: Value, tokens: u64 },
    /// A request the API refuses (400), with its message.
    Invalid(String),
    /// A fault plan's error status.
    Status { status: u16, retry_after: Option<std::time::Duration> },
}

/// The most texts a Cohere Embed call takes on Bedrock.
const COHERE_MAX_TEXTS: usize = 96;
/// The most requests in one Gemini `batchEmbedContents`.
const GEMINI_MAX_REQUESTS: usize = 100;
/// The most instances in one Vertex AI `predict`.
const VERTEX_MAX_INSTANCES: usize = 250;
/// The most input tokens in one Vertex AI `predict`.
const VERTEX_MAX_TOKENS: u64 = 20_000;
/// The most dimensions the Google embeddings models make (`gemini-embedding-001`'s).
const GOOGLE_MAX_DIMENSIONS: u64 = 3072;
/// The `output_dimension`s Cohere Embed v4 makes on Bedrock.
const COHERE_V4_DIMENSIONS: [u64; 4] = [256, 512, 1024, 1536];

/// The tokens the emulated tokenizer counts in an input: the project's estimate and one more
/// (a start-of-text token). Deliberately not the estimate, so that what an API reports can be
/// told from what the gateway would estimate.
pub(crate) fn counted(text: &str) -> u64 {
    u64::from(estimate_tokens(text)) + 1
}

/// A Bedrock `InvokeModel` of an embeddings model: Titan's `inputText` or Cohere's `texts`.
pub(crate) fn bedrock(dep: &EmulatedDeployment, body: &[u8], faults: &[Fault]) -> Embedded {
    if let Some(refused) = status_fault(dep, faults) {
        return refused;
    }
    let Ok(Value::Object(request)) = serde_json::from_slice::<Value>(body) else {
        return invalid(dep, "Malformed input request, please reformat your input and try again.".into());
    };
    let model = dep.model.as_str();
    let embedder = BedrockEmbedder::of_model(model);
    if let Some(titan @ (BedrockEmbedder::TitanV1 | BedrockEmbedder::TitanV2)) = embedder {
        let Some(text) = request.get("inputText").and_then(Value::as_str).filter(|t| !t.is_empty()) else {
            return invalid(dep, "Malformed input request: #/inputText: expected minLength: 1".into());
        };
        let v2 = titan == BedrockEmbedder::TitanV2;
        let dimensions = match request.get("dimensions").map(Value::as_u64) {
            None => {
                if v2 {
                    1024
                } else {
                    1536
                }
            }
            Some(Some(d @ (256 | 512 | 1024))) if v2 => d as usize,
            Some(_) => return invalid(dep, "Malformed input request: #/dimensions: 256, 512 or 1024".into()),
        };
        let tokens = counted(text);
        let embedding = vector(&json!(text), dimensions);
        dep.record(Seen::Completed, false, false);
        let body =
            json!({"embedding": embedding, "inputTextTokenCount": tokens, "embeddingsByType": {"float": embedding}});
        return Embedded::Answer { body, tokens };
    }
    let Some(BedrockEmbedder::Cohere { v4 }) = embedder else {
        return invalid(dep, format!("The model {model} does not make embeddings."));
    };
    let texts: Option<Vec<&str>> =
        request.get("texts").and_then(Value::as_array).map(|t| t.iter().filter_map(Value::as_str).collect());
    let Some(texts) = texts.filter(|t| !t.is_empty()) else {
        return invalid(dep, "Malformed input request: #/texts: expected an array of strings".into());
    };
    if texts.len() > COHERE_MAX_TEXTS {
        let n = texts.len();
        let message = format!(
            "Malformed input request: #/texts: expected maximum item count: {COHERE_MAX_TEXTS}, found: {n}, please reformat your input and try again."
        );
        return invalid(dep, message);
    }
    let dimensions = match request.get("output_dimension") {
        None => {
            if v4 {
                1536
            } else {
                1024
            }
        }
        Some(d) => match d.as_u64().filter(|d| v4 && COHERE_V4_DIMENSIONS.contains(d)) {
            Some(d) => d as usize,
            None => {
                let message = "Malformed input request: #/output_dimension: must be 256, 512, 1024 or 1536 (Cohere Embed v4 only), please reformat your input and try again.";
                return invalid(dep, message.into());
            }
        },
    };
    let vectors: Vec<Vec<f32>> = texts.iter().map(|t| vector(&json!(t), dimensions)).collect();
    let tokens = texts.iter().map(|t| counted(t)).sum();
    dep.record(Seen::Completed, false, false);
    let body = if request.get("embedding_types").is_some() {
        json!({"id": "emulated", "texts": texts, "embeddings": {"float": vectors}, "response_type": "embeddings_by_type"})
    } else {
        json!({"id": "emulated", "texts": texts, "embeddings": vectors, "response_type": "embeddings_floats"})
    };
    Embedded::Answer { body, tokens }
}

/// The Gemini API's `batchEmbedContents` for `model`: `{embeddings: [{values}]}`, no counts.
pub(crate) fn gemini(dep: &EmulatedDeployment, model: &str, body: &[u8], faults: &[Fault]) -> Embedded {
    if let Some(refused) = status_fault(dep, faults) {
        return refused;
    }
    let requests = serde_json::from_slice::<Value>(body).ok().and_then(|b| b.get("requests").cloned());
    let Some(Value::Array(requests)) = requests else {
        return invalid(dep, "Invalid JSON payload received. Expected 'requests'.".into());
    };
    if requests.len() > GEMINI_MAX_REQUESTS {
        return invalid(
            dep,
            format!("* BatchEmbedContentsRequest.requests: at most {GEMINI_MAX_REQUESTS} requests can be in one batch"),
        );
    }
    let mut embeddings = Vec::with_capacity(requests.len());
    let mut tokens = 0;
    for (i, request) in requests.iter().enumerate() {
        if request.get("model").and_then(Value::as_str) != Some(&format!("models/{model}")) {
            let message = format!("* BatchEmbedContentsRequest.requests[{i}].model: the model must be models/{model}");
            return invalid(dep, message);
        }
        let text: String = request
            .pointer("/content/parts")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect();
        let dimensions = match request.get("outputDimensionality") {
            None => google_dimensions(model),
            Some(d) => match d.as_u64().filter(|d| (1..=GOOGLE_MAX_DIMENSIONS).contains(d)) {
                Some(d) => d as usize,
                None => {
                    let message =
                        format!("* requests[{i}].outputDimensionality: must be from 1 to {GOOGLE_MAX_DIMENSIONS}");
                    return invalid(dep, message);
                }
            },
        };
        tokens += counted(&text);
        embeddings.push(json!({"values": vector(&json!(text), dimensions)}));
    }
    dep.record(Seen::Completed, false, false);
    Embedded::Answer { body: json!({"embeddings": embeddings}), tokens }
}

/// Vertex AI's `predict` on an embeddings model: `{predictions: [{embeddings: {values,
/// statistics}}]}`.
pub(crate) fn vertex(dep: &EmulatedDeployment, model: &str, body: &[u8], faults: &[Fault]) -> Embedded {
    if let Some(refused) = status_fault(dep, faults) {
        return refused;
    }
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return invalid(dep, "Invalid JSON payload received.".into());
    };
    let Some(instances) = request.get("instances").and_then(Value::as_array).filter(|i| !i.is_empty()) else {
        return invalid(dep, "instances: expected a non-empty list".into());
    };
    if instances.len() > VERTEX_MAX_INSTANCES {
        let n = instances.len();
        return invalid(dep, format!("Batch size {n} exceeds the maximum of {VERTEX_MAX_INSTANCES} instances."));
    }
    let dimensions = match request.pointer("/parameters/outputDimensionality") {
        None => google_dimensions(model),
        Some(d) => match d.as_u64().filter(|d| (1..=GOOGLE_MAX_DIMENSIONS).contains(d)) {
            Some(d) => d as usize,
            None => {
                let message = format!("parameters.outputDimensionality: must be from 1 to {GOOGLE_MAX_DIMENSIONS}");
                return invalid(dep, message);
            }
        },
    };
    let texts: Vec<&str> =
        instances.iter().map(|i| i.get("content").and_then(Value::as_str).unwrap_or_default()).collect();
    let tokens: u64 = texts.iter().map(|t| counted(t)).sum();
    if tokens > VERTEX_MAX_TOKENS {
        let message = format!(
            "Unable to submit request because the input token count is {tokens} but the model supports up to {VERTEX_MAX_TOKENS}. Reduce the input token count and try again."
        );
        return invalid(dep, message);
    }
    let predictions: Vec<Value> = texts
        .iter()
        .map(|text| {
            let statistics = json!({"token_count": counted(text), "truncated": false});
            json!({"embeddings": {"values": vector(&json!(text), dimensions), "statistics": statistics}})
        })
        .collect();
    dep.record(Seen::Completed, false, false);
    Embedded::Answer {
        body: json!({"predictions": predictions, "metadata": {"billableCharacterCount": tokens * 4}}),
        tokens,
    }
}

/// How long an embeddings call in a cloud's own API takes: a draw of the deployment's
/// `ttft_ms` (its time to answer).
pub(crate) async fn take_time(dep: &EmulatedDeployment) {
    let ms = dep.sample(&dep.spec.ttft_ms).max(0.0);
    tokio::time::sleep(std::time::Duration::from_secs_f64(ms / 1000.0)).await;
}

/// A Google embeddings model's dimensions when none are asked for.
fn google_dimensions(model: &str) -> usize {
    if model.starts_with("gemini-embedding") { 3072 } else { 768 }
}

/// A fault plan's error status, if one is active (recorded as seen).
pub(crate) fn status_fault(dep: &EmulatedDeployment, faults: &[Fault]) -> Option<Embedded> {
    faults.iter().find_map(|f| match f.kind {
        FaultKind::Error { status, retry_after } => {
            dep.record(Seen::ErrorStatus(status), false, false);
            Some(Embedded::Status { status, retry_after })
        }
        _ => None,
    })
}

fn invalid(dep: &EmulatedDeployment, message: String) -> Embedded {
    dep.record(Seen::BadRequest, false, false);
    Embedded::Invalid(message)
}

/// The unit vector of `input`: deterministic, of length 1 (as `f32`s).
pub(crate) fn vector(input: &Value, dimensions: usize) -> Vec<f32> {
    let mut rng = SplitMix64::new(stable_hash(input.to_string().as_bytes()));
    let raw: Vec<f64> = (0..dimensions).map(|_| rng.next_f64() - 0.5).collect();
    let norm = raw.iter().map(|v| v * v).sum::<f64>().sqrt().max(f64::MIN_POSITIVE);
    raw.iter().map(|v| (v / norm) as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_is_standard() {
        assert_eq!(switchyard_wire::embed_codec::base64_of(&[]), "");
        assert_eq!(switchyard_wire::embed_codec::base64_of(&[1.0]), "AACAPw==");
        assert_eq!(switchyard_wire::embed_codec::base64_of(&[1.0, -2.0]), "AACAPwAAAMA=");
        let v = vector(&json!("hello"), 64);
        let norm: f32 = v.iter().map(|x| x * x).sum();
        assert!((norm - 1.0).abs() < 1e-5, "{norm}");
        assert_eq!(v, vector(&json!("hello"), 64));
        assert_ne!(v, vector(&json!("hullo"), 64));
    }
}
