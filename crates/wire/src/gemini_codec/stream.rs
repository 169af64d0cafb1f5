//! `streamGenerateContent?alt=sse` ⇄ canonical stream events. Each SSE `data:` is a whole
//! `GenerateContentResponse` chunk; there is no end event: the chunk with a `finishReason`
//! is the last.

use serde_json::{Map, Value, json};

use super::error::read;
use super::response::RawResponse;
use super::{finish_reason, read_finish, write_usage};
use crate::canonical::{BlockKind, DecodeError, StreamCheck, StreamEvent, Usage};
use crate::sse::SseEvent;

/// Turns the chunks of a Gemini stream into canonical stream events, checking their order.
///
/// The first chunk starts the message (its id `responseId`, its model `modelVersion`). Text
/// parts are deltas of a text block, opened by the first non-empty one; a `functionCall` part
/// is a whole tool block (begun, its JSON arguments in one delta, ended). The chunk with a
/// `finishReason` ends the answer with the latest `usageMetadata`; a usage-only chunk after it
/// is read and ignored. An `{"error": …}` chunk is an [`StreamEvent::Error`] of its class, a
/// blocked prompt (`promptFeedback.blockReason`) a content filter's. Data that is not JSON, a
/// chunk that is not a `GenerateContentResponse`, content after the end, or an end before a
/// `finishReason` is a [`DecodeError`], after which every call fails.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    check: StreamCheck,
    started: bool,
    /// The text block open now.
    open: Option<u32>,
    next_block: u32,
    calls: usize,
    usage: Option<Usage>,
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
        let result = self.chunk(event.data.trim(), out);
        self.failed = result.is_err();
        result
    }

    /// Ends the stream: an error unless a `finishReason` (or an error) ended it.
    pub fn finish(&mut self) -> Result<(), DecodeError> {
        match (self.failed, self.check.is_done()) {
            (true, _) => Err(DecodeError::new("the stream already failed")),
            (false, true) => Ok(()),
            (false, false) => Err(DecodeError::new("the stream ended before a finishReason")),
        }
    }

    fn emit(&mut self, event: StreamEvent, out: &mut Vec<StreamEvent>) -> Result<(), DecodeError> {
        self.check.check(&event)?;
        out.push(event);
        Ok(())
    }

    fn chunk(&mut self, data: &str, out: &mut Vec<StreamEvent>) -> Result<(), DecodeError> {
        if data.is_empty() {
            return Ok(());
        }
        let value: Value =
            serde_json::from_str(data).map_err(|e| DecodeError::new(format!("a stream chunk is not JSON: {e}")))?;
        if let Some(error) = value.get("error") {
            let error = read(None, error, data.as_bytes());
            return self.emit(StreamEvent::Error(error), out);
        }
        if !value.is_object() {
            return Err(DecodeError::new("a stream chunk is not an object"));
        }
        let raw = RawResponse::parse(data.as_bytes())?;
        let done = self.check.is_done();
        if done && raw.candidates.iter().all(|c| c.content.as_ref().is_none_or(|c| c.parts.is_empty())) {
            return Ok(());
        }
        if !self.started {
            self.started = true;
            let id = raw.response_id.clone().unwrap_or_default();
            let model = raw.model_version.clone().unwrap_or_default();
            self.emit(StreamEvent::MessageStart { id, model, usage: None }, out)?;
        }
        if let Some(error) = raw.blocked() {
            return self.emit(StreamEvent::Error(error), out);
        }
        if let Some(usage) = raw.usage_metadata {
            self.usage = Some(usage.canonical());
        }
        let Some(candidate) = raw.candidates.into_iter().next() else { return Ok(()) };
        if let Some(content) = candidate.content {
            content.check_role()?;
            for part in content.parts {
                if part.thought == Some(true) {
                    continue;
                }
                if let Some(call) = part.function_call {
                    self.close(out)?;
                    let call = call.tool_use(self.calls)?;
                    self.calls += 1;
                    let index = self.next_block;
                    self.next_block += 1;
                    let block = BlockKind::ToolUse { id: call.id, name: call.name };
                    self.emit(StreamEvent::BlockStart { index, block }, out)?;
                    self.emit(StreamEvent::ToolInputDelta { index, partial_json: call.input.to_string() }, out)?;
                    self.emit(StreamEvent::BlockStop { index }, out)?;
                } else if let Some(text) = part.text.filter(|t| !t.is_empty()) {
                    let index = match self.open {
                        Some(index) => index,
                        None => {
                            let index = self.next_block;
                            self.next_block += 1;
                            self.emit(StreamEvent::BlockStart { index, block: BlockKind::Text }, out)?;
                            self.open = Some(index);
                            index
                        }
                    };
                    self.emit(StreamEvent::TextDelta { index, text }, out)?;
                }
            }
        }
        if let Some(reason) = candidate.finish_reason.filter(|r| r != "FINISH_REASON_UNSPECIFIED") {
            self.close(out)?;
            let finish = read_finish(&reason, self.calls > 0);
            self.emit(StreamEvent::MessageDelta { finish, usage: self.usage }, out)?;
            self.emit(StreamEvent::MessageStop, out)?;
        }
        Ok(())
    }

    fn close(&mut self, out: &mut Vec<StreamEvent>) -> Result<(), DecodeError> {
        match self.open.take() {
            Some(index) => self.emit(StreamEvent::BlockStop { index }, out),
            None => Ok(()),
        }
    }
}

/// Decodes a whole `streamGenerateContent?alt=sse` body.
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

/// Writes canonical stream events as a Gemini SSE stream, one `data:` chunk per text delta,
/// tool call (written whole at its block's end) and end (an empty text part with the
/// `finishReason` and the usage, zeros when not known). `MessageStart`, `MessageStop` and
/// `Ping` write nothing; an `Error` is an `{"error": …}` chunk.
#[derive(Debug, Default)]
pub struct StreamEncoder {
    id: String,
    model: String,
    /// The tool call being written: its name and its arguments so far.
    tool: Option<(String, String)>,
}

// === impl StreamEncoder ===

impl StreamEncoder {
    pub fn new() -> StreamEncoder {
        StreamEncoder::default()
    }

    /// Appends the bytes of `event` to `out`.
    pub fn encode(&mut self, event: &StreamEvent, out: &mut Vec<u8>) {
        match event {
            StreamEvent::MessageStart { id, model, .. } => {
                self.id.clone_from(id);
                self.model.clone_from(model);
            }
            StreamEvent::BlockStart { block: BlockKind::Text, .. } => (),
            StreamEvent::BlockStart { block: BlockKind::ToolUse { name, .. }, .. } => {
                self.tool = Some((name.clone(), String::new()));
            }
            StreamEvent::TextDelta { text, .. } => self.chunk(json!({"text": text}), None, out),
            StreamEvent::ToolInputDelta { partial_json, .. } => {
                if let Some((_, args)) = &mut self.tool {
                    args.push_str(partial_json);
                }
            }
            StreamEvent::BlockStop { .. } => {
                if let Some((name, args)) = self.tool.take() {
                    let args: Value = serde_json::from_str(&args).unwrap_or_else(|_| json!({}));
                    self.chunk(json!({"functionCall": {"name": name, "args": args}}), None, out);
                }
            }
            StreamEvent::MessageDelta { finish, usage } => {
                let mut end = Map::new();
                end.insert("finishReason".into(), json!(finish_reason(finish)));
                end.insert("usageMetadata".into(), write_usage(&usage.unwrap_or_default()));
                self.chunk(json!({"text": ""}), Some(end), out);
            }
            StreamEvent::MessageStop | StreamEvent::Ping => (),
            StreamEvent::Error(error) => data(&super::error::encode_error(error).1, out),
        }
    }

    /// One chunk of a candidate with `part`; `end` holds the `finishReason` and the usage.
    fn chunk(&self, part: Value, end: Option<Map<String, Value>>, out: &mut Vec<u8>) {
        let mut candidate = Map::new();
        candidate.insert("content".into(), json!({"role": "model", "parts": [part]}));
        let mut usage = None;
        if let Some(mut end) = end {
            usage = end.remove("usageMetadata");
            candidate.extend(end);
        }
        candidate.insert("index".into(), json!(0));
        let mut body = Map::new();
        body.insert("candidates".into(), json!([candidate]));
        if let Some(usage) = usage {
            body.insert("usageMetadata".into(), usage);
        }
        body.insert("modelVersion".into(), json!(self.model));
        body.insert("responseId".into(), json!(self.id));
        data(&Value::Object(body), out);
    }
}

fn data(body: &Value, out: &mut Vec<u8>) {
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(body.to_string().as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
}
