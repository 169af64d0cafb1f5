//! OpenAI `chat.completion.chunk` streams ⇄ canonical stream events.

use serde::Deserialize;
use serde_json::{Value, json};

use super::error::read_error;
use super::finish_reason;
use super::read_finish_reason;
use super::response::{RawUsage, write_usage};
use crate::canonical::{BlockKind, DecodeError, ErrorObject, FinishReason, StreamCheck, StreamEvent, Usage};
use crate::sse::{DONE_EVENT, SseEvent};

#[derive(Deserialize)]
struct RawChunk {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    choices: Vec<RawChoice>,
    #[serde(default)]
    usage: Option<RawUsage>,
}

#[derive(Deserialize)]
struct RawChoice {
    #[serde(default)]
    index: u32,
    #[serde(default)]
    delta: Option<RawDelta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct RawDelta {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<RawToolCallDelta>>,
}

#[derive(Deserialize)]
struct RawToolCallDelta {
    #[serde(default)]
    index: Option<u32>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<RawFunctionDelta>,
}

#[derive(Deserialize)]
struct RawFunctionDelta {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
}

/// Turns the events of a Chat Completions stream into canonical stream events.
///
/// Content becomes a text block; each tool call (by its `index`) a tool-use block, started
/// when its id and name arrive and stopped when another block begins or the choice finishes.
/// The `MessageDelta` is sent at `[DONE]`, with the usage of the usage-only final chunk when
/// there is one. A stream that is not JSON, that resumes a finished tool call, has more than
/// one choice or ends without `[DONE]` is a [`DecodeError`]; after one, every call fails.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    check: StreamCheck,
    started: bool,
    /// The block open now: its index and, for a tool call, the call's index.
    open: Option<(u32, Option<u32>)>,
    next_block: u32,
    /// The calls' indices, in the order their blocks started.
    calls: Vec<u32>,
    finish: Option<FinishReason>,
    usage: Option<Usage>,
    failed: bool,
}

// === impl StreamDecoder ===

impl StreamDecoder {
    pub fn new() -> StreamDecoder {
        StreamDecoder::default()
    }

    /// Takes one SSE event; the canonical events it completes are appended to `out`.
    pub fn push(&mut self, event: &SseEvent, out: &mut Vec<StreamEvent>) -> Result<(), DecodeError> {
        if self.failed {
            return Err(DecodeError::new("the stream already failed"));
        }
        let result = self.event(event, out);
        self.failed = result.is_err();
        result
    }

    /// Ends the stream: an error unless it ended with `[DONE]` or an error event.
    pub fn finish(&mut self) -> Result<(), DecodeError> {
        match (self.failed, self.check.is_done(), self.started) {
            (true, _, _) => Err(DecodeError::new("the stream already failed")),
            (false, true, _) => Ok(()),
            (false, false, false) => Err(DecodeError::new("the stream ended before any chunk")),
            (false, false, true) => Err(DecodeError::new("the stream ended without [DONE]")),
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
        if self.check.is_done() {
            return Err(DecodeError::new("data after the end of the stream"));
        }
        if data == "[DONE]" {
            if !self.started {
                return Err(DecodeError::new("[DONE] before any chunk"));
            }
            self.close(out)?;
            let finish = self.finish.take().unwrap_or(FinishReason::Other);
            self.emit(StreamEvent::MessageDelta { finish, usage: self.usage }, out)?;
            return self.emit(StreamEvent::MessageStop, out);
        }
        let value: Value =
            serde_json::from_str(data).map_err(|e| DecodeError::new(format!("a stream chunk is not JSON: {e}")))?;
        if value.get("error").is_some_and(|e| !e.is_null()) {
            let error = read_error(None, &value, data.as_bytes());
            return self.emit(StreamEvent::Error(error), out);
        }
        let chunk: RawChunk =
            serde_json::from_value(value).map_err(|e| DecodeError::new(format!("not a chat completion chunk: {e}")))?;
        if !self.started {
            if chunk.choices.is_empty() && chunk.usage.is_none() {
                // Azure's first chunk holds only the prompt filter's results.
                return Ok(());
            }
            self.started = true;
            let start = StreamEvent::MessageStart {
                id: chunk.id.clone().unwrap_or_default(),
                model: chunk.model.clone().unwrap_or_default(),
                usage: None,
            };
            self.emit(start, out)?;
        }
        if chunk.choices.len() > 1 || chunk.choices.first().is_some_and(|c| c.index != 0) {
            return Err(DecodeError::new("a stream with more than one choice"));
        }
        if let Some(choice) = chunk.choices.into_iter().next() {
            if let Some(delta) = choice.delta {
                for text in [delta.content, delta.refusal].into_iter().flatten().filter(|t| !t.is_empty()) {
                    self.text(text, out)?;
                }
                for call in delta.tool_calls.into_iter().flatten() {
                    self.tool_call(call, out)?;
                }
            }
            if let Some(reason) = choice.finish_reason {
                self.close(out)?;
                self.finish = Some(read_finish_reason(Some(&reason)));
            }
        }
        if let Some(usage) = chunk.usage {
            self.usage = Some(usage.canonical());
        }
        Ok(())
    }

    fn text(&mut self, text: String, out: &mut Vec<StreamEvent>) -> Result<(), DecodeError> {
        if self.finish.is_some() {
            return Err(DecodeError::new("content after the finish reason"));
        }
        let index = match self.open {
            Some((index, None)) => index,
            Some((_, Some(_))) | None => {
                self.close(out)?;
                self.start(BlockKind::Text, None, out)?
            }
        };
        self.emit(StreamEvent::TextDelta { index, text }, out)
    }

    fn tool_call(&mut self, call: RawToolCallDelta, out: &mut Vec<StreamEvent>) -> Result<(), DecodeError> {
        if self.finish.is_some() {
            return Err(DecodeError::new("a tool call after the finish reason"));
        }
        let (name, arguments) = match call.function {
            Some(f) => (f.name, f.arguments),
            None => (None, None),
        };
        let open_call = self.open.and_then(|(index, call)| call.map(|c| (index, c)));
        let key = match (call.index, &call.id, open_call) {
            (Some(key), _, _) => key,
            // Without an index: a new call when it has an id, else the open one.
            (None, Some(_), _) => self.calls.iter().max().map_or(0, |k| k + 1),
            (None, None, Some((_, key))) => key,
            (None, None, None) => return Err(DecodeError::new("a tool call delta without an index or an id")),
        };
        let index = match open_call {
            Some((index, open)) if open == key => index,
            Some(_) | None => {
                if self.calls.contains(&key) {
                    return Err(DecodeError::new(format!("tool call {key} resumed after another block")));
                }
                let (Some(id), Some(name)) = (call.id, name.filter(|n| !n.is_empty())) else {
                    return Err(DecodeError::new(format!("tool call {key} began without an id and a name")));
                };
                self.close(out)?;
                self.calls.push(key);
                self.start(BlockKind::ToolUse { id, name }, Some(key), out)?
            }
        };
        match arguments.filter(|a| !a.is_empty()) {
            Some(partial_json) => self.emit(StreamEvent::ToolInputDelta { index, partial_json }, out),
            None => Ok(()),
        }
    }

    fn start(&mut self, block: BlockKind, call: Option<u32>, out: &mut Vec<StreamEvent>) -> Result<u32, DecodeError> {
        let index = self.next_block;
        self.emit(StreamEvent::BlockStart { index, block }, out)?;
        self.next_block += 1;
        self.open = Some((index, call));
        Ok(index)
    }

    fn close(&mut self, out: &mut Vec<StreamEvent>) -> Result<(), DecodeError> {
        match self.open.take() {
            Some((index, _)) => self.emit(StreamEvent::BlockStop { index }, out),
            None => Ok(()),
        }
    }
}

/// Decodes a whole Chat Completions stream's bytes.
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

/// Writes canonical stream events as Chat Completions chunks. Every chunk carries the id and
/// model of the `MessageStart` and the `created` time given; tool calls are numbered in the
/// order their blocks start. `MessageDelta` writes the finish chunk and, when the caller asked
/// for one and the usage is known, the usage chunk; `MessageStop` writes `[DONE]`; `Ping` is an SSE comment; `Error` an
/// OpenAI-style error event.
#[derive(Debug)]
pub struct StreamEncoder {
    created: u64,
    include_usage: bool,
    id: String,
    model: String,
    /// The number of tool calls begun, and the open block's call.
    calls: u32,
    open_call: Option<u32>,
    usage: Option<Usage>,
}

// === impl StreamEncoder ===

impl StreamEncoder {
    pub fn new(created: u64, include_usage: bool) -> StreamEncoder {
        StreamEncoder {
            created,
            include_usage,
            id: String::new(),
            model: String::new(),
            calls: 0,
            open_call: None,
            usage: None,
        }
    }

    /// Appends the bytes of `event` (possibly none) to `out`.
    pub fn encode(&mut self, event: &StreamEvent, out: &mut Vec<u8>) {
        let mut frames = Vec::new();
        self.frames(event, &mut frames);
        for frame in frames {
            match frame {
                Frame::Chunk(value) => data(&value, out),
                Frame::Done => out.extend_from_slice(DONE_EVENT),
                Frame::Ping => out.extend_from_slice(b": ping\n\n"),
            }
        }
    }

    /// Appends the `data:` of each event `event` makes to `out`, unframed: a chunk's JSON, or
    /// `[DONE]` (a ping makes none). What a relay that works on event data takes.
    pub fn encode_data(&mut self, event: &StreamEvent, out: &mut Vec<String>) {
        let mut frames = Vec::new();
        self.frames(event, &mut frames);
        for frame in frames {
            match frame {
                Frame::Chunk(value) => out.push(value.to_string()),
                Frame::Done => out.push("[DONE]".to_owned()),
                Frame::Ping => (),
            }
        }
    }

    fn frames(&mut self, event: &StreamEvent, out: &mut Vec<Frame>) {
        match event {
            StreamEvent::MessageStart { id, model, usage: _ } => {
                self.id.clone_from(id);
                self.model.clone_from(model);
                out.push(self.chunk(json!({"role": "assistant", "content": ""}), None));
            }
            StreamEvent::BlockStart { block: BlockKind::Text, .. } => (),
            StreamEvent::BlockStart { block: BlockKind::ToolUse { id, name }, .. } => {
                let call = self.calls;
                self.calls += 1;
                self.open_call = Some(call);
                let delta = json!({"tool_calls": [{
                    "index": call, "id": id, "type": "function", "function": {"name": name, "arguments": ""},
                }]});
                out.push(self.chunk(delta, None));
            }
            StreamEvent::TextDelta { text, .. } => out.push(self.chunk(json!({"content": text}), None)),
            StreamEvent::ToolInputDelta { partial_json, .. } => {
                let call = self.open_call.unwrap_or(self.calls.saturating_sub(1));
                let delta = json!({"tool_calls": [{"index": call, "function": {"arguments": partial_json}}]});
                out.push(self.chunk(delta, None));
            }
            StreamEvent::BlockStop { .. } => self.open_call = None,
            // The usage chunk follows the finish at once: a stream cut before its end still
            // told what it used.
            StreamEvent::MessageDelta { finish, usage } => {
                self.usage = *usage;
                out.push(self.chunk(json!({}), Some(finish)));
                if let (true, Some(usage)) = (self.include_usage, &self.usage) {
                    out.push(Frame::Chunk(json!({
                        "id": self.id,
                        "object": "chat.completion.chunk",
                        "created": self.created,
                        "model": self.model,
                        "choices": [],
                        "usage": write_usage(usage),
                    })));
                }
            }
            StreamEvent::MessageStop => out.push(Frame::Done),
            StreamEvent::Ping => out.push(Frame::Ping),
            StreamEvent::Error(error) => out.push(Frame::Chunk(stream_error(error))),
        }
    }

    fn chunk(&self, delta: Value, finish: Option<&FinishReason>) -> Frame {
        Frame::Chunk(json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{
                "index": 0,
                "delta": delta,
                "logprobs": null,
                "finish_reason": finish.map(finish_reason),
            }],
        }))
    }
}

/// One SSE event the encoder writes.
enum Frame {
    Chunk(Value),
    Done,
    Ping,
}

fn stream_error(error: &ErrorObject) -> Value {
    super::encode_error(error).1
}

fn data(value: &Value, out: &mut Vec<u8>) {
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(value.to_string().as_bytes());
    out.extend_from_slice(b"\n\n");
}
