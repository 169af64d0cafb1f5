//! Property tests of the stream decoder: random event types and payloads, mutated and
//! truncated streams never panic, and what it yields is well formed; every well-formed
//! canonical stream survives the encoder and the decoder.

use proptest::prelude::*;

use super::stream::{TOOL_STREAM, tool_stream_events};
use super::{decode, encode, events, frames};
use crate::canonical::{BlockKind, FinishReason, StreamCheck, StreamEvent, Usage};

const EVENT_TYPES: [&str; 12] = [
    "messageStart",
    "contentBlockStart",
    "contentBlockDelta",
    "contentBlockStop",
    "messageStop",
    "metadata",
    "throttlingException",
    "validationException",
    "internalServerException",
    "modelStreamErrorException",
    "serviceUnavailableException",
    "chunk",
];

/// Whatever came out of a decoder that accepted its input is a finished, well-formed stream.
fn well_formed(events: &[StreamEvent]) -> bool {
    let mut check = StreamCheck::default();
    events.iter().all(|e| check.check(e).is_ok()) && check.is_done()
}

fn frame() -> impl Strategy<Value = (bool, String, Vec<u8>)> {
    let kind = prop_oneof![
        4 => prop::sample::select(EVENT_TYPES.to_vec()).prop_map(str::to_owned),
        1 => "[a-zA-Z]{0,12}",
    ];
    let payload = prop_oneof![
        Just(r#"{"role":"assistant"}"#.to_owned()),
        "\\{\"contentBlockIndex\":[0-3](,\"start\":\\{(\"toolUse\":\\{\"toolUseId\":\"t\",\"name\":\"f\"\\})?\\})?\\}",
        "\\{\"contentBlockIndex\":[0-3],\"delta\":\\{(\"text\":\"a\"|\"toolUse\":\\{\"input\":\"\\{\"\\}|\"reasoningContent\":\\{\\})\\}\\}",
        "\\{\"stopReason\":\"(end_turn|tool_use|max_tokens|stop_sequence|guardrail_intervened|x)\"\\}",
        "\\{\"usage\":\\{\"inputTokens\":[0-9]{1,3},\"outputTokens\":-?[0-9]{1,3}\\},\"metrics\":\\{\\}\\}",
        "\\{\"message\":\"(?s).{0,12}\"\\}",
        "(?s).{0,24}",
    ];
    (any::<bool>(), kind, payload.prop_map(String::into_bytes))
}

#[derive(Clone, Debug)]
struct Block {
    tool: bool,
    name: String,
    deltas: Vec<String>,
}

fn blocks() -> impl Strategy<Value = Vec<Block>> {
    let block = (any::<bool>(), "[a-z_]{1,8}", prop::collection::vec("(?s).{1,12}", 0..4))
        .prop_map(|(tool, name, deltas)| Block { tool, name, deltas });
    prop::collection::vec(block, 0..5)
}

fn finish() -> impl Strategy<Value = FinishReason> {
    prop_oneof![
        Just(FinishReason::Stop),
        Just(FinishReason::Length),
        Just(FinishReason::ToolUse),
        Just(FinishReason::ContentFilter),
        Just(FinishReason::StopSequence(None)),
        "[A-Z%]{1,4}".prop_map(|s| FinishReason::StopSequence(Some(s))),
    ]
}

/// A well-formed canonical stream of these blocks, as Bedrock's decoder yields them.
fn canonical(blocks: &[Block], finish: FinishReason, usage: Usage) -> Vec<StreamEvent> {
    let mut out = vec![StreamEvent::MessageStart { id: String::new(), model: String::new(), usage: None }];
    for (i, block) in blocks.iter().enumerate() {
        let index = u32::try_from(i).unwrap_or(u32::MAX);
        let kind = if block.tool {
            BlockKind::ToolUse { id: format!("t{i}"), name: block.name.clone() }
        } else {
            BlockKind::Text
        };
        out.push(StreamEvent::BlockStart { index, block: kind });
        for d in &block.deltas {
            out.push(if block.tool {
                StreamEvent::ToolInputDelta { index, partial_json: d.clone() }
            } else {
                StreamEvent::TextDelta { index, text: d.clone() }
            });
        }
        out.push(StreamEvent::BlockStop { index });
    }
    out.push(StreamEvent::MessageDelta { finish, usage: Some(usage) });
    out.push(StreamEvent::MessageStop);
    out
}

#[test]
fn a_truncated_stream_is_an_error_or_ends_at_message_stop() {
    let whole = tool_stream_events();
    for cut in 0..=TOOL_STREAM.len() {
        let result = decode(events(&TOOL_STREAM[..cut]));
        match cut {
            11 => assert_eq!(result.unwrap(), whole),
            // messageStop came, metadata did not: the end without usage.
            10 => assert_eq!(result.unwrap()[..9], whole[..9]),
            _ => assert!(result.is_err(), "a stream cut after {cut} events read as whole"),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0xbed_c0de),
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_events_never_panic_and_what_passes_is_well_formed(
        stream in prop::collection::vec(frame(), 0..24),
    ) {
        let input = stream.iter().map(|(exception, kind, payload)| (*exception, kind.as_str(), payload.as_slice()));
        if let Ok(events) = decode(input) {
            prop_assert!(well_formed(&events), "{events:?}");
        }
    }

    #[test]
    fn mutated_and_truncated_streams_never_panic(
        cut in 0..=TOOL_STREAM.len(),
        edits in prop::collection::vec((any::<usize>(), any::<usize>(), any::<u8>(), 0..3u8), 0..6),
    ) {
        let mut stream: Vec<(&str, Vec<u8>)> =
            TOOL_STREAM[..cut].iter().map(|(kind, payload)| (*kind, payload.as_bytes().to_vec())).collect();
        for (which, at, byte, how) in edits {
            let Some((_, payload)) = stream.get_mut(which % cut.max(1)) else { continue };
            let at = at % (payload.len() + 1);
            match how {
                0 => payload.insert(at, byte),
                1 if at < payload.len() => { payload.remove(at); }
                _ if at < payload.len() => payload[at] = byte,
                _ => payload.push(byte),
            }
        }
        let input = stream.iter().map(|(kind, payload)| (false, *kind, payload.as_slice()));
        if let Ok(events) = decode(input) {
            prop_assert!(well_formed(&events), "{events:?}");
        }
    }

    #[test]
    fn converse_carries_every_well_formed_stream(
        blocks in blocks(),
        finish in finish(),
        (uncached, read, write, output) in (0..1000u64, 0..1000u64, 0..1000u64, 0..1000u64),
        cut in any::<prop::sample::Index>(),
    ) {
        let usage = Usage {
            input_tokens: uncached + read + write,
            output_tokens: output,
            cache_read_tokens: read,
            cache_write_tokens: write,
            reasoning_tokens: 0,
        };
        let events = canonical(&blocks, finish, usage);
        let encoded = encode(&events);
        prop_assert_eq!(decode(frames(&encoded)).unwrap(), events);
        // Any prefix short of messageStop is an error, never a panic or a stream.
        let stop = encoded.iter().position(|e| e.event_type == "messageStop").unwrap_or(encoded.len());
        let short = cut.index(stop.max(1));
        prop_assert!(decode(frames(&encoded[..short.min(stop)])).is_err());
    }
}
