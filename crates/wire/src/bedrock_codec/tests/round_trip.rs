//! Canonical → Converse → canonical keeps the meaning, and so do Anthropic and OpenAI
//! requests, answers and streams crossing to Converse and back. What Converse has no field
//! for is named.

use super::request::canonical_request;
use super::response::canonical_response;
use super::stream::tool_stream_events;
use super::{check_json, decode, encode, ev, frames};
use crate::bedrock_codec::{decode_request, decode_response, encode_request, encode_response};
use crate::canonical::{FinishReason, Response, StreamEvent, Usage};
use crate::{anthropic_codec, openai_codec};

#[test]
fn a_canonical_request_crosses_to_converse_and_back() {
    let request = canonical_request();
    let body = encode_request(&request).unwrap();
    let back = decode_request(body.to_string().as_bytes(), &request.model, request.stream).unwrap();
    assert_eq!(back, request);
}

#[test]
fn an_anthropic_request_crosses_to_converse_and_back() {
    let body = r#"{
        "model": "claude-x", "max_tokens": 300,
        "system": [{"type": "text", "text": "One."}, {"type": "text", "text": "Two."}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Look:"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/gif", "data": "R0lGOD"}}]},
            {"role": "assistant", "content": [{"type": "text", "text": "Calling."},
                {"type": "tool_use", "id": "toolu_1", "name": "zoom", "input": {"factor": 2}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "zoomed", "is_error": true}]},
            {"role": "assistant", "content": "So"}
        ],
        "tools": [{"name": "zoom", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "tool", "name": "zoom"},
        "stop_sequences": ["%%"], "temperature": 1, "top_k": 7, "metadata": {"user_id": "u-1"}, "stream": true
    }"#;
    let canonical = anthropic_codec::decode_request(body.as_bytes()).unwrap();
    let converse = encode_request(&canonical).unwrap();
    check_json(
        &converse,
        r#"{
            "system": [{"text": "One."}, {"text": "Two."}],
            "messages": [
                {"role": "user", "content": [{"text": "Look:"}, {"image": {"format": "gif", "source": {"bytes": "R0lGOD"}}}]},
                {"role": "assistant", "content": [{"text": "Calling."},
                    {"toolUse": {"toolUseId": "toolu_1", "name": "zoom", "input": {"factor": 2}}}]},
                {"role": "user", "content": [{"toolResult": {"toolUseId": "toolu_1", "content": [{"text": "zoomed"}], "status": "error"}}]},
                {"role": "assistant", "content": [{"text": "So"}]}
            ],
            "inferenceConfig": {"maxTokens": 300, "temperature": 1.0, "stopSequences": ["%%"]},
            "toolConfig": {"tools": [{"toolSpec": {"name": "zoom", "inputSchema": {"json": {"type": "object"}}}}],
                "toolChoice": {"tool": {"name": "zoom"}}},
            "additionalModelRequestFields": {"top_k": 7},
            "requestMetadata": {"user_id": "u-1"}
        }"#,
    );
    let back = decode_request(converse.to_string().as_bytes(), &canonical.model, canonical.stream).unwrap();
    assert_eq!(back, canonical);
    assert_eq!(anthropic_codec::encode_request(&back).unwrap(), anthropic_codec::encode_request(&canonical).unwrap());
}

#[test]
fn an_openai_request_crosses_to_converse_and_back() {
    let body = r#"{"model": "gpt-x", "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Hi"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "done"}
        ],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        "tool_choice": "required", "max_completion_tokens": 64, "top_p": 0.5, "user": "u-9", "stream": false}"#;
    let canonical = openai_codec::decode_request(body.as_bytes()).unwrap();
    let converse = encode_request(&canonical).unwrap();
    assert_eq!(converse["toolConfig"]["toolChoice"], serde_json::json!({"any": {}}));
    let mut back = decode_request(converse.to_string().as_bytes(), &canonical.model, canonical.stream).unwrap();
    // Converse always reports usage; an OpenAI caller who did not stream did not ask.
    back.include_usage = false;
    assert_eq!(back, canonical);
    assert_eq!(openai_codec::encode_request(&back).unwrap(), openai_codec::encode_request(&canonical).unwrap());
}

#[test]
fn answers_cross_both_ways() {
    let response = canonical_response();
    assert_eq!(decode_response(encode_response(&response).to_string().as_bytes()).unwrap(), response);
    // Anthropic's answer keeps everything but its id and model, which Converse has no place for.
    let anthropic = anthropic_codec::encode_response(&Response { id: "msg_1".into(), model: "c".into(), ..response });
    let from_anthropic = anthropic_codec::decode_response(anthropic.to_string().as_bytes()).unwrap();
    let through = decode_response(encode_response(&from_anthropic).to_string().as_bytes()).unwrap();
    assert_eq!(through, Response { id: String::new(), model: String::new(), ..from_anthropic });
    // OpenAI's reasoning count has no Converse field: it stays inside the output count.
    let usage =
        Usage { input_tokens: 10, output_tokens: 8, cache_read_tokens: 4, cache_write_tokens: 0, reasoning_tokens: 5 };
    let openai = Response {
        id: String::new(),
        model: String::new(),
        content: vec![],
        finish: FinishReason::Length,
        usage: Some(usage),
    };
    let back = decode_response(encode_response(&openai).to_string().as_bytes()).unwrap();
    assert_eq!(back.usage, Some(Usage { reasoning_tokens: 0, ..usage }));
}

#[test]
fn streams_cross_both_ways_event_for_event() {
    let canonical = tool_stream_events();
    assert_eq!(decode(frames(&encode(&canonical))).unwrap(), canonical);
    // An Anthropic stream, with its ids, start usage and pings, through Converse.
    let from_anthropic = vec![
        StreamEvent::MessageStart { id: "msg_1".into(), model: "claude".into(), usage: Some(Usage::default()) },
        StreamEvent::Ping,
        ev::text_block(0),
        ev::text(0, "Hi"),
        ev::stop(0),
        ev::tool_block(1, "toolu_1", "f"),
        ev::stop(1),
        ev::delta(FinishReason::Length, Some(Usage { input_tokens: 5, output_tokens: 2, ..Usage::default() })),
        StreamEvent::MessageStop,
    ];
    let through = decode(frames(&encode(&from_anthropic))).unwrap();
    let mut expected: Vec<StreamEvent> = from_anthropic.into_iter().filter(|e| *e != StreamEvent::Ping).collect();
    expected[0] = ev::start();
    assert_eq!(through, expected);
    // And out to Anthropic's SSE: the same events, with an empty id and model to fill in.
    let mut encoder = anthropic_codec::StreamEncoder::new();
    let mut sse = Vec::new();
    for event in &through {
        encoder.encode(event, &mut sse);
    }
    let mut with_usage = through.clone();
    with_usage[0] =
        StreamEvent::MessageStart { id: String::new(), model: String::new(), usage: Some(Usage::default()) };
    assert_eq!(anthropic_codec::decode_stream(&sse).unwrap(), with_usage);
}
