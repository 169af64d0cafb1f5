//! Embeddings deployments are passed over by their own model's API, not their protocol's: in
//! an alias of two Bedrock models, one of which does not offer the `dimensions` asked for, the
//! other answers (the planner is told which deployment cannot take the request); when none
//! can, the first one's refusal is the caller's 400, with nothing sent.

use std::collections::BTreeMap;

use serde_json::json;
use switchyard_core::config::SecretSource;

use crate::support::*;

const CONFIG: &str = r#"
server:
  timeouts: { connect_ms: 500, first_byte_ms: 3000, first_token_ms: 3000, stream_idle_ms: 2000, request_ms: 8000 }
clouds:
  - { name: aws, protocol: bedrock, aws: { access_key_id: "env:AWS_ACCESS_KEY_ID", secret_access_key: "env:AWS_SECRET_ACCESS_KEY" } }
deployments:
  - name: cohere
    cloud: aws
    kind: embeddings
    region: us-east-1
    jurisdiction: us
    model: cohere.embed-english-v3
    endpoint: https://bedrock-runtime.us-east-1.amazonaws.com
    price: { input_per_mtok: 0.1 }
  - name: titan
    cloud: aws
    kind: embeddings
    region: us-east-1
    jurisdiction: us
    model: amazon.titan-embed-text-v2:0
    endpoint: https://bedrock-runtime.us-east-1.amazonaws.com
    price: { input_per_mtok: 0.02 }
aliases:
  - { name: bedrock, policy: priority, deployments: [cohere, titan] }
tenants:
  - { name: global, keys: ["KEYHASH"], jurisdictions: [us], aliases: ["*"] }
"#;

struct Secrets;

impl SecretSource for Secrets {
    fn env(&self, name: &str) -> Option<String> {
        let issued = BTreeMap::from([
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
        ]);
        issued.get(name).map(|v| (*v).to_owned())
    }
    fn file(&self, path: &str) -> Result<String, String> {
        Err(format!("no file {path}"))
    }
}

#[tokio::test(start_paused = true)]
async fn a_model_that_cannot_take_the_request_is_passed_over_for_one_of_its_protocol_that_can() {
    let config = CONFIG.replace("KEYHASH", &switchyard_core::config::key_hash_text(KEY));
    let h = Harness::memory_with_secrets(&config, &Secrets, &Secrets).await;
    // Cohere Embed v3 makes 1024 dimensions only; Titan v2 makes 256 too.
    let body = json!({"model": "bedrock", "input": ["one", "two"], "dimensions": 256});
    let r = h.post("/v1/embeddings", Some(KEY), body.to_string()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(header(&r.headers, "x-switchyard-deployment"), "titan");
    assert_eq!(r.body["data"][0]["embedding"].as_array().map(Vec::len), Some(256));
    assert_eq!(h.requests("cohere"), 0, "nothing sent to the model that cannot take it");
    // Cohere's own size goes to Cohere, first in the alias.
    let body = json!({"model": "bedrock", "input": ["one"], "dimensions": 1024});
    let r = h.post("/v1/embeddings", Some(KEY), body.to_string()).await;
    assert_eq!((r.status, header(&r.headers, "x-switchyard-deployment")), (200, "cohere"), "{}", r.body);
    // Neither makes 100: the first one's refusal, naming the parameter.
    let body = json!({"model": "bedrock", "input": ["one"], "dimensions": 100});
    let r = h.post("/v1/embeddings", Some(KEY), body.to_string()).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "unsupported_parameter", "{}", r.body);
    assert!(r.body["error"]["message"].as_str().is_some_and(|m| m.contains("'dimensions'")), "{}", r.body);
    assert_eq!(
        h.requests("cohere") + h.requests("titan"),
        3,
        "nothing sent for it (two Titan calls and one Cohere before)"
    );
}

/// A model's context window holds each input, not all of them: inputs that fit one by one are
/// embedded however many there are; one that does not fit has no route.
#[tokio::test(start_paused = true)]
async fn the_context_window_holds_the_longest_input_not_all_of_them() {
    let config = CONFIG.replace("KEYHASH", &switchyard_core::config::key_hash_text(KEY));
    let h = Harness::memory_with_secrets(&config, &Secrets, &Secrets).await;
    let long = "capacity ".repeat(2_000);
    let body = json!({"model": "bedrock", "input": [long, long, long, long, long]});
    let r = h.post("/v1/embeddings", Some(KEY), body.to_string()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"].as_array().map(Vec::len), Some(5));
    let too_long = "capacity ".repeat(20_000);
    let r = h.post("/v1/embeddings", Some(KEY), json!({"model": "bedrock", "input": [too_long]}).to_string()).await;
    assert_eq!(r.status, 400, "{}", r.body);
}
