//! Converse requests ⇄ canonical, pinned both ways; malformed bodies; what Converse refuses.

use serde_json::json;

use super::{assistant, check_json, json, text, tool_result, tool_use, user};
use crate::bedrock_codec::{decode_request, encode_request};
use crate::canonical::{
    Image, ImageDetail, ImageSource, Message, Part, Protocol, Request, ResponseFormat, ResultPart, Role, Sampling,
    Tool, ToolChoice, ToolResult, Unsupported,
};
use crate::{anthropic_codec, openai_codec};

pub(super) const MODEL: &str = "anthropic.claude-sonnet-4-5-20250929-v1:0";

const REQUEST: &str = r#"{
    "system": [
        {"text": "You are terse."},
        {"cachePoint": {"type": "default"}},
        {"text": "Answer in English."}
    ],
    "messages": [
        {"role": "user", "content": [
            {"text": "What is this, and the weather in Paris and Lyon?"},
            {"image": {"format": "jpeg", "source": {"bytes": "/9j/4AAQ"}}},
            {"cachePoint": {"type": "default"}}
        ]},
        {"role": "assistant", "content": [
            {"text": "Checking."},
            {"toolUse": {"toolUseId": "tooluse_1", "name": "get_weather", "input": {"city": "Paris"}}},
            {"toolUse": {"toolUseId": "tooluse_2", "name": "get_weather", "input": {"city": "Lyon"}}}
        ]},
        {"role": "user", "content": [
            {"toolResult": {"toolUseId": "tooluse_1", "content": [{"text": "18C"}], "status": "success"}},
            {"toolResult": {"toolUseId": "tooluse_2", "content": [{"json": {"error": "no data"}}], "status": "error"}}
        ]},
        {"role": "assistant", "content": [{"text": "In Paris it is"}]}
    ],
    "inferenceConfig": {"maxTokens": 1024, "temperature": 0.5, "topP": 0.8, "stopSequences": ["END"]},
    "toolConfig": {
        "tools": [
            {"toolSpec": {"name": "get_weather", "description": "Weather for a city",
                "inputSchema": {"json": {"type": "object", "properties": {"city": {"type": "string"}}}}}},
            {"cachePoint": {"type": "default"}}
        ],
        "toolChoice": {"any": {}}
    },
    "additionalModelRequestFields": {"top_k": 40},
    "requestMetadata": {"user_id": "u-7"}
}"#;

pub(super) fn canonical_request() -> Request {
    Request {
        model: MODEL.into(),
        system: vec!["You are terse.".into(), "Answer in English.".into()],
        messages: vec![
            user(vec![
                text("What is this, and the weather in Paris and Lyon?"),
                Part::Image(Image {
                    source: ImageSource::Base64 { media_type: "image/jpeg".into(), data: "/9j/4AAQ".into() },
                    detail: None,
                }),
            ]),
            assistant(vec![
                text("Checking."),
                tool_use("tooluse_1", "get_weather", r#"{"city":"Paris"}"#),
                tool_use("tooluse_2", "get_weather", r#"{"city":"Lyon"}"#),
            ]),
            user(vec![
                tool_result("tooluse_1", "18C", false),
                tool_result("tooluse_2", r#"{"error":"no data"}"#, true),
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
        parallel_tool_calls: None,
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
fn a_request_with_system_images_tools_results_and_a_prefill_decodes_and_encodes() {
    let request = decode_request(REQUEST.as_bytes(), MODEL, true).unwrap();
    assert_eq!(request, canonical_request());
    check_json(
        &encode_request(&request).unwrap(),
        r#"{
            "system": [{"text": "You are terse."}, {"text": "Answer in English."}],
            "messages": [
                {"role": "user", "content": [
                    {"text": "What is this, and the weather in Paris and Lyon?"},
                    {"image": {"format": "jpeg", "source": {"bytes": "/9j/4AAQ"}}}
                ]},
                {"role": "assistant", "content": [
                    {"text": "Checking."},
                    {"toolUse": {"toolUseId": "tooluse_1", "name": "get_weather", "input": {"city": "Paris"}}},
                    {"toolUse": {"toolUseId": "tooluse_2", "name": "get_weather", "input": {"city": "Lyon"}}}
                ]},
                {"role": "user", "content": [
                    {"toolResult": {"toolUseId": "tooluse_1", "content": [{"text": "18C"}]}},
                    {"toolResult": {"toolUseId": "tooluse_2", "content": [{"text": "{\"error\":\"no data\"}"}], "status": "error"}}
                ]},
                {"role": "assistant", "content": [{"text": "In Paris it is"}]}
            ],
            "inferenceConfig": {"maxTokens": 1024, "temperature": 0.5, "topP": 0.8, "stopSequences": ["END"]},
            "toolConfig": {
                "tools": [{"toolSpec": {"name": "get_weather", "description": "Weather for a city",
                    "inputSchema": {"json": {"type": "object", "properties": {"city": {"type": "string"}}}}}}],
                "toolChoice": {"any": {}}
            },
            "additionalModelRequestFields": {"top_k": 40},
            "requestMetadata": {"user_id": "u-7"}
        }"#,
    );
}

#[test]
fn a_plain_request_its_tool_choices_and_its_extras() {
    let body = r#"{"messages":[{"role":"user","content":[{"text":"hi"}]}],
        "toolConfig":{"tools":[{"toolSpec":{"name":"f","inputSchema":{"json":{"type":"object"}}}}],"toolChoice":{"tool":{"name":"f"}}},
        "additionalModelRequestFields":{"top_k":5,"thinking":{"type":"enabled","budget_tokens":2000}},
        "requestMetadata":{"team":"search"},
        "guardrailConfig":{"guardrailIdentifier":"g1","guardrailVersion":"1"},
        "performanceConfig":null,"additionalModelResponseFieldPaths":[]}"#;
    let request = decode_request(body.as_bytes(), "amazon.nova-pro-v1:0", false).unwrap();
    assert_eq!(request.model, "amazon.nova-pro-v1:0");
    assert_eq!(request.tool_choice, Some(ToolChoice::Tool { name: "f".into() }));
    assert_eq!(request.sampling.top_k, Some(5));
    assert!(!request.prefill && !request.stream && request.include_usage && request.max_tokens.is_none());
    assert_eq!(request.user_id, None);
    let extra = request.extra.as_ref().unwrap();
    assert_eq!(extra.protocol, Protocol::Bedrock);
    let mut keys: Vec<&str> = extra.fields.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["additionalModelRequestFields", "guardrailConfig", "requestMetadata"]);
    assert_eq!(
        extra.fields["additionalModelRequestFields"],
        json!({"thinking": {"type": "enabled", "budget_tokens": 2000}})
    );
    check_json(
        &encode_request(&request).unwrap(),
        r#"{"messages":[{"role":"user","content":[{"text":"hi"}]}],
            "toolConfig":{"tools":[{"toolSpec":{"name":"f","inputSchema":{"json":{"type":"object"}}}}],"toolChoice":{"tool":{"name":"f"}}},
            "additionalModelRequestFields":{"top_k":5,"thinking":{"type":"enabled","budget_tokens":2000}},
            "requestMetadata":{"team":"search"},
            "guardrailConfig":{"guardrailIdentifier":"g1","guardrailVersion":"1"}}"#,
    );
    let auto = r#"{"messages":[{"role":"user","content":[{"text":"hi"}]}],"toolConfig":{"toolChoice":{"auto":{}}}}"#;
    let request = decode_request(auto.as_bytes(), "m", true).unwrap();
    assert_eq!((request.tool_choice, request.tools.len()), (Some(ToolChoice::Auto), 0));
}

#[track_caller]
fn check_bad(body: &str, param: &str, expected: &str) {
    let err = decode_request(body.as_bytes(), MODEL, false).expect_err(body);
    assert_eq!(err.param, Some(param), "{err:?}");
    assert!(err.message.contains(expected), "{:?} does not contain {expected:?}", err.message);
}

#[test]
fn malformed_requests_are_refused_with_the_parameter() {
    let err = decode_request(br#"{"messages":[{"role":"user","content":[{"text":"x"}]}]}"#, "", false).unwrap_err();
    assert_eq!(err.param, Some("modelId"));
    assert!(decode_request(b"[1]", MODEL, false).unwrap_err().param.is_none());
    check_bad(r#"{}"#, "messages", "messages: is required");
    check_bad(r#"{"messages":[]}"#, "messages", "at least one");
    check_bad(r#"{"messages":[{"role":"system","content":[{"text":"x"}]}]}"#, "messages", "messages[0].role");
    check_bad(r#"{"messages":[{"role":"user","content":"x"}]}"#, "messages", "messages[0].content: must be an array");
    check_bad(
        r#"{"messages":[{"role":"user","content":[{"document":{"format":"pdf","name":"d","source":{"bytes":"AA"}}}]}]}"#,
        "messages",
        "messages[0].content[0].document: 'document' blocks are not supported",
    );
    check_bad(
        r#"{"messages":[{"role":"user","content":[{"text":"a","image":{}}]}]}"#,
        "messages",
        "exactly one content block",
    );
    check_bad(
        r#"{"messages":[{"role":"user","content":[{"toolUse":{"toolUseId":"t","name":"f","input":{}}}]}]}"#,
        "messages",
        "not allowed in this role",
    );
    check_bad(
        r#"{"messages":[{"role":"user","content":[{"image":{"format":"png","source":{"s3Location":{"uri":"s3://b/k"}}}}]}]}"#,
        "messages",
        "messages[0].content[0].image.source.s3Location",
    );
    check_bad(
        r#"{"messages":[{"role":"user","content":[{"image":{"format":"bmp","source":{"bytes":"AA"}}}]}]}"#,
        "messages",
        "image.format",
    );
    check_bad(
        r#"{"messages":[{"role":"user","content":[{"toolResult":{"toolUseId":"t","content":[],"status":"odd"}}]}]}"#,
        "messages",
        "toolResult.status",
    );
    check_bad(r#"{"messages":[{"role":"user","content":[{"text":"x"}]}],"system":"x"}"#, "system", "must be an array");
    let msg = r#"{"messages":[{"role":"user","content":[{"text":"x"}]}]"#;
    check_bad(&format!(r#"{msg},"inferenceConfig":{{"maxTokens":0}}}}"#), "inferenceConfig", "maxTokens");
    check_bad(&format!(r#"{msg},"inferenceConfig":{{"topK":3}}}}"#), "inferenceConfig", "inferenceConfig.topK");
    check_bad(&format!(r#"{msg},"inferenceConfig":{{"stopSequences":[1]}}}}"#), "inferenceConfig", "stopSequences[0]");
    check_bad(&format!(r#"{msg},"toolConfig":{{"toolChoice":{{"none":{{}}}}}}}}"#), "toolConfig", "toolChoice.none");
    check_bad(
        &format!(r#"{msg},"toolConfig":{{"tools":[{{"systemTool":{{"name":"x"}}}}]}}}}"#),
        "toolConfig",
        "tools[0]",
    );
    check_bad(
        &format!(r#"{msg},"toolConfig":{{"tools":[{{"toolSpec":{{"name":"f","inputSchema":{{"json":"{{}}"}}}}}}]}}}}"#),
        "toolConfig",
        "inputSchema.json",
    );
    check_bad(
        &format!(r#"{msg},"additionalModelRequestFields":{{"top_k":-1}}}}"#),
        "additionalModelRequestFields",
        "top_k",
    );
    check_bad(&format!(r#"{msg},"requestMetadata":{{"user_id":7}}}}"#), "requestMetadata", "user_id");
}

fn base() -> Request {
    Request { model: "m".into(), messages: vec![user(vec![text("hi")])], max_tokens: Some(100), ..Request::default() }
}

#[track_caller]
fn check_unsupported(result: Result<serde_json::Value, Unsupported>, param: &str) {
    let err = result.expect_err(param);
    assert_eq!((err.target, err.param.as_str()), (Protocol::Bedrock, param), "{err}");
    assert!(err.to_string().contains(&format!("`{param}`")), "{err}");
}

fn image(source: ImageSource, detail: Option<ImageDetail>) -> Part {
    Part::Image(Image { source, detail })
}

#[test]
fn converse_refuses_what_it_cannot_express() {
    let openai = |extra: &str| {
        let body = format!(r#"{{"model":"m","messages":[{{"role":"user","content":"hi"}}]{extra}}}"#);
        openai_codec::decode_request(body.as_bytes()).unwrap()
    };
    check_unsupported(encode_request(&openai(r#","n":2"#)), "n");
    check_unsupported(encode_request(&openai(r#","seed":1"#)), "seed");
    check_unsupported(encode_request(&openai(r#","response_format":{"type":"json_object"}"#)), "response_format");
    check_unsupported(encode_request(&openai(r#","parallel_tool_calls":false"#)), "parallel_tool_calls");
    assert!(encode_request(&openai(r#","parallel_tool_calls":true"#)).is_ok(), "the default is expressed");
    let thinking = anthropic_codec::decode_request(
        br#"{"model":"m","max_tokens":9,"messages":[{"role":"user","content":"hi"}],"thinking":{"type":"enabled","budget_tokens":1024}}"#,
    )
    .unwrap();
    check_unsupported(encode_request(&thinking), "thinking");
    let mut r = base();
    r.response_format = Some(ResponseFormat::JsonObject);
    check_unsupported(encode_request(&r), "response_format");
    let mut r = base();
    r.tools = vec![Tool { name: "f".into(), description: None, input_schema: json("{}"), strict: Some(true) }];
    check_unsupported(encode_request(&r), "tools[0].strict");
    r.tools[0].strict = None;
    r.tool_choice = Some(ToolChoice::None);
    check_unsupported(encode_request(&r), "tool_choice");
    r.tools.clear();
    assert!(encode_request(&r).is_ok(), "no tools: no tool calls, as asked");
    r.tool_choice = Some(ToolChoice::Any);
    check_unsupported(encode_request(&r), "tool_choice");
    let mut r = base();
    r.messages.push(Message { role: Role::System, content: vec![text("later")] });
    r.messages.push(user(vec![text("again")]));
    check_unsupported(encode_request(&r), "messages[1].role");
    let mut r = base();
    r.messages[0].content.push(image(ImageSource::Url("https://x/y.png".into()), None));
    check_unsupported(encode_request(&r), "messages[0].content[1].source");
    let png = || ImageSource::Base64 { media_type: "image/png".into(), data: "iVBOR".into() };
    r.messages[0].content[1] = image(png(), Some(ImageDetail::Low));
    check_unsupported(encode_request(&r), "messages[0].content[1].detail");
    r.messages[0].content[1] = image(ImageSource::Base64 { media_type: "image/bmp".into(), data: "Qk0".into() }, None);
    check_unsupported(encode_request(&r), "messages[0].content[1].source");
    r.messages[0].content[1] = image(png(), Some(ImageDetail::Auto));
    assert!(encode_request(&r).is_ok());
    let mut r = base();
    r.messages.push(user(vec![Part::ToolResult(ToolResult {
        tool_use_id: "t".into(),
        content: vec![ResultPart::Image(Image { source: ImageSource::Url("u".into()), detail: None })],
        is_error: false,
    })]));
    check_unsupported(encode_request(&r), "messages[1].content[0].content[0].source");
    let mut r = base();
    r.messages.push(assistant(vec![text("Sure")]));
    check_unsupported(encode_request(&r), "messages[1]");
    r.prefill = true;
    assert!(encode_request(&r).is_ok(), "a prefill is a trailing assistant message");
    let mut r = base();
    r.messages.push(assistant(vec![tool_use("c", "f", "[1, 2]")]));
    r.messages.push(user(vec![tool_result("c", "3", false)]));
    check_unsupported(encode_request(&r), "messages[1].content[0].input");
    let mut r = base();
    r.messages[0].content.push(tool_use("c", "f", "{}"));
    check_unsupported(encode_request(&r), "messages[0].content[1]");
}

#[test]
fn bedrock_parameters_pass_to_bedrock_and_the_model_id_stays_out_of_the_body() {
    let body = r#"{"messages":[{"role":"user","content":[{"text":"hi"}]}],"guardrailConfig":{"guardrailIdentifier":"g"},
        "additionalModelRequestFields":{"reasoning_effort":"low"}}"#;
    let request = decode_request(body.as_bytes(), MODEL, false).unwrap();
    let out = encode_request(&request).unwrap();
    assert_eq!(out["guardrailConfig"], json!({"guardrailIdentifier": "g"}));
    assert_eq!(out["additionalModelRequestFields"], json!({"reasoning_effort": "low"}));
    assert!(out.get("modelId").is_none() && out.get("model").is_none() && out.get("stream").is_none());
    let err = openai_codec::encode_request(&request).unwrap_err();
    assert_eq!(err.target, Protocol::OpenAiChat, "another protocol refuses them");
    assert!(["additionalModelRequestFields", "guardrailConfig"].contains(&err.param.as_str()), "{err}");
}

#[test]
fn consecutive_messages_of_one_role_are_joined() {
    let body = r#"{"model":"m","messages":[
        {"role":"user","content":"Weather?"},
        {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"w","arguments":"{}"}}]},
        {"role":"tool","tool_call_id":"c1","content":"sunny"},
        {"role":"user","content":"And tomorrow?"}]}"#;
    let request = openai_codec::decode_request(body.as_bytes()).unwrap();
    assert_eq!(request.messages.len(), 4);
    check_json(
        &encode_request(&request).unwrap()["messages"],
        r#"[
            {"role": "user", "content": [{"text": "Weather?"}]},
            {"role": "assistant", "content": [{"toolUse": {"toolUseId": "c1", "name": "w", "input": {}}}]},
            {"role": "user", "content": [
                {"toolResult": {"toolUseId": "c1", "content": [{"text": "sunny"}]}},
                {"text": "And tomorrow?"}
            ]}
        ]"#,
    );
}
