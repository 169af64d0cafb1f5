//! Answers read back as OpenAI Chat Completions: streams in any split, in-stream errors,
//! garbage and whole answers.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use switchyard_core::AttemptError;
use switchyard_core::config::Protocol;
use switchyard_providers::eventstream::{self, Header, HeaderValue, Message};
use switchyard_providers::{AnswerDecoder, Auth, Operation, StreamFault, Transport, Upstream};
use switchyard_wire::bedrock_codec;
use switchyard_wire::canonical::{BlockKind, FinishReason, StreamEvent, Usage};

use crate::{ANTHROPIC_MODEL, BEDROCK_MODEL, OPENAI_MODEL, Peer, Reply, anthropic, aws, bedrock};

/// The model a decoder is made for: what the deployment serves.
pub(crate) fn model_of(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::OpenAi | Protocol::AzureOpenAi => OPENAI_MODEL,
        Protocol::Oci => crate::oci_native::OCI_MODEL,
        Protocol::Anthropic => "claude-sonnet-4-5",
        Protocol::Bedrock => BEDROCK_MODEL,
        Protocol::Gemini => crate::GEMINI_MODEL,
    }
}

/// Feeds `pieces` to a fresh decoder, stopping at the first fault; `finish` when none came.
pub(crate) fn decode<'a>(
    protocol: Protocol,
    pieces: impl IntoIterator<Item = &'a [u8]>,
) -> (Vec<String>, Option<StreamFault>) {
    let mut decoder = AnswerDecoder::new(protocol, model_of(protocol));
    let mut out = Vec::new();
    for piece in pieces {
        if let Err(fault) = decoder.push(piece, &mut out) {
            return (out, Some(fault));
        }
    }
    decoder.finish(&mut out);
    (out, None)
}

/// Event data with each chunk's `created` zeroed: equal whatever second a decoder began in.
pub(crate) fn normalized(data: &[String]) -> Vec<String> {
    data.iter()
        .map(|d| match serde_json::from_str::<Value>(d) {
            Ok(mut chunk) if chunk.get("created").is_some() => {
                // The time, and the id the decoder makes for a protocol without one (Bedrock).
                chunk["created"] = json!(0);
                chunk["id"] = json!("id");
                chunk.to_string()
            }
            _ => d.clone(),
        })
        .collect()
}

/// Every chunk parsed, and checked to end with `[DONE]`.
pub(crate) fn chunks(data: &[String]) -> Vec<Value> {
    let (done, chunks) = data.split_last().expect("some data");
    assert_eq!(done, "[DONE]", "{data:#?}");
    chunks.iter().map(|d| serde_json::from_str(d).unwrap_or_else(|e| panic!("{e}: {d}"))).collect()
}

pub(crate) fn delta(chunk: &Value) -> &Value {
    &chunk["choices"][0]["delta"]
}

/// Checks that every split of `bytes` in two, and byte by byte, decodes as a whole push does.
pub(crate) fn assert_split_invariant(protocol: Protocol, bytes: &[u8]) {
    let (whole, fault) = decode(protocol, [bytes]);
    let whole = (normalized(&whole), fault);
    for at in 0..=bytes.len() {
        let (out, fault) = decode(protocol, [&bytes[..at], &bytes[at..]]);
        assert_eq!((normalized(&out), fault), whole, "{protocol:?} split at {at}");
    }
    let (out, fault) = decode(protocol, bytes.chunks(1));
    assert_eq!((normalized(&out), fault), whole, "{protocol:?} byte by byte");
}

/// One SSE event.
fn sse(event: &str, data: Value) -> String {
    format!("event: {event}\ndata: {data}\n\n")
}

pub(crate) fn frame(message: &Message) -> Vec<u8> {
    eventstream::encode(message).expect("encodes")
}

fn event(kind: &str, payload: Value) -> Vec<u8> {
    frame(&Message::new_event(kind, payload.to_string()))
}

fn exception(kind: &str, message: &str) -> Vec<u8> {
    frame(&Message::new_exception(kind, json!({ "message": message }).to_string()))
}

/// An Anthropic stream: text (with a ping between deltas), a tool call in three input
/// pieces, a tool-use stop and the usage.
pub(crate) fn anthropic_events() -> Vec<String> {
    let start = json!({"type": "message_start", "message": {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL", "type": "message", "role": "assistant", "model": ANTHROPIC_MODEL,
        "content": [], "stop_reason": null, "stop_sequence": null,
        "usage": {
            "input_tokens": 25, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 5, "output_tokens": 1,
        },
    }});
    let delta = |index: u32, delta: Value| json!({"type": "content_block_delta", "index": index, "delta": delta});
    let text = |text: &str| delta(0, json!({"type": "text_delta", "text": text}));
    let input = |json: &str| delta(1, json!({"type": "input_json_delta", "partial_json": json}));
    vec![
        sse("message_start", start),
        sse(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        sse("ping", json!({"type": "ping"})),
        sse("content_block_delta", text("Let me check ")),
        sse("content_block_delta", text("the weather in Paris ☀.")),
        sse("content_block_stop", json!({"type": "content_block_stop", "index": 0})),
        sse(
            "content_block_start",
            json!({"type": "content_block_start", "index": 1, "content_block": {
                "type": "tool_use", "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "name": "get_weather", "input": {},
            }}),
        ),
        sse("content_block_delta", input("")),
        sse("content_block_delta", input("{\"city\": \"Pa")),
        sse("content_block_delta", input("ris\"}")),
        sse("content_block_stop", json!({"type": "content_block_stop", "index": 1})),
        sse(
            "message_delta",
            json!({
                "type": "message_delta",
                "delta": {"stop_reason": "tool_use", "stop_sequence": null},
                "usage": {"output_tokens": 42},
            }),
        ),
        sse("message_stop", json!({"type": "message_stop"})),
    ]
}

fn anthropic_stream() -> Vec<u8> {
    anthropic_events().concat().into_bytes()
}

/// A ConverseStream answer as Bedrock frames it: a text block begun by its first delta (no
/// `contentBlockStart`), a tool call in two input pieces, the stop, then the usage with cache
/// reads. Payloads carry Bedrock's `p` padding field.
pub(crate) fn bedrock_frames() -> Vec<Vec<u8>> {
    let text = |text: &str| json!({"contentBlockIndex": 0, "delta": {"text": text}, "p": "abcdefghijk"});
    let input = |json: &str| json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": json}}, "p": "abc"});
    vec![
        event("messageStart", json!({"role": "assistant", "p": "abcdefghijklmnopqrstuvwxyzABCDEF"})),
        event("contentBlockDelta", text("Let me check ")),
        event("contentBlockDelta", text("the weather in Paris ☀.")),
        event("contentBlockStop", json!({"contentBlockIndex": 0, "p": "abcd"})),
        event(
            "contentBlockStart",
            json!({"contentBlockIndex": 1, "start": {"toolUse": {
            "toolUseId": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", "name": "get_weather",
        }}, "p": "ab"}),
        ),
        event("contentBlockDelta", input("{\"city\": \"Pa")),
        event("contentBlockDelta", input("ris\"}")),
        event("contentBlockStop", json!({"contentBlockIndex": 1})),
        event("messageStop", json!({"stopReason": "tool_use", "p": "abcdefghijklmnop"})),
        event(
            "metadata",
            json!({
                "usage": {"inputTokens": 20, "outputTokens": 15, "totalTokens": 39, "cacheReadInputTokens": 4},
                "metrics": {"latencyMs": 812},
            }),
        ),
    ]
}

fn bedrock_stream() -> Vec<u8> {
    bedrock_frames().concat()
}

fn openai_stream() -> Vec<u8> {
    let chunk = |delta: Value, finish: Value| {
        let chunk = json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": OPENAI_MODEL,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
        format!("data: {chunk}\n\n")
    };
    [
        chunk(json!({"role": "assistant", "content": ""}), Value::Null),
        chunk(json!({"content": "Hello ☀"}), Value::Null),
        chunk(json!({}), json!("stop")),
        "data: [DONE]\n\n".to_owned(),
    ]
    .concat()
    .into_bytes()
}

pub(crate) fn valid_stream(protocol: Protocol) -> Vec<u8> {
    match protocol {
        Protocol::OpenAi | Protocol::AzureOpenAi => openai_stream(),
        Protocol::Oci => crate::oci_native::oci_stream(),
        Protocol::Anthropic => anthropic_stream(),
        Protocol::Bedrock => bedrock_stream(),
        Protocol::Gemini => crate::gemini::gemini_stream(),
    }
}

/// The answer both translated fixtures tell, as OpenAI chunks: text, one tool call, the
/// tool-call finish and the usage chunk. Every chunk has the first one's id, `id` when given,
/// and `model`.
fn assert_weather_answer(data: &[String], id: Option<&str>, model: &str, usage: Value) {
    let chunks = chunks(data);
    assert_eq!(chunks.len(), 8, "{data:#?}");
    let id = id.map_or_else(|| chunks[0]["id"].clone(), |id| json!(id));
    assert!(id.is_string(), "{id}");
    for chunk in &chunks {
        assert_eq!((&chunk["id"], &chunk["model"]), (&id, &json!(model)), "{chunk}");
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert!(chunk["created"].as_u64().is_some_and(|c| c > 1_700_000_000), "now: {chunk}");
    }
    let deltas: Vec<&Value> = chunks[..7].iter().map(delta).collect();
    assert_eq!(deltas[0], &json!({"role": "assistant", "content": ""}));
    assert_eq!(deltas[1], &json!({"content": "Let me check "}));
    assert_eq!(deltas[2], &json!({"content": "the weather in Paris ☀."}));
    let call = &deltas[3]["tool_calls"][0];
    assert_eq!(call["index"], 0);
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"], json!({"name": "get_weather", "arguments": ""}));
    assert!(call["id"].as_str().is_some_and(|id| !id.is_empty()), "{call}");
    let arguments: String = deltas[4..6]
        .iter()
        .map(|d| {
            assert_eq!(d["tool_calls"][0]["index"], 0, "{d}");
            d["tool_calls"][0]["function"]["arguments"].as_str().expect("arguments")
        })
        .collect();
    assert_eq!(serde_json::from_str::<Value>(&arguments).expect("JSON"), json!({"city": "Paris"}));
    assert_eq!(deltas[6], &json!({}));
    for chunk in &chunks[..6] {
        assert_eq!(chunk["choices"][0]["finish_reason"], Value::Null, "{chunk}");
    }
    assert_eq!(chunks[6]["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(chunks[7]["choices"], json!([]));
    assert_eq!(chunks[7]["usage"], usage);
}

#[test]
fn an_anthropic_stream_reads_as_openai_chunks_in_any_split() {
    let (data, fault) = decode(Protocol::Anthropic, [&anthropic_stream()[..]]);
    assert_eq!(fault, None);
    let usage = json!({
        "prompt_tokens": 30, "completion_tokens": 42, "total_tokens": 72,
        "prompt_tokens_details": {"cached_tokens": 5}, "completion_tokens_details": {"reasoning_tokens": 0},
    });
    // The id and model are the answer's own, not the deployment's.
    assert_weather_answer(&data, Some("msg_01XFDUDYJgAACzvnptvVoYEL"), ANTHROPIC_MODEL, usage);
    assert_split_invariant(Protocol::Anthropic, &anthropic_stream());
    // CRLF line ends read the same.
    let crlf = String::from_utf8(anthropic_stream()).expect("UTF-8").replace('\n', "\r\n");
    let (same, fault) = decode(Protocol::Anthropic, [crlf.as_bytes()]);
    assert_eq!((normalized(&same), fault), (normalized(&data), None));
}

#[test]
fn a_bedrock_eventstream_reads_as_openai_chunks_in_any_split() {
    let (data, fault) = decode(Protocol::Bedrock, [&bedrock_stream()[..]]);
    assert_eq!(fault, None);
    let usage = json!({
        "prompt_tokens": 24, "completion_tokens": 15, "total_tokens": 39,
        "prompt_tokens_details": {"cached_tokens": 4}, "completion_tokens_details": {"reasoning_tokens": 0},
    });
    // Converse streams carry no id and no model: the model is the deployment's.
    assert_weather_answer(&data, None, BEDROCK_MODEL, usage);
    assert_split_invariant(Protocol::Bedrock, &bedrock_stream());
}

#[test]
fn an_openai_stream_passes_through_in_any_split() {
    // Azure OpenAI's streams are OpenAI's: they pass through the same way.
    for protocol in [Protocol::OpenAi, Protocol::AzureOpenAi] {
        let (data, fault) = decode(protocol, [&openai_stream()[..]]);
        assert_eq!(fault, None);
        let expected: Vec<String> = String::from_utf8(openai_stream())
            .expect("UTF-8")
            .split("\n\n")
            .filter_map(|e| e.strip_prefix("data: ").map(str::to_owned))
            .collect();
        assert_eq!(data, expected, "the event data as sent");
        assert_split_invariant(protocol, &openai_stream());
    }
}

/// What `bedrock_codec::StreamEncoder` writes (the emulator's side) reads back: a length stop
/// with cache writes, and a stream that ends at `messageStop` without its `metadata`.
#[test]
fn bedrock_encoder_output_reads_back() {
    let events = [
        StreamEvent::MessageStart { id: String::new(), model: String::new(), usage: None },
        StreamEvent::BlockStart { index: 0, block: BlockKind::Text },
        StreamEvent::TextDelta { index: 0, text: "Once upon".into() },
        StreamEvent::BlockStop { index: 0 },
        StreamEvent::MessageDelta {
            finish: FinishReason::Length,
            usage: Some(Usage { input_tokens: 12, output_tokens: 2, cache_write_tokens: 3, ..Usage::default() }),
        },
        StreamEvent::MessageStop,
    ];
    let mut encoder = bedrock_codec::StreamEncoder::new();
    let mut encoded = Vec::new();
    for e in &events {
        encoder.encode(e, &mut encoded);
    }
    let frames: Vec<Vec<u8>> = encoded
        .iter()
        .map(|e| {
            assert!(!e.exception);
            frame(&Message::new_event(e.event_type, e.payload.clone()))
        })
        .collect();
    let (data, fault) = decode(Protocol::Bedrock, [&frames.concat()[..]]);
    assert_eq!(fault, None);
    let chunks = chunks(&data);
    assert_eq!(delta(&chunks[1]), &json!({"content": "Once upon"}));
    assert_eq!(chunks[2]["choices"][0]["finish_reason"], "length");
    assert_eq!(chunks[3]["usage"]["prompt_tokens"], 12);
    assert_eq!(chunks[3]["usage"]["completion_tokens"], 2);

    // Without `metadata` the stream still ends, at `finish`, with no usage chunk.
    let without_metadata = frames[..frames.len() - 1].concat();
    let mut decoder = AnswerDecoder::new(Protocol::Bedrock, BEDROCK_MODEL);
    let mut out = Vec::new();
    decoder.push(&without_metadata, &mut out).expect("reads");
    assert_eq!(out.len(), 2, "the stop is held for the usage: {out:#?}");
    decoder.finish(&mut out);
    let chunks = self::chunks(&out);
    assert_eq!(chunks.len(), 3);
    assert_eq!(chunks[2]["choices"][0]["finish_reason"], "length");
}

#[test]
fn an_anthropic_error_event_fails_the_attempt_after_the_content_before_it() {
    let events = anthropic_events();
    let overloaded =
        sse("error", json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}));
    let bytes = [events[..4].concat(), overloaded].concat();
    let (data, fault) = decode(Protocol::Anthropic, [bytes.as_bytes()]);
    assert_eq!(fault, Some(StreamFault::Failed(AttemptError::RateLimited { retry_after: None })));
    assert_eq!(data.len(), 2, "{data:#?}");
    assert_eq!(delta(&serde_json::from_str(&data[1]).expect("JSON")), &json!({"content": "Let me check "}));
    assert_split_invariant(Protocol::Anthropic, bytes.as_bytes());

    let api_error = sse("error", json!({"type": "error", "error": {"type": "api_error", "message": "Internal"}}));
    let (_, fault) = decode(Protocol::Anthropic, [[events[0].clone(), api_error].concat().as_bytes()]);
    assert_eq!(fault, Some(StreamFault::Failed(AttemptError::ServerError { status: 500 })));
}

#[test]
fn bedrock_exceptions_fail_the_attempt_after_the_content_before_them() {
    let frames = bedrock_frames();
    for (failure, expected) in [
        (
            exception("throttlingException", "Too many tokens, please wait."),
            AttemptError::RateLimited { retry_after: None },
        ),
        (
            exception("serviceUnavailableException", "Bedrock is unable to process your request."),
            AttemptError::RateLimited { retry_after: None },
        ),
        (exception("internalServerException", "Internal error"), AttemptError::ServerError { status: 500 }),
        (exception("modelStreamErrorException", "The model failed"), AttemptError::ServerError { status: 500 }),
        (
            exception("validationException", "Input is too long for requested model."),
            AttemptError::ContextLengthExceeded { message: "Input is too long for requested model.".into() },
        ),
        (
            // `:message-type: error`: the service itself failed.
            frame(&Message::new(
                vec![
                    Header { name: ":message-type".into(), value: HeaderValue::String("error".into()) },
                    Header { name: ":error-code".into(), value: HeaderValue::String("InternalFailure".into()) },
                ],
                Bytes::new(),
            )),
            AttemptError::ServerError { status: 500 },
        ),
    ] {
        let bytes = [frames[..2].concat(), failure].concat();
        let (data, fault) = decode(Protocol::Bedrock, [&bytes[..]]);
        assert_eq!(fault, Some(StreamFault::Failed(expected.clone())));
        assert_eq!(data.len(), 2, "{expected:?}: {data:#?}");
        assert_eq!(delta(&serde_json::from_str(&data[1]).expect("JSON")), &json!({"content": "Let me check "}));
        assert_split_invariant(Protocol::Bedrock, &bytes);
    }
}

#[test]
fn a_corrupted_bedrock_frame_is_garbage_after_the_content_before_it() {
    let frames = bedrock_frames();
    let mut message_crc = frames[2].clone();
    *message_crc.last_mut().expect("bytes") ^= 0x01;
    let mut payload = frames[2].clone();
    let inside = payload.len() - 10;
    payload[inside] ^= 0x20;
    let mut prelude_crc = frames[2].clone();
    prelude_crc[9] ^= 0x80;
    for broken in [message_crc, payload, prelude_crc] {
        let bytes = [frames[..2].concat(), broken, frames[3..].concat()].concat();
        let (data, fault) = decode(Protocol::Bedrock, [&bytes[..]]);
        assert!(matches!(&fault, Some(StreamFault::Garbage(m)) if m.contains("checksum")), "{fault:?}");
        assert_eq!(data.len(), 2, "{data:#?}");
        assert_split_invariant(Protocol::Bedrock, &bytes);
    }
    // Frames that are well formed but not ConverseStream's order are garbage too.
    let (_, fault) = decode(Protocol::Bedrock, [&frames[1][..]]);
    assert!(matches!(fault, Some(StreamFault::Garbage(_))), "a delta before messageStart: {fault:?}");
}

#[test]
fn an_anthropic_event_that_is_not_json_is_garbage_after_the_content_before_it() {
    let events = anthropic_events();
    let bytes =
        [events[..4].concat(), "event: content_block_delta\ndata: {\"type\": \"content_blo\n\n".into()].concat();
    let (data, fault) = decode(Protocol::Anthropic, [bytes.as_bytes()]);
    assert!(matches!(&fault, Some(StreamFault::Garbage(m)) if m.contains("not JSON")), "{fault:?}");
    assert_eq!(data.len(), 2, "the content read before it is kept: {data:#?}");
    assert_split_invariant(Protocol::Anthropic, bytes.as_bytes());

    let (_, fault) = decode(Protocol::Anthropic, [events[3].as_bytes()]);
    assert!(matches!(fault, Some(StreamFault::Garbage(_))), "a delta before message_start: {fault:?}");
}

#[test]
fn whole_anthropic_and_bedrock_answers_read_as_chat_completions() {
    let anthropic_body = json!({
        "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF", "type": "message", "role": "assistant", "model": ANTHROPIC_MODEL,
        "content": [
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "get_weather",
             "input": {"city": "Paris"}},
        ],
        "stop_reason": "tool_use", "stop_sequence": null,
        "usage": {
            "input_tokens": 10, "cache_creation_input_tokens": 2, "cache_read_input_tokens": 3, "output_tokens": 7,
        },
    });
    let bedrock_body = json!({
        "output": {"message": {"role": "assistant", "content": [
            {"text": "Let me check."},
            {"toolUse": {"toolUseId": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", "name": "get_weather",
                         "input": {"city": "Paris"}}},
        ]}},
        "stopReason": "tool_use",
        "usage": {
            "inputTokens": 10, "outputTokens": 7, "totalTokens": 22, "cacheReadInputTokens": 3,
            "cacheWriteInputTokens": 2,
        },
        "metrics": {"latencyMs": 640},
    });
    for (protocol, body, id, model) in [
        (Protocol::Anthropic, anthropic_body, Some("msg_013Zva2CMHLNnXjNJJKqJ2EF"), ANTHROPIC_MODEL),
        // Converse answers carry no id and no model: the model is the deployment's.
        (Protocol::Bedrock, bedrock_body, None, BEDROCK_MODEL),
    ] {
        let decoder = AnswerDecoder::new(protocol, model_of(protocol));
        let answer = decoder.whole(Bytes::from(body.to_string())).expect("an answer");
        let answer: Value = serde_json::from_slice(&answer).expect("JSON");
        assert_eq!(answer["object"], "chat.completion", "{protocol:?}");
        assert_eq!(answer["model"], model, "{protocol:?}");
        match id {
            Some(id) => assert_eq!(answer["id"], id),
            None => assert!(answer["id"].is_string(), "{answer}"),
        }
        let choice = &answer["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls", "{protocol:?}");
        assert_eq!(choice["message"]["role"], "assistant");
        assert_eq!(choice["message"]["content"], "Let me check.");
        let call = &choice["message"]["tool_calls"][0];
        assert_eq!(call["type"], "function");
        assert_eq!(call["function"]["name"], "get_weather");
        let arguments = call["function"]["arguments"].as_str().expect("arguments are a string");
        assert_eq!(serde_json::from_str::<Value>(arguments).expect("JSON"), json!({"city": "Paris"}));
        assert_eq!(
            answer["usage"],
            json!({
                "prompt_tokens": 15, "completion_tokens": 7, "total_tokens": 22,
                "prompt_tokens_details": {"cached_tokens": 3}, "completion_tokens_details": {"reasoning_tokens": 0},
            }),
            "{protocol:?}"
        );
    }
}

#[test]
fn a_garbage_whole_answer_is_invalid_and_openai_passes_through() {
    for protocol in [Protocol::Anthropic, Protocol::Bedrock] {
        let decoder = AnswerDecoder::new(protocol, model_of(protocol));
        for garbage in [&b"<html>502 Bad Gateway</html>"[..], b"", b"{}", b"{\"content\": 3}"] {
            let result = decoder.whole(Bytes::copy_from_slice(garbage));
            assert!(
                matches!(result, Err(AttemptError::InvalidResponse { .. })),
                "{protocol:?} {garbage:?}: {result:?}"
            );
        }
    }
    let decoder = AnswerDecoder::new(Protocol::OpenAi, OPENAI_MODEL);
    for body in [&br#"{"id":"chatcmpl-1","object":"chat.completion","choices":[]}"#[..], b"not even JSON"] {
        assert_eq!(decoder.whole(Bytes::copy_from_slice(body)), Ok(Bytes::copy_from_slice(body)));
    }
}

#[test]
fn each_protocol_knows_its_stream_content_type() {
    let sse = "text/event-stream";
    let eventstream = "application/vnd.amazon.eventstream";
    for (protocol, streams, not) in [
        (Protocol::OpenAi, sse, eventstream),
        (Protocol::AzureOpenAi, sse, eventstream),
        (Protocol::Anthropic, sse, eventstream),
        (Protocol::Bedrock, eventstream, sse),
    ] {
        let decoder = AnswerDecoder::new(protocol, model_of(protocol));
        assert!(decoder.is_stream(Some(streams)), "{protocol:?}");
        assert!(decoder.is_stream(Some(&format!("{streams}; charset=utf-8"))), "{protocol:?}");
        for other in [Some(not), Some("application/json"), None] {
            assert!(!decoder.is_stream(other), "{protocol:?} {other:?}");
        }
    }
}

/// The whole way: a streamed answer from the peer, recognised by its content type and read
/// by the decoder the upstream gives for the deployment.
#[tokio::test]
async fn a_streamed_answer_reads_back_through_the_upstreams_decoder() {
    let stream = |model: &str| json!({"model": model, "messages": [{"role": "user", "content": "Hi"}], "stream": true});
    for (endpoint, reply) in [
        (anthropic(Some("k")), Reply::new(200, "text/event-stream; charset=utf-8", anthropic_stream())),
        (bedrock(Auth::Aws(aws(None))), Reply::new(200, "application/vnd.amazon.eventstream", bedrock_stream())),
    ] {
        let protocol = endpoint.protocol;
        let body = stream(&endpoint.model).to_string().into_bytes();
        let peer = Peer::answering(reply);
        let upstream =
            Upstream::with_transport(Duration::from_secs(1), &[endpoint], Transport::Memory(peer.dial.clone()))
                .expect("an upstream");
        let mut response = upstream
            .send(0, Operation::ChatCompletions, body, Duration::from_secs(5))
            .await
            .unwrap_or_else(|e| panic!("{protocol:?}: {e}"));
        let mut decoder = upstream.decoder(0);
        let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok());
        assert!(decoder.is_stream(content_type), "{protocol:?} {content_type:?}");
        let mut out = Vec::new();
        while let Some(frame) = response.body_mut().frame().await {
            let data = frame.expect("a frame").into_data().expect("data");
            decoder.push(&data, &mut out).expect("reads");
        }
        decoder.finish(&mut out);
        let (expected, _) = decode(protocol, [&valid_stream(protocol)[..]]);
        assert_eq!(normalized(&out), normalized(&expected), "{protocol:?}");
        assert_eq!(
            chunks(&out)[0]["model"],
            if protocol == Protocol::Bedrock { BEDROCK_MODEL } else { ANTHROPIC_MODEL }
        );
    }
}
