//! ConverseStream events ⇄ canonical stream events. Each event is the JSON payload of one
//! eventstream message, named by its `:event-type` (or, for an exception, `:exception-type`)
//! header; the framing is the caller's.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::error::{exception_type, read_exception};
use super::{RawUsage, read_stop_reason, write_stop, write_usage};
use crate::canonical::{BlockKind, DecodeError, FinishReason, StreamCheck, StreamEvent, Usage};

#[derive(Deserialize)]
struct MessageStart {
    #[serde(default)]
    role: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BlockStart {
    content_block_index: u32,
    #[serde(default)]
    start: Option<Map<String, Value>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ToolStart {
    tool_use_id: String,
    name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BlockDelta {
    content_block_index: u32,
    delta: AnyDelta,
}

/// A block's delta: one carried, or another kind (`reasoningContent` from a reasoning model,
/// `citation`), which is skipped with its block.
#[derive(Deserialize)]
#[serde(untagged)]
enum AnyDelta {
    Known(Delta),
    Other(serde::de::IgnoredAny),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
enum Delta {
    Text(String),
    ToolUse(ToolDelta),
}

#[derive(Deserialize)]
struct ToolDelta {
    input: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BlockStop {
    content_block_index: u32,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageStop {
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    additional_model_response_fields: Option<Value>,
}

#[derive(Deserialize)]
struct Metadata {
    #[serde(default)]
    usage: Option<RawUsage>,
}

/// The block open now.
#[derive(Clone, Copy, Debug)]
struct Open {
    /// Bedrock's `contentBlockIndex`, and the canonical index.
    bedrock: u32,
    index: u32,
    tool: bool,
}

/// Turns ConverseStream events into canonical stream events, checking their order.
///
/// `messageStart` carries no id, model or usage: the `MessageStart` has an empty id and
/// model and no usage. Blocks are numbered in the order they begin, whatever Bedrock's
/// indices (which must rise). A text block may begin with its first delta, without a
/// `contentBlockStart`; a block still open when another begins or the message stops is
/// closed. `messageStop` is held until `metadata`, whose usage is the whole answer's, and
/// then yields `MessageDelta` and `MessageStop`; [`finish`](Self::finish) yields them
/// without usage when no `metadata` came. Unknown event types are skipped. A payload that is
/// not what its event type says, an event out of order or after the end, or an end before
/// `messageStop` is a [`DecodeError`], after which every call fails.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    check: StreamCheck,
    started: bool,
    open: Option<Open>,
    /// The Bedrock index of the last block begun.
    last: Option<u32>,
    next_block: u32,
    /// `messageStop` came: why the answer ended.
    stopped: Option<FinishReason>,
    failed: bool,
    /// Bedrock's indices of the blocks skipped (reasoning, citations).
    skipped: Vec<u32>,
}

// === impl StreamDecoder ===

impl StreamDecoder {
    pub fn new() -> StreamDecoder {
        StreamDecoder::default()
    }

    /// Takes one `:message-type: event` message: its `:event-type` and payload. The
    /// canonical events it completes are appended to `out`.
    pub fn push_event(
        &mut self,
        event_type: &str,
        payload: &[u8],
        out: &mut Vec<StreamEvent>,
    ) -> Result<(), DecodeError> {
        self.guard(|this| this.event(event_type, payload, out))
    }

    /// Takes one `:message-type: exception` message (`throttlingException`, ...): a
    /// [`StreamEvent::Error`] of its class, which ends the stream.
    pub fn push_exception(
        &mut self,
        exception_type: &str,
        payload: &[u8],
        out: &mut Vec<StreamEvent>,
    ) -> Result<(), DecodeError> {
        self.guard(|this| {
            this.stopped = None;
            this.emit(StreamEvent::Error(read_exception(exception_type, payload)), out)
        })
    }

    /// Ends the stream: an error unless it reached `messageStop` (the held `MessageDelta`,
    /// without usage, and `MessageStop` are appended when no `metadata` came) or an exception.
    pub fn finish(&mut self, out: &mut Vec<StreamEvent>) -> Result<(), DecodeError> {
        self.guard(|this| {
            if this.check.is_done() {
                return Ok(());
            }
            match this.stopped.take() {
                Some(finish) => this.end(finish, None, out),
                None => Err(DecodeError::new("the stream ended before messageStop")),
            }
        })
    }

    fn guard(&mut self, f: impl FnOnce(&mut Self) -> Result<(), DecodeError>) -> Result<(), DecodeError> {
        if self.failed {
            return Err(DecodeError::new("the stream already failed"));
        }
        let result = f(self);
        self.failed = result.is_err();
        result
    }

    fn emit(&mut self, event: StreamEvent, out: &mut Vec<StreamEvent>) -> Result<(), DecodeError> {
        self.check.check(&event)?;
        out.push(event);
        Ok(())
    }

    fn event(&mut self, kind: &str, payload: &[u8], out: &mut Vec<StreamEvent>) -> Result<(), DecodeError> {
        let known = matches!(
            kind,
            "messageStart"
                | "contentBlockStart"
                | "contentBlockDelta"
                | "contentBlockStop"
                | "messageStop"
                | "metadata"
        );
        if !known {
            return Ok(());
        }
        if self.check.is_done() {
            return Err(DecodeError::new(format!("{kind} after the end of the stream")));
        }
        if self.stopped.is_some() && kind != "metadata" {
            return Err(DecodeError::new(format!("{kind} after messageStop")));
        }
        if !self.started && kind != "messageStart" {
            return Err(DecodeError::new(format!("{kind} before messageStart")));
        }
        match kind {
            "messageStart" => {
                let start: MessageStart = parse(payload, kind)?;
                if let Some(role) = start.role.filter(|r| r != "assistant") {
                    return Err(DecodeError::new(format!("a message in the role '{role}', not 'assistant'")));
                }
                self.started = true;
                self.emit(StreamEvent::MessageStart { id: String::new(), model: String::new(), usage: None }, out)
            }
            "contentBlockStart" => {
                let start: BlockStart = parse(payload, kind)?;
                let block = block_kind(start.start.unwrap_or_default())?;
                self.begin(start.content_block_index, block, out).map(|_| ())
            }
            "contentBlockDelta" => {
                let delta: BlockDelta = parse(payload, kind)?;
                let at = delta.content_block_index;
                match delta.delta {
                    AnyDelta::Known(known) if !self.skipped.contains(&at) => self.delta(at, known, out),
                    AnyDelta::Known(_) => Err(DecodeError::new(format!("a delta of another kind in block {at}"))),
                    AnyDelta::Other(_) if self.open.is_some_and(|o| o.bedrock == at) => {
                        Err(DecodeError::new(format!("a delta of another kind in block {at}")))
                    }
                    AnyDelta::Other(_) => {
                        if !self.skipped.contains(&at) {
                            if self.skipped.len() >= MAX_SKIPPED {
                                return Err(DecodeError::new("too many blocks of kinds not carried"));
                            }
                            self.skipped.push(at);
                        }
                        Ok(())
                    }
                }
            }
            "contentBlockStop" => {
                let stop: BlockStop = parse(payload, kind)?;
                if self.skipped.contains(&stop.content_block_index) {
                    return Ok(());
                }
                match self.open {
                    Some(open) if open.bedrock == stop.content_block_index => self.close(out),
                    Some(_) | None => Err(DecodeError::new(format!(
                        "contentBlockStop of block {}, which is not open",
                        stop.content_block_index
                    ))),
                }
            }
            "messageStop" => {
                let stop: MessageStop = parse(payload, kind)?;
                self.close(out)?;
                self.stopped =
                    Some(read_stop_reason(stop.stop_reason.as_deref(), stop.additional_model_response_fields.as_ref()));
                Ok(())
            }
            _ => {
                let metadata: Metadata = parse(payload, kind)?;
                let Some(finish) = self.stopped.take() else {
                    return Err(DecodeError::new("metadata before messageStop"));
                };
                self.end(finish, metadata.usage.map(|u| u.canonical()), out)
            }
        }
    }

    /// A delta of the block at Bedrock's index `at`: a text delta may begin its block.
    fn delta(&mut self, at: u32, delta: Delta, out: &mut Vec<StreamEvent>) -> Result<(), DecodeError> {
        match (delta, self.open) {
            (Delta::Text(text), Some(open)) if open.bedrock == at && !open.tool => self.text(open.index, text, out),
            (Delta::Text(_), Some(open)) if open.bedrock == at => {
                Err(DecodeError::new(format!("text in block {at}, a tool call")))
            }
            (Delta::Text(text), _) => {
                let index = self.begin(at, BlockKind::Text, out)?;
                self.text(index, text, out)
            }
            (Delta::ToolUse(_), Some(open)) if open.bedrock == at && !open.tool => {
                Err(DecodeError::new(format!("tool input in block {at}, a text block")))
            }
            (Delta::ToolUse(tool), Some(open)) if open.bedrock == at => {
                if tool.input.is_empty() {
                    return Ok(());
                }
                self.emit(StreamEvent::ToolInputDelta { index: open.index, partial_json: tool.input }, out)
            }
            (Delta::ToolUse(_), _) => Err(DecodeError::new(format!("tool input for block {at}, which is not open"))),
        }
    }

    /// Begins a block at Bedrock's index `at`, closing the one open; returns its index.
    fn begin(&mut self, at: u32, block: BlockKind, out: &mut Vec<StreamEvent>) -> Result<u32, DecodeError> {
        if self.last.is_some_and(|last| at <= last) {
            return Err(DecodeError::new(format!("block {at} began after block {}", self.last.unwrap_or(at))));
        }
        self.close(out)?;
        let index = self.next_block;
        let tool = matches!(block, BlockKind::ToolUse { .. });
        self.emit(StreamEvent::BlockStart { index, block }, out)?;
        self.open = Some(Open { bedrock: at, index, tool });
        self.last = Some(at);
        self.next_block += 1;
        Ok(index)
    }

    fn text(&mut self, index: u32, text: String, out: &mut Vec<StreamEvent>) -> Result<(), DecodeError> {
        if text.is_empty() {
            return Ok(());
        }
        self.emit(StreamEvent::TextDelta { index, text }, out)
    }

    fn close(&mut self, out: &mut Vec<StreamEvent>) -> Result<(), DecodeError> {
        match self.open.take() {
            Some(open) => self.emit(StreamEvent::BlockStop { index: open.index }, out),
            None => Ok(()),
        }
    }

    fn end(
        &mut self,
        finish: FinishReason,
        usage: Option<Usage>,
        out: &mut Vec<StreamEvent>,
    ) -> Result<(), DecodeError> {
        self.emit(StreamEvent::MessageDelta { finish, usage }, out)?;
        self.emit(StreamEvent::MessageStop, out)
    }
}

/// The most blocks of kinds not carried one answer may skip.
const MAX_SKIPPED: usize = 1024;

/// What a `contentBlockStart` begins: a tool call, or (with an empty `start`) text.
fn block_kind(start: Map<String, Value>) -> Result<BlockKind, DecodeError> {
    match start.into_iter().find(|(_, v)| !v.is_null()) {
        None => Ok(BlockKind::Text),
        Some((key, value)) if key == "toolUse" => {
            let tool: ToolStart = serde_json::from_value(value)
                .map_err(|e| DecodeError::new(format!("a malformed contentBlockStart event: {e}")))?;
            Ok(BlockKind::ToolUse { id: tool.tool_use_id, name: tool.name })
        }
        Some((key, _)) => Err(DecodeError::new(format!("a '{key}' block, which is not supported"))),
    }
}

fn parse<T: for<'de> Deserialize<'de>>(payload: &[u8], kind: &str) -> Result<T, DecodeError> {
    serde_json::from_slice(payload).map_err(|e| DecodeError::new(format!("a malformed {kind} event: {e}")))
}

/// One ConverseStream message: an event (`exception` false, `event_type` its `:event-type`)
/// or an exception (`event_type` its `:exception-type`), and its JSON payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedEvent {
    pub exception: bool,
    pub event_type: &'static str,
    pub payload: Vec<u8>,
}

/// Writes canonical stream events as ConverseStream events, in Bedrock's order.
///
/// `MessageStart` is `messageStart` (`role` only); a text block has no `contentBlockStart`,
/// as Bedrock sends none: its first delta begins it (an empty block gets an empty delta, so
/// that it exists). `MessageDelta` is `messageStop` then `metadata` (usage, zeros when not
/// known, and a latency of zero); `MessageStop` and `Ping` write nothing; `Error` is an
/// exception.
#[derive(Debug, Default)]
pub struct StreamEncoder {
    /// A text block has begun and nothing of it is written yet.
    unwritten: Option<u32>,
}

// === impl StreamEncoder ===

impl StreamEncoder {
    pub fn new() -> StreamEncoder {
        StreamEncoder::default()
    }

    /// Appends the messages of `event` (possibly none) to `out`.
    pub fn encode(&mut self, event: &StreamEvent, out: &mut Vec<EncodedEvent>) {
        match event {
            StreamEvent::MessageStart { .. } => push(out, "messageStart", &json!({"role": "assistant"})),
            StreamEvent::BlockStart { index, block: BlockKind::Text } => self.unwritten = Some(*index),
            StreamEvent::BlockStart { index, block: BlockKind::ToolUse { id, name } } => {
                let start = json!({"toolUse": {"toolUseId": id, "name": name}});
                push(out, "contentBlockStart", &json!({"contentBlockIndex": index, "start": start}));
            }
            StreamEvent::TextDelta { index, text } => {
                self.unwritten = None;
                push(out, "contentBlockDelta", &json!({"contentBlockIndex": index, "delta": {"text": text}}));
            }
            StreamEvent::ToolInputDelta { index, partial_json } => {
                let delta = json!({"toolUse": {"input": partial_json}});
                push(out, "contentBlockDelta", &json!({"contentBlockIndex": index, "delta": delta}));
            }
            StreamEvent::BlockStop { index } => {
                if self.unwritten.take() == Some(*index) {
                    push(out, "contentBlockDelta", &json!({"contentBlockIndex": index, "delta": {"text": ""}}));
                }
                push(out, "contentBlockStop", &json!({"contentBlockIndex": index}));
            }
            StreamEvent::MessageDelta { finish, usage } => {
                let mut stop = Map::new();
                write_stop(finish, &mut stop);
                push(out, "messageStop", &Value::Object(stop));
                let metadata = json!({"usage": write_usage(&usage.unwrap_or_default()), "metrics": {"latencyMs": 0}});
                push(out, "metadata", &metadata);
            }
            StreamEvent::MessageStop | StreamEvent::Ping => (),
            StreamEvent::Error(error) => out.push(EncodedEvent {
                exception: true,
                event_type: exception_type(error),
                payload: json!({"message": error.message}).to_string().into_bytes(),
            }),
        }
    }
}

fn push(out: &mut Vec<EncodedEvent>, event_type: &'static str, payload: &Value) {
    out.push(EncodedEvent { exception: false, event_type, payload: payload.to_string().into_bytes() });
}
