//! Streams both ways: text, whole tool calls, the end with usage, errors and blocks.

use crate::canonical::{BlockKind, ErrorClass, ErrorObject, FinishReason, StreamEvent, Usage};
use crate::gemini_codec::{StreamEncoder, decode_stream};

/// A Gemini stream as `streamGenerateContent?alt=sse` writes it.
pub(super) const TOOL_STREAM: &str = concat!(
    "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Let me \"}],\"role\":\"model\"},\"index\":0}],",
    "\"usageMetadata\":{\"promptTokenCount\":10,\"totalTokenCount\":10},\"modelVersion\":\"gemini-2.5-flash\",\"responseId\":\"abc\"}\r\n\r\n",
    "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"check.\"}],\"role\":\"model\"},\"index\":0}],\"modelVersion\":\"gemini-2.5-flash\",\"responseId\":\"abc\"}\r\n\r\n",
    "data: {\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":{\"name\":\"get_weather\",\"args\":{\"city\":\"Paris\"}}}],\"role\":\"model\"},",
    "\"finishReason\":\"STOP\",\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":10,\"candidatesTokenCount\":7,\"totalTokenCount\":17},",
    "\"modelVersion\":\"gemini-2.5-flash\",\"responseId\":\"abc\"}\r\n\r\n",
);

pub(super) fn tool_stream_events() -> Vec<StreamEvent> {
    vec![
        StreamEvent::MessageStart { id: "abc".into(), model: "gemini-2.5-flash".into(), usage: None },
        StreamEvent::BlockStart { index: 0, block: BlockKind::Text },
        StreamEvent::TextDelta { index: 0, text: "Let me ".into() },
        StreamEvent::TextDelta { index: 0, text: "check.".into() },
        StreamEvent::BlockStop { index: 0 },
        StreamEvent::BlockStart {
            index: 1,
            block: BlockKind::ToolUse { id: "call_0_0".into(), name: "get_weather".into() },
        },
        StreamEvent::ToolInputDelta { index: 1, partial_json: r#"{"city":"Paris"}"#.into() },
        StreamEvent::BlockStop { index: 1 },
        StreamEvent::MessageDelta {
            finish: FinishReason::ToolUse,
            usage: Some(Usage { input_tokens: 10, output_tokens: 7, ..Usage::default() }),
        },
        StreamEvent::MessageStop,
    ]
}

fn encode(events: &[StreamEvent]) -> Vec<u8> {
    let mut encoder = StreamEncoder::new();
    let mut out = Vec::new();
    for event in events {
        encoder.encode(event, &mut out);
    }
    out
}

#[test]
fn a_stream_with_a_tool_call_decodes() {
    assert_eq!(decode_stream(TOOL_STREAM.as_bytes()), Ok(tool_stream_events()));
}

#[test]
fn a_stream_encodes_as_gemini_writes_it_and_decodes_back() {
    let bytes = encode(&tool_stream_events());
    let text = String::from_utf8(bytes.clone()).expect("utf-8");
    assert_eq!(text.matches("data: ").count(), 4, "two texts, the call, the end:\n{text}");
    assert!(text.contains(r#"{"functionCall":{"args":{"city":"Paris"},"name":"get_weather"}}"#), "{text}");
    assert!(text.contains(r#""finishReason":"STOP""#), "{text}");
    assert_eq!(decode_stream(&bytes), Ok(tool_stream_events()));
}

#[test]
fn errors_blocks_and_ends() {
    let error = "data: {\"error\":{\"code\":429,\"message\":\"Quota\",\"status\":\"RESOURCE_EXHAUSTED\"}}\n\n";
    let events = decode_stream(error.as_bytes()).expect("an error ends the stream");
    assert!(
        matches!(&events[..], [StreamEvent::Error(ErrorObject { class: ErrorClass::RateLimit, .. })]),
        "{events:?}"
    );
    let block =
        "data: {\"promptFeedback\":{\"blockReason\":\"SAFETY\"},\"usageMetadata\":{\"promptTokenCount\":3}}\n\n";
    let events = decode_stream(block.as_bytes()).expect("a block ends the stream");
    assert!(matches!(events.last(), Some(StreamEvent::Error(ErrorObject { class: ErrorClass::ContentFilter, .. }))));
    let encoded = encode(&[StreamEvent::Error(ErrorObject::new(ErrorClass::Overloaded, "busy"))]);
    let back = decode_stream(&encoded).expect("decodes");
    assert!(matches!(&back[..], [StreamEvent::Error(ErrorObject { class: ErrorClass::Overloaded, .. })]));
    // Cut before the finishReason: not a whole answer.
    let cut = TOOL_STREAM.split("data: ").take(3).collect::<Vec<_>>().join("data: ");
    assert!(decode_stream(cut.as_bytes()).is_err());
    // A usage-only chunk after the end is read; text after it is not.
    let late = format!("{TOOL_STREAM}data: {{\"usageMetadata\":{{\"promptTokenCount\":10}}}}\n\n");
    assert_eq!(decode_stream(late.as_bytes()), Ok(tool_stream_events()));
    let text = "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"x\"}]}}]}\n\n";
    assert!(decode_stream(format!("{TOOL_STREAM}{text}").as_bytes()).is_err());
    assert!(decode_stream(b"data: not json\n\n").is_err());
    assert!(decode_stream(b"data: [1]\n\n").is_err());
}
