//! Property tests of the stream decoder: random, mutated and truncated streams never panic and
//! what it yields is well formed; every well-formed canonical stream survives the encoder and
//! the decoder, in both formats.

use proptest::prelude::*;

use super::stream::{GENERIC_STREAM, generic_events};
use crate::canonical::{BlockKind, FinishReason, StreamCheck, StreamEvent, Usage};
use crate::oci_codec::{Format, StreamEncoder, decode_stream};

fn well_formed(events: &[StreamEvent]) -> bool {
    let mut check = StreamCheck::default();
    events.iter().all(|e| check.check(e).is_ok()) && check.is_done()
}

fn event() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\{\"index\":0,\"message\":\\{\"role\":\"(ASSISTANT|USER)\",\"content\":\\[\\{\"type\":\"TEXT\",\"text\":\"[a-z ]{0,4}\"\\}\\]\\}\\}",
        "\\{\"index\":0,\"message\":\\{\"toolCalls\":\\[\\{(\"id\":\"c[0-9]\",)?(\"name\":\"f\",)?\"arguments\":\"[{}a-z]{0,3}\"\\}\\]\\}\\}",
        "\\{\"index\":0,\"finishReason\":\"(stop|length|tool_calls|content_filter|x)\"\\}",
        "\\{\"usage\":\\{\"promptTokens\":[0-9]{1,3},\"completionTokens\":[0-9]{1,3}\\}\\}",
        "\\{\"apiFormat\":\"COHERE\",\"text\":\"[a-z ]{0,4}\"(,\"finishReason\":\"(COMPLETE|MAX_TOKENS|ERROR)\")?\\}",
        "\\{\"apiFormat\":\"COHERE\",\"toolCalls\":\\[\\{\"name\":\"f\",\"parameters\":(\\{\\}|1|null)\\}\\]\\}",
        "\\{\"code\":\"[A-Za-z]{0,12}\",\"message\":\"[a-z]{0,4}\"\\}",
        "\\[DONE\\]",
        "(?s).{0,24}",
    ]
}

fn sse(events: &[String]) -> Vec<u8> {
    events.iter().flat_map(|c| format!("data: {c}\n\n").into_bytes()).collect()
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

/// A well-formed stream as the decoder yields it: text blocks never follow each other (the
/// format would join them); a COHERE tool call's input is whole JSON, a GENERIC one's in
/// pieces of it.
fn canonical(format: Format, blocks: &[Block], finish: FinishReason, usage: Usage) -> Vec<StreamEvent> {
    let mut out = vec![StreamEvent::MessageStart { id: String::new(), model: String::new(), usage: None }];
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
            let input = serde_json::json!({"v": block.texts}).to_string();
            match format {
                Format::Cohere => out.push(StreamEvent::ToolInputDelta { index, partial_json: input }),
                Format::Generic => {
                    let half = (0..=input.len() / 2).rev().find(|i| input.is_char_boundary(*i)).unwrap_or(0);
                    let (a, b) = input.split_at(half);
                    for piece in [a, b].into_iter().filter(|p| !p.is_empty()) {
                        out.push(StreamEvent::ToolInputDelta { index, partial_json: piece.to_owned() });
                    }
                }
            }
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
    fn random_events_never_panic_and_yield_well_formed_streams(events in prop::collection::vec(event(), 0..8)) {
        if let Ok(events) = decode_stream(&sse(&events)) {
            prop_assert!(well_formed(&events), "{events:?}");
        }
    }

    #[test]
    fn truncated_and_mutated_streams_never_panic(cut in 0..GENERIC_STREAM.len(), flip in 0..GENERIC_STREAM.len(), byte in any::<u8>()) {
        let mut bytes = GENERIC_STREAM.as_bytes().to_vec();
        bytes[flip] = byte;
        for input in [&GENERIC_STREAM.as_bytes()[..cut], &bytes[..]] {
            if let Ok(events) = decode_stream(input) {
                prop_assert!(well_formed(&events), "{events:?}");
            }
        }
    }

    #[test]
    fn canonical_streams_survive_the_encoder(
        cohere in any::<bool>(),
        blocks in blocks(),
        finish in prop_oneof![Just(FinishReason::Stop), Just(FinishReason::Length), Just(FinishReason::ContentFilter), Just(FinishReason::ToolUse)],
        input in 0u64..1000, output in 0u64..1000,
    ) {
        let format = if cohere { Format::Cohere } else { Format::Generic };
        let events = canonical(format, &blocks, finish, Usage { input_tokens: input, output_tokens: output, ..Usage::default() });
        let mut encoder = StreamEncoder::new(format);
        let mut bytes = Vec::new();
        for event in &events {
            encoder.encode(event, &mut bytes);
        }
        prop_assert_eq!(decode_stream(&bytes), Ok(events));
    }
}

#[test]
fn the_sample_stream_is_well_formed() {
    assert!(well_formed(&generic_events()));
}
