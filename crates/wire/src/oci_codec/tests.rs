//! The OCI codec: snapshots of each translation both ways in both formats, what OCI refuses,
//! errors, streams, and property tests of the stream decoder.

mod embed;
mod props;
mod request;
mod response;
mod stream;

use serde_json::Value;

use crate::canonical::{Message, Part, ResultPart, Role, ToolResult, ToolUse};

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

fn tool_result(id: &str, content: &str) -> Part {
    Part::ToolResult(ToolResult {
        tool_use_id: id.into(),
        content: vec![ResultPart::Text(content.into())],
        is_error: false,
    })
}

fn user(content: Vec<Part>) -> Message {
    Message { role: Role::User, content }
}

fn assistant(content: Vec<Part>) -> Message {
    Message { role: Role::Assistant, content }
}
