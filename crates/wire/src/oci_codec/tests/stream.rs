//! Streams both ways in both formats: text, tool calls (GENERIC's in pieces, COHERE's whole),
//! the end with its usage after it or in it, errors.

use crate::canonical::{BlockKind, ErrorClass, ErrorObject, FinishReason, StreamEvent, Usage};
use crate::oci_codec::{Format, StreamDecoder, StreamEncoder, decode_stream};
use crate::sse::SseEvent;

/// A GENERIC stream as OCI writes it: text, a tool call in pieces, the finish, then the usage.
pub(super) const GENERIC_STREAM: &str = concat!(
    "data: {\"index\":0,\"message\":{\"role\":\"ASSISTANT\",\"content\":[{\"type\":\"TEXT\",\"text\":\"Let me \"}]}}\n\n",
    "data: {\"index\":0,\"message\":{\"role\":\"ASSISTANT\",\"content\":[{\"type\":\"TEXT\",\"text\":\"check.\"}]}}\n\n",
    "data: {\"index\":0,\"message\":{\"role\":\"ASSISTANT\",\"toolCalls\":[{\"id\":\"call_9\",\"type\":\"FUNCTION\",\"name\":\"get_weather\",\"arguments\":\"\"}]}}\n\n",
    "data: {\"index\":0,\"message\":{\"role\":\"ASSISTANT\",\"toolCalls\":[{\"type\":\"FUNCTION\",\"arguments\":\"{\\\"city\\\":\"}]}}\n\n",
    "data: {\"index\":0,\"message\":{\"role\":\"ASSISTANT\",\"toolCalls\":[{\"type\":\"FUNCTION\",\"arguments\":\"\\\"Paris\\\"}\"}]}}\n\n",
    "data: {\"index\":0,\"message\":{\"role\":\"ASSISTANT\",\"content\":[]},\"finishReason\":\"tool_calls\"}\n\n",
    "data: {\"usage\":{\"promptTokens\":10,\"completionTokens\":7,\"totalTokens\":17}}\n\n",
);

/// A COHERE stream as OCI writes it: text deltas, then the end repeating the whole text.
pub(super) const COHERE_STREAM: &str = concat!(
    "data: {\"apiFormat\":\"COHERE\",\"text\":\"Hello\"}\n\n",
    "data: {\"apiFormat\":\"COHERE\",\"text\":\" there.\"}\n\n",
    "data: {\"apiFormat\":\"COHERE\",\"text\":\"Hello there.\",\"finishReason\":\"COMPLETE\",",
    "\"usage\":{\"promptTokens\":5,\"completionTokens\":2,\"totalTokens\":7}}\n\n",
);

fn usage(input: u64, output: u64) -> Option<Usage> {
    Some(Usage { input_tokens: input, output_tokens: output, ..Usage::default() })
}

pub(super) fn generic_events() -> Vec<StreamEvent> {
    vec![
        StreamEvent::MessageStart { id: String::new(), model: String::new(), usage: None },
        StreamEvent::BlockStart { index: 0, block: BlockKind::Text },
        StreamEvent::TextDelta { index: 0, text: "Let me ".into() },
        StreamEvent::TextDelta { index: 0, text: "check.".into() },
        StreamEvent::BlockStop { index: 0 },
        StreamEvent::BlockStart {
            index: 1,
            block: BlockKind::ToolUse { id: "call_9".into(), name: "get_weather".into() },
        },
        StreamEvent::ToolInputDelta { index: 1, partial_json: r#"{"city":"#.into() },
        StreamEvent::ToolInputDelta { index: 1, partial_json: r#""Paris"}"#.into() },
        StreamEvent::BlockStop { index: 1 },
        StreamEvent::MessageDelta { finish: FinishReason::ToolUse, usage: usage(10, 7) },
        StreamEvent::MessageStop,
    ]
}

fn cohere_events() -> Vec<StreamEvent> {
    vec![
        StreamEvent::MessageStart { id: String::new(), model: String::new(), usage: None },
        StreamEvent::BlockStart { index: 0, block: BlockKind::Text },
        StreamEvent::TextDelta { index: 0, text: "Hello".into() },
        StreamEvent::TextDelta { index: 0, text: " there.".into() },
        StreamEvent::BlockStop { index: 0 },
        StreamEvent::MessageDelta { finish: FinishReason::Stop, usage: usage(5, 2) },
        StreamEvent::MessageStop,
    ]
}

fn encode(format: Format, events: &[StreamEvent]) -> Vec<u8> {
    let mut encoder = StreamEncoder::new(format);
    let mut out = Vec::new();
    for event in events {
        encoder.encode(event, &mut out);
    }
    out
}

#[test]
fn streams_decode_in_both_formats() {
    assert_eq!(decode_stream(GENERIC_STREAM.as_bytes()), Ok(generic_events()));
    assert_eq!(decode_stream(COHERE_STREAM.as_bytes()), Ok(cohere_events()));
}

#[test]
fn the_end_waits_for_the_usage_after_it_and_ends_without_one() {
    let mut decoder = StreamDecoder::new();
    let mut out = Vec::new();
    let event = |data: &str| SseEvent { event: None, data: data.into() };
    decoder.push(&event(r#"{"index":0,"message":{"content":[{"type":"TEXT","text":"Hi"}]}}"#), &mut out).expect("text");
    decoder.push(&event(r#"{"index":0,"finishReason":"stop"}"#), &mut out).expect("end");
    assert!(!out.iter().any(|e| matches!(e, StreamEvent::MessageDelta { .. })), "held for the usage: {out:?}");
    decoder.finish(&mut out).expect("a stream may end without usage");
    assert_eq!(out[out.len() - 2], StreamEvent::MessageDelta { finish: FinishReason::Stop, usage: None });
    assert_eq!(out.last(), Some(&StreamEvent::MessageStop));
    let mut cut = StreamDecoder::new();
    cut.push(&event(r#"{"index":0,"message":{"content":[{"type":"TEXT","text":"Hi"}]}}"#), &mut Vec::new())
        .expect("text");
    assert!(cut.finish(&mut Vec::new()).is_err(), "no finishReason: cut");
}

#[test]
fn streams_encode_as_oci_writes_them_and_decode_back() {
    let bytes = encode(Format::Generic, &generic_events());
    let text = String::from_utf8(bytes.clone()).expect("utf-8");
    assert_eq!(text.matches("data: ").count(), 7, "two texts, the call and two pieces, the end, the usage:\n{text}");
    assert!(text.contains(r#""finishReason":"tool_calls""#), "{text}");
    assert_eq!(decode_stream(&bytes), Ok(generic_events()));
    let bytes = encode(Format::Cohere, &cohere_events());
    let text = String::from_utf8(bytes.clone()).expect("utf-8");
    assert!(text.contains(r#""finishReason":"COMPLETE""#) && text.contains(r#""text":"Hello there.""#), "{text}");
    assert_eq!(decode_stream(&bytes), Ok(cohere_events()));
}

#[test]
fn a_cohere_tool_call_is_a_whole_block() {
    let stream = concat!(
        "data: {\"apiFormat\":\"COHERE\",\"toolCalls\":[{\"name\":\"get_weather\",\"parameters\":{\"city\":\"Paris\"}}]}\n\n",
        "data: {\"apiFormat\":\"COHERE\",\"text\":\"\",\"finishReason\":\"COMPLETE\",\"toolCalls\":[{\"name\":\"get_weather\",\"parameters\":{\"city\":\"Paris\"}}]}\n\n",
    );
    let events = decode_stream(stream.as_bytes()).expect("decodes");
    let block = BlockKind::ToolUse { id: "call_0_0".into(), name: "get_weather".into() };
    assert_eq!(events[1], StreamEvent::BlockStart { index: 0, block });
    assert_eq!(events[2], StreamEvent::ToolInputDelta { index: 0, partial_json: r#"{"city":"Paris"}"#.into() });
    assert_eq!(events[4], StreamEvent::MessageDelta { finish: FinishReason::ToolUse, usage: None });
    assert_eq!(events.len(), 6, "the last event's repeated call is not a second one: {events:?}");
}

#[test]
fn an_error_event_fails_the_stream_with_its_class() {
    let stream = "data: {\"index\":0,\"message\":{\"content\":[{\"type\":\"TEXT\",\"text\":\"Hi\"}]}}\n\ndata: {\"code\":\"TooManyRequests\",\"message\":\"slow down\"}\n\n";
    let events = decode_stream(stream.as_bytes()).expect("an error ends a stream");
    let Some(StreamEvent::Error(error)) = events.last() else { panic!("{events:?}") };
    assert_eq!(error.class, ErrorClass::RateLimit);
    let bytes = encode(Format::Generic, &[StreamEvent::Error(ErrorObject::new(ErrorClass::Server, "boom"))]);
    assert_eq!(String::from_utf8_lossy(&bytes), "data: {\"code\":\"InternalServerError\",\"message\":\"boom\"}\n\n");
}

#[test]
fn garbage_and_content_after_the_end_are_refused() {
    assert!(decode_stream(b"data: {\"index\":0,\"message\":{\"content\":[{\"type\":\"TEXT\",\"text\":\"x\"}]}}\n\ndata: {not json\n\n").is_err());
    assert!(decode_stream(b"data: [1,2]\n\n").is_err());
    let late = "data: {\"index\":0,\"finishReason\":\"stop\"}\n\ndata: {\"index\":0,\"message\":{\"content\":[{\"type\":\"TEXT\",\"text\":\"late\"}]}}\n\n";
    assert!(decode_stream(late.as_bytes()).is_err());
    let orphan = "data: {\"index\":0,\"message\":{\"toolCalls\":[{\"arguments\":\"{}\"}]}}\n\n";
    assert!(decode_stream(orphan.as_bytes()).is_err(), "arguments with no call begun");
}
