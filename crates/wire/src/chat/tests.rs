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
    assert_eq!(
        u.usage,
        Some(WireUsage { prompt_tokens: 3, completion_tokens: 5, cached_tokens: 1, implausible: false })
    );
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

fn usage_of(text: &str) -> WireUsage {
    let chunk = format!(r#"{{"choices":[],"usage":{text}}}"#);
    let usage = ChunkView::parse(&chunk).unwrap_or_else(|| panic!("{text} was refused")).usage;
    let whole = format!(r#"{{"choices":[{{"message":{{"content":"x"}}}}],"usage":{text}}}"#);
    assert_eq!(CompletionView::parse(whole.as_bytes()).unwrap().usage, usage, "the same in a whole answer");
    usage.unwrap_or_else(|| panic!("{text} was dropped"))
}

#[test]
fn plausible_usage_is_taken_as_it_is() {
    let u = usage_of(
        r#"{"prompt_tokens":12,"completion_tokens":30,"total_tokens":42,"prompt_tokens_details":{"cached_tokens":12}}"#,
    );
    assert_eq!(u, WireUsage { prompt_tokens: 12, completion_tokens: 30, cached_tokens: 12, implausible: false });
    let u = usage_of(r#"{"prompt_tokens":12.0,"completion_tokens":null}"#);
    assert_eq!(u, WireUsage { prompt_tokens: 12, completion_tokens: 0, cached_tokens: 0, implausible: false });
    let max = MAX_PLAUSIBLE_TOKENS;
    let u = usage_of(&format!(r#"{{"prompt_tokens":{max},"completion_tokens":{max}}}"#));
    assert_eq!(u, WireUsage { prompt_tokens: max, completion_tokens: max, cached_tokens: 0, implausible: false });
}

/// Upstream numbers are untrusted: they are clamped and flagged, never wrapped, and reading
/// them never panics. (Negative and enormous numbers used to make the whole chunk unreadable
/// or pass through unclamped, and sums of them wrapped.)
#[test]
fn implausible_usage_is_clamped_and_flagged() {
    let max = MAX_PLAUSIBLE_TOKENS;
    let cases: &[(&str, (u64, u64, u64))] = &[
        (r#"{"prompt_tokens":18446744073709551615,"completion_tokens":5}"#, (max, 5, 0)),
        (r#"{"prompt_tokens":18446744073709551616,"completion_tokens":5}"#, (max, 5, 0)),
        (r#"{"prompt_tokens":1e300,"completion_tokens":1e19}"#, (max, max, 0)),
        (r#"{"prompt_tokens":100000001,"completion_tokens":0}"#, (max, 0, 0)),
        (r#"{"prompt_tokens":-5,"completion_tokens":7}"#, (0, 7, 0)),
        (r#"{"prompt_tokens":-9223372036854775808,"completion_tokens":-1e300}"#, (0, 0, 0)),
        (r#"{"prompt_tokens":3.5,"completion_tokens":-0.5}"#, (3, 0, 0)),
        (r#"{"prompt_tokens":4,"completion_tokens":1,"prompt_tokens_details":{"cached_tokens":9}}"#, (4, 1, 4)),
        (r#"{"prompt_tokens":4,"completion_tokens":1,"prompt_tokens_details":{"cached_tokens":-1}}"#, (4, 1, 0)),
        (r#"{"prompt_tokens":10,"completion_tokens":20,"total_tokens":4}"#, (10, 20, 0)),
        (r#"{"prompt_tokens":10,"completion_tokens":20,"total_tokens":-30}"#, (10, 20, 0)),
    ];
    for (text, (prompt, completion, cached)) in cases {
        let u = usage_of(text);
        assert_eq!(
            u,
            WireUsage {
                prompt_tokens: *prompt,
                completion_tokens: *completion,
                cached_tokens: *cached,
                implausible: true
            },
            "{text}"
        );
        // Sums of a few clamped numbers cannot overflow.
        assert!(u.prompt_tokens.checked_add(u.completion_tokens).and_then(|t| t.checked_mul(1_000)).is_some());
    }
    // Other types are not token counts: the chunk is not one, as before.
    assert!(ChunkView::parse(r#"{"choices":[],"usage":{"prompt_tokens":"12"}}"#).is_none());
    let embeddings = br#"{"data":[{"embedding":[0.1]}],"usage":{"prompt_tokens":1e300,"total_tokens":1e300}}"#;
    let u = parse_embeddings_usage(embeddings).unwrap().unwrap();
    assert_eq!((u.prompt_tokens, u.implausible), (MAX_PLAUSIBLE_TOKENS, true));
}

#[test]
fn usage_from_counts_is_checked_too() {
    assert_eq!(
        WireUsage::new(3, 4, 1),
        WireUsage { prompt_tokens: 3, completion_tokens: 4, cached_tokens: 1, implausible: false }
    );
    assert_eq!(
        WireUsage::new(u64::MAX, 4, u64::MAX),
        WireUsage {
            prompt_tokens: MAX_PLAUSIBLE_TOKENS,
            completion_tokens: 4,
            cached_tokens: MAX_PLAUSIBLE_TOKENS,
            implausible: true
        }
    );
    assert!(WireUsage::new(1, 0, 2).implausible);
    assert_eq!(WireUsage::default(), WireUsage::new(0, 0, 0));
}
