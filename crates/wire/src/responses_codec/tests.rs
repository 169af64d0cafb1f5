//! The Responses codec: requests decoded (and re-encoded as OpenAI Chat), answers encoded whole
//! and streamed, with the event sequence pinned.

use serde_json::{Value, json};

use super::*;
use crate::canonical::{
    BlockKind, ErrorClass, ErrorObject, FinishReason, OutputPart, Part, Response, Role, StreamEvent, ToolChoice,
    ToolUse, Usage,
};
use crate::openai_codec;

fn decode(body: Value) -> Result<crate::canonical::Request, crate::chat::RequestError> {
    decode_request(body.to_string().as_bytes())
}

#[test]
fn a_string_input_is_one_user_message_and_instructions_the_system_prompt() {
    let r = decode(json!({"model": "m", "input": "hi", "instructions": "Be brief.", "max_output_tokens": 50,
        "temperature": 0.5, "top_p": 0.9, "store": true, "stream": true}))
    .unwrap();
    assert_eq!(r.system, ["Be brief."]);
    assert_eq!(r.messages.len(), 1);
    assert_eq!((r.messages[0].role, &r.messages[0].content), (Role::User, &vec![Part::Text("hi".into())]));
    assert_eq!((r.max_tokens, r.sampling.temperature, r.sampling.top_p), (Some(50), Some(0.5), Some(0.9)));
    assert!(r.stream && r.include_usage);
    let chat = openai_codec::encode_request(&r).unwrap();
    assert_eq!(
        chat["messages"],
        json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}])
    );
    assert_eq!(chat["max_completion_tokens"], 50);
    assert_eq!(chat["stream_options"], json!({"include_usage": true}));
}

#[test]
fn items_become_a_conversation_with_tool_calls_and_results() {
    let r = decode(json!({"model": "m", "input": [
        {"role": "developer", "content": "Use tools."},
        {"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "Weather?"},
            {"type": "input_image", "image_url": "https://x/y.png", "detail": "low"}]},
        {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "get_weather",
            "arguments": "{\"city\":\"Paris\"}", "status": "completed"},
        {"type": "function_call_output", "call_id": "call_1", "output": "18 C"},
        {"role": "assistant", "content": [{"type": "output_text", "text": "18 C.", "annotations": []}]},
        {"role": "user", "content": "Thanks"},
    ], "tools": [{"type": "function", "name": "get_weather", "description": "Weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}, "strict": false}],
       "tool_choice": {"type": "function", "name": "get_weather"}, "parallel_tool_calls": false}))
    .unwrap();
    assert_eq!(r.system, ["Use tools."]);
    let roles: Vec<Role> = r.messages.iter().map(|m| m.role).collect();
    assert_eq!(roles, [Role::User, Role::Assistant, Role::User, Role::Assistant, Role::User]);
    assert_eq!(
        r.messages[1].content,
        [Part::ToolUse(ToolUse { id: "call_1".into(), name: "get_weather".into(), input: json!({"city": "Paris"}) })]
    );
    assert_eq!(r.tools[0].name, "get_weather");
    assert_eq!(r.tools[0].strict, Some(false));
    assert_eq!(r.tool_choice, Some(ToolChoice::Tool { name: "get_weather".into() }));
    let chat = openai_codec::encode_request(&r).unwrap();
    let messages = chat["messages"].as_array().unwrap();
    assert_eq!(messages[2]["tool_calls"][0]["id"], "call_1");
    assert_eq!(messages[3], json!({"role": "tool", "tool_call_id": "call_1", "content": "18 C"}));
    assert_eq!(messages[1]["content"][1]["image_url"], json!({"url": "https://x/y.png", "detail": "low"}));
    assert_eq!(chat["tool_choice"], json!({"type": "function", "function": {"name": "get_weather"}}));
    assert_eq!(chat["parallel_tool_calls"], false);
}

#[test]
fn text_formats_become_response_formats() {
    let r = decode(json!({"model": "m", "input": "x", "text": {"format": {"type": "json_object"}}})).unwrap();
    assert_eq!(openai_codec::encode_request(&r).unwrap()["response_format"], json!({"type": "json_object"}));
    let schema = json!({"type": "object", "properties": {}});
    let r = decode(json!({"model": "m", "input": "x",
        "text": {"format": {"type": "json_schema", "name": "out", "schema": schema, "strict": true}}}))
    .unwrap();
    let chat = openai_codec::encode_request(&r).unwrap();
    assert_eq!(chat["response_format"]["json_schema"], json!({"name": "out", "schema": schema, "strict": true}));
    assert!(
        decode(json!({"model": "m", "input": "x", "text": {"format": {"type": "text"}}}))
            .unwrap()
            .response_format
            .is_none()
    );
}

#[test]
fn what_the_gateway_cannot_do_is_refused_by_name() {
    let refused = |body: Value| decode(body).expect_err("refused");
    let e = refused(json!({"model": "m", "input": "x", "previous_response_id": "resp_1"}));
    assert_eq!((e.message.as_str(), e.param), (NO_STATE, Some("previous_response_id")));
    let e = refused(json!({"model": "m", "input": "x", "tools": [{"type": "web_search"}]}));
    assert_eq!(e.param, Some("tools"));
    assert!(e.message.contains("'web_search' tools are not supported"), "{}", e.message);
    let e = refused(json!({"model": "m", "input": "x", "reasoning": {"effort": "high"}}));
    assert!(e.message.contains("'reasoning'"), "{}", e.message);
    let e = refused(json!({"model": "m", "input": [{"type": "item_reference", "id": "x"}]}));
    assert!(e.message.contains("'item_reference' items"), "{}", e.message);
    let e = refused(json!({"model": "m", "input": "x", "truncation": "auto"}));
    assert_eq!(e.param, Some("truncation"));
    refused(json!({"model": "m"}));
    refused(json!({"input": "x"}));
    // Unset values are no parameters: what SDKs echo back passes.
    decode(json!({"model": "m", "input": "x", "include": [], "metadata": {}, "reasoning": null})).unwrap();
}

fn envelope() -> Envelope {
    let request = decode(json!({"model": "chat", "input": "hi", "instructions": "Be brief."})).unwrap();
    Envelope::of(&request, "abc", 1_700_000_000)
}

fn usage() -> Usage {
    Usage { input_tokens: 7, output_tokens: 3, cache_read_tokens: 2, ..Usage::default() }
}

#[test]
fn a_whole_answer_is_a_response_object() {
    let response = Response {
        id: "up".into(),
        model: "upstream".into(),
        content: vec![
            OutputPart::Text("Hello".into()),
            OutputPart::ToolUse(ToolUse { id: "call_1".into(), name: "f".into(), input: json!({"a": 1}) }),
        ],
        finish: FinishReason::ToolUse,
        usage: Some(usage()),
    };
    let body = encode_response(&envelope(), &response);
    assert_eq!((body["id"].as_str(), body["object"].as_str()), (Some("resp_abc"), Some("response")));
    assert_eq!((body["status"].as_str(), body["model"].as_str()), (Some("completed"), Some("chat")));
    assert_eq!(body["instructions"], "Be brief.");
    assert_eq!(body["incomplete_details"], Value::Null);
    assert_eq!(
        body["output"],
        json!([
            {"id": "msg_abc", "type": "message", "status": "completed", "role": "assistant",
                "content": [{"type": "output_text", "text": "Hello", "annotations": [], "logprobs": []}]},
            {"id": "fc_abc_0", "type": "function_call", "status": "completed", "call_id": "call_1", "name": "f",
                "arguments": "{\"a\":1}"},
        ])
    );
    assert_eq!(
        body["usage"],
        json!({"input_tokens": 7, "input_tokens_details": {"cached_tokens": 2}, "output_tokens": 3,
            "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 10})
    );
    let cut = Response { content: vec![OutputPart::Text("Hel".into())], finish: FinishReason::Length, ..response };
    let body = encode_response(&envelope(), &cut);
    assert_eq!(body["status"], "incomplete");
    assert_eq!(body["incomplete_details"], json!({"reason": "max_output_tokens"}));
    assert_eq!(body["output"][0]["status"], "incomplete");
}

/// The events of a stream: `(event name, data)`, checking the names match the types and the
/// sequence numbers count from 0.
fn events(bytes: &[u8]) -> Vec<Value> {
    let mut parser = crate::sse::SseParser::default();
    let mut out = Vec::new();
    parser.push(bytes, &mut out).unwrap();
    parser.finish(&mut out);
    out.iter()
        .enumerate()
        .map(|(i, e)| {
            let data: Value = serde_json::from_str(&e.data).unwrap();
            assert_eq!(e.event.as_deref(), data["type"].as_str(), "{data}");
            assert_eq!(data["sequence_number"], i, "{data}");
            data
        })
        .collect()
}

fn encode_all(stream: &[StreamEvent]) -> Vec<Value> {
    let mut encoder = StreamEncoder::new(envelope());
    let mut out = Vec::new();
    for event in stream {
        encoder.encode(event, &mut out);
    }
    assert!(encoder.is_ended());
    events(&out)
}

fn start() -> StreamEvent {
    StreamEvent::MessageStart { id: "up".into(), model: "upstream".into(), usage: None }
}

#[test]
fn a_text_stream_is_the_pinned_event_sequence() {
    let events = encode_all(&[
        start(),
        StreamEvent::BlockStart { index: 0, block: BlockKind::Text },
        StreamEvent::TextDelta { index: 0, text: "Hel".into() },
        StreamEvent::TextDelta { index: 0, text: "lo".into() },
        StreamEvent::BlockStop { index: 0 },
        StreamEvent::MessageDelta { finish: FinishReason::Stop, usage: Some(usage()) },
        StreamEvent::MessageStop,
    ]);
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    assert_eq!(events[0]["response"]["status"], "in_progress");
    assert_eq!(events[0]["response"]["id"], "resp_abc");
    assert_eq!(events[0]["response"]["output"], json!([]));
    assert_eq!(
        events[2]["item"],
        json!({"id": "msg_abc", "type": "message", "status": "in_progress", "role": "assistant", "content": []})
    );
    assert_eq!(
        events[4],
        json!({"type": "response.output_text.delta", "item_id": "msg_abc", "output_index": 0, "content_index": 0,
            "delta": "Hel", "logprobs": [], "sequence_number": 4})
    );
    assert_eq!(events[6]["text"], "Hello");
    assert_eq!(events[7]["part"]["text"], "Hello");
    assert_eq!(events[8]["item"]["status"], "completed");
    let done = &events[9]["response"];
    assert_eq!((done["id"].as_str(), done["status"].as_str()), (Some("resp_abc"), Some("completed")));
    assert_eq!(done["output"], json!([events[8]["item"]]));
    assert_eq!(done["usage"]["total_tokens"], 10);
}

#[test]
fn a_function_call_stream_is_the_pinned_event_sequence() {
    let events = encode_all(&[
        start(),
        StreamEvent::BlockStart { index: 0, block: BlockKind::ToolUse { id: "call_1".into(), name: "f".into() } },
        StreamEvent::ToolInputDelta { index: 0, partial_json: "{\"a\":".into() },
        StreamEvent::ToolInputDelta { index: 0, partial_json: "1}".into() },
        StreamEvent::BlockStop { index: 0 },
        StreamEvent::MessageDelta { finish: FinishReason::ToolUse, usage: Some(usage()) },
        StreamEvent::MessageStop,
    ]);
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    assert_eq!(
        events[2]["item"],
        json!({"id": "fc_abc_0", "type": "function_call", "status": "in_progress", "call_id": "call_1", "name": "f",
            "arguments": ""})
    );
    assert_eq!(
        events[3],
        json!({"type": "response.function_call_arguments.delta", "item_id": "fc_abc_0", "output_index": 0,
            "delta": "{\"a\":", "sequence_number": 3})
    );
    assert_eq!(events[5]["arguments"], "{\"a\":1}");
    assert_eq!(events[6]["item"]["arguments"], "{\"a\":1}");
    assert_eq!(events[7]["response"]["output"], json!([events[6]["item"]]));
}

#[test]
fn a_cut_answer_is_incomplete_and_a_failure_is_response_failed() {
    let events = encode_all(&[
        start(),
        StreamEvent::BlockStart { index: 0, block: BlockKind::Text },
        StreamEvent::TextDelta { index: 0, text: "Hel".into() },
        StreamEvent::BlockStop { index: 0 },
        StreamEvent::MessageDelta { finish: FinishReason::Length, usage: Some(usage()) },
        StreamEvent::MessageStop,
    ]);
    let last = events.last().unwrap();
    assert_eq!(last["type"], "response.incomplete");
    assert_eq!(last["response"]["incomplete_details"], json!({"reason": "max_output_tokens"}));

    let error = ErrorObject::new(ErrorClass::Server, "boom");
    let events = encode_all(&[
        start(),
        StreamEvent::BlockStart { index: 0, block: BlockKind::Text },
        StreamEvent::TextDelta { index: 0, text: "Hel".into() },
        StreamEvent::Error(error.clone()),
    ]);
    let last = events.last().unwrap();
    assert_eq!(last["type"], "response.failed");
    assert_eq!(last["response"]["status"], "failed");
    assert_eq!(last["response"]["error"], json!({"code": "server_error", "message": "boom"}));
    assert_eq!(last["response"]["output"][0]["content"][0]["text"], "Hel", "what was sent is in the output");
    assert_eq!(last["response"]["output"][0]["status"], "incomplete");
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert!(!types.contains(&"response.output_item.done"), "{types:?}");

    let events = encode_all(&[StreamEvent::Error(error)]);
    assert_eq!(
        events,
        [json!({"type": "error", "code": "server_error", "message": "boom", "param": null, "sequence_number": 0})]
    );
}
