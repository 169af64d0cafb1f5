//! OpenAI Embeddings: a deterministic unit vector per input (the same input always gets the
//! same vector), of `dimensions` floats (8 by default), as JSON numbers or, with
//! `encoding_format: "base64"` (what the openai Node SDK asks for by default), as the base64
//! of their little-endian `f32` bytes.

use bytes::Bytes;
use http::StatusCode;
use serde_json::{Value, json};
use switchyard_core::rng::{Rng, SplitMix64, stable_hash};
use switchyard_wire::chat::EmbeddingsRequest;

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
            let embedding = if base64 { json!(encode_base64(&vector)) } else { json!(vector) };
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

/// The unit vector of `input`: deterministic, of length 1 (as `f32`s).
pub(crate) fn vector(input: &Value, dimensions: usize) -> Vec<f32> {
    let mut rng = SplitMix64::new(stable_hash(input.to_string().as_bytes()));
    let raw: Vec<f64> = (0..dimensions).map(|_| rng.next_f64() - 0.5).collect();
    let norm = raw.iter().map(|v| v * v).sum::<f64>().sqrt().max(f64::MIN_POSITIVE);
    raw.iter().map(|v| (v / norm) as f32).collect()
}

/// Standard base64 (with padding) of the values' little-endian bytes.
fn encode_base64(values: &[f32]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * k)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_is_standard() {
        assert_eq!(encode_base64(&[]), "");
        assert_eq!(encode_base64(&[1.0]), "AACAPw==");
        assert_eq!(encode_base64(&[1.0, -2.0]), "AACAPwAAAMA=");
        let v = vector(&json!("hello"), 64);
        let norm: f32 = v.iter().map(|x| x * x).sum();
        assert!((norm - 1.0).abs() < 1e-5, "{norm}");
        assert_eq!(v, vector(&json!("hello"), 64));
        assert_ne!(v, vector(&json!("hullo"), 64));
    }
}
