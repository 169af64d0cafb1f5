//! One deployment's listener: accepts connections (resetting them during outages), answers
//! chat completions and embeddings with the deployment's timing, and plays its fault plan.
//! Every wait is a tokio timer (`sleep`, `sleep_until`, tokio's `Instant`), so the emulator
//! follows a paused test clock.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use switchyard_core::config::FaultKind;
use switchyard_wire::chat::{ChatRequest, EmbeddingsRequest};
use switchyard_wire::error::error_body;
use switchyard_wire::sse::{DONE_EVENT, data_event};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, mpsc, watch};
use tokio::time::Instant;

use crate::body::{BodyItem, EmuBody};
use crate::text::{answer_tokens, conversation_key, remainder_after};
use crate::{EmulatedDeployment, Seen};

/// How long a hung response (no response, stall forever, missing `[DONE]`) is held at most.
const HANG: Duration = Duration::from_secs(600);
const MAX_BODY: usize = 16 * 1024 * 1024;

type Reply = Result<Response<EmuBody>, std::io::Error>;

pub(crate) async fn serve(listener: TcpListener, dep: Arc<EmulatedDeployment>, mut stop: watch::Receiver<bool>) {
    loop {
        let accepted = tokio::select! {
            _ = stop.changed() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _)) = accepted else { continue };
        if is_down(&dep) {
            dep.record(Seen::ConnectionReset, false, false);
            reset(&stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve_connection(dep.clone(), stream));
    }
}

/// Serves one connection to `dep`, over TCP or any other stream (an in-memory pipe).
pub(crate) async fn serve_connection<S>(dep: Arc<EmulatedDeployment>, stream: S)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| handle(dep.clone(), req));
    let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
}

pub(crate) fn is_down(dep: &EmulatedDeployment) -> bool {
    dep.active_faults().iter().any(|f| matches!(f.kind, FaultKind::Outage | FaultKind::Flap { .. }))
}

/// Whether an outage hitting every request is on: cuts work in flight, without rolling
/// partial rates again for every token.
fn is_down_for_all(dep: &EmulatedDeployment) -> bool {
    dep.outage_for_all()
}

/// Closes with RST rather than FIN, as a dead host's stack or load balancer would.
fn reset(stream: &TcpStream) {
    let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
}

fn aborted() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::ConnectionReset, "emulated fault: connection reset")
}

/// A whole response; a Retry-After is sent both in seconds and, as OpenAI and Azure do, in ms.
fn respond(status: StatusCode, content_type: &'static str, retry_after: Option<Duration>, body: Vec<u8>) -> Reply {
    let mut builder = Response::builder().status(status).header(header::CONTENT_TYPE, content_type);
    if let Some(wait) = retry_after {
        builder = builder
            .header(header::RETRY_AFTER, wait.as_secs_f64().ceil().max(1.0).to_string())
            .header("retry-after-ms", wait.as_millis().to_string());
    }
    builder.body(EmuBody::full(body)).map_err(|e| std::io::Error::other(e.to_string()))
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Reply {
    respond(status, "application/json", None, body)
}

fn error_response(status: StatusCode, message: &str, kind: &str, code: Option<&str>) -> Reply {
    json_response(status, error_body(message, kind, code, None))
}

/// Counts a request in flight until dropped.
struct InFlight(
    Arc<EmulatedDeployment>,
    #[expect(dead_code, reason = "held for its drop")] Option<OwnedSemaphorePermit>,
);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn handle(dep: Arc<EmulatedDeployment>, req: Request<Incoming>) -> Reply {
    let path = req.uri().path().to_owned();
    let authorized = match &dep.spec.api_key {
        None => true,
        Some(key) => req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|v| v == key.expose()),
    };
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Err(aborted()),
    };
    if path.ends_with("/models") {
        let list = json!({"object": "list", "data": [{"id": dep.model, "object": "model", "owned_by": dep.cloud}]});
        return json_response(StatusCode::OK, list.to_string().into_bytes());
    }
    if !authorized {
        dep.record(Seen::Unauthorized, false, false);
        return error_response(
            StatusCode::UNAUTHORIZED,
            "invalid api key",
            "invalid_request_error",
            Some("invalid_api_key"),
        );
    }

    let faults = dep.active_faults();
    let has = |pred: fn(&FaultKind) -> bool| faults.iter().find(|f| pred(&f.kind)).map(|f| f.kind);
    if has(|k| matches!(k, FaultKind::Outage | FaultKind::Flap { .. })).is_some() {
        dep.record(Seen::ConnectionReset, false, false);
        return Err(aborted());
    }
    if has(|k| matches!(k, FaultKind::ResetBeforeHeaders)).is_some() {
        dep.record(Seen::ResetBeforeHeaders, false, false);
        return Err(aborted());
    }
    if has(|k| matches!(k, FaultKind::NoResponse)).is_some() {
        dep.record(Seen::NoResponse, false, false);
        tokio::time::sleep(HANG).await;
        return Err(aborted());
    }

    if path.ends_with("/embeddings") {
        return embeddings(&dep, &body);
    }
    if !path.ends_with("/chat/completions") {
        return error_response(StatusCode::NOT_FOUND, &format!("no route for {path}"), "invalid_request_error", None);
    }
    let request = match ChatRequest::parse(body.clone()) {
        Ok(r) => r,
        Err(e) => {
            dep.record(Seen::BadRequest, false, false);
            return error_response(StatusCode::BAD_REQUEST, &e.message, "invalid_request_error", None);
        }
    };
    let stream = request.stream;

    // Capacity: a free slot, else a place in the queue, else 429.
    let permit = match &dep.slots {
        None => Ok(None),
        Some(slots) => match slots.clone().try_acquire_owned() {
            Ok(permit) => Ok(Some(permit)),
            Err(_) if dep.waiting.fetch_add(1, Ordering::Relaxed) < dep.spec.max_queue => {
                let permit = slots.clone().acquire_owned().await;
                dep.waiting.fetch_sub(1, Ordering::Relaxed);
                permit.map(Some).map_err(|_| ())
            }
            Err(_) => {
                dep.waiting.fetch_sub(1, Ordering::Relaxed);
                Err(())
            }
        },
    };
    dep.in_flight.fetch_add(1, Ordering::Relaxed);
    let rejected = permit.is_err();
    let guard = InFlight(dep.clone(), permit.ok().flatten());
    if rejected {
        dep.record(Seen::RateLimited, stream, false);
        let body = error_body("capacity exceeded, retry later", "rate_limit_error", Some("rate_limit_exceeded"), None);
        return respond(StatusCode::TOO_MANY_REQUESTS, "application/json", Some(dep.spec.retry_after), body);
    }
    if let Some(FaultKind::Error { status, retry_after }) = has(|k| matches!(k, FaultKind::Error { .. })) {
        dep.record(Seen::ErrorStatus(status), stream, false);
        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = error_body(&format!("emulated error {status}"), "server_error", None, None);
        return respond(code, "application/json", retry_after, body);
    }
    let needed = request.input_tokens.saturating_add(request.max_tokens.unwrap_or(0));
    if has(|k| matches!(k, FaultKind::ContextLength)).is_some() || needed > dep.context_window {
        dep.record(Seen::ContextLength, stream, false);
        let message = format!(
            "This model's maximum context length is {} tokens. However, you requested {needed} tokens.",
            dep.context_window
        );
        return error_response(
            StatusCode::BAD_REQUEST,
            &message,
            "invalid_request_error",
            Some("context_length_exceeded"),
        );
    }
    if has(|k| matches!(k, FaultKind::Garbage)).is_some() {
        dep.record(Seen::Garbage, stream, false);
        let page = b"<html><body>502 Bad Gateway (upstream proxy)</body></html>".to_vec();
        return respond(StatusCode::OK, "text/html", None, page);
    }
    if has(|k| matches!(k, FaultKind::ContentFilter)).is_some() {
        dep.record(Seen::ContentFilter, stream, false);
        return error_response(
            StatusCode::BAD_REQUEST,
            "The response was filtered due to the prompt triggering the content management policy.",
            "invalid_request_error",
            Some("content_filter"),
        );
    }

    // The conversation, and a trailing assistant prefill to continue, if asked for.
    let mut messages: Vec<Value> =
        request.object.get("messages").and_then(|m| serde_json::from_str(m).ok()).unwrap_or_default();
    let continues = request.object.get("continue_final_message") == Some("true");
    let prefill = match messages.last() {
        Some(last) if continues && last.get("role").and_then(Value::as_str) == Some("assistant") => {
            let text = last.get("content").and_then(Value::as_str).unwrap_or("").to_owned();
            messages.pop();
            Some(text)
        }
        _ => None,
    };
    if prefill.is_some() && dep.spec.reject_prefill {
        dep.record(Seen::PrefillRejected, stream, true);
        return error_response(
            StatusCode::BAD_REQUEST,
            "continue_final_message is not supported by this deployment",
            "invalid_request_error",
            Some("unsupported_parameter"),
        );
    }
    let full = answer_tokens(conversation_key(&messages), dep.spec.answer_tokens);
    let mut tokens = match &prefill {
        Some(p) => remainder_after(&full, p).unwrap_or(full),
        None => full,
    };
    let mut finish = "stop";
    if let Some(max) = request.max_tokens
        && tokens.len() > max as usize
    {
        tokens.truncate(max as usize);
        finish = "length";
    }

    let slow = faults
        .iter()
        .find_map(|f| match f.kind {
            FaultKind::SlowFirstToken { delay } => Some(delay),
            _ => None,
        })
        .unwrap_or(Duration::ZERO);
    let ttft = Duration::from_secs_f64(dep.sample(&dep.spec.ttft_ms).max(0.0) / 1000.0) + slow;
    let per_token = Duration::from_secs_f64(1.0 / dep.sample(&dep.spec.tokens_per_s).max(0.1));
    let usage = json!({
        "prompt_tokens": request.input_tokens,
        "completion_tokens": tokens.len(),
        "total_tokens": request.input_tokens as usize + tokens.len(),
    });
    let id = format!(
        "chatcmpl-{}-{}",
        dep.name,
        dep.sample(&switchyard_core::config::Dist::Uniform { min: 0.0, max: 1e12 }) as u64
    );
    let created = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());

    if !stream {
        let n = u32::try_from(tokens.len()).unwrap_or(u32::MAX);
        tokio::time::sleep(ttft + per_token * n.saturating_sub(1)).await;
        if is_down_for_all(&dep) {
            // The deployment went down while this request was being served.
            dep.record(Seen::ConnectionReset, false, prefill.is_some());
            return Err(aborted());
        }
        dep.record(Seen::Completed, false, prefill.is_some());
        drop(guard);
        let body = json!({
            "id": id, "object": "chat.completion", "created": created, "model": dep.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": tokens.concat()}, "finish_reason": finish}],
            "usage": usage,
        });
        return json_response(StatusCode::OK, body.to_string().into_bytes());
    }

    let (tx, body) = EmuBody::channel();
    let plan = StreamPlan {
        dep: dep.clone(),
        tokens,
        finish,
        usage: request.include_usage.then_some(usage),
        id,
        created,
        ttft,
        per_token,
        faults: faults.iter().map(|f| f.kind).collect(),
        prefill: prefill.is_some(),
    };
    tokio::spawn(async move {
        let _guard = guard;
        plan.run(tx).await;
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(body)
        .map_err(|e| std::io::Error::other(e.to_string()))
}

struct StreamPlan {
    dep: Arc<EmulatedDeployment>,
    tokens: Vec<String>,
    finish: &'static str,
    usage: Option<Value>,
    id: String,
    created: u64,
    ttft: Duration,
    per_token: Duration,
    faults: Vec<FaultKind>,
    prefill: bool,
}

impl StreamPlan {
    fn chunk(&self, delta: Value, finish: Option<&str>) -> Bytes {
        let chunk = json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.dep.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        });
        Bytes::from(data_event(chunk.to_string().as_bytes()))
    }

    async fn run(self, tx: mpsc::Sender<BodyItem>) {
        let start = Instant::now();
        let mut outcome = Seen::Completed;
        for (i, token) in self.tokens.iter().enumerate() {
            let i = i as u32;
            for fault in &self.faults {
                match *fault {
                    FaultKind::Cut { after_tokens } if after_tokens == i => {
                        self.dep.record(Seen::Cut, true, self.prefill);
                        flushed(&tx).await;
                        let _ = tx.send(Err(aborted())).await;
                        return;
                    }
                    FaultKind::Stall { after_tokens, duration } if after_tokens == i => {
                        outcome = Seen::Stalled;
                        let stall = duration.unwrap_or(HANG);
                        tokio::select! {
                            _ = tokio::time::sleep(stall) => (),
                            _ = tx.closed() => {
                                self.dep.record(Seen::Stalled, true, self.prefill);
                                return;
                            }
                        }
                    }
                    FaultKind::MalformedChunk { after_tokens } if after_tokens == i => {
                        outcome = Seen::Malformed;
                        if tx
                            .send(Ok(Bytes::from_static(b"data: {\"choices\": [{\"delta\": {\"content\n\n")))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                    _ => (),
                }
            }
            tokio::time::sleep_until(start + self.ttft + self.per_token * i).await;
            if is_down_for_all(&self.dep) {
                // An outage cuts the streams in flight too.
                self.dep.record(Seen::Cut, true, self.prefill);
                let _ = tx.send(Err(aborted())).await;
                return;
            }
            let delta = if i == 0 { json!({"role": "assistant", "content": token}) } else { json!({"content": token}) };
            if tx.send(Ok(self.chunk(delta, None))).await.is_err() {
                return;
            }
        }
        if self.tokens.is_empty() {
            tokio::time::sleep_until(start + self.ttft).await;
        }
        if tx.send(Ok(self.chunk(json!({}), Some(self.finish)))).await.is_err() {
            return;
        }
        if let Some(usage) = &self.usage {
            let chunk = json!({
                "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.dep.model,
                "choices": [], "usage": usage,
            });
            if tx.send(Ok(Bytes::from(data_event(chunk.to_string().as_bytes())))).await.is_err() {
                return;
            }
        }
        if self.faults.iter().any(|f| matches!(f, FaultKind::NoDone)) {
            self.dep.record(Seen::NoDone, true, self.prefill);
            tokio::select! {
                _ = tokio::time::sleep(HANG) => (),
                _ = tx.closed() => (),
            }
            return;
        }
        self.dep.record(outcome, true, self.prefill);
        let _ = tx.send(Ok(Bytes::from_static(DONE_EVENT))).await;
    }
}

/// Waits (briefly, bounded) until the tokens sent so far have left for the socket, so that a
/// cut after N tokens really delivers N tokens first.
async fn flushed(tx: &mpsc::Sender<BodyItem>) {
    for _ in 0..200 {
        if tx.capacity() == tx.max_capacity() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    tokio::time::sleep(Duration::from_millis(5)).await;
}

fn embeddings(dep: &EmulatedDeployment, body: &Bytes) -> Reply {
    let request = match EmbeddingsRequest::parse(body.clone()) {
        Ok(r) => r,
        Err(e) => {
            dep.record(Seen::BadRequest, false, false);
            return error_response(StatusCode::BAD_REQUEST, &e.message, "invalid_request_error", None);
        }
    };
    let inputs: Vec<Value> = match request.object.get("input").and_then(|i| serde_json::from_str(i).ok()) {
        Some(Value::Array(items)) => items,
        Some(other) => vec![other],
        None => Vec::new(),
    };
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, input)| {
            let seed = switchyard_core::rng::stable_hash(input.to_string().as_bytes());
            let vector: Vec<f64> =
                (0..8).map(|k| ((seed.rotate_left(k * 8) & 0xffff) as f64 / 65535.0) - 0.5).collect();
            json!({"object": "embedding", "index": i, "embedding": vector})
        })
        .collect();
    dep.record(Seen::Completed, false, false);
    let body = json!({
        "object": "list", "data": data, "model": dep.model,
        "usage": {"prompt_tokens": request.input_tokens, "total_tokens": request.input_tokens},
    });
    json_response(StatusCode::OK, body.to_string().into_bytes())
}
