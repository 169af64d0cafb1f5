//! Reading an upstream answer in the deployment's protocol as the gateway's relay reads it:
//! OpenAI Chat Completions. An OpenAI stream's event data passes through untouched (the fast
//! path); an Anthropic, Gemini or OCI SSE stream or a Bedrock eventstream is decoded into canonical events and
//! written as OpenAI chunks, and a whole answer is translated the same way. An error the
//! upstream reports inside its stream becomes the attempt's classified failure.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use switchyard_core::AttemptError;
use switchyard_core::config::Protocol;
use switchyard_wire::canonical::{DecodeError, ErrorClass, ErrorObject, OutputPart, Response, StreamEvent};
use switchyard_wire::sse::{SseEvent, SseParser};
use switchyard_wire::{anthropic_codec, bedrock_codec, gemini_codec, oci_codec, openai_codec};

use crate::adapter::in_stream;
use crate::eventstream::{self, MessageType};

/// The largest eventstream frame an answer may send: Bedrock's are a few KiB; one past this is
/// garbage, not buffered.
const MAX_ANSWER_FRAME: u32 = 1 << 20;

/// The longest upstream id or model name passed on; a longer one (every chunk repeats it) is
/// replaced by a generated id or the configured model.
const MAX_NAME: usize = 256;

/// Why a stream cannot be read on.
#[derive(Debug, PartialEq)]
pub enum StreamFault {
    /// Bytes that are not the protocol's stream (an event past the parser's bounds, a bad CRC,
    /// an event out of order).
    Garbage(String),
    /// The upstream reported an error inside the stream.
    Failed(AttemptError),
}

/// One attempt's answer reader, for its deployment's protocol.
pub enum AnswerDecoder {
    OpenAi(SseParser),
    Anthropic(Box<Translated<anthropic_codec::StreamDecoder>>),
    Bedrock(Box<Translated<bedrock_codec::StreamDecoder>>),
    Gemini(Box<Translated<gemini_codec::StreamDecoder>>),
    Oci(Box<Translated<oci_codec::StreamDecoder>>),
}

/// A stream decoded into canonical events and written as OpenAI chunks.
pub struct Translated<D> {
    framing: Framing,
    decoder: D,
    encoder: openai_codec::StreamEncoder,
    model: String,
    events: Vec<StreamEvent>,
    /// Whitespace the answer's text starts with that the caller already has (cut from the
    /// end of the prefill this attempt continues).
    skip: String,
}

enum Framing {
    Sse(SseParser),
    EventStream(eventstream::Decoder),
}

impl AnswerDecoder {
    /// The reader for an answer from a `protocol` deployment serving `model`.
    pub fn new(protocol: Protocol, model: &str) -> AnswerDecoder {
        match protocol {
            // Azure OpenAI answers in OpenAI's shapes: they pass through.
            Protocol::OpenAi | Protocol::AzureOpenAi => AnswerDecoder::OpenAi(SseParser::default()),
            Protocol::Anthropic => AnswerDecoder::Anthropic(Box::new(Translated::new(
                Framing::Sse(SseParser::default()),
                anthropic_codec::StreamDecoder::new(),
                model,
            ))),
            Protocol::Bedrock => AnswerDecoder::Bedrock(Box::new(Translated::new(
                Framing::EventStream(eventstream::Decoder::with_max_frame(MAX_ANSWER_FRAME)),
                bedrock_codec::StreamDecoder::new(),
                model,
            ))),
            Protocol::Gemini => AnswerDecoder::Gemini(Box::new(Translated::new(
                Framing::Sse(SseParser::default()),
                gemini_codec::StreamDecoder::new(),
                model,
            ))),
            Protocol::Oci => AnswerDecoder::Oci(Box::new(Translated::new(
                Framing::Sse(SseParser::default()),
                oci_codec::StreamDecoder::new(),
                model,
            ))),
        }
    }

    /// The answer's text is to lose `whitespace` from its start, where the model writes again
    /// what was cut from the end of its prefill; as far as it does.
    pub fn skip_leading(&mut self, whitespace: String) {
        match self {
            AnswerDecoder::OpenAi(_) => {}
            AnswerDecoder::Anthropic(t) => t.skip = whitespace,
            AnswerDecoder::Bedrock(t) => t.skip = whitespace,
            AnswerDecoder::Gemini(t) => t.skip = whitespace,
            AnswerDecoder::Oci(t) => t.skip = whitespace,
        }
    }

    /// Whether a streamed answer's content type is this protocol's stream.
    pub fn is_stream(&self, content_type: Option<&str>) -> bool {
        let expected = match self {
            AnswerDecoder::OpenAi(_)
            | AnswerDecoder::Anthropic(_)
            | AnswerDecoder::Gemini(_)
            | AnswerDecoder::Oci(_) => "text/event-stream",
            AnswerDecoder::Bedrock(_) => "application/vnd.amazon.eventstream",
        };
        content_type.is_some_and(|v| v.starts_with(expected))
    }

    /// Reads a piece of the stream; the OpenAI event data it completes go to `out`.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<String>) -> Result<(), StreamFault> {
        match self {
            AnswerDecoder::OpenAi(parser) => {
                let mut events = Vec::new();
                let result = parser.push(bytes, &mut events);
                out.extend(events.into_iter().map(|e| e.data));
                result.map_err(|e| StreamFault::Garbage(e.to_string()))
            }
            AnswerDecoder::Anthropic(t) => t.push(bytes, out, |d, e, events| d.push(e, events)),
            AnswerDecoder::Bedrock(t) => t.push_frames(bytes, out),
            AnswerDecoder::Gemini(t) => t.push(bytes, out, gemini_push),
            AnswerDecoder::Oci(t) => t.push(bytes, out, |d, e, events| d.push(e, events)),
        }
    }

    /// The stream ended: what is left goes to `out`. An unfinished translated stream writes
    /// nothing more: the relay sees no finish and judges the cut.
    pub fn finish(&mut self, out: &mut Vec<String>) {
        if let AnswerDecoder::OpenAi(parser) = self {
            let mut events = Vec::new();
            parser.finish(&mut events);
            out.extend(events.into_iter().map(|e| e.data));
        }
        if let AnswerDecoder::Anthropic(t) = self {
            // A last event without its blank line still counts.
            let _ = t.push(b"\n\n", out, |d, e, events| d.push(e, events));
        }
        if let AnswerDecoder::Gemini(t) = self {
            // A last chunk without its blank line still counts.
            let _ = t.push(b"\n\n", out, gemini_push);
        }
        if let AnswerDecoder::Oci(t) = self {
            // A last event without its blank line still counts; an answer whose usage never
            // came ends without it.
            if t.push(b"\n\n", out, |d, e, events| d.push(e, events)).is_ok() {
                let mut events = std::mem::take(&mut t.events);
                if t.decoder.finish(&mut events).is_ok() {
                    let _ = t.write(&mut events, out);
                }
            }
        }
        if let AnswerDecoder::Bedrock(t) = self {
            // Bedrock's usage comes after its stop; a stream that ended without it still ends.
            let mut events = std::mem::take(&mut t.events);
            if t.decoder.finish(&mut events).is_ok() {
                let _ = t.write(&mut events, out);
            }
        }
    }

    /// A whole answer, as an OpenAI `chat.completion` body.
    pub fn whole(&self, body: Bytes) -> Result<Bytes, AttemptError> {
        let decoded = match self {
            AnswerDecoder::OpenAi(_) => return Ok(body),
            AnswerDecoder::Anthropic(t) => (anthropic_codec::decode_response(&body), &t.model),
            AnswerDecoder::Bedrock(t) => (bedrock_codec::decode_response(&body), &t.model),
            // A prompt Google's filter blocked is an answer without candidates: the filter's
            // refusal.
            AnswerDecoder::Gemini(_) if let Some(error) = gemini_codec::blocked(&body) => {
                return Err(in_stream(filtered(error)));
            }
            AnswerDecoder::Gemini(t) => (gemini_codec::decode_response(&body), &t.model),
            AnswerDecoder::Oci(t) => (oci_codec::decode_response(&body), &t.model),
        };
        let (response, model): (Result<Response, DecodeError>, _) = decoded;
        let mut response = response.map_err(|e| AttemptError::InvalidResponse { detail: e.message })?;
        if response.id.is_empty() || response.id.len() > MAX_NAME {
            response.id = answer_id();
        }
        if response.model.is_empty() || response.model.len() > MAX_NAME {
            response.model.clone_from(model);
        }
        let skip = match self {
            AnswerDecoder::OpenAi(_) => "",
            AnswerDecoder::Anthropic(t) => &t.skip,
            AnswerDecoder::Bedrock(t) => &t.skip,
            AnswerDecoder::Gemini(t) => &t.skip,
            AnswerDecoder::Oci(t) => &t.skip,
        };
        if let Some(OutputPart::Text(text)) = response.content.first_mut() {
            let common: usize =
                text.chars().zip(skip.chars()).take_while(|(a, b)| a == b).map(|(a, _)| a.len_utf8()).sum();
            text.drain(..common);
        }
        Ok(Bytes::from(openai_codec::encode_response(&response, now_secs()).to_string()))
    }
}

impl<D> Translated<D> {
    fn new(framing: Framing, decoder: D, model: &str) -> Translated<D> {
        Translated {
            framing,
            decoder,
            encoder: openai_codec::StreamEncoder::new(now_secs(), true),
            model: model.to_owned(),
            events: Vec::new(),
            skip: String::new(),
        }
    }

    /// SSE framing: each event through `decode`, then out as OpenAI chunks.
    fn push(
        &mut self,
        bytes: &[u8],
        out: &mut Vec<String>,
        decode: impl Fn(&mut D, &SseEvent, &mut Vec<StreamEvent>) -> Result<(), DecodeError>,
    ) -> Result<(), StreamFault> {
        let Framing::Sse(parser) = &mut self.framing else { return Ok(()) };
        let mut sse = Vec::new();
        let framed = parser.push(bytes, &mut sse);
        let mut events = std::mem::take(&mut self.events);
        let mut decoded = Ok(());
        for event in &sse {
            if let Err(e) = decode(&mut self.decoder, event, &mut events) {
                decoded = Err(StreamFault::Garbage(e.message));
                break;
            }
        }
        // What was decoded before an unreadable event still goes out, as it would have had
        // the bytes come in smaller pieces (and as the eventstream path does).
        let written = self.write(&mut events, out);
        self.events = events;
        written?;
        decoded?;
        framed.map_err(|e| StreamFault::Garbage(e.to_string()))
    }

    /// Canonical events out as OpenAI chunk data; an error event fails the attempt.
    fn write(&mut self, events: &mut Vec<StreamEvent>, out: &mut Vec<String>) -> Result<(), StreamFault> {
        for event in events.drain(..) {
            match event {
                StreamEvent::Error(error) => return Err(StreamFault::Failed(in_stream(error))),
                StreamEvent::MessageStart { id, model, usage } => {
                    // Converse has no id: the caller's SDK still gets one. Every chunk repeats
                    // both, so an upstream's absurdly long ones are not passed on.
                    let id = if id.is_empty() || id.len() > MAX_NAME { answer_id() } else { id };
                    let model = if model.is_empty() || model.len() > MAX_NAME { self.model.clone() } else { model };
                    self.encoder.encode_data(&StreamEvent::MessageStart { id, model, usage }, out);
                }
                StreamEvent::TextDelta { index, text } if !self.skip.is_empty() => {
                    let text = self.skipped(text);
                    if !text.is_empty() {
                        self.encoder.encode_data(&StreamEvent::TextDelta { index, text }, out);
                    }
                }
                other => self.encoder.encode_data(&other, out),
            }
        }
        Ok(())
    }

    /// `text` without the part of `skip` it starts with; what is left of `skip` waits for the
    /// next text, unless this text went past it.
    fn skipped(&mut self, text: String) -> String {
        let common: usize =
            text.chars().zip(self.skip.chars()).take_while(|(a, b)| a == b).map(|(a, _)| a.len_utf8()).sum();
        if common == text.len() {
            self.skip.drain(..common);
            return String::new();
        }
        self.skip.clear();
        text[common..].to_owned()
    }
}

impl Translated<bedrock_codec::StreamDecoder> {
    /// Eventstream framing: each message an event or an exception.
    fn push_frames(&mut self, bytes: &[u8], out: &mut Vec<String>) -> Result<(), StreamFault> {
        let Framing::EventStream(frames) = &mut self.framing else { return Ok(()) };
        frames.feed(bytes);
        let mut events = std::mem::take(&mut self.events);
        let result = loop {
            let message = match frames.next_message() {
                Ok(Some(message)) => message,
                Ok(None) => break Ok(()),
                Err(e) => break Err(StreamFault::Garbage(e.to_string())),
            };
            let decoded = match message.message_type() {
                Some(MessageType::Event) => {
                    let kind = message.event_type().unwrap_or_default().to_owned();
                    self.decoder.push_event(&kind, &message.payload, &mut events)
                }
                Some(MessageType::Exception) => {
                    let kind = message.exception_type().unwrap_or_default().to_owned();
                    self.decoder.push_exception(&kind, &message.payload, &mut events)
                }
                // `:message-type: error`: the service failed mid-stream.
                Some(MessageType::Error) => break Err(StreamFault::Failed(AttemptError::ServerError { status: 500 })),
                None => break Err(StreamFault::Garbage("an eventstream message without a type".into())),
            };
            if let Err(e) = decoded {
                break Err(StreamFault::Garbage(e.message));
            }
        };
        let written = self.write(&mut events, out);
        self.events = events;
        written?;
        result
    }
}

/// A Gemini SSE event through its decoder; a blocked prompt's error made the caller's content
/// filter (see [`filtered`]).
fn gemini_push(
    decoder: &mut gemini_codec::StreamDecoder,
    event: &SseEvent,
    events: &mut Vec<StreamEvent>,
) -> Result<(), DecodeError> {
    let result = decoder.push(event, events);
    if let Some(StreamEvent::Error(error)) = events.last_mut() {
        *error = filtered(error.clone());
    }
    result
}

/// Google's filter says why it blocked (`SAFETY`, `PROHIBITED_CONTENT`, ...): the caller gets
/// OpenAI's `content_filter` code, the reason in the message.
fn filtered(error: ErrorObject) -> ErrorObject {
    if error.class != ErrorClass::ContentFilter {
        return error;
    }
    let reason = error.code.as_deref().unwrap_or("unspecified");
    let message = format!("{} (Google's block reason: {reason})", error.message);
    ErrorObject { message, code: Some("content_filter".into()), ..error }
}

/// An id for an answer whose protocol gives none: unique in this process, and across restarts
/// by the time in it.
fn answer_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("chatcmpl-{:012x}{n:012x}", nanos & 0xffff_ffff_ffff)
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An Anthropic stream of `texts`, as SSE.
    fn anthropic_stream(texts: &[&str]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut encoder = anthropic_codec::StreamEncoder::new();
        let mut events = vec![
            StreamEvent::MessageStart { id: "msg_1".into(), model: "claude".into(), usage: None },
            StreamEvent::BlockStart { index: 0, block: switchyard_wire::canonical::BlockKind::Text },
        ];
        events.extend(texts.iter().map(|t| StreamEvent::TextDelta { index: 0, text: (*t).to_owned() }));
        events.push(StreamEvent::BlockStop { index: 0 });
        for event in &events {
            encoder.encode(event, &mut out);
        }
        out
    }

    fn text_of(decoder: &mut AnswerDecoder, bytes: &[u8]) -> String {
        let mut out = Vec::new();
        decoder.push(bytes, &mut out).expect("readable");
        out.iter()
            .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
            .filter_map(|v| v.pointer("/choices/0/delta/content").and_then(|c| c.as_str()).map(str::to_owned))
            .collect()
    }

    #[test]
    fn a_whole_answer_loses_the_whitespace_its_prefill_lost_too() {
        let mut decoder = AnswerDecoder::new(Protocol::Anthropic, "claude");
        decoder.skip_leading(" ".to_owned());
        let body = serde_json::json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
            "content": [{"type": "text", "text": " world"}], "stop_reason": "end_turn",
            "usage": {"input_tokens": 3, "output_tokens": 2}});
        let whole = decoder.whole(Bytes::from(body.to_string())).expect("translates");
        let whole: serde_json::Value = serde_json::from_slice(&whole).expect("json");
        assert_eq!(whole["choices"][0]["message"]["content"], "world");
    }

    #[test]
    fn whitespace_cut_from_a_prefill_is_not_written_twice() {
        for (skip, texts, expected) in [
            (" \n", vec![" ", "\nworld", "!"], "world!"),
            (" ", vec![" world"], "world"),
            // The model did not write the whitespace again: nothing of its text is lost.
            (" ", vec!["world"], "world"),
            // Part of it written again: that part is dropped, the rest is the caller's already.
            ("\n\n", vec!["\n", "x\n"], "x\n"),
        ] {
            let mut decoder = AnswerDecoder::new(Protocol::Anthropic, "claude");
            decoder.skip_leading(skip.to_owned());
            assert_eq!(text_of(&mut decoder, &anthropic_stream(&texts)), expected, "{skip:?} {texts:?}");
        }
    }
}
