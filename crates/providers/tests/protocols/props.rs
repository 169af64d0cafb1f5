//! Random bytes, cut and corrupted streams and random splits for each protocol's answer
//! decoder: never a panic, and a valid stream reads the same in any split.

use proptest::prelude::*;
use switchyard_core::config::Protocol;
use switchyard_providers::AnswerDecoder;
use switchyard_providers::eventstream::{self, Message};

use crate::answers::{anthropic_events, bedrock_frames, decode, frame, model_of, normalized, valid_stream};

/// Cuts `bytes` at the given fractions of its length, in order: the pieces of one random split.
fn split<'a>(bytes: &'a [u8], cuts: &[f64]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = cuts.iter().map(|c| ((bytes.len() as f64) * c) as usize).collect();
    at.sort_unstable();
    let mut pieces = Vec::with_capacity(at.len() + 1);
    let mut from = 0;
    for to in at.into_iter().chain([bytes.len()]) {
        pieces.push(&bytes[from..to.max(from)]);
        from = to.max(from);
    }
    pieces
}

/// Pushes every piece, faults or not, then finishes: whatever comes out, nothing panics.
fn feed_all(protocol: Protocol, pieces: &[&[u8]]) -> Vec<String> {
    let mut decoder = AnswerDecoder::new(protocol, model_of(protocol));
    let mut out = Vec::new();
    for piece in pieces {
        let _ = decoder.push(piece, &mut out);
    }
    decoder.finish(&mut out);
    out
}

fn protocols() -> impl Strategy<Value = Protocol> {
    prop_oneof![
        Just(Protocol::OpenAi),
        Just(Protocol::AzureOpenAi),
        Just(Protocol::Anthropic),
        Just(Protocol::Bedrock),
        Just(Protocol::Gemini),
        Just(Protocol::Oci)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x5eed),
        ..ProptestConfig::default()
    })]

    /// Random bytes, in random pieces, to each protocol's decoder.
    #[test]
    fn random_bytes_never_panic(
        protocol in protocols(),
        bytes in proptest::collection::vec(any::<u8>(), 0..512),
        cuts in proptest::collection::vec(0.0..1.0f64, 0..8),
    ) {
        feed_all(protocol, &split(&bytes, &cuts));
    }

    /// A valid stream cut short, in random pieces: no fault and no panic, and what a
    /// translated stream wrote before the cut is the start of what the whole stream writes.
    #[test]
    fn truncated_streams_never_panic_and_read_as_far_as_they_go(
        protocol in protocols(),
        keep in 0.0..1.0f64,
        cuts in proptest::collection::vec(0.0..1.0f64, 0..8),
    ) {
        let full = valid_stream(protocol);
        let (whole, _) = decode(protocol, [&full[..]]);
        let cut = &full[..((full.len() as f64) * keep) as usize];
        let pieces = split(cut, &cuts);
        let mut decoder = AnswerDecoder::new(protocol, model_of(protocol));
        let mut out = Vec::new();
        for piece in &pieces {
            prop_assert!(decoder.push(piece, &mut out).is_ok());
        }
        if !protocol.passes_openai_through() {
            prop_assert!(out.len() <= whole.len());
            prop_assert_eq!(normalized(&out), normalized(&whole[..out.len()]));
        }
        decoder.finish(&mut out);
    }

    /// A valid stream with one byte changed, in random pieces: never a panic.
    #[test]
    fn corrupted_streams_never_panic(
        protocol in protocols(),
        at in 0.0..1.0f64,
        byte in any::<u8>(),
        cuts in proptest::collection::vec(0.0..1.0f64, 0..8),
    ) {
        let mut bytes = valid_stream(protocol);
        let at = (((bytes.len() as f64) * at) as usize).min(bytes.len() - 1);
        bytes[at] = byte;
        feed_all(protocol, &split(&bytes, &cuts));
    }

    /// Well-framed events of the fixtures in any order, some cut short: never a panic.
    #[test]
    fn events_out_of_order_never_panic(
        protocol in prop_oneof![Just(Protocol::Anthropic), Just(Protocol::Bedrock)],
        picks in proptest::collection::vec((any::<prop::sample::Index>(), 0.0..1.0f64, any::<bool>()), 0..24),
        cuts in proptest::collection::vec(0.0..1.0f64, 0..8),
    ) {
        let bytes: Vec<u8> = match protocol {
            Protocol::OpenAi | Protocol::AzureOpenAi | Protocol::Gemini | Protocol::Oci => unreachable!("not drawn"),
            Protocol::Anthropic => {
                let events = anthropic_events();
                picks.iter().flat_map(|(i, keep, whole)| {
                    let event = i.get(&events).as_bytes();
                    let event = if *whole { event } else { &event[..((event.len() as f64) * keep) as usize] };
                    [event, b"\n\n"].concat()
                }).collect()
            }
            Protocol::Bedrock => {
                let frames = bedrock_frames();
                let messages: Vec<Message> = frames.iter().map(|f| {
                    let mut decoder = eventstream::Decoder::new();
                    decoder.push(f).expect("a frame").pop().expect("one message")
                }).collect();
                picks.iter().flat_map(|(i, keep, whole)| {
                    let mut message = i.get(&messages).clone();
                    if !whole {
                        message.payload = message.payload.slice(..((message.payload.len() as f64) * keep) as usize);
                    }
                    frame(&message)
                }).collect()
            }
        };
        feed_all(protocol, &split(&bytes, &cuts));
    }

    /// A valid stream in random pieces reads as it does whole.
    #[test]
    fn random_splits_read_as_the_whole(
        protocol in protocols(),
        cuts in proptest::collection::vec(0.0..1.0f64, 0..16),
    ) {
        let full = valid_stream(protocol);
        let (whole, fault) = decode(protocol, [&full[..]]);
        prop_assert_eq!(fault, None);
        let (pieces, fault) = decode(protocol, split(&full, &cuts));
        prop_assert_eq!(fault, None);
        prop_assert_eq!(normalized(&pieces), normalized(&whole));
    }
}
