//! `isStream: true` answers ⇄ canonical stream events. Each SSE `data:` is a JSON event: a
//! piece of the answer, the one with its `finishReason`, or the usage after it. There is no
//! end event of its own.

use serde_json::{Map, Value, json};

use super::error::{encode_error, read};
use super::response::RawChat;
use super::{Format, finish_reason, read_finish, write_usage};
use crate::canonical::{BlockKind, DecodeError, FinishReason, StreamCheck, StreamEvent, Usage};
use crate::sse::{SseEvent, SseParser};

/// Turns an OCI chat stream into canonical stream events, checking their order; either format,
/// told by each event's shape.
///
/// The first event starts the message (no id; the model is the deployment's). GENERIC:
/// `message.content` text is a text block's delta; a `message.toolCalls` entry with a new `id`
/// (or a `name` when no call is open) begins a tool block, and its `arguments` pieces are the
/// block's JSON. COHERE: `text` is a delta, `toolCalls` come whole. The event with a
/// `finishReason` ends the content (COHERE's `text` there is the whole answer again, not read);
/// the answer ends with its usage, in that event or the next (`{"usage": …}`), or when the
/// stream ends without one ([`StreamDecoder::finish`]). An `{"code", "message"}` event is a
/// [`StreamEvent::Error`] of its class; `[DONE]` is skipped. Data that is not JSON, an event
/// that is neither, content after the end, or an end before a `finishReason` is a
/// [`DecodeError`], after which every call fails.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    check: StreamCheck,
    started: bool,
    /// The block open now: its index, and the id of its call when it is a tool block.
    open: Option<(u32, Option<String>)>,
    next_block: u32,
    calls: usize,
    usage: Option<Usage>,
    /// The answer's end, waiting for its usage.
    ending: Option<FinishReason>,
    failed: bool,
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
        let result = self.event(event.data.trim(), out);
        self.failed = result.is_err();
        result
    }

    /// The stream ended: an answer waiting for its usage ends without it; an error unless a
    /// `finishReason` (or an error) came.
    pub fn finish(&mut self, out: &mut Vec<StreamEvent>) -> Result<(), DecodeError> {
        if self.failed {
            return Err(DecodeError::new("the stream already failed"));
        }
        if self.ending.is_some() {
            self.end(out)?;
        }
        if self.check.is_done() {
            Ok(())
        } else {
            self.failed = true;
            Err(DecodeError::new("the stream ended before a finishReason"))
        }
    }

    fn emit(&mut self, event: StreamEvent, out: &mut Vec<StreamEvent>) -> Result<(), DecodeError> {
        self.check.check(&event)?;
        out.push(event);
        Ok(())
    }

    fn event(&mut self, data: &str, out: &mut Vec<StreamEvent>) -> Result<(), DecodeError> {
        if data.is_empty() || data == "[DONE]" {
            return Ok(());
        }
        let value: Value =
            serde_json::from_str(data).map_err(|e| DecodeError::new(format!("a stream event is not JSON: {e}")))?;
        let Some(object) = value.as_object() else {
            return Err(DecodeError::new("a stream event is not an object"));
        };
        let is_error = object.contains_key("code") && object.contains_key("message") && !object.contains_key("index");
        if is_error {
            if self.ending.is_some() {
                self.end(out)?;
            }
            if self.check.is_done() {
                return Ok(());
            }
            self.start(out)?;
            return self.emit(StreamEvent::Error(read(None, &value, data.as_bytes())), out);
        }
        let raw: RawChat = serde_json::from_value(value)
            .map_err(|e| DecodeError::new(format!("a stream event is not an OCI chat event: {e}")))?;
        if let Some(usage) = raw.usage {
            self.usage = Some(usage.canonical());
        }
        let cohere = raw.format() == Format::Cohere;
        // COHERE's last event repeats the whole text (and the calls): read only when nothing
        // came before it.
        let repeats = cohere && raw.finish_reason.is_some() && self.next_block > 0;
        let text = match (&raw.message, cohere) {
            (Some(message), false) => {
                message.check_role()?;
                message.text()
            }
            (_, true) if !repeats => raw.text.clone().unwrap_or_default(),
            _ => String::new(),
        };
        let mut calls = match (raw.message, cohere) {
            (Some(message), false) => message.tool_calls,
            (_, true) => raw.tool_calls,
            (None, false) => Vec::new(),
        };
        if repeats {
            calls.clear();
        }
        let content = !text.is_empty() || !calls.is_empty();
        if self.ending.is_some() || self.check.is_done() {
            if content {
                return Err(DecodeError::new("content after the answer's finishReason"));
            }
            if self.ending.is_some() && self.usage.is_some() {
                self.end(out)?;
            }
            return Ok(());
        }
        self.start(out)?;
        if !text.is_empty() {
            let index = match &self.open {
                Some((index, None)) => *index,
                _ => {
                    self.close(out)?;
                    self.begin(BlockKind::Text, None, out)?
                }
            };
            self.emit(StreamEvent::TextDelta { index, text }, out)?;
        }
        for call in calls {
            if cohere {
                self.whole_call(call, out)?;
            } else {
                self.call_piece(call, out)?;
            }
        }
        if let Some(reason) = raw.finish_reason.filter(|r| !r.is_empty()) {
            self.close(out)?;
            self.ending = Some(read_finish(&reason, self.calls > 0));
            if self.usage.is_some() {
                self.end(out)?;
            }
        }
        Ok(())
    }

    fn start(&mut self, out: &mut Vec<StreamEvent>) -> Result<(), DecodeError> {
        if !self.started {
            self.started = true;
            self.emit(StreamEvent::MessageStart { id: String::new(), model: String::new(), usage: None }, out)?;
        }
        Ok(())
    }

    fn begin(
        &mut self,
        block: BlockKind,
        call: Option<String>,
        out: &mut Vec<StreamEvent>,
    ) -> Result<u32, DecodeError> {
        let index = self.next_block;
        self.next_block += 1;
        self.emit(StreamEvent::BlockStart { index, block }, out)?;
        self.open = Some((index, call));
        Ok(index)
    }

    /// A COHERE call: a whole tool block.
    fn whole_call(&mut self, call: super::response::RawCall, out: &mut Vec<StreamEvent>) -> Result<(), DecodeError> {
        self.close(out)?;
        let call = call.tool_use(self.calls)?;
        self.calls += 1;
        let index = self.begin(BlockKind::ToolUse { id: call.id.clone(), name: call.name }, Some(call.id), out)?;
        self.emit(StreamEvent::ToolInputDelta { index, partial_json: call.input.to_string() }, out)?;
        self.close(out)
    }

    /// A piece of a GENERIC call: a new call begins a block, arguments continue the open one.
    fn call_piece(&mut self, call: super::response::RawCall, out: &mut Vec<StreamEvent>) -> Result<(), DecodeError> {
        let id = call.id.filter(|id| !id.is_empty());
        let name = call.name.filter(|n| !n.is_empty());
        let open_call = self.open.as_ref().and_then(|(_, c)| c.clone());
        let new = match (&id, &open_call) {
            (Some(id), Some(open)) => id != open,
            (Some(_), None) => true,
            (None, None) => name.is_some(),
            (None, Some(_)) => false,
        };
        let index = if new {
            let Some(name) = name else { return Err(DecodeError::new("a tool call begins without a name")) };
            self.close(out)?;
            let id = id.unwrap_or_else(|| super::call_id(0, self.calls));
            self.calls += 1;
            self.begin(BlockKind::ToolUse { id: id.clone(), name }, Some(id), out)?
        } else {
            match &self.open {
                Some((index, Some(_))) => *index,
                _ => return Err(DecodeError::new("tool call arguments outside a tool call")),
            }
        };
        if let Some(arguments) = call.arguments.filter(|a| !a.is_empty()) {
            self.emit(StreamEvent::ToolInputDelta { index, partial_json: arguments }, out)?;
        }
        Ok(())
    }

    fn close(&mut self, out: &mut Vec<StreamEvent>) -> Result<(), DecodeError> {
        match self.open.take() {
            Some((index, _)) => self.emit(StreamEvent::BlockStop { index }, out),
            None => Ok(()),
        }
    }

    fn end(&mut self, out: &mut Vec<StreamEvent>) -> Result<(), DecodeError> {
        if let Some(finish) = self.ending.take() {
            self.emit(StreamEvent::MessageDelta { finish, usage: self.usage }, out)?;
            self.emit(StreamEvent::MessageStop, out)?;
        }
        Ok(())
    }
}

/// Decodes a whole OCI chat stream body.
pub fn decode_stream(bytes: &[u8]) -> Result<Vec<StreamEvent>, DecodeError> {
    let mut parser = SseParser::default();
    let mut events = Vec::new();
    parser.push(bytes, &mut events).map_err(|e| DecodeError::new(e.to_string()))?;
    parser.finish(&mut events);
    let mut decoder = StreamDecoder::new();
    let mut out = Vec::new();
    for event in &events {
        decoder.push(event, &mut out)?;
    }
    decoder.finish(&mut out)?;
    Ok(out)
}

/// Writes canonical stream events as an OCI chat stream in a format. GENERIC: a text delta or
/// a tool call's beginning (`id`, `name`) and argument pieces are each an event, the end an
/// event with the `finishReason` then one with the usage. COHERE: text deltas, a tool call
/// whole at its block's end, and the end one event with the whole text, the `finishReason`
/// and the usage. Usage is zeros when not known. `MessageStart`, `MessageStop` and `Ping` write
/// nothing; an `Error` is an `{"code", "message"}` event.
#[derive(Debug)]
pub struct StreamEncoder {
    format: Format,
    text: String,
    /// COHERE's tool call being written: its name and its arguments so far.
    tool: Option<(String, String)>,
}

// === impl StreamEncoder ===

impl StreamEncoder {
    pub fn new(format: Format) -> StreamEncoder {
        StreamEncoder { format, text: String::new(), tool: None }
    }

    /// Appends the bytes of `event` to `out`.
    pub fn encode(&mut self, event: &StreamEvent, out: &mut Vec<u8>) {
        let generic = self.format == Format::Generic;
        let message = |m: Value| json!({"index": 0, "message": m});
        match event {
            StreamEvent::MessageStart { .. } | StreamEvent::MessageStop | StreamEvent::Ping => {}
            StreamEvent::BlockStart { block: BlockKind::Text, .. } => {}
            StreamEvent::BlockStart { block: BlockKind::ToolUse { id, name }, .. } if generic => {
                let call = json!({"id": id, "type": "FUNCTION", "name": name, "arguments": ""});
                data(&message(json!({"role": "ASSISTANT", "toolCalls": [call]})), out);
            }
            StreamEvent::BlockStart { block: BlockKind::ToolUse { name, .. }, .. } => {
                self.tool = Some((name.clone(), String::new()));
            }
            StreamEvent::TextDelta { text, .. } if generic => {
                let content = json!([{"type": "TEXT", "text": text}]);
                data(&message(json!({"role": "ASSISTANT", "content": content})), out);
            }
            StreamEvent::TextDelta { text, .. } => {
                self.text.push_str(text);
                data(&json!({"apiFormat": "COHERE", "text": text}), out);
            }
            StreamEvent::ToolInputDelta { partial_json, .. } if generic => {
                let call = json!({"type": "FUNCTION", "arguments": partial_json});
                data(&message(json!({"role": "ASSISTANT", "toolCalls": [call]})), out);
            }
            StreamEvent::ToolInputDelta { partial_json, .. } => {
                if let Some((_, args)) = &mut self.tool {
                    args.push_str(partial_json);
                }
            }
            StreamEvent::BlockStop { .. } => {
                if let Some((name, args)) = self.tool.take() {
                    let parameters: Value = serde_json::from_str(&args).unwrap_or_else(|_| json!({}));
                    let call = json!({"name": name, "parameters": parameters});
                    data(&json!({"apiFormat": "COHERE", "toolCalls": [call]}), out);
                }
            }
            StreamEvent::MessageDelta { finish, usage } => {
                let usage = write_usage(&usage.unwrap_or_default());
                let reason = finish_reason(finish, self.format);
                if generic {
                    data(&json!({"index": 0, "finishReason": reason}), out);
                    data(&json!({"usage": usage}), out);
                } else {
                    let mut end = Map::new();
                    end.insert("apiFormat".into(), json!("COHERE"));
                    end.insert("text".into(), json!(self.text));
                    end.insert("finishReason".into(), json!(reason));
                    end.insert("usage".into(), usage);
                    data(&Value::Object(end), out);
                }
            }
            StreamEvent::Error(error) => data(&encode_error(error).1, out),
        }
    }
}

fn data(body: &Value, out: &mut Vec<u8>) {
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(body.to_string().as_bytes());
    out.extend_from_slice(b"\n\n");
}
