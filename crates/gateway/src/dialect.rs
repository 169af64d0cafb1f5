//! The protocol a caller's stream is written in. The relay works on OpenAI chunks, which is
//! what every deployment answers today: hold-back, continuations, identity and usage all happen
//! there, and a [`Dialect`] turns each chunk the caller is to receive into the caller's
//! protocol. It is chosen once per stream (the relay is generic over it): OpenAI's writes the
//! chunk as it came, Anthropic's decodes it into canonical events and writes them as Messages
//! SSE, the Responses API's (`responses.rs`) as its typed events.

mod responses;

use axum::http::StatusCode;
use bytes::Bytes;
use switchyard_wire::canonical::StreamEvent;
use switchyard_wire::error::error_event;
use switchyard_wire::sse::{DONE_EVENT, SseEvent, data_event};
use switchyard_wire::{anthropic_codec, openai_codec};

use crate::error::{anthropic_body, anthropic_kind};
use crate::metrics::Api;

pub(crate) use responses::Responses;

/// How the caller's frames are written.
pub(crate) trait Dialect: Send + 'static {
    /// The API these streams are counted under.
    const API: Api;

    /// The caller's frame for one OpenAI chunk (the JSON of its `data:`), if it makes one.
    fn chunk(&mut self, payload: &[u8]) -> Option<Bytes>;

    /// The last frame of a stream that ended well.
    fn done(&mut self) -> Option<Bytes>;

    /// The event that ends a stream that failed: `code` names the failure, `status` is what
    /// the error's HTTP status would have been before the stream began.
    fn error(&mut self, message: &str, code: &str, status: u16) -> Bytes;

    /// A held-back answer starts over: nothing of it reached the caller.
    fn restart(&mut self);
}

/// OpenAI Chat Completions: chunks go out as they came.
pub(crate) struct OpenAi;

impl Dialect for OpenAi {
    const API: Api = Api::ChatStream;

    #[inline]
    fn chunk(&mut self, payload: &[u8]) -> Option<Bytes> {
        Some(Bytes::from(data_event(payload)))
    }

    fn done(&mut self) -> Option<Bytes> {
        Some(Bytes::from_static(DONE_EVENT))
    }

    fn error(&mut self, message: &str, code: &str, _status: u16) -> Bytes {
        Bytes::from(error_event(message, "api_error", code))
    }

    fn restart(&mut self) {}
}

/// Anthropic Messages: OpenAI chunks in, `message_start`, `content_block_*`, `message_delta`
/// and `message_stop` out, through the canonical events. The message carries the model the
/// caller asked for.
pub(crate) struct Anthropic {
    model: String,
    decoder: openai_codec::StreamDecoder,
    encoder: anthropic_codec::StreamEncoder,
    events: Vec<StreamEvent>,
    /// An error event was written: nothing follows it.
    ended: bool,
}

impl Anthropic {
    pub(crate) fn new(model: String) -> Anthropic {
        Anthropic {
            model,
            decoder: openai_codec::StreamDecoder::new(),
            encoder: anthropic_codec::StreamEncoder::new(),
            events: Vec::new(),
            ended: false,
        }
    }

    /// Feeds one event's data to the decoder and writes what it completes. A chunk the decoder
    /// refuses (the relay forwards what it can read, the decoder wants a well-formed stream)
    /// ends the caller's stream with an error event.
    fn translate(&mut self, data: &str) -> Option<Bytes> {
        if self.ended {
            return None;
        }
        let mut events = std::mem::take(&mut self.events);
        let result = self.decoder.push(&SseEvent { event: None, data: data.to_owned() }, &mut events);
        let mut out = Vec::new();
        for event in events.drain(..) {
            match event {
                StreamEvent::MessageStart { id, model: _, usage } => {
                    let start = StreamEvent::MessageStart { id, model: self.model.clone(), usage };
                    self.encoder.encode(&start, &mut out);
                }
                StreamEvent::Error(error) => {
                    self.ended = true;
                    self.encoder.encode(&StreamEvent::Error(error), &mut out);
                }
                other => self.encoder.encode(&other, &mut out),
            }
        }
        self.events = events;
        if let Err(e) = result
            && !self.ended
        {
            tracing::warn!(message = "An upstream stream could not be translated for an Anthropic caller.", error = %e);
            let message = format!("the upstream stream could not be translated: {e}");
            out.extend_from_slice(&self.error(&message, "untranslatable", StatusCode::BAD_GATEWAY.as_u16()));
        }
        (!out.is_empty()).then(|| Bytes::from(out))
    }
}

impl Dialect for Anthropic {
    const API: Api = Api::MessagesStream;

    fn chunk(&mut self, payload: &[u8]) -> Option<Bytes> {
        self.translate(&String::from_utf8_lossy(payload))
    }

    fn done(&mut self) -> Option<Bytes> {
        self.translate("[DONE]")
    }

    /// An Anthropic `error` event, its type the one [`anthropic_kind`] gives the status.
    fn error(&mut self, message: &str, _code: &str, status: u16) -> Bytes {
        self.ended = true;
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let (_, kind) = anthropic_kind(status);
        let mut out = b"event: error\ndata: ".to_vec();
        out.extend_from_slice(&anthropic_body(kind, message));
        out.extend_from_slice(b"\n\n");
        Bytes::from(out)
    }

    fn restart(&mut self) {
        *self = Anthropic::new(std::mem::take(&mut self.model));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(frames: &[Option<Bytes>]) -> String {
        frames.iter().flatten().map(|b| String::from_utf8_lossy(b).into_owned()).collect()
    }

    fn names(text: &str) -> Vec<&str> {
        text.lines().filter_map(|l| l.strip_prefix("event: ")).collect()
    }

    #[test]
    fn openai_chunks_become_a_messages_stream_under_the_callers_model() {
        let mut d = Anthropic::new("chat".into());
        let frames = [
            d.chunk(br#"{"id":"c","model":"up","choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"}}]}"#),
            d.chunk(br#"{"id":"c","model":"up","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#),
            d.chunk(br#"{"id":"c","model":"up","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1}}"#),
            d.done(),
        ];
        let text = text(&frames);
        assert_eq!(
            names(&text),
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert!(text.contains(r#""model":"chat""#), "{text}");
        assert!(text.contains(r#""input_tokens":3"#) && text.contains(r#""output_tokens":1"#), "{text}");
        assert!(frames[2].is_none(), "usage waits for the message delta");
    }

    #[test]
    fn tool_call_chunks_become_tool_use_blocks() {
        let mut d = Anthropic::new("chat".into());
        let delta = |delta: serde_json::Value, finish: Option<&str>| {
            serde_json::json!({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}).to_string()
        };
        let call = serde_json::json!({"index": 0, "id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": ""}});
        let args = |a: &str| serde_json::json!({"tool_calls": [{"index": 0, "function": {"arguments": a}}]});
        let frames = [
            d.chunk(delta(serde_json::json!({"role": "assistant", "tool_calls": [call]}), None).as_bytes()),
            d.chunk(delta(args(r#"{"city":"#), None).as_bytes()),
            d.chunk(delta(args(r#""Paris"}"#), None).as_bytes()),
            d.chunk(delta(serde_json::json!({}), Some("tool_calls")).as_bytes()),
            d.done(),
        ];
        let events = anthropic_codec::decode_stream(text(&frames).as_bytes()).expect("well-formed");
        let block = StreamEvent::BlockStart {
            index: 0,
            block: switchyard_wire::canonical::BlockKind::ToolUse { id: "call_1".into(), name: "get_weather".into() },
        };
        assert_eq!(events[1], block);
        let input: String = events
            .iter()
            .filter_map(|e| match e {
                StreamEvent::ToolInputDelta { partial_json, .. } => Some(partial_json.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(input, r#"{"city":"Paris"}"#);
        assert!(events.iter().any(|e| matches!(
            e,
            StreamEvent::MessageDelta { finish: switchyard_wire::canonical::FinishReason::ToolUse, .. }
        )));
    }

    #[test]
    fn a_chunk_out_of_order_ends_the_stream_with_one_error_event() {
        let mut d = Anthropic::new("chat".into());
        let _ = d.chunk(br#"{"choices":[{"index":0,"delta":{"content":"a"},"finish_reason":"stop"}]}"#);
        let bad = d.chunk(br#"{"choices":[{"index":0,"delta":{"content":"late"}}]}"#).expect("an error event");
        let bad = String::from_utf8_lossy(&bad).into_owned();
        assert!(bad.starts_with("event: error\n"), "{bad}");
        assert!(bad.contains(r#""type":"api_error""#), "{bad}");
        assert_eq!(d.done(), None, "nothing after the error");
        d.restart();
        assert!(d.chunk(br#"{"choices":[{"index":0,"delta":{"content":"a"}}]}"#).is_some(), "a fresh start");
    }

    #[test]
    fn end_errors_take_anthropics_type_for_their_status() {
        let mut d = Anthropic::new("chat".into());
        for (status, kind) in [(504, "timeout_error"), (503, "overloaded_error"), (502, "api_error")] {
            let event = d.error("why", "code", status);
            assert!(String::from_utf8_lossy(&event).contains(&format!(r#""type":"{kind}""#)), "{status}");
        }
        assert_eq!(
            OpenAi.error("why", "deadline_exceeded", 504),
            Bytes::from(error_event("why", "api_error", "deadline_exceeded"))
        );
    }
}
