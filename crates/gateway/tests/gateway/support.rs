//! Test harness: the emulator and the gateway in-process on loopback, and a caller.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use switchyard_core::config::emulation::faults_from_raw;
use switchyard_core::config::raw::RawFault;
use switchyard_core::config::{Config, NoSecrets, SecretSource};
use switchyard_emulator::{Bind, Emulator, Seen, answer_tokens, conversation_key};
use switchyard_gateway::Gateway;
use switchyard_wire::sse::{SseEvent, SseParser};
use tokio::time::Instant;

pub(crate) const KEY: &str = "sk-test-global";
pub(crate) const EU_KEY: &str = "sk-test-eu";
/// A tenant in the US that may use `chat` but not its fallback `long`.
pub(crate) const CHAT_ONLY_KEY: &str = "sk-test-chat-only";

/// Timeouts are generous so that a loaded CI machine cannot trip them; tests of a timeout
/// shorten the one they test.
/// Two chat deployments in different clouds (`d1` first by priority, `d2` second), a
/// larger-context one behind the `long` fallback alias, and an embeddings deployment.
pub(crate) const BASE: &str = r#"
server:
  body_limit_bytes: 65536
  timeouts: { connect_ms: 500, first_byte_ms: 3000, first_token_ms: 3000, stream_idle_ms: 2000, request_ms: 8000 }
  retry_after_cap_ms: 300
routing:
  outlier: { consecutive_failures: 3, base_ejection_ms: 1000, max_ejection_ms: 2000, max_ejected_share: 0.5 }
clouds:
  - { name: one, protocol: openai }
  - { name: two, protocol: vllm }
deployments:
  - name: d1
    cloud: one
    region: r1
    jurisdiction: us
    model: model-one
    endpoint: http://127.0.0.1:1/v1
    price: { input_per_mtok: 1, output_per_mtok: 2 }
    capabilities: { context_window: 4096, prefill: true, tools: true }
    emulation: { ttft_ms: { fixed: 5 }, tokens_per_s: { fixed: 1000 }, answer_tokens: [12, 12] }
  - name: d2
    cloud: two
    region: r2
    jurisdiction: us
    model: model-two
    endpoint: http://127.0.0.1:2/v1
    price: { input_per_mtok: 1, output_per_mtok: 2 }
    capabilities: { context_window: 4096, prefill: PREFILL2 }
    emulation: { ttft_ms: { fixed: 5 }, tokens_per_s: { fixed: 1000 }, answer_tokens: [12, 12], reject_prefill: REJECT2 }
  - name: big
    cloud: two
    region: r3
    jurisdiction: us
    model: model-long
    endpoint: http://127.0.0.1:3/v1
    price: { input_per_mtok: 3, output_per_mtok: 6 }
    capabilities: { context_window: 1000000 }
    emulation: { ttft_ms: { fixed: 5 }, tokens_per_s: { fixed: 1000 }, answer_tokens: [12, 12] }
  - name: emb
    cloud: one
    region: r1
    jurisdiction: us
    kind: embeddings
    model: embed-one
    endpoint: http://127.0.0.1:4/v1
    price: { input_per_mtok: 0.1 }
    emulation: { ttft_ms: { fixed: 1 } }
aliases:
  - { name: chat, policy: priority, deployments: [d1, d2], fallbacks: [long] }
  - { name: solo, policy: priority, deployments: [d1] }
  - { name: long, policy: cost, deployments: [big] }
  - { name: embed, policy: cost, deployments: [emb] }
tenants:
  - { name: global, keys: ["KEYHASH"], jurisdictions: [us, eu], aliases: ["*"] }
  - { name: eu-only, keys: ["EUHASH"], jurisdictions: [eu], aliases: [chat, embed] }
  - { name: chat-only, keys: ["CHATHASH"], jurisdictions: [us], aliases: [chat] }
"#;

pub(crate) struct Harness {
    pub(crate) emulator: Emulator,
    pub(crate) gateway: Arc<Gateway>,
    pub(crate) base: String,
    pub(crate) addr: std::net::SocketAddr,
    pub(crate) client: reqwest::Client,
    /// Fired (or dropped) to shut the gateway down.
    pub(crate) stop: Option<tokio::sync::oneshot::Sender<()>>,
}

pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) body: Value,
    pub(crate) elapsed: Duration,
}

pub(crate) struct StreamReply {
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) content: String,
    pub(crate) done: bool,
    pub(crate) error: Option<Value>,
    pub(crate) usage: Option<Value>,
    pub(crate) n_events: usize,
    pub(crate) elapsed: Duration,
}

/// The config text with placeholders filled: `d2` accepts prefills unless told otherwise.
pub(crate) fn config_text(prefill2: bool, reject2: bool) -> String {
    BASE.replace("PREFILL2", &prefill2.to_string())
        .replace("REJECT2", &reject2.to_string())
        .replace("KEYHASH", &switchyard_core::config::key_hash_text(KEY))
        .replace("EUHASH", &switchyard_core::config::key_hash_text(EU_KEY))
        .replace("CHATHASH", &switchyard_core::config::key_hash_text(CHAT_ONLY_KEY))
}

impl Harness {
    pub(crate) async fn start() -> Harness {
        Harness::with_config(&config_text(true, false)).await
    }

    pub(crate) async fn with_config(text: &str) -> Harness {
        Harness::with_secrets(text, &NoSecrets).await
    }

    pub(crate) async fn with_secrets(text: &str, secrets: &dyn SecretSource) -> Harness {
        let emulated = Config::from_yaml(text, secrets).expect("test config");
        let emulator = Emulator::start(&emulated, Bind::Ephemeral, None, 1).await.expect("emulator");
        let mut config = Config::from_yaml(text, secrets).expect("test config");
        for d in &mut config.deployments {
            d.endpoint = emulator.deployment(&d.name).expect("emulated").endpoint();
        }
        let gateway = Gateway::new(config, 1).expect("gateway");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let base = format!("http://{addr}");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(switchyard_gateway::serve(gateway.clone(), listener, async move {
            let _ = stopped.await;
        }));
        let client = reqwest::Client::builder().build().expect("client");
        Harness { emulator, gateway, base, addr, client, stop: Some(stop) }
    }

    /// Installs a fault plan (JSON, as the admin API takes it) on a deployment.
    pub(crate) fn faults(&self, deployment: &str, json: &str) {
        let raw: Vec<RawFault> = serde_json::from_str(json).expect("fault json");
        let faults = faults_from_raw(&raw, "faults").expect("valid faults");
        self.emulator.set_faults(deployment, faults).expect("deployment");
    }

    pub(crate) fn seen(&self, deployment: &str, outcome: Seen) -> usize {
        self.emulator.deployment(deployment).expect("deployment").count(outcome)
    }

    pub(crate) fn requests(&self, deployment: &str) -> usize {
        self.emulator.deployment(deployment).expect("deployment").records().len()
    }

    pub(crate) async fn post(&self, path: &str, key: Option<&str>, body: String) -> Reply {
        let started = Instant::now();
        let mut request =
            self.client.post(format!("{}{path}", self.base)).header("content-type", "application/json").body(body);
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.expect("gateway answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("body");
        let body =
            serde_json::from_slice(&bytes).unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Reply { status, headers, body, elapsed: started.elapsed() }
    }

    pub(crate) async fn chat(&self, body: Value) -> Reply {
        self.post("/v1/chat/completions", Some(KEY), body.to_string()).await
    }

    /// Starts a streaming chat request and returns the response as soon as headers arrive.
    pub(crate) async fn open_stream(&self, key: &str, mut body: Value) -> reqwest::Response {
        body["stream"] = json!(true);
        self.client
            .post(format!("{}/v1/chat/completions", self.base))
            .bearer_auth(key)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("gateway answers")
    }

    /// Holds a stream on `solo` (d1) open while `then` runs, started once the stream has had
    /// `after` to take its slot: for capacity tests. d1 should be slowed by a fault first.
    pub(crate) async fn while_holding_d1<T>(
        &self,
        after: Duration,
        then: impl std::future::Future<Output = T>,
    ) -> (StreamReply, T) {
        let held = self.stream(KEY, ask("solo", "holding the slot"));
        let then = async {
            tokio::time::sleep(after).await;
            then.await
        };
        tokio::join!(held, then)
    }

    pub(crate) async fn stream(&self, key: &str, body: Value) -> StreamReply {
        let started = Instant::now();
        let response = self.open_stream(key, body).await;
        assert_eq!(response.status().as_u16(), 200, "streams start with 200");
        let headers = response.headers().clone();
        let mut reply = StreamReply {
            headers,
            content: String::new(),
            done: false,
            error: None,
            usage: None,
            n_events: 0,
            elapsed: Duration::ZERO,
        };
        let mut bytes = response.bytes_stream();
        let mut parser = SseParser::default();
        let mut events: Vec<SseEvent> = Vec::new();
        while let Some(chunk) = bytes.next().await {
            let Ok(chunk) = chunk else { break };
            parser.push(&chunk, &mut events).expect("sse");
        }
        parser.finish(&mut events);
        for event in events {
            reply.n_events += 1;
            if event.data == "[DONE]" {
                reply.done = true;
                continue;
            }
            let value: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
            if let Some(e) = value.get("error") {
                reply.error = Some(e.clone());
            }
            if let Some(u) = value.get("usage").filter(|u| u.is_object()) {
                reply.usage = Some(u.clone());
            }
            if let Some(c) = value.pointer("/choices/0/delta/content").and_then(Value::as_str) {
                reply.content.push_str(c);
            }
        }
        reply.elapsed = started.elapsed();
        reply
    }
}

/// A chat request with one user message.
pub(crate) fn ask(model: &str, prompt: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": prompt}]})
}

/// The emulator's full answer to `ask(_, prompt)`.
pub(crate) fn expected_answer(prompt: &str) -> String {
    let messages = vec![json!({"role": "user", "content": prompt})];
    answer_tokens(conversation_key(&messages), (12, 12)).concat()
}

pub(crate) fn header<'a>(headers: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}
