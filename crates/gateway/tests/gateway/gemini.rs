//! The gateway to Gemini deployments of the emulator (the Gemini API with an API key, Vertex AI
//! with an OAuth token): OpenAI and Anthropic callers answered whole and streamed, tool calls
//! and a tool result turn, a blocked prompt as the content filter, a wrong key and a 429 that
//! fail over; a service account's key exchanged at the emulator's token endpoint for a token,
//! cached, and refreshed once when the deployment says it expired.

use std::collections::BTreeMap;

use http::Method;
use serde_json::{Value, json};
use switchyard_core::config::SecretSource;
use switchyard_emulator::Seen;
use switchyard_wire::canonical::{BlockKind, FinishReason, StreamEvent};
use switchyard_wire::{anthropic_codec, openai_codec};

use crate::support::*;

const GEMINI_MODEL: &str = "gemini-2.5-flash";
const VERTEX_MODEL: &str = "gemini-2.5-pro";

const CONFIG: &str = r#"
server:
  timeouts: { connect_ms: 500, first_byte_ms: 3000, first_token_ms: 3000, stream_idle_ms: 2000, request_ms: 8000 }
  retry_after_cap_ms: 300
clouds:
  - { name: google, protocol: gemini, api_key: "env:GEMINI_API_KEY" }
  - { name: vertex, protocol: gemini, bearer_token: "env:GOOGLE_TOKEN" }
  - { name: account, protocol: gemini, service_account: "env:GOOGLE_SA" }
  - { name: oai, protocol: openai }
deployments:
  - name: gem
    cloud: google
    region: global
    jurisdiction: us
    model: gemini-2.5-flash
    endpoint: https://generativelanguage.googleapis.com/v1beta
    price: { input_per_mtok: 0.3, output_per_mtok: 2.5 }
    capabilities: { context_window: 200000, tools: true }
    emulation: { ttft_ms: { fixed: 5 }, tokens_per_s: { fixed: 1000 }, answer_tokens: [12, 12] }
  - name: vx
    cloud: vertex
    region: us-central1
    jurisdiction: us
    model: gemini-2.5-pro
    endpoint: https://us-central1-aiplatform.googleapis.com/v1/projects/p/locations/us-central1/publishers/google
    price: { input_per_mtok: 1.25, output_per_mtok: 10 }
    capabilities: { context_window: 200000, tools: true }
    emulation: { ttft_ms: { fixed: 5 }, tokens_per_s: { fixed: 1000 }, answer_tokens: [12, 12] }
  - name: oa
    cloud: oai
    region: us
    jurisdiction: us
    model: gpt-4o-mini
    endpoint: http://127.0.0.1:3/v1
    price: { input_per_mtok: 0.15, output_per_mtok: 0.6 }
    capabilities: { context_window: 200000, tools: true }
    emulation: { ttft_ms: { fixed: 5 }, tokens_per_s: { fixed: 1000 }, answer_tokens: [12, 12] }
  - name: gsa
    cloud: account
    region: us-central1
    jurisdiction: us
    model: gemini-2.5-pro
    endpoint: https://us-central1-aiplatform.googleapis.com/v1/projects/p/locations/us-central1/publishers/google
    price: { input_per_mtok: 1.25, output_per_mtok: 10 }
    emulation: { ttft_ms: { fixed: 5 }, tokens_per_s: { fixed: 1000 }, answer_tokens: [12, 12] }
aliases:
  - { name: gemini, policy: priority, deployments: [gem] }
  - { name: gemini-sa, policy: priority, deployments: [gsa] }
  - { name: vertex, policy: priority, deployments: [vx] }
  - { name: gem-oa, policy: priority, deployments: [gem, oa] }
tenants:
  - { name: global, keys: ["KEYHASH"], jurisdictions: [us], aliases: ["*"] }
"#;

struct Secrets(BTreeMap<&'static str, String>);

/// A service account's JSON key (a key made for tests only) whose token URI is the emulated
/// `gsa`, the fourth deployment: 127.0.0.1:4 in memory.
fn service_account_key() -> String {
    json!({"type": "service_account", "project_id": "p", "private_key_id": "kid-1",
        "private_key": include_str!("../../../../tests/oci/test_key.pem"),
        "client_email": "gateway@p.iam.gserviceaccount.com", "token_uri": "http://127.0.0.1:4/token"})
    .to_string()
}

impl Secrets {
    fn issued() -> Secrets {
        Secrets(BTreeMap::from([
            ("GEMINI_API_KEY", "AIza-issued".to_owned()),
            ("GOOGLE_TOKEN", "ya29.issued".to_owned()),
            ("GOOGLE_SA", service_account_key()),
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

async fn harness_holding(secrets: &Secrets) -> Harness {
    let config = CONFIG.replace("KEYHASH", &switchyard_core::config::key_hash_text(KEY));
    Harness::memory_with_secrets(&config, &Secrets::issued(), secrets).await
}

async fn harness() -> Harness {
    harness_holding(&Secrets::issued()).await
}

fn weather_tool() -> Value {
    json!({"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}})
}

async fn stream_text(h: &Harness, mut body: Value) -> String {
    body["stream_options"] = json!({"include_usage": true});
    let opened = h.open_stream(KEY, body).await;
    assert_eq!(opened.status, 200);
    assert_eq!(header(&opened.headers, "content-type"), "text/event-stream");
    opened.text().await
}

#[tokio::test(start_paused = true)]
async fn an_openai_caller_is_answered_by_gemini_and_vertex_whole_and_streamed() {
    let h = harness().await;
    for (alias, deployment, model) in [("gemini", "gem", GEMINI_MODEL), ("vertex", "vx", VERTEX_MODEL)] {
        let r = h.chat(ask(alias, "hello")).await;
        assert_eq!(r.status, 200, "{alias}: {}", r.body);
        assert_eq!(r.elapsed, ANSWER_TIME, "{alias}");
        assert_eq!(header(&r.headers, "x-switchyard-deployment"), deployment);
        let b = &r.body;
        assert_eq!((b["object"].as_str(), b["model"].as_str()), (Some("chat.completion"), Some(model)), "{b}");
        assert_eq!(b["choices"][0]["message"]["content"], expected_answer("hello"), "{alias}");
        assert_eq!(b["choices"][0]["finish_reason"], "stop");
        assert_eq!(b["usage"]["completion_tokens"], 12);
        assert!(b["usage"]["prompt_tokens"].as_u64().is_some_and(|p| p > 0), "{b}");

        let raw = stream_text(&h, ask(alias, "stream it")).await;
        let events = openai_codec::decode_stream(raw.as_bytes()).expect("a well-formed Chat Completions stream");
        assert_eq!(StreamEvent::text_of(&events), expected_answer("stream it"), "{alias}");
        assert!(
            events.iter().any(|e| matches!(e, StreamEvent::MessageDelta { finish: FinishReason::Stop, usage: Some(u) }
                if u.output_tokens == 12)),
            "{alias}: {events:?}"
        );
        assert!(raw.contains(&format!("x-switchyard-route: {deployment}")), "{raw}");
        assert_eq!(h.seen(deployment, Seen::Completed), 2, "{alias}");
        assert_eq!(h.requests(deployment), 2, "{alias}: the key or token checked out");
    }
}

#[tokio::test(start_paused = true)]
async fn an_openai_caller_gets_tool_calls_and_sends_results_back() {
    let h = harness().await;
    let mut body = ask("gemini", "Weather in Paris?");
    body["tools"] = json!([weather_tool()]);
    let r = h.chat(body.clone()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let choice = &r.body["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls", "{}", r.body);
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_weather");
    let arguments: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().expect("a string")).expect("JSON");
    assert_eq!(arguments, json!({"city": "Paris"}));

    // Streamed: the call whole, its arguments in one delta.
    let raw = stream_text(&h, body.clone()).await;
    let events = openai_codec::decode_stream(raw.as_bytes()).expect("a well-formed stream");
    let names: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::BlockStart { block: BlockKind::ToolUse { name, .. }, .. } => Some(name.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(names, ["get_weather"]);
    assert!(events.iter().any(|e| matches!(e, StreamEvent::MessageDelta { finish: FinishReason::ToolUse, .. })));

    // The result goes back as a functionResponse naming the call's function.
    let id = call["id"].as_str().expect("an id");
    body["messages"] = json!([
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": null, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": id, "content": "18C and sunny"},
    ]);
    let r = h.chat(body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["choices"][0]["finish_reason"], "stop", "{}", r.body);
    assert!(r.body["choices"][0]["message"]["content"].as_str().is_some_and(|t| !t.is_empty()), "{}", r.body);
}

#[tokio::test(start_paused = true)]
async fn an_anthropic_caller_is_answered_by_gemini() {
    let h = harness().await;
    let say = json!({"model": "gemini", "max_tokens": 64, "messages": [{"role": "user", "content": "hello"}]});
    let r = h.post("/v1/messages", Some(KEY), say.to_string()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(header(&r.headers, "x-switchyard-deployment"), "gem");
    assert_eq!(r.body["type"], "message");
    assert_eq!(r.body["content"], json!([{"type": "text", "text": expected_answer("hello")}]));
    assert_eq!(
        (r.body["stop_reason"].clone(), r.body["usage"]["output_tokens"].clone()),
        (json!("end_turn"), json!(12))
    );

    let mut stream = say.clone();
    stream["stream"] = json!(true);
    let opened = h.send(Method::POST, "/v1/messages", Some(KEY), stream.to_string()).await;
    assert_eq!(opened.status, 200);
    let text = opened.text().await;
    let events = anthropic_codec::decode_stream(text.as_bytes()).expect("a well-formed Messages stream");
    assert_eq!(StreamEvent::text_of(&events), expected_answer("hello"));

    let mut tools = say;
    tools["messages"] = json!([{"role": "user", "content": "Weather in Rome?"}]);
    tools["tools"] = json!([{"name": "get_weather", "input_schema": {"type": "object",
        "properties": {"city": {"type": "string"}}, "required": ["city"]}}]);
    let r = h.post("/v1/messages", Some(KEY), tools.to_string()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["stop_reason"], "tool_use", "{}", r.body);
    let call = r.body["content"].as_array().and_then(|c| c.iter().find(|b| b["type"] == "tool_use")).expect("a call");
    assert_eq!((&call["name"], &call["input"]), (&json!("get_weather"), &json!({"city": "Rome"})));
    assert_eq!(h.seen("gem", Seen::Completed), 3);
}

#[tokio::test(start_paused = true)]
async fn a_rate_limited_or_misconfigured_gemini_deployment_fails_over() {
    let h = harness().await;
    h.faults("gem", r#"[{"kind":"error","status":429}]"#);
    let r = h.chat(ask("gem-oa", "throttled")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(header(&r.headers, "x-switchyard-deployment"), "oa");
    assert_eq!(header(&r.headers, "x-switchyard-attempts"), "2");
    assert_eq!(r.body["choices"][0]["message"]["content"], expected_answer("throttled"));
    assert_eq!(h.seen("gem", Seen::ErrorStatus(429)), 1);
    let metrics = h.metrics().await;
    assert!(
        metrics.contains("switchyard_upstream_attempts_total{deployment=\"gem\",result=\"rate_limited\"} 1"),
        "{metrics}"
    );

    // A key Google does not know: its 401 fails over, and the caller never sees it.
    let mut wrong = Secrets::issued();
    wrong.0.insert("GEMINI_API_KEY", "AIza-wrong".to_owned());
    let h = harness_holding(&wrong).await;
    let r = h.chat(ask("gem-oa", "wrong key")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(header(&r.headers, "x-switchyard-deployment"), "oa");
    assert_eq!(h.seen("gem", Seen::Unauthorized), 1);
}

#[tokio::test(start_paused = true)]
async fn a_blocked_prompt_is_the_content_filter() {
    let h = harness().await;
    h.faults("gem", r#"[{"kind":"content_filter"}]"#);
    let r = h.chat(ask("gem-oa", "forbidden")).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "content_filter", "{}", r.body);
    assert_eq!(h.requests("oa"), 0, "a filter is returned, not failed over");
    let opened = h.open_stream(KEY, ask("gemini", "forbidden")).await;
    let status = opened.status;
    let text = opened.text().await;
    assert!(status == 400 || text.contains("content_filter"), "{status}: {text}");
}

#[tokio::test(start_paused = true)]
async fn a_service_account_token_is_fetched_cached_and_refreshed_once_when_it_expires() {
    let h = harness().await;
    let deployment = h.emulator.deployment("gsa").expect("emulated").clone();
    let r = h.chat(ask("gemini-sa", "hello")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["choices"][0]["message"]["content"], expected_answer("hello"));
    assert_eq!(deployment.tokens_issued(), 1, "a token fetched at the emulator's token endpoint");
    let raw = stream_text(&h, ask("gemini-sa", "stream it")).await;
    let events = openai_codec::decode_stream(raw.as_bytes()).expect("a well-formed stream");
    assert_eq!(StreamEvent::text_of(&events), expected_answer("stream it"));
    assert_eq!(deployment.tokens_issued(), 1, "the token is cached until it expires");

    // The deployment says the token expired: the gateway fetches another and sends again,
    // within the same attempt.
    assert!(deployment.expire_tokens());
    let r = h.chat(ask("gemini-sa", "after expiry")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(header(&r.headers, "x-switchyard-attempts"), "1");
    assert_eq!(r.body["choices"][0]["message"]["content"], expected_answer("after expiry"));
    assert_eq!(deployment.tokens_issued(), 2);
    assert_eq!(h.seen("gsa", Seen::Unauthorized), 1);
    assert_eq!(h.seen("gsa", Seen::Completed), 3);
}

/// Requests that need a token at once fetch one between them, and requests refused together
/// after it expired fetch one new one between them (the token is forgotten only while it is
/// still the one refused).
#[tokio::test(start_paused = true)]
async fn requests_at_once_fetch_one_token_between_them() {
    let h = harness().await;
    let deployment = h.emulator.deployment("gsa").expect("emulated").clone();
    let all = |label: &'static str| {
        let h = &h;
        futures_util::future::join_all((0..8).map(move |i| h.chat(ask("gemini-sa", &format!("{label} {i}")))))
    };
    for r in all("cold").await {
        assert_eq!(r.status, 200, "{}", r.body);
    }
    assert_eq!(deployment.tokens_issued(), 1, "one fetch for eight requests");
    assert!(deployment.expire_tokens());
    for r in all("expired").await {
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(header(&r.headers, "x-switchyard-attempts"), "1");
    }
    assert_eq!(deployment.tokens_issued(), 2, "one new token for all those refused");
}
