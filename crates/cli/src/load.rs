//! The demo's traffic: closed-loop workers sending chat requests (streaming and not) through
//! the gateway on loopback, recording what each caller saw.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use switchyard_wire::sse::{SseEvent, SseParser};
use tokio::time::Instant;

/// What one caller saw.
#[derive(Clone, Debug)]
pub(crate) struct Outcome {
    /// When the request was sent, since the run started.
    pub(crate) at: Duration,
    pub(crate) tenant: usize,
    pub(crate) stream: bool,
    pub(crate) ok: bool,
    pub(crate) status: u16,
    pub(crate) deployment: Option<String>,
    pub(crate) attempts: u32,
    pub(crate) latency: Duration,
    pub(crate) usage: (u64, u64),
    pub(crate) error: Option<String>,
}

pub(crate) struct Caller {
    pub(crate) client: reqwest::Client,
    pub(crate) base: String,
}

impl Caller {
    pub(crate) async fn chat(&self, key: &str, tenant: usize, stream: bool, prompt: &str, started: Instant) -> Outcome {
        let sent = Instant::now();
        let mut body = json!({
            "model": "chat-large",
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": 64,
            "stream": stream,
        });
        if stream {
            body["stream_options"] = json!({"include_usage": true});
        }
        let mut outcome = Outcome {
            at: sent.duration_since(started),
            tenant,
            stream,
            ok: false,
            status: 0,
            deployment: None,
            attempts: 0,
            latency: Duration::ZERO,
            usage: (0, 0),
            error: None,
        };
        let response = match self
            .client
            .post(format!("{}/v1/chat/completions", self.base))
            .bearer_auth(key)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => {
                outcome.error = Some(format!("transport: {e}"));
                outcome.latency = sent.elapsed();
                return outcome;
            }
        };
        outcome.status = response.status().as_u16();
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        outcome.deployment = header("x-switchyard-deployment");
        outcome.attempts = header("x-switchyard-attempts").and_then(|v| v.parse().ok()).unwrap_or(0);
        if !response.status().is_success() {
            outcome.error = Some(response.text().await.unwrap_or_default());
            outcome.latency = sent.elapsed();
            return outcome;
        }
        if !stream {
            let bytes = response.bytes().await.unwrap_or_default();
            let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let usage = &value["usage"];
            outcome.usage =
                (usage["prompt_tokens"].as_u64().unwrap_or(0), usage["completion_tokens"].as_u64().unwrap_or(0));
            outcome.ok = value["choices"][0]["message"]["content"].is_string();
            if !outcome.ok {
                outcome.error = Some("answer without content".to_owned());
            }
            outcome.latency = sent.elapsed();
            return outcome;
        }
        let mut bytes = response.bytes_stream();
        let mut parser = SseParser::default();
        let mut events: Vec<SseEvent> = Vec::new();
        let mut done = false;
        while let Some(chunk) = bytes.next().await {
            let Ok(chunk) = chunk else {
                outcome.error = Some("stream cut".to_owned());
                break;
            };
            if parser.push(&chunk, &mut events).is_err() {
                break;
            }
            for event in events.drain(..) {
                if event.data == "[DONE]" {
                    done = true;
                    continue;
                }
                let value: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
                if let Some(e) = value.get("error") {
                    outcome.error = Some(e["message"].as_str().unwrap_or("stream error").to_owned());
                }
                if let Some(u) = value.get("usage").filter(|u| u.is_object()) {
                    outcome.usage =
                        (u["prompt_tokens"].as_u64().unwrap_or(0), u["completion_tokens"].as_u64().unwrap_or(0));
                }
            }
        }
        outcome.ok = done && outcome.error.is_none();
        if !outcome.ok && outcome.error.is_none() {
            outcome.error = Some("stream ended without [DONE]".to_owned());
        }
        outcome.latency = sent.elapsed();
        outcome
    }
}

/// Runs `workers` closed-loop callers until `until`; outcomes are appended as they finish.
pub(crate) async fn run(
    caller: Arc<Caller>,
    keys: Vec<(usize, String)>,
    workers: usize,
    started: Instant,
    until: Instant,
    outcomes: Arc<Mutex<Vec<Outcome>>>,
) {
    let mut handles = Vec::new();
    for w in 0..workers {
        let caller = caller.clone();
        let outcomes = outcomes.clone();
        // Roughly two thirds of the workers are the global tenant, one third the EU one.
        let (tenant, key) = keys[if w % 3 == 2 { 1 } else { 0 }].clone();
        handles.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < until {
                let stream = (w + n as usize).is_multiple_of(2);
                let prompt = format!("worker {w} request {n}: summarise the quarterly capacity plan");
                let outcome = caller.chat(&key, tenant, stream, &prompt, started).await;
                if let Ok(mut o) = outcomes.lock() {
                    o.push(outcome);
                }
                n += 1;
            }
        }));
    }
    for h in handles {
        let _ = h.await;
    }
}
