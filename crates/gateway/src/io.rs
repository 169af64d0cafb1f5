//! One attempt's IO as a pollable thing: send the request, then read a whole answer or an event
//! stream, reporting each step as an [`IoEvent`]. No timers here: the core's machine times every
//! stage, and the driver stops an attempt by dropping its IO.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::http::header;
use bytes::Bytes;
use http_body::Body as _;
use hyper::body::Incoming;
use switchyard_core::AttemptError;
use switchyard_wire::sse::SseParser;

/// Most bytes read from a whole upstream answer.
const MAX_UPSTREAM_BODY: usize = 64 * 1024 * 1024;

type Sending = Pin<Box<dyn Future<Output = Result<switchyard_providers::Response, AttemptError>> + Send>>;

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
    /// An upstream event past the parser's bounds: a garbage answer.
    Garbage,
    /// The attempt failed before or at its headers.
    Failed(AttemptError),
}

enum State {
    Sending(Sending),
    Whole { body: Incoming, buf: Vec<u8> },
    Stream { body: Incoming, parser: SseParser, queue: VecDeque<String>, ended: bool },
    Over,
}

pub(crate) struct AttemptIo {
    state: State,
    streaming: bool,
}

impl AttemptIo {
    pub(crate) fn sending(send: Sending, streaming: bool) -> AttemptIo {
        AttemptIo { state: State::Sending(send), streaming }
    }

    /// The next event, once; after the last one the IO stays pending (the driver drops it).
    pub(crate) fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<IoEvent> {
        loop {
            match &mut self.state {
                State::Over => return Poll::Pending,
                State::Sending(send) => {
                    let response = match send.as_mut().poll(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Err(error)) => {
                            self.state = State::Over;
                            return Poll::Ready(IoEvent::Failed(error));
                        }
                        Poll::Ready(Ok(response)) => response,
                    };
                    if self.streaming {
                        let is_sse = response
                            .headers()
                            .get(header::CONTENT_TYPE)
                            .and_then(|v| v.to_str().ok())
                            .is_some_and(|v| v.starts_with("text/event-stream"));
                        if !is_sse {
                            self.state = State::Over;
                            let detail = "expected an event stream".into();
                            return Poll::Ready(IoEvent::Failed(AttemptError::InvalidResponse { detail }));
                        }
                        let body = response.into_body();
                        self.state =
                            State::Stream { body, parser: SseParser::default(), queue: VecDeque::new(), ended: false };
                    } else {
                        self.state = State::Whole { body: response.into_body(), buf: Vec::new() };
                    }
                    return Poll::Ready(IoEvent::Headers);
                }
                State::Whole { body, buf } => match Pin::new(&mut *body).poll_frame(cx) {
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
                        let whole = Bytes::from(std::mem::take(buf));
                        self.state = State::Over;
                        return Poll::Ready(IoEvent::Whole(whole));
                    }
                },
                State::Stream { body, parser, queue, ended } => {
                    if let Some(data) = queue.pop_front() {
                        return Poll::Ready(IoEvent::Event(data));
                    }
                    if *ended {
                        self.state = State::Over;
                        return Poll::Ready(IoEvent::End);
                    }
                    let mut events = Vec::new();
                    match Pin::new(&mut *body).poll_frame(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Some(Ok(frame))) => {
                            // Trailers carry nothing for SSE; only data frames matter.
                            if let Some(bytes) = frame.data_ref()
                                && parser.push(bytes, &mut events).is_err()
                            {
                                self.state = State::Over;
                                return Poll::Ready(IoEvent::Garbage);
                            }
                        }
                        Poll::Ready(Some(Err(_))) => {
                            self.state = State::Over;
                            return Poll::Ready(IoEvent::Cut);
                        }
                        Poll::Ready(None) => {
                            parser.finish(&mut events);
                            *ended = true;
                        }
                    }
                    queue.extend(events.into_iter().map(|e| e.data));
                }
            }
        }
    }
}
