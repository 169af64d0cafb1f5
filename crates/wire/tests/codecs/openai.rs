//! OpenAI Chat Completions ⇄ canonical, pinned both ways.

use serde_json::json;
use switchyard_wire::canonical::{
    ErrorClass, ErrorObject, FinishReason, Image, ImageDetail, ImageSource, OutputPart, Part, Protocol, Request,
    Response, ResponseFormat, Role, Sampling, StreamEvent, Tool, ToolChoice, ToolUse, Usage,
};
use switchyard_wire::openai_codec::{
    StreamEncoder, decode_error, decode_request, decode_response, decode_stream, encode_error, encode_request,
    encode_response,
};

use crate::{assistant, check_json, check_sse, ev, json, text, tool_result, tool_use, user};

pub(crate) const REQUEST: &str = r#"{
    "model": "gpt-4o",
    "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": [
            {"type": "text", "text": "What is this, and the weather in Paris?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "auto"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}
        ]},
        {"role": "assistant", "content": null, "refusal": null, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
            {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": "{\"tz\":\"CET\"}"}}
        ]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18C, cloudy"},
        {"role": "tool", "tool_call_id": "call_2", "content": "14:05"},
        {"role": "user", "content": "Thanks. Summarise."}
    ],
    "tools": [
        {"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
        {"type": "function", "function": {"name": "get_time",
            "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}}}}
    ],
    "tool_choice": "auto",
    "parallel_tool_calls": false,
    "stop": ["END"],
    "temperature": 0.2,
    "top_p": 0.9,
    "max_tokens": 256,
    "user": "u-42",
    "stream": true,
    "stream_options": {"include_usage": true},
    "n": 1,
    "logprobs": false
}"#;

/// The canonical form of [`REQUEST`].
pub(crate) fn canonical_request() -> Request {
    Request {
        model: "gpt-4o".into(),
        system: vec!["You are terse.".into()],
        messages: vec![
            user(vec![
                text("What is this, and the weather in Paris?"),
                Part::Image(Image {
                    source: ImageSource::Base64 { media_type: "image/png".into(), data: "iVBORw0KGgo=".into() },
                    detail: Some(ImageDetail::Auto),
                }),
                Part::Image(Image { source: ImageSource::Url("https://example.com/cat.jpg".into()), detail: None }),
            ]),
            assistant(vec![
                tool_use("call_1", "get_weather", r#"{"city":"Paris"}"#),
                tool_use("call_2", "get_time", r#"{"tz":"CET"}"#),
            ]),
            user(vec![tool_result("call_1", "18C, cloudy"), tool_result("call_2", "14:05")]),
            user(vec![text("Thanks. Summarise.")]),
        ],
        prefill: false,
        tools: vec![
            Tool {
                name: "get_weather".into(),
                description: Some("Weather for a city".into()),
                input_schema: json(r#"{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}"#),
                strict: None,
            },
            Tool {
                name: "get_time".into(),
                description: None,
                input_schema: json(r#"{"type":"object","properties":{"tz":{"type":"string"}}}"#),
                strict: None,
            },
        ],
        tool_choice: Some(ToolChoice::Auto),
        parallel_tool_calls: Some(false),
        stop: vec!["END".into()],
        sampling: Sampling { temperature: Some(0.2), top_p: Some(0.9), top_k: None },
        max_tokens: Some(256),
        response_format: None,
        user_id: Some("u-42".into()),
        stream: true,
        include_usage: true,
        extra: None,
    }
}

/// [`REQUEST`] as the OpenAI encoder writes it: defaults gone, `max_completion_tokens`.
pub(crate) const ENCODED: &str = r#"{
    "model": "gpt-4o",
    "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": [
            {"type": "text", "text": "What is this, and the weather in Paris?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "auto"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}
        ]},
        {"role": "assistant", "content": null, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
            {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": "{\"tz\":\"CET\"}"}}
        ]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18C, cloudy"},
        {"role": "tool", "tool_call_id": "call_2", "content": "14:05"},
        {"role": "user", "content": "Thanks. Summarise."}
    ],
    "tools": [
        {"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
        {"type": "function", "function": {"name": "get_time",
            "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}}}}
    ],
    "tool_choice": "auto",
    "parallel_tool_calls": false,
    "stop": ["END"],
    "temperature": 0.2,
    "top_p": 0.9,
    "max_completion_tokens": 256,
    "user": "u-42",
    "stream": true,
    "stream_options": {"include_usage": true}
}"#;

#[test]
fn a_request_with_tools_images_and_tool_results_decodes_and_encodes() {
    let request = decode_request(REQUEST.as_bytes()).unwrap();
    assert_eq!(request, canonical_request());
    check_json(&encode_request(&request).unwrap(), ENCODED);
}

#[test]
fn system_messages_later_in_the_conversation_keep_their_place() {
    let request = decode_request(
        br#"{"model":"m","messages":[
            {"role":"developer","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]},
            {"role":"user","content":"hi"},
            {"role":"system","content":"now be formal"},
            {"role":"assistant","content":"Hello."}]}"#,
    )
    .unwrap();
    assert_eq!(request.system, vec!["a".to_owned(), "b".to_owned()]);
    assert_eq!(request.messages[1].role, Role::System);
    assert!(!request.prefill, "a final assistant message from OpenAI is history, not a prefill");
    check_json(
        &encode_request(&request).unwrap(),
        r#"{"model":"m","messages":[
            {"role":"system","content":"a"},{"role":"system","content":"b"},
            {"role":"user","content":"hi"},
            {"role":"system","content":"now be formal"},
            {"role":"assistant","content":"Hello."}]}"#,
    );
}

#[test]
fn json_schema_tool_choice_and_parameters_without_a_place_are_kept() {
    let request = decode_request(
        br#"{"model":"m","messages":[{"role":"user","content":"x"}],
            "response_format":{"type":"json_schema","json_schema":{"name":"r","schema":{"type":"object"},"strict":true}},
            "tool_choice":{"type":"function","function":{"name":"f"}},
            "max_completion_tokens":9,"max_tokens":5,"seed":7,"n":2,"presence_penalty":0,"stream":false}"#,
    )
    .unwrap();
    assert_eq!(
        request.response_format,
        Some(ResponseFormat::JsonSchema {
            name: "r".into(),
            description: None,
            schema: json(r#"{"type":"object"}"#),
            strict: Some(true)
        })
    );
    assert_eq!(request.tool_choice, Some(ToolChoice::Tool { name: "f".into() }));
    assert_eq!(request.max_tokens, Some(9), "max_completion_tokens wins");
    let extra = request.extra.as_ref().unwrap();
    assert_eq!(extra.protocol, Protocol::OpenAiChat);
    assert_eq!(serde_json::Value::Object(extra.fields.clone()), json!({"seed": 7, "n": 2}));
    check_json(
        &encode_request(&request).unwrap(),
        r#"{"model":"m","messages":[{"role":"user","content":"x"}],
            "response_format":{"type":"json_schema","json_schema":{"name":"r","schema":{"type":"object"},"strict":true}},
            "tool_choice":{"type":"function","function":{"name":"f"}},
            "max_completion_tokens":9,"seed":7,"n":2}"#,
    );
}

#[track_caller]
fn check_bad(body: &str, param: &str, expected: &str) {
    let err = decode_request(body.as_bytes()).expect_err(body);
    assert_eq!(err.param, Some(param), "{err:?}");
    assert!(err.message.contains(expected), "{:?} does not contain {expected:?}", err.message);
}

#[test]
fn malformed_requests_are_refused_with_the_parameter() {
    check_bad(r#"{"messages":[]}"#, "model", "model parameter");
    check_bad(r#"{"model":"m"}"#, "messages", "messages: is required");
    check_bad(r#"{"model":"m","messages":[]}"#, "messages", "at least one");
    check_bad(r#"{"model":"m","messages":[{"role":"wizard","content":"x"}]}"#, "messages", "messages[0].role");
    check_bad(
        r#"{"model":"m","messages":[{"role":"user","content":"x","name":"bob"}]}"#,
        "messages",
        "messages[0].name",
    );
    check_bad(
        r#"{"model":"m","messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{}}]}]}"#,
        "messages",
        "messages[0].content[0]: 'input_audio' parts are not supported",
    );
    check_bad(
        r#"{"model":"m","messages":[{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{oops"}}]}]}"#,
        "messages",
        "messages[0].tool_calls[0].function.arguments",
    );
    check_bad(r#"{"model":"m","messages":[{"role":"tool","content":"x"}]}"#, "messages", "tool_call_id: is required");
    check_bad(
        r#"{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"custom"}]}"#,
        "tools",
        "tools[0].type",
    );
    check_bad(r#"{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":0}"#, "max_tokens", "positive");
    check_bad(r#"{"model":"m","messages":[{"role":"user","content":"x"}],"stream":"yes"}"#, "stream", "boolean");
    check_bad(
        r#"{"model":"m","messages":[{"role":"user","content":"x"}],"tool_choice":"sometimes"}"#,
        "tool_choice",
        "unknown",
    );
}

pub(crate) const RESPONSE: &str = r#"{
    "id": "chatcmpl-1", "object": "chat.completion", "created": 1700000000, "model": "gpt-4o-2024-08-06",
    "choices": [{"index": 0, "logprobs": null, "finish_reason": "tool_calls",
        "message": {"role": "assistant", "content": "Let me check.", "refusal": null, "tool_calls": [
            {"id": "call_9", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}
        ]}}],
    "usage": {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150,
        "prompt_tokens_details": {"cached_tokens": 100, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 12, "audio_tokens": 0}},
    "system_fingerprint": "fp_1"
}"#;

pub(crate) fn canonical_response() -> Response {
    Response {
        id: "chatcmpl-1".into(),
        model: "gpt-4o-2024-08-06".into(),
        content: vec![
            OutputPart::Text("Let me check.".into()),
            OutputPart::ToolUse(ToolUse {
                id: "call_9".into(),
                name: "get_weather".into(),
                input: json!({"city": "Oslo"}),
            }),
        ],
        finish: FinishReason::ToolUse,
        usage: Some(Usage {
            input_tokens: 120,
            output_tokens: 30,
            cache_read_tokens: 100,
            cache_write_tokens: 0,
            reasoning_tokens: 12,
        }),
    }
}

#[test]
fn a_response_with_text_tool_calls_and_usage_decodes_and_encodes() {
    let response = decode_response(RESPONSE.as_bytes()).unwrap();
    assert_eq!(response, canonical_response());
    check_json(
        &encode_response(&response, 1_700_000_000),
        r#"{
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1700000000, "model": "gpt-4o-2024-08-06",
            "choices": [{"index": 0, "logprobs": null, "finish_reason": "tool_calls",
                "message": {"role": "assistant", "content": "Let me check.", "tool_calls": [
                    {"id": "call_9", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}
                ]}}],
            "usage": {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150,
                "prompt_tokens_details": {"cached_tokens": 100},
                "completion_tokens_details": {"reasoning_tokens": 12}}
        }"#,
    );
}

#[test]
fn finish_reasons_map_both_ways() {
    for (wire, finish, back) in [
        ("stop", FinishReason::Stop, "stop"),
        ("length", FinishReason::Length, "length"),
        ("tool_calls", FinishReason::ToolUse, "tool_calls"),
        ("function_call", FinishReason::ToolUse, "tool_calls"),
        ("content_filter", FinishReason::ContentFilter, "content_filter"),
        ("something_new", FinishReason::Other, "stop"),
    ] {
        let body = format!(
            r#"{{"id":"x","model":"m","choices":[{{"index":0,"message":{{"content":"a"}},"finish_reason":"{wire}"}}]}}"#
        );
        let response = decode_response(body.as_bytes()).unwrap();
        assert_eq!(response.finish, finish, "{wire}");
        assert_eq!(encode_response(&response, 0)["choices"][0]["finish_reason"], back);
    }
    assert!(decode_response(b"<html>").is_err());
    assert!(decode_response(br#"{"choices":[]}"#).is_err());
    assert!(decode_response(br#"{"choices":[{"message":{}},{"index":1,"message":{}}]}"#).is_err());
}

/// A text stream as OpenAI sends it: a role-only chunk, content, the finish, a usage-only
/// chunk and `[DONE]`.
pub(crate) const TEXT_STREAM: &str = concat!(
    "data: {\"id\":\"chatcmpl-7\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
    "data: {\"id\":\"chatcmpl-7\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
    "data: {\"id\":\"chatcmpl-7\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" there\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
    "data: {\"id\":\"chatcmpl-7\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"stop\"}],\"usage\":null}\n\n",
    "data: {\"id\":\"chatcmpl-7\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2,\"total_tokens\":11,\"prompt_tokens_details\":{\"cached_tokens\":0},\"completion_tokens_details\":{\"reasoning_tokens\":0}}}\n\n",
    "data: [DONE]\n\n",
);

pub(crate) fn text_stream_events() -> Vec<StreamEvent> {
    vec![
        ev::start("chatcmpl-7", "gpt-4o", None),
        ev::text_block(0),
        ev::text(0, "Hello"),
        ev::text(0, " there"),
        ev::stop(0),
        ev::delta(FinishReason::Stop, Some(Usage { input_tokens: 9, output_tokens: 2, ..Usage::default() })),
        StreamEvent::MessageStop,
    ]
}

/// Two tool calls streamed by index after some text, as OpenAI sends parallel calls.
pub(crate) const TOOL_STREAM: &str = concat!(
    "data: {\"id\":\"c2\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null},\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"c2\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Checking.\"},\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"c2\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_a\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"\"}}]},\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"c2\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"city\\\":\"}}]},\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"c2\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"\\\"Oslo\\\"}\"}}]},\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"c2\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"id\":\"call_b\",\"type\":\"function\",\"function\":{\"name\":\"get_time\",\"arguments\":\"{}\"}}]},\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"c2\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n",
    "data: {\"id\":\"c2\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[],\"usage\":{\"prompt_tokens\":50,\"completion_tokens\":20,\"total_tokens\":70,\"prompt_tokens_details\":{\"cached_tokens\":32}}}\n\n",
    "data: [DONE]\n\n",
);

pub(crate) fn tool_stream_events() -> Vec<StreamEvent> {
    vec![
        ev::start("c2", "gpt-4o", None),
        ev::text_block(0),
        ev::text(0, "Checking."),
        ev::stop(0),
        ev::tool_block(1, "call_a", "get_weather"),
        ev::input(1, r#"{"city":"#),
        ev::input(1, r#""Oslo"}"#),
        ev::stop(1),
        ev::tool_block(2, "call_b", "get_time"),
        ev::input(2, "{}"),
        ev::stop(2),
        ev::delta(
            FinishReason::ToolUse,
            Some(Usage { input_tokens: 50, output_tokens: 20, cache_read_tokens: 32, ..Usage::default() }),
        ),
        StreamEvent::MessageStop,
    ]
}

#[test]
fn a_text_stream_decodes_to_the_exact_event_sequence() {
    assert_eq!(decode_stream(TEXT_STREAM.as_bytes()).unwrap(), text_stream_events());
}

#[test]
fn a_tool_call_stream_decodes_to_blocks_by_index() {
    assert_eq!(decode_stream(TOOL_STREAM.as_bytes()).unwrap(), tool_stream_events());
}

#[test]
fn stream_oddities_are_read_or_refused() {
    // Azure's prompt-filter chunk before the first, and an in-stream error.
    let azure = concat!(
        "data: {\"choices\":[],\"created\":0,\"id\":\"\",\"model\":\"\",\"object\":\"\",\"prompt_filter_results\":[]}\n\n",
        "data: {\"id\":\"a\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"}}]}\n\n",
        "data: {\"error\":{\"message\":\"upstream cut\",\"type\":\"api_error\",\"code\":\"overloaded\"}}\n\n",
    );
    let events = decode_stream(azure.as_bytes()).unwrap();
    assert_eq!(events[0], ev::start("a", "m", None));
    assert_eq!(
        events.last(),
        Some(&StreamEvent::Error(ErrorObject::new(ErrorClass::Overloaded, "upstream cut").with_code("overloaded")))
    );
    let no_done = TEXT_STREAM.replace("data: [DONE]\n\n", "");
    assert!(decode_stream(no_done.as_bytes()).unwrap_err().message.contains("[DONE]"));
    let resumed = concat!(
        "data: {\"id\":\"a\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"c0\",\"function\":{\"name\":\"f\"}}]}}]}\n\n",
        "data: {\"id\":\"a\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"id\":\"c1\",\"function\":{\"name\":\"g\"}}]}}]}\n\n",
        "data: {\"id\":\"a\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{}\"}}]}}]}\n\n",
    );
    assert!(decode_stream(resumed.as_bytes()).unwrap_err().message.contains("resumed"));
    let two_choices = "data: {\"id\":\"a\",\"choices\":[{\"index\":1,\"delta\":{\"content\":\"x\"}}]}\n\n";
    assert!(decode_stream(two_choices.as_bytes()).is_err());
    assert!(decode_stream(b"data: [DONE]\n\n").is_err());
    assert!(decode_stream(b"").is_err());
}

#[test]
fn canonical_events_encode_to_chunks_with_one_id_and_done() {
    let mut encoder = StreamEncoder::new(1_700_000_000, true);
    let mut out = Vec::new();
    let mut events = tool_stream_events();
    events.insert(1, StreamEvent::Ping);
    for event in &events {
        encoder.encode(event, &mut out);
    }
    let head = r#""id":"c2","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o""#;
    let chunk = |delta: &str, finish: &str| {
        format!(
            r#"data: {{{head},"choices":[{{"index":0,"delta":{delta},"logprobs":null,"finish_reason":{finish}}}]}}"#
        )
    };
    let expected = [
        chunk(r#"{"role":"assistant","content":""}"#, "null"),
        ": ping".to_owned(),
        chunk(r#"{"content":"Checking."}"#, "null"),
        chunk(
            r#"{"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"get_weather","arguments":""}}]}"#,
            "null",
        ),
        chunk(r#"{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]}"#, "null"),
        chunk(r#"{"tool_calls":[{"index":0,"function":{"arguments":"\"Oslo\"}"}}]}"#, "null"),
        chunk(
            r#"{"tool_calls":[{"index":1,"id":"call_b","type":"function","function":{"name":"get_time","arguments":""}}]}"#,
            "null",
        ),
        chunk(r#"{"tool_calls":[{"index":1,"function":{"arguments":"{}"}}]}"#, "null"),
        chunk("{}", r#""tool_calls""#),
        format!(
            r#"data: {{{head},"choices":[],"usage":{{"prompt_tokens":50,"completion_tokens":20,"total_tokens":70,"prompt_tokens_details":{{"cached_tokens":32}},"completion_tokens_details":{{"reasoning_tokens":0}}}}}}"#
        ),
        "data: [DONE]".to_owned(),
    ];
    check_sse(&out, &expected.join("\n\n"));
    // What was written reads back as what was encoded.
    let back: Vec<StreamEvent> = decode_stream(&out).unwrap();
    assert_eq!(back, tool_stream_events());
}

#[test]
fn without_include_usage_no_usage_chunk_is_written() {
    let mut encoder = StreamEncoder::new(1, false);
    let mut out = Vec::new();
    for event in &text_stream_events() {
        encoder.encode(event, &mut out);
    }
    let text = String::from_utf8(out).unwrap();
    assert!(!text.contains("usage"), "{text}");
    assert!(text.ends_with("data: [DONE]\n\n"));
}

#[test]
fn errors_classify_by_status_and_code_and_encode_back() {
    let cases: [(u16, &str, ErrorClass); 9] = [
        (
            400,
            r#"{"error":{"message":"This model's maximum context length is 8192 tokens","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#,
            ErrorClass::ContextLength,
        ),
        (400, r#"{"error":{"message":"filtered","type":null,"code":"content_filter"}}"#, ErrorClass::ContentFilter),
        (400, r#"{"error":{"message":"bad","type":"invalid_request_error"}}"#, ErrorClass::InvalidRequest),
        (401, r#"{"error":{"message":"Incorrect API key","code":"invalid_api_key"}}"#, ErrorClass::Authentication),
        (403, r#"{"error":{"message":"region"}}"#, ErrorClass::Permission),
        (404, r#"{"error":{"message":"no such model","code":"model_not_found"}}"#, ErrorClass::NotFound),
        (
            429,
            r#"{"error":{"message":"slow down","type":"requests","code":"rate_limit_exceeded"}}"#,
            ErrorClass::RateLimit,
        ),
        (503, r#"{"error":{"message":"The engine is currently overloaded"}}"#, ErrorClass::Overloaded),
        (502, "<html>bad gateway</html>", ErrorClass::Server),
    ];
    for (status, body, class) in cases {
        let error = decode_error(status, body.as_bytes());
        assert_eq!(error.class, class, "{status} {body}");
    }
    let context = decode_error(400, cases[0].1.as_bytes());
    assert_eq!(context.param.as_deref(), Some("messages"));
    assert_eq!(decode_error(502, b"<html>bad gateway</html>").message, "<html>bad gateway</html>");
    let (status, body) = encode_error(&context);
    assert_eq!(status, 400);
    check_json(
        &body,
        r#"{"error":{"message":"This model's maximum context length is 8192 tokens","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#,
    );
    let (status, body) = encode_error(&ErrorObject::new(ErrorClass::Overloaded, "busy").with_code("overloaded_error"));
    assert_eq!(status, 503);
    check_json(&body, r#"{"error":{"message":"busy","type":"api_error","param":null,"code":"overloaded_error"}}"#);
    for (class, status) in [
        (ErrorClass::InvalidRequest, 400),
        (ErrorClass::ContentFilter, 400),
        (ErrorClass::RateLimit, 429),
        (ErrorClass::Authentication, 401),
        (ErrorClass::Permission, 403),
        (ErrorClass::NotFound, 404),
        (ErrorClass::Server, 500),
    ] {
        let (s, body) = encode_error(&ErrorObject::new(class, "m"));
        assert_eq!(s, status);
        assert_eq!(decode_error(s, body.to_string().as_bytes()).class, class, "{class} survives a round trip");
    }
}
