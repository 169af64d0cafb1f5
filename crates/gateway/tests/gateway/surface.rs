//! What clients see at the edges: bodies read within limits and deadlines, refused bodies
//! drained so the status arrives, 404/405/400 in the OpenAI error shape, rate limits that
//! come back as 429 with Retry-After, shutdown that refuses new connections first.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

/// Sends raw bytes on a new connection and reads the answer (until close, a whole response
/// or 5 s), optionally leaving the connection open for `hold` after writing.
async fn raw(h: &Harness, request: &[u8]) -> String {
    let mut socket = tokio::net::TcpStream::connect(h.net().addr).await.expect("connect");
    socket.write_all(request).await.expect("write");
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, socket.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&out);
        if let Some(head_end) = text.find("\r\n\r\n") {
            let length = text[..head_end]
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))
                .and_then(|v| v.parse::<usize>().ok());
            if length.is_some_and(|n| out.len() >= head_end + 4 + n) {
                break;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn chat_head(length: usize, key: &str) -> String {
    format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    )
}

#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_gets_408() {
    let h = Harness::with_config(
        &config_text(true, false).replace("request_ms: 8000", "request_ms: 8000, body_read_ms: 300"),
    )
    .await;
    let mut request = chat_head(100, KEY).into_bytes();
    request.extend_from_slice(br#"{"model":"chat","#);
    let answer = raw(&h, &request).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
}

#[tokio::test]
async fn bodies_held_at_once_are_bounded() {
    let text = config_text(true, false)
        .replace("body_limit_bytes: 65536", "body_limit_bytes: 65536\n  buffered_body_limit_bytes: 100000");
    let h = Harness::with_config(&text).await;
    // One slow body holds 60 KB of the 100 KB the gateway may hold...
    let mut slow = tokio::net::TcpStream::connect(h.net().addr).await.unwrap();
    slow.write_all(chat_head(60_000, KEY).as_bytes()).await.unwrap();
    slow.write_all(&[b' '; 1000]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // ...so another 60 KB body is refused with 503 and Retry-After, after being read.
    let mut request = chat_head(60_000, KEY).into_bytes();
    request.extend(std::iter::repeat_n(b' ', 60_000));
    let answer = raw(&h, &request).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("retry-after: 1"), "{answer}");
    drop(slow);
}

#[tokio::test]
async fn truncated_bodies_are_400_and_http11_needs_a_host() {
    let h = Harness::start().await;
    let mut socket = tokio::net::TcpStream::connect(h.net().addr).await.unwrap();
    socket.write_all(chat_head(500, KEY).as_bytes()).await.unwrap();
    socket.write_all(br#"{"model":"chat"}"#).await.unwrap();
    socket.shutdown().await.unwrap();
    let mut answer = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), socket.read_to_string(&mut answer)).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    let answer = raw(&h, b"GET /v1/models HTTP/1.1\r\nAuthorization: Bearer x\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("Host"), "{answer}");
}

#[tokio::test]
async fn refused_bodies_are_read_so_the_client_sees_the_status() {
    let h = Harness::start().await;
    let big = format!(r#"{{"model":"chat","messages":[{{"role":"user","content":"{}"}}]}}"#, "x".repeat(5 << 20));
    for _ in 0..5 {
        let r = h.post("/v1/chat/completions", Some(KEY), big.clone()).await;
        assert_eq!(r.status, 413, "{}", r.body);
        assert_eq!(r.body["error"]["code"], "request_too_large");
        let r = h.post("/v1/chat/completions", Some("sk-wrong"), big.clone()).await;
        assert_eq!(r.status, 401, "{}", r.body);
    }
}

#[tokio::test]
async fn unknown_paths_are_404_and_wrong_methods_405() {
    let h = Harness::start().await;
    for path in ["/v1/response", "/v1/model/chat", "/chat/completions", "/v1/chat/completion"] {
        let r = h.post(path, Some(KEY), "{}".into()).await;
        assert_eq!(r.status, 404, "{path}: {}", r.body);
        assert_eq!(r.body["error"]["type"], "invalid_request_error", "{path}");
    }
    let r = h.net().client.get(format!("{}/v1/chat/completions", h.net().base)).bearer_auth(KEY).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 405);
    assert_eq!(header(r.headers(), "allow"), "POST");
    let body: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "method_not_allowed");
    let r = h.post("/v1/models/chat", Some(KEY), "{}".into()).await;
    assert_eq!(r.status, 405, "{}", r.body);
    let r = h.net().client.get(format!("{}/v1/responses", h.net().base)).bearer_auth(KEY).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 405);
}

#[tokio::test]
async fn caller_strings_are_escaped_and_cut_in_errors() {
    let h = Harness::start().await;
    let model = format!("evil\n\u{1b}[31m{}", "m".repeat(60_000));
    let r = h.chat(ask(&model, "hi")).await;
    assert_eq!(r.status, 404);
    let message = r.body["error"]["message"].as_str().unwrap();
    assert!(message.len() < 1024, "{} bytes", message.len());
    assert!(!message.contains('\n') && !message.contains('\u{1b}'), "{message}");
}

#[tokio::test]
async fn every_deployment_rate_limited_is_429_with_retry_after() {
    let h = Harness::start().await;
    for d in ["d1", "d2"] {
        h.faults(d, r#"[{"kind":"error","status":429,"retry_after_ms":5000}]"#);
    }
    let r = h.chat(ask("chat", "limited")).await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(r.body["error"]["type"], "rate_limit_error");
    assert_eq!(header(&r.headers, "retry-after"), "5");
    assert_eq!(header(&r.headers, "x-switchyard-attempts"), "2");
    // Both cooling down now: the gateway's own 429 says when to come back too.
    let r = h.chat(ask("chat", "still limited")).await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "no_capacity");
    let wait: u64 = header(&r.headers, "retry-after").parse().unwrap();
    assert!((1..=5).contains(&wait), "{wait}");
}

#[tokio::test]
async fn fallbacks_obey_the_alias_list_and_serve_prompts_estimated_too_big() {
    let h = Harness::start().await;
    let huge = "word ".repeat(6000);
    let r = h.chat(ask("chat", &huge)).await;
    assert_eq!(r.status, 200, "the gateway's own estimate sends it to the fallback: {}", r.body);
    assert_eq!(header(&r.headers, "x-switchyard-deployment"), "big");
    let r = h.post("/v1/chat/completions", Some(CHAT_ONLY_KEY), ask("chat", &huge).to_string()).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "context_length_exceeded");
    // An upstream's own context-length refusal does not open the fallback to this tenant either.
    h.faults("d1", r#"[{"kind":"context_length"}]"#);
    h.faults("d2", r#"[{"kind":"context_length"}]"#);
    let r = h.post("/v1/chat/completions", Some(CHAT_ONLY_KEY), ask("chat", "small").to_string()).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(h.requests("big"), 1, "only the allowed tenant reached big");
}

#[tokio::test]
async fn readyz_fails_when_every_deployment_refuses_and_when_draining() {
    let mut h = Harness::start().await;
    let ready = async |h: &Harness| {
        h.net().client.get(format!("{}/readyz", h.net().base)).send().await.unwrap().status().as_u16()
    };
    assert_eq!(ready(&h).await, 200);
    for d in ["d1", "d2", "big", "emb"] {
        h.faults(d, r#"[{"kind":"outage"}]"#);
    }
    let _ = h.chat(ask("chat", "down")).await;
    let _ = h.chat(ask("long", "down")).await;
    let _ = h.post("/v1/embeddings", Some(KEY), json!({"model": "embed", "input": "x"}).to_string()).await;
    assert_eq!(ready(&h).await, 503, "every deployment just refused a connection");
    for d in ["d1", "d2", "big", "emb"] {
        h.faults(d, "[]");
    }
    let _ = h.chat(ask("chat", "up")).await;
    assert_eq!(ready(&h).await, 200);
    // Shutdown: a stream in progress finishes, new connections are refused at once.
    h.faults("d1", r#"[{"kind":"stall","after_tokens":2,"duration_ms":500}]"#);
    let stream = h.open_stream(KEY, ask("solo", "finishing"));
    let stream = tokio::spawn({
        let response = stream.await;
        async move { response.text().await }
    });
    h.net_mut().stop.take().unwrap().send(()).unwrap();
    let mut refused = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(h.net().addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(refused, "the listener is closed once shutdown begins");
    let text = stream.await.unwrap();
    assert!(text.contains("[DONE]"), "{text}");
}

struct MetricsToken;

impl switchyard_core::config::SecretSource for MetricsToken {
    fn env(&self, name: &str) -> Option<String> {
        (name == "METRICS_TOKEN").then(|| "s3cret".to_owned())
    }
    fn file(&self, path: &str) -> Result<String, String> {
        Err(format!("no file {path}"))
    }
}

#[tokio::test]
async fn metrics_need_the_token_when_one_is_set() {
    let text = config_text(true, false)
        .replace("body_limit_bytes: 65536", "body_limit_bytes: 65536\n  metrics_token: env:METRICS_TOKEN");
    let h = Harness::with_secrets(&text, &MetricsToken).await;
    let url = format!("{}/metrics", h.net().base);
    assert_eq!(h.net().client.get(&url).send().await.unwrap().status().as_u16(), 401);
    assert_eq!(h.net().client.get(&url).bearer_auth("wrong").send().await.unwrap().status().as_u16(), 401);
    let r = h.net().client.get(&url).bearer_auth("s3cret").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.text().await.unwrap().contains("switchyard_requests_total"));
}

#[tokio::test]
async fn metrics_on_their_own_listener_are_not_on_the_api_port() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let text = config_text(true, false)
        .replace("body_limit_bytes: 65536", &format!("body_limit_bytes: 65536\n  metrics_listen: 127.0.0.1:{port}"));
    let h = Harness::with_config(&text).await;
    let r = h.net().client.get(format!("{}/metrics", h.net().base)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 404, "not on the API listener");
    let gw = h.gateway.clone();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let addr: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    let workers = tokio::task::spawn_blocking(move || switchyard_gateway::serve_workers(gw, addr, 1, stopped));
    let url = format!("http://127.0.0.1:{port}/metrics");
    let mut body = String::new();
    for _ in 0..100 {
        if let Ok(r) = h.net().client.get(&url).send().await {
            body = r.text().await.unwrap();
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(body.contains("switchyard_requests_total"), "{body}");
    stop.send(true).unwrap();
    workers.await.unwrap().unwrap();
}
