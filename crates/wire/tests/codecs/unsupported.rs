//! What a target protocol cannot express is refused, naming the parameter, never dropped.

use switchyard_wire::canonical::{
    Image, ImageDetail, ImageSource, Message, Part, Protocol, Request, ResponseFormat, ResultPart, Role, ToolResult,
    Unsupported,
};
use switchyard_wire::{anthropic_codec, openai_codec};

use crate::{assistant, text, user};

fn base() -> Request {
    Request { model: "m".into(), messages: vec![user(vec![text("hi")])], max_tokens: Some(100), ..Request::default() }
}

#[track_caller]
fn check(result: Result<serde_json::Value, Unsupported>, target: Protocol, param: &str) {
    let err = result.expect_err(param);
    assert_eq!((err.target, err.param.as_str()), (target, param), "{err}");
    assert!(err.to_string().contains(&format!("`{param}`")), "{err}");
}

fn from_openai(extra: &str) -> Request {
    let body = format!(r#"{{"model":"m","messages":[{{"role":"user","content":"hi"}}],"max_tokens":50{extra}}}"#);
    openai_codec::decode_request(body.as_bytes()).unwrap()
}

#[test]
fn anthropic_refuses_what_it_cannot_express() {
    let to = |r: &Request| anthropic_codec::encode_request(r);
    let target = Protocol::Anthropic;
    check(to(&from_openai(r#","n":2"#)), target, "n");
    check(to(&from_openai(r#","logprobs":true,"top_logprobs":2"#)), target, "logprobs");
    check(to(&from_openai(r#","seed":1"#)), target, "seed");
    check(to(&from_openai(r#","response_format":{"type":"json_object"}"#)), target, "response_format");
    check(to(&from_openai(r#","temperature":1.5"#)), target, "temperature");
    check(to(&Request { max_tokens: None, ..base() }), target, "max_tokens");
    let mut r = base();
    r.response_format = Some(ResponseFormat::JsonObject);
    check(to(&r), target, "response_format");
    let mut r = base();
    r.messages.push(Message { role: Role::System, content: vec![text("later")] });
    r.messages.push(user(vec![text("again")]));
    check(to(&r), target, "messages[1].role");
    let mut r = base();
    r.messages[0].content.push(Part::Image(Image {
        source: ImageSource::Url("https://x/y.png".into()),
        detail: Some(ImageDetail::Low),
    }));
    check(to(&r), target, "messages[0].content[1].detail");
    let mut r = base();
    r.messages.push(assistant(vec![text("Sure")]));
    check(to(&r), target, "messages[1]");
    r.prefill = true;
    assert!(to(&r).is_ok(), "a prefill is what Anthropic continues");
    let mut r = base();
    r.messages.push(assistant(vec![crate::tool_use("c", "f", "[1, 2]")]));
    r.messages.push(user(vec![crate::tool_result("c", "3")]));
    check(to(&r), target, "messages[1].content[0].input");
    let strict = from_openai(r#","tools":[{"type":"function","function":{"name":"f","strict":true}}]"#);
    check(to(&strict), target, "tools[0].strict");
}

fn from_anthropic(extra: &str) -> Request {
    let body = format!(r#"{{"model":"m","messages":[{{"role":"user","content":"hi"}}],"max_tokens":50{extra}}}"#);
    anthropic_codec::decode_request(body.as_bytes()).unwrap()
}

#[test]
fn openai_refuses_what_it_cannot_express() {
    let to = |r: &Request| openai_codec::encode_request(r);
    let target = Protocol::OpenAiChat;
    check(to(&from_anthropic(r#","top_k":5"#)), target, "top_k");
    check(to(&from_anthropic(r#","thinking":{"type":"enabled","budget_tokens":1024}"#)), target, "thinking");
    check(to(&from_anthropic(r#","service_tier":"auto""#)), target, "service_tier");
    let prefill = anthropic_codec::decode_request(
        br#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"Once upon"}]}"#,
    )
    .unwrap();
    check(to(&prefill), target, "messages[1]");
    let mut r = base();
    r.messages.push(user(vec![Part::ToolResult(ToolResult {
        tool_use_id: "t".into(),
        content: vec![ResultPart::Text("boom".into())],
        is_error: true,
    })]));
    check(to(&r), target, "messages[1].content[0].is_error");
    let mut r = base();
    r.messages.push(user(vec![Part::ToolResult(ToolResult {
        tool_use_id: "t".into(),
        content: vec![ResultPart::Image(Image { source: ImageSource::Url("u".into()), detail: None })],
        is_error: false,
    })]));
    check(to(&r), target, "messages[1].content[0].content[0]");
}

#[test]
fn a_protocols_own_parameters_pass_to_the_same_protocol() {
    let r = from_openai(r#","seed":1,"n":2"#);
    let body = openai_codec::encode_request(&r).unwrap();
    assert_eq!((body["seed"].as_u64(), body["n"].as_u64()), (Some(1), Some(2)));
    let r = from_anthropic(r#","service_tier":"auto""#);
    assert_eq!(anthropic_codec::encode_request(&r).unwrap()["service_tier"], "auto");
}
