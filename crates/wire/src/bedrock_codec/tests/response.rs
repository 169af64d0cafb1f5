//! Converse answers ⇄ canonical, pinned both ways.

use serde_json::json;

use super::check_json;
use crate::bedrock_codec::{decode_response, encode_response};
use crate::canonical::{FinishReason, OutputPart, Response, ToolUse, Usage};

pub(super) const RESPONSE: &str = r#"{
    "output": {"message": {"role": "assistant", "content": [
        {"text": "Let me check."},
        {"toolUse": {"toolUseId": "tooluse_9", "name": "get_weather", "input": {"city": "Oslo"}}}
    ]}},
    "stopReason": "tool_use",
    "usage": {"inputTokens": 20, "outputTokens": 40, "totalTokens": 190,
        "cacheReadInputTokens": 100, "cacheWriteInputTokens": 30},
    "metrics": {"latencyMs": 812}
}"#;

pub(super) fn canonical_response() -> Response {
    Response {
        id: String::new(),
        model: String::new(),
        content: vec![
            OutputPart::Text("Let me check.".into()),
            OutputPart::ToolUse(ToolUse {
                id: "tooluse_9".into(),
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
            "output": {"message": {"role": "assistant", "content": [
                {"text": "Let me check."},
                {"toolUse": {"toolUseId": "tooluse_9", "name": "get_weather", "input": {"city": "Oslo"}}}
            ]}},
            "stopReason": "tool_use",
            "usage": {"inputTokens": 20, "outputTokens": 40, "totalTokens": 190,
                "cacheReadInputTokens": 100, "cacheWriteInputTokens": 30},
            "metrics": {"latencyMs": 0}
        }"#,
    );
}

#[test]
fn a_text_response_without_cache_counts() {
    let body = r#"{"output":{"message":{"role":"assistant","content":[{"text":"Hello!"}]}},"stopReason":"end_turn",
        "usage":{"inputTokens":12,"outputTokens":3,"totalTokens":15},"metrics":{"latencyMs":300},"trace":{}}"#;
    let response = decode_response(body.as_bytes()).unwrap();
    assert_eq!(response.text(), "Hello!");
    assert_eq!(response.finish, FinishReason::Stop);
    assert_eq!(response.usage, Some(Usage { input_tokens: 12, output_tokens: 3, ..Usage::default() }));
    check_json(
        &encode_response(&response),
        r#"{"output":{"message":{"role":"assistant","content":[{"text":"Hello!"}]}},"stopReason":"end_turn",
            "usage":{"inputTokens":12,"outputTokens":3,"totalTokens":15},"metrics":{"latencyMs":0}}"#,
    );
    let unknown = Response { usage: None, ..response };
    assert_eq!(encode_response(&unknown)["usage"], json!({"inputTokens": 0, "outputTokens": 0, "totalTokens": 0}));
}

#[test]
fn stop_reasons_map_both_ways() {
    let sequence = json!({"stop_sequence": "END"});
    for (wire, fields, finish, back) in [
        ("end_turn", None, FinishReason::Stop, "end_turn"),
        ("max_tokens", None, FinishReason::Length, "max_tokens"),
        ("model_context_window_exceeded", None, FinishReason::Length, "max_tokens"),
        ("stop_sequence", Some(&sequence), FinishReason::StopSequence(Some("END".into())), "stop_sequence"),
        ("stop_sequence", None, FinishReason::StopSequence(None), "stop_sequence"),
        ("tool_use", None, FinishReason::ToolUse, "tool_use"),
        ("guardrail_intervened", None, FinishReason::ContentFilter, "content_filtered"),
        ("content_filtered", None, FinishReason::ContentFilter, "content_filtered"),
        ("malformed_tool_use", None, FinishReason::Other, "end_turn"),
        ("malformed_model_output", None, FinishReason::Other, "end_turn"),
    ] {
        let mut body = json!({"output": {"message": {"role": "assistant", "content": [{"text": "a"}]}},
            "stopReason": wire, "usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2}});
        if let Some(fields) = fields {
            body["additionalModelResponseFields"] = fields.clone();
        }
        let response = decode_response(body.to_string().as_bytes()).unwrap();
        assert_eq!(response.finish, finish, "{wire}");
        let encoded = encode_response(&response);
        assert_eq!(encoded["stopReason"], back, "{wire}");
        assert_eq!(encoded.get("additionalModelResponseFields"), fields, "{wire}");
    }
}

#[test]
fn what_is_not_a_converse_answer_is_refused() {
    assert!(decode_response(b"not json").is_err());
    assert!(decode_response(br#"{"message":"Too many requests"}"#).is_err(), "an error body");
    assert!(
        decode_response(br#"{"output":{"message":{"role":"user","content":[{"text":"a"}]}},"stopReason":"end_turn"}"#)
            .is_err()
    );
    let reasoning = r#"{"output":{"message":{"role":"assistant","content":[
        {"reasoningContent":{"reasoningText":{"text":"hm","signature":"s"}}},{"text":"a"}]}},"stopReason":"end_turn"}"#;
    let response = decode_response(reasoning.as_bytes()).expect("a reasoning model's answer reads");
    assert_eq!(response.content, [OutputPart::Text("a".into())], "its reasoning is not carried");
    let bare = br#"{"output":{"message":{"content":[]}}}"#;
    let response = decode_response(bare).unwrap();
    assert_eq!((response.content.len(), response.finish, response.usage), (0, FinishReason::Other, None));
}
