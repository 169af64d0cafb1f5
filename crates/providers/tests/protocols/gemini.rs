//! Gemini and Vertex AI: `generateContent` and `streamGenerateContent?alt=sse` at the base's
//! `models/{model}:…`, an API key or an OAuth token, refusals classified from Google's errors,
//! blocked prompts as the content filter, and answers read back as OpenAI chunks.

use bytes::Bytes;
use serde_json::{Value, json};
use switchyard_core::AttemptError;
use switchyard_core::config::Protocol;
use switchyard_providers::{AnswerDecoder, Auth, Endpoint, GeminiCredential, Operation, StreamFault, untranslatable};

use crate::answers::{assert_split_invariant, chunks, decode, delta};
use crate::{GEMINI_MODEL, Reply, chat, exchange};

const API: &str = "https://generativelanguage.googleapis.com/v1beta";
const VERTEX: &str =
    "https://us-central1-aiplatform.googleapis.com/v1/projects/p1/locations/us-central1/publishers/google";

fn gemini(base: &str, credential: GeminiCredential) -> Endpoint {
    Endpoint {
        base: base.into(),
        protocol: Protocol::Gemini,
        auth: Auth::Gemini(credential),
        model: GEMINI_MODEL.into(),
        region: "us-central1".into(),
    }
}

fn key() -> GeminiCredential {
    GeminiCredential::ApiKey("AIza-test".into())
}

fn body(more: Value) -> Vec<u8> {
    let mut body = json!({
        "model": GEMINI_MODEL,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather in Paris ☀?"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_abc", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "call_abc", "content": "18C"},
        ],
        "tools": [{"type": "function", "function": {"name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
        "max_tokens": 100,
    });
    for (k, v) in more.as_object().expect("an object") {
        body[k] = v.clone();
    }
    body.to_string().into_bytes()
}

/// A Gemini stream: two text chunks, then a whole call with the finish and the usage.
pub(crate) fn gemini_stream() -> Vec<u8> {
    let chunk = |parts: Value, end: Option<&str>| {
        let mut candidate = json!({"content": {"role": "model", "parts": parts}, "index": 0});
        let mut chunk = json!({"modelVersion": GEMINI_MODEL, "responseId": "resp-1"});
        if let Some(reason) = end {
            candidate["finishReason"] = json!(reason);
            chunk["usageMetadata"] = json!({"promptTokenCount": 30, "candidatesTokenCount": 12, "totalTokenCount": 42, "cachedContentTokenCount": 5});
        }
        chunk["candidates"] = json!([candidate]);
        format!("data: {chunk}\r\n\r\n")
    };
    [
        chunk(json!([{"text": "Let me check "}]), None),
        chunk(json!([{"text": "the weather in Paris ☀."}]), None),
        chunk(json!([{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]), Some("STOP")),
    ]
    .concat()
    .into_bytes()
}

#[tokio::test]
async fn the_gemini_api_gets_generate_content_with_its_api_key() {
    let sent = chat(gemini(API, key()), &body(json!({"temperature": 0.3}))).await;
    let request = sent.request();
    assert_eq!(request.uri, format!("/v1beta/models/{GEMINI_MODEL}:generateContent").as_str());
    assert_eq!(request.header("x-goog-api-key"), Some("AIza-test"));
    assert_eq!(request.header("authorization"), None);
    assert_eq!(request.header("content-type"), Some("application/json"));
    let sent = request.json();
    assert_eq!(sent["systemInstruction"], json!({"parts": [{"text": "Be brief."}]}));
    assert_eq!(
        sent["contents"][1],
        json!({"role": "model", "parts": [
        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]})
    );
    assert_eq!(
        sent["contents"][2],
        json!({"role": "user", "parts": [
        {"functionResponse": {"name": "get_weather", "response": {"content": "18C"}}}]})
    );
    assert_eq!(sent["generationConfig"], json!({"temperature": 0.3, "maxOutputTokens": 100}));
    assert_eq!(sent["tools"][0]["functionDeclarations"][0]["name"], "get_weather");
    assert!(sent.get("model").is_none(), "the model is in the URL: {sent}");
}

#[tokio::test]
async fn vertex_streams_at_stream_generate_content_with_a_bearer_token() {
    let token = GeminiCredential::Bearer("ya29.token".into());
    let sent = chat(gemini(VERTEX, token), &body(json!({"stream": true}))).await;
    let request = sent.request();
    assert_eq!(
        request.uri,
        format!(
            "/v1/projects/p1/locations/us-central1/publishers/google/models/{GEMINI_MODEL}:streamGenerateContent?alt=sse"
        )
        .as_str()
    );
    assert_eq!(request.header("authorization"), Some("Bearer ya29.token"));
    assert_eq!(request.header("x-goog-api-key"), None);
}

#[tokio::test]
async fn what_gemini_cannot_express_is_a_400_and_nothing_is_sent() {
    let sent = chat(gemini(API, key()), &body(json!({"user": "u-1"}))).await;
    match &sent.outcome {
        Err(AttemptError::ClientError { status: 400, message, .. }) => assert!(message.contains("`user`"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert!(sent.requests.is_empty());
    let (bits, first) = untranslatable(&body(json!({"user": "u-1"})), Protocol::Gemini.bit() | Protocol::OpenAi.bit());
    assert_eq!((bits, first.map(|e| e.param)), (Protocol::Gemini.bit(), Some("user".to_owned())));
    assert_eq!(untranslatable(&body(json!({})), Protocol::Gemini.bit()).0, 0);
}

fn google_error(status: u16, kind: &str, message: &str) -> Reply {
    Reply::json(status, json!({"error": {"code": status, "message": message, "status": kind}}).to_string())
}

#[tokio::test]
async fn refusals_are_classified() {
    let refused = async |reply: Reply| {
        let sent = exchange(gemini(API, key()), Operation::ChatCompletions, &body(json!({})), reply).await;
        sent.outcome.expect_err("a refusal")
    };
    let quota = google_error(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota).");
    assert_eq!(refused(quota).await, AttemptError::RateLimited { retry_after: None });
    let overloaded = google_error(503, "UNAVAILABLE", "The model is overloaded. Please try again later.");
    assert_eq!(refused(overloaded).await, AttemptError::ServerError { status: 503 });
    for (status, kind) in [(401, "UNAUTHENTICATED"), (403, "PERMISSION_DENIED"), (404, "NOT_FOUND")] {
        assert_eq!(refused(google_error(status, kind, "no")).await, AttemptError::UpstreamRefused { status });
    }
    let bad_key = google_error(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.");
    assert_eq!(refused(bad_key).await, AttemptError::UpstreamRefused { status: 400 });
    let long = google_error(
        400,
        "INVALID_ARGUMENT",
        "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).",
    );
    assert!(matches!(refused(long).await, AttemptError::ContextLengthExceeded { .. }));
    let bad = google_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.");
    assert!(matches!(refused(bad).await, AttemptError::ClientError { status: 400, .. }));
}

#[test]
fn a_whole_answer_is_a_chat_completion_and_a_blocked_prompt_the_content_filter() {
    let decoder = AnswerDecoder::new(Protocol::Gemini, GEMINI_MODEL);
    let answer = json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Sunny."},
        {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}}]}, "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 4, "totalTokenCount": 13}});
    let whole = decoder.whole(Bytes::from(answer.to_string())).expect("an answer");
    let whole: Value = serde_json::from_slice(&whole).expect("JSON");
    assert_eq!(whole["object"], "chat.completion");
    assert_eq!(whole["model"], GEMINI_MODEL, "no modelVersion: the deployment's");
    let choice = &whole["choices"][0];
    assert_eq!((&choice["message"]["content"], &choice["finish_reason"]), (&json!("Sunny."), &json!("tool_calls")));
    assert_eq!(choice["message"]["tool_calls"][0]["function"]["name"], "get_weather");
    assert_eq!(whole["usage"]["prompt_tokens"], 9);
    let blocked = json!({"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 9}});
    match decoder.whole(Bytes::from(blocked.to_string())) {
        Err(AttemptError::ContentFiltered { code, message }) => {
            assert_eq!(code.as_deref(), Some("content_filter"));
            assert!(message.contains("SAFETY"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(decoder.whole(Bytes::from_static(b"<html>")), Err(AttemptError::InvalidResponse { .. })));
}

#[test]
fn a_gemini_stream_reads_as_openai_chunks_in_any_split() {
    let (data, fault) = decode(Protocol::Gemini, [&gemini_stream()[..]]);
    assert_eq!(fault, None);
    let chunks = chunks(&data);
    assert_eq!(chunks.len(), 7, "{data:#?}");
    for chunk in &chunks {
        assert_eq!((&chunk["id"], &chunk["model"]), (&json!("resp-1"), &json!(GEMINI_MODEL)), "{chunk}");
    }
    assert_eq!(delta(&chunks[0]), &json!({"role": "assistant", "content": ""}));
    assert_eq!(delta(&chunks[1]), &json!({"content": "Let me check "}));
    assert_eq!(delta(&chunks[2]), &json!({"content": "the weather in Paris ☀."}));
    let call = &delta(&chunks[3])["tool_calls"][0];
    assert_eq!(call["function"], json!({"name": "get_weather", "arguments": ""}));
    let arguments = delta(&chunks[4])["tool_calls"][0]["function"]["arguments"].as_str().expect("arguments");
    assert_eq!(serde_json::from_str::<Value>(arguments).expect("JSON"), json!({"city": "Paris"}));
    assert_eq!(chunks[5]["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(chunks[6]["usage"]["prompt_tokens"], 30);
    assert_eq!(chunks[6]["usage"]["completion_tokens"], 12);
    assert_eq!(chunks[6]["usage"]["prompt_tokens_details"]["cached_tokens"], 5);
    assert_split_invariant(Protocol::Gemini, &gemini_stream());
}

#[test]
fn errors_and_blocks_in_a_stream_fail_the_attempt() {
    let error = b"data: {\"error\":{\"code\":429,\"message\":\"Quota\",\"status\":\"RESOURCE_EXHAUSTED\"}}\r\n\r\n";
    let (_, fault) = decode(Protocol::Gemini, [&error[..]]);
    assert_eq!(fault, Some(StreamFault::Failed(AttemptError::RateLimited { retry_after: None })));
    let blocked = b"data: {\"promptFeedback\":{\"blockReason\":\"SAFETY\"}}\r\n\r\n";
    let (_, fault) = decode(Protocol::Gemini, [&blocked[..]]);
    assert!(
        matches!(&fault, Some(StreamFault::Failed(AttemptError::ContentFiltered { code: Some(c), .. })) if c == "content_filter"),
        "{fault:?}"
    );
    let (_, fault) = decode(Protocol::Gemini, [&b"data: {\"candidates\": 3}\n\n"[..]]);
    assert!(matches!(fault, Some(StreamFault::Garbage(_))), "{fault:?}");
}
