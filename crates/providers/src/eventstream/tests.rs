//! Tests of the eventstream decoder and encoder: known frames, each error, every split point,
//! and random input and chunkings.

use proptest::prelude::*;

use super::*;

fn string(name: &str, value: &str) -> Header {
    Header { name: name.into(), value: HeaderValue::String(value.into()) }
}

/// A frame around raw header bytes and a payload, with correct checksums.
fn frame(headers: &[u8], payload: &[u8]) -> Vec<u8> {
    let total = (PRELUDE + headers.len() + payload.len() + TRAILER) as u32;
    let mut out = prelude(total, headers.len() as u32);
    out.extend_from_slice(headers);
    out.extend_from_slice(payload);
    out.extend_from_slice(&crc32(&out).to_be_bytes());
    out
}

/// A prelude with a correct checksum, whatever the lengths say.
fn prelude(total: u32, headers: u32) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&total.to_be_bytes());
    out.extend_from_slice(&headers.to_be_bytes());
    out.extend_from_slice(&crc32(&out).to_be_bytes());
    out
}

/// All of `bytes` in one chunk, then the end of the stream.
fn decode_all(bytes: &[u8]) -> Result<Vec<Message>, FrameError> {
    let mut decoder = Decoder::new();
    let messages = decoder.push(bytes)?;
    decoder.finish()?;
    Ok(messages)
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
}

#[test]
fn crc32_is_the_ieee_one() {
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926, "the standard check value");
    assert_eq!(crc32(b""), 0);
}

/// Every header type, written out byte by byte; the two checksums were computed with Python's
/// `zlib.crc32`, not with this module.
#[test]
fn a_hand_built_frame_with_every_header_type() {
    let headers: [&[u8]; 10] = [
        b"\x01t\x00",
        b"\x01f\x01",
        b"\x04byte\x02\xfe",
        b"\x05short\x03\xfe\xd4",
        b"\x03int\x04\x00\x01\x11\x70",
        b"\x04long\x05\x01\x02\x03\x04\x05\x06\x07\x08",
        b"\x05bytes\x06\x00\x03\x00\x01\xff",
        b"\x03str\x07\x00\x06h\xc3\xa9llo",
        b"\x04time\x08\x00\x00\x01\x8b\xcf\xe5\x68\x7b",
        b"\x04uuid\x09\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f",
    ];
    let mut bytes = vec![0, 0, 0, 133, 0, 0, 0, 106, 0xb1, 0x43, 0x68, 0xcd];
    bytes.extend(headers.concat());
    bytes.extend_from_slice(br#"{"ok":true}"#);
    bytes.extend_from_slice(&[0xb1, 0x15, 0x5b, 0x2b]);
    assert_eq!(bytes.len(), 133);

    let header = |name: &str, value| Header { name: name.into(), value };
    let expected = Message::new(
        vec![
            header("t", HeaderValue::Bool(true)),
            header("f", HeaderValue::Bool(false)),
            header("byte", HeaderValue::Byte(-2)),
            header("short", HeaderValue::Short(-300)),
            header("int", HeaderValue::Int(70_000)),
            header("long", HeaderValue::Long(0x0102_0304_0506_0708)),
            header("bytes", HeaderValue::Bytes(Bytes::from_static(&[0, 1, 0xff]))),
            header("str", HeaderValue::String("héllo".into())),
            header("time", HeaderValue::Timestamp(1_700_000_000_123)),
            header("uuid", HeaderValue::Uuid(std::array::from_fn(|i| i as u8))),
        ],
        Bytes::from_static(br#"{"ok":true}"#),
    );
    assert_eq!(decode_all(&bytes), Ok(vec![expected.clone()]));
    assert_eq!(encode(&expected).unwrap(), bytes, "the encoder writes the same bytes");
}

/// Frames written by another implementation (smithy-rs's eventstream test data).
#[test]
fn frames_written_elsewhere_decode() {
    let no_headers = hex("0000002400000000516356ad616e6f746865722074657374207061796c6f61648df80e65");
    assert_eq!(decode_all(&no_headers), Ok(vec![Message::new(vec![], &b"another test payload"[..])]));
    let empty_payload = hex("0000001f0000000f172dc2ab0b736f6d652d6865616465720301f4933c5cad");
    let header = Header { name: "some-header".into(), value: HeaderValue::Short(500) };
    assert_eq!(decode_all(&empty_payload), Ok(vec![Message::new(vec![header], Bytes::new())]));
}

fn bedrock_stream() -> Vec<Message> {
    vec![
        Message::new_event("messageStart", &br#"{"role":"assistant"}"#[..]),
        Message::new_event("contentBlockDelta", &br#"{"contentBlockIndex":0,"delta":{"text":"Hi"}}"#[..]),
        Message::new(vec![], Bytes::new()),
        Message::new_exception("throttlingException", &br#"{"message":"Too many requests"}"#[..]),
    ]
}

fn encode_all(messages: &[Message]) -> Vec<u8> {
    messages.iter().flat_map(|m| encode(m).unwrap()).collect()
}

#[test]
fn messages_round_trip() {
    let messages = bedrock_stream();
    assert_eq!(decode_all(&encode_all(&messages)), Ok(messages));
}

/// Split anywhere into two chunks, the same messages come out; fed a byte at a time, each
/// message comes out exactly when its last byte arrives.
#[test]
fn every_split_point() {
    let messages = bedrock_stream();
    let bytes = encode_all(&messages);
    for split in 0..=bytes.len() {
        let mut decoder = Decoder::new();
        let mut got = decoder.push(&bytes[..split]).unwrap();
        got.extend(decoder.push(&bytes[split..]).unwrap());
        assert_eq!(decoder.finish(), Ok(()));
        assert_eq!(got, messages, "split at {split}");
    }
    let ends: Vec<usize> = messages
        .iter()
        .scan(0, |end, m| {
            *end += encode(m).unwrap().len();
            Some(*end)
        })
        .collect();
    let mut decoder = Decoder::new();
    let mut got = Vec::new();
    for (i, byte) in bytes.iter().enumerate() {
        let out = decoder.push(std::slice::from_ref(byte)).unwrap();
        let completed = ends.iter().filter(|&&end| end == i + 1).count();
        assert_eq!(out.len(), completed, "after byte {i}");
        got.extend(out);
    }
    assert_eq!(got, messages);
}

/// A stream cut anywhere inside a frame gives no message for it and `Truncated` at the end.
#[test]
fn truncated_input_at_every_point() {
    let bytes = encode(&bedrock_stream()[1]).unwrap();
    for cut in 1..bytes.len() {
        let mut decoder = Decoder::new();
        assert_eq!(decoder.push(&bytes[..cut]), Ok(vec![]), "cut at {cut}");
        assert_eq!(decoder.buffered(), cut);
        assert_eq!(decoder.finish(), Err(FrameError::Truncated { buffered: cut }));
    }
    assert_eq!(Decoder::new().finish(), Ok(()), "an empty stream is a complete one");
}

#[test]
fn a_bad_prelude_checksum_is_seen_from_the_prelude_alone() {
    let mut bytes = encode(&bedrock_stream()[0]).unwrap();
    bytes[9] ^= 0x01;
    let mut decoder = Decoder::new();
    let error = decoder.push(&bytes[..PRELUDE]).unwrap_err();
    assert!(matches!(error, FrameError::PreludeCrc { .. }), "{error}");
    assert_eq!(error.kind(), "prelude_crc");
    // A length byte changed is caught by the same checksum.
    let mut bytes = encode(&bedrock_stream()[0]).unwrap();
    bytes[1] = 0xff;
    assert!(matches!(decode_all(&bytes), Err(FrameError::PreludeCrc { .. })));
}

#[test]
fn a_bad_message_checksum() {
    let good = encode(&bedrock_stream()[1]).unwrap();
    for at in [PRELUDE, good.len() / 2, good.len() - TRAILER - 1, good.len() - 1] {
        let mut bytes = good.clone();
        bytes[at] ^= 0x80;
        let error = decode_all(&bytes).unwrap_err();
        assert!(matches!(error, FrameError::MessageCrc { .. }), "byte {at}: {error}");
    }
}

/// Lengths are refused from the prelude, before the frame they announce is waited for.
#[test]
fn lengths_are_checked_before_buffering() {
    let mut decoder = Decoder::new();
    assert_eq!(decoder.push(&prelude(u32::MAX, 0)), Err(FrameError::FrameTooLarge { total: u32::MAX, max: MAX_FRAME }));
    assert_eq!(decoder.buffered(), 0, "nothing kept after an error");
    let mut small = Decoder::with_max_frame(64);
    assert_eq!(small.push(&prelude(65, 0)), Err(FrameError::FrameTooLarge { total: 65, max: 64 }));
    assert_eq!(Decoder::with_max_frame(64).push(&prelude(64, 0)), Ok(vec![]), "the limit itself is allowed");
    for total in [0, 1, 12, 15] {
        assert_eq!(Decoder::new().push(&prelude(total, 0)), Err(FrameError::FrameTooShort { total }));
    }
    assert_eq!(Decoder::new().push(&prelude(20, 5)), Err(FrameError::HeadersTooLong { headers: 5, total: 20 }));
    assert_eq!(decode_all(&frame(b"", b"")), Ok(vec![Message::default()]), "16 bytes is the smallest frame");
}

#[test]
fn malformed_headers_are_errors() {
    let cases: [(&[u8], FrameError); 8] = [
        (b"\x03str\x07\x00\x09abc", FrameError::HeaderTruncated { index: 0 }),
        (b"\x01a\x00\x05short\x03\xfe", FrameError::HeaderTruncated { index: 1 }),
        (b"\x09abc", FrameError::HeaderTruncated { index: 0 }),
        (b"\x01a", FrameError::HeaderTruncated { index: 0 }),
        (b"\x01a\x0a", FrameError::UnknownHeaderType { index: 0, type_byte: 10 }),
        (b"\x00\x00", FrameError::EmptyHeaderName { index: 0 }),
        (b"\x01\xff\x00", FrameError::NotUtf8 { index: 0 }),
        (b"\x01a\x00\x01s\x07\x00\x02\xc3\x28", FrameError::NotUtf8 { index: 1 }),
    ];
    for (headers, expected) in cases {
        assert_eq!(decode_all(&frame(headers, b"payload")), Err(expected), "{headers:?}");
    }
}

/// The first error ends decoding; messages completed before it in the same chunk still come
/// out, and the error follows.
#[test]
fn errors_stick() {
    let good = encode(&bedrock_stream()[0]).unwrap();
    let mut bad = good.clone();
    bad[PRELUDE + 2] ^= 1;
    let mut decoder = Decoder::new();
    assert_eq!(decoder.push(&[good.clone(), bad].concat()).unwrap().len(), 1);
    let error = decoder.next_message().unwrap_err();
    assert!(matches!(error, FrameError::MessageCrc { .. }));
    assert_eq!(decoder.push(&good), Err(error.clone()), "no resynchronising after garbage");
    assert_eq!(decoder.finish(), Err(error));
    assert_eq!(decoder.buffered(), 0);
}

#[test]
fn bedrock_messages_classify() {
    let [start, delta, empty, throttled] = <[Message; 4]>::try_from(bedrock_stream()).unwrap();
    assert_eq!(start.message_type(), Some(MessageType::Event));
    assert_eq!(start.event_type(), Some("messageStart"));
    assert_eq!(start.content_type(), Some("application/json"));
    assert_eq!((start.exception(), delta.exception(), empty.exception()), (None, None, None));
    assert_eq!(empty.message_type(), None);
    assert_eq!(throttled.message_type(), Some(MessageType::Exception));
    assert_eq!(throttled.exception_type(), Some("throttlingException"));
    assert_eq!(throttled.exception(), Some(StreamException::Throttling));
    assert_eq!(throttled.failure_text().as_deref(), Some("Too many requests"));

    for (name, expected) in [
        ("throttlingException", StreamException::Throttling),
        ("ThrottlingException", StreamException::Throttling),
        ("serviceUnavailableException", StreamException::ServiceUnavailable),
        ("modelStreamErrorException", StreamException::ModelStreamError),
        ("modelTimeoutException", StreamException::ModelTimeout),
        ("validationException", StreamException::Validation),
        ("internalServerException", StreamException::InternalServer),
        ("accessDeniedException", StreamException::Unknown),
        ("", StreamException::Unknown),
    ] {
        assert_eq!(Message::new_exception(name, Bytes::new()).exception(), Some(expected), "{name}");
    }
    let nameless = Message::new(vec![string(":message-type", "exception")], Bytes::new());
    assert_eq!(nameless.exception(), Some(StreamException::Unknown));
    assert_eq!(nameless.failure_text(), None, "no JSON payload");
    let error = Message::new(
        vec![
            string(":message-type", "error"),
            string(":error-code", "InternalFailure"),
            string(":error-message", "boom"),
        ],
        Bytes::new(),
    );
    assert_eq!(error.message_type(), Some(MessageType::Error));
    assert_eq!(error.exception(), Some(StreamException::Unknown));
    assert_eq!(error.failure_text().as_deref(), Some("boom"));
    let not_a_string =
        Message::new(vec![Header { name: ":message-type".into(), value: HeaderValue::Int(1) }], Bytes::new());
    assert_eq!(not_a_string.message_type(), None);
}

#[test]
fn the_encoder_refuses_what_it_cannot_write() {
    let with = |name: &str, value| Message::new(vec![Header { name: name.into(), value }], Bytes::new());
    assert_eq!(encode(&with("", HeaderValue::Bool(true))), Err(EncodeError::HeaderName(String::new())));
    let long_name = "n".repeat(256);
    assert_eq!(encode(&with(&long_name, HeaderValue::Bool(true))), Err(EncodeError::HeaderName(long_name)));
    assert!(encode(&with(&"n".repeat(255), HeaderValue::Bool(true))).is_ok());
    let long = "v".repeat(MAX_VALUE + 1);
    assert_eq!(
        encode(&with("s", HeaderValue::String(long.clone()))),
        Err(EncodeError::ValueTooLong { name: "s".into(), len: MAX_VALUE + 1 })
    );
    assert!(matches!(encode(&with("b", HeaderValue::Bytes(long.into()))), Err(EncodeError::ValueTooLong { .. })));
    let longest = with("s", HeaderValue::String("v".repeat(MAX_VALUE)));
    assert_eq!(decode_all(&encode(&longest).unwrap()), Ok(vec![longest]));
    let payload = Bytes::from(vec![0; MAX_FRAME as usize - PRELUDE - TRAILER + 1]);
    assert_eq!(
        encode(&Message::new(vec![], payload.clone())),
        Err(EncodeError::FrameTooLarge { len: MAX_FRAME as usize + 1 })
    );
    let largest = Message::new(vec![], payload.slice(1..));
    assert_eq!(decode_all(&encode(&largest).unwrap()), Ok(vec![largest]), "a frame of exactly MAX_FRAME");
}

fn header_value() -> impl Strategy<Value = HeaderValue> {
    prop_oneof![
        any::<bool>().prop_map(HeaderValue::Bool),
        any::<i8>().prop_map(HeaderValue::Byte),
        any::<i16>().prop_map(HeaderValue::Short),
        any::<i32>().prop_map(HeaderValue::Int),
        any::<i64>().prop_map(HeaderValue::Long),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(|b| HeaderValue::Bytes(b.into())),
        any::<String>().prop_map(HeaderValue::String),
        any::<i64>().prop_map(HeaderValue::Timestamp),
        any::<[u8; 16]>().prop_map(HeaderValue::Uuid),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    let header = ("[a-z:-]{1,12}", header_value()).prop_map(|(name, value)| Header { name, value });
    (proptest::collection::vec(header, 0..6), proptest::collection::vec(any::<u8>(), 0..64))
        .prop_map(|(headers, payload)| Message::new(headers, payload))
}

/// `bytes` cut at the given points (taken modulo its length).
fn chunks(bytes: &[u8], mut cuts: Vec<usize>) -> Vec<&[u8]> {
    cuts.iter_mut().for_each(|c| *c %= bytes.len() + 1);
    cuts.sort_unstable();
    let mut start = 0;
    let mut out = Vec::new();
    for cut in cuts.into_iter().chain([bytes.len()]) {
        out.push(&bytes[start..cut]);
        start = cut;
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0xe7e),
        ..ProptestConfig::default()
    })]

    /// Random bytes in random chunks: errors are values, never panics.
    #[test]
    fn garbage_never_panics(
        bytes in proptest::collection::vec(any::<u8>(), 0..512),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
        max_frame in prop_oneof![Just(MAX_FRAME), 0..256u32],
    ) {
        let mut decoder = Decoder::with_max_frame(max_frame);
        for chunk in chunks(&bytes, cuts) {
            let _ = decoder.push(chunk);
        }
        let _ = decoder.finish();
    }

    /// Garbage headers inside a frame whose checksums are right: errors are values.
    #[test]
    fn garbage_headers_never_panic(
        headers in proptest::collection::vec(any::<u8>(), 0..256),
        payload in proptest::collection::vec(any::<u8>(), 0..16),
    ) {
        let _ = decode_all(&frame(&headers, &payload));
    }

    /// Valid frames followed by garbage: the valid ones come out, whatever the chunking.
    #[test]
    fn frames_then_garbage(
        messages in proptest::collection::vec(message(), 0..4),
        garbage in proptest::collection::vec(any::<u8>(), 0..64),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let mut bytes = encode_all(&messages);
        let end_of_valid = bytes.len();
        bytes.extend_from_slice(&garbage);
        let mut decoder = Decoder::new();
        let mut got = Vec::new();
        for chunk in chunks(&bytes, cuts) {
            if let Ok(out) = decoder.push(chunk) {
                got.extend(out);
            }
        }
        while let Ok(Some(m)) = decoder.next_message() {
            got.push(m);
        }
        prop_assert_eq!(&got[..messages.len()], &messages[..]);
        if garbage.is_empty() {
            prop_assert_eq!(got.len(), messages.len());
            prop_assert_eq!(decoder.finish(), Ok(()));
        }
        prop_assert!(end_of_valid <= bytes.len());
    }

    /// Any message round-trips through any chunking.
    #[test]
    fn round_trip(message in message(), cuts in proptest::collection::vec(any::<usize>(), 0..8)) {
        let bytes = encode(&message).unwrap();
        let mut decoder = Decoder::new();
        let mut got = Vec::new();
        for chunk in chunks(&bytes, cuts) {
            got.extend(decoder.push(chunk).unwrap());
        }
        prop_assert_eq!(decoder.finish(), Ok(()));
        prop_assert_eq!(got, vec![message]);
    }

    /// Any one byte changed in a frame is an error, never a message.
    #[test]
    fn a_changed_byte_is_always_caught(message in message(), at in any::<usize>(), flip in 1..=255u8) {
        let mut bytes = encode(&message).unwrap();
        let at = at % bytes.len();
        bytes[at] ^= flip;
        let mut decoder = Decoder::new();
        if let Ok(out) = decoder.push(&bytes) {
            prop_assert!(out.is_empty(), "a corrupted frame decoded");
            prop_assert!(decoder.finish().is_err());
        }
    }
}
