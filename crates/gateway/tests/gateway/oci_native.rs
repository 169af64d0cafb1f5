//! The gateway to OCI Generative AI's native API on the emulator: a Llama deployment in the
//! GENERIC format signed with an API signing key, a Cohere one in the COHERE format with an API
//! key; OpenAI callers answered whole and streamed, tool calls and a tool result turn in both
//! formats, and a 429 or a wrong signature that fail over; `/v1/embeddings` through `embedText`,
//! 96 inputs a call, the same vectors as OpenAI's deployment gives.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use switchyard_core::config::SecretSource;
use switchyard_emulator::Seen;
use switchyard_wire::canonical::{BlockKind, FinishReason, StreamEvent};
use switchyard_wire::openai_codec;

use crate::support::*;

const LLAMA: &str = "meta.llama-3.3-70b-instruct";
const COHERE: &str = "cohere.command-r-plus-08-2024";

const CONFIG: &str = r#"
server:
  timeouts: { connect_ms: 500, first_byte_ms: 3000, first_token_ms: 3000, stream_idle_ms: 2000, request_ms: 8000 }
  retry_after_cap_ms: 300
clouds:
  - name: oci-signed
    protocol: oci
    oci:
      tenancy: ocid1.tenancy.oc1..aaaaaaaatest
      user: ocid1.user.oc1..aaaaaaaauser
      fingerprint: "ca:76:65:c8:c2:98:f8:05:51:5c:61:4f:63:69:97:9b"
      private_key: "env:OCI_PRIVATE_KEY"
      compartment: ocid1.compartment.oc1..aaaaaaaagenai
  - { name: oci-keyed, protocol: oci, api_key: "env:OCI_API_KEY", compartment: ocid1.compartment.oc1..aaaaaaaagenai }
  - { name: oai, protocol: openai }
deployments:
  - name: llama
    cloud: oci-signed
    region: us-chicago-1
    jurisdiction: us
    model: meta.llama-3.3-70b-instruct
    endpoint: https://inference.generativeai.us-chicago-1.oci.oraclecloud.com
    price: { input_per_mtok: 0.72, output_per_mtok: 0.72 }
    capabilities: { context_window: 128000, tools: true }
    emulation: { ttft_ms: { fixed: 5 }, tokens_per_s: { fixed: 1000 }, answer_tokens: [12, 12] }
  - name: command
    cloud: oci-keyed
    region: us-chicago-1
    jurisdiction: us
    model: cohere.command-r-plus-08-2024
    endpoint: https://inference.generativeai.us-chicago-1.oci.oraclecloud.com
    price: { input_per_mtok: 1.56, output_per_mtok: 1.56 }
    capabilities: { context_window: 128000, tools: true }
    emulation: { ttft_ms: { fixed: 5 }, tokens_per_s: { fixed: 1000 }, answer_tokens: [12, 12] }
  - name: oa
    cloud: oai
    region: us
    jurisdiction: us
    model: gpt-4o-mini
    endpoint: http://127.0.0.1:3/v1
    price: { input_per_mtok: 0.15, output_per_mtok: 0.6 }
    capabilities: { context_window: 128000, tools: true }
    emulation: { ttft_ms: { fixed: 5 }, tokens_per_s: { fixed: 1000 }, answer_tokens: [12, 12] }
  - name: oci-embed
    cloud: oci-keyed
    kind: embeddings
    region: us-chicago-1
    jurisdiction: us
    model: cohere.embed-english-v3.0
    endpoint: https://inference.generativeai.us-chicago-1.oci.oraclecloud.com
    price: { input_per_mtok: 0.1 }
  - name: oa-embed
    cloud: oai
    kind: embeddings
    region: us
    jurisdiction: us
    model: text-embedding-3-small
    endpoint: https://api.openai.com/v1
    price: { input_per_mtok: 0.02 }
aliases:
  - { name: oci-embed, policy: priority, deployments: [oci-embed] }
  - { name: openai-embed, policy: priority, deployments: [oa-embed] }
  - { name: llama, policy: priority, deployments: [llama] }
  - { name: command, policy: priority, deployments: [command] }
  - { name: llama-oa, policy: priority, deployments: [llama, oa] }
  - { name: command-llama, policy: priority, deployments: [command, llama] }
tenants:
  - { name: global, keys: ["KEYHASH"], jurisdictions: [us], aliases: ["*"] }
"#;

struct Secrets(BTreeMap<&'static str, String>);

impl Secrets {
    fn issued() -> Secrets {
        Secrets(BTreeMap::from([
            ("OCI_PRIVATE_KEY", include_str!("../../../../tests/oci/test_key.pem").to_owned()),
            ("OCI_API_KEY", "sk-oci-issued".to_owned()),
        ]))
    }
}

impl SecretSource for Secrets {
    fn env(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }

    fn file(&self, path: &str) -> Result<String, String> {
        Err(format!("no file {path}"))
    }
}

/// The emulator holding the issued credentials, the gateway `held`.
async fn harness_holding(held: &Secrets) -> Harness {
    let config = CONFIG.replace("KEYHASH", &switchyard_core::config::key_hash_text(KEY));
    Harness::memory_with_secrets(&config, &Secrets::issued(), held).await
}

async fn harness() -> Harness {
    harness_holding(&Secrets::issued()).await
}

fn weather_tool() -> Value {
    json!({"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}})
}

async fn stream_events(h: &Harness, mut body: Value) -> (String, Vec<StreamEvent>) {
    body["stream_options"] = json!({"include_usage": true});
    let opened = h.open_stream(KEY, body).await;
    assert_eq!(opened.status, 200);
    assert_eq!(header(&opened.headers, "content-type"), "text/event-stream");
    let raw = opened.text().await;
    let events = openai_codec::decode_stream(raw.as_bytes()).expect("a well-formed Chat Completions stream");
    (raw, events)
}

#[tokio::test(start_paused = true)]
async fn an_openai_caller_is_answered_in_both_formats_whole_and_streamed() {
    let h = harness().await;
    for (alias, model) in [("llama", LLAMA), ("command", COHERE)] {
        let r = h.chat(ask(alias, "hello")).await;
        assert_eq!(r.status, 200, "{alias}: {}", r.body);
        assert_eq!(r.elapsed, ANSWER_TIME, "{alias}");
        assert_eq!(header(&r.headers, "x-switchyard-deployment"), alias);
        let b = &r.body;
        assert_eq!((b["object"].as_str(), b["model"].as_str()), (Some("chat.completion"), Some(model)), "{b}");
        assert_eq!(b["choices"][0]["message"]["content"], expected_answer("hello"), "{alias}");
        assert_eq!((&b["choices"][0]["finish_reason"], &b["usage"]["completion_tokens"]), (&json!("stop"), &json!(12)));

        let (raw, events) = stream_events(&h, ask(alias, "stream it")).await;
        assert_eq!(StreamEvent::text_of(&events), expected_answer("stream it"), "{alias}");
        assert!(
            events.iter().any(|e| matches!(e, StreamEvent::MessageDelta { finish: FinishReason::Stop, usage: Some(u) }
                if u.output_tokens == 12)),
            "{alias}: {events:?}"
        );
        assert!(raw.contains(&format!("x-switchyard-route: {alias}")), "{raw}");
        assert_eq!((h.seen(alias, Seen::Completed), h.requests(alias)), (2, 2), "{alias}: signed or keyed, checked");
    }
}

#[tokio::test(start_paused = true)]
async fn tool_calls_and_their_results_go_both_ways_in_both_formats() {
    let h = harness().await;
    for alias in ["llama", "command"] {
        let mut body = ask(alias, "Weather in Paris?");
        body["tools"] = json!([weather_tool()]);
        let r = h.chat(body.clone()).await;
        assert_eq!(r.status, 200, "{alias}: {}", r.body);
        let choice = &r.body["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls", "{alias}: {}", r.body);
        let call = &choice["message"]["tool_calls"][0];
        assert_eq!(call["function"]["name"], "get_weather");
        let arguments: Value =
            serde_json::from_str(call["function"]["arguments"].as_str().expect("a string")).expect("JSON");
        assert_eq!(arguments, json!({"city": "Paris"}), "{alias}");

        let (_, events) = stream_events(&h, body.clone()).await;
        let names: Vec<&str> = events
            .iter()
            .filter_map(|e| match e {
                StreamEvent::BlockStart { block: BlockKind::ToolUse { name, .. }, .. } => Some(name.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(names, ["get_weather"], "{alias}");
        assert!(events.iter().any(|e| matches!(e, StreamEvent::MessageDelta { finish: FinishReason::ToolUse, .. })));

        // The result goes back: a TOOL message (GENERIC), or toolResults naming the call (COHERE).
        let id = call["id"].as_str().expect("an id");
        body["messages"] = json!([
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": null, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": id, "content": "18C and sunny"},
        ]);
        let r = h.chat(body).await;
        assert_eq!(r.status, 200, "{alias}: {}", r.body);
        assert_eq!(r.body["choices"][0]["finish_reason"], "stop", "{alias}: {}", r.body);
        assert!(r.body["choices"][0]["message"]["content"].as_str().is_some_and(|t| !t.is_empty()), "{}", r.body);
    }
}

#[tokio::test(start_paused = true)]
async fn what_cohere_cannot_do_is_a_400_naming_it() {
    let h = harness().await;
    let mut body = ask("command", "Weather in Paris?");
    body["tools"] = json!([weather_tool()]);
    body["tool_choice"] = json!("required");
    let r = h.chat(body).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body["error"]["message"].as_str().is_some_and(|m| m.contains("tool_choice")), "{}", r.body);
    assert_eq!(h.requests("command"), 0, "refused before sending");

    // Where an OCI deployment in the GENERIC format can take it, the Cohere one is passed over.
    let mut body = ask("command-llama", "Weather in Paris?");
    body["tools"] = json!([weather_tool()]);
    body["tool_choice"] = json!("required");
    let r = h.chat(body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(header(&r.headers, "x-switchyard-deployment"), "llama");
    assert_eq!(header(&r.headers, "x-switchyard-attempts"), "1");
    assert_eq!(h.requests("command"), 0, "nothing sent to Cohere's format");
    // What Cohere's format can say still goes to it, first in the alias.
    let r = h.chat(ask("command-llama", "hello")).await;
    assert_eq!((r.status, header(&r.headers, "x-switchyard-deployment")), (200, "command"), "{}", r.body);
}

#[tokio::test(start_paused = true)]
async fn a_rate_limited_or_wrongly_signed_oci_deployment_fails_over() {
    let h = harness().await;
    h.faults("llama", r#"[{"kind":"error","status":429}]"#);
    let r = h.chat(ask("llama-oa", "throttled")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (header(&r.headers, "x-switchyard-deployment"), header(&r.headers, "x-switchyard-attempts")),
        ("oa", "2")
    );
    assert_eq!(r.body["choices"][0]["message"]["content"], expected_answer("throttled"));
    assert_eq!(h.seen("llama", Seen::ErrorStatus(429)), 1);
    let metrics = h.metrics().await;
    assert!(
        metrics.contains("switchyard_upstream_attempts_total{deployment=\"llama\",result=\"rate_limited\"} 1"),
        "{metrics}"
    );

    // A gateway signing with another key: OCI's 401 fails over, and the caller never sees it.
    let mut wrong = Secrets::issued();
    wrong.0.insert("OCI_PRIVATE_KEY", include_str!("../../../../tests/oci/other_key.pem").to_owned());
    let h = harness_holding(&wrong).await;
    let r = h.chat(ask("llama-oa", "signed wrong")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(header(&r.headers, "x-switchyard-deployment"), "oa");
    assert_eq!(h.seen("llama", Seen::Unauthorized), 1, "the signature was checked and refused");
}

fn embedded(r: &Reply) -> Vec<Vec<f32>> {
    assert_eq!(r.status, 200, "{}", r.body);
    let data = r.body["data"].as_array().expect("data");
    data.iter()
        .enumerate()
        .map(|(i, item)| {
            assert_eq!(item["index"].as_u64(), Some(i as u64));
            item["embedding"].as_array().expect("floats").iter().map(|v| v.as_f64().expect("a number") as f32).collect()
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn embeddings_take_200_inputs_in_three_embed_text_calls() {
    let h = harness().await;
    let inputs: Vec<String> = (0..200).map(|i| format!("document number {i} of the corpus")).collect();
    let r = h.post("/v1/embeddings", Some(KEY), json!({"model": "oci-embed", "input": inputs}).to_string()).await;
    let got = embedded(&r);
    assert_eq!((got.len(), header(&r.headers, "x-switchyard-deployment")), (200, "oci-embed"));
    assert_eq!(h.seen("oci-embed", Seen::Completed), 3, "96 + 96 + 8 inputs, each call with its compartment");
    assert_eq!(h.seen("oci-embed", Seen::BadRequest), 0, "no call over the limit of 96");
    // OCI's own count (the emulated tokenizer's: the estimate and one per input), summed.
    let counted: u64 = inputs.iter().map(|t| u64::from(switchyard_wire::estimate_tokens(t)) + 1).sum();
    assert_eq!(r.body["usage"]["prompt_tokens"].as_u64(), Some(counted), "usage.promptTokens summed");
    let sample: Vec<&String> = [0, 95, 96, 199].iter().map(|&i| &inputs[i]).collect();
    let body = json!({"model": "openai-embed", "input": sample, "dimensions": 1024});
    let expected = embedded(&h.post("/v1/embeddings", Some(KEY), body.to_string()).await);
    for (k, &i) in [0, 95, 96, 199].iter().enumerate() {
        assert_eq!(got[i], expected[k], "input {i}: the same vector as OpenAI's");
    }
    let r = h
        .post("/v1/embeddings", Some(KEY), json!({"model": "oci-embed", "input": "x", "dimensions": 512}).to_string())
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(h.seen("oci-embed", Seen::Completed), 3, "nothing sent");
}
