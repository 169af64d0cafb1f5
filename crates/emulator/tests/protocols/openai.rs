//! OpenAI Chat Completions and Embeddings.

use http::Method;
use serde_json::{Value, json};
use switchyard_wire::canonical::{BlockKind, FinishReason, StreamEvent};
use switchyard_wire::openai_codec;

use crate::support::*;

const AUTH: &str = "Bearer sk-openai";

async fn chat(emulator: &switchyard_emulator::Emulator, body: Value) -> Result<Reply, String> {
    let headers = [("authorization", AUTH), ("content-type", "application/json")];
    send(emulator, "gpt", Method::POST, "/v1/chat/completions", &headers, body.to_string()).await
}

fn weather_tool() -> Value {
    json!({"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
            "required": ["city", "unit"]}}})
}

#[tokio::test(start_paused = true)]
async fn plain_and_streamed_answers() {
    let emulator = emulator().await;
    let messages = [json!({"role": "user", "content": "hello"})];
    let started = tokio::time::Instant::now();
    let r = chat(&emulator, json!({"model": "gpt-4o", "messages": messages})).await.unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    // 40 ms to the first token, then eleven more at 10 ms each.
    assert_eq!(started.elapsed(), std::time::Duration::from_millis(150));
    let body = r.json();
    assert_eq!(body["choices"][0]["message"]["content"], answer_to(&messages));
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(body["usage"]["completion_tokens"], 12);

    let stream = json!({"model": "gpt-4o", "messages": messages, "stream": true,
        "stream_options": {"include_usage": true}});
    let r = chat(&emulator, stream).await.unwrap();
    assert_eq!(r.header("content-type"), "text/event-stream");
    let events = openai_codec::decode_stream(&r.body).expect("a well-formed stream");
    let text: String = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::TextDelta { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(text, answer_to(&messages));
    let usage = events.iter().find_map(|e| match e {
        StreamEvent::MessageDelta { finish: FinishReason::Stop, usage } => *usage,
        _ => None,
    });
    assert_eq!(
        usage.map(|u| (u.input_tokens, u.output_tokens)),
        Some((body["usage"]["prompt_tokens"].as_u64().unwrap(), 12))
    );
}

#[tokio::test(start_paused = true)]
async fn tools_are_called_and_their_results_answered() {
    let emulator = emulator().await;
    let ask = json!({"model": "gpt-4o", "tools": [weather_tool()],
        "messages": [{"role": "user", "content": "What is the weather in Paris?"}]});
    let body = chat(&emulator, ask.clone()).await.unwrap().json();
    let choice = &body["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], Value::Null);
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_weather");
    assert!(call["id"].as_str().unwrap().starts_with("call_"));
    let arguments: Value = serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(arguments, json!({"city": "Paris", "unit": "c"}));

    let mut streamed = ask.clone();
    streamed["stream"] = json!(true);
    let events = openai_codec::decode_stream(&chat(&emulator, streamed).await.unwrap().body).expect("well-formed");
    assert!(events.iter().any(
        |e| matches!(e, StreamEvent::BlockStart { block: BlockKind::ToolUse { name, .. }, .. } if name == "get_weather")
    ));
    let pieces: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::ToolInputDelta { partial_json, .. } => Some(partial_json.as_str()),
            _ => None,
        })
        .collect();
    assert!(pieces.len() > 3, "arguments in several pieces: {pieces:?}");
    assert_eq!(serde_json::from_str::<Value>(&pieces.concat()).unwrap(), arguments);
    assert!(events.iter().any(|e| matches!(e, StreamEvent::MessageDelta { finish: FinishReason::ToolUse, .. })));

    // The tool's choice is honoured: none answers text; a named tool is the one called.
    let mut none = ask.clone();
    none["tool_choice"] = json!("none");
    let body = chat(&emulator, none).await.unwrap().json();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        answer_to(&[json!({"role": "user", "content": "What is the weather in Paris?"})])
    );
    let mut named = ask.clone();
    named["tools"] = json!([{"type": "function", "function": {"name": "other", "parameters": {}}}, weather_tool()]);
    named["tool_choice"] = json!({"type": "function", "function": {"name": "get_weather"}});
    let body = chat(&emulator, named).await.unwrap().json();
    assert_eq!(body["choices"][0]["message"]["tool_calls"][0]["function"]["name"], "get_weather");

    // After the result, text.
    let messages = json!([
        {"role": "user", "content": "What is the weather in Paris?"},
        {"role": "assistant", "content": null, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": "18 C"},
    ]);
    let mut after = ask;
    after["messages"] = messages.clone();
    let body = chat(&emulator, after).await.unwrap().json();
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(body["choices"][0]["message"]["content"], answer_to(messages.as_array().unwrap()));
}

#[tokio::test(start_paused = true)]
async fn json_mode_answers_json() {
    let emulator = emulator().await;
    let messages = json!([{"role": "user", "content": "Give me a city for Alice"}]);
    let object = json!({"model": "gpt-4o", "messages": messages, "response_format": {"type": "json_object"}});
    let body = chat(&emulator, object).await.unwrap().json();
    let text = body["choices"][0]["message"]["content"].as_str().unwrap().to_owned();
    let value: Value = serde_json::from_str(&text).expect("a JSON object");
    assert!(value.is_object(), "{value}");

    let schema = json!({"type": "object", "properties": {
        "name": {"type": "string"}, "age": {"type": "integer"}, "tags": {"type": "array", "items": {"type": "string"}},
    }, "required": ["name", "age", "tags"], "additionalProperties": false});
    let format = json!({"type": "json_schema", "json_schema": {"name": "person", "schema": schema, "strict": true}});
    let request = json!({"model": "gpt-4o", "messages": messages, "response_format": format, "stream": true});
    let events = openai_codec::decode_stream(&chat(&emulator, request).await.unwrap().body).expect("well-formed");
    let pieces: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::TextDelta { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert!(pieces.len() > 3, "{pieces:?}");
    let value: Value = serde_json::from_str(&pieces.concat()).expect("valid JSON when joined");
    // Strings come from the question's names, then the conversation's answer.
    let answer = answer_to(messages.as_array().unwrap());
    assert_eq!(value, json!({"name": "Alice", "age": 1, "tags": [answer]}));
}

#[tokio::test(start_paused = true)]
async fn embeddings_honour_dimensions_and_base64() {
    let emulator = emulator().await;
    let em = &emulator;
    let embed = |body: Value| async move {
        let headers = [("content-type", "application/json")];
        send(em, "emb", Method::POST, "/v1/embeddings", &headers, body.to_string()).await.unwrap().json()
    };
    let floats = embed(json!({"model": "m", "input": ["a", "b"]})).await;
    assert_eq!(floats["data"][0]["embedding"].as_array().unwrap().len(), 8, "8 by default");
    let floats = embed(json!({"model": "m", "input": ["a", "b"], "dimensions": 32})).await;
    let vector: Vec<f32> =
        floats["data"][1]["embedding"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
    assert_eq!(vector.len(), 32);
    let norm: f32 = vector.iter().map(|v| v * v).sum();
    assert!((norm - 1.0).abs() < 1e-4, "unit length: {norm}");
    let encoded =
        embed(json!({"model": "m", "input": ["a", "b"], "dimensions": 32, "encoding_format": "base64"})).await;
    let bytes = base64_decode(encoded["data"][1]["embedding"].as_str().expect("a base64 string"));
    let decoded: Vec<f32> = bytes.chunks(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    assert_eq!(decoded, vector, "the same little-endian f32 values");
    let again = embed(json!({"model": "m", "input": "b", "dimensions": 32})).await;
    assert_eq!(again["data"][0]["embedding"], floats["data"][1]["embedding"], "deterministic per input");
    let bad = embed(json!({"model": "m", "input": "b", "encoding_format": "hex"})).await;
    assert_eq!(bad["error"]["param"], "encoding_format");
}

#[tokio::test(start_paused = true)]
async fn auth_and_faults() {
    let emulator = emulator().await;
    let body = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}], "stream": true});
    let headers = [("authorization", "Bearer wrong")];
    let r = send(&emulator, "gpt", Method::POST, "/v1/chat/completions", &headers, body.to_string()).await.unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["code"], "invalid_api_key");

    faults(&emulator, "gpt", r#"[{"kind": "malformed_chunk", "after_tokens": 2}]"#);
    let r = chat(&emulator, body.clone()).await.unwrap();
    assert!(openai_codec::decode_stream(&r.body).is_err(), "a malformed chunk");
    faults(&emulator, "gpt", r#"[{"kind": "no_done"}]"#);
    let r = chat(&emulator, body.clone()).await.unwrap();
    let text = String::from_utf8_lossy(&r.body);
    assert!(text.contains("\"finish_reason\":\"stop\"") && !text.contains("[DONE]"), "{text}");
    faults(&emulator, "gpt", r#"[{"kind": "cut", "after_tokens": 3}]"#);
    assert!(chat(&emulator, body.clone()).await.is_err(), "the connection is cut");
    faults(&emulator, "gpt", r#"[{"kind": "content_filter"}]"#);
    let r = chat(&emulator, body).await.unwrap();
    assert_eq!((r.status.as_u16(), r.json()["error"]["code"].clone()), (400, json!("content_filter")));
    let seen = seen(&emulator, "gpt");
    for outcome in ["Unauthorized", "Malformed", "NoDone", "Cut", "ContentFilter"] {
        assert_eq!(seen.get(outcome), Some(&1), "{outcome}: {seen:?}");
    }
}
