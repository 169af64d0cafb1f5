//! One attempt's IO as a pollable thing: send the request, then read a whole answer or an event
//! stream, reporting each step as an [`IoEvent`]. No timers here: the core's machine times every
//! stage, and the driver stops an attempt by dropping its IO. What is read goes through the
//! deployment's [`AnswerDecoder`]: OpenAI's passes through, other protocols come out as OpenAI
//! chunks. Embeddings a deployment makes by calls in its own API come whole from
//! `Upstream::embed`, headers when its first call answered.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::http::header;
use bytes::Bytes;
use http_body::Body as _;
use hyper::body::Incoming;
use switchyard_core::AttemptError;
use switchyard_core::state::Headroom;
use switchyard_providers::{AnswerDecoder, StreamFault};
use tokio::sync::oneshot;

/// Most bytes read from a whole upstream answer.
const MAX_UPSTREAM_BODY: usize = 64 * 1024 * 1024;

type Sending =
    Pin<Box<dyn Future<Output = Result<(switchyard_providers::Response, AnswerDecoder), AttemptError>> + Send>>;

/// Embeddings made by calls in the deployment's own API (`Upstream::embed`): the merged answer.
pub(crate) type Embedding = Pin<Box<dyn Future<Output = Result<Bytes, AttemptError>> + Send>>;

/// What an attempt's IO produced.
#[derive(Debug)]
pub(crate) enum IoEvent {
    /// Response headers, with a successful status (and, for a stream, an event stream).
    Headers,
    /// One upstream event's data.
    Event(String),
    /// The stream ended.
    End,
    /// The whole answer.
    Whole(Bytes),
    /// The connection broke mid-body.
    Cut,
    /// An upstream event past the parser's bounds, or not the protocol's: a garbage answer.
    Garbage,
    /// The attempt failed before or at its headers.
    Failed(AttemptError),
}

enum State {
    Sending(Sending),
    Whole {
        body: Incoming,
        buf: Vec<u8>,
        decoder: AnswerDecoder,
    },
    /// `end` is how the stream ends once `queue` is delivered: `End`, `Garbage` or `Failed`.
    Stream {
        body: Incoming,
        decoder: AnswerDecoder,
        queue: VecDeque<String>,
        end: Option<IoEvent>,
    },
    /// Embeddings made by calls: `headers` says when the first call answered.
    Embedding {
        calls: Embedding,
        headers: Option<oneshot::Receiver<()>>,
    },
    /// A whole answer to deliver after its headers.
    Answered(Bytes),
    Over,
}

pub(crate) struct AttemptIo {
    state: State,
    streaming: bool,
    /// Event data decoded, reused between reads.
    decoded: Vec<String>,
    /// What the answer's headers said of the deployment's remaining allowance, until the
    /// driver takes it (with [`IoEvent::Headers`]).
    headroom: Headroom,
}

impl AttemptIo {
    pub(crate) fn sending(send: Sending, streaming: bool) -> AttemptIo {
        AttemptIo { state: State::Sending(send), streaming, decoded: Vec::new(), headroom: Headroom::default() }
    }

    /// Embeddings made by calls in the deployment's own API; `headers` is told when the
    /// first call answered.
    pub(crate) fn embedding(calls: Embedding, headers: oneshot::Receiver<()>) -> AttemptIo {
        let state = State::Embedding { calls, headers: Some(headers) };
        AttemptIo { state, streaming: false, decoded: Vec::new(), headroom: Headroom::default() }
    }

    /// The headroom the answer's headers reported (taken once; nothing when not reported).
    pub(crate) fn take_headroom(&mut self) -> Headroom {
        std::mem::take(&mut self.headroom)
    }

    /// The next event, once; after the last one the IO stays pending (the driver drops it).
    pub(crate) fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<IoEvent> {
        loop {
            match &mut self.state {
                State::Over => return Poll::Pending,
                State::Answered(whole) => {
                    let whole = std::mem::take(whole);
                    self.state = State::Over;
                    return Poll::Ready(IoEvent::Whole(whole));
                }
                State::Embedding { calls, headers } => {
                    if let Some(told) = headers
                        && let Poll::Ready(result) = Pin::new(told).poll(cx)
                    {
                        *headers = None;
                        if result.is_ok() {
                            return Poll::Ready(IoEvent::Headers);
                        }
                    }
                    let heard = headers.is_none();
                    match calls.as_mut().poll(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Err(error)) => {
                            self.state = State::Over;
                            return Poll::Ready(IoEvent::Failed(error));
                        }
                        // Headers come first, whatever order the two were seen in.
                        Poll::Ready(Ok(whole)) if heard => {
                            self.state = State::Over;
                            return Poll::Ready(IoEvent::Whole(whole));
                        }
                        Poll::Ready(Ok(whole)) => {
                            self.state = State::Answered(whole);
                            return Poll::Ready(IoEvent::Headers);
                        }
                    }
                }
                State::Sending(send) => {
                    let (response, decoder) = match send.as_mut().poll(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Err(error)) => {
                            self.state = State::Over;
                            return Poll::Ready(IoEvent::Failed(error));
                        }
                        Poll::Ready(Ok(answer)) => answer,
                    };
                    self.headroom = switchyard_providers::headroom::headroom(response.headers());
                    if self.streaming {
                        let content_type = response.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
                        if !decoder.is_stream(content_type) {
                            self.state = State::Over;
                            let detail = "expected an event stream".into();
                            return Poll::Ready(IoEvent::Failed(AttemptError::InvalidResponse { detail }));
                        }
                        let body = response.into_body();
                        self.state = State::Stream { body, decoder, queue: VecDeque::new(), end: None };
                    } else {
                        self.state = State::Whole { body: response.into_body(), buf: Vec::new(), decoder };
                    }
                    return Poll::Ready(IoEvent::Headers);
                }
                State::Whole { body, buf, decoder } => match Pin::new(&mut *body).poll_frame(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Some(Ok(frame))) => {
                        if let Some(data) = frame.data_ref() {
                            if buf.len().saturating_add(data.len()) > MAX_UPSTREAM_BODY {
                                self.state = State::Over;
                                let detail = "response body too large".into();
                                return Poll::Ready(IoEvent::Failed(AttemptError::InvalidResponse { detail }));
                            }
                            buf.extend_from_slice(data);
                        }
                    }
                    Poll::Ready(Some(Err(_))) => {
                        self.state = State::Over;
                        let detail = "response body cut off".into();
                        return Poll::Ready(IoEvent::Failed(AttemptError::InvalidResponse { detail }));
                    }
                    Poll::Ready(None) => {
                        let whole = decoder.whole(Bytes::from(std::mem::take(buf)));
                        self.state = State::Over;
                        return Poll::Ready(match whole {
                            Ok(whole) => IoEvent::Whole(whole),
                            Err(error) => IoEvent::Failed(error),
                        });
                    }
                },
                State::Stream { body, decoder, queue, end } => {
                    if let Some(data) = queue.pop_front() {
                        return Poll::Ready(IoEvent::Event(data));
                    }
                    if let Some(end) = end.take() {
                        self.state = State::Over;
                        return Poll::Ready(end);
                    }
                    let events = &mut self.decoded;
                    match Pin::new(&mut *body).poll_frame(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Some(Ok(frame))) => {
                            // Trailers carry nothing for these streams; only data frames matter.
                            // What was decoded before a fault is delivered first.
                            if let Some(bytes) = frame.data_ref()
                                && let Err(fault) = decoder.push(bytes, events)
                            {
                                *end = Some(match fault {
                                    StreamFault::Garbage(_) => IoEvent::Garbage,
                                    StreamFault::Failed(error) => IoEvent::Failed(error),
                                });
                            }
                        }
                        Poll::Ready(Some(Err(_))) => {
                            // What the decoder holds still counts (Bedrock's stop waits for
                            // its usage): the relay judges the cut by whether the answer ended.
                            decoder.finish(events);
                            *end = Some(IoEvent::Cut);
                        }
                        Poll::Ready(None) => {
                            decoder.finish(events);
                            *end = Some(IoEvent::End);
                        }
                    }
                    queue.extend(events.drain(..));
                }
            }
        }
    }
}
