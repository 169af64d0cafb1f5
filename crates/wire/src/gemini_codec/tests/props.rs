//! Property tests of the stream decoder: random, mutated and truncated streams never panic and
//! what it yields is well formed; every well-formed canonical stream survives the encoder and
//! the decoder.

use proptest::prelude::*;

use super::stream::{TOOL_STREAM, tool_stream_events};
use crate::canonical::{BlockKind, FinishReason, StreamCheck, StreamEvent, Usage};
use crate::gemini_codec::{StreamEncoder, decode_stream};

fn well_formed(events: &[StreamEvent]) -> bool {
    let mut check = StreamCheck::default();
    events.iter().all(|e| check.check(e).is_ok()) && check.is_done()
}

fn chunk() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\{\"candidates\":\\[\\{\"content\":\\{\"parts\":\\[\\{\"text\":\"[a-z ]{0,4}\"(,\"thought\":true)?\\}\\]\\}\\}\\]\\}",
        "\\{\"candidates\":\\[\\{\"content\":\\{\"parts\":\\[\\{\"functionCall\":\\{\"name\":\"f\",\"args\":(\\{\\}|1|null)\\}\\}\\]\\}\\}\\]\\}",
        "\\{\"candidates\":\\[\\{\"finishReason\":\"(STOP|MAX_TOKENS|SAFETY|OTHER)\"\\}\\],\"usageMetadata\":\\{\"promptTokenCount\":[0-9]{1,3}\\}\\}",
        "\\{\"promptFeedback\":\\{\"blockReason\":\"(SAFETY|OTHER)\"\\}\\}",
        "\\{\"error\":\\{\"code\":[0-9]{3},\"status\":\"[A-Z_]{0,12}\"\\}\\}",
        "(?s).{0,24}",
    ]
}

fn sse(chunks: &[String]) -> Vec<u8> {
    chunks.iter().flat_map(|c| format!("data: {c}\r\n\r\n").into_bytes()).collect()
}

#[derive(Clone, Debug)]
struct Block {
    tool: bool,
    name: String,
    texts: Vec<String>,
}

fn blocks() -> impl Strategy<Value = Vec<Block>> {
    let block = (any::<bool>(), "[a-z_]{1,8}", prop::collection::vec("(?s).{1,12}", 1..4))
        .prop_map(|(tool, name, texts)| Block { tool, name, texts });
    prop::collection::vec(block, 0..5)
}

/// A well-formed stream as Gemini's decoder yields it: text blocks never follow each other
/// (Gemini's parts would join them), tool calls are whole.
fn canonical(blocks: &[Block], finish: FinishReason, usage: Usage) -> Vec<StreamEvent> {
    let mut out = vec![StreamEvent::MessageStart { id: "r".into(), model: "m".into(), usage: None }];
    let mut index = 0;
    let mut calls = 0;
    let mut last_text = false;
    for block in blocks {
        if !block.tool && last_text {
            continue;
        }
        if block.tool {
            let id = format!("call_0_{calls}");
            calls += 1;
            out.push(StreamEvent::BlockStart { index, block: BlockKind::ToolUse { id, name: block.name.clone() } });
            out.push(StreamEvent::ToolInputDelta {
                index,
                partial_json: serde_json::json!({"v": block.texts}).to_string(),
            });
        } else {
            out.push(StreamEvent::BlockStart { index, block: BlockKind::Text });
            out.extend(block.texts.iter().map(|t| StreamEvent::TextDelta { index, text: t.clone() }));
        }
        out.push(StreamEvent::BlockStop { index });
        last_text = !block.tool;
        index += 1;
    }
    let finish = match finish {
        FinishReason::Stop if calls > 0 => FinishReason::ToolUse,
        FinishReason::ToolUse if calls == 0 => FinishReason::Stop,
        other => other,
    };
    out.push(StreamEvent::MessageDelta { finish, usage: Some(usage) });
    out.push(StreamEvent::MessageStop);
    out
}

proptest! {
    #[test]
    fn random_chunks_never_panic_and_yield_well_formed_streams(chunks in prop::collection::vec(chunk(), 0..8)) {
        if let Ok(events) = decode_stream(&sse(&chunks)) {
            prop_assert!(well_formed(&events), "{events:?}");
        }
    }

    #[test]
    fn truncated_and_mutated_streams_never_panic(cut in 0..TOOL_STREAM.len(), flip in 0..TOOL_STREAM.len(), byte in any::<u8>()) {
        let mut bytes = TOOL_STREAM.as_bytes().to_vec();
        bytes[flip] = byte;
        for input in [&TOOL_STREAM.as_bytes()[..cut], &bytes[..]] {
            if let Ok(events) = decode_stream(input) {
                prop_assert!(well_formed(&events), "{events:?}");
            }
        }
    }

    #[test]
    fn canonical_streams_survive_the_encoder(
        blocks in blocks(),
        finish in prop_oneof![Just(FinishReason::Stop), Just(FinishReason::Length), Just(FinishReason::ContentFilter), Just(FinishReason::ToolUse)],
        input in 0u64..1000, output in 0u64..1000,
    ) {
        let events = canonical(&blocks, finish, Usage { input_tokens: input, output_tokens: output, ..Usage::default() });
        let mut encoder = StreamEncoder::new();
        let mut bytes = Vec::new();
        for event in &events {
            encoder.encode(event, &mut bytes);
        }
        prop_assert_eq!(decode_stream(&bytes), Ok(events));
    }
}

#[test]
fn the_sample_stream_is_well_formed() {
    assert!(well_formed(&tool_stream_events()));
}
