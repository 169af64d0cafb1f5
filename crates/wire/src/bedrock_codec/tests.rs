//! The Bedrock Converse codec: snapshots of each translation both ways, the parameters
//! Converse refuses, errors, round trips, and property tests of the stream decoder.

mod error;
mod props;
mod request;
mod response;
mod round_trip;
mod stream;

use serde_json::Value;

use super::{EncodedEvent, StreamDecoder, StreamEncoder};
use crate::canonical::{DecodeError, Message, Part, ResultPart, Role, StreamEvent, ToolResult, ToolUse};

/// A JSON literal.
fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("bad literal: {e}\n{text}"))
}

/// Compares JSON, printing both sides pretty when they differ.
#[track_caller]
fn check_json(actual: &Value, expected: &str) {
    let expected = json(expected);
    assert!(
        *actual == expected,
        "actual:\n{}\nexpected:\n{}",
        serde_json::to_string_pretty(actual).unwrap_or_default(),
        serde_json::to_string_pretty(&expected).unwrap_or_default()
    );
}

fn text(t: &str) -> Part {
    Part::Text(t.to_owned())
}

fn tool_use(id: &str, name: &str, input: &str) -> Part {
    Part::ToolUse(ToolUse { id: id.into(), name: name.into(), input: json(input) })
}

fn tool_result(id: &str, content: &str, is_error: bool) -> Part {
    Part::ToolResult(ToolResult { tool_use_id: id.into(), content: vec![ResultPart::Text(content.into())], is_error })
}

fn user(content: Vec<Part>) -> Message {
    Message { role: Role::User, content }
}

fn assistant(content: Vec<Part>) -> Message {
    Message { role: Role::Assistant, content }
}

/// One eventstream message as the frame decoder gives it: an exception or not, its event or
/// exception type, its payload.
type Frame<'a> = (bool, &'a str, &'a [u8]);

/// Runs frames through a [`StreamDecoder`], ending with `finish`.
fn decode<'a>(frames: impl IntoIterator<Item = Frame<'a>>) -> Result<Vec<StreamEvent>, DecodeError> {
    let mut decoder = StreamDecoder::new();
    let mut out = Vec::new();
    for (exception, kind, payload) in frames {
        if exception {
            decoder.push_exception(kind, payload, &mut out)?;
        } else {
            decoder.push_event(kind, payload, &mut out)?;
        }
    }
    decoder.finish(&mut out)?;
    Ok(out)
}

/// The frames of events given as `(event type, payload)` pairs.
fn events<'a>(events: &'a [(&'a str, &'a str)]) -> impl Iterator<Item = Frame<'a>> {
    events.iter().map(|(kind, payload)| (false, *kind, payload.as_bytes()))
}

/// Runs canonical events through a [`StreamEncoder`].
fn encode(events: &[StreamEvent]) -> Vec<EncodedEvent> {
    let mut encoder = StreamEncoder::new();
    let mut out = Vec::new();
    for event in events {
        encoder.encode(event, &mut out);
    }
    out
}

/// The frames of encoded events.
fn frames(encoded: &[EncodedEvent]) -> impl Iterator<Item = Frame<'_>> {
    encoded.iter().map(|e| (e.exception, e.event_type, e.payload.as_slice()))
}

/// Shorthands for expected stream events.
mod ev {
    use crate::canonical::{BlockKind, FinishReason, StreamEvent, Usage};

    /// Bedrock's `messageStart` has no id, model or usage.
    pub(super) fn start() -> StreamEvent {
        StreamEvent::MessageStart { id: String::new(), model: String::new(), usage: None }
    }
    pub(super) fn text_block(index: u32) -> StreamEvent {
        StreamEvent::BlockStart { index, block: BlockKind::Text }
    }
    pub(super) fn tool_block(index: u32, id: &str, name: &str) -> StreamEvent {
        StreamEvent::BlockStart { index, block: BlockKind::ToolUse { id: id.into(), name: name.into() } }
    }
    pub(super) fn text(index: u32, text: &str) -> StreamEvent {
        StreamEvent::TextDelta { index, text: text.into() }
    }
    pub(super) fn input(index: u32, partial_json: &str) -> StreamEvent {
        StreamEvent::ToolInputDelta { index, partial_json: partial_json.into() }
    }
    pub(super) fn stop(index: u32) -> StreamEvent {
        StreamEvent::BlockStop { index }
    }
    pub(super) fn delta(finish: FinishReason, usage: Option<Usage>) -> StreamEvent {
        StreamEvent::MessageDelta { finish, usage }
    }
}
