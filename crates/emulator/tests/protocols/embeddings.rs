//! Embeddings in each cloud's own API: Bedrock `InvokeModel` of Titan (v2's dimensions) and
//! Cohere Embed (96 texts at most, a list or by type, the count in a header), the Gemini API's
//! `batchEmbedContents` (100 at most, each naming the model) and Vertex AI's `predict` (250 at
//! most and 20,000 tokens, with token counts); over a limit (dimensions too), the API's own
//! 400; the counts the emulated tokenizer's (the estimate and one per text); the same text the
//! same vector whichever API asked; credentials checked as for generation.

use http::Method;
use serde_json::{Value, json};
use switchyard_core::config::{Config, SecretSource};
use switchyard_emulator::{Bind, Emulator};

use crate::support::{Reply, send};

const BEDROCK_KEY: &str = "bedrock-api-key";
const GEMINI_KEY: &str = "AIzaSy-emulator";

const CONFIG: &str = r#"
clouds:
  - { name: aws, protocol: bedrock, api_key: "env:BEDROCK_KEY" }
  - { name: google, protocol: gemini, api_key: "env:GEMINI_KEY" }
  - { name: oa, protocol: openai }
deployments:
  - { name: titan, cloud: aws, kind: embeddings, region: us-east-1, jurisdiction: us, model: "amazon.titan-embed-text-v2:0", endpoint: "http://127.0.0.1:1", price: { input_per_mtok: 0.02 } }
  - { name: titan-v1, cloud: aws, kind: embeddings, region: us-east-1, jurisdiction: us, model: amazon.titan-embed-text-v1, endpoint: "http://127.0.0.1:2", price: { input_per_mtok: 0.1 } }
  - { name: cohere, cloud: aws, kind: embeddings, region: us-east-1, jurisdiction: us, model: cohere.embed-english-v3, endpoint: "http://127.0.0.1:3", price: { input_per_mtok: 0.1 } }
  - { name: gem, cloud: google, kind: embeddings, region: global, jurisdiction: us, model: text-embedding-004, endpoint: "http://127.0.0.1:4/v1beta", price: { input_per_mtok: 0.1 } }
  - { name: emb, cloud: oa, kind: embeddings, region: us, jurisdiction: us, model: text-embedding-3-small, endpoint: "http://127.0.0.1:5/v1", price: { input_per_mtok: 0.02 } }
aliases:
  - { name: embed, deployments: [titan, titan-v1, cohere, gem, emb] }
"#;

struct Secrets;

impl SecretSource for Secrets {
    fn env(&self, name: &str) -> Option<String> {
        match name {
            "BEDROCK_KEY" => Some(BEDROCK_KEY.to_owned()),
            "GEMINI_KEY" => Some(GEMINI_KEY.to_owned()),
            _ => None,
        }
    }

    fn file(&self, path: &str) -> Result<String, String> {
        Err(format!("no file {path}"))
    }
}

async fn emulator() -> Emulator {
    let config = Config::from_yaml(CONFIG, &Secrets).expect("config");
    Emulator::start(&config, Bind::Memory, None, 7).await.expect("emulator")
}

async fn invoke(emulator: &Emulator, name: &str, model: &str, body: Value) -> Reply {
    let path = format!("/model/{}/invoke", model.replace(':', "%3A"));
    let bearer = format!("Bearer {BEDROCK_KEY}");
    let headers = [("authorization", bearer.as_str()), ("content-type", "application/json")];
    send(emulator, name, Method::POST, &path, &headers, body.to_string()).await.expect("answered")
}

async fn google(emulator: &Emulator, path: &str, body: Value) -> Reply {
    let headers = [("x-goog-api-key", GEMINI_KEY), ("content-type", "application/json")];
    send(emulator, "gem", Method::POST, path, &headers, body.to_string()).await.expect("answered")
}

fn floats(value: &Value) -> Vec<f64> {
    value.as_array().expect("an array").iter().map(|v| v.as_f64().expect("a number")).collect()
}

fn texts(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("text {i}")).collect()
}

#[tokio::test(start_paused = true)]
async fn titan_embeds_one_text_at_the_dimensions_asked_for() {
    let emulator = emulator().await;
    let model = "amazon.titan-embed-text-v2:0";
    let r = invoke(&emulator, "titan", model, json!({"inputText": "hello there", "dimensions": 256})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let body = r.json();
    assert_eq!(floats(&body["embedding"]).len(), 256);
    assert_eq!(body["embeddingsByType"]["float"], body["embedding"]);
    // The emulated tokenizer: the estimate (3) and one.
    assert_eq!(body["inputTextTokenCount"], 4);
    assert_eq!(r.header("x-amzn-bedrock-input-token-count"), "4");
    let default = invoke(&emulator, "titan", model, json!({"inputText": "hello there"})).await.json();
    assert_eq!(floats(&default["embedding"]).len(), 1024);

    let r = invoke(&emulator, "titan", model, json!({"inputText": "x", "dimensions": 300})).await;
    assert_eq!((r.status.as_u16(), r.header("x-amzn-errortype").split(':').next()), (400, Some("ValidationException")));
    let r = invoke(&emulator, "titan", model, json!({"inputText": ""})).await;
    assert_eq!(r.status, 400);
    let v1 = invoke(&emulator, "titan-v1", "amazon.titan-embed-text-v1", json!({"inputText": "x"})).await.json();
    assert_eq!(floats(&v1["embedding"]).len(), 1536);
    let r =
        invoke(&emulator, "titan-v1", "amazon.titan-embed-text-v1", json!({"inputText": "x", "dimensions": 256})).await;
    assert_eq!(r.status, 400, "G1 takes no dimensions");
    // A wrong key, as Bedrock refuses one.
    let path = "/model/amazon.titan-embed-text-v2%3A0/invoke";
    let wrong = [("authorization", "Bearer nope")];
    let r = send(&emulator, "titan", Method::POST, path, &wrong, json!({"inputText": "x"}).to_string()).await.unwrap();
    assert_eq!(r.status, 403);
}

#[tokio::test(start_paused = true)]
async fn cohere_takes_96_texts_at_most_and_answers_by_type_when_asked() {
    let emulator = emulator().await;
    let model = "cohere.embed-english-v3";
    let r = invoke(&emulator, "cohere", model, json!({"texts": texts(96), "input_type": "search_document"})).await;
    assert_eq!(r.status, 200);
    let body = r.json();
    assert_eq!(
        (body["response_type"].as_str(), body["embeddings"].as_array().map(Vec::len)),
        (Some("embeddings_floats"), Some(96))
    );
    assert_eq!(floats(&body["embeddings"][0]).len(), 1024);
    assert_eq!(r.header("x-amzn-bedrock-input-token-count"), (96 * 3).to_string(), "each text is three tokens");

    let typed = invoke(&emulator, "cohere", model, json!({"texts": ["a"], "embedding_types": ["float"]})).await.json();
    assert_eq!(typed["response_type"], "embeddings_by_type");
    assert_eq!(floats(&typed["embeddings"]["float"][0]).len(), 1024);

    // v3 makes 1024 dimensions only; no output_dimension (a huge one least of all).
    for d in [json!(512), json!(4_000_000_000u64)] {
        let r = invoke(&emulator, "cohere", model, json!({"texts": ["a"], "output_dimension": d})).await;
        assert_eq!(r.status, 400, "{d}");
        assert!(r.header("x-amzn-errortype").starts_with("ValidationException"));
    }

    let over = invoke(&emulator, "cohere", model, json!({"texts": texts(97)})).await;
    assert_eq!(over.status, 400);
    assert!(over.header("x-amzn-errortype").starts_with("ValidationException"));
    let message = over.json()["message"].as_str().unwrap_or_default().to_owned();
    assert!(message.contains("expected maximum item count: 96, found: 97"), "{message}");
}

#[tokio::test(start_paused = true)]
async fn gemini_batches_100_requests_at_most_and_vertex_250_instances() {
    let emulator = emulator().await;
    let request = |text: &str| json!({"model": "models/text-embedding-004", "content": {"parts": [{"text": text}]}});
    let path = "/v1beta/models/text-embedding-004:batchEmbedContents";
    let hundred: Vec<Value> = texts(100).iter().map(|t| request(t)).collect();
    let r = google(&emulator, path, json!({"requests": hundred})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let body = r.json();
    assert_eq!(body["embeddings"].as_array().map(Vec::len), Some(100));
    assert_eq!(floats(&body["embeddings"][0]["values"]).len(), 768);
    let mut sized = request("x");
    sized["outputDimensionality"] = json!(32);
    assert_eq!(
        floats(&google(&emulator, path, json!({"requests": [sized]})).await.json()["embeddings"][0]["values"]).len(),
        32
    );

    let over: Vec<Value> = texts(101).iter().map(|t| request(t)).collect();
    let r = google(&emulator, path, json!({"requests": over})).await;
    assert_eq!((r.status.as_u16(), r.json()["error"]["status"].as_str()), (400, Some("INVALID_ARGUMENT")));
    let other = json!({"requests": [{"model": "models/other", "content": {"parts": [{"text": "x"}]}}]});
    assert_eq!(google(&emulator, path, other).await.status, 400, "each request names the model");

    let vertex = "/v1/projects/p/locations/us-central1/publishers/google/models/text-embedding-004:predict";
    let instances: Vec<Value> = texts(250).iter().map(|t| json!({"content": t})).collect();
    let body = google(&emulator, vertex, json!({"instances": instances, "parameters": {"outputDimensionality": 16}}))
        .await
        .json();
    let first = &body["predictions"][0]["embeddings"];
    assert_eq!((floats(&first["values"]).len(), first["statistics"]["token_count"].as_u64()), (16, Some(3)));
    let instances: Vec<Value> = texts(251).iter().map(|t| json!({"content": t})).collect();
    assert_eq!(google(&emulator, vertex, json!({"instances": instances})).await.status, 400);
    // 20,000 tokens a call: 200 texts of 100 tokens (by the emulated tokenizer) are taken,
    // one more refused with Vertex AI's INVALID_ARGUMENT.
    let long = |n: usize| -> Vec<Value> {
        (0..n).map(|i| json!({"content": format!("{i:>4} {}", "a".repeat(391))})).collect()
    };
    let r = google(&emulator, vertex, json!({"instances": long(200)})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = google(&emulator, vertex, json!({"instances": long(201)})).await;
    assert_eq!((r.status.as_u16(), r.json()["error"]["status"].as_str()), (400, Some("INVALID_ARGUMENT")));
    let message = r.json()["error"]["message"].as_str().unwrap_or_default().to_owned();
    assert!(message.contains("input token count is 20100 but the model supports up to 20000"), "{message}");
    // Dimensions beyond what the models make are refused, not allocated.
    for d in [0, 3073, 4_000_000_000u64] {
        let body = json!({"instances": [{"content": "x"}], "parameters": {"outputDimensionality": d}});
        let r = google(&emulator, vertex, body).await;
        assert_eq!((r.status.as_u16(), r.json()["error"]["status"].as_str()), (400, Some("INVALID_ARGUMENT")), "{d}");
    }

    let wrong = [("x-goog-api-key", "nope")];
    let r = send(&emulator, "gem", Method::POST, path, &wrong, json!({"requests": [request("x")]}).to_string())
        .await
        .unwrap();
    assert_eq!(r.status, 401);
}

#[tokio::test(start_paused = true)]
async fn a_text_has_one_vector_whatever_the_api() {
    let emulator = emulator().await;
    let text = "the same text";
    let titan =
        invoke(&emulator, "titan", "amazon.titan-embed-text-v2:0", json!({"inputText": text, "dimensions": 512}))
            .await
            .json();
    let cohere = invoke(&emulator, "cohere", "cohere.embed-english-v3", json!({"texts": [text]})).await.json();
    let gemini_request = json!({"model": "models/text-embedding-004", "content": {"parts": [{"text": text}]}, "outputDimensionality": 512});
    let gemini = google(
        &emulator,
        "/v1beta/models/text-embedding-004:batchEmbedContents",
        json!({"requests": [gemini_request]}),
    )
    .await
    .json();
    let openai = send(
        &emulator,
        "emb",
        Method::POST,
        "/v1/embeddings",
        &[("content-type", "application/json")],
        json!({"model": "text-embedding-3-small", "input": [text], "dimensions": 512}).to_string(),
    )
    .await
    .unwrap()
    .json();
    let reference = floats(&openai["data"][0]["embedding"]);
    assert_eq!(floats(&titan["embedding"]), reference);
    assert_eq!(floats(&gemini["embeddings"][0]["values"]), reference);
    let openai_1024 = send(
        &emulator,
        "emb",
        Method::POST,
        "/v1/embeddings",
        &[("content-type", "application/json")],
        json!({"model": "text-embedding-3-small", "input": text, "dimensions": 1024}).to_string(),
    )
    .await
    .unwrap()
    .json();
    assert_eq!(floats(&cohere["embeddings"][0]), floats(&openai_1024["data"][0]["embedding"]));
}
