//! Anthropic Messages.

use std::time::Duration;

use http::Method;
use serde_json::{Value, json};
use switchyard_emulator::Emulator;
use switchyard_wire::anthropic_codec;
use switchyard_wire::canonical::{BlockKind, FinishReason, StreamEvent};

use crate::support::*;

const HEADERS: [(&str, &str); 3] =
    [("x-api-key", ANTHROPIC_KEY), ("anthropic-version", "2023-06-01"), ("content-type", "application/json")];

async fn messages(emulator: &Emulator, body: Value) -> Result<Reply, String> {
    send(emulator, "claude", Method::POST, "/v1/messages", &HEADERS, body.to_string()).await
}

fn say(prompt: &str) -> Value {
    json!({"model": "claude-sonnet-4", "max_tokens": 256, "messages": [{"role": "user", "content": prompt}]})
}

#[tokio::test(start_paused = true)]
async fn plain_and_streamed_answers() {
    let emulator = emulator().await;
    let r = messages(&emulator, say("hello")).await.unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(r.header("request-id").starts_with("req_"));
    let body = r.json();
    let expected = answer_to(&[json!({"role": "user", "content": "hello"})]);
    assert_eq!(body["type"], "message");
    assert_eq!(body["content"], json!([{"type": "text", "text": expected}]));
    assert_eq!(body["stop_reason"], "end_turn");
    assert_eq!(body["usage"]["output_tokens"], 12);
    let decoded = anthropic_codec::decode_response(&r.body).expect("a Messages body");
    assert_eq!(decoded.text(), expected);

    let mut stream = say("hello");
    stream["stream"] = json!(true);
    let r = messages(&emulator, stream).await.unwrap();
    assert_eq!(r.header("content-type"), "text/event-stream");
    let events = anthropic_codec::decode_stream(&r.body).expect("a well-formed stream");
    assert!(matches!(events.first(), Some(StreamEvent::MessageStart { .. })));
    assert!(events.contains(&StreamEvent::Ping));
    assert_eq!(StreamEvent::text_of(&events), expected);
    assert!(
        events.iter().any(|e| matches!(e, StreamEvent::MessageDelta { finish: FinishReason::Stop, usage: Some(u) }
        if u.output_tokens == 12 && u.input_tokens == body["usage"]["input_tokens"].as_u64().unwrap()))
    );
    assert_eq!(events.last(), Some(&StreamEvent::MessageStop));
}

#[tokio::test(start_paused = true)]
async fn a_prefill_is_continued() {
    let emulator = emulator().await;
    let full = answer_to(&[json!({"role": "user", "content": "go on"})]);
    let prefill = &full[..full.len() / 2];
    let mut body = say("go on");
    body["messages"] = json!([{"role": "user", "content": "go on"}, {"role": "assistant", "content": prefill}]);
    let r = messages(&emulator, body).await.unwrap().json();
    assert_eq!(format!("{prefill}{}", r["content"][0]["text"].as_str().unwrap()), full);
    assert_eq!(emulator.deployment("claude").unwrap().records().last().map(|r| r.prefill), Some(true));
}

#[tokio::test(start_paused = true)]
async fn tools_are_called() {
    let emulator = emulator().await;
    let tool = json!({"name": "get_weather", "input_schema": {"type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 2}}, "required": ["city", "days"]}});
    let mut body = say("Weather in Paris?");
    body["tools"] = json!([tool]);
    let r = messages(&emulator, body.clone()).await.unwrap().json();
    assert_eq!(r["stop_reason"], "tool_use");
    let call = &r["content"][0];
    assert_eq!((&call["type"], &call["name"]), (&json!("tool_use"), &json!("get_weather")));
    assert!(call["id"].as_str().unwrap().starts_with("toolu_"));
    assert_eq!(call["input"], json!({"city": "Paris", "days": 2}));

    body["stream"] = json!(true);
    let events = anthropic_codec::decode_stream(&messages(&emulator, body.clone()).await.unwrap().body).unwrap();
    assert!(events.iter().any(|e| matches!(e, StreamEvent::BlockStart { block: BlockKind::ToolUse { .. }, .. })));
    let input: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::ToolInputDelta { partial_json, .. } => Some(partial_json.as_str()),
            _ => None,
        })
        .collect();
    assert!(input.len() > 3);
    assert_eq!(serde_json::from_str::<Value>(&input.concat()).unwrap(), call["input"]);

    body["stream"] = json!(false);
    body["messages"] = json!([
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": [call]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call["id"], "content": "18 C"}]},
    ]);
    let r = messages(&emulator, body).await.unwrap().json();
    assert_eq!(r["stop_reason"], "end_turn");
    assert!(!r["content"][0]["text"].as_str().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn auth_and_versions_are_checked_as_anthropic_does() {
    let emulator = emulator().await;
    let body = say("x").to_string();
    let r = send(&emulator, "claude", Method::POST, "/v1/messages", &HEADERS[1..], body.clone()).await.unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(
        r.json(),
        json!({"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}})
    );
    let wrong = [("x-api-key", "sk-wrong"), HEADERS[1]];
    let r = send(&emulator, "claude", Method::POST, "/v1/messages", &wrong, body.clone()).await.unwrap();
    assert_eq!(r.status, 401);
    let r = send(&emulator, "claude", Method::POST, "/v1/messages", &[HEADERS[0]], body).await.unwrap();
    assert_eq!((r.status.as_u16(), r.json()["error"]["type"].clone()), (400, json!("invalid_request_error")));
    let r = send(&emulator, "claude", Method::GET, "/v1/models", &HEADERS[..2], "").await.unwrap();
    let list = r.json();
    assert_eq!(list["data"][0]["type"], "model");
    assert_eq!(
        (&list["first_id"], &list["last_id"], &list["has_more"]),
        (&json!("claude-sonnet-4"), &json!("claude-sonnet-4"), &json!(false))
    );
    let mut other = say("x");
    other["model"] = json!("claude-other");
    assert_eq!(messages(&emulator, other).await.unwrap().status, 404);
}

#[tokio::test(start_paused = true)]
async fn errors_and_faults_in_anthropics_shapes() {
    let emulator = emulator().await;
    // Capacity 1: a stalled stream holds it, and the next request is overloaded.
    faults(&emulator, "claude", r#"[{"kind": "stall", "after_tokens": 2, "duration_ms": 1000}]"#);
    let mut stream = say("hold");
    stream["stream"] = json!(true);
    let em = &emulator;
    let (held, overloaded) = tokio::join!(messages(em, stream.clone()), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        messages(em, say("next")).await
    });
    let overloaded = overloaded.unwrap();
    assert_eq!(overloaded.status.as_u16(), 529);
    assert_eq!(overloaded.json()["error"]["type"], "overloaded_error");
    assert!(!overloaded.header("retry-after").is_empty());
    assert!(anthropic_codec::decode_stream(&held.unwrap().body).is_ok(), "a stalled stream resumes");

    faults(&emulator, "claude", r#"[{"kind": "error", "status": 429, "retry_after_ms": 2000}]"#);
    let r = messages(&emulator, say("x")).await.unwrap();
    assert_eq!((r.status.as_u16(), r.json()["error"]["type"].clone()), (429, json!("rate_limit_error")));
    assert_eq!(r.header("retry-after"), "2");

    faults(&emulator, "claude", r#"[{"kind": "context_length"}]"#);
    let r = messages(&emulator, say("x")).await.unwrap();
    assert_eq!(r.status, 400);
    let error = anthropic_codec::decode_error(400, &r.body);
    assert_eq!(error.class, switchyard_wire::canonical::ErrorClass::ContextLength);
    assert!(error.message.starts_with("prompt is too long: 4097 tokens > 4096 maximum"), "{}", error.message);
    faults(&emulator, "claude", "[]");
    let mut long = say("x");
    long["max_tokens"] = json!(5000);
    let message = messages(&emulator, long).await.unwrap().json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(message.starts_with("input length and `max_tokens` exceed context limit"), "{message}");

    faults(&emulator, "claude", r#"[{"kind": "content_filter"}]"#);
    let r = messages(&emulator, say("x")).await.unwrap().json();
    assert_eq!((r["stop_reason"].clone(), r["content"].clone()), (json!("refusal"), json!([])));
    let events = anthropic_codec::decode_stream(&messages(&emulator, stream.clone()).await.unwrap().body).unwrap();
    assert!(events.iter().any(|e| matches!(e, StreamEvent::MessageDelta { finish: FinishReason::ContentFilter, .. })));

    faults(&emulator, "claude", r#"[{"kind": "malformed_chunk", "after_tokens": 3}]"#);
    let r = messages(&emulator, stream.clone()).await.unwrap();
    assert!(anthropic_codec::decode_stream(&r.body).is_err(), "a malformed event");
    faults(&emulator, "claude", r#"[{"kind": "no_done"}]"#);
    let r = messages(&emulator, stream.clone()).await.unwrap();
    let error = anthropic_codec::decode_stream(&r.body).expect_err("no message_stop");
    assert!(error.message.contains("message_stop"), "{error}");
    let text = String::from_utf8_lossy(&r.body);
    assert!(text.contains("event: message_delta") && !text.contains("event: message_stop"), "{text}");
    faults(&emulator, "claude", r#"[{"kind": "reset_before_headers"}]"#);
    assert!(messages(&emulator, say("x")).await.is_err());
    let seen = seen(&emulator, "claude");
    for (outcome, n) in [
        ("RateLimited", 1),
        ("ErrorStatus(429)", 1),
        ("ContextLength", 2),
        ("ContentFilter", 2),
        ("Malformed", 1),
        ("NoDone", 1),
    ] {
        assert_eq!(seen.get(outcome), Some(&n), "{outcome}: {seen:?}");
    }
}
