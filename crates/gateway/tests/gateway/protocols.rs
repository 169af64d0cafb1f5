//! The gateway across wire protocols, end to end through the emulator, whose deployments each
//! speak their cloud's protocol and check its auth as the cloud does: Bedrock Converse signed
//! with SigV4, Anthropic Messages with `x-api-key`, OpenAI Chat Completions, Azure OpenAI with
//! `api-key` at its deployment URLs and its v1 path. Callers of
//! `/v1/chat/completions` and `/v1/messages` are answered by each; failovers and stream
//! continuations cross protocols; a wrong credential is a refusal that fails over; what a
//! protocol cannot express is a 400 naming it, and nothing is sent.
//!
//! The emulator's answer is drawn from the exact OpenAI messages a conversation is written as,
//! whichever protocol carried it, so `expected_answer` / `answer_to` check that a translation
//! lost nothing, and a continuation on another protocol completes the same answer.

use std::collections::BTreeMap;
use std::time::Duration;

use http::Method;
use serde_json::{Value, json};
use switchyard_core::config::SecretSource;
use switchyard_emulator::{Seen, answer_tokens, conversation_key};
use switchyard_wire::canonical::{BlockKind, FinishReason, StreamEvent};
use switchyard_wire::sse::SseParser;
use switchyard_wire::{anthropic_codec, openai_codec};

use crate::support::*;

const MESSAGES: &str = "/v1/messages";

const AWS_KEY_ID: &str = "AKIDEXAMPLE";
const AWS_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const ANTHROPIC_KEY: &str = "sk-ant-local";
const AZURE_KEY: &str = "azure-resource-key";

const BEDROCK_MODEL: &str = "us.meta.llama3-3-70b-instruct-v1:0";
const ANTHROPIC_MODEL: &str = "claude-sonnet-4-5";
const OPENAI_MODEL: &str = "gpt-4o-mini";

/// One deployment per protocol (`br` on Bedrock with SigV4, `an` on Anthropic, `oa` on
/// OpenAI), each answering 12 tokens in 16 ms; an alias for each alone and for Bedrock (or
/// Anthropic) first with another protocol behind it.
const CONFIG: &str = r#"
server:
  timeouts: { connect_ms: 500, first_byte_ms: 3000, first_token_ms: 3000, stream_idle_ms: 2000, request_ms: 8000 }
  retry_after_cap_ms: 300
routing:
  outlier: { consecutive_failures: 3, base_ejection_ms: 1000, max_ejection_ms: 2000, max_ejected_share: 0.5 }
clouds:
  - { name: aws, protocol: bedrock, aws: { access_key_id: "env:AWS_ACCESS_KEY_ID", secret_access_key: "env:AWS_SECRET_ACCESS_KEY" } }
  - { name: ant, protocol: anthropic, api_key: "env:ANTHROPIC_API_KEY" }
  - { name: oai, protocol: openai }
  - { name: azure, protocol: azure-openai, api_key: "env:AZURE_OPENAI_API_KEY" }
deployments:
  - name: br
    cloud: aws
    region: us-east-1
    jurisdiction: us
    model: us.meta.llama3-3-70b-instruct-v1:0
    endpoint: http://127.0.0.1:1
    price: { input_per_mtok: 3, output_per_mtok: 15 }
    capabilities: { context_window: 200000, tools: true, prefill: true }
    emulation: { ttft_ms: { fixed: 5 }, tokens_per_s: { fixed: 1000 }, answer_tokens: [12, 12] }
  - name: an
    cloud: ant
    region: us
    jurisdiction: us
    model: claude-sonnet-4-5
    endpoint: http://127.0.0.1:2/v1
    price: { input_per_mtok: 3, output_per_mtok: 15 }
    capabilities: { context_window: 200000, tools: true }
    emulation: { ttft_ms: { fixed: 5 }, tokens_per_s: { fixed: 1000 }, answer_tokens: [12, 12] }
  - name: oa
    cloud: oai
    region: us
    jurisdiction: us
    model: gpt-4o-mini
    endpoint: http://127.0.0.1:3/v1
    price: { input_per_mtok: 0.15, output_per_mtok: 0.6 }
    capabilities: { context_window: 200000, tools: true, prefill: true }
    emulation: { ttft_ms: { fixed: 5 }, tokens_per_s: { fixed: 1000 }, answer_tokens: [12, 12] }
  - name: az
    cloud: azure
    region: eastus
    jurisdiction: us
    model: gpt-4o-prod
    endpoint: https://contoso.openai.azure.com
    price: { input_per_mtok: 2.5, output_per_mtok: 10 }
    capabilities: { context_window: 200000, tools: true, prefill: true }
    emulation: { ttft_ms: { fixed: 5 }, tokens_per_s: { fixed: 1000 }, answer_tokens: [12, 12] }
  - name: az1
    cloud: azure
    region: eastus2
    jurisdiction: us
    model: gpt-4o-v1
    endpoint: https://contoso.openai.azure.com/openai/v1
    price: { input_per_mtok: 2.5, output_per_mtok: 10 }
    capabilities: { context_window: 200000, tools: true }
    emulation: { ttft_ms: { fixed: 5 }, tokens_per_s: { fixed: 1000 }, answer_tokens: [12, 12] }
aliases:
  - { name: bedrock, policy: priority, deployments: [br] }
  - { name: azure, policy: priority, deployments: [az] }
  - { name: azure-v1, policy: priority, deployments: [az1] }
  - { name: az-oa, policy: priority, deployments: [az, oa] }
  - { name: az-an, policy: priority, deployments: [az, an] }
  - { name: anthropic, policy: priority, deployments: [an] }
  - { name: br-an, policy: priority, deployments: [br, an] }
  - { name: br-oa, policy: priority, deployments: [br, oa] }
  - { name: an-oa, policy: priority, deployments: [an, oa] }
  - { name: oa-br, policy: priority, deployments: [oa, br] }
tenants:
  - { name: global, keys: ["KEYHASH"], jurisdictions: [us], aliases: ["*"] }
"#;

/// Secret references resolved from a map.
pub(crate) struct Secrets(BTreeMap<&'static str, String>);

impl Secrets {
    /// The credentials the emulator issues.
    pub(crate) fn issued() -> Secrets {
        Secrets(BTreeMap::from([
            ("AWS_ACCESS_KEY_ID", AWS_KEY_ID.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", AWS_SECRET.to_owned()),
            ("ANTHROPIC_API_KEY", ANTHROPIC_KEY.to_owned()),
            ("AZURE_OPENAI_API_KEY", AZURE_KEY.to_owned()),
        ]))
    }

    fn with(mut self, name: &'static str, value: &str) -> Secrets {
        self.0.insert(name, value.to_owned());
        self
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

pub(crate) fn config() -> String {
    CONFIG.replace("KEYHASH", &switchyard_core::config::key_hash_text(KEY))
}

/// The gateway holding the credentials the emulator issued.
pub(crate) async fn harness() -> Harness {
    Harness::memory_with_secrets(&config(), &Secrets::issued(), &Secrets::issued()).await
}

/// The gateway holding `secrets`, the emulator expecting the credentials it issued.
async fn harness_holding(secrets: &Secrets) -> Harness {
    Harness::memory_with_secrets(&config(), &Secrets::issued(), secrets).await
}

/// Each single-protocol alias, its deployment, cloud and model id.
pub(crate) const TRANSLATED: [(&str, &str, &str, &str); 2] =
    [("bedrock", "br", "aws", BEDROCK_MODEL), ("anthropic", "an", "ant", ANTHROPIC_MODEL)];

/// The emulator's answer to a conversation it received as these OpenAI messages.
pub(crate) fn answer_to(openai_messages: &Value) -> String {
    let messages = openai_messages.as_array().expect("messages").clone();
    answer_tokens(conversation_key(&messages), (12, 12)).concat()
}

fn with_usage(mut body: Value) -> Value {
    body["stream_options"] = json!({"include_usage": true});
    body
}

fn weather_tool() -> Value {
    json!({"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}})
}

/// A Messages request with one user message.
fn say(model: &str, prompt: &str) -> Value {
    json!({"model": model, "max_tokens": 64, "messages": [{"role": "user", "content": prompt}]})
}

/// An OpenAI stream's raw text: its events (JSON, `[DONE]` as a string) and comment lines.
fn openai_events(text: &str) -> (Vec<Value>, String) {
    let mut parser = SseParser::default();
    let mut events = Vec::new();
    parser.push(text.as_bytes(), &mut events).expect("sse");
    parser.finish(&mut events);
    let comments = text.lines().filter(|l| l.starts_with(':')).collect::<Vec<_>>().join("\n");
    let values = events.into_iter().map(|e| serde_json::from_str(&e.data).unwrap_or(Value::String(e.data))).collect();
    (values, comments)
}

/// An OpenAI stream as a strict client reads it: each chunk (but Azure's prompt annotation)
/// names the stream's one id and `model`, one role delta, content, one finish, a usage-only chunk last when asked for, then
/// `[DONE]`; and the stream decodes with `openai_codec`'s strict decoder. Its text, finish
/// reason, the usage chunk (if any) and the route comment.
struct OpenAiStream {
    text: String,
    finish: String,
    usage: Option<Value>,
    comments: String,
    events: Vec<StreamEvent>,
}

fn read_openai_stream(raw: &str, model: &str) -> OpenAiStream {
    let (events, comments) = openai_events(raw);
    assert_eq!(events.last().map(Value::as_str), Some(Some("[DONE]")), "ends with [DONE]: {raw}");
    let objects = events.iter().filter(|e| e.is_object()).count();
    assert_eq!(objects + 1, events.len(), "nothing but chunks and [DONE]: {raw}");
    // Azure's prompt annotations come in a chunk of their own, with no id and no choices, as
    // Azure sends it; the rest is the stream proper.
    let annotation = |e: &Value| e.get("prompt_filter_results").is_some() && e["choices"] == json!([]);
    let chunks: Vec<&Value> = events.iter().filter(|e| e.is_object() && !annotation(e)).collect();
    assert!(objects - chunks.len() <= 1, "one prompt annotation at most: {raw}");
    let first = chunks[0];
    assert!(first["id"].as_str().is_some_and(|id| !id.is_empty()), "{first}");
    for chunk in &chunks {
        assert!(chunk.get("error").is_none(), "{chunk}");
        assert_eq!(chunk["object"], "chat.completion.chunk", "{chunk}");
        assert_eq!((&chunk["id"], &chunk["created"]), (&first["id"], &first["created"]), "one identity: {chunk}");
        assert_eq!(chunk["model"], model, "{chunk}");
    }
    let roles = chunks.iter().filter(|c| c.pointer("/choices/0/delta/role").is_some()).count();
    assert_eq!(roles, 1, "exactly one role delta: {raw}");
    let finishes: Vec<&str> =
        chunks.iter().filter_map(|c| c.pointer("/choices/0/finish_reason").and_then(Value::as_str)).collect();
    assert_eq!(finishes.len(), 1, "one finish: {raw}");
    let text: String = chunks.iter().filter_map(|c| c.pointer("/choices/0/delta/content")?.as_str()).collect();
    let usage = chunks.last().and_then(|c| c.get("usage")).filter(|u| u.is_object()).cloned();
    if usage.is_some() {
        let last = chunks.last().unwrap();
        assert_eq!(last["choices"], json!([]), "the usage chunk has no choices: {last}");
    }
    let with_usage = chunks.iter().filter(|c| c.get("usage").is_some_and(Value::is_object)).count();
    assert_eq!(with_usage, usize::from(usage.is_some()), "usage only in the last chunk: {raw}");
    let strict = openai_codec::decode_stream(raw.as_bytes()).expect("a well-formed Chat Completions stream");
    OpenAiStream { text, finish: finishes[0].to_owned(), usage, comments, events: strict }
}

async fn openai_stream_text(h: &Harness, body: Value) -> String {
    let opened = h.open_stream(KEY, body).await;
    assert_eq!(opened.status, 200);
    assert_eq!(header(&opened.headers, "content-type"), "text/event-stream");
    opened.text().await
}

async fn messages_stream_text(h: &Harness, mut body: Value) -> String {
    body["stream"] = json!(true);
    let opened = h.send(Method::POST, MESSAGES, Some(KEY), body.to_string()).await;
    assert_eq!(opened.status, 200);
    assert_eq!(header(&opened.headers, "content-type"), "text/event-stream");
    opened.text().await
}

/// The text of a well-formed Messages stream (as the strict decoder reads it), its finish,
/// how many `message_start` events it has, and its comment lines.
fn strict_messages(text: &str) -> (String, FinishReason, usize, String) {
    let events = anthropic_codec::decode_stream(text.as_bytes()).expect("a well-formed Messages stream");
    let mut out = String::new();
    let mut finish = None;
    let mut starts = 0;
    for event in events {
        match event {
            StreamEvent::TextDelta { text, .. } => out.push_str(&text),
            StreamEvent::MessageDelta { finish: f, .. } => finish = Some(f),
            StreamEvent::MessageStart { .. } => starts += 1,
            StreamEvent::BlockStart { block: BlockKind::ToolUse { .. }, .. } => panic!("no tool calls expected"),
            _ => (),
        }
    }
    let comments = text.lines().filter(|l| l.starts_with(':')).collect::<Vec<_>>().join("\n");
    (out, finish.expect("a message delta"), starts, comments)
}

/// The Prometheus line of a deployment's attempts with `result`.
fn attempts_metric(deployment: &str, result: &str, n: usize) -> String {
    format!("switchyard_upstream_attempts_total{{deployment=\"{deployment}\",result=\"{result}\"}} {n}")
}

#[tokio::test(start_paused = true)]
async fn an_openai_caller_gets_whole_answers_from_bedrock_and_anthropic() {
    let h = harness().await;
    let mut ids = Vec::new();
    for (alias, deployment, cloud, model) in TRANSLATED {
        let r = h.chat(ask(alias, "hello")).await;
        assert_eq!(r.status, 200, "{alias}: {}", r.body);
        assert_eq!(r.elapsed, ANSWER_TIME, "{alias}: the same timing as an OpenAI deployment");
        assert_eq!(header(&r.headers, "x-switchyard-deployment"), deployment);
        assert_eq!(header(&r.headers, "x-switchyard-cloud"), cloud);
        assert_eq!(header(&r.headers, "x-switchyard-attempts"), "1");
        let b = &r.body;
        assert_eq!((b["object"].as_str(), b["model"].as_str()), (Some("chat.completion"), Some(model)), "{b}");
        assert!(b["id"].as_str().is_some_and(|id| !id.is_empty()), "every answer has an id (Converse gives none): {b}");
        if deployment == "br" {
            ids.push(b["id"].clone());
        }
        let choice = &b["choices"][0];
        assert_eq!(choice["message"]["role"], "assistant");
        assert_eq!(choice["message"]["content"], expected_answer("hello"), "{alias}");
        assert_eq!(choice["finish_reason"], "stop");
        let usage = &b["usage"];
        let prompt = usage["prompt_tokens"].as_u64().expect("prompt tokens");
        assert!(prompt > 0, "{usage}");
        assert_eq!(usage["completion_tokens"], 12);
        assert_eq!(usage["total_tokens"], prompt + 12);

        // A conversation with a system prompt and an earlier turn: the emulator's answer shows
        // it received exactly these messages, after two translations.
        let messages = json!([
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi there"},
            {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": "What routes requests?"},
        ]);
        let r = h.chat(json!({"model": alias, "messages": messages, "temperature": 0.5, "max_tokens": 100})).await;
        assert_eq!(r.status, 200, "{alias}: {}", r.body);
        assert_eq!(r.body["choices"][0]["message"]["content"], answer_to(&messages), "{alias}");
        // max_tokens is carried: a shorter limit cuts the answer.
        let mut short = ask(alias, "hello");
        short["max_tokens"] = json!(3);
        let r = h.chat(short).await;
        assert_eq!(r.status, 200, "{alias}: {}", r.body);
        if deployment == "br" {
            ids.push(r.body["id"].clone());
        }
        assert_eq!(r.body["choices"][0]["finish_reason"], "length", "{alias}: {}", r.body);
        assert_eq!(r.body["usage"]["completion_tokens"], 3);
        let three =
            answer_tokens(conversation_key(&[json!({"role": "user", "content": "hello"})]), (12, 12))[..3].concat();
        assert_eq!(r.body["choices"][0]["message"]["content"], three, "{alias}");

        assert_eq!(h.seen(deployment, Seen::Completed), 3, "{alias}");
        assert_eq!(h.requests(deployment), 3, "{alias}: nothing refused (the signature and key checked out)");
        assert!(h.emulator.deployment(deployment).unwrap().records().iter().all(|r| !r.stream && !r.prefill));
    }
    assert_eq!(h.requests("oa"), 0);
    // Converse names no answer: the gateway makes each Bedrock answer's id. (Anthropic's are
    // passed through as the upstream gave them.)
    ids.sort_by_key(Value::to_string);
    ids.dedup();
    assert_eq!(ids.len(), 2, "each answer its own id: {ids:?}");
}

#[tokio::test(start_paused = true)]
async fn an_openai_caller_streams_from_bedrock_and_anthropic() {
    let h = harness().await;
    for (alias, deployment, _, model) in TRANSLATED {
        let started = tokio::time::Instant::now();
        let raw = openai_stream_text(&h, with_usage(ask(alias, "stream it"))).await;
        assert_eq!(started.elapsed(), ANSWER_TIME, "{alias}");
        let s = read_openai_stream(&raw, model);
        assert_eq!(s.text, expected_answer("stream it"), "{alias}");
        assert_eq!(s.finish, "stop", "{alias}");
        let usage = s.usage.expect("a usage chunk when asked for");
        assert_eq!(usage["completion_tokens"], 12, "{usage}");
        let prompt = usage["prompt_tokens"].as_u64().expect("prompt tokens");
        assert!(prompt > 0, "{usage}");
        assert_eq!(usage["total_tokens"], prompt + 12);
        assert!(s.comments.contains(&format!("x-switchyard-route: {deployment}")), "{}", s.comments);
        let strict_text: String = s
            .events
            .iter()
            .filter_map(|e| match e {
                StreamEvent::TextDelta { text, .. } => Some(text.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(strict_text, s.text, "{alias}");
        assert!(
            s.events.iter().any(|e| matches!(e, StreamEvent::MessageDelta { finish: FinishReason::Stop, .. })),
            "{alias}: {:?}",
            s.events
        );

        // Without include_usage: no usage chunk.
        let raw = openai_stream_text(&h, ask(alias, "no usage")).await;
        let s = read_openai_stream(&raw, model);
        assert_eq!(s.text, expected_answer("no usage"), "{alias}");
        assert!(s.usage.is_none(), "{alias}: usage only when asked for: {raw}");
        assert_eq!(h.seen(deployment, Seen::Completed), 2);
        assert!(h.emulator.deployment(deployment).unwrap().records().iter().all(|r| r.stream));
    }
    let metrics = h.metrics().await;
    assert!(metrics.contains(&attempts_metric("br", "ok", 2)), "{metrics}");
    assert!(metrics.contains(&attempts_metric("an", "ok", 2)), "{metrics}");
}

#[tokio::test(start_paused = true)]
async fn an_openai_caller_gets_tool_calls_from_bedrock_and_anthropic() {
    let h = harness().await;
    for (alias, deployment, _, model) in TRANSLATED {
        let mut body = ask(alias, "Weather in Paris?");
        body["tools"] = json!([weather_tool()]);
        body["tool_choice"] = json!("auto");
        let r = h.chat(body.clone()).await;
        assert_eq!(r.status, 200, "{alias}: {}", r.body);
        assert_eq!(header(&r.headers, "x-switchyard-deployment"), deployment);
        let choice = &r.body["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls", "{alias}: {}", r.body);
        let calls = choice["message"]["tool_calls"].as_array().expect("tool calls");
        assert_eq!(calls.len(), 1, "{alias}: {}", r.body);
        let call = &calls[0];
        assert_eq!((call["type"].as_str(), call["function"]["name"].as_str()), (Some("function"), Some("get_weather")));
        assert!(call["id"].as_str().is_some_and(|id| !id.is_empty()), "{call}");
        let arguments: Value =
            serde_json::from_str(call["function"]["arguments"].as_str().expect("arguments are a JSON string"))
                .expect("the arguments are JSON");
        assert_eq!(arguments, json!({"city": "Paris"}), "{alias}");
        assert!(r.body["usage"]["completion_tokens"].as_u64().unwrap() > 0, "{}", r.body);

        // Streamed: the call's name once, its arguments in pieces that join to JSON.
        let raw = openai_stream_text(&h, with_usage(body.clone())).await;
        let s = read_openai_stream(&raw, model);
        assert_eq!(s.finish, "tool_calls", "{alias}: {raw}");
        assert_eq!(s.text, "", "no text beside the call");
        let names: Vec<&str> = s
            .events
            .iter()
            .filter_map(|e| match e {
                StreamEvent::BlockStart { block: BlockKind::ToolUse { name, .. }, .. } => Some(name.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(names, ["get_weather"], "{alias}");
        let input: String = s
            .events
            .iter()
            .filter_map(|e| match e {
                StreamEvent::ToolInputDelta { partial_json, .. } => Some(partial_json.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(serde_json::from_str::<Value>(&input).expect("JSON"), json!({"city": "Paris"}), "{alias}");
        assert!(s.usage.is_some());

        // The call's result goes back, and the answer is text about it.
        let messages = json!([
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18 C"},
        ]);
        body["messages"] = messages.clone();
        let r = h.chat(body).await;
        assert_eq!(r.status, 200, "{alias}: {}", r.body);
        assert_eq!(r.body["choices"][0]["finish_reason"], "stop", "{alias}: {}", r.body);
        assert_eq!(r.body["choices"][0]["message"]["content"], answer_to(&messages), "{alias}");
    }
}

#[tokio::test(start_paused = true)]
async fn an_anthropic_caller_is_answered_by_bedrock_and_anthropic() {
    let h = harness().await;
    for (alias, deployment, _, _) in TRANSLATED {
        let r = h.post(MESSAGES, Some(KEY), say(alias, "hello").to_string()).await;
        assert_eq!(r.status, 200, "{alias}: {}", r.body);
        assert_eq!(r.elapsed, ANSWER_TIME, "{alias}");
        assert_eq!(header(&r.headers, "x-switchyard-deployment"), deployment);
        let b = &r.body;
        assert_eq!(
            (b["type"].as_str(), b["role"].as_str(), b["model"].as_str()),
            (Some("message"), Some("assistant"), Some(alias)),
            "{b}"
        );
        assert_eq!(b["content"], json!([{"type": "text", "text": expected_answer("hello")}]), "{alias}");
        assert_eq!(b["stop_reason"], "end_turn");
        assert_eq!(b["usage"]["output_tokens"], 12);
        assert!(b["usage"]["input_tokens"].as_u64().unwrap() > 0, "{b}");

        // A system prompt and an earlier turn.
        let mut body = say(alias, "What routes requests?");
        body["system"] = json!("Be brief.");
        body["messages"] = json!([
            {"role": "user", "content": "Hi there"},
            {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": "What routes requests?"},
        ]);
        let r = h.post(MESSAGES, Some(KEY), body.to_string()).await;
        assert_eq!(r.status, 200, "{alias}: {}", r.body);
        let seen = json!([
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi there"},
            {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": "What routes requests?"},
        ]);
        assert_eq!(r.body["content"][0]["text"], answer_to(&seen), "{alias}");

        let text = messages_stream_text(&h, say(alias, "stream it")).await;
        let (streamed, finish, starts, comments) = strict_messages(&text);
        assert_eq!((streamed, finish, starts), (expected_answer("stream it"), FinishReason::Stop, 1), "{alias}");
        assert!(comments.contains(&format!("x-switchyard-route: {deployment}")), "{comments}");
        assert!(!text.contains("[DONE]") && !text.contains("chat.completion"), "nothing of OpenAI's: {text}");
        let (events, _) = openai_events(&text);
        let delta = events.iter().find(|e| e["type"] == "message_delta").expect("a message delta");
        assert_eq!(delta["usage"]["output_tokens"], 12, "{delta}");
        assert_eq!(h.seen(deployment, Seen::Completed), 3, "{alias}");
    }
    let metrics = h.metrics().await;
    assert!(metrics.contains("switchyard_requests_total{api=\"messages\",outcome=\"ok\"} 4"), "{metrics}");
    assert!(metrics.contains("switchyard_requests_total{api=\"messages_stream\",outcome=\"ok\"} 2"), "{metrics}");
}

#[tokio::test(start_paused = true)]
async fn a_rate_limited_bedrock_deployment_fails_over_to_anthropic() {
    let h = harness().await;
    h.faults("br", r#"[{"kind":"error","status":429}]"#);
    let r = h.chat(ask("br-an", "throttled")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.elapsed, ANSWER_TIME, "moved on at once");
    assert_eq!(header(&r.headers, "x-switchyard-deployment"), "an");
    assert_eq!(header(&r.headers, "x-switchyard-cloud"), "ant");
    assert_eq!(header(&r.headers, "x-switchyard-attempts"), "2");
    assert_eq!(r.body["model"], ANTHROPIC_MODEL);
    assert_eq!(r.body["choices"][0]["message"]["content"], expected_answer("throttled"));
    assert_eq!(h.seen("br", Seen::ErrorStatus(429)), 1);
    assert_eq!(h.seen("an", Seen::Completed), 1);
    // Cooling down (a ThrottlingException with no Retry-After: a second): not tried again.
    let r = h.post(MESSAGES, Some(KEY), say("br-an", "throttled again").to_string()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(header(&r.headers, "x-switchyard-deployment"), "an");
    assert_eq!(header(&r.headers, "x-switchyard-attempts"), "1");
    assert_eq!(r.body["content"][0]["text"], expected_answer("throttled again"));
    assert_eq!(h.requests("br"), 1);
    // Once the cool-down is over, a throttled stream fails over before any content.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let raw = openai_stream_text(&h, with_usage(ask("br-an", "throttled stream"))).await;
    let s = read_openai_stream(&raw, ANTHROPIC_MODEL);
    assert_eq!(s.text, expected_answer("throttled stream"));
    assert!(s.comments.contains("x-switchyard-route: an"), "{}", s.comments);
    assert_eq!(h.seen("br", Seen::ErrorStatus(429)), 2);
    let metrics = h.metrics().await;
    assert!(metrics.contains(&attempts_metric("br", "rate_limited", 2)), "{metrics}");
    assert!(metrics.contains(&attempts_metric("an", "ok", 3)), "{metrics}");

    // Every deployment rate limited: a 429 with Retry-After, naming the attempts.
    h.faults("an", r#"[{"kind":"error","status":429}]"#);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = h.chat(ask("br-an", "all throttled")).await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(!header(&r.headers, "retry-after").is_empty());
    let message = r.body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("br:") && message.contains("an:"), "{message}");
}

#[tokio::test(start_paused = true)]
async fn a_full_bedrock_deployment_fails_over_to_openai() {
    let text = config().replace(
        "answer_tokens: [12, 12] }\n  - name: an",
        "answer_tokens: [12, 12], max_concurrency: 1 }\n  - name: an",
    );
    let h = Harness::memory_with_secrets(&text, &Secrets::issued(), &Secrets::issued()).await;
    h.faults("br", r#"[{"kind":"slow_first_token","delay_ms":300}]"#);
    let held = h.stream(KEY, ask("bedrock", "holding the slot"));
    let then = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        h.chat(ask("br-oa", "no room")).await
    };
    let (held, r) = tokio::join!(held, then);
    assert!(held.done && held.error.is_none(), "{:?}", held.error);
    assert_eq!(held.content, expected_answer("holding the slot"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(header(&r.headers, "x-switchyard-deployment"), "oa");
    assert_eq!(header(&r.headers, "x-switchyard-attempts"), "2");
    assert_eq!(r.body["choices"][0]["message"]["content"], expected_answer("no room"));
    assert_eq!(r.elapsed, ANSWER_TIME, "the ThrottlingException's second is not waited out");
    assert_eq!(h.seen("br", Seen::RateLimited), 1);
    assert_eq!(h.seen("oa", Seen::Completed), 1);
}

#[tokio::test(start_paused = true)]
async fn a_bedrock_outage_fails_over_to_openai_and_anthropic() {
    let h = harness().await;
    h.faults("br", r#"[{"kind":"outage"}]"#);
    let r = h.chat(ask("br-oa", "outage")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(header(&r.headers, "x-switchyard-deployment"), "oa");
    assert_eq!(header(&r.headers, "x-switchyard-cloud"), "oai");
    assert_eq!(header(&r.headers, "x-switchyard-attempts"), "2");
    assert_eq!(r.body["model"], OPENAI_MODEL);
    assert_eq!(r.body["choices"][0]["message"]["content"], expected_answer("outage"));
    // An Anthropic caller, streamed, to the Anthropic deployment behind it.
    let text = messages_stream_text(&h, say("br-an", "outage stream")).await;
    let (streamed, finish, starts, comments) = strict_messages(&text);
    assert_eq!((streamed, finish, starts), (expected_answer("outage stream"), FinishReason::Stop, 1));
    assert!(comments.contains("x-switchyard-route: an"), "{comments}");
    assert_eq!(h.seen("br", Seen::ConnectionReset), 2);
    assert_eq!(h.seen("oa", Seen::Completed) + h.seen("an", Seen::Completed), 2);
    let metrics = h.metrics().await;
    assert!(metrics.contains(&attempts_metric("br", "reset", 2)), "{metrics}");
    // Only Bedrock, down: every attempt failed, and the answer says where.
    let r = h.chat(ask("bedrock", "nowhere")).await;
    assert_eq!(r.status, 502, "{}", r.body);
    assert_eq!(header(&r.headers, "x-switchyard-deployment"), "br");
    assert!(r.body["error"]["message"].as_str().unwrap_or_default().contains("br:"), "{}", r.body);
}

#[tokio::test(start_paused = true)]
async fn a_cut_bedrock_stream_is_continued_on_anthropic_and_openai() {
    let h = harness().await;
    h.faults("br", r#"[{"kind":"cut","after_tokens":4}]"#);
    for (alias, next, n) in [("br-an", "an", 1), ("br-oa", "oa", 2)] {
        let prompt = format!("cut and continued on {next}");
        let raw = openai_stream_text(&h, with_usage(ask(alias, &prompt))).await;
        // One stream: Bedrock's identity and model throughout, the text exactly once.
        let s = read_openai_stream(&raw, BEDROCK_MODEL);
        assert_eq!(s.text, expected_answer(&prompt), "{alias}: nothing lost or repeated");
        assert_eq!(s.finish, "stop");
        assert_eq!(s.usage.expect("usage")["completion_tokens"], 12, "every delivered token counted once");
        assert!(s.comments.contains(&format!("x-switchyard-route: br,{next}")), "{}", s.comments);
        assert_eq!(h.seen("br", Seen::Cut), n);
        let records = h.emulator.deployment(next).unwrap().records();
        assert_eq!(records.len(), 1, "{alias}: {records:?}");
        assert!(records[0].prefill && records[0].stream, "continued from a prefill: {records:?}");
        assert_eq!(records[0].outcome, Seen::Completed);
    }
    // An Anthropic caller's stream, cut on Bedrock, is one Messages stream continued on Anthropic.
    let text = messages_stream_text(&h, say("br-an", "one message")).await;
    let (streamed, finish, starts, comments) = strict_messages(&text);
    assert_eq!((streamed, finish, starts), (expected_answer("one message"), FinishReason::Stop, 1));
    let (events, _) = openai_events(&text);
    assert_eq!(events.iter().filter(|e| e["type"] == "content_block_start").count(), 1, "one text block");
    assert!(comments.contains("x-switchyard-route: br,an"), "{comments}");
    assert_eq!(h.seen("br", Seen::Cut), 3);
    let metrics = h.metrics().await;
    assert!(metrics.contains(&attempts_metric("br", "stream_cut", 3)), "{metrics}");
    assert!(metrics.contains("switchyard_stream_continuations_total{result=\"ok\"} 3"), "{metrics}");
}

#[tokio::test(start_paused = true)]
async fn a_cut_anthropic_stream_is_continued_on_openai() {
    let h = harness().await;
    h.faults("an", r#"[{"kind":"cut","after_tokens":5}]"#);
    let raw = openai_stream_text(&h, with_usage(ask("an-oa", "from anthropic to openai"))).await;
    let s = read_openai_stream(&raw, ANTHROPIC_MODEL);
    assert_eq!(s.text, expected_answer("from anthropic to openai"));
    assert!(s.comments.contains("x-switchyard-route: an,oa"), "{}", s.comments);
    assert_eq!(h.seen("an", Seen::Cut), 1);
    assert!(h.emulator.deployment("oa").unwrap().records().iter().all(|r| r.prefill));
}

#[tokio::test(start_paused = true)]
async fn a_cut_openai_stream_is_continued_on_bedrock_from_a_signed_prefill() {
    let h = harness().await;
    h.faults("oa", r#"[{"kind":"cut","after_tokens":6}]"#);
    let raw = openai_stream_text(&h, with_usage(ask("oa-br", "from openai to bedrock"))).await;
    let s = read_openai_stream(&raw, OPENAI_MODEL);
    assert_eq!(s.text, expected_answer("from openai to bedrock"));
    assert_eq!(s.usage.expect("usage")["completion_tokens"], 12);
    assert!(s.comments.contains("x-switchyard-route: oa,br"), "{}", s.comments);
    assert_eq!(h.seen("oa", Seen::Cut), 1);
    let records = h.emulator.deployment("br").unwrap().records();
    assert_eq!(records.len(), 1, "{records:?}");
    assert!(records[0].prefill && records[0].outcome == Seen::Completed, "{records:?}");
    // An Anthropic caller's, too.
    let text = messages_stream_text(&h, say("oa-br", "anthropic via openai to bedrock")).await;
    let (streamed, finish, starts, comments) = strict_messages(&text);
    assert_eq!((streamed, finish, starts), (expected_answer("anthropic via openai to bedrock"), FinishReason::Stop, 1));
    assert!(comments.contains("x-switchyard-route: oa,br"), "{comments}");
    assert_eq!(h.seen("br", Seen::Completed), 2);
}

#[tokio::test(start_paused = true)]
async fn a_wrong_aws_secret_is_refused_by_bedrock_and_fails_over() {
    let h = harness_holding(&Secrets::issued().with("AWS_SECRET_ACCESS_KEY", "not-the-secret")).await;
    let r = h.chat(ask("br-oa", "signed wrong")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(header(&r.headers, "x-switchyard-deployment"), "oa");
    assert_eq!(header(&r.headers, "x-switchyard-attempts"), "2");
    assert_eq!(r.body["choices"][0]["message"]["content"], expected_answer("signed wrong"));
    assert_eq!(h.seen("br", Seen::Unauthorized), 1, "the signature was checked and refused");
    assert_eq!(h.requests("br"), 1);
    // Streams too, before any content.
    let raw = openai_stream_text(&h, ask("br-an", "signed wrong, streamed")).await;
    let s = read_openai_stream(&raw, ANTHROPIC_MODEL);
    assert_eq!(s.text, expected_answer("signed wrong, streamed"));
    assert_eq!(h.seen("br", Seen::Unauthorized), 2);
    let metrics = h.metrics().await;
    assert!(metrics.contains(&attempts_metric("br", "upstream_refused", 2)), "{metrics}");
    // With nowhere else to go, the caller is told of the 403.
    let r = h.chat(ask("bedrock", "nowhere")).await;
    assert_eq!(r.status, 502, "{}", r.body);
    let message = r.body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("br:") && message.contains("403"), "{message}");
    assert_eq!(h.seen("br", Seen::Unauthorized), 3);
    assert_eq!(h.seen("br", Seen::Completed), 0);
}

#[tokio::test(start_paused = true)]
async fn an_unknown_aws_key_id_is_refused_by_bedrock_and_fails_over() {
    let h = harness_holding(&Secrets::issued().with("AWS_ACCESS_KEY_ID", "AKIDSTRANGER")).await;
    let r = h.post(MESSAGES, Some(KEY), say("br-an", "stranger").to_string()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(header(&r.headers, "x-switchyard-deployment"), "an");
    assert_eq!(header(&r.headers, "x-switchyard-attempts"), "2");
    assert_eq!(r.body["content"][0]["text"], expected_answer("stranger"));
    assert_eq!(h.seen("br", Seen::Unauthorized), 1);
}

#[tokio::test(start_paused = true)]
async fn a_wrong_anthropic_key_is_refused_and_fails_over() {
    let h = harness_holding(&Secrets::issued().with("ANTHROPIC_API_KEY", "sk-ant-wrong")).await;
    let r = h.chat(ask("an-oa", "wrong key")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(header(&r.headers, "x-switchyard-deployment"), "oa");
    assert_eq!(header(&r.headers, "x-switchyard-attempts"), "2");
    assert_eq!(r.body["choices"][0]["message"]["content"], expected_answer("wrong key"));
    assert_eq!(h.seen("an", Seen::Unauthorized), 1);
    let text = messages_stream_text(&h, say("an-oa", "wrong key, streamed")).await;
    let (streamed, _, _, comments) = strict_messages(&text);
    assert_eq!(streamed, expected_answer("wrong key, streamed"));
    assert!(comments.contains("x-switchyard-route: oa"), "{comments}");
    assert_eq!(h.seen("an", Seen::Unauthorized), 2);
    let metrics = h.metrics().await;
    assert!(metrics.contains(&attempts_metric("an", "upstream_refused", 2)), "{metrics}");
    let r = h.chat(ask("anthropic", "nowhere")).await;
    assert_eq!(r.status, 502, "{}", r.body);
    let message = r.body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("an:") && message.contains("401"), "{message}");
    // Bedrock, holding the right credentials, is unaffected.
    let r = h.chat(ask("bedrock", "fine")).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test(start_paused = true)]
async fn what_bedrock_cannot_express_is_a_400_naming_it_and_nothing_is_sent() {
    let h = harness().await;
    // The planner passes over deployments whose protocol cannot express the request: with
    // none left, the 400 names the parameter and no attempt is made.
    let check = |r: &Reply, param: &str| {
        assert_eq!(r.status, 400, "{}", r.body);
        let error = &r.body["error"];
        assert!(error.is_object(), "OpenAI-shaped: {}", r.body);
        assert!(error["type"].is_string(), "{}", r.body);
        let message = error["message"].as_str().unwrap_or_default();
        assert!(message.contains(param), "{message:?} does not name {param}");
        assert!(r.headers.get("x-switchyard-deployment").is_none(), "no attempt was made");
    };
    let mut json_mode = ask("bedrock", "json please");
    json_mode["response_format"] = json!({"type": "json_object"});
    let r = h.chat(json_mode.clone()).await;
    check(&r, "response_format");
    assert_eq!(r.body["error"]["code"], "unsupported_parameter", "{}", r.body);
    // Asked as a stream: the same 400, before any stream begins.
    json_mode["stream"] = json!(true);
    let r = h.post("/v1/chat/completions", Some(KEY), json_mode.to_string()).await;
    check(&r, "response_format");
    // Tools offered with tool_choice "none": Converse has no way to say it.
    let mut none = ask("bedrock", "Weather in Paris?");
    none["tools"] = json!([weather_tool()]);
    none["tool_choice"] = json!("none");
    check(&h.chat(none).await, "tool_choice");
    assert_eq!(h.requests("br"), 0, "nothing reached Bedrock");
    // Not a failure of the deployment: it still answers.
    let r = h.chat(ask("bedrock", "plain")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(h.requests("br"), 1);
    // Anthropic's Messages API has no response_format either.
    let mut json_mode = ask("anthropic", "json please");
    json_mode["response_format"] = json!({"type": "json_object"});
    check_anthropic(&h.chat(json_mode).await);
    assert_eq!(h.requests("an"), 0, "nothing reached Anthropic");
}

fn check_anthropic(r: &Reply) {
    assert_eq!(r.status, 400, "{}", r.body);
    let message = r.body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("response_format"), "{message:?}");
    assert!(r.headers.get("x-switchyard-deployment").is_none(), "no attempt was made");
}

/// In an alias that mixes protocols, a request one protocol cannot express goes to a
/// deployment whose protocol can, whichever was planned first.
#[tokio::test(start_paused = true)]
async fn a_request_goes_to_a_deployment_whose_protocol_can_express_it() {
    let h = harness().await;
    for i in 0..6 {
        let mut json_mode = ask("br-oa", &format!("json please {i}"));
        json_mode["response_format"] = json!({"type": "json_object"});
        let r = h.chat(json_mode).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(header(&r.headers, "x-switchyard-deployment"), "oa");
        assert_eq!(header(&r.headers, "x-switchyard-attempts"), "1", "no attempt wasted on br");
    }
    assert_eq!(h.requests("br"), 0, "nothing reached Bedrock");
}

#[tokio::test]
async fn a_translated_request_is_on_record_with_its_deployment_and_tokens() {
    let (h, store) = Harness::with_ledger_secrets(&config(), &Secrets::issued(), &[]).await;
    let whole = h.chat(ask("bedrock", "on record")).await;
    assert_eq!(whole.status, 200, "{}", whole.body);
    h.faults("br", r#"[{"kind":"error","status":429}]"#);
    let failover = h.post(MESSAGES, Some(KEY), say("br-an", "failed over").to_string()).await;
    assert_eq!(failover.status, 200, "{}", failover.body);
    assert_eq!(header(&failover.headers, "x-switchyard-deployment"), "an");
    h.flush_ledger().await;
    let records = store.recent(10).await.expect("records");
    assert_eq!(records.len(), 2, "{records:?}");

    let r = records.iter().find(|r| r.alias == "bedrock").expect("the Bedrock request");
    assert_eq!(
        (r.deployment.as_deref(), r.cloud.as_deref(), r.region.as_deref()),
        (Some("br"), Some("aws"), Some("us-east-1"))
    );
    assert_eq!((r.protocol.as_str(), r.status, r.outcome.as_str()), ("openai", 200, "ok"));
    let usage = &whole.body["usage"];
    let (prompt, completion) = (usage["prompt_tokens"].as_u64().unwrap(), usage["completion_tokens"].as_u64().unwrap());
    assert_eq!((r.input_tokens, r.output_tokens), (prompt, completion));
    assert_eq!(completion, 12);
    let expected = (prompt as f64 * 3.0 + completion as f64 * 15.0) / 1e6;
    assert!((r.cost_usd - expected).abs() < 1e-12, "{} vs {expected}", r.cost_usd);
    assert_eq!(r.attempts.len(), 1);
    assert_eq!((r.attempts[0].deployment.as_str(), r.attempts[0].outcome.as_str()), ("br", "ok"));
    assert_eq!(r.attempts[0].output_tokens, 12);

    let r = records.iter().find(|r| r.alias == "br-an").expect("the failed-over request");
    assert_eq!((r.deployment.as_deref(), r.cloud.as_deref()), (Some("an"), Some("ant")));
    assert_eq!((r.protocol.as_str(), r.status), ("anthropic", 200));
    let usage = &failover.body["usage"];
    assert_eq!((r.input_tokens, r.output_tokens), (usage["input_tokens"].as_u64().unwrap(), 12));
    let attempts: Vec<(&str, &str)> = r.attempts.iter().map(|a| (a.deployment.as_str(), a.outcome.as_str())).collect();
    assert_eq!(attempts, [("br", "rate_limited"), ("an", "ok")]);
    assert_eq!(r.attempts[0].output_tokens, 0);
}

/// What an Anthropic caller asks for that OpenAI's protocol cannot express (`top_k`, a
/// prefill) reaches Anthropic and Bedrock deployments whole; OpenAI ones are passed over.
#[tokio::test(start_paused = true)]
async fn an_anthropic_callers_own_parameters_reach_anthropic_and_bedrock() {
    let h = harness().await;
    for (alias, deployment) in [("an-oa", "an"), ("br-oa", "br"), ("oa-br", "br")] {
        let mut body = say(alias, "Tell me more");
        body["top_k"] = json!(5);
        let r = h.post(MESSAGES, Some(KEY), body.to_string()).await;
        assert_eq!(r.status, 200, "{alias}: {}", r.body);
        assert_eq!(header(&r.headers, "x-switchyard-deployment"), deployment, "{alias}");
        assert_eq!(header(&r.headers, "x-switchyard-attempts"), "1", "{alias}: no attempt on oa");
        assert_eq!(r.body["content"][0]["text"], expected_answer("Tell me more"), "{alias}");

        // A prefill: the model continues the caller's own start.
        let user = json!({"role": "user", "content": "Tell me more"});
        let full = answer_tokens(conversation_key(std::slice::from_ref(&user)), (12, 12));
        let prefill = full[..3].concat();
        let mut body = say(alias, "Tell me more");
        body["messages"] = json!([user, {"role": "assistant", "content": prefill.trim_end()}]);
        let r = h.post(MESSAGES, Some(KEY), body.to_string()).await;
        assert_eq!(r.status, 200, "{alias}: {}", r.body);
        assert_eq!(header(&r.headers, "x-switchyard-deployment"), deployment, "{alias}");
        let rest = r.body["content"][0]["text"].as_str().unwrap_or_default().to_owned();
        assert!(full.concat().ends_with(&rest) && !rest.is_empty(), "{alias}: {rest:?} continues {prefill:?}");
        assert!(rest.len() < full.concat().len(), "{alias}: only the rest");

        // Streamed too.
        let mut body = say(alias, "Stream more");
        body["top_k"] = json!(5);
        let text = messages_stream_text(&h, body).await;
        let (streamed, finish, _, comments) = strict_messages(&text);
        assert_eq!((streamed, finish), (expected_answer("Stream more"), FinishReason::Stop), "{alias}");
        assert!(comments.contains(&format!("x-switchyard-route: {deployment}")), "{comments}");
    }
    assert_eq!(h.requests("oa"), 0, "OpenAI was never asked");
}

/// A carried request cut on Bedrock is continued on Anthropic from what was delivered, with the
/// caller's own parameters still whole; the text arrives exactly once.
#[tokio::test(start_paused = true)]
async fn a_cut_carried_request_is_continued_whole() {
    let h = harness().await;
    h.faults("br", r#"[{"kind":"cut","after_tokens":4}]"#);
    let mut body = say("br-an", "carried and cut");
    body["top_k"] = json!(5);
    let text = messages_stream_text(&h, body).await;
    let (streamed, finish, starts, comments) = strict_messages(&text);
    assert_eq!((streamed, finish, starts), (expected_answer("carried and cut"), FinishReason::Stop, 1));
    assert!(comments.contains("x-switchyard-route: br,an"), "{comments}");
    let records = h.emulator.deployment("an").unwrap().records();
    assert!(records.len() == 1 && records[0].prefill, "continued from a prefill: {records:?}");
}

/// A request the translating codec cannot read (a message `name`) is sent as it is, to an
/// OpenAI deployment, whichever the plan put first; the gateway's own carrier field is never
/// taken from an OpenAI caller.
#[tokio::test(start_paused = true)]
async fn what_only_openai_can_read_goes_to_openai_and_the_carrier_is_refused() {
    let h = harness().await;
    let mut named = ask("br-oa", "who am I");
    named["messages"][0]["name"] = json!("alice");
    let r = h.chat(named).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(header(&r.headers, "x-switchyard-deployment"), "oa");
    assert_eq!(header(&r.headers, "x-switchyard-attempts"), "1");

    for key in ["x_switchyard_anthropic", "x_switchyard_anthropi\\u0063"] {
        let smuggled = format!(
            r#"{{"model":"br-an","messages":[{{"role":"user","content":"hi"}}],"{key}":{{"model":"x","max_tokens":9,"messages":[{{"role":"user","content":"big"}}]}}}}"#
        );
        let r = h.post("/v1/chat/completions", Some(KEY), smuggled).await;
        assert_eq!(r.status, 400, "{key}: {}", r.body);
        assert!(
            r.body["error"]["message"].as_str().unwrap_or_default().contains("x_switchyard_anthropic"),
            "{}",
            r.body
        );
    }
    assert_eq!(h.requests("br") + h.requests("an"), 0, "nothing was sent");
}

/// An OpenAI caller routed to Azure OpenAI deployments, at a deployment URL and at the v1 path:
/// whole answers, streams and tool calls come back as OpenAI's, passed through, with Azure's
/// content-filter annotations.
#[tokio::test(start_paused = true)]
async fn an_openai_caller_is_answered_by_azure_at_both_kinds_of_url() {
    let h = harness().await;
    for (alias, deployment, model) in [("azure", "az", "gpt-4o-prod"), ("azure-v1", "az1", "gpt-4o-v1")] {
        let r = h.chat(ask(alias, "hello")).await;
        assert_eq!(r.status, 200, "{alias}: {}", r.body);
        assert_eq!(r.elapsed, ANSWER_TIME, "{alias}");
        assert_eq!(header(&r.headers, "x-switchyard-deployment"), deployment);
        assert_eq!(header(&r.headers, "x-switchyard-cloud"), "azure");
        assert_eq!(header(&r.headers, "x-switchyard-attempts"), "1");
        assert_eq!((r.body["object"].as_str(), r.body["model"].as_str()), (Some("chat.completion"), Some(model)));
        assert_eq!(r.body["choices"][0]["message"]["content"], expected_answer("hello"), "{alias}");
        // Azure's content-filter annotations pass through: the prompt's and the choice's.
        let safe = json!({"filtered": false, "severity": "safe"});
        assert_eq!(r.body["prompt_filter_results"][0]["content_filter_results"]["hate"], safe, "{}", r.body);
        assert_eq!(r.body["choices"][0]["content_filter_results"]["violence"], safe, "{}", r.body);

        let raw = openai_stream_text(&h, with_usage(ask(alias, "stream it"))).await;
        let annotated = raw.lines().filter(|l| l.contains("\"content_filter_results\"")).count();
        assert!(raw.contains("\"prompt_filter_results\"") && annotated > 2, "{alias}: {raw}");
        let s = read_openai_stream(&raw, model);
        assert_eq!((s.text.as_str(), s.finish.as_str()), (expected_answer("stream it").as_str(), "stop"), "{alias}");
        assert_eq!(s.usage.map(|u| u["completion_tokens"].clone()), Some(json!(12)), "{alias}");
        assert!(s.comments.contains(&format!("x-switchyard-route: {deployment}")), "{}", s.comments);

        let mut tools = ask(alias, "Weather in Paris?");
        tools["tools"] = json!([weather_tool()]);
        let r = h.chat(tools).await;
        assert_eq!(r.status, 200, "{alias}: {}", r.body);
        let choice = &r.body["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls", "{}", r.body);
        assert_eq!(choice["message"]["tool_calls"][0]["function"]["name"], "get_weather", "{}", r.body);

        assert_eq!(h.seen(deployment, Seen::Completed), 3, "{alias}");
        assert_eq!(h.requests(deployment), 3, "{alias}: nothing refused (the key checked out)");
    }
    // An Anthropic caller is answered by Azure too, through the same OpenAI body.
    let r = h.post(MESSAGES, Some(KEY), say("azure", "from messages").to_string()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["content"][0]["text"], expected_answer("from messages"));
    assert_eq!(h.requests("oa"), 0);
}

/// Azure's 401 for a wrong `api-key` is a refusal of the deployment: it fails over, counted as
/// `upstream_refused`, and the caller never sees it.
#[tokio::test(start_paused = true)]
async fn a_wrong_azure_key_is_refused_and_fails_over() {
    let h = harness_holding(&Secrets::issued().with("AZURE_OPENAI_API_KEY", "wrong-key")).await;
    let r = h.chat(ask("az-oa", "wrong key")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(header(&r.headers, "x-switchyard-deployment"), "oa");
    assert_eq!(header(&r.headers, "x-switchyard-attempts"), "2");
    assert_eq!(r.body["choices"][0]["message"]["content"], expected_answer("wrong key"));
    let raw = openai_stream_text(&h, ask("az-oa", "wrong key, streamed")).await;
    assert_eq!(read_openai_stream(&raw, OPENAI_MODEL).text, expected_answer("wrong key, streamed"));
    assert_eq!(h.seen("az", Seen::Unauthorized), 2);
    let metrics = h.metrics().await;
    assert!(metrics.contains(&attempts_metric("az", "upstream_refused", 2)), "{metrics}");
    let r = h.chat(ask("azure", "nowhere")).await;
    assert_eq!(r.status, 502, "{}", r.body);
    let message = r.body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("az:") && message.contains("401"), "{message}");
}

/// Azure's content filter (its 400 with `ResponsibleAIPolicyViolation`) is returned to the
/// caller as a content filter, not failed over.
#[tokio::test(start_paused = true)]
async fn an_azure_content_filter_reaches_the_caller() {
    let h = harness().await;
    h.faults("az", r#"[{"kind":"content_filter"}]"#);
    let r = h.chat(ask("az-oa", "filtered")).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "content_filter", "{}", r.body);
    assert_eq!(header(&r.headers, "x-switchyard-deployment"), "az");
    assert_eq!(h.requests("oa"), 0, "a content filter is not failed over");
    assert_eq!(h.seen("az", Seen::ContentFilter), 1);
}

/// Azure takes OpenAI's bodies as they are: an alias of Azure and OpenAI deployments needs no
/// translation check, and an Anthropic caller's own parameters (carried for Anthropic and
/// Bedrock) pass Azure over as they pass OpenAI over.
#[tokio::test(start_paused = true)]
async fn azure_is_passed_over_for_what_only_anthropic_can_express() {
    let h = harness().await;
    let mut body = say("az-an", "top k");
    body["top_k"] = json!(5);
    let r = h.post(MESSAGES, Some(KEY), body.to_string()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(header(&r.headers, "x-switchyard-deployment"), "an");
    assert_eq!(header(&r.headers, "x-switchyard-attempts"), "1", "no attempt wasted on Azure");
    assert_eq!(h.requests("az"), 0, "nothing reached Azure");
    // What only OpenAI's shape can say (a message `name`) is fine for Azure.
    let mut named = ask("az-an", "who am I");
    named["messages"][0]["name"] = json!("alice");
    let r = h.chat(named).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(header(&r.headers, "x-switchyard-deployment"), "az");
}
