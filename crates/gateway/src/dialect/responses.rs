//! The Responses dialect: OpenAI chunks in, the Responses API's typed events out.

use axum::http::StatusCode;
use bytes::Bytes;
use switchyard_wire::canonical::{ErrorClass, ErrorObject, StreamEvent};
use switchyard_wire::openai_codec;
use switchyard_wire::responses_codec::{Envelope, StreamEncoder};
use switchyard_wire::sse::SseEvent;

use super::Dialect;
use crate::metrics::Api;

/// OpenAI's Responses API: OpenAI chunks are decoded into canonical events and written as
/// `response.created` ... `response.completed` (the usage chunk and `[DONE]` become the
/// completion, after the route comment). The response carries the envelope's id and the model
/// the caller asked for. A chunk the strict decoder refuses, and every end-of-stream failure,
/// is a `response.failed` event.
pub(crate) struct Responses {
    envelope: Envelope,
    decoder: openai_codec::StreamDecoder,
    encoder: StreamEncoder,
    events: Vec<StreamEvent>,
}

impl Responses {
    pub(crate) fn new(envelope: Envelope) -> Responses {
        Responses {
            encoder: StreamEncoder::new(envelope.clone()),
            envelope,
            decoder: openai_codec::StreamDecoder::new(),
            events: Vec::new(),
        }
    }

    fn translate(&mut self, data: &str) -> Option<Bytes> {
        if self.encoder.is_ended() {
            return None;
        }
        let mut events = std::mem::take(&mut self.events);
        let result = self.decoder.push(&SseEvent { event: None, data: data.to_owned() }, &mut events);
        let mut out = Vec::new();
        for event in events.drain(..) {
            self.encoder.encode(&event, &mut out);
        }
        self.events = events;
        if let Err(e) = result
            && !self.encoder.is_ended()
        {
            tracing::warn!(message = "An upstream stream could not be translated for a Responses caller.", error = %e);
            let message = format!("the upstream stream could not be translated: {e}");
            out.extend_from_slice(&self.error(&message, "untranslatable", StatusCode::BAD_GATEWAY.as_u16()));
        }
        (!out.is_empty()).then(|| Bytes::from(out))
    }
}

impl Dialect for Responses {
    const API: Api = Api::ResponsesStream;

    fn chunk(&mut self, payload: &[u8]) -> Option<Bytes> {
        self.translate(&String::from_utf8_lossy(payload))
    }

    fn done(&mut self) -> Option<Bytes> {
        self.translate("[DONE]")
    }

    fn error(&mut self, message: &str, code: &str, status: u16) -> Bytes {
        let error = ErrorObject::new(ErrorClass::of_status(Some(status), false), message).with_code(code);
        let mut out = Vec::new();
        self.encoder.fail(&error, &mut out);
        Bytes::from(out)
    }

    fn restart(&mut self) {
        *self = Responses::new(self.envelope.clone());
    }
}

#[cfg(test)]
mod tests {
    use switchyard_wire::canonical::Request;

    use super::*;

    fn names(frames: &[Option<Bytes>]) -> Vec<String> {
        let text: String = frames.iter().flatten().map(|b| String::from_utf8_lossy(b).into_owned()).collect();
        text.lines().filter_map(|l| l.strip_prefix("event: ")).map(str::to_owned).collect()
    }

    fn dialect() -> Responses {
        let request = Request { model: "chat".into(), ..Request::default() };
        Responses::new(Envelope::of(&request, "x", 0))
    }

    #[test]
    fn openai_chunks_become_a_responses_stream() {
        let mut d = dialect();
        let frames = [
            d.chunk(br#"{"id":"c","model":"up","choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"}}]}"#),
            d.chunk(br#"{"id":"c","model":"up","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#),
            d.chunk(br#"{"id":"c","model":"up","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1}}"#),
            d.done(),
        ];
        let names = names(&frames);
        assert_eq!(names.first().map(String::as_str), Some("response.created"));
        assert_eq!(names.last().map(String::as_str), Some("response.completed"));
        let last = String::from_utf8_lossy(frames[3].as_ref().unwrap()).into_owned();
        let data = last.lines().rev().find_map(|l| l.strip_prefix("data: ")).unwrap();
        let data: serde_json::Value = serde_json::from_str(data).unwrap();
        assert_eq!(data["response"]["model"], "chat");
        assert_eq!(data["response"]["usage"]["total_tokens"], 4);
        assert_eq!(data["response"]["output"][0]["content"][0]["text"], "Hi");
        assert_eq!(names.len(), 9, "{names:?}");
    }

    #[test]
    fn a_failure_after_the_start_is_response_failed_and_ends_the_stream() {
        let mut d = dialect();
        let first = d.chunk(br#"{"id":"c","choices":[{"index":0,"delta":{"content":"Hi"}}]}"#);
        let failed = d.error("cut", "stream_interrupted", 502);
        let text = String::from_utf8_lossy(&failed).into_owned();
        assert!(text.starts_with("event: response.failed\n"), "{text}");
        assert!(text.contains(r#""code":"stream_interrupted""#), "{text}");
        assert!(first.is_some());
        assert!(d.done().is_none(), "nothing after the failure");
    }
}
