//! OCI Generative AI's OpenAI-compatible endpoint with request signing: the emulator verifies
//! each signature with the configured key's public half, answers a signed request as OpenAI
//! does, and refuses a missing, tampered, stale or foreign one with OCI's 401.

use std::time::{Duration, SystemTime};

use http::{Method, Uri};
use serde_json::json;
use switchyard_core::config::{Config, SecretSource};
use switchyard_emulator::{Bind, Emulator};
use switchyard_providers::oci::{Request, Signer};

use crate::support::{Reply, answer_to, send};

const KEY: &str = include_str!("../../../../tests/oci/test_key.pem");
const OTHER_KEY: &str = include_str!("../../../../tests/oci/other_key.pem");
const KEY_ID: &str =
    "ocid1.tenancy.oc1..aaaaaaaatest/ocid1.user.oc1..aaaaaaaauser/ca:76:65:c8:c2:98:f8:05:51:5c:61:4f:63:69:97:9b";
const PATH: &str = "/openai/v1/chat/completions";

const CONFIG: &str = r#"
clouds:
  - name: oci
    protocol: oci-openai
    oci:
      tenancy: ocid1.tenancy.oc1..aaaaaaaatest
      user: ocid1.user.oc1..aaaaaaaauser
      fingerprint: "ca:76:65:c8:c2:98:f8:05:51:5c:61:4f:63:69:97:9b"
      private_key: "env:OCI_KEY"
deployments:
  - name: grok
    cloud: oci
    region: us-chicago-1
    jurisdiction: us
    model: xai.grok-4
    endpoint: http://127.0.0.1:1/openai/v1
    price: { input_per_mtok: 1, output_per_mtok: 2 }
    emulation: { ttft_ms: { fixed: 40 }, tokens_per_s: { fixed: 100 }, answer_tokens: [12, 12] }
aliases:
  - { name: chat, deployments: [grok] }
"#;

struct Keys;
impl SecretSource for Keys {
    fn env(&self, name: &str) -> Option<String> {
        (name == "OCI_KEY").then(|| KEY.to_owned())
    }
    fn file(&self, path: &str) -> Result<String, String> {
        Err(format!("no file {path}"))
    }
}

async fn emulator() -> Emulator {
    let config = Config::from_yaml(CONFIG, &Keys).expect("config");
    Emulator::start(&config, Bind::Memory, None, 7).await.expect("emulator")
}

/// The headers `key` signs `body` with, to the deployment, at `time`.
fn signed(emulator: &Emulator, key: &str, body: &[u8], time: SystemTime) -> Vec<(String, String)> {
    let addr = emulator.deployment("grok").expect("deployment").addr;
    let uri: Uri = format!("http://{addr}{PATH}").parse().expect("uri");
    let signer = Signer::from_pem(KEY_ID.to_owned(), key).expect("a key");
    let request = Request { method: &Method::POST, uri: &uri, content_type: "application/json", body };
    let headers = signer.sign(&request, time).expect("signed");
    headers
        .into_iter()
        .filter(|(name, _)| name != "host") // `send` sets the same host
        .map(|(name, value)| (name.as_str().to_owned(), value.to_str().expect("text").to_owned()))
        .collect()
}

async fn post(emulator: &Emulator, headers: &[(String, String)], body: &[u8]) -> Reply {
    let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    send(emulator, "grok", Method::POST, PATH, &headers, body.to_vec()).await.expect("a response")
}

fn assert_not_authenticated(reply: &Reply, what: &str) {
    assert_eq!(reply.status, 401, "{what}: {:?}", reply.body);
    assert_eq!(
        reply.json(),
        json!({
            "code": "NotAuthenticated",
            "message": "The required information to complete authentication was not provided or was incorrect."
        }),
        "{what}"
    );
}

#[tokio::test]
async fn a_signed_request_is_answered_as_openai_does() {
    let emulator = emulator().await;
    let messages = [json!({"role": "user", "content": "hello"})];
    let body = json!({"model": "xai.grok-4", "messages": messages}).to_string();
    let reply = post(&emulator, &signed(&emulator, KEY, body.as_bytes(), SystemTime::now()), body.as_bytes()).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.json()["choices"][0]["message"]["content"], answer_to(&messages));
}

#[tokio::test]
async fn missing_tampered_stale_and_foreign_signatures_get_ocis_401() {
    let emulator = emulator().await;
    let body = json!({"model": "xai.grok-4", "messages": [{"role": "user", "content": "hello"}]}).to_string();
    let now = SystemTime::now();
    let good = signed(&emulator, KEY, body.as_bytes(), now);
    assert_not_authenticated(&post(&emulator, &[], body.as_bytes()).await, "no signature");
    let tampered = body.replace("hello", "HELLO");
    assert_not_authenticated(&post(&emulator, &good, tampered.as_bytes()).await, "another body");
    let mut resigned = good.clone();
    let (sha, length) = {
        let theirs = signed(&emulator, KEY, tampered.as_bytes(), now);
        let find = |n: &str| theirs.iter().find(|(k, _)| k == n).expect("signed").1.clone();
        (find("x-content-sha256"), find("content-length"))
    };
    for (name, value) in &mut resigned {
        match name.as_str() {
            "x-content-sha256" => *value = sha.clone(),
            "content-length" => *value = length.clone(),
            _ => {}
        }
    }
    assert_not_authenticated(
        &post(&emulator, &resigned, tampered.as_bytes()).await,
        "a digest the signature does not cover",
    );
    let stale = signed(&emulator, KEY, body.as_bytes(), now - Duration::from_secs(6 * 60));
    assert_not_authenticated(&post(&emulator, &stale, body.as_bytes()).await, "a date six minutes old");
    let early = signed(&emulator, KEY, body.as_bytes(), now + Duration::from_secs(6 * 60));
    assert_not_authenticated(&post(&emulator, &early, body.as_bytes()).await, "a date six minutes ahead");
    let foreign = signed(&emulator, OTHER_KEY, body.as_bytes(), now);
    assert_not_authenticated(&post(&emulator, &foreign, body.as_bytes()).await, "another key under the same keyId");
    let bearer = [("authorization".to_owned(), "Bearer sk-anything".to_owned())];
    assert_not_authenticated(&post(&emulator, &bearer, body.as_bytes()).await, "an API key");
    let reply = post(&emulator, &good, body.as_bytes()).await;
    assert_eq!(reply.status, 200, "the good signature still passes: {:?}", reply.body);
}
