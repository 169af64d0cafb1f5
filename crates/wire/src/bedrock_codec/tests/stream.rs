//! ConverseStream events ⇄ canonical stream events, pinned both ways; exceptions; disorder.

use super::{check_json, decode, encode, ev, events, frames, json};
use crate::bedrock_codec::{EncodedEvent, StreamDecoder};
use crate::canonical::{ErrorClass, ErrorObject, FinishReason, StreamEvent, Usage};

/// A text block (begun by its first delta, as Bedrock does), then a tool call, then the
/// usage; payloads carry Bedrock's `p` padding here and there.
pub(super) const TOOL_STREAM: &[(&str, &str)] = &[
    ("messageStart", r#"{"p":"abcdefghijklmnopqrstuvwxyzABCDEF","role":"assistant"}"#),
    ("contentBlockDelta", r#"{"contentBlockIndex":0,"delta":{"text":"Okay."},"p":"abcdef"}"#),
    ("contentBlockDelta", r#"{"contentBlockIndex":0,"delta":{"text":" Checking."}}"#),
    ("contentBlockStop", r#"{"contentBlockIndex":0,"p":"abcdefghijkl"}"#),
    (
        "contentBlockStart",
        r#"{"contentBlockIndex":1,"start":{"toolUse":{"toolUseId":"tooluse_01","name":"get_weather"}}}"#,
    ),
    ("contentBlockDelta", r#"{"contentBlockIndex":1,"delta":{"toolUse":{"input":""}}}"#),
    ("contentBlockDelta", r#"{"contentBlockIndex":1,"delta":{"toolUse":{"input":"{\"city\":"}}}"#),
    ("contentBlockDelta", r#"{"contentBlockIndex":1,"delta":{"toolUse":{"input":" \"Paris\"}"}}}"#),
    ("contentBlockStop", r#"{"contentBlockIndex":1}"#),
    ("messageStop", r#"{"stopReason":"tool_use","p":"ab"}"#),
    (
        "metadata",
        r#"{"usage":{"inputTokens":472,"outputTokens":89,"totalTokens":1061,"cacheReadInputTokens":500},
            "metrics":{"latencyMs":1203},"p":"abcdefgh"}"#,
    ),
];

pub(super) fn tool_stream_usage() -> Usage {
    Usage { input_tokens: 972, output_tokens: 89, cache_read_tokens: 500, ..Usage::default() }
}

pub(super) fn tool_stream_events() -> Vec<StreamEvent> {
    vec![
        ev::start(),
        ev::text_block(0),
        ev::text(0, "Okay."),
        ev::text(0, " Checking."),
        ev::stop(0),
        ev::tool_block(1, "tooluse_01", "get_weather"),
        ev::input(1, r#"{"city":"#),
        ev::input(1, r#" "Paris"}"#),
        ev::stop(1),
        ev::delta(FinishReason::ToolUse, Some(tool_stream_usage())),
        StreamEvent::MessageStop,
    ]
}

#[test]
fn a_stream_with_text_and_a_tool_call_decodes_to_the_exact_event_sequence() {
    assert_eq!(decode(events(TOOL_STREAM)).unwrap(), tool_stream_events());
}

#[test]
fn the_message_delta_waits_for_metadata_or_the_end() {
    let mut decoder = StreamDecoder::new();
    let mut out = Vec::new();
    let (head, tail) = TOOL_STREAM.split_at(TOOL_STREAM.len() - 1);
    for (kind, payload) in head {
        decoder.push_event(kind, payload.as_bytes(), &mut out).unwrap();
    }
    assert_eq!(out, tool_stream_events()[..9], "messageStop is held");
    decoder.push_event(tail[0].0, tail[0].1.as_bytes(), &mut out).unwrap();
    assert_eq!(out, tool_stream_events());
    // Without metadata, the end yields the finish without usage.
    let mut expected = tool_stream_events();
    expected[9] = ev::delta(FinishReason::ToolUse, None);
    assert_eq!(decode(events(head)).unwrap(), expected);
}

/// A reasoning model's thoughts (`reasoningContent`) are not carried: their block is skipped,
/// and the answer's blocks are numbered without it.
#[test]
fn reasoning_blocks_are_skipped() {
    let stream: &[(&str, &str)] = &[
        ("messageStart", r#"{"role":"assistant"}"#),
        ("contentBlockDelta", r#"{"contentBlockIndex":0,"delta":{"reasoningContent":{"text":"Let me think"}}}"#),
        ("contentBlockDelta", r#"{"contentBlockIndex":0,"delta":{"reasoningContent":{"signature":"c2ln"}}}"#),
        ("contentBlockStop", r#"{"contentBlockIndex":0}"#),
        ("contentBlockDelta", r#"{"contentBlockIndex":1,"delta":{"text":"Paris."}}"#),
        ("contentBlockStop", r#"{"contentBlockIndex":1}"#),
        ("messageStop", r#"{"stopReason":"end_turn"}"#),
        ("metadata", r#"{"usage":{"inputTokens":5,"outputTokens":9}}"#),
    ];
    let usage = Usage { input_tokens: 5, output_tokens: 9, ..Usage::default() };
    assert_eq!(
        decode(events(stream)).unwrap(),
        [
            ev::start(),
            ev::text_block(0),
            ev::text(0, "Paris."),
            ev::stop(0),
            ev::delta(FinishReason::Stop, Some(usage)),
            StreamEvent::MessageStop,
        ]
    );
}

#[test]
fn text_blocks_with_or_without_a_start_and_blocks_left_open() {
    let stream: &[(&str, &str)] = &[
        ("messageStart", r#"{"role":"assistant"}"#),
        ("contentBlockStart", r#"{"contentBlockIndex":0,"start":{}}"#),
        ("contentBlockDelta", r#"{"contentBlockIndex":0,"delta":{"text":"a"}}"#),
        // Block 0 is left open: block 2 (indices may skip) closes it.
        ("contentBlockDelta", r#"{"contentBlockIndex":2,"delta":{"text":""}}"#),
        ("contentBlockDelta", r#"{"contentBlockIndex":2,"delta":{"text":"b"}}"#),
        ("someFutureEvent", r#"{"anything":true}"#),
        ("messageStop", r#"{"stopReason":"stop_sequence","additionalModelResponseFields":{"stop_sequence":"%%"}}"#),
        ("metadata", r#"{"usage":{"inputTokens":3,"outputTokens":2,"totalTokens":5},"metrics":{"latencyMs":1}}"#),
    ];
    assert_eq!(
        decode(events(stream)).unwrap(),
        vec![
            ev::start(),
            ev::text_block(0),
            ev::text(0, "a"),
            ev::stop(0),
            ev::text_block(1),
            ev::text(1, "b"),
            ev::stop(1),
            ev::delta(
                FinishReason::StopSequence(Some("%%".into())),
                Some(Usage { input_tokens: 3, output_tokens: 2, ..Usage::default() })
            ),
            StreamEvent::MessageStop,
        ]
    );
}

#[track_caller]
fn check_refused(stream: &[(&str, &str)], expected: &str) {
    let err = decode(events(stream)).unwrap_err();
    assert!(err.message.contains(expected), "{:?} does not contain {expected:?}", err.message);
}

#[test]
fn disorder_garbage_and_early_ends_are_refused() {
    let start = ("messageStart", r#"{"role":"assistant"}"#);
    let text = |i: u32| format!(r#"{{"contentBlockIndex":{i},"delta":{{"text":"x"}}}}"#);
    let stop = |i: u32| format!(r#"{{"contentBlockIndex":{i}}}"#);
    let (t0, t1, s0) = (text(0), text(1), stop(0));
    check_refused(&[], "ended before messageStop");
    check_refused(&[start], "ended before messageStop");
    check_refused(&TOOL_STREAM[..9], "ended before messageStop");
    check_refused(&[("contentBlockDelta", &t0)], "contentBlockDelta before messageStart");
    check_refused(&[start, start], "a second message start");
    check_refused(&[start, ("messageStart", r#"{"role":"user"}"#)], "role 'user'");
    check_refused(&[start, ("contentBlockDelta", &t1), ("contentBlockDelta", &t0)], "block 0 began after block 1");
    check_refused(
        &[start, ("contentBlockDelta", &t0), ("contentBlockStop", &s0), ("contentBlockDelta", &t0)],
        "block 0",
    );
    check_refused(&[start, ("contentBlockStop", &s0)], "contentBlockStop of block 0, which is not open");
    check_refused(
        &[start, ("contentBlockDelta", r#"{"contentBlockIndex":0,"delta":{"toolUse":{"input":"{"}}}"#)],
        "not open",
    );
    check_refused(&[start, TOOL_STREAM[4], ("contentBlockDelta", &text(1))], "text in block 1, a tool call");
    check_refused(
        &[
            start,
            ("contentBlockDelta", &t0),
            ("contentBlockDelta", r#"{"contentBlockIndex":0,"delta":{"reasoningContent":{"text":"hm"}}}"#),
        ],
        "a delta of another kind in block 0",
    );
    check_refused(&[start, ("contentBlockStart", r#"{"contentBlockIndex":0,"start":{"image":{}}}"#)], "'image' block");
    check_refused(&[start, ("contentBlockDelta", "not json")], "a malformed contentBlockDelta event");
    check_refused(&[start, ("metadata", r#"{"usage":{"inputTokens":1}}"#)], "metadata before messageStop");
    check_refused(
        &[start, ("messageStop", r#"{"stopReason":"end_turn"}"#), ("contentBlockDelta", &t0)],
        "after messageStop",
    );
    let mut after = TOOL_STREAM.to_vec();
    after.push(("metadata", r#"{}"#));
    check_refused(&after, "after the end of the stream");
    // After a failure, every call fails.
    let mut decoder = StreamDecoder::new();
    let mut out = Vec::new();
    assert!(decoder.push_event("contentBlockStop", b"{}", &mut out).is_err());
    assert!(decoder.push_event("messageStart", b"{}", &mut out).is_err());
    assert!(decoder.finish(&mut out).is_err());
    assert!(out.is_empty());
}

#[test]
fn exceptions_in_the_stream_end_it_with_their_class() {
    for (kind, payload, class) in [
        (
            "throttlingException",
            r#"{"message":"Too many tokens, please wait before trying again."}"#,
            ErrorClass::RateLimit,
        ),
        (
            "serviceUnavailableException",
            r#"{"message":"Bedrock is unable to process your request."}"#,
            ErrorClass::Overloaded,
        ),
        ("internalServerException", r#"{"message":"The system encountered an unexpected error"}"#, ErrorClass::Server),
        (
            "modelStreamErrorException",
            r#"{"message":"model failed","originalStatusCode":500,"originalMessage":"boom"}"#,
            ErrorClass::Server,
        ),
        ("validationException", r#"{"message":"Input is too long for requested model."}"#, ErrorClass::ContextLength),
        ("validationException", r#"{"message":"messages.1.content: blank text"}"#, ErrorClass::InvalidRequest),
        ("novelException", r#"{"message":"new"}"#, ErrorClass::Server),
    ] {
        let mut frames: Vec<(bool, &str, &[u8])> = events(&TOOL_STREAM[..2]).collect();
        frames.push((true, kind, payload.as_bytes()));
        let out = decode(frames).unwrap();
        let message = json(payload)["message"].as_str().unwrap().to_owned();
        let expected = StreamEvent::Error(ErrorObject { class, message, code: Some(kind.into()), param: None });
        assert_eq!(out[3..], [expected], "{kind}");
    }
    // Nothing follows an exception; one may come before anything else, and in any payload.
    let mut decoder = StreamDecoder::new();
    let mut out = Vec::new();
    decoder.push_exception("throttlingException", b"slow down", &mut out).unwrap();
    assert!(matches!(&out[0], StreamEvent::Error(e) if e.class == ErrorClass::RateLimit && e.message == "slow down"));
    assert!(decoder.push_event("messageStart", b"{}", &mut out).is_err());
    // An exception after messageStop replaces the finish that was held.
    let mut frames: Vec<(bool, &str, &[u8])> = events(&TOOL_STREAM[..10]).collect();
    frames.push((true, "internalServerException", b"{}"));
    let out = decode(frames).unwrap();
    assert!(matches!(&out[..], [.., StreamEvent::BlockStop { index: 1 }, StreamEvent::Error(_)]), "{out:?}");
}

#[test]
fn canonical_events_encode_to_the_exact_converse_stream() {
    let encoded = encode(&tool_stream_events());
    let expected: &[(&str, &str)] = &[
        ("messageStart", r#"{"role":"assistant"}"#),
        ("contentBlockDelta", r#"{"contentBlockIndex":0,"delta":{"text":"Okay."}}"#),
        ("contentBlockDelta", r#"{"contentBlockIndex":0,"delta":{"text":" Checking."}}"#),
        ("contentBlockStop", r#"{"contentBlockIndex":0}"#),
        (
            "contentBlockStart",
            r#"{"contentBlockIndex":1,"start":{"toolUse":{"toolUseId":"tooluse_01","name":"get_weather"}}}"#,
        ),
        ("contentBlockDelta", r#"{"contentBlockIndex":1,"delta":{"toolUse":{"input":"{\"city\":"}}}"#),
        ("contentBlockDelta", r#"{"contentBlockIndex":1,"delta":{"toolUse":{"input":" \"Paris\"}"}}}"#),
        ("contentBlockStop", r#"{"contentBlockIndex":1}"#),
        ("messageStop", r#"{"stopReason":"tool_use"}"#),
        (
            "metadata",
            r#"{"usage":{"inputTokens":472,"outputTokens":89,"totalTokens":1061,"cacheReadInputTokens":500},
                "metrics":{"latencyMs":0}}"#,
        ),
    ];
    assert_eq!(encoded.len(), expected.len(), "{encoded:?}");
    for (event, (kind, payload)) in encoded.iter().zip(expected) {
        assert!(!event.exception);
        assert_eq!(event.event_type, *kind);
        check_json(&serde_json::from_slice(&event.payload).unwrap(), payload);
    }
    assert_eq!(decode(frames(&encoded)).unwrap(), tool_stream_events(), "what was written reads back");
}

#[test]
fn empty_text_blocks_pings_and_errors_encode() {
    let stream = vec![
        ev::start(),
        StreamEvent::Ping,
        ev::text_block(0),
        ev::stop(0),
        ev::delta(FinishReason::StopSequence(Some("END".into())), None),
        StreamEvent::MessageStop,
    ];
    let encoded = encode(&stream);
    let kinds: Vec<&str> = encoded.iter().map(|e| e.event_type).collect();
    assert_eq!(kinds, ["messageStart", "contentBlockDelta", "contentBlockStop", "messageStop", "metadata"]);
    check_json(
        &serde_json::from_slice(&encoded[3].payload).unwrap(),
        r#"{"stopReason":"stop_sequence","additionalModelResponseFields":{"stop_sequence":"END"}}"#,
    );
    check_json(
        &serde_json::from_slice(&encoded[4].payload).unwrap(),
        r#"{"usage":{"inputTokens":0,"outputTokens":0,"totalTokens":0},"metrics":{"latencyMs":0}}"#,
    );
    let back = decode(frames(&encoded)).unwrap();
    let mut expected: Vec<StreamEvent> = stream.into_iter().filter(|e| *e != StreamEvent::Ping).collect();
    expected[3] = ev::delta(FinishReason::StopSequence(Some("END".into())), Some(Usage::default()));
    assert_eq!(back, expected, "an empty block survives; unknown usage reads back as zeros");
    for (class, kind) in [
        (ErrorClass::RateLimit, "throttlingException"),
        (ErrorClass::Overloaded, "serviceUnavailableException"),
        (ErrorClass::Server, "internalServerException"),
        (ErrorClass::ContextLength, "validationException"),
        (ErrorClass::InvalidRequest, "validationException"),
        (ErrorClass::NotFound, "validationException"),
    ] {
        let encoded = encode(&[StreamEvent::Error(ErrorObject::new(class, "said so"))]);
        let payload = br#"{"message":"said so"}"#.to_vec();
        assert_eq!(encoded, [EncodedEvent { exception: true, event_type: kind, payload }]);
    }
}
