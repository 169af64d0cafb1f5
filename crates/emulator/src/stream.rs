//! Streamed answers, for every protocol: a task paces an [`Answer`]'s pieces with the
//! deployment's timing as canonical stream events, which the protocol's [`Encode`] writes
//! (SSE chunks, Anthropic events, eventstream frames), and plays the stream faults: a stall,
//! a cut connection, one malformed event, an end without the protocol's last event. Every wait
//! is a tokio timer, so a paused test clock sees the timing exactly.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use switchyard_core::config::FaultKind;
use switchyard_wire::canonical::{BlockKind, StreamEvent};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::answer::{Content, Plan};
use crate::body::BodyItem;
use crate::server::{HANG, aborted, is_down_for_all};
use crate::{EmulatedDeployment, Seen};

/// Writes canonical stream events in a protocol's framing.
pub(crate) trait Encode: Send + 'static {
    /// Appends the bytes of `event` (possibly none) to `out`.
    fn encode(&mut self, event: &StreamEvent, out: &mut Vec<u8>);
    /// One event the protocol's decoders cannot read (the malformed-chunk fault).
    fn malformed(&mut self) -> Vec<u8>;
}

/// A protocol's stream writer whose last event carries the answer's end (Gemini's and OCI's:
/// the finish reason and usage ride on it).
pub(crate) trait WriteEvent: Send + 'static {
    fn write(&mut self, event: &StreamEvent, out: &mut Vec<u8>);
}

/// A stream whose end (what the answer's `MessageDelta` is written as) is held until the
/// stream's `MessageStop`, so that a stream that never ends lacks its finish reason, as a cut
/// one does from such a provider.
pub(crate) struct HeldEnd<W> {
    writer: W,
    end: Option<StreamEvent>,
    /// One event the protocol's decoders cannot read.
    malformed: &'static [u8],
}

impl<W: WriteEvent> HeldEnd<W> {
    pub(crate) fn new(writer: W, malformed: &'static [u8]) -> HeldEnd<W> {
        HeldEnd { writer, end: None, malformed }
    }
}

impl<W: WriteEvent> Encode for HeldEnd<W> {
    fn encode(&mut self, event: &StreamEvent, out: &mut Vec<u8>) {
        match event {
            StreamEvent::MessageDelta { .. } => self.end = Some(event.clone()),
            StreamEvent::MessageStop => {
                if let Some(end) = self.end.take() {
                    self.writer.write(&end, out);
                }
            }
            _ => self.writer.write(event, out),
        }
    }

    fn malformed(&mut self) -> Vec<u8> {
        self.malformed.to_vec()
    }
}

/// A stream to play: the plan, and its opening event (`MessageStart`, with the protocol's id).
pub(crate) struct Player<E> {
    pub(crate) dep: Arc<EmulatedDeployment>,
    pub(crate) plan: Plan,
    pub(crate) start: StreamEvent,
    pub(crate) encoder: E,
}

impl<E: Encode> Player<E> {
    fn block(&self) -> BlockKind {
        match &self.plan.answer.content {
            Content::Text(_) => BlockKind::Text,
            Content::Tool { id, name, .. } => BlockKind::ToolUse { id: id.clone(), name: name.clone() },
        }
    }

    fn delta(&self, piece: &str) -> StreamEvent {
        match &self.plan.answer.content {
            Content::Text(_) => StreamEvent::TextDelta { index: 0, text: piece.to_owned() },
            Content::Tool { .. } => StreamEvent::ToolInputDelta { index: 0, partial_json: piece.to_owned() },
        }
    }

    fn record(&self, outcome: Seen) {
        self.dep.record(outcome, true, self.plan.prefill);
    }

    /// Sends the stream into `tx`, one write per piece, on the plan's schedule.
    pub(crate) async fn run(mut self, tx: mpsc::Sender<BodyItem>) {
        let start = Instant::now();
        let mut outcome = self.plan.outcome;
        let pieces = self.plan.answer.pieces().to_vec();
        for (i, piece) in pieces.iter().enumerate() {
            let i = i as u32;
            for fault in &self.plan.faults {
                match *fault {
                    FaultKind::Cut { after_tokens } if after_tokens == i => {
                        self.record(Seen::Cut);
                        flushed(&tx).await;
                        let _ = tx.send(Err(aborted())).await;
                        return;
                    }
                    FaultKind::Stall { after_tokens, duration } if after_tokens == i => {
                        outcome = Seen::Stalled;
                        tokio::select! {
                            _ = tokio::time::sleep(duration.unwrap_or(HANG)) => (),
                            _ = tx.closed() => {
                                self.record(Seen::Stalled);
                                return;
                            }
                        }
                    }
                    FaultKind::MalformedChunk { after_tokens } if after_tokens == i => {
                        outcome = Seen::Malformed;
                        if tx.send(Ok(Bytes::from(self.encoder.malformed()))).await.is_err() {
                            return;
                        }
                    }
                    _ => (),
                }
            }
            tokio::time::sleep_until(start + self.plan.ttft + self.plan.per_token * i).await;
            if is_down_for_all(&self.dep) {
                // An outage cuts the streams in flight too.
                self.record(Seen::Cut);
                let _ = tx.send(Err(aborted())).await;
                return;
            }
            let mut out = Vec::new();
            if i == 0 {
                let block = StreamEvent::BlockStart { index: 0, block: self.block() };
                self.encoder.encode(&self.start, &mut out);
                self.encoder.encode(&block, &mut out);
            }
            let delta = self.delta(piece);
            self.encoder.encode(&delta, &mut out);
            if tx.send(Ok(Bytes::from(out))).await.is_err() {
                return;
            }
        }
        let mut out = Vec::new();
        if pieces.is_empty() {
            tokio::time::sleep_until(start + self.plan.ttft).await;
            self.encoder.encode(&self.start, &mut out);
        } else {
            self.encoder.encode(&StreamEvent::BlockStop { index: 0 }, &mut out);
        }
        let answer = &self.plan.answer;
        let end = StreamEvent::MessageDelta { finish: answer.finish.clone(), usage: Some(answer.usage) };
        self.encoder.encode(&end, &mut out);
        if tx.send(Ok(Bytes::from(out))).await.is_err() {
            return;
        }
        if self.plan.faults.iter().any(|f| matches!(f, FaultKind::NoDone)) {
            self.record(Seen::NoDone);
            tokio::select! {
                _ = tokio::time::sleep(HANG) => (),
                _ = tx.closed() => (),
            }
            return;
        }
        self.record(outcome);
        let mut out = Vec::new();
        self.encoder.encode(&StreamEvent::MessageStop, &mut out);
        let _ = tx.send(Ok(Bytes::from(out))).await;
    }
}

/// Waits (briefly, bounded) until the pieces sent so far have left for the socket, so that a
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
