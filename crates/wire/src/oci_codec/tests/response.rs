//! Whole answers both ways, in both formats, and error bodies.

use super::check_json;
use crate::canonical::{ErrorClass, ErrorObject, FinishReason, OutputPart, Response, ToolUse, Usage};
use crate::oci_codec::{Format, decode_error, decode_response, encode_error, encode_response};

/// A GENERIC answer as OCI writes it (a Llama model calling a tool).
const GENERIC: &str = r#"{"modelId":"meta.llama-3.3-70b-instruct","modelVersion":"1.0.0","chatResponse":{
    "apiFormat":"GENERIC","timeCreated":"2026-01-02T03:04:05.000Z",
    "choices":[{"index":0,"message":{"role":"ASSISTANT","content":[{"type":"TEXT","text":"Let me check."}],
      "toolCalls":[{"id":"chatcmpl-tool-1","type":"FUNCTION","name":"get_weather","arguments":"{\"city\": \"Paris\"}"}]},
      "finishReason":"tool_calls","logprobs":{}}],
    "usage":{"completionTokens":12,"promptTokens":40,"totalTokens":52,"promptTokensDetails":{"cachedTokens":8}}}}"#;

/// A COHERE answer as OCI writes it.
const COHERE: &str = r#"{"modelId":"cohere.command-r-plus-08-2024","modelVersion":"1.6","chatResponse":{
    "apiFormat":"COHERE","text":"","finishReason":"COMPLETE",
    "toolCalls":[{"name":"get_weather","parameters":{"city":"Paris"}}],
    "chatHistory":[{"role":"USER","message":"Weather?"}],
    "usage":{"completionTokens":9,"promptTokens":30,"totalTokens":39}}}"#;

fn call(id: &str) -> OutputPart {
    OutputPart::ToolUse(ToolUse {
        id: id.into(),
        name: "get_weather".into(),
        input: serde_json::json!({"city": "Paris"}),
    })
}

#[test]
fn a_generic_answer_decodes() {
    let response = decode_response(GENERIC.as_bytes()).expect("decodes");
    assert_eq!(
        response,
        Response {
            id: String::new(),
            model: "meta.llama-3.3-70b-instruct".into(),
            content: vec![OutputPart::Text("Let me check.".into()), call("chatcmpl-tool-1")],
            finish: FinishReason::ToolUse,
            usage: Some(Usage { input_tokens: 40, output_tokens: 12, cache_read_tokens: 8, ..Usage::default() }),
        }
    );
}

#[test]
fn a_cohere_answer_decodes_with_ids_for_its_calls() {
    let response = decode_response(COHERE.as_bytes()).expect("decodes");
    assert_eq!(response.content, vec![call("call_0_0")]);
    assert_eq!(response.finish, FinishReason::ToolUse, "COMPLETE after a call waits for its result");
    assert_eq!(response.usage.map(|u| (u.input_tokens, u.output_tokens)), Some((30, 9)));
    let text = br#"{"modelId":"cohere.command-a","chatResponse":{"apiFormat":"COHERE","text":"Hi.","finishReason":"MAX_TOKENS"}}"#;
    let response = decode_response(text).expect("decodes");
    assert_eq!((response.text(), response.finish), ("Hi.".to_owned(), FinishReason::Length));
}

#[test]
fn answers_encode_as_oci_writes_them_and_decode_back() {
    let response = Response {
        id: String::new(),
        model: "m".into(),
        content: vec![OutputPart::Text("Let me check.".into()), call("call_0_0")],
        finish: FinishReason::ToolUse,
        usage: Some(Usage { input_tokens: 40, output_tokens: 12, ..Usage::default() }),
    };
    let generic = encode_response(&response, Format::Generic, "2026-01-02T03:04:05Z");
    check_json(
        &generic,
        r#"{"modelId":"m","modelVersion":"1.0","chatResponse":{"apiFormat":"GENERIC","timeCreated":"2026-01-02T03:04:05Z",
            "choices":[{"index":0,"finishReason":"tool_calls","message":{"role":"ASSISTANT",
              "content":[{"type":"TEXT","text":"Let me check."}],
              "toolCalls":[{"id":"call_0_0","type":"FUNCTION","name":"get_weather","arguments":"{\"city\":\"Paris\"}"}]}}],
            "usage":{"promptTokens":40,"completionTokens":12,"totalTokens":52}}}"#,
    );
    let cohere = encode_response(&response, Format::Cohere, "unused");
    check_json(
        &cohere,
        r#"{"modelId":"m","modelVersion":"1.0","chatResponse":{"apiFormat":"COHERE","text":"Let me check.",
            "toolCalls":[{"name":"get_weather","parameters":{"city":"Paris"}}],"finishReason":"COMPLETE",
            "usage":{"promptTokens":40,"completionTokens":12,"totalTokens":52}}}"#,
    );
    for body in [generic, cohere] {
        assert_eq!(decode_response(body.to_string().as_bytes()), Ok(response.clone()));
    }
}

/// OCI writes an absent list as `null` as well: read as empty, in whole answers and stream
/// events alike.
#[test]
fn null_lists_are_read_as_empty() {
    let generic = r#"{"modelId":"m","chatResponse":{"apiFormat":"GENERIC","choices":[{"index":0,
        "message":{"role":"ASSISTANT","content":[{"type":"TEXT","text":"Hi."}],"toolCalls":null},
        "finishReason":"stop"}],"toolCalls":null}}"#;
    let response = decode_response(generic.as_bytes()).expect("decodes");
    assert_eq!((response.content, response.finish), (vec![OutputPart::Text("Hi.".into())], FinishReason::Stop));
    let cohere = r#"{"modelId":"cohere.command-r","chatResponse":{"apiFormat":"COHERE","text":"Hi.",
        "finishReason":"COMPLETE","toolCalls":null,"choices":null}}"#;
    let response = decode_response(cohere.as_bytes()).expect("decodes");
    assert_eq!(response.content, vec![OutputPart::Text("Hi.".into())]);
    let stream = "data: {\"index\":0,\"message\":{\"role\":\"ASSISTANT\",\"content\":[{\"type\":\"TEXT\",\"text\":\"Hi\"}],\"toolCalls\":null}}\n\n\
                  data: {\"finishReason\":\"stop\",\"toolCalls\":null}\n\n";
    let events = crate::oci_codec::decode_stream(stream.as_bytes()).expect("decodes");
    assert!(!events.is_empty(), "{events:?}");
}

#[test]
fn answers_that_are_not_oci_are_refused() {
    for body in [
        &b"{}"[..],
        b"[1]",
        br#"{"chatResponse":{"apiFormat":"GENERIC","choices":[]}}"#,
        br#"{"chatResponse":{"choices":[{"message":{"role":"USER","content":[]}}]}}"#,
        br#"{"chatResponse":{"choices":[{"message":{"toolCalls":[{"id":"1","name":"f","arguments":"[1]"}]}}]}}"#,
    ] {
        assert!(decode_response(body).is_err(), "{}", String::from_utf8_lossy(body));
    }
}

#[test]
fn oci_errors_are_classified_by_code_and_status() {
    let cases: [(u16, &str, ErrorClass); 8] = [
        (429, r#"{"code":"TooManyRequests","message":"Too many requests for the user"}"#, ErrorClass::RateLimit),
        (
            401,
            r#"{"code":"NotAuthenticated","message":"The required information to complete authentication was not provided."}"#,
            ErrorClass::Authentication,
        ),
        (
            404,
            r#"{"code":"NotAuthorizedOrNotFound","message":"Authorization failed or requested resource not found."}"#,
            ErrorClass::NotFound,
        ),
        (
            400,
            r#"{"code":"InvalidParameter","message":"Please reduce the length of the messages: this model's maximum context length is 128000 tokens."}"#,
            ErrorClass::ContextLength,
        ),
        (400, r#"{"code":"InvalidParameter","message":"topK must be between -1 and 500"}"#, ErrorClass::InvalidRequest),
        (500, r#"{"code":"InternalServerError","message":"Internal error"}"#, ErrorClass::Server),
        (503, "<html>busy</html>", ErrorClass::Overloaded),
        (403, "", ErrorClass::Permission),
    ];
    for (status, body, class) in cases {
        let error = decode_error(status, body.as_bytes());
        assert_eq!(error.class, class, "{status} {body}");
    }
    let error = decode_error(429, br#"{"code":"TooManyRequests","message":"slow down"}"#);
    assert_eq!((error.code.as_deref(), error.message.as_str()), (Some("TooManyRequests"), "slow down"));
    let (status, body) = encode_error(&ErrorObject::new(ErrorClass::NotFound, "no such model"));
    check_json(&body, r#"{"code":"NotAuthorizedOrNotFound","message":"no such model"}"#);
    assert_eq!(decode_error(status, body.to_string().as_bytes()).class, ErrorClass::NotFound);
}
