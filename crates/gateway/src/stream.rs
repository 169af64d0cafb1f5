//! Streaming: hold the response until the first content chunk (so earlier failures fail over
//! invisibly), then relay each upstream event as it arrives; when a stream is cut or stalls
//! after content, continue it on a deployment that accepts an assistant prefill and splice the
//! remainder in, so the caller still gets one whole answer — or end with an explicit error.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::Stream;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use switchyard_core::AttemptError;
use switchyard_core::config::{AliasId, Deployment, DeploymentId};
use switchyard_core::plan::{PlanRequest, plan};
use switchyard_core::state::Outcome;
use switchyard_core::usage::Usage;
use switchyard_providers::Operation;
use switchyard_wire::chat::{ChatRequest, ChunkView, WireUsage};
use switchyard_wire::error::error_event;
use switchyard_wire::sse::{DONE_EVENT, SseEvent, SseParser, data_event};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::Instrument;

use crate::Gateway;
use crate::attempts::{AttemptGuard, Attempts, Won, account, within};
use crate::chat::{usage_from, where_headers};
use crate::error::ApiError;
use crate::identity::Identity;
use crate::metrics::Api;

/// After the finish reason, wait this long at most for the usage chunk or `[DONE]`.
const AFTER_FINISH_GRACE: Duration = Duration::from_millis(250);

/// One open upstream stream.
struct Upstream {
    deployment: DeploymentId,
    body: Incoming,
    parser: SseParser,
    queue: VecDeque<SseEvent>,
    sent: Instant,
    ttft: Duration,
    /// Frames received before and with the first content chunk, to forward first.
    held: Vec<(Bytes, ChunkView)>,
    n_output_chunks: u64,
    usage: Option<WireUsage>,
    finished: bool,
    tool_calls: bool,
}

enum Read {
    Event(SseEvent),
    End,
    Cut,
    /// An event past the parser's bounds: a garbage answer.
    Garbage,
    Idle,
}

impl Upstream {
    async fn read(&mut self, limit: Duration) -> Read {
        loop {
            if let Some(event) = self.queue.pop_front() {
                return Read::Event(event);
            }
            let next = match tokio::time::timeout(limit, self.body.frame()).await {
                Err(_) => return Read::Idle,
                Ok(next) => next,
            };
            let mut events = Vec::new();
            match next {
                Some(Ok(frame)) => {
                    // Trailers carry nothing for SSE; only data frames matter.
                    if let Some(bytes) = frame.data_ref()
                        && self.parser.push(bytes, &mut events).is_err()
                    {
                        return Read::Garbage;
                    }
                }
                Some(Err(_)) => return Read::Cut,
                None => {
                    self.parser.finish(&mut events);
                    if events.is_empty() {
                        return Read::End;
                    }
                }
            }
            self.queue.extend(events);
        }
    }
}

/// Opens a stream at `deployment` and reads until its first content chunk.
async fn open(
    gw: &Gateway,
    deployment: &Deployment,
    body: Vec<u8>,
    deadline: Instant,
) -> Result<Upstream, AttemptError> {
    let timeouts = &gw.config.server.timeouts;
    let sent = Instant::now();
    let response = gw
        .upstream
        .send(usize::from(deployment.id.0), Operation::ChatCompletions, body, within(deadline, timeouts.first_byte))
        .await?;
    let is_sse = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if !is_sse {
        return Err(AttemptError::InvalidResponse { detail: "expected an event stream".into() });
    }
    let mut up = Upstream {
        deployment: deployment.id,
        body: response.into_body(),
        parser: SseParser::default(),
        queue: VecDeque::new(),
        sent,
        ttft: Duration::ZERO,
        held: Vec::new(),
        n_output_chunks: 0,
        usage: None,
        finished: false,
        tool_calls: false,
    };
    let first_token_by = (sent + timeouts.first_token).min(deadline);
    loop {
        let left = first_token_by.saturating_duration_since(Instant::now());
        match up.read(left).await {
            Read::Idle => return Err(AttemptError::FirstTokenTimeout),
            Read::Cut | Read::End => return Err(AttemptError::CutBeforeContent),
            Read::Garbage => {
                return Err(AttemptError::InvalidResponse {
                    detail: "an upstream event is over the size limit".into(),
                });
            }
            Read::Event(event) => {
                if event.data == "[DONE]" {
                    return Err(AttemptError::CutBeforeContent);
                }
                let Some(view) = ChunkView::parse(&event.data) else {
                    malformed(gw, deployment);
                    continue;
                };
                if let Some(u) = view.usage {
                    up.usage = Some(u);
                }
                let done = view.has_output() || view.finish_reason.is_some();
                up.finished |= view.finish_reason.is_some();
                up.tool_calls |= view.tool_calls;
                if view.has_output() {
                    up.n_output_chunks += 1;
                }
                if !is_usage_only(&view) {
                    up.held.push((Bytes::from(event.data), view));
                }
                if done {
                    up.ttft = sent.elapsed();
                    return Ok(up);
                }
            }
        }
    }
}

fn is_usage_only(view: &ChunkView) -> bool {
    view.usage.is_some() && !view.has_output() && view.finish_reason.is_none()
}

fn malformed(gw: &Gateway, deployment: &Deployment) {
    gw.metrics.malformed(deployment.id);
    tracing::warn!(message = "Skipped an unparseable upstream event.", deployment = %deployment.name);
}

pub(crate) async fn run(
    gw: Arc<Gateway>,
    chat: Arc<ChatRequest>,
    plan_request: PlanRequest<'_>,
    deadline: Instant,
    estimated: u32,
    started: Instant,
) -> Result<Response, ApiError> {
    let mut attempts = Attempts::start(&gw, plan_request, deadline, estimated)?;
    let won = attempts
        .run(|deployment, deadline| {
            let (gw, chat) = (&gw, &chat);
            async move { open(gw, deployment, chat.upstream_body(&deployment.model), deadline).await }
        })
        .await?;
    let Won { value: upstream, attempt, alias } = won;
    let n_attempts = attempts.session.n_attempts();
    let served_by = gw.config.deployment(attempt.deployment());
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    let relay = Relay {
        gw: gw.clone(),
        chat,
        tenant: plan_request.tenant.id,
        alias,
        deadline,
        estimated,
        started,
        tx,
        delivered: String::new(),
        usage: Usage::default(),
        prompt_reported: false,
        n_attempts,
        attempt: Some(attempt),
        prefill_tokens: 0,
        first_chunk: None,
        identity: None,
        route: vec![served_by.id],
    };
    // The relay runs inside the response body, in the caller's connection task: no task of its
    // own, and dropped with the connection if the caller goes away.
    // The request's span goes with it, so its log lines keep the request id.
    let relay = relay.run(upstream).instrument(tracing::Span::current());
    let body = Body::from_stream(RelayBody { relay: Some(Box::pin(relay)), rx });
    let mut response =
        ([(header::CONTENT_TYPE, "text/event-stream"), (header::CACHE_CONTROL, "no-cache")], body).into_response();
    where_headers(&mut response, &gw, served_by, n_attempts);
    Ok(response)
}

/// Relays one caller's stream to the end, continuing it elsewhere if it breaks.
struct Relay {
    gw: Arc<Gateway>,
    chat: Arc<ChatRequest>,
    tenant: switchyard_core::config::TenantId,
    alias: AliasId,
    deadline: Instant,
    estimated: u32,
    started: Instant,
    tx: mpsc::Sender<Bytes>,
    /// Text the caller has received.
    delivered: String,
    /// The caller's usage: the prompt once, every attempt's output.
    usage: Usage,
    /// Whether `usage.prompt_tokens` came from an upstream's report (else it is the estimate).
    prompt_reported: bool,
    n_attempts: u32,
    /// The attempt being relayed: closed as abandoned if the caller goes away (the relay is
    /// dropped with the response body).
    attempt: Option<AttemptGuard>,
    /// Tokens of delivered text the current attempt was given as a prefill.
    prefill_tokens: u32,
    /// The first chunk the caller got, whose `id`, `created` and `model` are the stream's.
    first_chunk: Option<Bytes>,
    /// Those three, once read; continued chunks and the usage chunk say the same.
    identity: Option<Identity>,
    /// Every deployment that produced part of the answer, in order.
    route: Vec<DeploymentId>,
}

/// The caller's response body: frames the relay produced, polling the relay for more.
struct RelayBody {
    relay: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    rx: mpsc::Receiver<Bytes>,
}

impl Stream for RelayBody {
    type Item = Result<Bytes, std::convert::Infallible>;

    /// Lets the relay produce everything it can now, then hands hyper all the frames that are
    /// ready as one buffer: one write for events that arrived together, no waiting for more.
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(relay) = self.relay.as_mut()
            && relay.as_mut().poll(cx).is_ready()
        {
            self.relay = None;
        }
        let mut ready: Option<Bytes> = None;
        let mut joined: Option<bytes::BytesMut> = None;
        while let Poll::Ready(Some(frame)) = self.rx.poll_recv(cx) {
            match (&mut joined, ready.take()) {
                (Some(buf), _) => buf.extend_from_slice(&frame),
                (None, Some(first)) => {
                    let mut buf = bytes::BytesMut::with_capacity(first.len() + frame.len() + 256);
                    buf.extend_from_slice(&first);
                    buf.extend_from_slice(&frame);
                    joined = Some(buf);
                }
                (None, None) => ready = Some(frame),
            }
        }
        if let Some(buf) = joined {
            return Poll::Ready(Some(Ok(buf.freeze())));
        }
        if let Some(frame) = ready {
            return Poll::Ready(Some(Ok(frame)));
        }
        if self.relay.is_none() {
            // The relay is done and every frame is out: the channel is closed and drained.
            return Poll::Ready(None);
        }
        Poll::Pending
    }
}

enum Ended {
    Finished,
    Broken(AttemptError),
    /// The request deadline passed mid-stream: ours, not the deployment's fault.
    Deadline,
}

impl Relay {
    async fn run(mut self, mut upstream: Upstream) {
        loop {
            let ended = self.pump(&mut upstream).await;
            let gw = self.gw.clone();
            let deployment = gw.config.deployment(upstream.deployment);
            let counted = usage_from(&gw, deployment, upstream.usage, self.prompt_estimate(), upstream.n_output_chunks);
            match ended {
                Ended::Finished => {
                    let outcome = Outcome::Success {
                        ttft: Some(upstream.ttft),
                        duration: upstream.sent.elapsed(),
                        output_tokens: u32::try_from(counted.completion_tokens).unwrap_or(u32::MAX),
                        total_tokens: counted.total(),
                    };
                    self.settle(deployment, upstream.usage.is_some(), |a| a.close(outcome, counted.total()), counted);
                    self.finish().await;
                    return;
                }
                Ended::Deadline => {
                    self.settle(
                        deployment,
                        upstream.usage.is_some(),
                        |a| a.abandon("the request deadline passed", counted.total()),
                        counted,
                    );
                    let message = "the request deadline passed while the answer was streaming";
                    let _ = self.tx.send(Bytes::from(error_event(message, "api_error", "deadline_exceeded"))).await;
                    return;
                }
                Ended::Broken(error) => {
                    self.settle(
                        deployment,
                        upstream.usage.is_some(),
                        |a| a.close(Outcome::Failure(&error), counted.total()),
                        counted,
                    );
                    tracing::warn!(message = "Stream broke after content.", deployment = %deployment.name, %error);
                    match self.continue_elsewhere(deployment, upstream.tool_calls).await {
                        Some(next) => {
                            self.gw.metrics.continuation(true);
                            self.route.push(next.deployment);
                            upstream = next;
                        }
                        None => {
                            self.gw.metrics.continuation(false);
                            let message = format!(
                                "the upstream stream was interrupted after partial output ({error}) and could not be continued"
                            );
                            let _ = self
                                .tx
                                .send(Bytes::from(error_event(&message, "api_error", "stream_interrupted")))
                                .await;
                            return;
                        }
                    }
                }
            }
        }
    }

    /// The prompt an attempt is counted with when it reports no usage: the estimate, plus
    /// the prefill it was given.
    fn prompt_estimate(&self) -> u32 {
        self.chat.input_tokens.saturating_add(self.prefill_tokens)
    }

    /// Closes the current attempt with `close`, and books its usage in the accounts and in the
    /// caller's usage: the prompt from the first attempt that reported one (less the prefill
    /// it was given), the output of every attempt.
    fn settle(&mut self, deployment: &Deployment, reported: bool, close: impl FnOnce(AttemptGuard), usage: Usage) {
        if let Some(attempt) = self.attempt.take() {
            close(attempt);
        }
        account(&self.gw, deployment, &usage);
        let first = self.route.len() == 1;
        if first || (reported && !self.prompt_reported) {
            self.usage.prompt_tokens = usage.prompt_tokens.saturating_sub(u64::from(self.prefill_tokens));
            self.usage.cached_prompt_tokens = usage.cached_prompt_tokens.min(self.usage.prompt_tokens);
            self.prompt_reported = reported;
        }
        self.usage.completion_tokens = self.usage.completion_tokens.saturating_add(usage.completion_tokens);
    }

    /// Queues one SSE frame for the caller. The receiver lives in the same response body as
    /// the relay, so it cannot be gone while the relay runs; a caller who leaves drops both.
    async fn send(&self, data: &[u8]) {
        let _ = self.tx.send(Bytes::from(data_event(data))).await;
    }

    /// Sends one upstream chunk: as it is from the first attempt (whose `id`, `created` and
    /// `model` become the stream's), rewritten to the stream's identity without a second role
    /// delta from a continuation.
    async fn relay_chunk(&mut self, data: &[u8]) {
        if self.route.len() == 1 {
            self.send(data).await;
        } else {
            let rewritten = self.identity().rewrite(data);
            self.send(&rewritten).await;
        }
    }

    /// The stream's identity, read from its first chunk when first needed (a continuation or
    /// the usage chunk): a stream that needs neither never parses it.
    fn identity(&mut self) -> &Identity {
        let (first, model) = (&self.first_chunk, &self.chat.model);
        self.identity.get_or_insert_with(|| Identity::of(first.as_deref().unwrap_or(b""), model))
    }

    /// Relays events until the stream ends or breaks.
    async fn pump(&mut self, up: &mut Upstream) -> Ended {
        let held = std::mem::take(&mut up.held);
        if self.first_chunk.is_none() {
            self.first_chunk = held.first().map(|(data, _)| data.clone());
        }
        for (data, view) in held {
            self.delivered.push_str(&view.content);
            self.relay_chunk(&data).await;
        }
        let idle = self.gw.config.server.timeouts.stream_idle;
        loop {
            if up.finished && up.usage.is_some() {
                return Ended::Finished;
            }
            let limit = if up.finished { AFTER_FINISH_GRACE } else { idle };
            let limit = within(self.deadline, limit);
            let read = up.read(limit).await;
            let past_deadline = Instant::now() >= self.deadline;
            match read {
                Read::Event(event) => {
                    if event.data == "[DONE]" {
                        return if up.finished { Ended::Finished } else { Ended::Broken(AttemptError::StreamCut) };
                    }
                    let deployment = self.gw.config.deployment(up.deployment);
                    let Some(view) = ChunkView::parse(&event.data) else {
                        malformed(&self.gw, deployment);
                        continue;
                    };
                    if let Some(u) = view.usage {
                        up.usage = Some(u);
                    }
                    if is_usage_only(&view) {
                        continue;
                    }
                    up.finished |= view.finish_reason.is_some();
                    up.tool_calls |= view.tool_calls;
                    if view.has_output() {
                        up.n_output_chunks += 1;
                    }
                    self.delivered.push_str(&view.content);
                    self.relay_chunk(event.data.as_bytes()).await;
                }
                Read::End | Read::Cut | Read::Garbage | Read::Idle if up.finished => return Ended::Finished,
                Read::Idle if past_deadline => return Ended::Deadline,
                Read::End | Read::Cut | Read::Garbage => return Ended::Broken(AttemptError::StreamCut),
                Read::Idle => return Ended::Broken(AttemptError::StreamStalled),
            }
        }
    }

    /// Finds a deployment that accepts the delivered text as an assistant prefill and opens
    /// the rest of the answer there. `None` when none can.
    async fn continue_elsewhere(&mut self, broken: &Deployment, tool_calls: bool) -> Option<Upstream> {
        if tool_calls || Instant::now() >= self.deadline {
            return None;
        }
        let gw = self.gw.clone();
        let tenant = gw.config.tenant(self.tenant);
        let original = PlanRequest {
            alias: self.alias,
            tenant,
            input_tokens: self.chat.input_tokens,
            max_output_tokens: self.chat.max_tokens,
            needs: switchyard_core::plan::Needs {
                streaming: true,
                tools: self.chat.tools,
                vision: self.chat.vision,
                prefill: false,
            },
            min_context_above: 0,
            avoid: None,
        };
        let prefill_tokens = switchyard_wire::estimate_tokens(&self.delivered);
        let request = original.continuation(prefill_tokens, broken.id);
        let now = gw.now();
        let planned = plan(&gw.config, &gw.router(), &request, now, &mut *gw.rng()).ok()?;
        let delivered_tokens = u32::try_from(self.usage.completion_tokens).unwrap_or(u32::MAX);
        for id in planned.deployments {
            if self.n_attempts >= gw.config.server.max_attempts || !gw.router().try_retry(gw.now()) {
                return None;
            }
            self.n_attempts += 1;
            let deployment = gw.config.deployment(id);
            self.prefill_tokens = prefill_tokens;
            self.attempt = Some(AttemptGuard::begin(&gw, id, self.estimated));
            let body = self.chat.continuation_body(&deployment.model, &self.delivered, delivered_tokens);
            match open(&gw, deployment, body, self.deadline).await {
                Ok(up) => return Some(up),
                Err(error) => {
                    if let Some(attempt) = self.attempt.take() {
                        attempt.close(Outcome::Failure(&error), 0);
                    }
                    tracing::warn!(message = "Continuation attempt failed.", deployment = %deployment.name, %error);
                }
            }
        }
        None
    }

    /// Ends the caller's stream: a usage chunk if asked for, a comment naming the route, then
    /// `[DONE]`.
    async fn finish(&mut self) {
        if self.chat.include_usage {
            let (prompt, completion) = (self.usage.prompt_tokens, self.usage.completion_tokens);
            let chunk = self.identity().usage_chunk(prompt, completion);
            self.send(chunk.as_bytes()).await;
        }
        let mut comment = String::with_capacity(64);
        comment.push_str(": x-switchyard-route: ");
        for (i, d) in self.route.iter().enumerate() {
            if i > 0 {
                comment.push(',');
            }
            comment.push_str(&self.gw.config.deployment(*d).name);
        }
        if self.route.len() > 1 {
            tracing::info!(message = "Stream answered by more than one deployment.", route = &comment[22..]);
        }
        comment.push_str("\n\n");
        let _ = self.tx.send(Bytes::from(comment)).await;
        let _ = self.tx.send(Bytes::from_static(DONE_EVENT)).await;
        self.gw.metrics.duration(Api::ChatStream, self.started.elapsed());
    }
}

impl Drop for Relay {
    /// A caller who leaves mid-stream: the open attempt is abandoned, charged what it used.
    fn drop(&mut self) {
        if let Some(attempt) = self.attempt.take() {
            let used = u64::from(self.prompt_estimate()) + u64::from(switchyard_wire::estimate_tokens(&self.delivered));
            attempt.abandon("the caller went away mid-stream", used);
        }
    }
}
