//! Property tests of the stream decoders: random, mutated and truncated input never panics and
//! garbage is an error value; any split of a stream reads the same; every well-formed canonical
//! stream survives each encoder and decoder.

use proptest::prelude::*;
use switchyard_wire::canonical::{BlockKind, DecodeError, FinishReason, StreamEvent, Usage};
use switchyard_wire::sse::SseParser;
use switchyard_wire::{anthropic_codec, openai_codec};

use crate::{anthropic, openai};

/// The valid streams of the snapshot tests, with the decoder that reads each.
type Decode = fn(&[u8]) -> Result<Vec<StreamEvent>, DecodeError>;

fn valid_streams() -> [(&'static str, Decode); 4] {
    [
        (openai::TEXT_STREAM, openai_codec::decode_stream),
        (openai::TOOL_STREAM, openai_codec::decode_stream),
        (anthropic::TEXT_STREAM, anthropic_codec::decode_stream),
        (anthropic::TOOL_STREAM, anthropic_codec::decode_stream),
    ]
}

/// Feeds a stream in the given pieces through the SSE parser and a decoder.
fn decode_in_pieces(bytes: &[u8], cuts: &[usize], openai: bool) -> Result<Vec<StreamEvent>, DecodeError> {
    let mut parser = SseParser::default();
    let mut sse = Vec::new();
    let mut out = Vec::new();
    let mut o = openai_codec::StreamDecoder::new();
    let mut a = anthropic_codec::StreamDecoder::new();
    let mut from = 0;
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.sort_unstable();
    points.push(bytes.len());
    for to in points {
        parser.push(&bytes[from..to], &mut sse).map_err(|e| DecodeError::new(e.to_string()))?;
        from = to;
        for event in sse.drain(..) {
            if openai { o.push(&event, &mut out)? } else { a.push(&event, &mut out)? }
        }
    }
    parser.finish(&mut sse);
    for event in sse.drain(..) {
        if openai { o.push(&event, &mut out)? } else { a.push(&event, &mut out)? }
    }
    if openai {
        o.finish()?
    } else {
        a.finish()?
    }
    Ok(out)
}

#[test]
fn a_truncated_stream_is_an_error_or_the_whole_stream() {
    for (stream, decode) in valid_streams() {
        let bytes = stream.as_bytes();
        let whole = decode(bytes).unwrap();
        for cut in 0..bytes.len() {
            match decode(&bytes[..cut]) {
                Err(_) => (),
                Ok(events) => assert_eq!(events, whole, "a stream cut at {cut} of {} read as whole", bytes.len()),
            }
        }
    }
}

#[derive(Clone, Debug)]
struct Block {
    tool: bool,
    id: String,
    name: String,
    deltas: Vec<String>,
}

fn blocks() -> impl Strategy<Value = Vec<Block>> {
    let block = (any::<bool>(), "[a-z_]{1,8}", prop::collection::vec("(?s).{1,12}", 1..4))
        .prop_map(|(tool, name, deltas)| Block { tool, id: String::new(), name, deltas });
    prop::collection::vec(block, 0..5).prop_map(|mut blocks| {
        for (i, block) in blocks.iter_mut().enumerate() {
            block.id = format!("t{i}");
        }
        blocks
    })
}

fn finish() -> impl Strategy<Value = FinishReason> {
    prop_oneof![
        Just(FinishReason::Stop),
        Just(FinishReason::Length),
        Just(FinishReason::ToolUse),
        Just(FinishReason::ContentFilter),
        Just(FinishReason::StopSequence(None)),
        "[A-Z]{1,4}".prop_map(|s| FinishReason::StopSequence(Some(s))),
    ]
}

/// A well-formed canonical stream of these blocks.
fn events(blocks: &[Block], start: Option<Usage>, finish: FinishReason, usage: Option<Usage>) -> Vec<StreamEvent> {
    let mut out = vec![StreamEvent::MessageStart { id: "msg_p".into(), model: "m".into(), usage: start }];
    for (i, block) in blocks.iter().enumerate() {
        let index = u32::try_from(i).unwrap();
        let kind = if block.tool {
            BlockKind::ToolUse { id: block.id.clone(), name: block.name.clone() }
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
    out.push(StreamEvent::MessageDelta { finish, usage });
    out.push(StreamEvent::MessageStop);
    out
}

/// Consecutive text blocks run together in a chunk stream: one block.
fn merged_text(blocks: &[Block]) -> Vec<Block> {
    let mut out: Vec<Block> = Vec::new();
    for block in blocks {
        match out.last_mut() {
            Some(last) if !last.tool && !block.tool => last.deltas.extend(block.deltas.iter().cloned()),
            Some(_) | None => out.push(block.clone()),
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0xc0dec),
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_bytes_are_an_error(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        prop_assert!(openai_codec::decode_stream(&bytes).is_err());
        prop_assert!(anthropic_codec::decode_stream(&bytes).is_err());
    }

    #[test]
    fn random_sse_lines_never_panic(
        lines in prop::collection::vec(
            prop_oneof![
                Just("data: [DONE]".to_owned()),
                Just(String::new()),
                Just("event: message_start".to_owned()),
                "data: \\{\"type\":\"(message_start|content_block_start|content_block_delta|content_block_stop|message_delta|message_stop|ping|error)\",\"index\":[0-3](,\"delta\":\\{\"type\":\"(text_delta|input_json_delta)\"\\})?\\}",
                "data: \\{\"id\":\"x\",\"choices\":\\[\\{\"index\":[01],\"delta\":\\{(\"content\":\"a\"|\"tool_calls\":\\[\\{\"index\":[0-2](,\"id\":\"c\",\"function\":\\{\"name\":\"f\"\\})?\\}\\])?\\}(,\"finish_reason\":\"stop\")?\\}\\]\\}",
                "data: (?s).{0,24}",
            ],
            0..24,
        )
    ) {
        let text = lines.join("\n");
        let _ = openai_codec::decode_stream(text.as_bytes());
        let _ = anthropic_codec::decode_stream(text.as_bytes());
    }

    #[test]
    fn mutated_streams_never_panic(
        which in 0..4usize,
        edits in prop::collection::vec((any::<usize>(), any::<u8>(), 0..3u8), 1..8),
    ) {
        let (stream, decode) = valid_streams()[which];
        let mut bytes = stream.as_bytes().to_vec();
        for (at, byte, how) in edits {
            let at = at % (bytes.len() + 1);
            match how {
                0 => bytes.insert(at, byte),
                1 if at < bytes.len() => { bytes.remove(at); }
                _ if at < bytes.len() => bytes[at] = byte,
                _ => bytes.push(byte),
            }
        }
        let _ = decode(&bytes);
    }

    #[test]
    fn any_split_reads_the_same(which in 0..4usize, cuts in prop::collection::vec(any::<usize>(), 0..12)) {
        let (stream, decode) = valid_streams()[which];
        let whole = decode(stream.as_bytes()).unwrap();
        prop_assert_eq!(decode_in_pieces(stream.as_bytes(), &cuts, which < 2).unwrap(), whole);
    }

    #[test]
    fn anthropic_carries_every_well_formed_stream(
        blocks in blocks(),
        finish in finish(),
        (uncached, read, write, output) in (0..1000u64, 0..1000u64, 0..1000u64, 0..1000u64),
    ) {
        let input = Usage { input_tokens: uncached + read + write, cache_read_tokens: read, cache_write_tokens: write, ..Usage::default() };
        let events = events(&blocks, Some(input), finish, Some(Usage { output_tokens: output, ..input }));
        let mut encoder = anthropic_codec::StreamEncoder::new();
        let mut bytes = Vec::new();
        for event in &events {
            encoder.encode(event, &mut bytes);
        }
        prop_assert_eq!(anthropic_codec::decode_stream(&bytes).unwrap(), events);
    }

    #[test]
    fn openai_carries_every_well_formed_stream(
        blocks in blocks(),
        finish in prop_oneof![
            Just(FinishReason::Stop),
            Just(FinishReason::Length),
            Just(FinishReason::ToolUse),
            Just(FinishReason::ContentFilter),
        ],
        (input, read, output, reasoning) in (0..1000u64, 0..1000u64, 0..1000u64, 0..1000u64),
    ) {
        let usage = Usage { input_tokens: input, output_tokens: output, cache_read_tokens: read, cache_write_tokens: 0, reasoning_tokens: reasoning };
        let events_in = events(&blocks, None, finish.clone(), Some(usage));
        let mut encoder = openai_codec::StreamEncoder::new(7, true);
        let mut bytes = Vec::new();
        for event in &events_in {
            encoder.encode(event, &mut bytes);
        }
        let expected = events(&merged_text(&blocks), None, finish, Some(usage));
        prop_assert_eq!(openai_codec::decode_stream(&bytes).unwrap(), expected);
    }
}
