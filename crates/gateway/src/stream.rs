//! Streaming: the response is held until the first content chunk (so earlier failures, hedges
//! and retries stay invisible), then each upstream event is relayed the moment it arrives. When
//! the core's machine continues a broken stream on another deployment, its chunks are spliced
//! in under the stream's identity, so the caller still gets one whole answer — or an explicit
//! error event. All of this works on OpenAI chunks; the stream's `Dialect` writes what the
//! caller receives in the caller's protocol.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::Stream;
use switchyard_core::AttemptError;
use switchyard_core::lifecycle::{AttemptId, Failure, Finished, Spec, Timing};
use switchyard_wire::chat::{ChatRequest, ChunkView};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::Instrument;

use crate::Gateway;
use crate::chat::where_headers;
use crate::dialect::Dialect;
use crate::drive::Driver;
use crate::error::ApiError;
use crate::identity::Identity;
use crate::io::IoEvent;

/// A caller's stream: the driver, and what the caller has been sent.
struct Relay<D> {
    driver: Driver,
    chat: Arc<ChatRequest>,
    started: Instant,
    /// Frames ready for the caller.
    out: Vec<Bytes>,
    /// Frames held back until the machine releases them (`hold_back_tokens`).
    withheld: Vec<Bytes>,
    /// The first chunk the caller got that names an `id`: its `id`, `created` and `model` are
    /// the stream's.
    first_chunk: Option<Bytes>,
    identity: Option<Identity>,
    n_continued: usize,
    /// Writes the caller's frames.
    dialect: D,
}

pub(crate) async fn run<D: Dialect>(
    gw: Arc<Gateway>,
    chat: Arc<ChatRequest>,
    spec: Spec,
    timing: Timing,
    started: Instant,
    account: crate::account::Account,
    dialect: D,
) -> Result<Response, ApiError> {
    let driver = Driver::start(&gw, chat.clone(), spec, timing, account);
    let mut relay = Relay {
        driver,
        chat,
        started,
        out: Vec::new(),
        withheld: Vec::new(),
        first_chunk: None,
        identity: None,
        n_continued: 0,
        dialect,
    };
    // Until the first content (or, when held back, its release): nothing reaches the caller,
    // every failure is the machine's to answer with another attempt.
    while relay.driver.machine.winner().is_none() || relay.driver.machine.holding_back() {
        if let Some(finished) = relay.driver.finished.clone() {
            return match finished {
                Finished::Answered { .. } => break,
                Finished::Failed(failure) => {
                    let error = crate::chat::api_error(failure, &relay.driver);
                    let record = relay.driver.conclude(error.status(), error.kind());
                    crate::account::durable(&gw, record).await?;
                    Err(error)
                }
            };
        }
        if let Some((id, event)) = relay.driver.next().await {
            relay.on_event(id, event);
        }
        relay.held_back();
    }
    relay.held_back();
    let served_by = gw.config.deployment(relay.driver.machine.route()[0]);
    let n_attempts = relay.driver.machine.n_attempts();
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    // The relay runs inside the response body, in the caller's connection task: no task of its
    // own, and dropped with the connection if the caller goes away (the driver then abandons
    // its open attempts). The request's span goes with it, so its log lines keep the request id.
    let relay = relay.run(tx).instrument(tracing::Span::current());
    let body = Body::from_stream(RelayBody { relay: Some(Box::pin(relay)), rx });
    let mut response =
        ([(header::CONTENT_TYPE, "text/event-stream"), (header::CACHE_CONTROL, "no-cache")], body).into_response();
    where_headers(&mut response, &gw, served_by, n_attempts);
    Ok(response)
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

fn is_usage_only(view: &ChunkView) -> bool {
    view.usage.is_some() && !view.has_output() && view.finish_reason.is_none()
}

impl<D: Dialect> Relay<D> {
    /// Relays until the machine ends the request, then ends the caller's stream.
    async fn run(mut self, tx: mpsc::Sender<Bytes>) {
        loop {
            for frame in self.out.drain(..) {
                let _ = tx.send(frame).await;
            }
            if let Some(finished) = self.driver.finished.clone() {
                self.end(finished, &tx).await;
                return;
            }
            if let Some((id, event)) = self.driver.next().await {
                self.on_event(id, event);
            }
            self.held_back();
        }
    }

    /// Carries out the machine's word on a held-back answer: release it, or drop it.
    fn held_back(&mut self) {
        let quiet = !self.driver.machine.holding_back() && self.withheld.is_empty();
        if quiet && !self.driver.restart && !self.driver.release {
            return;
        }
        self.driver.act();
        if std::mem::take(&mut self.driver.restart) {
            self.withheld.clear();
            self.first_chunk = None;
            self.identity = None;
            self.dialect.restart();
        }
        if std::mem::take(&mut self.driver.release) {
            self.out.append(&mut self.withheld);
        }
    }

    /// Carries one IO event to the machine, and content to the caller once its attempt answers.
    fn on_event(&mut self, id: AttemptId, event: IoEvent) {
        let answering = self.driver.open.iter().any(|o| o.id == id && o.answering);
        let cut = if answering { AttemptError::StreamCut } else { AttemptError::CutBeforeContent };
        match event {
            IoEvent::Headers => self.driver.machine.on_headers(id),
            IoEvent::Event(data) => self.on_data(id, data),
            // A stream cut after its finish reason lost only its trailer: the answer is whole.
            IoEvent::End | IoEvent::Cut => {
                let finished = self.driver.open.iter().any(|o| o.id == id && o.finished);
                if finished { self.driver.done(id) } else { self.driver.failed(id, cut) }
            }
            IoEvent::Garbage if answering => self.driver.failed(id, cut),
            IoEvent::Garbage => {
                let detail = "an upstream event could not be read (over the size limit, or not the protocol's)".into();
                self.driver.failed(id, AttemptError::InvalidResponse { detail })
            }
            IoEvent::Whole(_) => {
                let detail = "expected an event stream".into();
                self.driver.failed(id, AttemptError::InvalidResponse { detail })
            }
            // An error the upstream reported inside its stream, after content reached the
            // caller: the answer is continued elsewhere, unless a filter stopped it.
            IoEvent::Failed(error) if answering && !matches!(error, AttemptError::ContentFiltered { .. }) => {
                tracing::warn!(message = "The upstream reported an error mid-stream.", %error);
                self.driver.failed(id, AttemptError::StreamCut)
            }
            IoEvent::Failed(error) => self.driver.failed(id, error),
        }
    }

    fn on_data(&mut self, id: AttemptId, data: String) {
        let gw = self.driver.gw.clone();
        let Some(o) = self.driver.open_mut(id) else { return };
        if data == "[DONE]" {
            let finished = o.finished;
            let cut = if o.answering { AttemptError::StreamCut } else { AttemptError::CutBeforeContent };
            if finished {
                self.driver.done(id)
            } else {
                self.driver.failed(id, cut)
            }
            return;
        }
        let Some(view) = ChunkView::parse(&data) else {
            let deployment = gw.config.deployment(o.deployment);
            gw.metrics.malformed(deployment.id);
            tracing::warn!(message = "Skipped an unparseable upstream event.", deployment = %deployment.name);
            return;
        };
        if let Some(u) = view.usage {
            o.usage = Some(u);
        }
        if !is_usage_only(&view) {
            o.finished |= view.finish_reason.is_some();
            if view.has_output() {
                o.n_output_chunks += 1;
            }
            let tokens = u32::from(view.has_output());
            let now = gw.now();
            if o.answering {
                self.driver.machine.on_progress(id, tokens, view.tool_calls, now);
                self.deliver(data, &view.content);
            } else {
                o.held.push(Bytes::from(data));
                if view.has_output() || view.finish_reason.is_some() {
                    self.first_content(id, tokens, view.tool_calls, &view.content);
                }
            }
            if view.finish_reason.is_some() {
                self.driver.machine.on_finish_reason(id, now);
            }
        }
        let Some(o) = self.driver.open_mut(id) else { return };
        if o.finished && o.usage.is_some() {
            self.driver.done(id);
        }
    }

    /// An attempt's first content: the machine picks it to answer (the first one wins), and what
    /// it held back goes out.
    fn first_content(&mut self, id: AttemptId, tokens: u32, tool_calls: bool, content: &str) {
        let now = self.driver.gw.now();
        self.driver.with_ctx(|m, ctx| m.on_content(ctx, id, tokens, tool_calls, now));
        let answering = self.driver.machine.winner() == Some(id);
        self.driver.act();
        if !answering {
            return;
        }
        if self.driver.machine.route().len() > 1 {
            self.n_continued += 1;
            self.driver.gw.metrics.continuation(true);
        }
        let Some(o) = self.driver.open_mut(id) else { return };
        o.answering = true;
        let held = std::mem::take(&mut o.held);
        let n = held.len();
        for (i, data) in held.into_iter().enumerate() {
            // Only the last held chunk carries the content that made this attempt answer;
            // earlier ones (a role delta) carry none.
            let text = if i + 1 == n { content } else { "" };
            self.deliver_bytes(data, text);
        }
    }

    fn deliver(&mut self, data: String, content: &str) {
        self.deliver_bytes(Bytes::from(data), content);
    }

    /// Sends one chunk to the caller: as it is from the first attempt, rewritten to the stream's
    /// identity (without a second role delta) from a continuation.
    fn deliver_bytes(&mut self, data: Bytes, content: &str) {
        self.driver.delivered.push_str(content);
        self.driver.account.first_output();
        if self.first_chunk.is_none() && Identity::named_in(&data) {
            self.first_chunk = Some(data.clone());
        }
        let frame = if self.driver.machine.route().len() <= 1 {
            self.dialect.chunk(&data)
        } else {
            let rewritten = self.identity().rewrite(&data);
            self.dialect.chunk(&rewritten)
        };
        let Some(frame) = frame else { return };
        // Behind what is held, in order, until the release moves it all out.
        if self.driver.machine.holding_back() || !self.withheld.is_empty() {
            self.withheld.push(frame);
        } else {
            self.out.push(frame);
        }
    }

    /// The stream's identity, read from its first chunk when first needed.
    fn identity(&mut self) -> &Identity {
        let (first, model) = (&self.first_chunk, &self.chat.model);
        self.identity.get_or_insert_with(|| Identity::of(first.as_deref().unwrap_or(b""), model))
    }

    /// Ends the caller's stream: the usage chunk if asked for, a comment naming the route and
    /// `[DONE]`; or an error event saying why it could not end well.
    async fn end(&mut self, finished: Finished, tx: &mpsc::Sender<Bytes>) {
        // On record before the stream's last bytes go out.
        let outcome = match &finished {
            Finished::Answered { .. } => "ok",
            Finished::Failed(Failure::Deadline { .. }) => "deadline",
            Finished::Failed(Failure::Interrupted(_)) => "stream_interrupted",
            Finished::Failed(_) => "api_error",
        };
        let record = self.driver.conclude(200, outcome);
        let unrecorded = crate::account::durable(&self.driver.gw, record).await.err();
        // With the HTTP status each would have had before the stream began.
        let error = match (unrecorded, finished) {
            (Some(e), _) => Some((e.to_string(), "unrecorded", e.status())),
            (None, finished) => match finished {
                Finished::Answered { .. } => None,
                Finished::Failed(Failure::Deadline { .. }) => Some((
                    "the request deadline passed while the answer was streaming".to_owned(),
                    "deadline_exceeded",
                    504,
                )),
                Finished::Failed(Failure::Interrupted(error)) => {
                    self.driver.gw.metrics.continuation(false);
                    Some((
                        format!(
                            "the upstream stream was interrupted after partial output ({error}) and could not be continued"
                        ),
                        "stream_interrupted",
                        502,
                    ))
                }
                Finished::Failed(other) => {
                    let error = crate::chat::api_error(other, &self.driver);
                    Some((error.to_string(), "api_error", error.status()))
                }
            },
        };
        if let Some((message, code, status)) = error {
            let _ = tx.send(self.dialect.error(&message, code, status)).await;
            return;
        }
        if self.chat.include_usage {
            let (prompt, completion) = (self.driver.usage.prompt_tokens, self.driver.usage.completion_tokens);
            let chunk = self.identity().usage_chunk(prompt, completion);
            if let Some(frame) = self.dialect.chunk(chunk.as_bytes()) {
                let _ = tx.send(frame).await;
            }
        }
        let gw = self.driver.gw.clone();
        let mut comment = String::with_capacity(64);
        comment.push_str(": x-switchyard-route: ");
        for (i, d) in self.driver.machine.route().iter().enumerate() {
            if i > 0 {
                comment.push(',');
            }
            comment.push_str(&gw.config.deployment(*d).name);
        }
        if self.n_continued > 0 {
            tracing::info!(message = "Stream answered by more than one deployment.", route = &comment[22..]);
        }
        comment.push_str("\n\n");
        let _ = tx.send(Bytes::from(comment)).await;
        if let Some(done) = self.dialect.done() {
            let _ = tx.send(done).await;
        }
        gw.metrics.duration(D::API, self.started.elapsed());
    }
}
