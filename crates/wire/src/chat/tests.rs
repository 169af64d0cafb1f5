//! Request parsing and response reading against hand-written OpenAI payloads.

use super::*;

fn check_bad(body: &str, expected: &str) {
    let err = ChatRequest::parse(Bytes::from(body.to_owned())).expect_err(body);
    assert!(err.message.contains(expected), "{:?} does not contain {expected:?}", err.message);
}

#[test]
fn parses_what_routing_needs() {
    let body = r#"{"model":"chat","stream":true,"max_tokens":50,"messages":[
        {"role":"system","content":"be brief"},
        {"role":"user","content":[{"type":"text","text":"what is this?"},{"type":"image_url","image_url":{"url":"data:"}}]}],
        "tools":[{"type":"function","function":{"name":"f"}}], "temperature":0.2}"#;
    let r = ChatRequest::parse(Bytes::from(body.to_owned())).unwrap();
    assert_eq!(r.model, "chat");
    assert!(r.stream && r.tools && r.vision && !r.include_usage);
    assert_eq!(r.max_tokens, Some(50));
    assert!(r.input_tokens > 765);
    let up: Value = serde_json::from_slice(&r.upstream_body("provider-m")).unwrap();
    assert_eq!(up["model"], "provider-m");
    assert_eq!(up["stream_options"]["include_usage"], true);
    assert_eq!(up["temperature"], 0.2, "unknown fields pass through");
}

#[test]
fn rejects_malformed_requests_with_a_reason() {
    check_bad("not json", "not valid JSON");
    check_bad(r#"{"model":"m","model":"n","messages":[]}"#, "appears more than once");
    check_bad("[]", "must be a JSON object");
    check_bad(r#"{"messages":[]}"#, "model parameter");
    check_bad(r#"{"model":"m"}"#, "'messages' must be an array");
    check_bad(r#"{"model":"m","messages":[]}"#, "at least one message");
    check_bad(r#"{"model":"m","messages":[{"content":"x"}]}"#, "messages[0].role is required");
    check_bad(r#"{"model":"m","messages":[{"role":"wizard","content":"x"}]}"#, "unknown role");
    check_bad(r#"{"model":"m","messages":[{"role":"user","content":1}]}"#, "must be a string or an array");
    check_bad(r#"{"model":"m","messages":"hi"}"#, "array of message objects");
    check_bad(
        r#"{"model":"m","stream":"yes","messages":[{"role":"user","content":"x"}]}"#,
        "'stream' must be a boolean",
    );
    check_bad(r#"{"model":"m","max_tokens":-1,"messages":[{"role":"user","content":"x"}]}"#, "positive integer");
    check_bad(r#"{"model":"m","n":3,"messages":[{"role":"user","content":"x"}]}"#, "n = 1");
}

#[test]
fn continuation_appends_the_prefill() {
    let r = ChatRequest::parse(Bytes::from_static(
        br#"{"model":"m","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}"#,
    ))
    .unwrap();
    let body: Value = serde_json::from_slice(&r.continuation_body("p", "Hello there", 3)).unwrap();
    assert_eq!(body["messages"][1], json!({"role":"assistant","content":"Hello there"}));
    assert_eq!(body["continue_final_message"], true);
    assert_eq!(body["add_generation_prompt"], false);
    assert_eq!(body["max_tokens"], 97);
    assert_eq!(body["stream"], true);
}

#[test]
fn reads_chunks_and_completions() {
    let c = ChunkView::parse(r#"{"id":"x","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}"#)
        .unwrap();
    assert_eq!(c.content, "Hi");
    assert!(c.has_output());
    let u = ChunkView::parse(r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":5,"prompt_tokens_details":{"cached_tokens":1}}}"#).unwrap();
    assert_eq!(u.usage, Some(WireUsage { prompt_tokens: 3, completion_tokens: 5, cached_tokens: 1 }));
    assert!(ChunkView::parse("{not json").is_none());
    let done = CompletionView::parse(
        br#"{"choices":[{"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}]}"#,
    )
    .unwrap();
    assert_eq!(done.content, "ok");
    assert!(CompletionView::parse(b"<html>").is_err());
    assert!(CompletionView::parse(br#"{"choices":[]}"#).is_err());
}

#[test]
fn tells_rejections_apart() {
    let ctx = br#"{"error":{"message":"This model's maximum context length is 8192 tokens","code":"context_length_exceeded"}}"#;
    assert_eq!(classify_rejection(ctx).0, UpstreamRejection::ContextLength);
    let filter = br#"{"error":{"message":"filtered","code":"content_filter"}}"#;
    assert_eq!(classify_rejection(filter), (UpstreamRejection::ContentFilter, "filtered".to_owned()));
    assert_eq!(classify_rejection(b"oops").0, UpstreamRejection::Other);
}

#[test]
fn embeddings_requests_parse() {
    let r = EmbeddingsRequest::parse(Bytes::from_static(br#"{"model":"e","input":["abcd","efgh"]}"#)).unwrap();
    assert_eq!(r.input_tokens, 2);
    assert!(EmbeddingsRequest::parse(Bytes::from_static(br#"{"model":"e","input":[]}"#)).is_err());
    assert!(
        parse_embeddings_usage(br#"{"data":[{"embedding":[0.1]}],"usage":{"prompt_tokens":2}}"#).unwrap().is_some()
    );
}
