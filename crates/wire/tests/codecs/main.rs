//! The canonical model's codecs: snapshots of each translation both ways, round trips, the
//! parameters a target refuses, and property tests of the stream decoders.

mod anthropic;
mod openai;
mod props;
mod round_trip;
mod unsupported;

use serde_json::Value;
use switchyard_wire::canonical::{Message, Part, ResultPart, Role, ToolResult, ToolUse};

/// A JSON literal.
pub(crate) fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("bad literal: {e}\n{text}"))
}

/// Compares JSON, printing both sides pretty when they differ.
#[track_caller]
pub(crate) fn check_json(actual: &Value, expected: &str) {
    let expected = json(expected);
    assert!(
        *actual == expected,
        "actual:\n{}\nexpected:\n{}",
        serde_json::to_string_pretty(actual).unwrap_or_default(),
        serde_json::to_string_pretty(&expected).unwrap_or_default()
    );
}

/// Compares an SSE byte stream with the expected text, given one line per event with the
/// blank lines between events left out: both are compared event by event.
#[track_caller]
pub(crate) fn check_sse(actual: &[u8], expected: &str) {
    let actual = String::from_utf8(actual.to_vec()).expect("SSE is UTF-8");
    let events: Vec<&str> = actual.split("\n\n").filter(|e| !e.is_empty()).collect();
    let wanted: Vec<String> =
        expected.trim().split("\n\n").map(|e| e.lines().map(str::trim).collect::<Vec<_>>().join("\n")).collect();
    assert_eq!(events.len(), wanted.len(), "actual events:\n{actual}");
    for (a, w) in events.iter().zip(&wanted) {
        let (a_head, a_data) = split_data(a);
        let (w_head, w_data) = split_data(w);
        assert_eq!(a_head, w_head, "actual events:\n{actual}");
        match (serde_json::from_str::<Value>(a_data), serde_json::from_str::<Value>(w_data)) {
            (Ok(a), Ok(w)) => assert_eq!(a, w, "actual events:\n{actual}"),
            _ => assert_eq!(a_data, w_data, "actual events:\n{actual}"),
        }
    }
}

/// An event's lines before `data: `, and its data.
fn split_data(event: &str) -> (&str, &str) {
    match event.find("data: ") {
        Some(at) => (&event[..at], &event[at + 6..]),
        None => (event, ""),
    }
}

pub(crate) fn text(t: &str) -> Part {
    Part::Text(t.to_owned())
}

pub(crate) fn tool_use(id: &str, name: &str, input: &str) -> Part {
    Part::ToolUse(ToolUse { id: id.into(), name: name.into(), input: json(input) })
}

pub(crate) fn tool_result(id: &str, content: &str) -> Part {
    Part::ToolResult(ToolResult {
        tool_use_id: id.into(),
        content: vec![ResultPart::Text(content.into())],
        is_error: false,
    })
}

pub(crate) fn user(content: Vec<Part>) -> Message {
    Message { role: Role::User, content }
}

pub(crate) fn assistant(content: Vec<Part>) -> Message {
    Message { role: Role::Assistant, content }
}

/// Shorthands for expected stream events.
pub(crate) mod ev {
    use switchyard_wire::canonical::{BlockKind, FinishReason, StreamEvent, Usage};

    pub(crate) fn start(id: &str, model: &str, usage: Option<Usage>) -> StreamEvent {
        StreamEvent::MessageStart { id: id.into(), model: model.into(), usage }
    }
    pub(crate) fn text_block(index: u32) -> StreamEvent {
        StreamEvent::BlockStart { index, block: BlockKind::Text }
    }
    pub(crate) fn tool_block(index: u32, id: &str, name: &str) -> StreamEvent {
        StreamEvent::BlockStart { index, block: BlockKind::ToolUse { id: id.into(), name: name.into() } }
    }
    pub(crate) fn text(index: u32, text: &str) -> StreamEvent {
        StreamEvent::TextDelta { index, text: text.into() }
    }
    pub(crate) fn input(index: u32, partial_json: &str) -> StreamEvent {
        StreamEvent::ToolInputDelta { index, partial_json: partial_json.into() }
    }
    pub(crate) fn stop(index: u32) -> StreamEvent {
        StreamEvent::BlockStop { index }
    }
    pub(crate) fn delta(finish: FinishReason, usage: Option<Usage>) -> StreamEvent {
        StreamEvent::MessageDelta { finish, usage }
    }
}
