//! Anthropic Messages SSE streams ⇄ canonical stream events.

use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{error_type, read_error};
use super::{RawUsage, read_stop_reason, stop_reason, write_usage};
use crate::canonical::{BlockKind, DecodeError, StreamCheck, StreamEvent, Usage};
use crate::sse::SseEvent;

#[derive(Deserialize)]
struct MessageStart {
    message: StartMessage,
}

#[derive(Deserialize)]
struct StartMessage {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    usage: Option<RawUsage>,
}

#[derive(Deserialize)]
struct BlockStart {
    index: u32,
    content_block: StartBlock,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StartBlock {
    Text {
        #[serde(default)]
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
    },
    /// `thinking`, `redacted_thinking`, server tools' blocks: not carried, skipped whole.
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct BlockDelta {
    index: u32,
    delta: DeltaKind,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum DeltaKind {
    TextDelta {
        text: String,
    },
    InputJsonDelta {
        partial_json: String,
    },
    /// `thinking_delta`, `signature_delta`, `citations_delta`: skipped.
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct BlockStop {
    index: u32,
}

#[derive(Deserialize)]
struct MessageDelta {
    delta: MessageDeltaBody,
    #[serde(default)]
    usage: Option<RawUsage>,
}

#[derive(Deserialize)]
struct MessageDeltaBody {
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    stop_sequence: Option<String>,
}

/// Turns the events of a Messages stream into canonical stream events, checking their order.
/// The `MessageDelta`'s usage is the whole answer's: the `message_start`'s input counts,
/// updated by what the `message_delta` reports. Unknown event types are skipped, as
/// Anthropic's versioning asks; data that is not JSON, a known event that does not parse or
/// comes out of order, or an end before `message_stop` is a [`DecodeError`], after which
/// every call fails.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    check: StreamCheck,
    start_usage: RawUsage,
    failed: bool,
    /// Anthropic's indices of the blocks skipped (thinking, ...); the others are numbered
    /// without them.
    skipped: Vec<u32>,
}

// === impl StreamDecoder ===

impl StreamDecoder {
    pub fn new() -> StreamDecoder {
        StreamDecoder::default()
    }

    /// Takes one SSE event; the canonical events it yields are appended to `out`.
    pub fn push(&mut self, event: &SseEvent, out: &mut Vec<StreamEvent>) -> Result<(), DecodeError> {
        if self.failed {
            return Err(DecodeError::new("the stream already failed"));
        }
        let result = self.event(event, out);
        self.failed = result.is_err();
        result
    }

    /// Ends the stream: an error unless it ended with `message_stop` or an `error` event.
    pub fn finish(&mut self) -> Result<(), DecodeError> {
        match (self.failed, self.check.is_done()) {
            (true, _) => Err(DecodeError::new("the stream already failed")),
            (false, true) => Ok(()),
            (false, false) => Err(DecodeError::new("the stream ended before message_stop")),
        }
    }

    fn emit(&mut self, event: StreamEvent, out: &mut Vec<StreamEvent>) -> Result<(), DecodeError> {
        self.check.check(&event)?;
        out.push(event);
        Ok(())
    }

    fn event(&mut self, event: &SseEvent, out: &mut Vec<StreamEvent>) -> Result<(), DecodeError> {
        let data = event.data.trim();
        if data.is_empty() {
            return Ok(());
        }
        let value: Value =
            serde_json::from_str(data).map_err(|e| DecodeError::new(format!("a stream event is not JSON: {e}")))?;
        let Some(kind) = value.get("type").and_then(Value::as_str).map(str::to_owned) else {
            return Err(DecodeError::new("a stream event without a type"));
        };
        match kind.as_str() {
            "message_start" => {
                let start: MessageStart = parse(value, &kind)?;
                self.start_usage = start.message.usage.unwrap_or_default();
                let usage = Usage { output_tokens: 0, ..self.start_usage.canonical() };
                let event = StreamEvent::MessageStart {
                    id: start.message.id.unwrap_or_default(),
                    model: start.message.model.unwrap_or_default(),
                    usage: Some(usage),
                };
                self.emit(event, out)
            }
            "content_block_start" => {
                let start: BlockStart = parse(value, &kind)?;
                let index = self.index(start.index);
                match start.content_block {
                    StartBlock::Other if self.skipped.len() >= MAX_SKIPPED => {
                        Err(DecodeError::new("too many blocks of kinds not carried"))
                    }
                    StartBlock::Other => {
                        self.skipped.push(start.index);
                        Ok(())
                    }
                    StartBlock::Text { text } => {
                        self.emit(StreamEvent::BlockStart { index, block: BlockKind::Text }, out)?;
                        if !text.is_empty() {
                            self.emit(StreamEvent::TextDelta { index, text }, out)?;
                        }
                        Ok(())
                    }
                    StartBlock::ToolUse { id, name } => {
                        self.emit(StreamEvent::BlockStart { index, block: BlockKind::ToolUse { id, name } }, out)
                    }
                }
            }
            "content_block_delta" => {
                let delta: BlockDelta = parse(value, &kind)?;
                if self.skipped.contains(&delta.index) {
                    return Ok(());
                }
                let index = self.index(delta.index);
                match delta.delta {
                    DeltaKind::Other => Ok(()),
                    DeltaKind::TextDelta { text } if text.is_empty() => Ok(()),
                    DeltaKind::TextDelta { text } => self.emit(StreamEvent::TextDelta { index, text }, out),
                    DeltaKind::InputJsonDelta { partial_json } if partial_json.is_empty() => Ok(()),
                    DeltaKind::InputJsonDelta { partial_json } => {
                        self.emit(StreamEvent::ToolInputDelta { index, partial_json }, out)
                    }
                }
            }
            "content_block_stop" => {
                let stop: BlockStop = parse(value, &kind)?;
                if self.skipped.contains(&stop.index) {
                    return Ok(());
                }
                self.emit(StreamEvent::BlockStop { index: self.index(stop.index) }, out)
            }
            "message_delta" => {
                let delta: MessageDelta = parse(value, &kind)?;
                let usage = self.start_usage.updated(delta.usage.unwrap_or_default()).canonical();
                let finish = read_stop_reason(delta.delta.stop_reason.as_deref(), delta.delta.stop_sequence);
                self.emit(StreamEvent::MessageDelta { finish, usage: Some(usage) }, out)
            }
            "message_stop" => self.emit(StreamEvent::MessageStop, out),
            "ping" => self.emit(StreamEvent::Ping, out),
            "error" => {
                let error = read_error(None, &value, data.as_bytes());
                self.emit(StreamEvent::Error(error), out)
            }
            _ => Ok(()),
        }
    }
}

/// The most blocks of kinds not carried one answer may skip.
const MAX_SKIPPED: usize = 1024;

impl StreamDecoder {
    /// The canonical index of Anthropic's block `index`: without the skipped ones before it.
    fn index(&self, index: u32) -> u32 {
        let before = self.skipped.iter().filter(|s| **s < index).count();
        index.saturating_sub(u32::try_from(before).unwrap_or(u32::MAX))
    }
}

fn parse<T: for<'de> Deserialize<'de>>(value: Value, kind: &str) -> Result<T, DecodeError> {
    serde_json::from_value(value).map_err(|e| DecodeError::new(format!("a malformed {kind} event: {e}")))
}

/// Decodes a whole Messages stream's bytes.
pub fn decode_stream(bytes: &[u8]) -> Result<Vec<StreamEvent>, DecodeError> {
    crate::canonical::decode_sse(StreamDecoder::new(), bytes)
}

impl crate::canonical::SseDecoder for StreamDecoder {
    fn push(&mut self, event: &SseEvent, out: &mut Vec<StreamEvent>) -> Result<(), DecodeError> {
        StreamDecoder::push(self, event, out)
    }

    fn finish(&mut self) -> Result<(), DecodeError> {
        StreamDecoder::finish(self)
    }
}

/// Writes canonical stream events as a Messages SSE stream, one `event:`/`data:` pair each.
/// Usage that is not known is written as zeros (Anthropic's `usage` fields are required).
#[derive(Debug, Default)]
pub struct StreamEncoder {}

// === impl StreamEncoder ===

impl StreamEncoder {
    pub fn new() -> StreamEncoder {
        StreamEncoder {}
    }

    /// Appends the bytes of `event` to `out`.
    pub fn encode(&mut self, event: &StreamEvent, out: &mut Vec<u8>) {
        match event {
            StreamEvent::MessageStart { id, model, usage } => {
                let data = json!({"type": "message_start", "message": {
                    "id": id,
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [],
                    "stop_reason": null,
                    "stop_sequence": null,
                    "usage": write_usage(&usage.unwrap_or_default()),
                }});
                sse("message_start", &data, out);
            }
            StreamEvent::BlockStart { index, block } => {
                let block = match block {
                    BlockKind::Text => json!({"type": "text", "text": ""}),
                    BlockKind::ToolUse { id, name } => json!({"type": "tool_use", "id": id, "name": name, "input": {}}),
                };
                let data = json!({"type": "content_block_start", "index": index, "content_block": block});
                sse("content_block_start", &data, out);
            }
            StreamEvent::TextDelta { index, text } => {
                let delta = json!({"type": "text_delta", "text": text});
                sse(
                    "content_block_delta",
                    &json!({"type": "content_block_delta", "index": index, "delta": delta}),
                    out,
                );
            }
            StreamEvent::ToolInputDelta { index, partial_json } => {
                let delta = json!({"type": "input_json_delta", "partial_json": partial_json});
                sse(
                    "content_block_delta",
                    &json!({"type": "content_block_delta", "index": index, "delta": delta}),
                    out,
                );
            }
            StreamEvent::BlockStop { index } => {
                sse("content_block_stop", &json!({"type": "content_block_stop", "index": index}), out);
            }
            StreamEvent::MessageDelta { finish, usage } => {
                let (reason, sequence) = stop_reason(finish);
                let data = json!({
                    "type": "message_delta",
                    "delta": {"stop_reason": reason, "stop_sequence": sequence},
                    "usage": write_usage(&usage.unwrap_or_default()),
                });
                sse("message_delta", &data, out);
            }
            StreamEvent::MessageStop => sse("message_stop", &json!({"type": "message_stop"}), out),
            StreamEvent::Ping => sse("ping", &json!({"type": "ping"}), out),
            StreamEvent::Error(error) => {
                let (_, kind) = error_type(error);
                let data = json!({"type": "error", "error": {"type": kind, "message": error.message}});
                sse("error", &data, out);
            }
        }
    }
}

fn sse(name: &str, data: &Value, out: &mut Vec<u8>) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    out.extend_from_slice(data.to_string().as_bytes());
    out.extend_from_slice(b"\n\n");
}
