//! Bedrock Converse and ConverseStream, with SigV4 and API-key callers.

use std::time::{Duration, SystemTime};

use http::header::{HeaderMap, HeaderValue};
use http::{Method, Uri};
use serde_json::{Value, json};
use switchyard_emulator::Emulator;
use switchyard_providers::eventstream::{Decoder, MessageType};
use switchyard_providers::sigv4::{self, Credentials, Scope};
use switchyard_wire::bedrock_codec;
use switchyard_wire::canonical::{BlockKind, DecodeError, ErrorClass, FinishReason, StreamEvent};

use crate::support::*;

const PATH: &str = "/model/us.meta.llama3-3-70b-instruct-v1%3A0/converse";

fn credentials(secret: &str) -> Credentials {
    Credentials { access_key_id: AWS_KEY_ID.into(), secret_access_key: secret.into(), session_token: None }
}

/// A Converse request to `llama`, signed as a client signs one.
async fn signed(
    emulator: &Emulator,
    path: &str,
    body: &Value,
    credentials: &Credentials,
    time: SystemTime,
) -> Result<Reply, String> {
    let addr = emulator.deployment("llama").unwrap().addr;
    let uri: Uri = format!("http://{addr}{path}").parse().unwrap();
    let body = body.to_string();
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    let request = sigv4::Request { method: &Method::POST, uri: &uri, headers: &headers, body: body.as_bytes() };
    let scope = Scope { region: "us-east-1", service: sigv4::BEDROCK };
    for (name, value) in sigv4::sign(&request, scope, credentials, time).unwrap() {
        headers.insert(name, value);
    }
    let pairs: Vec<(String, String)> =
        headers.iter().map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap().to_owned())).collect();
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    send(emulator, "llama", Method::POST, path, &pairs, body).await
}

async fn converse(emulator: &Emulator, body: &Value) -> Result<Reply, String> {
    signed(emulator, PATH, body, &credentials(AWS_SECRET), SystemTime::now()).await
}

async fn converse_stream(emulator: &Emulator, body: &Value) -> Result<Reply, String> {
    signed(emulator, &format!("{PATH}-stream"), body, &credentials(AWS_SECRET), SystemTime::now()).await
}

fn say(prompt: &str) -> Value {
    json!({"messages": [{"role": "user", "content": [{"text": prompt}]}], "inferenceConfig": {"maxTokens": 256}})
}

/// A ConverseStream body, decoded frame by frame and event by event.
fn decode(body: &[u8]) -> Result<Vec<StreamEvent>, DecodeError> {
    let mut frames = Decoder::new();
    let mut decoder = bedrock_codec::StreamDecoder::new();
    let mut events = Vec::new();
    // In small pieces, as a network would deliver them.
    for chunk in body.chunks(7) {
        for message in frames.push(chunk).map_err(|e| DecodeError::new(e.to_string()))? {
            match message.message_type() {
                Some(MessageType::Event) => {
                    decoder.push_event(message.event_type().unwrap_or(""), &message.payload, &mut events)?
                }
                _ => decoder.push_exception(message.exception_type().unwrap_or(""), &message.payload, &mut events)?,
            }
        }
    }
    frames.finish().map_err(|e| DecodeError::new(e.to_string()))?;
    decoder.finish(&mut events)?;
    Ok(events)
}

#[tokio::test(start_paused = true)]
async fn converse_and_converse_stream() {
    let emulator = emulator().await;
    let expected = answer_to(&[json!({"role": "user", "content": "hello"})]);
    let r = converse(&emulator, &say("hello")).await.unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let body = r.json();
    assert_eq!(body["output"]["message"]["content"], json!([{"text": expected}]));
    assert_eq!(body["stopReason"], "end_turn");
    assert_eq!(body["usage"]["outputTokens"], 12);
    assert_eq!(bedrock_codec::decode_response(&r.body).unwrap().text(), expected);

    let r = converse_stream(&emulator, &say("hello")).await.unwrap();
    assert_eq!(r.header("content-type"), "application/vnd.amazon.eventstream");
    let events = decode(&r.body).expect("a well-formed stream");
    assert_eq!(StreamEvent::text_of(&events), expected);
    assert!(
        events.iter().any(|e| matches!(e, StreamEvent::MessageDelta { finish: FinishReason::Stop, usage: Some(u) }
        if u.output_tokens == 12 && u.input_tokens == body["usage"]["inputTokens"].as_u64().unwrap()))
    );
}

#[tokio::test(start_paused = true)]
async fn tools_are_called() {
    let emulator = emulator().await;
    let spec = json!({"toolSpec": {"name": "get_weather", "inputSchema": {"json": {"type": "object",
        "properties": {"city": {"type": "string"}}, "required": ["city"]}}}});
    let mut body = say("Weather in Lisbon?");
    body["toolConfig"] = json!({"tools": [spec]});
    let r = converse(&emulator, &body).await.unwrap().json();
    assert_eq!(r["stopReason"], "tool_use");
    let call = &r["output"]["message"]["content"][0]["toolUse"];
    assert_eq!((&call["name"], &call["input"]), (&json!("get_weather"), &json!({"city": "Lisbon"})));
    assert!(call["toolUseId"].as_str().unwrap().starts_with("tooluse_"));
    let events = decode(&converse_stream(&emulator, &body).await.unwrap().body).unwrap();
    assert!(events.iter().any(|e| matches!(e, StreamEvent::BlockStart { block: BlockKind::ToolUse { .. }, .. })));
    let input: String = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::ToolInputDelta { partial_json, .. } => Some(partial_json.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(serde_json::from_str::<Value>(&input).unwrap(), call["input"]);
    assert!(events.iter().any(|e| matches!(e, StreamEvent::MessageDelta { finish: FinishReason::ToolUse, .. })));
}

#[tokio::test(start_paused = true)]
async fn sigv4_and_api_keys_are_checked_as_aws_does() {
    let emulator = emulator().await;
    let check = |r: &Reply, kind: &str, message: &str| {
        assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.header("x-amzn-errortype").split(':').next(), Some(kind));
        assert!(r.json()["message"].as_str().unwrap().starts_with(message), "{}", r.json());
        let error = bedrock_codec::decode_error(403, Some(r.header("x-amzn-errortype")), &r.body);
        assert_eq!(error.class, ErrorClass::Authentication);
    };
    let wrong = signed(&emulator, PATH, &say("x"), &credentials("not the secret"), SystemTime::now()).await.unwrap();
    check(
        &wrong,
        "InvalidSignatureException",
        "The request signature we calculated does not match the signature you provided.",
    );
    let stranger = Credentials { access_key_id: "AKIDSTRANGER".into(), ..credentials(AWS_SECRET) };
    let r = signed(&emulator, PATH, &say("x"), &stranger, SystemTime::now()).await.unwrap();
    check(&r, "UnrecognizedClientException", "The security token included in the request is invalid.");
    let old = SystemTime::now() - Duration::from_secs(600);
    let r = signed(&emulator, PATH, &say("x"), &credentials(AWS_SECRET), old).await.unwrap();
    check(&r, "InvalidSignatureException", "Signature expired: ");
    let r = send(&emulator, "llama", Method::POST, PATH, &[], say("x").to_string()).await.unwrap();
    check(&r, "MissingAuthenticationTokenException", "Missing Authentication Token");

    // A Bedrock API key, as a Bearer token.
    let nova = "/model/amazon.nova-pro-v1%3A0/converse";
    let bearer = format!("Bearer {BEDROCK_KEY}");
    let r = send(&emulator, "nova", Method::POST, nova, &[("authorization", &bearer)], say("x").to_string()).await;
    assert_eq!(r.unwrap().status, 200);
    let r =
        send(&emulator, "nova", Method::POST, nova, &[("authorization", "Bearer nope")], say("x").to_string()).await;
    assert_eq!(r.unwrap().status, 403);
    // The path's model must be the deployment's.
    let r = send(&emulator, "nova", Method::POST, "/model/other/converse", &[("authorization", &bearer)], "{}").await;
    let r = r.unwrap();
    assert_eq!((r.status.as_u16(), r.header("x-amzn-errortype").split(':').next()), (400, Some("ValidationException")));
    assert_eq!(r.json()["message"], "The provided model identifier is invalid.");
    let seen = seen(&emulator, "llama");
    assert_eq!(seen.get("Unauthorized"), Some(&4), "{seen:?}");
}

#[tokio::test(start_paused = true)]
async fn errors_and_faults_in_bedrocks_shapes() {
    let emulator = emulator().await;
    // Capacity 1: a stalled stream holds it, and the next request is throttled.
    faults(&emulator, "llama", r#"[{"kind": "stall", "after_tokens": 1, "duration_ms": 1000}]"#);
    let em = &emulator;
    let hold = say("hold");
    let (held, throttled) = tokio::join!(converse_stream(em, &hold), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        converse(em, &say("next")).await
    });
    let throttled = throttled.unwrap();
    assert_eq!(throttled.status, 429);
    assert_eq!(throttled.header("x-amzn-errortype").split(':').next(), Some("ThrottlingException"));
    assert!(decode(&held.unwrap().body).is_ok(), "a stalled stream resumes");

    faults(&emulator, "llama", r#"[{"kind": "error", "status": 503}]"#);
    let r = converse(&emulator, &say("x")).await.unwrap();
    assert_eq!(
        (r.status.as_u16(), r.header("x-amzn-errortype").split(':').next()),
        (503, Some("ServiceUnavailableException"))
    );

    faults(&emulator, "llama", r#"[{"kind": "context_length"}]"#);
    let r = converse(&emulator, &say("x")).await.unwrap();
    let error = bedrock_codec::decode_error(r.status.as_u16(), Some(r.header("x-amzn-errortype")), &r.body);
    assert_eq!(
        (error.class, error.message.as_str()),
        (ErrorClass::ContextLength, "Input is too long for requested model.")
    );

    faults(&emulator, "llama", r#"[{"kind": "content_filter"}]"#);
    let r = converse(&emulator, &say("x")).await.unwrap().json();
    assert_eq!(r["stopReason"], "content_filtered");
    let events = decode(&converse_stream(&emulator, &say("x")).await.unwrap().body).unwrap();
    assert!(events.iter().any(|e| matches!(e, StreamEvent::MessageDelta { finish: FinishReason::ContentFilter, .. })));

    faults(&emulator, "llama", r#"[{"kind": "malformed_chunk", "after_tokens": 2}]"#);
    let error = decode(&converse_stream(&emulator, &say("x")).await.unwrap().body).expect_err("a bad frame");
    assert!(error.message.contains("checksum"), "{error}");
    faults(&emulator, "llama", r#"[{"kind": "no_done"}]"#);
    let error = decode(&converse_stream(&emulator, &say("x")).await.unwrap().body).expect_err("no messageStop");
    assert!(error.message.contains("messageStop"), "{error}");
    faults(&emulator, "llama", r#"[{"kind": "cut", "after_tokens": 3}]"#);
    assert!(converse_stream(&emulator, &say("x")).await.is_err());
    let seen = seen(&emulator, "llama");
    for (outcome, n) in [
        ("RateLimited", 1),
        ("ErrorStatus(503)", 1),
        ("ContextLength", 1),
        ("ContentFilter", 2),
        ("Malformed", 1),
        ("NoDone", 1),
        ("Cut", 1),
    ] {
        assert_eq!(seen.get(outcome), Some(&n), "{outcome}: {seen:?}");
    }
}
