//! OCI Generative AI's native API: `ChatDetails` at `/20231130/actions/chat` in the
//! deployment's format (GENERIC or COHERE) and compartment, signed with an API signing key or
//! sent with an API key, refusals classified from OCI's `{"code", "message"}`, and answers (whole
//! and streamed) read back as OpenAI chunks.

use bytes::Bytes;
use serde_json::{Value, json};
use switchyard_core::AttemptError;
use switchyard_core::config::{OciCredentials, Protocol, Secret};
use switchyard_providers::oci::Signer;
use switchyard_providers::{
    AnswerDecoder, Auth, Endpoint, OciCredential, OciNative, Operation, StreamFault, untranslatable,
};
use switchyard_wire::oci_codec::Format;

use crate::answers::{assert_split_invariant, chunks, decode, delta};
use crate::{Reply, chat, exchange};

pub(crate) const OCI_MODEL: &str = "meta.llama-3.3-70b-instruct";
const HOST: &str = "inference.generativeai.us-chicago-1.oci.oraclecloud.com";
const KEY: &str = include_str!("../../../../tests/oci/test_key.pem");
const COMPARTMENT: &str = "ocid1.compartment.oc1..aaaaaaaagenai";

fn native(model: &str, credential: OciCredential, format: Format) -> Endpoint {
    Endpoint {
        base: format!("https://{HOST}"),
        protocol: Protocol::Oci,
        auth: Auth::OciNative(OciNative { credential, compartment: COMPARTMENT.into(), format }),
        model: model.into(),
        region: "us-chicago-1".into(),
    }
}

fn signed() -> OciCredential {
    OciCredential::Signed(OciCredentials {
        tenancy: "ocid1.tenancy.oc1..aaaaaaaatest".into(),
        user: "ocid1.user.oc1..aaaaaaaauser".into(),
        fingerprint: "ca:76:65:c8:c2:98:f8:05:51:5c:61:4f:63:69:97:9b".into(),
        private_key: Secret::new(KEY.into()),
        compartment: COMPARTMENT.into(),
    })
}

fn body(more: Value) -> Vec<u8> {
    let mut body = json!({
        "model": OCI_MODEL,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather in Paris ☀?"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_abc", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "call_abc", "content": "18C"},
        ],
        "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}],
        "max_tokens": 100,
    });
    for (k, v) in more.as_object().expect("an object") {
        body[k] = v.clone();
    }
    body.to_string().into_bytes()
}

/// A GENERIC stream: two texts, a call in pieces, the finish, then the usage.
pub(crate) fn oci_stream() -> Vec<u8> {
    let message = |m: Value| format!("data: {}\n\n", json!({"index": 0, "message": m}));
    [
        message(json!({"role": "ASSISTANT", "content": [{"type": "TEXT", "text": "Let me check "}]})),
        message(json!({"role": "ASSISTANT", "content": [{"type": "TEXT", "text": "the weather in Paris ☀."}]})),
        message(json!({"role": "ASSISTANT", "toolCalls": [{"id": "call_7", "type": "FUNCTION", "name": "get_weather", "arguments": "{\"city\": \"Pa"}]})),
        message(json!({"role": "ASSISTANT", "toolCalls": [{"type": "FUNCTION", "arguments": "ris\"}"}]})),
        "data: {\"index\":0,\"finishReason\":\"tool_calls\"}\n\n".to_owned(),
        "data: {\"usage\":{\"promptTokens\":30,\"completionTokens\":12,\"totalTokens\":42,\"promptTokensDetails\":{\"cachedTokens\":5}}}\n\n".to_owned(),
    ]
    .concat()
    .into_bytes()
}

#[tokio::test]
async fn a_signed_generic_request_is_chat_details_at_the_chat_action() {
    let before = std::time::SystemTime::now();
    let sent =
        chat(native(OCI_MODEL, signed(), Format::Generic), &body(json!({"temperature": 0.3, "stream": true}))).await;
    let request = sent.request();
    assert_eq!(request.uri, "/20231130/actions/chat");
    assert_eq!(request.header("host"), Some(HOST));
    assert!(request.header("authorization").is_some_and(|a| a.starts_with("Signature algorithm=\"rsa-sha256\"")));
    let key_id =
        "ocid1.tenancy.oc1..aaaaaaaatest/ocid1.user.oc1..aaaaaaaauser/ca:76:65:c8:c2:98:f8:05:51:5c:61:4f:63:69:97:9b";
    let verifier = Signer::from_pem(key_id.into(), KEY).expect("a key").verifier();
    assert_eq!(verifier.check(&request.method, &request.uri, &request.headers, &request.body, before), Ok(()));
    let sent = request.json();
    assert_eq!(sent["compartmentId"], COMPARTMENT);
    assert_eq!(sent["servingMode"], json!({"servingType": "ON_DEMAND", "modelId": OCI_MODEL}));
    let chat = &sent["chatRequest"];
    assert_eq!(chat["apiFormat"], "GENERIC");
    assert_eq!(chat["messages"][0], json!({"role": "SYSTEM", "content": [{"type": "TEXT", "text": "Be brief."}]}));
    assert_eq!(chat["messages"][2]["toolCalls"][0]["name"], "get_weather");
    assert_eq!(
        chat["messages"][3],
        json!({"role": "TOOL", "toolCallId": "call_abc", "content": [{"type": "TEXT", "text": "18C"}]})
    );
    assert_eq!((chat["temperature"].as_f64(), chat["maxTokens"].as_u64()), (Some(0.3), Some(100)));
    assert_eq!((&chat["isStream"], &chat["streamOptions"]), (&json!(true), &json!({"isIncludeUsage": true})));
    assert_eq!(chat["tools"][0]["type"], "FUNCTION");
}

#[tokio::test]
async fn a_cohere_request_with_an_api_key_and_a_dedicated_endpoint() {
    let endpoint = "ocid1.generativeaiendpoint.oc1.us-chicago-1.amaaaaaa";
    let sent = chat(native(endpoint, OciCredential::ApiKey("sk-oci".into()), Format::Cohere), &body(json!({}))).await;
    let request = sent.request();
    assert_eq!(request.header("authorization"), Some("Bearer sk-oci"));
    let sent = request.json();
    assert_eq!(sent["servingMode"], json!({"servingType": "DEDICATED", "endpointId": endpoint}));
    let chat = &sent["chatRequest"];
    assert_eq!(
        (&chat["apiFormat"], &chat["message"], &chat["preambleOverride"]),
        (&json!("COHERE"), &json!(""), &json!("Be brief."))
    );
    assert_eq!(
        chat["toolResults"],
        json!([{"call": {"name": "get_weather", "parameters": {"city": "Paris"}}, "outputs": [{"output": "18C"}]}])
    );
    assert_eq!(chat["tools"][0]["parameterDefinitions"]["city"], json!({"type": "str", "isRequired": true}));
}

#[tokio::test]
async fn what_oci_cannot_express_is_a_400_and_nothing_is_sent() {
    let sent = chat(native(OCI_MODEL, signed(), Format::Generic), &body(json!({"user": "u-1"}))).await;
    match &sent.outcome {
        Err(AttemptError::ClientError { status: 400, message, .. }) => assert!(message.contains("`user`"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert!(sent.requests.is_empty());
    let forced = body(json!({"tool_choice": "required"}));
    let sent = chat(native("cohere.command-r-plus", signed(), Format::Cohere), &forced).await;
    assert!(
        matches!(&sent.outcome, Err(AttemptError::ClientError { status: 400, message, .. }) if message.contains("`tool_choice`"))
    );
    let (bits, first) = untranslatable(&body(json!({"user": "u-1"})), Protocol::Oci.bit() | Protocol::OpenAi.bit());
    assert_eq!((bits, first.map(|e| e.param)), (Protocol::Oci.bit(), Some("user".to_owned())));
    assert_eq!(untranslatable(&body(json!({"seed": 3, "frequency_penalty": 0.2})), Protocol::Oci.bit()).0, 0);
}

fn oci_error(status: u16, code: &str, message: &str) -> Reply {
    Reply::json(status, json!({"code": code, "message": message}).to_string())
}

#[tokio::test]
async fn refusals_are_classified() {
    let refused = async |reply: Reply| {
        let endpoint = native(OCI_MODEL, signed(), Format::Generic);
        let sent = exchange(endpoint, Operation::ChatCompletions, &body(json!({})), reply).await;
        sent.outcome.expect_err("a refusal")
    };
    let busy = oci_error(429, "TooManyRequests", "Too many requests for the user").with("retry-after", "2");
    assert_eq!(refused(busy).await, AttemptError::RateLimited { retry_after: Some(std::time::Duration::from_secs(2)) });
    assert_eq!(refused(oci_error(401, "NotAuthenticated", "no")).await, AttemptError::UpstreamRefused { status: 401 });
    let missing = oci_error(404, "NotAuthorizedOrNotFound", "Authorization failed or requested resource not found.");
    assert_eq!(refused(missing).await, AttemptError::UpstreamRefused { status: 404 });
    let long = oci_error(400, "InvalidParameter", "This model's maximum context length is 128000 tokens.");
    assert!(matches!(refused(long).await, AttemptError::ContextLengthExceeded { .. }));
    let bad = oci_error(400, "InvalidParameter", "topK must be at most 500");
    assert!(matches!(refused(bad).await, AttemptError::ClientError { status: 400, .. }));
    assert_eq!(refused(oci_error(500, "InternalServerError", "x")).await, AttemptError::ServerError { status: 500 });
}

#[test]
fn a_whole_answer_is_a_chat_completion_in_either_format() {
    let decoder = AnswerDecoder::new(Protocol::Oci, OCI_MODEL);
    let generic = json!({"modelId": OCI_MODEL, "modelVersion": "1.0", "chatResponse": {"apiFormat": "GENERIC",
        "timeCreated": "2026-01-01T00:00:00Z", "choices": [{"index": 0, "finishReason": "tool_calls", "message": {
        "role": "ASSISTANT", "content": [{"type": "TEXT", "text": "Sunny."}], "toolCalls": [{"id": "c1", "type": "FUNCTION",
        "name": "get_weather", "arguments": "{\"city\":\"Rome\"}"}]}}], "usage": {"promptTokens": 9, "completionTokens": 4, "totalTokens": 13}}});
    let whole = decoder.whole(Bytes::from(generic.to_string())).expect("an answer");
    let whole: Value = serde_json::from_slice(&whole).expect("JSON");
    assert_eq!((&whole["object"], &whole["model"]), (&json!("chat.completion"), &json!(OCI_MODEL)));
    let choice = &whole["choices"][0];
    assert_eq!((&choice["message"]["content"], &choice["finish_reason"]), (&json!("Sunny."), &json!("tool_calls")));
    assert_eq!(choice["message"]["tool_calls"][0]["id"], "c1");
    assert_eq!(whole["usage"]["prompt_tokens"], 9);
    let cohere = json!({"modelId": "cohere.command-r-plus", "chatResponse": {"apiFormat": "COHERE", "text": "Hi.",
        "finishReason": "COMPLETE", "usage": {"promptTokens": 3, "completionTokens": 1, "totalTokens": 4}}});
    let whole = AnswerDecoder::new(Protocol::Oci, "cohere.command-r-plus").whole(Bytes::from(cohere.to_string()));
    let whole: Value = serde_json::from_slice(&whole.expect("an answer")).expect("JSON");
    assert_eq!(
        (&whole["choices"][0]["message"]["content"], &whole["choices"][0]["finish_reason"]),
        (&json!("Hi."), &json!("stop"))
    );
    assert!(matches!(decoder.whole(Bytes::from_static(b"<html>")), Err(AttemptError::InvalidResponse { .. })));
}

#[test]
fn an_oci_stream_reads_as_openai_chunks_in_any_split() {
    let (data, fault) = decode(Protocol::Oci, [&oci_stream()[..]]);
    assert_eq!(fault, None);
    let chunks = chunks(&data);
    assert_eq!(chunks.len(), 8, "{data:#?}");
    for chunk in &chunks {
        assert_eq!(chunk["model"], json!(OCI_MODEL), "{chunk}");
    }
    assert_eq!(delta(&chunks[1]), &json!({"content": "Let me check "}));
    assert_eq!(delta(&chunks[3])["tool_calls"][0]["function"], json!({"name": "get_weather", "arguments": ""}));
    let arguments: String = chunks[4..6]
        .iter()
        .map(|c| delta(c)["tool_calls"][0]["function"]["arguments"].as_str().expect("arguments").to_owned())
        .collect();
    assert_eq!(serde_json::from_str::<Value>(&arguments).expect("JSON"), json!({"city": "Paris"}));
    assert_eq!(chunks[6]["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(
        (&chunks[7]["usage"]["prompt_tokens"], &chunks[7]["usage"]["prompt_tokens_details"]["cached_tokens"]),
        (&json!(30), &json!(5))
    );
    assert_split_invariant(Protocol::Oci, &oci_stream());
}

#[test]
fn an_answer_without_its_usage_still_ends_and_errors_fail_the_attempt() {
    let stream = oci_stream();
    let text = String::from_utf8(stream).expect("utf-8");
    let without_usage = &text[..text.rfind("data: {\"usage\"").expect("the usage event")];
    let (data, fault) = decode(Protocol::Oci, [without_usage.as_bytes()]);
    assert_eq!(fault, None);
    assert_eq!(chunks(&data).last().map(|c| c["choices"][0]["finish_reason"].clone()), Some(json!("tool_calls")));
    let error = b"data: {\"code\":\"TooManyRequests\",\"message\":\"slow down\"}\n\n";
    let (_, fault) = decode(Protocol::Oci, [&error[..]]);
    assert_eq!(fault, Some(StreamFault::Failed(AttemptError::RateLimited { retry_after: None })));
    let (_, fault) = decode(Protocol::Oci, [&b"data: {\"index\": 0, \"message\": 3}\n\n"[..]]);
    assert!(matches!(fault, Some(StreamFault::Garbage(_))), "{fault:?}");
}
