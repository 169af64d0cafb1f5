//! OCI Generative AI's native API: `ChatDetails` at `/20231130/actions/chat` in both formats,
//! signed with an API signing key (verified) or sent with an API key, answers and streams in
//! the format asked, tool calls, and refusals in OCI's `{"code", "message"}`; `embedText` with
//! its limit of 96 inputs.

use std::time::SystemTime;

use http::{Method, Uri};
use serde_json::{Value, json};
use switchyard_core::config::{Config, SecretSource};
use switchyard_emulator::{Bind, Emulator};
use switchyard_providers::oci::{Request, Signer};
use switchyard_wire::canonical::{BlockKind, ErrorClass, FinishReason, StreamEvent};
use switchyard_wire::oci_codec;

use crate::support::{Reply, answer_to, faults, send};

const KEY: &str = include_str!("../../../../tests/oci/test_key.pem");
const KEY_ID: &str =
    "ocid1.tenancy.oc1..aaaaaaaatest/ocid1.user.oc1..aaaaaaaauser/ca:76:65:c8:c2:98:f8:05:51:5c:61:4f:63:69:97:9b";
const CHAT: &str = "/20231130/actions/chat";
const COMPARTMENT: &str = "ocid1.compartment.oc1..aaaaaaaagenai";
const LLAMA: &str = "meta.llama-3.3-70b-instruct";
const COHERE: &str = "cohere.command-r-plus-08-2024";

const CONFIG: &str = r#"
clouds:
  - name: oci-signed
    protocol: oci
    oci:
      tenancy: ocid1.tenancy.oc1..aaaaaaaatest
      user: ocid1.user.oc1..aaaaaaaauser
      fingerprint: "ca:76:65:c8:c2:98:f8:05:51:5c:61:4f:63:69:97:9b"
      private_key: "env:OCI_KEY"
      compartment: ocid1.compartment.oc1..aaaaaaaagenai
  - name: oci-keyed
    protocol: oci
    api_key: "env:OCI_API_KEY"
    compartment: ocid1.compartment.oc1..aaaaaaaagenai
deployments:
  - name: llama
    cloud: oci-signed
    region: us-chicago-1
    jurisdiction: us
    model: meta.llama-3.3-70b-instruct
    endpoint: http://127.0.0.1:1
    price: { input_per_mtok: 1, output_per_mtok: 2 }
    capabilities: { context_window: 4096, tools: true }
    emulation: { ttft_ms: { fixed: 40 }, tokens_per_s: { fixed: 100 }, answer_tokens: [12, 12] }
  - name: command
    cloud: oci-keyed
    region: us-chicago-1
    jurisdiction: us
    model: cohere.command-r-plus-08-2024
    endpoint: http://127.0.0.1:2
    price: { input_per_mtok: 1, output_per_mtok: 2 }
    capabilities: { context_window: 4096, tools: true }
    emulation: { ttft_ms: { fixed: 40 }, tokens_per_s: { fixed: 100 }, answer_tokens: [12, 12] }
  - name: embed
    cloud: oci-keyed
    kind: embeddings
    region: us-chicago-1
    jurisdiction: us
    model: cohere.embed-english-v3.0
    endpoint: http://127.0.0.1:3
    price: { input_per_mtok: 0.1 }
aliases:
  - { name: chat, deployments: [llama, command] }
  - { name: vectors, deployments: [embed] }
"#;

struct Keys;
impl SecretSource for Keys {
    fn env(&self, name: &str) -> Option<String> {
        match name {
            "OCI_KEY" => Some(KEY.to_owned()),
            "OCI_API_KEY" => Some("sk-oci-native".to_owned()),
            _ => None,
        }
    }
    fn file(&self, path: &str) -> Result<String, String> {
        Err(format!("no file {path}"))
    }
}

async fn emulator() -> Emulator {
    let config = Config::from_yaml(CONFIG, &Keys).expect("config");
    Emulator::start(&config, Bind::Memory, None, 7).await.expect("emulator")
}

/// `ChatDetails` for `model` with a `chatRequest`.
fn details(model: &str, chat: Value) -> Vec<u8> {
    oci_codec::chat_details(COMPARTMENT, model, chat).to_string().into_bytes()
}

fn generic(text: &str) -> Value {
    json!({"apiFormat": "GENERIC", "messages": [{"role": "USER", "content": [{"type": "TEXT", "text": text}]}]})
}

fn cohere(text: &str) -> Value {
    json!({"apiFormat": "COHERE", "message": text})
}

/// A request to the signed llama deployment, signed now.
async fn signed_post(emulator: &Emulator, body: &[u8]) -> Reply {
    let addr = emulator.deployment("llama").expect("deployment").addr;
    let uri: Uri = format!("http://{addr}{CHAT}").parse().expect("uri");
    let signer = Signer::from_pem(KEY_ID.to_owned(), KEY).expect("a key");
    let request = Request { method: &Method::POST, uri: &uri, content_type: "application/json", body };
    let headers: Vec<(String, String)> = signer
        .sign(&request, SystemTime::now())
        .expect("signed")
        .into_iter()
        .filter(|(name, _)| name != "host")
        .map(|(name, value)| (name.as_str().to_owned(), value.to_str().expect("text").to_owned()))
        .collect();
    let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    send(emulator, "llama", Method::POST, CHAT, &headers, body.to_vec()).await.expect("a response")
}

async fn keyed_post(emulator: &Emulator, key: &str, body: &[u8]) -> Reply {
    let auth = format!("Bearer {key}");
    send(emulator, "command", Method::POST, CHAT, &[("authorization", &auth)], body.to_vec()).await.expect("a response")
}

#[tokio::test(start_paused = true)]
async fn both_formats_answer_and_stream_what_openai_says() {
    let emulator = emulator().await;
    let expected = answer_to(&[json!({"role": "user", "content": "hello"})]);
    let r = signed_post(&emulator, &details(LLAMA, generic("hello"))).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let body = r.json();
    assert_eq!((&body["modelId"], &body["chatResponse"]["apiFormat"]), (&json!(LLAMA), &json!("GENERIC")));
    let response = oci_codec::decode_response(&r.body).expect("an OCI answer");
    assert_eq!((response.text(), response.finish), (expected.clone(), FinishReason::Stop));
    assert_eq!(body["chatResponse"]["usage"]["completionTokens"], 12);

    let mut streamed = generic("hello");
    streamed["isStream"] = json!(true);
    let r = signed_post(&emulator, &details(LLAMA, streamed)).await;
    assert_eq!((r.status.as_u16(), r.header("content-type")), (200, "text/event-stream"));
    let events = oci_codec::decode_stream(&r.body).expect("a well-formed stream");
    assert_eq!(StreamEvent::text_of(&events), expected);
    assert!(events.iter().any(|e| matches!(e, StreamEvent::MessageDelta { finish: FinishReason::Stop, usage: Some(u) } if u.output_tokens == 12)));

    let r = keyed_post(&emulator, "sk-oci-native", &details(COHERE, cohere("hello"))).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        (&r.json()["chatResponse"]["text"], &r.json()["chatResponse"]["finishReason"]),
        (&json!(expected), &json!("COMPLETE"))
    );
    let mut streamed = cohere("hello");
    streamed["isStream"] = json!(true);
    let r = keyed_post(&emulator, "sk-oci-native", &details(COHERE, streamed)).await;
    let events = oci_codec::decode_stream(&r.body).expect("a well-formed Cohere stream");
    assert_eq!(StreamEvent::text_of(&events), expected);
}

#[tokio::test(start_paused = true)]
async fn tools_are_called_in_either_format() {
    let emulator = emulator().await;
    let mut body = generic("Weather in Lisbon?");
    body["tools"] = json!([{"type": "FUNCTION", "name": "get_weather", "parameters": {"type": "object",
        "properties": {"city": {"type": "string"}}, "required": ["city"]}}]);
    let r = signed_post(&emulator, &details(LLAMA, body.clone())).await.json();
    let choice = &r["chatResponse"]["choices"][0];
    let call = &choice["message"]["toolCalls"][0];
    assert_eq!((&call["name"], &call["type"]), (&json!("get_weather"), &json!("FUNCTION")), "{r}");
    let arguments: Value = serde_json::from_str(call["arguments"].as_str().expect("a string")).expect("JSON");
    assert_eq!((arguments, &choice["finishReason"]), (json!({"city": "Lisbon"}), &json!("tool_calls")));
    body["isStream"] = json!(true);
    let r = signed_post(&emulator, &details(LLAMA, body)).await;
    let events = oci_codec::decode_stream(&r.body).expect("a well-formed stream");
    assert!(events.iter().any(
        |e| matches!(e, StreamEvent::BlockStart { block: BlockKind::ToolUse { name, .. }, .. } if name == "get_weather")
    ));
    assert!(events.iter().any(|e| matches!(e, StreamEvent::MessageDelta { finish: FinishReason::ToolUse, .. })));

    let mut body = cohere("Weather in Lisbon?");
    body["tools"] = json!([{"name": "get_weather", "description": "Weather", "parameterDefinitions": {
        "city": {"type": "str", "isRequired": true}}}]);
    let r = keyed_post(&emulator, "sk-oci-native", &details(COHERE, body)).await.json();
    assert_eq!(
        r["chatResponse"]["toolCalls"],
        json!([{"name": "get_weather", "parameters": {"city": "Lisbon"}}]),
        "{r}"
    );
}

#[tokio::test(start_paused = true)]
async fn refusals_are_ocis() {
    let emulator = emulator().await;
    let not_authenticated = json!({"code": "NotAuthenticated",
        "message": "The required information to complete authentication was not provided or was incorrect."});
    let r = send(&emulator, "llama", Method::POST, CHAT, &[], details(LLAMA, generic("hi"))).await.expect("a response");
    assert_eq!((r.status.as_u16(), r.json()), (401, not_authenticated.clone()), "unsigned");
    let r = keyed_post(&emulator, "sk-wrong", &details(COHERE, cohere("hi"))).await;
    assert_eq!((r.status.as_u16(), r.json()), (401, not_authenticated), "a wrong key");
    let r = signed_post(&emulator, &details("meta.llama-4-maverick", generic("hi"))).await;
    assert_eq!((r.status.as_u16(), &r.json()["code"]), (404, &json!("NotAuthorizedOrNotFound")), "another model");
    let elsewhere = oci_codec::chat_details("ocid1.compartment.oc1..other", LLAMA, generic("hi")).to_string();
    let r = signed_post(&emulator, elsewhere.as_bytes()).await;
    assert_eq!(r.status.as_u16(), 404, "another compartment");
    let r = keyed_post(&emulator, "sk-oci-native", &details(COHERE, generic("hi"))).await;
    assert_eq!((r.status.as_u16(), &r.json()["code"]), (400, &json!("InvalidParameter")), "Cohere takes COHERE");
    faults(&emulator, "llama", r#"[{"kind": "context_length"}]"#);
    let r = signed_post(&emulator, &details(LLAMA, generic("hi"))).await;
    assert_eq!(oci_codec::decode_error(r.status.as_u16(), &r.body).class, ErrorClass::ContextLength, "{:?}", r.body);
    faults(&emulator, "llama", r#"[{"kind": "error", "status": 429}]"#);
    let r = signed_post(&emulator, &details(LLAMA, generic("hi"))).await;
    assert_eq!((r.status.as_u16(), &r.json()["code"]), (429, &json!("TooManyRequests")));
    faults(&emulator, "llama", r#"[{"kind": "content_filter"}]"#);
    let r = signed_post(&emulator, &details(LLAMA, generic("hi"))).await;
    assert_eq!(oci_codec::decode_response(&r.body).map(|a| a.finish), Ok(FinishReason::ContentFilter), "{:?}", r.body);
}

#[tokio::test(start_paused = true)]
async fn embed_text_answers_up_to_96_inputs() {
    let emulator = emulator().await;
    let call = |inputs: Vec<String>| {
        json!({"compartmentId": COMPARTMENT, "servingMode": {"servingType": "ON_DEMAND", "modelId": "cohere.embed-english-v3.0"},
            "inputs": inputs, "inputType": "SEARCH_DOCUMENT"})
        .to_string()
    };
    let post = async |body: String| {
        let path = "/20231130/actions/embedText";
        send(&emulator, "embed", Method::POST, path, &[("authorization", "Bearer sk-oci-native")], body)
            .await
            .expect("a response")
    };
    let r = post(call((0..96).map(|i| format!("text {i}")).collect())).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let body = r.json();
    let vectors = body["embeddings"].as_array().expect("embeddings");
    assert_eq!((vectors.len(), vectors[0].as_array().map(Vec::len)), (96, Some(1024)));
    // The emulated tokenizer's count: "text N" is two tokens by the estimate, three by it.
    assert_eq!(body["usage"]["promptTokens"].as_u64(), Some(96 * 3), "{body}");
    let r = post(call((0..97).map(|i| format!("text {i}")).collect())).await;
    assert_eq!((r.status.as_u16(), &r.json()["code"]), (400, &json!("InvalidParameter")), "over the limit");
}
