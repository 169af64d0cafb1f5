//! The HTTP API: answers, where-it-went headers, usage, and every error in OpenAI's shape.

use serde_json::json;

use crate::support::*;

fn check_error(r: &Reply, status: u16, code: Option<&str>, message_part: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    let error = &r.body["error"];
    assert!(error.is_object(), "OpenAI-shaped error: {}", r.body);
    if let Some(code) = code {
        assert_eq!(error["code"], code, "{}", r.body);
    }
    let message = error["message"].as_str().unwrap_or("");
    assert!(message.contains(message_part), "{message:?} does not contain {message_part:?}");
}

#[tokio::test]
async fn chat_answers_with_usage_and_headers() {
    let h = Harness::start().await;
    let r = h.chat(ask("chat", "hello")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["choices"][0]["message"]["content"], expected_answer("hello"));
    assert_eq!(r.body["usage"]["completion_tokens"], 12);
    assert_eq!(header(&r.headers, "x-switchyard-deployment"), "d1");
    assert_eq!(header(&r.headers, "x-switchyard-cloud"), "one");
    assert_eq!(header(&r.headers, "x-switchyard-attempts"), "1");
}

#[tokio::test]
async fn streams_relay_every_chunk_and_report_usage_when_asked() {
    let h = Harness::start().await;
    let plain = h.stream(KEY, ask("chat", "stream")).await;
    assert!(plain.done && plain.error.is_none());
    assert_eq!(plain.content, expected_answer("stream"));
    assert!(plain.usage.is_none(), "usage only when asked for");
    assert_eq!(plain.n_events, 12 + 2, "12 content chunks, the finish chunk, [DONE]");
    let mut body = ask("chat", "stream");
    body["stream_options"] = json!({"include_usage": true});
    let with_usage = h.stream(KEY, body).await;
    assert_eq!(with_usage.usage.unwrap()["completion_tokens"], 12);
}

#[tokio::test]
async fn embeddings_and_models() {
    let h = Harness::start().await;
    let r = h.post("/v1/embeddings", Some(KEY), json!({"model": "embed", "input": ["a", "b"]}).to_string()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"].as_array().unwrap().len(), 2);
    assert_eq!(header(&r.headers, "x-switchyard-deployment"), "emb");
    let models = h.net().client.get(format!("{}/v1/models", h.net().base)).bearer_auth(EU_KEY).send().await.unwrap();
    let models: serde_json::Value = serde_json::from_slice(&models.bytes().await.unwrap()).unwrap();
    let ids: Vec<&str> = models["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["chat", "embed"], "only the aliases this key may use");
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let h = Harness::start().await;
    let _ = h.chat(ask("chat", "count me")).await;
    for (path, needle) in [
        ("/healthz", "ok"),
        ("/readyz", "available"),
        ("/metrics", "switchyard_requests_total{api=\"chat\",outcome=\"ok\"} 1"),
    ] {
        let r = h.net().client.get(format!("{}{path}", h.net().base)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let text = r.text().await.unwrap();
        assert!(text.contains(needle), "{path}: {text}");
    }
}

#[tokio::test]
async fn authentication_and_permission_errors() {
    let h = Harness::start().await;
    let body = ask("chat", "x").to_string();
    check_error(
        &h.post("/v1/chat/completions", None, body.clone()).await,
        401,
        Some("invalid_api_key"),
        "missing API key",
    );
    check_error(
        &h.post("/v1/chat/completions", Some("sk-wrong"), body.clone()).await,
        401,
        Some("invalid_api_key"),
        "invalid API key",
    );
    let solo = ask("solo", "x").to_string();
    check_error(
        &h.post("/v1/chat/completions", Some(EU_KEY), solo).await,
        403,
        Some("model_not_allowed"),
        "may not use",
    );
    // The EU tenant may use `chat`, but every deployment of it is in the US: fail closed.
    check_error(
        &h.post("/v1/chat/completions", Some(EU_KEY), body).await,
        403,
        Some("jurisdiction_not_allowed"),
        "outside the allowed jurisdictions (eu)",
    );
    assert_eq!(h.requests("d1") + h.requests("d2"), 0);
}

#[tokio::test]
async fn request_errors() {
    let h = Harness::start().await;
    check_error(&h.post("/v1/chat/completions", Some(KEY), "{not json".into()).await, 400, None, "not valid JSON");
    check_error(
        &h.post("/v1/chat/completions", Some(KEY), r#"{"model":"chat"}"#.into()).await,
        400,
        None,
        "'messages' must be an array",
    );
    check_error(
        &h.post("/v1/chat/completions", Some(KEY), ask("nope", "x").to_string()).await,
        404,
        Some("model_not_found"),
        "nope",
    );
    check_error(
        &h.post("/v1/chat/completions", Some(KEY), ask("embed", "x").to_string()).await,
        400,
        None,
        "embeddings model",
    );
    let huge = ask("chat", &"x".repeat(70_000)).to_string();
    check_error(&h.post("/v1/chat/completions", Some(KEY), huge).await, 413, Some("request_too_large"), "65536");
    let mut tools = ask("solo", "x");
    tools["max_tokens"] = json!(100_000);
    check_error(
        &h.post("/v1/chat/completions", Some(KEY), tools.to_string()).await,
        400,
        Some("context_length_exceeded"),
        "context window too small",
    );
}

#[tokio::test(start_paused = true)]
async fn a_full_deployment_answers_429_no_capacity() {
    let text = config_text(true, false).replace(
        "capabilities: { context_window: 4096, prefill: true, tools: true }",
        "limits: { concurrency: 1 }\n    capabilities: { context_window: 4096, prefill: true, tools: true }",
    );
    let h = Harness::memory_with(&text).await;
    h.faults("d1", r#"[{"kind":"slow_first_token","delay_ms":400}]"#);
    let (held, refused) =
        h.while_holding_d1(std::time::Duration::from_millis(100), h.chat(ask("solo", "no room"))).await;
    assert!(held.done);
    check_error(&refused, 429, Some("no_capacity"), "1 at their concurrency or rate limit");
    assert_eq!(h.requests("d1"), 1, "the full deployment was not sent the second request");
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_every_log_line_too() {
    let logs = LogBuffer::default();
    let subscriber = tracing_subscriber::fmt().with_writer(logs.clone()).with_ansi(false).finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    // With this test's subscriber the only one registered, tracing takes a callsite first hit
    // on another test's thread (which has none) to be of interest to no one, for good, and
    // this test then misses its span or its warning. A second dispatcher makes every callsite
    // ask the subscriber of the thread it runs on.
    let _second = tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default());
    let h = Harness::start().await;
    // A caller's own id is kept and returned; without one the gateway makes one.
    let given = h
        .net()
        .client
        .post(format!("{}/v1/chat/completions", h.net().base))
        .bearer_auth(KEY)
        .header("x-request-id", "trace-4711")
        .body(ask("chat", "ids").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(header(given.headers(), "x-request-id"), "trace-4711");
    let made = h.chat(ask("chat", "ids")).await;
    assert!(header(&made.headers, "x-request-id").starts_with("req_"));
    for (path, key) in
        [("/v1/nope", Some(KEY)), ("/v1/chat/completions", Some("sk-wrong")), ("/v1/chat/completions", None)]
    {
        let r = h.post(path, key, "{}".into()).await;
        assert!(!header(&r.headers, "x-request-id").is_empty(), "{path} {}", r.status);
    }
    // A failover logs a warning: it names the request and the key (by id, never the key).
    h.faults("d1", r#"[{"kind":"outage"}]"#);
    let r = h
        .net()
        .client
        .post(format!("{}/v1/chat/completions", h.net().base))
        .bearer_auth(KEY)
        .header("x-request-id", "trace-failover")
        .body(ask("chat", "logged").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let text = logs.text();
    let line = text.lines().find(|l| l.contains("Upstream attempt failed")).expect("a warning");
    assert!(line.contains("trace-failover"), "{line}");
    assert!(line.contains("key=key_") && line.contains("tenant=global"), "{line}");
    assert!(!text.contains(KEY), "the key itself is never logged");
}

/// Log output collected in memory, for tests of what is logged.
#[derive(Clone, Default)]
struct LogBuffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl LogBuffer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;
    fn make_writer(&'a self) -> LogBuffer {
        self.clone()
    }
}
