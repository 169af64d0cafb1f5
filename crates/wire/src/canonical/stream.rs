//! Canonical stream events, and the order a well-formed stream keeps.

use super::{DecodeError, FinishReason, Usage};
use crate::canonical::ErrorObject;
use crate::sse::{SseEvent, SseParser};

/// A protocol's decoder of SSE streams into canonical events (OpenAI's, Anthropic's, Gemini's).
pub trait SseDecoder {
    /// Takes one SSE event; the canonical events it yields are appended to `out`.
    fn push(&mut self, event: &SseEvent, out: &mut Vec<StreamEvent>) -> Result<(), DecodeError>;
    /// Ends the stream: an error unless it ended as its protocol says a stream ends.
    fn finish(&mut self) -> Result<(), DecodeError>;
}

/// A whole SSE body's canonical events, through `decoder`.
pub fn decode_sse(mut decoder: impl SseDecoder, bytes: &[u8]) -> Result<Vec<StreamEvent>, DecodeError> {
    let mut parser = SseParser::default();
    let mut events = Vec::new();
    parser.push(bytes, &mut events).map_err(|e| DecodeError::new(e.to_string()))?;
    parser.finish(&mut events);
    let mut out = Vec::new();
    for event in &events {
        decoder.push(event, &mut out)?;
    }
    decoder.finish()?;
    Ok(out)
}

/// One event of a streamed answer.
///
/// A well-formed stream (what [`StreamCheck`] accepts, and what every decoder yields) is:
/// `MessageStart`; content blocks, each `BlockStart`, deltas of its kind, `BlockStop`, one
/// at a time with indices 0, 1, 2, ...; one `MessageDelta`; `MessageStop`. `Ping` may come
/// anywhere before the end. `Error` may come anywhere and ends the stream.
#[derive(Clone, Debug, PartialEq)]
pub enum StreamEvent {
    /// The answer begins. `usage` holds what is known of the input (its output is zero).
    MessageStart {
        id: String,
        model: String,
        usage: Option<Usage>,
    },
    BlockStart {
        index: u32,
        block: BlockKind,
    },
    TextDelta {
        index: u32,
        text: String,
    },
    /// A piece of a tool call's input: the pieces of a block, joined, are its JSON input.
    ToolInputDelta {
        index: u32,
        partial_json: String,
    },
    BlockStop {
        index: u32,
    },
    /// The answer's end: why, and the usage of the whole answer when the upstream told it.
    MessageDelta {
        finish: FinishReason,
        usage: Option<Usage>,
    },
    MessageStop,
    /// Keep-alive; no content.
    Ping,
    /// The stream failed after it had begun. Nothing follows.
    Error(ErrorObject),
}

// === impl StreamEvent ===

impl StreamEvent {
    /// The text `events` carry, in order (their text deltas joined).
    pub fn text_of(events: &[StreamEvent]) -> String {
        events
            .iter()
            .filter_map(|e| match e {
                StreamEvent::TextDelta { text, .. } => Some(text.as_str()),
                _ => None,
            })
            .collect()
    }
}

/// What a content block holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlockKind {
    Text,
    ToolUse { id: String, name: String },
}

/// Checks that a sequence of events is a well-formed stream (see [`StreamEvent`]).
#[derive(Clone, Debug, Default)]
pub struct StreamCheck {
    state: State,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum State {
    #[default]
    Before,
    /// Between blocks, the next block's index and whether `MessageDelta` has come.
    Between {
        next: u32,
        delta: bool,
    },
    /// In a block: its index and whether it holds a tool call.
    InBlock {
        index: u32,
        tool: bool,
    },
    Done,
}

// === impl StreamCheck ===

impl StreamCheck {
    /// Takes the next event, or says why it cannot come now.
    pub fn check(&mut self, event: &StreamEvent) -> Result<(), DecodeError> {
        let next = match (self.state, event) {
            (State::Done, _) => return Err(DecodeError::new("an event after the end of the stream")),
            (_, StreamEvent::Error(_)) => State::Done,
            (state, StreamEvent::Ping) => state,
            (State::Before, StreamEvent::MessageStart { .. }) => State::Between { next: 0, delta: false },
            (State::Before, _) => return Err(DecodeError::new("a stream event before the message started")),
            (_, StreamEvent::MessageStart { .. }) => return Err(DecodeError::new("a second message start")),
            (State::Between { next, delta: false }, StreamEvent::BlockStart { index, block }) if *index == next => {
                State::InBlock { index: next, tool: matches!(block, BlockKind::ToolUse { .. }) }
            }
            (State::InBlock { index, tool: false }, StreamEvent::TextDelta { index: i, .. }) if *i == index => {
                self.state
            }
            (State::InBlock { index, tool: true }, StreamEvent::ToolInputDelta { index: i, .. }) if *i == index => {
                self.state
            }
            (State::InBlock { index, .. }, StreamEvent::BlockStop { index: i }) if *i == index => {
                State::Between { next: index + 1, delta: false }
            }
            (State::Between { next, delta: false }, StreamEvent::MessageDelta { .. }) => {
                State::Between { next, delta: true }
            }
            (State::Between { delta: true, .. }, StreamEvent::MessageStop) => State::Done,
            (
                State::Between { .. } | State::InBlock { .. },
                StreamEvent::BlockStart { .. }
                | StreamEvent::TextDelta { .. }
                | StreamEvent::ToolInputDelta { .. }
                | StreamEvent::BlockStop { .. }
                | StreamEvent::MessageDelta { .. }
                | StreamEvent::MessageStop,
            ) => return Err(DecodeError::new(format!("a stream event out of order: {}", describe(event)))),
        };
        self.state = next;
        Ok(())
    }

    /// Whether the stream has ended (with `MessageStop` or an error).
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The index of the block open now, if any.
    pub fn open_block(&self) -> Option<u32> {
        match self.state {
            State::InBlock { index, .. } => Some(index),
            State::Before | State::Between { .. } | State::Done => None,
        }
    }
}

fn describe(event: &StreamEvent) -> String {
    match event {
        StreamEvent::MessageStart { .. } => "message start".to_owned(),
        StreamEvent::BlockStart { index, .. } => format!("start of block {index}"),
        StreamEvent::TextDelta { index, .. } => format!("text delta of block {index}"),
        StreamEvent::ToolInputDelta { index, .. } => format!("tool input delta of block {index}"),
        StreamEvent::BlockStop { index } => format!("stop of block {index}"),
        StreamEvent::MessageDelta { .. } => "message delta".to_owned(),
        StreamEvent::MessageStop => "message stop".to_owned(),
        StreamEvent::Ping => "ping".to_owned(),
        StreamEvent::Error(_) => "error".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(events: &[StreamEvent]) -> Result<bool, DecodeError> {
        let mut check = StreamCheck::default();
        for event in events {
            check.check(event)?;
        }
        Ok(check.is_done())
    }

    fn start() -> StreamEvent {
        StreamEvent::MessageStart { id: "m".into(), model: "x".into(), usage: None }
    }

    fn tool(index: u32) -> StreamEvent {
        StreamEvent::BlockStart { index, block: BlockKind::ToolUse { id: "t".into(), name: "f".into() } }
    }

    #[test]
    fn only_well_formed_streams_pass() {
        use StreamEvent::{BlockStop, MessageStop, Ping, TextDelta, ToolInputDelta};
        let delta = StreamEvent::MessageDelta { finish: FinishReason::Stop, usage: None };
        let text = |index| StreamEvent::BlockStart { index, block: BlockKind::Text };
        let ok = [
            Ping,
            start(),
            text(0),
            TextDelta { index: 0, text: "a".into() },
            BlockStop { index: 0 },
            tool(1),
            Ping,
            ToolInputDelta { index: 1, partial_json: "{}".into() },
            BlockStop { index: 1 },
            delta.clone(),
            MessageStop,
        ];
        assert_eq!(check(&ok), Ok(true));
        assert_eq!(check(&ok[..9]), Ok(false), "not done before the stop");
        let error = StreamEvent::Error(ErrorObject::new(crate::canonical::ErrorClass::Overloaded, "busy"));
        assert_eq!(check(&[start(), text(0), error.clone()]), Ok(true), "an error ends any stream");
        for bad in [
            vec![text(0)],
            vec![start(), start()],
            vec![start(), text(1)],
            vec![start(), text(0), text(1)],
            vec![start(), text(0), ToolInputDelta { index: 0, partial_json: "{".into() }],
            vec![start(), tool(0), TextDelta { index: 0, text: "a".into() }],
            vec![start(), text(0), BlockStop { index: 1 }],
            vec![start(), text(0), delta.clone()],
            vec![start(), MessageStop],
            vec![start(), delta.clone(), delta.clone()],
            vec![start(), delta.clone(), text(0)],
            vec![start(), delta.clone(), MessageStop, Ping],
            vec![start(), error.clone(), Ping],
        ] {
            assert!(check(&bad).is_err(), "{bad:?}");
        }
    }
}
