//! The emulator under test: one deployment per protocol (and one embeddings deployment),
//! reached over in-memory pipes, with requests sent by hyper's client.

use std::collections::BTreeMap;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use switchyard_core::config::emulation::faults_from_raw;
use switchyard_core::config::raw::RawFault;
use switchyard_core::config::{Config, SecretSource};
use switchyard_emulator::{Bind, Emulator, answer_tokens, conversation_key};

pub(crate) const OPENAI_KEY: &str = "sk-openai";
pub(crate) const ANTHROPIC_KEY: &str = "sk-ant";
pub(crate) const BEDROCK_KEY: &str = "bedrock-api-key";
pub(crate) const AWS_KEY_ID: &str = "AKIDEMULATOR";
pub(crate) const AWS_SECRET: &str = "emulator/secret/key";
pub(crate) const AZURE_KEY: &str = "azure-resource-key";
pub(crate) const ENTRA_TOKEN: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.entra";
pub(crate) const GEMINI_KEY: &str = "AIzaSy-emulator";
pub(crate) const GOOGLE_TOKEN: &str = "ya29.emulator-token";
pub(crate) const SA_PEM: &str = include_str!("../../../../tests/oci/test_key.pem");

/// A service account's JSON key whose token URI is deployment `gemini-sa` (the 11th: in
/// memory, 127.0.0.1:11).
pub(crate) fn service_account_key() -> String {
    serde_json::json!({"type": "service_account", "project_id": "p", "private_key_id": "kid-1",
        "private_key": SA_PEM, "client_email": "gateway@p.iam.gserviceaccount.com",
        "token_uri": "http://127.0.0.1:11/token"})
    .to_string()
}

const CONFIG: &str = r#"
clouds:
  - { name: oa, protocol: openai }
  - { name: an, protocol: anthropic, api_key: "env:ANTHROPIC_KEY" }
  - { name: aws, protocol: bedrock, aws: { access_key_id: "env:AWS_KEY_ID", secret_access_key: "env:AWS_SECRET" } }
  - { name: brk, protocol: bedrock, api_key: "env:BEDROCK_KEY" }
  - { name: az, protocol: azure-openai, api_key: "env:AZURE_KEY" }
  - { name: az-entra, protocol: azure-openai, entra_token: "env:ENTRA_TOKEN" }
  - { name: gem, protocol: gemini, api_key: "env:GEMINI_KEY" }
  - { name: vertex, protocol: gemini, bearer_token: "env:GOOGLE_TOKEN" }
  - { name: gsa, protocol: gemini, service_account: "env:GOOGLE_SA" }
deployments:
  - name: gpt
    cloud: oa
    region: r1
    jurisdiction: us
    model: gpt-4o
    endpoint: http://127.0.0.1:1/v1
    price: { input_per_mtok: 1, output_per_mtok: 2 }
    capabilities: { context_window: 4096, tools: true }
    emulation: { ttft_ms: { fixed: 40 }, tokens_per_s: { fixed: 100 }, answer_tokens: [12, 12], api_key: "env:OPENAI_KEY" }
  - name: claude
    cloud: an
    region: r1
    jurisdiction: us
    model: claude-sonnet-4
    endpoint: http://127.0.0.1:2/v1
    price: { input_per_mtok: 1, output_per_mtok: 2 }
    capabilities: { context_window: 4096, tools: true, prefill: true }
    emulation: { ttft_ms: { fixed: 40 }, tokens_per_s: { fixed: 100 }, answer_tokens: [12, 12], max_concurrency: 1 }
  - name: llama
    cloud: aws
    region: us-east-1
    jurisdiction: us
    model: us.meta.llama3-3-70b-instruct-v1:0
    endpoint: http://127.0.0.1:3
    price: { input_per_mtok: 1, output_per_mtok: 2 }
    capabilities: { context_window: 4096, tools: true }
    emulation: { ttft_ms: { fixed: 40 }, tokens_per_s: { fixed: 100 }, answer_tokens: [12, 12], max_concurrency: 1 }
  - name: nova
    cloud: brk
    region: us-west-2
    jurisdiction: us
    model: amazon.nova-pro-v1:0
    endpoint: http://127.0.0.1:4
    price: { input_per_mtok: 1, output_per_mtok: 2 }
    emulation: { ttft_ms: { fixed: 40 }, tokens_per_s: { fixed: 100 }, answer_tokens: [12, 12] }
  - name: emb
    cloud: oa
    region: r1
    jurisdiction: us
    model: text-embedding-3-small
    kind: embeddings
    endpoint: http://127.0.0.1:5/v1
    price: { input_per_mtok: 1 }
  - name: gpt-4o-sweden
    cloud: az
    region: swedencentral
    jurisdiction: eu
    model: gpt-4o-prod
    endpoint: http://127.0.0.1:6
    price: { input_per_mtok: 1, output_per_mtok: 2 }
    capabilities: { context_window: 4096, tools: true }
    emulation: { ttft_ms: { fixed: 40 }, tokens_per_s: { fixed: 100 }, answer_tokens: [12, 12], max_concurrency: 1 }
  - name: embed-sweden
    cloud: az
    region: swedencentral
    jurisdiction: eu
    model: text-embedding-3-small
    kind: embeddings
    endpoint: http://127.0.0.1:7/openai/v1
    price: { input_per_mtok: 1 }
  - name: gpt-4o-entra
    cloud: az-entra
    region: eastus
    jurisdiction: us
    model: gpt-4o-entra
    endpoint: http://127.0.0.1:8
    price: { input_per_mtok: 1, output_per_mtok: 2 }
    emulation: { ttft_ms: { fixed: 40 }, tokens_per_s: { fixed: 100 }, answer_tokens: [12, 12] }
  - name: gemini-flash
    cloud: gem
    region: global
    jurisdiction: us
    model: gemini-2.5-flash
    endpoint: http://127.0.0.1:9/v1beta
    price: { input_per_mtok: 1, output_per_mtok: 2 }
    capabilities: { context_window: 4096, tools: true }
    emulation: { ttft_ms: { fixed: 40 }, tokens_per_s: { fixed: 100 }, answer_tokens: [12, 12], max_concurrency: 1 }
  - name: gemini-vertex
    cloud: vertex
    region: us-central1
    jurisdiction: us
    model: gemini-2.5-pro
    endpoint: http://127.0.0.1:10/v1/projects/p/locations/us-central1/publishers/google
    price: { input_per_mtok: 1, output_per_mtok: 2 }
    emulation: { ttft_ms: { fixed: 40 }, tokens_per_s: { fixed: 100 }, answer_tokens: [12, 12] }
  - name: gemini-sa
    cloud: gsa
    region: us-central1
    jurisdiction: us
    model: gemini-2.5-pro
    endpoint: http://127.0.0.1:11/v1/projects/p/locations/us-central1/publishers/google
    price: { input_per_mtok: 1, output_per_mtok: 2 }
    emulation: { ttft_ms: { fixed: 40 }, tokens_per_s: { fixed: 100 }, answer_tokens: [12, 12] }
aliases:
  - { name: chat, deployments: [gpt, claude, llama, nova] }
  - { name: azure, deployments: [gpt-4o-sweden, gpt-4o-entra] }
  - { name: azure-embed, deployments: [embed-sweden] }
  - { name: embed, deployments: [emb] }
"#;

struct Secrets;

impl SecretSource for Secrets {
    fn env(&self, name: &str) -> Option<String> {
        let value = match name {
            "OPENAI_KEY" => OPENAI_KEY,
            "ANTHROPIC_KEY" => ANTHROPIC_KEY,
            "BEDROCK_KEY" => BEDROCK_KEY,
            "AWS_KEY_ID" => AWS_KEY_ID,
            "AWS_SECRET" => AWS_SECRET,
            "AZURE_KEY" => AZURE_KEY,
            "ENTRA_TOKEN" => ENTRA_TOKEN,
            "GEMINI_KEY" => GEMINI_KEY,
            "GOOGLE_TOKEN" => GOOGLE_TOKEN,
            "GOOGLE_SA" => return Some(service_account_key()),
            _ => return None,
        };
        Some(value.to_owned())
    }

    fn file(&self, path: &str) -> Result<String, String> {
        Err(format!("no file {path}"))
    }
}

pub(crate) async fn emulator() -> Emulator {
    let config = Config::from_yaml(CONFIG, &Secrets).expect("config");
    Emulator::start(&config, Bind::Memory, None, 7).await.expect("emulator")
}

/// What came back.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Reply {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }

    pub(crate) fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }
}

/// A request to deployment `name`, over a fresh in-memory connection. `Err` when the
/// connection ends without a whole response (a reset, a cut stream).
pub(crate) async fn send(
    emulator: &Emulator,
    name: &str,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Result<Reply, String> {
    let dep = emulator.deployment(name).expect("deployment");
    let uri: http::Uri = format!("http://{}{path}", dep.addr).parse().expect("uri");
    let pipe = emulator.dialer().connect(&uri).map_err(|e| e.to_string())?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(pipe)).await.map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let mut request = Request::builder().method(method).uri(path).header("host", dep.addr.to_string());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Full::new(body.into())).expect("request");
    let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok(Reply { status: parts.status, headers: parts.headers, body })
}

/// Replaces a deployment's faults with these (the config's JSON shape).
pub(crate) fn faults(emulator: &Emulator, name: &str, json: &str) {
    let raw: Vec<RawFault> = serde_json::from_str(json).expect("faults");
    emulator.set_faults(name, faults_from_raw(&raw, "faults").expect("valid faults")).expect("deployment");
}

/// The emulator's full answer to these OpenAI messages.
pub(crate) fn answer_to(messages: &[Value]) -> String {
    answer_tokens(conversation_key(messages), (12, 12)).concat()
}

/// Standard base64, decoded.
pub(crate) fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let mut out = Vec::new();
    for chunk in text.as_bytes().chunks(4) {
        let digits: Vec<u8> = chunk.iter().copied().filter(|c| *c != b'=').map(value).collect();
        let n = digits.iter().enumerate().fold(0u32, |n, (i, d)| n | (u32::from(*d) << (18 - 6 * i)));
        out.extend(n.to_be_bytes()[1..digits.len()].iter());
    }
    out
}

/// Counts of what a deployment saw, by outcome name.
pub(crate) fn seen(emulator: &Emulator, name: &str) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for r in emulator.deployment(name).expect("deployment").records() {
        *counts.entry(format!("{:?}", r.outcome)).or_insert(0) += 1;
    }
    counts
}
