//! `/v1/embeddings` on every protocol that makes them, through the emulator: Bedrock's Titan
//! (one input per call) and Cohere Embed (96 per call) with SigV4, the Gemini API (100 per
//! call), OpenAI's and Azure OpenAI's (both URL styles) passed through. The emulator refuses a
//! batch over an API's limit with that API's own 400, so the call counts here prove the
//! batching; it gives the same text the same vector whatever the protocol, so an answer is
//! checked against OpenAI's. A failing embeddings deployment fails over to another protocol,
//! and what an API cannot take is a 400 naming the parameter, with nothing sent.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use switchyard_core::config::SecretSource;
use switchyard_emulator::Seen;

use crate::support::*;

const CONFIG: &str = r#"
server:
  timeouts: { connect_ms: 500, first_byte_ms: 3000, first_token_ms: 3000, stream_idle_ms: 2000, request_ms: 8000 }
  retry_after_cap_ms: 300
clouds:
  - { name: aws, protocol: bedrock, aws: { access_key_id: "env:AWS_ACCESS_KEY_ID", secret_access_key: "env:AWS_SECRET_ACCESS_KEY" } }
  - { name: google, protocol: gemini, api_key: "env:GEMINI_API_KEY" }
  - { name: vertex, protocol: gemini, bearer_token: "env:GOOGLE_TOKEN" }
  - { name: oai, protocol: openai }
  - { name: azure, protocol: azure-openai, api_key: "env:AZURE_OPENAI_API_KEY" }
deployments:
  - name: titan
    cloud: aws
    kind: embeddings
    region: us-east-1
    jurisdiction: us
    model: amazon.titan-embed-text-v2:0
    endpoint: https://bedrock-runtime.us-east-1.amazonaws.com
    price: { input_per_mtok: 0.02 }
  - name: cohere
    cloud: aws
    kind: embeddings
    region: us-east-1
    jurisdiction: us
    model: cohere.embed-english-v3
    endpoint: https://bedrock-runtime.us-east-1.amazonaws.com
    price: { input_per_mtok: 0.1 }
  - name: gem
    cloud: google
    kind: embeddings
    region: global
    jurisdiction: us
    model: gemini-embedding-001
    endpoint: https://generativelanguage.googleapis.com/v1beta
    price: { input_per_mtok: 0.15 }
  - name: vx
    cloud: vertex
    kind: embeddings
    region: us-central1
    jurisdiction: us
    model: text-embedding-005
    endpoint: https://us-central1-aiplatform.googleapis.com/v1/projects/p/locations/us-central1/publishers/google
    price: { input_per_mtok: 0.025 }
  - name: oa
    cloud: oai
    kind: embeddings
    region: us
    jurisdiction: us
    model: text-embedding-3-small
    endpoint: https://api.openai.com/v1
    price: { input_per_mtok: 0.02 }
  - name: az
    cloud: azure
    kind: embeddings
    region: eastus
    jurisdiction: us
    model: embed-prod
    endpoint: https://contoso.openai.azure.com
    price: { input_per_mtok: 0.02 }
  - name: az1
    cloud: azure
    kind: embeddings
    region: eastus2
    jurisdiction: us
    model: text-embedding-3-small
    endpoint: https://contoso.openai.azure.com/openai/v1
    price: { input_per_mtok: 0.02 }
aliases:
  - { name: titan, policy: priority, deployments: [titan] }
  - { name: cohere, policy: priority, deployments: [cohere] }
  - { name: gemini, policy: priority, deployments: [gem] }
  - { name: vertex, policy: priority, deployments: [vx] }
  - { name: openai, policy: priority, deployments: [oa] }
  - { name: azure, policy: priority, deployments: [az] }
  - { name: azure-v1, policy: priority, deployments: [az1] }
  - { name: cohere-gemini, policy: priority, deployments: [cohere, gem] }
  - { name: titan-openai, policy: priority, deployments: [titan, oa] }
tenants:
  - { name: global, keys: ["KEYHASH"], jurisdictions: [us], aliases: ["*"] }
"#;

struct Secrets(BTreeMap<&'static str, &'static str>);

impl SecretSource for Secrets {
    fn env(&self, name: &str) -> Option<String> {
        self.0.get(name).map(|v| (*v).to_owned())
    }

    fn file(&self, path: &str) -> Result<String, String> {
        Err(format!("no file {path}"))
    }
}

fn issued() -> Secrets {
    Secrets(BTreeMap::from([
        ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
        ("GEMINI_API_KEY", "AIza-issued"),
        ("GOOGLE_TOKEN", "ya29.issued"),
        ("AZURE_OPENAI_API_KEY", "azure-resource-key"),
    ]))
}

async fn harness() -> Harness {
    let config = CONFIG.replace("KEYHASH", &switchyard_core::config::key_hash_text(KEY));
    Harness::memory_with_secrets(&config, &issued(), &issued()).await
}

async fn embed(h: &Harness, body: Value) -> Reply {
    h.post("/v1/embeddings", Some(KEY), body.to_string()).await
}

fn texts(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("document number {i} of the corpus")).collect()
}

/// The vectors of an answer, in its `data` order, after checking each item's index is its place.
fn vectors(r: &Reply) -> Vec<Vec<f32>> {
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["object"], "list", "{}", r.body);
    let data = r.body["data"].as_array().expect("data");
    data.iter()
        .enumerate()
        .map(|(i, item)| {
            assert_eq!((item["index"].as_u64(), item["object"].as_str()), (Some(i as u64), Some("embedding")));
            match &item["embedding"] {
                Value::String(encoded) => {
                    let bytes = STANDARD.decode(encoded).expect("base64");
                    bytes.chunks(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
                }
                values => {
                    values.as_array().expect("an array").iter().map(|v| v.as_f64().expect("a number") as f32).collect()
                }
            }
        })
        .collect()
}

/// What OpenAI's emulated deployment answers for `inputs` at `dimensions`: the reference.
async fn reference(h: &Harness, inputs: &[String], dimensions: u32) -> Vec<Vec<f32>> {
    let r = embed(h, json!({"model": "openai", "input": inputs, "dimensions": dimensions})).await;
    vectors(&r)
}

/// The project's estimate of `inputs`' tokens: the usage when the API counts none.
fn estimated(inputs: &[String]) -> u64 {
    inputs.iter().map(|t| u64::from(switchyard_wire::estimate_tokens(t))).sum()
}

/// What an emulated API that counts tokens counts (the emulated tokenizer: the estimate and
/// one per input), so an answer's usage shows whose count it is.
fn counted(inputs: &[String]) -> u64 {
    estimated(inputs) + inputs.len() as u64
}

#[tokio::test(start_paused = true)]
async fn titan_is_called_once_per_input_and_answers_in_order() {
    let h = harness().await;
    let inputs = texts(5);
    let r = embed(&h, json!({"model": "titan", "input": inputs, "dimensions": 256})).await;
    let got = vectors(&r);
    assert_eq!(header(&r.headers, "x-switchyard-deployment"), "titan");
    assert_eq!(r.body["model"], "amazon.titan-embed-text-v2:0");
    assert_eq!(h.seen("titan", Seen::Completed), 5, "one InvokeModel per input, each signed");
    assert_eq!(h.requests("titan"), 5);
    assert_eq!(got, reference(&h, &inputs, 256).await, "the same vectors, in input order");
    // Titan counts each input's tokens; the sum is the usage.
    assert_eq!(r.body["usage"], json!({"prompt_tokens": counted(&inputs), "total_tokens": counted(&inputs)}));

    // One string is one input; 1024 dimensions by default.
    let one = embed(&h, json!({"model": "titan", "input": "a single text"})).await;
    assert_eq!(vectors(&one).iter().map(Vec::len).collect::<Vec<_>>(), [1024]);
}

/// A batch longer than `first_byte_ms`: its first byte is its first call's answer, so it is
/// not cut, and its calls run eight at a time.
#[tokio::test(start_paused = true)]
async fn a_batch_longer_than_the_first_byte_timeout_is_answered() {
    let config = CONFIG
        .replace("KEYHASH", &switchyard_core::config::key_hash_text(KEY))
        .replace("first_byte_ms: 3000", "first_byte_ms: 250")
        .replace(
            "model: amazon.titan-embed-text-v2:0\n",
            "model: amazon.titan-embed-text-v2:0\n    emulation: { ttft_ms: { fixed: 100 } }\n",
        );
    let h = Harness::memory_with_secrets(&config, &issued(), &issued()).await;
    let inputs = texts(40);
    let r = embed(&h, json!({"model": "titan", "input": inputs, "dimensions": 256})).await;
    assert_eq!(vectors(&r).len(), 40);
    assert_eq!(h.seen("titan", Seen::Completed), 40);
    assert_eq!(r.elapsed, std::time::Duration::from_millis(500), "five rounds of eight calls of 100 ms");
    assert_eq!(header(&r.headers, "x-switchyard-attempts"), "1");
}

#[tokio::test(start_paused = true)]
async fn cohere_takes_200_inputs_in_three_calls() {
    let h = harness().await;
    let inputs = texts(200);
    let r = embed(&h, json!({"model": "cohere", "input": inputs})).await;
    let got = vectors(&r);
    assert_eq!(got.len(), 200);
    assert_eq!(h.seen("cohere", Seen::Completed), 3, "96 + 96 + 8 texts");
    assert_eq!(h.seen("cohere", Seen::BadRequest), 0, "no call over the limit of 96");
    let sample: Vec<String> = [0, 95, 96, 150, 199].iter().map(|&i| inputs[i].clone()).collect();
    let expected = reference(&h, &sample, 1024).await;
    for (k, &i) in [0, 95, 96, 150, 199].iter().enumerate() {
        assert_eq!(got[i], expected[k], "input {i}");
    }
    // Counted by Bedrock's token-count header, summed over the calls.
    assert_eq!(r.body["usage"]["prompt_tokens"].as_u64(), Some(counted(&inputs)));
}

#[tokio::test(start_paused = true)]
async fn gemini_takes_150_inputs_in_two_calls_in_floats_and_base64() {
    let h = harness().await;
    let inputs = texts(150);
    let floats = embed(&h, json!({"model": "gemini", "input": inputs, "dimensions": 64})).await;
    assert_eq!(h.seen("gem", Seen::Completed), 2, "100 + 50 requests");
    let got = vectors(&floats);
    assert!(got.iter().all(|v| v.len() == 64), "outputDimensionality honoured");
    assert_eq!(got, reference(&h, &inputs, 64).await);
    // Gemini reports no usage: the estimate is summed.
    assert_eq!(floats.body["usage"]["total_tokens"].as_u64(), Some(estimated(&inputs)));

    let encoded =
        embed(&h, json!({"model": "gemini", "input": inputs, "dimensions": 64, "encoding_format": "base64"})).await;
    assert!(encoded.body["data"][0]["embedding"].is_string(), "base64 written by the gateway");
    assert_eq!(vectors(&encoded), got);
    assert_eq!(h.seen("gem", Seen::Completed), 4);
}

#[tokio::test(start_paused = true)]
async fn vertex_takes_300_inputs_in_two_predict_calls_with_its_counts() {
    let h = harness().await;
    let inputs = texts(300);
    let r = embed(&h, json!({"model": "vertex", "input": inputs, "dimensions": 32})).await;
    let got = vectors(&r);
    assert_eq!(h.seen("vx", Seen::Completed), 2, "250 + 50 instances");
    assert_eq!(got, reference(&h, &inputs, 32).await);
    // Counted by Vertex AI (statistics.token_count), summed.
    assert_eq!(r.body["usage"]["prompt_tokens"].as_u64(), Some(counted(&inputs)));
}

/// 250 inputs of 200 tokens are 50,000 tokens, and Vertex AI takes 20,000 a call: they go in
/// four calls (80, 80, 80 and 10), none of them refused. (The gateway holds a whole
/// embeddings request to the deployment's context window, 8192 unless configured: this one's
/// is set above the request's 50,000.)
#[tokio::test(start_paused = true)]
async fn vertex_takes_250_long_inputs_in_calls_under_its_token_limit() {
    let config = CONFIG.replace("KEYHASH", &switchyard_core::config::key_hash_text(KEY)).replace(
        "model: text-embedding-005\n",
        "model: text-embedding-005\n    capabilities: { context_window: 65536 }\n",
    );
    let h = Harness::memory_with_secrets(&config, &issued(), &issued()).await;
    let inputs: Vec<String> = (0..250).map(|i| format!("{i:>4} {}", "word ".repeat(159))).collect();
    let r = embed(&h, json!({"model": "vertex", "input": inputs, "dimensions": 8})).await;
    assert_eq!(vectors(&r).len(), 250);
    assert_eq!(h.seen("vx", Seen::BadRequest), 0, "no call over 20,000 tokens");
    assert_eq!(h.seen("vx", Seen::Completed), 4);
    assert_eq!(r.body["usage"]["prompt_tokens"].as_u64(), Some(counted(&inputs)));
}

/// Some calls of a batch failing (a fault plan's 503 on a share of them) are each made once
/// more within the attempt: the batch is answered whole by its deployment.
#[tokio::test(start_paused = true)]
async fn calls_that_fail_now_and_then_are_made_again_within_the_attempt() {
    let h = harness().await;
    h.faults("titan", r#"[{"kind": "error", "status": 503, "rate": 0.2}]"#);
    let inputs = texts(16);
    let r = embed(&h, json!({"model": "titan-openai", "input": inputs, "dimensions": 256})).await;
    assert_eq!(header(&r.headers, "x-switchyard-deployment"), "titan", "{}", r.body["error"]);
    assert_eq!(header(&r.headers, "x-switchyard-attempts"), "1");
    let failed = h.seen("titan", Seen::ErrorStatus(503));
    assert!(failed > 0, "some calls failed");
    assert_eq!(h.seen("titan", Seen::Completed), 16);
    assert_eq!(h.requests("titan"), 16 + failed, "each failed call made once more");
    assert_eq!(vectors(&r), reference(&h, &inputs, 256).await);
}

#[tokio::test(start_paused = true)]
async fn a_failing_embeddings_deployment_fails_over_to_another_protocol() {
    let h = harness().await;
    let inputs = texts(3);
    h.faults("cohere", r#"[{"kind": "outage"}]"#);
    let r = embed(&h, json!({"model": "cohere-gemini", "input": inputs, "dimensions": 1024})).await;
    assert_eq!(header(&r.headers, "x-switchyard-deployment"), "gem", "{}", r.body);
    assert_eq!(header(&r.headers, "x-switchyard-attempts"), "2");
    assert_eq!(h.seen("cohere", Seen::ConnectionReset), 1);
    assert_eq!(vectors(&r), reference(&h, &inputs, 1024).await, "the same vectors the other cloud gives");

    // A 500 from Bedrock: the call made once more in each attempt, the attempt retried once
    // there, then the next deployment.
    h.faults("cohere", r#"[{"kind": "error", "status": 500}]"#);
    let r = embed(&h, json!({"model": "cohere-gemini", "input": inputs, "dimensions": 1024})).await;
    assert_eq!(header(&r.headers, "x-switchyard-deployment"), "gem", "{}", r.body);
    assert_eq!(h.seen("cohere", Seen::ErrorStatus(500)), 4);
    assert_eq!(vectors(&r), reference(&h, &inputs, 1024).await);
}

#[tokio::test(start_paused = true)]
async fn what_an_api_cannot_take_is_a_400_naming_it_and_nothing_is_sent() {
    let h = harness().await;
    let tokens = embed(&h, json!({"model": "titan", "input": [[1, 2, 3], [4]]})).await;
    assert_eq!(tokens.status, 400, "{}", tokens.body);
    let message = tokens.body["error"]["message"].as_str().expect("a message");
    assert!(message.contains("'input'") && message.contains("Titan"), "{message}");
    let dimensions = embed(&h, json!({"model": "titan", "input": "x", "dimensions": 300})).await;
    assert_eq!(dimensions.status, 400, "{}", dimensions.body);
    assert!(dimensions.body["error"]["message"].as_str().is_some_and(|m| m.contains("'dimensions'")));
    let unknown = embed(&h, json!({"model": "gemini", "input": "x", "input_type": "query"})).await;
    assert_eq!(unknown.status, 400, "{}", unknown.body);
    assert!(unknown.body["error"]["message"].as_str().is_some_and(|m| m.contains("'input_type'")));
    let many = embed(&h, json!({"model": "gemini", "input": vec!["x"; 2049]})).await;
    assert_eq!(many.status, 400, "{}", many.body);
    assert!(many.body["error"]["message"].as_str().is_some_and(|m| m.contains("'input'") && m.contains("2048")));
    let wide = embed(&h, json!({"model": "vertex", "input": "x", "dimensions": 4_000_000_000u64})).await;
    assert_eq!(wide.status, 400, "{}", wide.body);
    assert!(wide.body["error"]["message"].as_str().is_some_and(|m| m.contains("'dimensions'")));
    assert_eq!((h.requests("titan"), h.requests("gem"), h.requests("vx")), (0, 0, 0), "nothing sent");
    // OpenAI's own deployment takes token arrays as they are; planned past Titan, which
    // cannot, in an alias of both.
    let passed = embed(&h, json!({"model": "titan-openai", "input": [[1, 2, 3], [4]]})).await;
    assert_eq!(vectors(&passed).len(), 2);
    assert_eq!(header(&passed.headers, "x-switchyard-deployment"), "oa");
    assert_eq!(h.requests("titan"), 0, "nothing sent");

    // A call refused mid-batch (Titan takes no empty text) is the whole request's answer.
    let refused = embed(&h, json!({"model": "titan", "input": ["one", "", "three"]})).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(refused.body["error"]["message"].as_str().is_some_and(|m| m.contains("inputText")), "{}", refused.body);
    assert_eq!(h.seen("titan", Seen::BadRequest), 1);
}

#[tokio::test(start_paused = true)]
async fn azure_embeddings_work_at_both_url_styles() {
    let h = harness().await;
    let inputs = texts(2);
    for (alias, deployment) in [("azure", "az"), ("azure-v1", "az1")] {
        let r = embed(&h, json!({"model": alias, "input": inputs, "dimensions": 16})).await;
        assert_eq!(header(&r.headers, "x-switchyard-deployment"), deployment);
        assert_eq!(vectors(&r), reference(&h, &inputs, 16).await, "{alias}");
        assert_eq!(h.seen(deployment, Seen::Completed), 1, "{alias}: its key and URL checked out");
    }
}
