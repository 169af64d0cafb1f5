//! `/v1/messages`: Anthropic's Messages API in front of the OpenAI-protocol emulator. Whole
//! answers and streams in Anthropic's shapes (a stream checked by the strict decoder of
//! `anthropic_codec`), system prompts, images, tools and tool results translated (the
//! emulator's answer depends on the exact OpenAI messages it got), continuations and hold-back
//! under the Anthropic dialect, `x-api-key`, `/v1/models` in Anthropic's shape, and every
//! error in Anthropic's shape.

use std::time::Duration;

use http::Method;
use serde_json::{Value, json};
use switchyard_emulator::{answer_tokens, conversation_key};
use switchyard_wire::anthropic_codec;
use switchyard_wire::canonical::{BlockKind, FinishReason, StreamEvent};
use switchyard_wire::sse::SseParser;

use crate::support::*;

const MESSAGES: &str = "/v1/messages";

/// A Messages request with one user message.
fn say(model: &str, prompt: &str) -> Value {
    json!({"model": model, "max_tokens": 64, "messages": [{"role": "user", "content": prompt}]})
}

/// The emulator's answer to a conversation it received as these OpenAI messages.
fn answer_to(openai_messages: Value) -> String {
    let messages = openai_messages.as_array().expect("messages").clone();
    answer_tokens(conversation_key(&messages), (12, 12)).concat()
}

/// An Anthropic-shaped error with this status and type.
fn check_error(r: &Reply, status: u16, kind: &str, message_part: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    assert_eq!(r.body["type"], "error", "Anthropic-shaped error: {}", r.body);
    assert_eq!(r.body["error"]["type"], kind, "{}", r.body);
    let message = r.body["error"]["message"].as_str().unwrap_or("");
    assert!(message.contains(message_part), "{message:?} does not contain {message_part:?}");
}

async fn json(response: reqwest::Response) -> Value {
    serde_json::from_slice(&response.bytes().await.expect("body")).expect("JSON")
}

/// A stream's raw text: its SSE events (name, JSON data) and comment lines.
fn sse(text: &str) -> (Vec<(String, Value)>, String) {
    let mut parser = SseParser::default();
    let mut events = Vec::new();
    parser.push(text.as_bytes(), &mut events).expect("sse");
    parser.finish(&mut events);
    let comments = text.lines().filter(|l| l.starts_with(':')).collect::<Vec<_>>().join("\n");
    let events = events
        .into_iter()
        .map(|e| (e.event.unwrap_or_default(), serde_json::from_str(&e.data).unwrap_or(Value::String(e.data))))
        .collect();
    (events, comments)
}

async fn stream_text(h: &Harness, mut body: Value) -> String {
    body["stream"] = json!(true);
    let opened = h.send(Method::POST, MESSAGES, Some(KEY), body.to_string()).await;
    assert_eq!(opened.status, 200);
    assert_eq!(header(&opened.headers, "content-type"), "text/event-stream");
    opened.text().await
}

/// The text of a well-formed stream (as the strict decoder reads it), and its finish.
fn strict_text(text: &str) -> (String, FinishReason) {
    let events = anthropic_codec::decode_stream(text.as_bytes()).expect("a well-formed Messages stream");
    let mut out = String::new();
    let mut finish = None;
    for event in events {
        match event {
            StreamEvent::TextDelta { text, .. } => out.push_str(&text),
            StreamEvent::MessageDelta { finish: f, .. } => finish = Some(f),
            StreamEvent::BlockStart { block: BlockKind::ToolUse { .. }, .. } => panic!("no tool calls expected"),
            _ => (),
        }
    }
    (out, finish.expect("a message delta"))
}

#[tokio::test(start_paused = true)]
async fn a_whole_answer_in_anthropics_shape() {
    let h = Harness::memory().await;
    let r = h.post(MESSAGES, Some(KEY), say("chat", "hello").to_string()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.elapsed, ANSWER_TIME, "the same machinery as chat");
    let b = &r.body;
    assert_eq!(
        (b["type"].as_str(), b["role"].as_str(), b["model"].as_str()),
        (Some("message"), Some("assistant"), Some("chat"))
    );
    assert_eq!(b["content"], json!([{"type": "text", "text": expected_answer("hello")}]));
    assert_eq!((b["stop_reason"].as_str(), &b["stop_sequence"]), (Some("end_turn"), &Value::Null));
    assert_eq!(b["usage"]["output_tokens"], 12);
    assert!(b["usage"]["input_tokens"].as_u64().unwrap() > 0, "{b}");
    assert_eq!(header(&r.headers, "x-switchyard-deployment"), "d1");
    // max_tokens goes upstream: a shorter limit cuts the answer.
    let mut short = say("chat", "hello");
    short["max_tokens"] = json!(3);
    let r = h.post(MESSAGES, Some(KEY), short.to_string()).await;
    assert_eq!(
        (r.body["stop_reason"].as_str(), r.body["usage"]["output_tokens"].as_u64()),
        (Some("max_tokens"), Some(3))
    );
    let metrics = h.metrics().await;
    assert!(metrics.contains("switchyard_requests_total{api=\"messages\",outcome=\"ok\"} 2"), "{metrics}");
}

#[tokio::test(start_paused = true)]
async fn a_stream_reads_as_anthropics_events_in_order() {
    let h = Harness::memory().await;
    let text = stream_text(&h, say("chat", "stream it")).await;
    let (events, comments) = sse(&text);
    let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
    let mut expected = vec!["message_start", "content_block_start"];
    expected.extend(["content_block_delta"; 12]);
    expected.extend(["content_block_stop", "message_delta", "message_stop"]);
    assert_eq!(names, expected);
    for (name, data) in &events {
        assert_eq!(data["type"], name.as_str(), "each event's data names its type");
    }
    let message = &events[0].1["message"];
    assert_eq!((message["model"].as_str(), message["role"].as_str()), (Some("chat"), Some("assistant")));
    assert_eq!(events[1].1["content_block"], json!({"type": "text", "text": ""}));
    let delta = &events[15].1;
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert_eq!(delta["usage"]["output_tokens"], 12);
    assert!(delta["usage"]["input_tokens"].as_u64().unwrap() > 0, "{delta}");
    assert_eq!(strict_text(&text), (expected_answer("stream it"), FinishReason::Stop));
    assert!(comments.contains("x-switchyard-route: d1"), "{comments}");
    assert!(!text.contains("[DONE]") && !text.contains("chat.completion"), "nothing of OpenAI's: {text}");
    let metrics = h.metrics().await;
    assert!(metrics.contains("switchyard_requests_total{api=\"messages_stream\",outcome=\"ok\"} 1"), "{metrics}");
}

#[tokio::test]
async fn a_cut_stream_is_continued_within_one_anthropic_message() {
    let h = Harness::start().await;
    h.faults("d1", r#"[{"kind":"cut","after_tokens":4}]"#);
    let text = stream_text(&h, say("chat", "one message")).await;
    assert_eq!(strict_text(&text), (expected_answer("one message"), FinishReason::Stop));
    let (events, comments) = sse(&text);
    assert_eq!(events.iter().filter(|(n, _)| n == "message_start").count(), 1);
    assert_eq!(events.iter().filter(|(n, _)| n == "content_block_start").count(), 1, "one text block");
    assert!(comments.contains("x-switchyard-route: d1,d2"), "{comments}");
}

#[tokio::test]
async fn a_held_back_stream_restarted_before_release_is_one_clean_message() {
    let text = config_text(false, false).replace("prefill: true, tools: true", "prefill: false, tools: true").replace(
        "  - { name: solo, policy: priority, deployments: [d1] }",
        "  - { name: solo, policy: priority, deployments: [d1] }\n  - { name: held, policy: priority, deployments: [d1, d2], hold_back_tokens: 100 }",
    );
    let h = Harness::with_config(&text).await;
    h.faults("d1", r#"[{"kind":"cut","after_tokens":5}]"#);
    let text = stream_text(&h, say("held", "hold it")).await;
    assert_eq!(strict_text(&text), (expected_answer("hold it"), FinishReason::Stop), "the cut part never shown");
    let (events, comments) = sse(&text);
    assert_eq!(events.iter().filter(|(n, _)| n == "message_start").count(), 1);
    assert!(comments.contains("x-switchyard-route: d2"), "{comments}");
}

#[tokio::test(start_paused = true)]
async fn a_stream_ended_by_the_deadline_ends_with_an_anthropic_error_event() {
    let h = Harness::memory_with(&config_text(true, false).replace("request_ms: 8000", "request_ms: 800")).await;
    h.faults("d1", r#"[{"kind":"stall","after_tokens":3}]"#);
    let text = stream_text(&h, say("solo", "too slow")).await;
    let (events, _) = sse(&text);
    let (name, data) = events.last().expect("events");
    assert_eq!(name, "error");
    assert_eq!(data["error"]["type"], "timeout_error", "{data}");
    assert!(data["error"]["message"].as_str().unwrap().contains("deadline"), "{data}");
    assert!(!events.iter().any(|(n, _)| n == "message_stop"));
}

#[tokio::test(start_paused = true)]
async fn system_prompts_and_images_are_translated() {
    let h =
        Harness::memory_with(&config_text(true, false).replace("tools: true }", "tools: true, vision: true }")).await;
    let body = json!({
        "model": "chat",
        "max_tokens": 64,
        "system": "Be brief.",
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        ]}],
    });
    let r = h.post(MESSAGES, Some(KEY), body.to_string()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let seen = json!([
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        ]},
    ]);
    assert_eq!(r.body["content"][0]["text"], answer_to(seen), "the emulator got exactly these messages");
    assert_eq!(header(&r.headers, "x-switchyard-deployment"), "d1", "only d1 takes images");
}

#[tokio::test(start_paused = true)]
async fn tools_and_a_tool_result_turn_are_translated() {
    let h = Harness::memory().await;
    let tool = json!({"name": "get_weather", "description": "Weather in a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}});
    let mut body = say("chat", "Weather in Paris?");
    body["tools"] = json!([tool]);
    body["tool_choice"] = json!({"type": "auto"});
    let r = h.post(MESSAGES, Some(KEY), body.to_string()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(header(&r.headers, "x-switchyard-deployment"), "d1", "only d1 takes tools");
    // The emulator calls the tool offered, with arguments from its schema and the question.
    let call = &r.body["content"][0];
    assert_eq!((call["type"].as_str(), call["name"].as_str()), (Some("tool_use"), Some("get_weather")), "{}", r.body);
    assert_eq!(call["input"], json!({"city": "Paris"}));
    assert_eq!(r.body["stop_reason"], "tool_use");

    body["messages"] = json!([
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "18 C"}]},
    ]);
    let r = h.post(MESSAGES, Some(KEY), body.to_string()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let seen = json!([
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": null, "tool_calls": [
            {"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
        ]},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "18 C"},
    ]);
    assert_eq!(r.body["content"][0]["text"], answer_to(seen));
    // Streamed too.
    let text = stream_text(&h, body).await;
    assert_eq!(strict_text(&text).1, FinishReason::Stop);
}

#[tokio::test(start_paused = true)]
async fn what_cannot_be_translated_or_read_is_a_400_naming_it() {
    let h = Harness::memory().await;
    let mut top_k = say("chat", "x");
    top_k["top_k"] = json!(5);
    check_error(&h.post(MESSAGES, Some(KEY), top_k.to_string()).await, 400, "invalid_request_error", "top_k");
    let mut thinking = say("chat", "x");
    thinking["thinking"] = json!({"type": "enabled", "budget_tokens": 1024});
    check_error(&h.post(MESSAGES, Some(KEY), thinking.to_string()).await, 400, "invalid_request_error", "thinking");
    let mut prefill = say("chat", "x");
    prefill["messages"] = json!([{"role": "user", "content": "x"}, {"role": "assistant", "content": "Sure,"}]);
    check_error(&h.post(MESSAGES, Some(KEY), prefill.to_string()).await, 400, "invalid_request_error", "messages[1]");
    let error_result = json!([{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "boom", "is_error": true}]}]);
    let mut body = say("chat", "x");
    body["messages"] = error_result;
    check_error(&h.post(MESSAGES, Some(KEY), body.to_string()).await, 400, "invalid_request_error", "is_error");
    let no_max = json!({"model": "chat", "messages": [{"role": "user", "content": "x"}]});
    check_error(&h.post(MESSAGES, Some(KEY), no_max.to_string()).await, 400, "invalid_request_error", "max_tokens");
    check_error(&h.post(MESSAGES, Some(KEY), "{not json".into()).await, 400, "invalid_request_error", "not valid JSON");
    assert_eq!(h.requests("d1") + h.requests("d2"), 0, "nothing went upstream");
}

#[tokio::test]
async fn x_api_key_authenticates_and_models_answer_in_anthropics_shape() {
    let h = Harness::start().await;
    let net = h.net();
    let post = |key: Option<&str>| {
        let mut request = net
            .client
            .post(format!("{}{MESSAGES}", net.base))
            .header("anthropic-version", "2023-06-01")
            .header("content-type", "application/json")
            .body(say("chat", "keyed").to_string());
        if let Some(key) = key {
            request = request.header("x-api-key", key);
        }
        request.send()
    };
    let ok = post(Some(KEY)).await.unwrap();
    assert_eq!(ok.status(), 200);
    let body: Value = json(ok).await;
    assert_eq!(body["content"][0]["text"], expected_answer("keyed"));
    for (key, message) in [(None, "missing API key"), (Some("sk-wrong"), "invalid API key")] {
        let r = post(key).await.unwrap();
        let reply = Reply {
            status: r.status().as_u16(),
            headers: r.headers().clone(),
            body: json(r).await,
            elapsed: Duration::ZERO,
        };
        check_error(&reply, 401, "authentication_error", message);
    }

    let models = |anthropic: bool| {
        let mut request = net.client.get(format!("{}/v1/models", net.base)).header("x-api-key", EU_KEY);
        if anthropic {
            request = request.header("anthropic-version", "2023-06-01");
        }
        request.send()
    };
    let list: Value = json(models(true).await.unwrap()).await;
    assert_eq!(list["has_more"], false);
    assert_eq!((list["first_id"].as_str(), list["last_id"].as_str()), (Some("chat"), Some("embed")));
    let first = &list["data"][0];
    assert_eq!(
        (first["type"].as_str(), first["id"].as_str(), first["display_name"].as_str()),
        (Some("model"), Some("chat"), Some("chat"))
    );
    assert!(first["created_at"].as_str().unwrap().ends_with('Z'), "{first}");
    let list: Value = json(models(false).await.unwrap()).await;
    assert_eq!(
        (list["object"].as_str(), list["data"][0]["object"].as_str()),
        (Some("list"), Some("model")),
        "OpenAI's without the header"
    );
    let unauthorized = net
        .client
        .get(format!("{}/v1/models", net.base))
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), 401);
    let body: Value = json(unauthorized).await;
    assert_eq!(body["error"]["type"], "authentication_error");
}

#[tokio::test]
async fn errors_are_in_anthropics_shape_with_their_status() {
    let h = Harness::start().await;
    check_error(&h.post(MESSAGES, Some(KEY), say("nope", "x").to_string()).await, 404, "not_found_error", "nope");
    check_error(
        &h.post(MESSAGES, Some(EU_KEY), say("solo", "x").to_string()).await,
        403,
        "permission_error",
        "may not use",
    );
    check_error(
        &h.post(MESSAGES, Some(KEY), say("embed", "x").to_string()).await,
        400,
        "invalid_request_error",
        "embeddings model",
    );
    let big = say("chat", &"x".repeat(70_000)).to_string();
    check_error(&h.post(MESSAGES, Some(KEY), big).await, 413, "request_too_large", "larger than the limit");
    let get = h.send(Method::GET, MESSAGES, Some(KEY), String::new()).await;
    assert_eq!((get.status, header(&get.headers, "allow")), (405, "POST"));
    let body: Value = serde_json::from_str(&get.text().await).unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    h.faults("d1", r#"[{"kind": "error", "status": 500}]"#);
    let failed = h.post(MESSAGES, Some(KEY), say("solo", "fails").to_string()).await;
    check_error(&failed, 502, "api_error", "every eligible deployment failed");
    assert_eq!(header(&failed.headers, "x-switchyard-deployment"), "d1");
    h.faults("d1", r#"[{"kind": "error", "status": 429}]"#);
    let limited = h.post(MESSAGES, Some(KEY), say("solo", "limited").to_string()).await;
    check_error(&limited, 429, "rate_limit_error", "rate limited");
    assert!(!header(&limited.headers, "retry-after").is_empty());
}

#[tokio::test]
async fn a_tenant_limit_is_a_rate_limit_error_and_records_say_anthropic() {
    let text = config_text(true, false).replacen(r#"aliases: ["*"] }"#, r#"aliases: ["*"], limits: { rpm: 2 } }"#, 1);
    let (h, store) = Harness::with_ledger(&text).await;
    assert_eq!(h.post(MESSAGES, Some(KEY), say("chat", "one").to_string()).await.status, 200);
    assert_eq!(h.chat(ask("chat", "two")).await.status, 200);
    let refused = h.post(MESSAGES, Some(KEY), say("chat", "three").to_string()).await;
    check_error(&refused, 429, "rate_limit_error", "requests per minute");
    assert_eq!(header(&refused.headers, "retry-after"), "30");
    h.flush_ledger().await;
    let records = store.recent(10).await.expect("records");
    let mut protocols: Vec<&str> = records.iter().map(|r| r.protocol.as_str()).collect();
    protocols.sort_unstable();
    assert_eq!(protocols, ["anthropic", "openai"], "one of each answered; the refusal has no record");
}
