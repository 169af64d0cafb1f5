//! Across protocols and back: OpenAI → canonical → Anthropic → canonical → OpenAI keeps the
//! meaning, for requests, answers and streams. What a protocol has no field for is named.

use switchyard_wire::canonical::{Part, Request, StreamEvent, Usage};
use switchyard_wire::{anthropic_codec, openai_codec};

use crate::{anthropic, check_json, json, openai};

#[test]
fn an_openai_request_crosses_to_anthropic_and_back() {
    let canonical = openai_codec::decode_request(openai::REQUEST.as_bytes()).unwrap();
    let anthropic = anthropic_codec::encode_request(&canonical).unwrap();
    check_json(
        &anthropic,
        r#"{
            "model": "gpt-4o",
            "max_tokens": 256,
            "system": "You are terse.",
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "What is this, and the weather in Paris?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}
                ]},
                {"role": "assistant", "content": [
                    {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": "call_2", "name": "get_time", "input": {"tz": "CET"}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "call_1", "content": "18C, cloudy"},
                    {"type": "tool_result", "tool_use_id": "call_2", "content": "14:05"}
                ]},
                {"role": "user", "content": "Thanks. Summarise."}
            ],
            "tools": [
                {"name": "get_weather", "description": "Weather for a city",
                    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
                {"name": "get_time", "input_schema": {"type": "object", "properties": {"tz": {"type": "string"}}}}
            ],
            "tool_choice": {"type": "auto", "disable_parallel_tool_use": true},
            "stop_sequences": ["END"],
            "temperature": 0.2,
            "top_p": 0.9,
            "metadata": {"user_id": "u-42"},
            "stream": true
        }"#,
    );
    let back = anthropic_codec::decode_request(anthropic.to_string().as_bytes()).unwrap();
    // Only the image detail `auto` (the default) has no Anthropic field.
    let mut expected = canonical.clone();
    without_detail(&mut expected);
    assert_eq!(back, expected);
    let mut openai_again = json(openai::ENCODED);
    openai_again["messages"][1]["content"][1]["image_url"].as_object_mut().unwrap().remove("detail");
    assert_eq!(openai_codec::encode_request(&back).unwrap(), openai_again);
}

fn without_detail(request: &mut Request) {
    for message in &mut request.messages {
        for part in &mut message.content {
            if let Part::Image(image) = part {
                image.detail = None;
            }
        }
    }
}

#[test]
fn an_anthropic_request_crosses_to_openai_and_back() {
    let body = r#"{
        "model": "claude-x", "max_tokens": 300,
        "system": [{"type": "text", "text": "One."}, {"type": "text", "text": "Two."}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Look:"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/gif", "data": "R0lGOD"}}]},
            {"role": "assistant", "content": [{"type": "text", "text": "Calling."},
                {"type": "tool_use", "id": "toolu_1", "name": "zoom", "input": {"factor": 2}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "zoomed"}]}
        ],
        "tools": [{"name": "zoom", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "tool", "name": "zoom"},
        "temperature": 1, "stream": false
    }"#;
    let canonical = anthropic_codec::decode_request(body.as_bytes()).unwrap();
    let openai = openai_codec::encode_request(&canonical).unwrap();
    check_json(
        &openai,
        r#"{
            "model": "claude-x", "max_completion_tokens": 300,
            "messages": [
                {"role": "system", "content": "One."},
                {"role": "system", "content": "Two."},
                {"role": "user", "content": [{"type": "text", "text": "Look:"},
                    {"type": "image_url", "image_url": {"url": "data:image/gif;base64,R0lGOD"}}]},
                {"role": "assistant", "content": "Calling.", "tool_calls": [
                    {"id": "toolu_1", "type": "function", "function": {"name": "zoom", "arguments": "{\"factor\":2}"}}]},
                {"role": "tool", "tool_call_id": "toolu_1", "content": "zoomed"}
            ],
            "tools": [{"type": "function", "function": {"name": "zoom", "parameters": {"type": "object"}}}],
            "tool_choice": {"type": "function", "function": {"name": "zoom"}},
            "temperature": 1.0
        }"#,
    );
    let mut back = openai_codec::decode_request(openai.to_string().as_bytes()).unwrap();
    // Anthropic always reports usage; an OpenAI caller who did not stream did not ask.
    back.include_usage = true;
    assert_eq!(back, canonical);
    check_json(
        &anthropic_codec::encode_request(&back).unwrap(),
        &anthropic_codec::encode_request(&canonical).unwrap().to_string(),
    );
}

#[test]
fn answers_cross_both_ways_keeping_what_each_protocol_has() {
    let from_openai = openai_codec::decode_response(openai::RESPONSE.as_bytes()).unwrap();
    let via_anthropic = anthropic_codec::encode_response(&from_openai);
    check_json(
        &via_anthropic,
        r#"{
            "id": "chatcmpl-1", "type": "message", "role": "assistant", "model": "gpt-4o-2024-08-06",
            "content": [
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "call_9", "name": "get_weather", "input": {"city": "Oslo"}}
            ],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 20, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 100, "output_tokens": 30}
        }"#,
    );
    let back = anthropic_codec::decode_response(via_anthropic.to_string().as_bytes()).unwrap();
    // Anthropic has no reasoning-token count: it is in output_tokens, as in OpenAI's.
    let mut expected = from_openai.clone();
    expected.usage = expected.usage.map(|u| Usage { reasoning_tokens: 0, ..u });
    assert_eq!(back, expected);

    let from_anthropic = anthropic_codec::decode_response(anthropic::RESPONSE.as_bytes()).unwrap();
    let via_openai = openai_codec::encode_response(&from_anthropic, 5);
    assert_eq!(via_openai["usage"]["prompt_tokens"], 150, "OpenAI counts cached tokens in the prompt");
    let back = openai_codec::decode_response(via_openai.to_string().as_bytes()).unwrap();
    // OpenAI has no cache-write count: those tokens stay in prompt_tokens.
    let mut expected = from_anthropic.clone();
    expected.usage = expected.usage.map(|u| Usage { cache_write_tokens: 0, ..u });
    assert_eq!(back, expected);
}

fn through_anthropic(events: &[StreamEvent]) -> Vec<StreamEvent> {
    let mut encoder = anthropic_codec::StreamEncoder::new();
    let mut bytes = Vec::new();
    for event in events {
        encoder.encode(event, &mut bytes);
    }
    anthropic_codec::decode_stream(&bytes).unwrap()
}

fn through_openai(events: &[StreamEvent]) -> (Vec<u8>, Vec<StreamEvent>) {
    let mut encoder = openai_codec::StreamEncoder::new(1, true);
    let mut bytes = Vec::new();
    for event in events {
        encoder.encode(event, &mut bytes);
    }
    let back = openai_codec::decode_stream(&bytes).unwrap();
    (bytes, back)
}

/// The input usage a stream starts with, which OpenAI's chunks do not carry.
fn with_start_usage(mut events: Vec<StreamEvent>, usage: Option<Usage>) -> Vec<StreamEvent> {
    if let Some(StreamEvent::MessageStart { usage: u, .. }) = events.first_mut() {
        *u = usage;
    }
    events
}

#[test]
fn streams_cross_both_ways_event_for_event() {
    for (openai_bytes, openai_events) in
        [(openai::TEXT_STREAM, openai::text_stream_events()), (openai::TOOL_STREAM, openai::tool_stream_events())]
    {
        let canonical = openai_codec::decode_stream(openai_bytes.as_bytes()).unwrap();
        assert_eq!(canonical, openai_events);
        let across = through_anthropic(&canonical);
        assert_eq!(across, with_start_usage(canonical.clone(), Some(Usage::default())));
        let (bytes, back) = through_openai(&across);
        assert_eq!(back, canonical);
        let (direct, _) = through_openai(&canonical);
        assert_eq!(bytes, direct, "the same chunks, whichever way the events came");
    }
    for (anthropic_bytes, anthropic_events) in [
        (anthropic::TEXT_STREAM, anthropic::text_stream_events()),
        (anthropic::TOOL_STREAM, anthropic::tool_stream_events()),
    ] {
        let canonical = anthropic_codec::decode_stream(anthropic_bytes.as_bytes()).unwrap();
        assert_eq!(canonical, anthropic_events);
        let (_, across) = through_openai(&canonical);
        // Pings have no place in a chunk stream; the input usage comes at the end.
        let expected: Vec<StreamEvent> =
            with_start_usage(canonical.clone(), None).into_iter().filter(|e| *e != StreamEvent::Ping).collect();
        assert_eq!(across, expected);
        let start = canonical.first().and_then(|e| match e {
            StreamEvent::MessageStart { usage, .. } => *usage,
            _ => None,
        });
        let back = with_start_usage(through_anthropic(&across), start);
        assert_eq!(back, canonical.into_iter().filter(|e| *e != StreamEvent::Ping).collect::<Vec<_>>());
    }
}
