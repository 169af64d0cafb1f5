//! Embeddings made by calls in a cloud's own API (`Upstream::embed`), against an in-memory
//! Bedrock peer that takes 100 ms per call on a paused clock: the calls are each signed, run
//! at most eight at a time, the first one's answer is told as the attempt's headers, the
//! answers are merged in input order, a call failed with a 5xx or a short 429 is made once
//! more, one that fails again fails the whole, and an answer over 16 MiB is not read.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::Uri;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use switchyard_core::AttemptError;
use switchyard_core::config::Protocol;
use switchyard_providers::sigv4::Credentials;
use switchyard_providers::{Auth, Dial, Endpoint, Transport, Upstream};
use tokio::time::Instant;

const TITAN: &str = "amazon.titan-embed-text-v2:0";
const CALL_TIME: Duration = Duration::from_millis(100);

/// A Titan peer: each call answers after [`CALL_TIME`] with a vector naming its text's number
/// (`"text 7"` → `[7.0, 0.5]`); the text `"fail"` gets a 500, `"flaky"` a 503 on its first
/// call, `"busy"` a 429 with a Retry-After of `retry-after-ms` on its first, and `"huge"` an
/// answer of 17 MiB. It counts calls in flight.
struct Titan {
    dial: Dial,
    in_flight: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<(String, http::HeaderMap)>>>,
}

impl Titan {
    fn new() -> Titan {
        let (in_flight, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (flying, peak, log) = (in_flight.clone(), most.clone(), seen.clone());
        let tried: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let dial: Dial = Arc::new(move |_: &Uri| {
            let (near, far) = tokio::io::duplex(64 * 1024);
            let (flying, peak, log, tried) = (flying.clone(), peak.clone(), log.clone(), tried.clone());
            let service = hyper::service::service_fn(move |request: http::Request<Incoming>| {
                let (flying, peak, log, tried) = (flying.clone(), peak.clone(), log.clone(), tried.clone());
                async move {
                    let (parts, body) = request.into_parts();
                    let body: Value = serde_json::from_slice(&body.collect().await?.to_bytes()).unwrap_or_default();
                    let text = body["inputText"].as_str().unwrap_or_default().to_owned();
                    log.lock().expect("not poisoned").push((parts.uri.path().to_owned(), parts.headers));
                    let now = flying.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(CALL_TIME).await;
                    flying.fetch_sub(1, Ordering::SeqCst);
                    let response = http::Response::builder().header("content-type", "application/json");
                    let tries = {
                        let mut tried = tried.lock().expect("not poisoned");
                        let count = tried.entry(text.clone()).or_insert(0);
                        *count += 1;
                        *count
                    };
                    let response = if text == "fail" || (text == "flaky" && tries == 1) {
                        response
                            .header("x-amzn-errortype", "InternalServerException:http://internal.amazon.com/")
                            .status(if text == "fail" { 500 } else { 503 })
                            .body(Full::new(bytes::Bytes::from(json!({"message": "boom"}).to_string())))
                    } else if text.starts_with("busy") && tries == 1 {
                        let wait = text.trim_start_matches("busy ");
                        response
                            .status(429)
                            .header("retry-after-ms", wait)
                            .header("x-amzn-errortype", "ThrottlingException:http://internal.amazon.com/")
                            .body(Full::new(bytes::Bytes::from(json!({"message": "Too many requests"}).to_string())))
                    } else if text == "huge" {
                        let answer = format!(r#"{{"embedding": [0.5], "pad": "{}"}}"#, "x".repeat(17 << 20));
                        response.status(200).body(Full::new(bytes::Bytes::from(answer)))
                    } else {
                        let n: f64 = text.trim_start_matches("text ").parse().unwrap_or(-1.0);
                        let answer = json!({"embedding": [n, 0.5], "inputTextTokenCount": 3});
                        response.status(200).body(Full::new(bytes::Bytes::from(answer.to_string())))
                    };
                    Ok::<_, hyper::Error>(response.expect("a response"))
                }
            });
            tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(far), service));
            Ok(near)
        });
        Titan { dial, in_flight, most, seen }
    }

    fn upstream(&self) -> Upstream {
        let endpoint = Endpoint {
            base: "https://bedrock-runtime.us-east-1.amazonaws.com".into(),
            protocol: Protocol::Bedrock,
            auth: Auth::Aws(Credentials {
                access_key_id: "AKIDEXAMPLE".into(),
                secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
                session_token: None,
            }),
            model: TITAN.into(),
            region: "us-east-1".into(),
        };
        Upstream::with_transport(Duration::from_secs(1), &[endpoint], Transport::Memory(self.dial.clone()))
            .expect("an upstream")
    }
}

fn body(inputs: &[&str]) -> Vec<u8> {
    json!({"model": TITAN, "input": inputs, "encoding_format": "float"}).to_string().into_bytes()
}

#[tokio::test(start_paused = true)]
async fn calls_run_eight_at_a_time_and_merge_in_order() {
    let titan = Titan::new();
    let upstream = titan.upstream();
    assert!(upstream.embeds_by_calls(0));
    let texts: Vec<String> = (0..20).map(|i| format!("text {i}")).collect();
    let inputs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let (told, mut headers) = tokio::sync::oneshot::channel();
    let started = Instant::now();
    let embedding = upstream.embed(0, body(&inputs), Duration::from_secs(5), told);
    tokio::pin!(embedding);
    // The first call's answer is the attempt's headers: long before the last one.
    tokio::select! {
        told = &mut headers => assert!(told.is_ok()),
        _ = &mut embedding => panic!("the embeddings came before their headers were told"),
    }
    assert_eq!(started.elapsed(), CALL_TIME);
    let merged = embedding.await.expect("answered");
    // 20 calls of 100 ms, 8 at a time: 300 ms.
    assert_eq!(started.elapsed(), CALL_TIME * 3);
    assert_eq!(titan.most.load(Ordering::SeqCst), 8, "at most eight in flight");
    assert_eq!(titan.in_flight.load(Ordering::SeqCst), 0);

    let merged: Value = serde_json::from_slice(&merged).expect("JSON");
    let data = merged["data"].as_array().expect("data");
    for (i, item) in data.iter().enumerate() {
        assert_eq!((item["index"].as_u64(), item["embedding"][0].as_f64()), (Some(i as u64), Some(i as f64)));
    }
    assert_eq!(merged["usage"], json!({"prompt_tokens": 60, "total_tokens": 60}));
    assert_eq!(merged["model"], TITAN);

    let seen = titan.seen.lock().expect("not poisoned");
    assert_eq!(seen.len(), 20);
    for (path, headers) in seen.iter() {
        assert_eq!(path, "/model/amazon.titan-embed-text-v2%3A0/invoke");
        let authorization = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
        assert!(authorization.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"), "{authorization}");
    }
}

#[tokio::test(start_paused = true)]
async fn one_failed_call_fails_the_whole_and_what_cannot_be_sent_is_not() {
    let titan = Titan::new();
    let upstream = titan.upstream();
    let (told, _headers) = tokio::sync::oneshot::channel();
    let failed = upstream.embed(0, body(&["text 0", "fail", "text 2"]), Duration::from_secs(5), told).await;
    assert_eq!(failed, Err(AttemptError::ServerError { status: 500 }), "a 500 made again, and again a 500");

    let (told, headers) = tokio::sync::oneshot::channel();
    let tokens = json!({"model": TITAN, "input": [[1, 2, 3]]}).to_string().into_bytes();
    let refused = upstream.embed(0, tokens.clone(), Duration::from_secs(5), told).await;
    assert!(
        matches!(&refused, Err(AttemptError::ClientError { status: 400, message, .. }) if message.contains("'input'")),
        "{refused:?}"
    );
    assert!(headers.await.is_err(), "no headers told for a request never sent");
    assert_eq!(upstream.embeddings_refusal(0, &tokens).map(|m| m.contains("'input'")), Some(true));
    assert_eq!(upstream.embeddings_refusal(0, &body(&["fine"])), None);
    assert_eq!(titan.seen.lock().expect("not poisoned").len(), 4, "only the first request's calls were sent");
}

/// A call failed with a 503, or a 429 with a short Retry-After, is made once more within the
/// attempt, and the batch is answered whole; a 429 asking for longer fails the attempt.
#[tokio::test(start_paused = true)]
async fn a_call_that_fails_for_a_moment_is_made_again() {
    let titan = Titan::new();
    let upstream = titan.upstream();
    let (told, _headers) = tokio::sync::oneshot::channel();
    let started = Instant::now();
    let inputs = ["text 0", "flaky", "text 2", "busy 300"];
    let merged = upstream.embed(0, body(&inputs), Duration::from_secs(5), told).await.expect("answered");
    let merged: Value = serde_json::from_slice(&merged).expect("JSON");
    assert_eq!(merged["data"].as_array().map(Vec::len), Some(4));
    assert_eq!(titan.seen.lock().expect("not poisoned").len(), 6, "four calls, two of them made again");
    // The 429's call: 100 ms, its 300 ms Retry-After, 100 ms again.
    assert_eq!(started.elapsed(), CALL_TIME * 2 + Duration::from_millis(300));

    let (told, _headers) = tokio::sync::oneshot::channel();
    let long = upstream.embed(0, body(&["busy 5000"]), Duration::from_secs(5), told).await;
    assert_eq!(long, Err(AttemptError::RateLimited { retry_after: Some(Duration::from_secs(5)) }));
}

/// An answer over 16 MiB is not read: the attempt fails as an invalid response.
#[tokio::test(start_paused = true)]
async fn an_answer_over_16_mib_is_not_read() {
    let titan = Titan::new();
    let upstream = titan.upstream();
    let (told, _headers) = tokio::sync::oneshot::channel();
    let failed = upstream.embed(0, body(&["huge"]), Duration::from_secs(5), told).await;
    assert!(
        matches!(&failed, Err(AttemptError::InvalidResponse { detail }) if detail.contains("too large")),
        "{failed:?}"
    );
}
