//! Whole answers and errors both ways.

use super::{check_json, json};
use crate::canonical::{ErrorClass, ErrorObject, FinishReason, OutputPart, Response, ToolUse, Usage};
use crate::gemini_codec::{blocked, decode_error, decode_response, encode_error, encode_response};

const ANSWER: &str = r#"{
  "candidates": [{"content": {"role": "model", "parts": [
      {"text": "thinking...", "thought": true},
      {"text": "It is "}, {"text": "sunny."},
      {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}}]},
    "finishReason": "STOP", "index": 0, "safetyRatings": []}],
  "usageMetadata": {"promptTokenCount": 100, "candidatesTokenCount": 20, "totalTokenCount": 150,
    "cachedContentTokenCount": 60, "thoughtsTokenCount": 30},
  "modelVersion": "gemini-2.5-flash", "responseId": "resp-1"
}"#;

#[test]
fn an_answer_decodes_with_its_usage_as_totals() {
    let response = decode_response(ANSWER.as_bytes()).expect("decodes");
    assert_eq!(response.id, "resp-1");
    assert_eq!(response.model, "gemini-2.5-flash");
    assert_eq!(
        response.content,
        vec![
            OutputPart::Text("It is sunny.".into()),
            OutputPart::ToolUse(ToolUse {
                id: "call_0_0".into(),
                name: "get_weather".into(),
                input: json(r#"{"city":"Rome"}"#)
            }),
        ]
    );
    assert_eq!(response.finish, FinishReason::ToolUse, "STOP after a call waits for its result");
    assert_eq!(
        response.usage,
        Some(Usage {
            input_tokens: 100,
            output_tokens: 50,
            cache_read_tokens: 60,
            cache_write_tokens: 0,
            reasoning_tokens: 30,
        })
    );
}

#[test]
fn an_answer_encodes_as_gemini_writes_it() {
    let response = Response {
        id: "r".into(),
        model: "gemini-x".into(),
        content: vec![OutputPart::Text("Hi".into())],
        finish: FinishReason::Length,
        usage: Some(Usage { input_tokens: 5, output_tokens: 7, reasoning_tokens: 2, ..Usage::default() }),
    };
    check_json(
        &encode_response(&response),
        r#"{
      "candidates": [{"content": {"role": "model", "parts": [{"text": "Hi"}]}, "finishReason": "MAX_TOKENS", "index": 0}],
      "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 5, "totalTokenCount": 12, "thoughtsTokenCount": 2},
      "modelVersion": "gemini-x", "responseId": "r"}"#,
    );
    assert_eq!(decode_response(encode_response(&response).to_string().as_bytes()), Ok(response));
}

#[test]
fn finish_reasons_and_blocked_prompts() {
    for (reason, finish) in [
        ("STOP", FinishReason::Stop),
        ("MAX_TOKENS", FinishReason::Length),
        ("SAFETY", FinishReason::ContentFilter),
        ("RECITATION", FinishReason::ContentFilter),
        ("PROHIBITED_CONTENT", FinishReason::ContentFilter),
        ("MALFORMED_FUNCTION_CALL", FinishReason::Other),
    ] {
        let body =
            format!(r#"{{"candidates":[{{"content":{{"parts":[{{"text":"x"}}]}},"finishReason":"{reason}"}}]}}"#);
        assert_eq!(decode_response(body.as_bytes()).map(|r| r.finish), Ok(finish), "{reason}");
    }
    let body =
        br#"{"promptFeedback":{"blockReason":"SAFETY","safetyRatings":[]},"usageMetadata":{"promptTokenCount":8}}"#;
    let error = blocked(body).expect("blocked");
    assert_eq!((error.class, error.code.as_deref()), (ErrorClass::ContentFilter, Some("SAFETY")));
    assert_eq!(decode_response(body).map(|r| r.finish), Ok(FinishReason::ContentFilter));
    assert_eq!(blocked(ANSWER.as_bytes()), None);
    assert!(decode_response(br#"{"candidates":[]}"#).is_err());
    assert!(decode_response(br#"{"candidates":[{"content":{"role":"user","parts":[]}}]}"#).is_err());
}

#[test]
fn errors_both_ways() {
    let body = |status: &str, message: &str| {
        format!(r#"{{"error":{{"code":400,"message":"{message}","status":"{status}"}}}}"#)
    };
    for (status, code, message, class) in [
        (429, "RESOURCE_EXHAUSTED", "Quota exceeded", ErrorClass::RateLimit),
        (503, "UNAVAILABLE", "The model is overloaded.", ErrorClass::Overloaded),
        (
            400,
            "INVALID_ARGUMENT",
            "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).",
            ErrorClass::ContextLength,
        ),
        (400, "INVALID_ARGUMENT", "bad", ErrorClass::InvalidRequest),
        (401, "UNAUTHENTICATED", "no", ErrorClass::Authentication),
        (403, "PERMISSION_DENIED", "no", ErrorClass::Permission),
        (404, "NOT_FOUND", "no model", ErrorClass::NotFound),
        (500, "INTERNAL", "oops", ErrorClass::Server),
    ] {
        let error = decode_error(status, body(code, message).as_bytes());
        assert_eq!((error.class, error.code.as_deref(), error.message.as_str()), (class, Some(code), message));
    }
    let list = br#"[{"error":{"code":429,"message":"slow down","status":"RESOURCE_EXHAUSTED"}}]"#;
    assert_eq!(decode_error(429, list).class, ErrorClass::RateLimit);
    assert_eq!(decode_error(503, b"<html>").class, ErrorClass::Overloaded);
    assert_eq!(decode_error(429, b"").class, ErrorClass::RateLimit);
    let (status, body) = encode_error(&ErrorObject::new(ErrorClass::RateLimit, "later"));
    assert_eq!(status, 429);
    check_json(&body, r#"{"error":{"code":429,"message":"later","status":"RESOURCE_EXHAUSTED"}}"#);
    let (status, body) = encode_error(&ErrorObject::new(
        ErrorClass::ContextLength,
        "The input token count (9) exceeds the maximum number of tokens allowed (8).",
    ));
    assert_eq!((status, decode_error(status, body.to_string().as_bytes()).class), (400, ErrorClass::ContextLength));
}
