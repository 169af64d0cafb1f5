//! Anthropic Messages ⇄ canonical, pinned both ways.

use serde_json::json;
use switchyard_wire::anthropic_codec::{
    StreamEncoder, decode_error, decode_request, decode_response, decode_stream, encode_error, encode_request,
    encode_response,
};
use switchyard_wire::canonical::{
    BlockKind, ErrorClass, ErrorObject, FinishReason, Image, ImageSource, OutputPart, Part, Protocol, Request,
    Response, ResultPart, Sampling, StreamEvent, Tool, ToolChoice, ToolResult, ToolUse, Usage,
};

use crate::{assistant, check_json, check_sse, ev, json, text, tool_result, tool_use, user};

pub(crate) const REQUEST: &str = r#"{
    "model": "claude-sonnet-4-5",
    "max_tokens": 1024,
    "system": [
        {"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "Answer in English."}
    ],
    "messages": [
        {"role": "user", "content": [
            {"type": "text", "text": "What is this, and the weather in Paris and Lyon?"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQ"}},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}
        ]},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"city": "Lyon"}}
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
            {"type": "tool_result", "tool_use_id": "toolu_2", "content": [{"type": "text", "text": "no data"}], "is_error": true}
        ]},
        {"role": "assistant", "content": "In Paris it is"}
    ],
    "tools": [{"name": "get_weather", "description": "Weather for a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
    "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
    "stop_sequences": ["END"],
    "temperature": 0.5,
    "top_p": 0.8,
    "top_k": 40,
    "metadata": {"user_id": "u-7"},
    "stream": true,
    "thinking": {"type": "disabled"}
}"#;

fn canonical_request() -> Request {
    Request {
        model: "claude-sonnet-4-5".into(),
        system: vec!["You are terse.".into(), "Answer in English.".into()],
        messages: vec![
            user(vec![
                text("What is this, and the weather in Paris and Lyon?"),
                Part::Image(Image {
                    source: ImageSource::Base64 { media_type: "image/jpeg".into(), data: "/9j/4AAQ".into() },
                    detail: None,
                }),
                Part::Image(Image { source: ImageSource::Url("https://example.com/cat.jpg".into()), detail: None }),
            ]),
            assistant(vec![
                text("Checking."),
                tool_use("toolu_1", "get_weather", r#"{"city":"Paris"}"#),
                tool_use("toolu_2", "get_weather", r#"{"city":"Lyon"}"#),
            ]),
            user(vec![
                tool_result("toolu_1", "18C"),
                Part::ToolResult(ToolResult {
                    tool_use_id: "toolu_2".into(),
                    content: vec![ResultPart::Text("no data".into())],
                    is_error: true,
                }),
            ]),
            assistant(vec![text("In Paris it is")]),
        ],
        prefill: true,
        tools: vec![Tool {
            name: "get_weather".into(),
            description: Some("Weather for a city".into()),
            input_schema: json(r#"{"type":"object","properties":{"city":{"type":"string"}}}"#),
            strict: None,
        }],
        tool_choice: Some(ToolChoice::Any),
        parallel_tool_calls: Some(false),
        stop: vec!["END".into()],
        sampling: Sampling { temperature: Some(0.5), top_p: Some(0.8), top_k: Some(40) },
        max_tokens: Some(1024),
        response_format: None,
        user_id: Some("u-7".into()),
        stream: true,
        include_usage: true,
        extra: None,
    }
}

#[test]
fn a_request_with_system_images_tools_and_a_prefill_decodes_and_encodes() {
    let request = decode_request(REQUEST.as_bytes()).unwrap();
    assert_eq!(request, canonical_request());
    check_json(
        &encode_request(&request).unwrap(),
        r#"{
            "model": "claude-sonnet-4-5",
            "max_tokens": 1024,
            "system": [{"type": "text", "text": "You are terse."}, {"type": "text", "text": "Answer in English."}],
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "What is this, and the weather in Paris and Lyon?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQ"}},
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}
                ]},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"city": "Lyon"}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
                    {"type": "tool_result", "tool_use_id": "toolu_2", "content": "no data", "is_error": true}
                ]},
                {"role": "assistant", "content": "In Paris it is"}
            ],
            "tools": [{"name": "get_weather", "description": "Weather for a city",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
            "stop_sequences": ["END"],
            "temperature": 0.5,
            "top_p": 0.8,
            "top_k": 40,
            "metadata": {"user_id": "u-7"},
            "stream": true
        }"#,
    );
}

#[test]
fn a_plain_request_and_its_extras() {
    let request = decode_request(
        br#"{"model":"claude-haiku","max_tokens":10,"system":"Be kind.","messages":[{"role":"user","content":"hi"}],
            "tool_choice":{"type":"none"},"thinking":{"type":"enabled","budget_tokens":2000}}"#,
    )
    .unwrap();
    assert_eq!(request.system, vec!["Be kind.".to_owned()]);
    assert_eq!(request.tool_choice, Some(ToolChoice::None));
    assert!(!request.prefill && !request.stream && request.include_usage);
    let extra = request.extra.as_ref().unwrap();
    assert_eq!(extra.protocol, Protocol::Anthropic);
    assert_eq!(extra.fields["thinking"], json!({"type": "enabled", "budget_tokens": 2000}));
    check_json(
        &encode_request(&request).unwrap(),
        r#"{"model":"claude-haiku","max_tokens":10,"system":"Be kind.","messages":[{"role":"user","content":"hi"}],
            "tool_choice":{"type":"none"},"thinking":{"type":"enabled","budget_tokens":2000}}"#,
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
    check_bad(
        r#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#,
        "max_tokens",
        "max_tokens: Field required",
    );
    check_bad(
        r#"{"model":"m","max_tokens":-3,"messages":[{"role":"user","content":"x"}]}"#,
        "max_tokens",
        "max_tokens",
    );
    check_bad(r#"{"max_tokens":5,"messages":[{"role":"user","content":"x"}]}"#, "model", "model: Field required");
    check_bad(
        r#"{"model":"m","max_tokens":5,"messages":[{"role":"system","content":"x"}]}"#,
        "messages",
        "messages[0].role",
    );
    check_bad(
        r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"document","source":{}}]}]}"#,
        "messages",
        "messages[0].content[0]: 'document' blocks are not supported",
    );
    check_bad(
        r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"tool_use","id":"t","name":"f","input":{}}]}]}"#,
        "messages",
        "not allowed in this role",
    );
    check_bad(
        r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"file","file_id":"f"}}]}]}"#,
        "messages",
        "messages[0].content[0].source.type",
    );
    check_bad(
        r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],"tools":[{"type":"web_search_20250305","name":"web_search"}]}"#,
        "tools",
        "tools[0].type",
    );
    check_bad(
        r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],"metadata":{"tenant":"t"}}"#,
        "metadata",
        "metadata.tenant",
    );
    check_bad(
        r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],"tool_choice":{"type":"maybe"}}"#,
        "tool_choice",
        "tool_choice.type",
    );
}

pub(crate) const RESPONSE: &str = r#"{
    "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
    "content": [
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "toolu_9", "name": "get_weather", "input": {"city": "Oslo"}}
    ],
    "stop_reason": "tool_use", "stop_sequence": null,
    "usage": {"input_tokens": 20, "cache_creation_input_tokens": 30, "cache_read_input_tokens": 100,
        "output_tokens": 40, "service_tier": "standard"}
}"#;

fn canonical_response() -> Response {
    Response {
        id: "msg_01".into(),
        model: "claude-sonnet-4-5-20250929".into(),
        content: vec![
            OutputPart::Text("Let me check.".into()),
            OutputPart::ToolUse(ToolUse {
                id: "toolu_9".into(),
                name: "get_weather".into(),
                input: json!({"city": "Oslo"}),
            }),
        ],
        finish: FinishReason::ToolUse,
        usage: Some(Usage {
            input_tokens: 150,
            output_tokens: 40,
            cache_read_tokens: 100,
            cache_write_tokens: 30,
            reasoning_tokens: 0,
        }),
    }
}

#[test]
fn a_response_with_text_tool_use_and_cache_usage_decodes_and_encodes() {
    let response = decode_response(RESPONSE.as_bytes()).unwrap();
    assert_eq!(response, canonical_response());
    check_json(
        &encode_response(&response),
        r#"{
            "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
            "content": [
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "toolu_9", "name": "get_weather", "input": {"city": "Oslo"}}
            ],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 20, "cache_creation_input_tokens": 30, "cache_read_input_tokens": 100, "output_tokens": 40}
        }"#,
    );
}

#[test]
fn stop_reasons_map_both_ways() {
    for (wire, sequence, finish, back) in [
        ("end_turn", None, FinishReason::Stop, "end_turn"),
        ("max_tokens", None, FinishReason::Length, "max_tokens"),
        ("stop_sequence", Some("END"), FinishReason::StopSequence(Some("END".into())), "stop_sequence"),
        ("tool_use", None, FinishReason::ToolUse, "tool_use"),
        ("refusal", None, FinishReason::ContentFilter, "refusal"),
        ("pause_turn", None, FinishReason::Other, "end_turn"),
    ] {
        let body = json!({"type": "message", "id": "m", "model": "c", "content": [{"type": "text", "text": "a"}],
            "stop_reason": wire, "stop_sequence": sequence, "usage": {"input_tokens": 1, "output_tokens": 1}});
        let response = decode_response(body.to_string().as_bytes()).unwrap();
        assert_eq!(response.finish, finish, "{wire}");
        let encoded = encode_response(&response);
        assert_eq!(encoded["stop_reason"], back);
        assert_eq!(encoded["stop_sequence"], json!(sequence));
    }
    assert!(decode_response(br#"{"type":"error","error":{}}"#).is_err());
    let thinking = br#"{"type":"message","content":[{"type":"thinking","thinking":"hm","signature":"s"},
        {"type":"text","text":"a"}]}"#;
    let response = decode_response(thinking).expect("an answer that thought reads");
    assert_eq!(response.content, [OutputPart::Text("a".into())], "its thinking is not carried");
}

pub(crate) const TEXT_STREAM: &str = "event: message_start
data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-x\",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":25,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":10,\"output_tokens\":1}}}

event: content_block_start
data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}

event: ping
data: {\"type\": \"ping\"}

event: content_block_delta
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}

event: content_block_delta
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"!\"}}

event: content_block_stop
data: {\"type\":\"content_block_stop\",\"index\":0}

event: message_delta
data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":15}}

event: message_stop
data: {\"type\":\"message_stop\"}

";

pub(crate) fn text_stream_events() -> Vec<StreamEvent> {
    let input = Usage { input_tokens: 35, cache_read_tokens: 10, ..Usage::default() };
    vec![
        ev::start("msg_1", "claude-x", Some(input)),
        ev::text_block(0),
        StreamEvent::Ping,
        ev::text(0, "Hello"),
        ev::text(0, "!"),
        ev::stop(0),
        ev::delta(FinishReason::Stop, Some(Usage { output_tokens: 15, ..input })),
        StreamEvent::MessageStop,
    ]
}

pub(crate) const TOOL_STREAM: &str = "event: message_start
data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_2\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-x\",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":472,\"output_tokens\":2}}}

event: content_block_start
data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}

event: content_block_delta
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Okay.\"}}

event: content_block_stop
data: {\"type\":\"content_block_stop\",\"index\":0}

event: content_block_start
data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_01\",\"name\":\"get_weather\",\"input\":{}}}

event: content_block_delta
data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\"}}

event: content_block_delta
data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"city\\\":\"}}

event: content_block_delta
data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\" \\\"Paris\\\"}\"}}

event: content_block_stop
data: {\"type\":\"content_block_stop\",\"index\":1}

event: message_delta
data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":89}}

event: message_stop
data: {\"type\":\"message_stop\"}

";

pub(crate) fn tool_stream_events() -> Vec<StreamEvent> {
    let input = Usage { input_tokens: 472, ..Usage::default() };
    vec![
        ev::start("msg_2", "claude-x", Some(input)),
        ev::text_block(0),
        ev::text(0, "Okay."),
        ev::stop(0),
        ev::tool_block(1, "toolu_01", "get_weather"),
        ev::input(1, r#"{"city":"#),
        ev::input(1, r#" "Paris"}"#),
        ev::stop(1),
        ev::delta(FinishReason::ToolUse, Some(Usage { output_tokens: 89, ..input })),
        StreamEvent::MessageStop,
    ]
}

#[test]
fn a_text_stream_decodes_to_the_exact_event_sequence() {
    assert_eq!(decode_stream(TEXT_STREAM.as_bytes()).unwrap(), text_stream_events());
}

#[test]
fn a_tool_use_stream_decodes_to_the_exact_event_sequence() {
    assert_eq!(decode_stream(TOOL_STREAM.as_bytes()).unwrap(), tool_stream_events());
}

#[test]
fn stream_oddities_are_read_or_refused() {
    let overloaded = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"c\",\"usage\":{\"input_tokens\":1}}}\n\nevent: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
    let events = decode_stream(overloaded.as_bytes()).unwrap();
    assert_eq!(
        events[1],
        StreamEvent::Error(ErrorObject::new(ErrorClass::Overloaded, "Overloaded").with_code("overloaded_error"))
    );
    // A new event type is skipped, as Anthropic's versioning asks.
    let unknown =
        TEXT_STREAM.replace("event: ping\ndata: {\"type\": \"ping\"}", "event: novel\ndata: {\"type\":\"novel\"}");
    assert_eq!(decode_stream(unknown.as_bytes()).unwrap().len(), text_stream_events().len() - 1);
    let cut = TEXT_STREAM.split("event: message_stop").next().unwrap();
    assert!(decode_stream(cut.as_bytes()).unwrap_err().message.contains("message_stop"));
    let out_of_order = TEXT_STREAM.replace(
        "\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"!\"",
        "\"index\":3,\"delta\":{\"type\":\"text_delta\",\"text\":\"!\"",
    );
    assert!(decode_stream(out_of_order.as_bytes()).unwrap_err().message.contains("out of order"));
    // A thinking block is skipped whole; the answer's blocks are numbered without it.
    let thinking = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"c\",\"usage\":{\"input_tokens\":3,\"output_tokens\":0}}}\n\n\
        event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\"}}\n\n\
        event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"hm\"}}\n\n\
        event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"signature_delta\",\"signature\":\"s\"}}\n\n\
        event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n\
        event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n\
        event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"Paris\"}}\n\n\
        event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n\
        event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":4}}\n\n\
        event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
    let events = decode_stream(thinking.as_bytes()).expect("an answer that thought reads");
    assert_eq!(events[1], StreamEvent::BlockStart { index: 0, block: BlockKind::Text });
    assert_eq!(events[2], StreamEvent::TextDelta { index: 0, text: "Paris".into() });
    assert_eq!(events.len(), 6, "{events:?}");
    assert!(decode_stream(b"event: ping\ndata: not json\n\n").is_err());
}

#[test]
fn canonical_events_encode_to_the_exact_sse_stream() {
    let mut encoder = StreamEncoder::new();
    let mut out = Vec::new();
    for event in &tool_stream_events() {
        encoder.encode(event, &mut out);
    }
    check_sse(
        &out,
        r#"event: message_start
        data: {"type":"message_start","message":{"id":"msg_2","type":"message","role":"assistant","model":"claude-x","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":472,"output_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0}}}

        event: content_block_start
        data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

        event: content_block_delta
        data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Okay."}}

        event: content_block_stop
        data: {"type":"content_block_stop","index":0}

        event: content_block_start
        data: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_01","name":"get_weather","input":{}}}

        event: content_block_delta
        data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"city\":"}}

        event: content_block_delta
        data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":" \"Paris\"}"}}

        event: content_block_stop
        data: {"type":"content_block_stop","index":1}

        event: message_delta
        data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"input_tokens":472,"output_tokens":89,"cache_creation_input_tokens":0,"cache_read_input_tokens":0}}

        event: message_stop
        data: {"type":"message_stop"}"#,
    );
    assert_eq!(decode_stream(&out).unwrap(), tool_stream_events(), "what was written reads back");
    let mut error = Vec::new();
    encoder.encode(&StreamEvent::Error(ErrorObject::new(ErrorClass::Overloaded, "busy")), &mut error);
    check_sse(
        &error,
        r#"event: error
        data: {"type":"error","error":{"type":"overloaded_error","message":"busy"}}"#,
    );
}

#[test]
fn errors_classify_by_type_and_encode_back() {
    let cases: [(u16, &str, ErrorClass); 10] = [
        (
            400,
            r#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 210000 tokens > 200000 maximum"}}"#,
            ErrorClass::ContextLength,
        ),
        (
            400,
            r#"{"type":"error","error":{"type":"invalid_request_error","message":"messages: field required"}}"#,
            ErrorClass::InvalidRequest,
        ),
        (
            413,
            r#"{"type":"error","error":{"type":"request_too_large","message":"too big"}}"#,
            ErrorClass::InvalidRequest,
        ),
        (
            401,
            r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#,
            ErrorClass::Authentication,
        ),
        (403, r#"{"type":"error","error":{"type":"permission_error","message":"no"}}"#, ErrorClass::Permission),
        (404, r#"{"type":"error","error":{"type":"not_found_error","message":"model: nope"}}"#, ErrorClass::NotFound),
        (429, r#"{"type":"error","error":{"type":"rate_limit_error","message":"slow"}}"#, ErrorClass::RateLimit),
        (500, r#"{"type":"error","error":{"type":"api_error","message":"oops"}}"#, ErrorClass::Server),
        (529, r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#, ErrorClass::Overloaded),
        (503, "upstream connect error", ErrorClass::Overloaded),
    ];
    for (status, body, class) in cases {
        let error = decode_error(status, body.as_bytes());
        assert_eq!(error.class, class, "{status} {body}");
    }
    assert_eq!(decode_error(529, cases[8].1.as_bytes()).code.as_deref(), Some("overloaded_error"));
    for (class, status, kind) in [
        (ErrorClass::InvalidRequest, 400, "invalid_request_error"),
        (ErrorClass::ContextLength, 400, "invalid_request_error"),
        (ErrorClass::ContentFilter, 400, "invalid_request_error"),
        (ErrorClass::Authentication, 401, "authentication_error"),
        (ErrorClass::Permission, 403, "permission_error"),
        (ErrorClass::NotFound, 404, "not_found_error"),
        (ErrorClass::RateLimit, 429, "rate_limit_error"),
        (ErrorClass::Server, 500, "api_error"),
        (ErrorClass::Overloaded, 529, "overloaded_error"),
    ] {
        let (s, body) = encode_error(&ErrorObject::new(class, "said so"));
        assert_eq!(s, status, "{class}");
        assert_eq!(body, json!({"type": "error", "error": {"type": kind, "message": "said so"}}));
    }
}
