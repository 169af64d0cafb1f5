//! Test harness: the emulator and the gateway in-process, and a caller. They are connected in
//! one of two ways.
//!
//! - Over loopback sockets (`Harness::start`, `with_config`, `with_secrets`): the gateway's
//!   `serve` loop on a TCP listener, the emulator's listeners, `reqwest` as the caller. For the
//!   tests whose subject is the socket or what runs only on it: HTTP/1 framing, the `Host`
//!   check and request ids of the serve loop, body read deadlines and drained refusals,
//!   shutdown and `/readyz`, the metrics listener and SO_REUSEPORT workers, and the TCP
//!   failures themselves (a reset at accept). These wait in real time, so their timeouts are
//!   generous or their timing is not asserted.
//! - In memory (`Harness::memory`, `memory_with`): no socket anywhere. The gateway's upstream
//!   connections are in-memory pipes to the emulator (`Transport::Memory` over
//!   `Emulator::dialer`), and each caller request is a pipe to the gateway's `app`, served by
//!   hyper's HTTP/1 server and sent with hyper's client, so bodies stream for real and a caller
//!   who leaves closes its connection. These tests run on `#[tokio::test(start_paused = true)]`:
//!   with no kernel IO to wait for, the runtime is idle only when every task waits on a timer,
//!   and tokio's clock then jumps to the earliest one. Timeouts, Retry-After waits, ejections,
//!   hedges, stalls, deadlines and the emulator's pacing happen in exact virtual time and take
//!   no wall time, so these tests assert elapsed times exactly and cannot be tripped by a loaded
//!   machine. They skip what only the serve loop does (request ids, the `Host` check).

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method};
use http_body_util::Full;
use hyper::body::{Body as _, Incoming};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::{Value, json};
use switchyard_core::config::emulation::faults_from_raw;
use switchyard_core::config::raw::RawFault;
use switchyard_core::config::{Config, NoSecrets, SecretSource};
use switchyard_emulator::{Bind, Emulator, Seen, answer_tokens, conversation_key};
use switchyard_gateway::Gateway;
use switchyard_providers::Transport;
use switchyard_wire::sse::{SseEvent, SseParser};
use tokio::time::Instant;
use tower_service::Service;

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

/// How long a whole answer of `d1`, `d2` or `big` in `BASE` takes on the paused clock: 5 ms to
/// the first token, then the other 11 at 1 ms each.
pub(crate) const ANSWER_TIME: Duration = Duration::from_millis(16);

pub(crate) struct Harness {
    pub(crate) emulator: Emulator,
    pub(crate) gateway: Arc<Gateway>,
    via: Via,
}

/// How callers reach the gateway.
enum Via {
    Net(Net),
    /// The gateway's routes, served over a new in-memory pipe per request.
    Memory(axum::Router),
}

/// The gateway on a loopback listener.
pub(crate) struct Net {
    pub(crate) base: String,
    pub(crate) addr: std::net::SocketAddr,
    pub(crate) client: reqwest::Client,
    /// Fired (or dropped) to shut the gateway down.
    pub(crate) stop: Option<tokio::sync::oneshot::Sender<()>>,
}

pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Value,
    pub(crate) elapsed: Duration,
}

pub(crate) struct StreamReply {
    pub(crate) headers: HeaderMap,
    pub(crate) content: String,
    pub(crate) done: bool,
    pub(crate) error: Option<Value>,
    pub(crate) usage: Option<Value>,
    pub(crate) n_events: usize,
    pub(crate) elapsed: Duration,
}

/// A response whose head has arrived; its body is read on demand.
pub(crate) struct Opened {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    body: OpenedBody,
}

enum OpenedBody {
    Net(reqwest::Response),
    /// The body, and the client connection that carries it (driven while the body is read;
    /// dropping it closes the connection, as a caller who leaves does).
    Memory(Incoming, ClientConn),
}

/// A hyper client connection's task, polled by whoever waits on it until it ends.
struct ClientConn(Option<Pin<Box<dyn Future<Output = ()> + Send>>>);

/// What each direction of an in-memory connection to the gateway buffers.
const PIPE_BYTES: usize = 256 * 1024;

/// The config text with placeholders filled: `d2` accepts prefills unless told otherwise.
pub(crate) fn config_text(prefill2: bool, reject2: bool) -> String {
    BASE.replace("PREFILL2", &prefill2.to_string())
        .replace("REJECT2", &reject2.to_string())
        .replace("KEYHASH", &switchyard_core::config::key_hash_text(KEY))
        .replace("EUHASH", &switchyard_core::config::key_hash_text(EU_KEY))
        .replace("CHATHASH", &switchyard_core::config::key_hash_text(CHAT_ONLY_KEY))
}

impl Harness {
    /// The base config over loopback sockets.
    pub(crate) async fn start() -> Harness {
        Harness::with_config(&config_text(true, false)).await
    }

    pub(crate) async fn with_config(text: &str) -> Harness {
        Harness::with_secrets(text, &NoSecrets).await
    }

    pub(crate) async fn with_secrets(text: &str, secrets: &dyn SecretSource) -> Harness {
        let emulated = Config::from_yaml(text, secrets).expect("test config");
        let emulator = Emulator::start(&emulated, Bind::Ephemeral, None, 1).await.expect("emulator");
        let config = Harness::pointed_at(&emulator, text, secrets);
        let gateway = Gateway::new(config, 1).expect("gateway");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let base = format!("http://{addr}");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(switchyard_gateway::serve(gateway.clone(), listener, async move {
            let _ = stopped.await;
        }));
        let client = reqwest::Client::builder().build().expect("client");
        Harness { emulator, gateway, via: Via::Net(Net { base, addr, client, stop: Some(stop) }) }
    }

    /// The base config in memory; for `#[tokio::test(start_paused = true)]`.
    pub(crate) async fn memory() -> Harness {
        Harness::memory_with(&config_text(true, false)).await
    }

    /// `text` in memory; for `#[tokio::test(start_paused = true)]`.
    pub(crate) async fn memory_with(text: &str) -> Harness {
        Harness::memory_with_secrets(text, &NoSecrets, &NoSecrets).await
    }

    /// `text` in memory, its secret references resolved from `emulated` for the emulator (what
    /// each cloud expects) and from `secrets` for the gateway (what it sends): give them
    /// different values to test a wrong key.
    pub(crate) async fn memory_with_secrets(
        text: &str,
        emulated: &dyn SecretSource,
        secrets: &dyn SecretSource,
    ) -> Harness {
        let emulated = Config::from_yaml(text, emulated).expect("test config");
        let emulator = Emulator::start(&emulated, Bind::Memory, None, 1).await.expect("emulator");
        let config = Harness::pointed_at(&emulator, text, secrets);
        let dialer = emulator.dialer();
        let transport = Transport::Memory(Arc::new(move |uri: &http::Uri| dialer.connect(uri)));
        let gateway = Gateway::with_transport(config, 1, transport).expect("gateway");
        let app = switchyard_gateway::app(gateway.clone());
        Harness { emulator, gateway, via: Via::Memory(app) }
    }

    /// `text` in memory, with a ledger in an in-memory SQLite database; on the real clock (the
    /// ledger's database works on threads of its own, which a paused clock does not wait for).
    pub(crate) async fn with_ledger(text: &str) -> (Harness, switchyard_ledger::Store) {
        Harness::with_ledger_holding(text, &[]).await
    }

    /// [`Harness::with_ledger`], the ledger holding `records` from before the start, which
    /// the gateway reads back as `serve` does (budgets, commitment spend).
    pub(crate) async fn with_ledger_holding(
        text: &str,
        records: &[switchyard_ledger::RequestRecord],
    ) -> (Harness, switchyard_ledger::Store) {
        Harness::with_ledger_secrets(text, &NoSecrets, records).await
    }

    /// [`Harness::with_ledger_holding`], secret references resolved from `secrets` (for the
    /// emulator and the gateway alike).
    pub(crate) async fn with_ledger_secrets(
        text: &str,
        secrets: &dyn SecretSource,
        records: &[switchyard_ledger::RequestRecord],
    ) -> (Harness, switchyard_ledger::Store) {
        let emulated = Config::from_yaml(text, secrets).expect("test config");
        let emulator = Emulator::start(&emulated, Bind::Memory, None, 1).await.expect("emulator");
        let mut config = Harness::pointed_at(&emulator, text, secrets);
        config.ledger.url = switchyard_core::config::Secret::new("sqlite::memory:".to_owned());
        let (store, ledger) = switchyard_gateway::open_ledger(&config).await.expect("ledger");
        let dialer = emulator.dialer();
        let transport = Transport::Memory(Arc::new(move |uri: &http::Uri| dialer.connect(uri)));
        let parts = switchyard_gateway::Parts {
            transport,
            ledger: Some(ledger),
            store: Some(store.clone()),
            ..Default::default()
        };
        store.insert_batch(records).await.expect("records");
        let gateway = Gateway::assemble(config, 1, parts).expect("gateway");
        switchyard_gateway::restore(&gateway, &store).await.expect("restore");
        let app = switchyard_gateway::app(gateway.clone());
        (Harness { emulator, gateway, via: Via::Memory(app) }, store)
    }

    /// Waits until every record submitted so far is durable.
    pub(crate) async fn flush_ledger(&self) {
        self.gateway.ledger.as_ref().expect("a ledger").flush().await;
    }

    /// The gateway's config, its deployments' endpoints those of the emulator.
    fn pointed_at(emulator: &Emulator, text: &str, secrets: &dyn SecretSource) -> Config {
        let mut config = Config::from_yaml(text, secrets).expect("test config");
        for d in &mut config.deployments {
            d.endpoint = emulator.deployment(&d.name).expect("emulated").endpoint();
        }
        config
    }

    /// The listener, for tests of the socket; a harness in memory has none.
    pub(crate) fn net(&self) -> &Net {
        match &self.via {
            Via::Net(net) => net,
            Via::Memory(_) => panic!("this test needs the harness on sockets"),
        }
    }

    pub(crate) fn net_mut(&mut self) -> &mut Net {
        match &mut self.via {
            Via::Net(net) => net,
            Via::Memory(_) => panic!("this test needs the harness on sockets"),
        }
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

    /// Sends a request and returns once the response's head has arrived.
    pub(crate) async fn send(&self, method: Method, path: &str, key: Option<&str>, body: String) -> Opened {
        match &self.via {
            Via::Net(net) => {
                let mut request = net.client.request(method.clone(), format!("{}{path}", net.base));
                if method == Method::POST || !body.is_empty() {
                    request = request.header("content-type", "application/json").body(body);
                }
                if let Some(key) = key {
                    request = request.bearer_auth(key);
                }
                let response = request.send().await.expect("gateway answers");
                let (status, headers) = (response.status().as_u16(), response.headers().clone());
                Opened { status, headers, body: OpenedBody::Net(response) }
            }
            Via::Memory(app) => {
                let mut request = http::Request::builder().method(method).uri(path).header("host", "gateway");
                if !body.is_empty() {
                    request = request.header("content-type", "application/json");
                }
                if let Some(key) = key {
                    request = request.header("authorization", format!("Bearer {key}"));
                }
                let request = request.body(Full::new(Bytes::from(body))).expect("request");
                let (mut sender, connection) =
                    hyper::client::conn::http1::handshake(TokioIo::new(serve_in_memory(app))).await.expect("handshake");
                let mut conn = ClientConn(Some(Box::pin(async move {
                    let _ = connection.await;
                })));
                let mut response = pin!(sender.send_request(request));
                drop(sender);
                let response = poll_fn(|cx| {
                    conn.poll(cx);
                    response.as_mut().poll(cx)
                })
                .await
                .expect("gateway answers");
                let (parts, body) = response.into_parts();
                Opened { status: parts.status.as_u16(), headers: parts.headers, body: OpenedBody::Memory(body, conn) }
            }
        }
    }

    pub(crate) async fn post(&self, path: &str, key: Option<&str>, body: String) -> Reply {
        self.whole(Method::POST, path, key, body).await
    }

    /// The Prometheus text of `/metrics`.
    pub(crate) async fn metrics(&self) -> String {
        let opened = self.send(Method::GET, "/metrics", None, String::new()).await;
        assert_eq!(opened.status, 200);
        opened.text().await
    }

    async fn whole(&self, method: Method, path: &str, key: Option<&str>, body: String) -> Reply {
        let started = Instant::now();
        let opened = self.send(method, path, key, body).await;
        let (status, headers) = (opened.status, opened.headers.clone());
        let bytes = opened.bytes().await.expect("body");
        let body =
            serde_json::from_slice(&bytes).unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Reply { status, headers, body, elapsed: started.elapsed() }
    }

    pub(crate) async fn chat(&self, body: Value) -> Reply {
        self.post("/v1/chat/completions", Some(KEY), body.to_string()).await
    }

    /// Starts a streaming chat request and returns the response as soon as headers arrive.
    pub(crate) async fn open_stream(&self, key: &str, mut body: Value) -> Opened {
        body["stream"] = json!(true);
        self.send(Method::POST, "/v1/chat/completions", Some(key), body.to_string()).await
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
        let mut response = self.open_stream(key, body).await;
        assert_eq!(response.status, 200, "streams start with 200");
        let mut reply = StreamReply {
            headers: response.headers.clone(),
            content: String::new(),
            done: false,
            error: None,
            usage: None,
            n_events: 0,
            elapsed: Duration::ZERO,
        };
        let mut parser = SseParser::default();
        let mut events: Vec<SseEvent> = Vec::new();
        while let Some(chunk) = response.chunk().await {
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

/// Serves one connection of the gateway's routes over an in-memory pipe, with the HTTP/1
/// settings of `serve`; returns the caller's end.
fn serve_in_memory(app: &axum::Router) -> tokio::io::DuplexStream {
    let (near, far) = tokio::io::duplex(PIPE_BYTES);
    let app = app.clone();
    tokio::spawn(async move {
        let service = hyper::service::service_fn(move |request: http::Request<Incoming>| {
            let mut app = app.clone();
            async move { app.call(request.map(axum::body::Body::new)).await }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder.max_buf_size(8 * 1024).writev(true).timer(TokioTimer::new());
        let _ = builder.serve_connection(TokioIo::new(far), service).await;
    });
    near
}

impl ClientConn {
    /// Drives the connection, until it ends.
    fn poll(&mut self, cx: &mut Context<'_>) {
        if let Some(conn) = &mut self.0
            && conn.as_mut().poll(cx).is_ready()
        {
            self.0 = None;
        }
    }
}

impl Opened {
    /// The next piece of the body: `None` at its end, an error if it broke off.
    pub(crate) async fn chunk(&mut self) -> Option<Result<Bytes, String>> {
        match &mut self.body {
            OpenedBody::Net(response) => response.chunk().await.map_err(|e| e.to_string()).transpose(),
            OpenedBody::Memory(body, conn) => {
                poll_fn(|cx| {
                    conn.poll(cx);
                    // Trailers, if any, are skipped.
                    loop {
                        match Pin::new(&mut *body).poll_frame(cx) {
                            Poll::Ready(Some(Ok(frame))) => {
                                if let Ok(data) = frame.into_data() {
                                    return Poll::Ready(Some(Ok(data)));
                                }
                            }
                            Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e.to_string()))),
                            Poll::Ready(None) => return Poll::Ready(None),
                            Poll::Pending => return Poll::Pending,
                        }
                    }
                })
                .await
            }
        }
    }

    /// The whole body, or the error it broke off with.
    pub(crate) async fn bytes(mut self) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        while let Some(chunk) = self.chunk().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out)
    }

    pub(crate) async fn text(self) -> String {
        String::from_utf8_lossy(&self.bytes().await.expect("a whole body")).into_owned()
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

pub(crate) fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}
