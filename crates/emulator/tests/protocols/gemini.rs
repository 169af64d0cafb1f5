//! Gemini and Vertex AI: `generateContent` and `streamGenerateContent?alt=sse`, the API key
//! (`x-goog-api-key` or `?key=`) or OAuth token, tool calls, and refusals in Google's shapes.

use http::Method;
use serde_json::{Value, json};
use switchyard_wire::canonical::{BlockKind, ErrorClass, FinishReason, StreamEvent};
use switchyard_wire::gemini_codec;

use crate::support::*;

const GENERATE: &str = "/v1beta/models/gemini-2.5-flash:generateContent";
const STREAM: &str = "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse";
const VERTEX: &str = "/v1/projects/p/locations/us-central1/publishers/google/models/gemini-2.5-pro:generateContent";

async fn post(
    name: &str,
    emulator: &switchyard_emulator::Emulator,
    path: &str,
    headers: &[(&str, &str)],
    body: &Value,
) -> Reply {
    send(emulator, name, Method::POST, path, headers, body.to_string()).await.expect("a response")
}

fn say(text: &str) -> Value {
    json!({"contents": [{"role": "user", "parts": [{"text": text}]}]})
}

#[tokio::test(start_paused = true)]
async fn answers_and_streams_say_what_openai_says() {
    let emulator = emulator().await;
    let key = [("x-goog-api-key", GEMINI_KEY)];
    let expected = answer_to(&[json!({"role": "user", "content": "hello"})]);
    let r = post("gemini-flash", &emulator, GENERATE, &key, &say("hello")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let body = r.json();
    let response = gemini_codec::decode_response(&r.body).expect("a Gemini answer");
    assert_eq!(response.text(), expected, "the same words as OpenAI's");
    assert_eq!((response.finish, body["modelVersion"].clone()), (FinishReason::Stop, json!("gemini-2.5-flash")));
    assert_eq!(body["usageMetadata"]["candidatesTokenCount"], 12);

    // The key in the query works too, as Google's does.
    let path = format!("{STREAM}&key={GEMINI_KEY}");
    let r = post("gemini-flash", &emulator, &path, &[], &say("hello")).await;
    assert_eq!((r.status.as_u16(), r.header("content-type")), (200, "text/event-stream"));
    let events = gemini_codec::decode_stream(&r.body).expect("a well-formed stream");
    assert_eq!(StreamEvent::text_of(&events), expected);
    assert!(
        events.iter().any(|e| matches!(e, StreamEvent::MessageDelta { finish: FinishReason::Stop, usage: Some(u) }
        if u.output_tokens == 12))
    );
}

#[tokio::test(start_paused = true)]
async fn tools_are_called_whole() {
    let emulator = emulator().await;
    let key = [("x-goog-api-key", GEMINI_KEY)];
    let mut body = say("Weather in Lisbon?");
    body["tools"] = json!([{"functionDeclarations": [{"name": "get_weather", "parameters": {"type": "object",
        "properties": {"city": {"type": "string"}}, "required": ["city"]}}]}]);
    let r = post("gemini-flash", &emulator, GENERATE, &key, &body).await.json();
    let call = &r["candidates"][0]["content"]["parts"][0]["functionCall"];
    assert_eq!((&call["name"], &call["args"]), (&json!("get_weather"), &json!({"city": "Lisbon"})), "{r}");
    assert_eq!(r["candidates"][0]["finishReason"], "STOP");
    let r = post("gemini-flash", &emulator, STREAM, &key, &body).await;
    let events = gemini_codec::decode_stream(&r.body).expect("a well-formed stream");
    assert!(events.iter().any(
        |e| matches!(e, StreamEvent::BlockStart { block: BlockKind::ToolUse { name, .. }, .. } if name == "get_weather")
    ));
    assert!(events.iter().any(|e| matches!(e, StreamEvent::MessageDelta { finish: FinishReason::ToolUse, .. })));
}

#[tokio::test(start_paused = true)]
async fn keys_tokens_models_and_paths_are_checked_as_google_does() {
    let emulator = emulator().await;
    for headers in [&[][..], &[("x-goog-api-key", "wrong")][..], &[("authorization", "Bearer AIzaSy-emulator")][..]] {
        let r = post("gemini-flash", &emulator, GENERATE, headers, &say("hi")).await;
        assert_eq!(r.status, 401, "{headers:?}");
        assert_eq!(
            (r.json()["error"]["code"].clone(), r.json()["error"]["status"].clone()),
            (json!(401), json!("UNAUTHENTICATED"))
        );
        assert_eq!(gemini_codec::decode_error(401, &r.body).class, ErrorClass::Authentication);
    }
    // Vertex AI: its path, an OAuth token; a key is no substitute.
    let bearer = format!("Bearer {GOOGLE_TOKEN}");
    let r = post("gemini-vertex", &emulator, VERTEX, &[("authorization", &bearer)], &say("hi")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = post("gemini-vertex", &emulator, VERTEX, &[("x-goog-api-key", GEMINI_KEY)], &say("hi")).await;
    assert_eq!(r.status, 401);

    let key = [("x-goog-api-key", GEMINI_KEY)];
    let r = post("gemini-flash", &emulator, "/v1beta/models/gemini-1.5-pro:generateContent", &key, &say("hi")).await;
    assert_eq!((r.status.as_u16(), r.json()["error"]["status"].clone()), (404, json!("NOT_FOUND")));
    let r = post("gemini-flash", &emulator, "/v1beta/models/gemini-2.5-flash:countTokens", &key, &say("hi")).await;
    assert_eq!(r.status, 404);
    let r = post("gemini-flash", &emulator, GENERATE, &key, &json!({"contents": []})).await;
    assert_eq!((r.status.as_u16(), r.json()["error"]["status"].clone()), (400, json!("INVALID_ARGUMENT")));
    let seen = seen(&emulator, "gemini-flash");
    assert_eq!(seen.get("Unauthorized"), Some(&3), "{seen:?}");
}

#[tokio::test(start_paused = true)]
async fn refusals_are_in_googles_shapes() {
    let emulator = emulator().await;
    let key = [("x-goog-api-key", GEMINI_KEY)];
    faults(&emulator, "gemini-flash", r#"[{"kind": "content_filter"}]"#);
    let r = post("gemini-flash", &emulator, GENERATE, &key, &say("hi")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["promptFeedback"]["blockReason"], "SAFETY");
    assert_eq!(gemini_codec::blocked(&r.body).map(|e| e.class), Some(ErrorClass::ContentFilter));
    let r = post("gemini-flash", &emulator, STREAM, &key, &say("hi")).await;
    let events = gemini_codec::decode_stream(&r.body).expect("a blocked stream");
    assert!(matches!(events.last(), Some(StreamEvent::Error(e)) if e.class == ErrorClass::ContentFilter), "{events:?}");

    faults(&emulator, "gemini-flash", r#"[{"kind": "context_length"}]"#);
    let r = post("gemini-flash", &emulator, GENERATE, &key, &say("hi")).await;
    assert_eq!((r.status.as_u16(), r.json()["error"]["status"].clone()), (400, json!("INVALID_ARGUMENT")));
    assert_eq!(gemini_codec::decode_error(400, &r.body).class, ErrorClass::ContextLength);

    faults(&emulator, "gemini-flash", r#"[{"kind": "error", "status": 503}]"#);
    let r = post("gemini-flash", &emulator, GENERATE, &key, &say("hi")).await;
    assert_eq!((r.status.as_u16(), r.json()["error"]["status"].clone()), (503, json!("UNAVAILABLE")));

    // One slot: a second request while a stream holds it is a 429 RESOURCE_EXHAUSTED.
    faults(&emulator, "gemini-flash", r#"[{"kind": "stall", "after_tokens": 1, "duration_ms": 5000}]"#);
    let hi = say("hi");
    let held = post("gemini-flash", &emulator, STREAM, &key, &hi);
    let second = async {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        post("gemini-flash", &emulator, GENERATE, &key, &say("hi")).await
    };
    let (_, second) = tokio::join!(held, second);
    assert_eq!((second.status.as_u16(), second.json()["error"]["status"].clone()), (429, json!("RESOURCE_EXHAUSTED")));
    assert!(!second.header("retry-after").is_empty());
    assert_eq!(gemini_codec::decode_error(429, &second.body).class, ErrorClass::RateLimit);
}

#[tokio::test(start_paused = true)]
async fn a_service_accounts_jwt_gets_a_token_until_it_expires() {
    use switchyard_core::config::{Secret, ServiceAccount};
    use switchyard_providers::google::TokenSource;

    let emulator = emulator().await;
    let account = |pem: &str| ServiceAccount {
        client_email: "gateway@p.iam.gserviceaccount.com".into(),
        private_key_id: Some("kid-1".into()),
        private_key: Secret::new(pem.to_owned()),
        token_uri: "http://127.0.0.1:11/token".into(),
    };
    let source = TokenSource::new(&account(SA_PEM)).expect("a token source");
    let now = std::time::SystemTime::now();
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let r = send(&emulator, "gemini-sa", Method::POST, "/token", &form, source.form(now).expect("a form")).await;
    let r = r.expect("a response");
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!((r.json()["token_type"].clone(), r.json()["expires_in"].clone()), (json!("Bearer"), json!(3599)));
    source.accept(&r.body, now).expect("a token");
    let bearer = source.current(now).expect("held");
    let bearer = bearer.to_str().expect("text");
    let path = "/v1/projects/p/locations/us-central1/publishers/google/models/gemini-2.5-pro:generateContent";
    let r = post("gemini-sa", &emulator, path, &[("authorization", bearer)], &say("hi")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(emulator.deployment("gemini-sa").map(|d| d.tokens_issued()), Some(1));

    // Expired: a 401, as Google answers a stale token.
    assert!(emulator.deployment("gemini-sa").is_some_and(|d| d.expire_tokens()));
    let r = post("gemini-sa", &emulator, path, &[("authorization", bearer)], &say("hi")).await;
    assert_eq!((r.status.as_u16(), r.json()["error"]["status"].clone()), (401, json!("UNAUTHENTICATED")));

    // Another key's JWT, or none, is refused as Google's token endpoint refuses it.
    let other =
        TokenSource::new(&account(&switchyard_providers::oci::generate_pem().expect("a key"))).expect("a source");
    let r = send(&emulator, "gemini-sa", Method::POST, "/token", &form, other.form(now).expect("a form")).await;
    let r = r.expect("a response");
    assert_eq!((r.status.as_u16(), r.json()["error"].clone()), (400, json!("invalid_grant")));
    let r =
        send(&emulator, "gemini-sa", Method::POST, "/token", &form, "grant_type=password").await.expect("a response");
    assert_eq!((r.status.as_u16(), r.json()["error"].clone()), (400, json!("invalid_request")));
    assert_eq!(emulator.deployment("gemini-flash").map(|d| d.tokens_issued()), Some(0));
}
