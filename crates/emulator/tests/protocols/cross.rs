//! The same conversation gets the same answer, and the same usage, whichever protocol carries
//! it: a stream begun on one protocol continues on another.

use http::Method;
use serde_json::json;
use switchyard_emulator::canonical_conversation_key;
use switchyard_wire::canonical::StreamEvent;
use switchyard_wire::{anthropic_codec, openai_codec};

use crate::support::*;

const OPENAI: [(&str, &str); 1] = [("authorization", "Bearer sk-openai")];
const ANTHROPIC: [(&str, &str); 2] = [("x-api-key", ANTHROPIC_KEY), ("anthropic-version", "2023-06-01")];

#[tokio::test(start_paused = true)]
async fn one_conversation_one_answer_across_protocols() {
    let emulator = emulator().await;
    let openai = json!({"model": "gpt-4o", "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Where do requests go?"},
    ]});
    let anthropic = json!({"model": "claude-sonnet-4", "max_tokens": 100, "system": "Be brief.",
        "messages": [{"role": "user", "content": "Where do requests go?"}]});
    let a =
        send(&emulator, "gpt", Method::POST, "/v1/chat/completions", &OPENAI, openai.to_string()).await.unwrap().json();
    let b = send(&emulator, "claude", Method::POST, "/v1/messages", &ANTHROPIC, anthropic.to_string())
        .await
        .unwrap()
        .json();
    assert_eq!(a["choices"][0]["message"]["content"], b["content"][0]["text"]);
    assert_eq!(a["usage"]["prompt_tokens"], b["usage"]["input_tokens"], "the same input count");
    assert_eq!(a["usage"]["completion_tokens"], b["usage"]["output_tokens"]);
    let canonical = anthropic_codec::decode_request(anthropic.to_string().as_bytes()).unwrap();
    assert_eq!(
        canonical_conversation_key(&canonical),
        switchyard_emulator::conversation_key(openai["messages"].as_array().unwrap())
    );
}

#[tokio::test(start_paused = true)]
async fn a_stream_cut_on_openai_continues_on_anthropic() {
    let emulator = emulator().await;
    faults(&emulator, "gpt", r#"[{"kind": "cut", "after_tokens": 5}]"#);
    let messages = [json!({"role": "user", "content": "tell me about routing"})];
    let full = answer_to(&messages);
    let request = json!({"model": "gpt-4o", "messages": messages, "stream": true});
    let cut = send(&emulator, "gpt", Method::POST, "/v1/chat/completions", &OPENAI, request.to_string()).await;
    assert!(cut.is_err(), "cut");
    // What the caller had received: the first five tokens (as the gateway's relay would hold).
    let delivered: String =
        switchyard_emulator::answer_tokens(switchyard_emulator::conversation_key(&messages), (12, 12))[..5].concat();
    let continuation = json!({"model": "claude-sonnet-4", "max_tokens": 100, "stream": true, "messages": [
        {"role": "user", "content": "tell me about routing"},
        {"role": "assistant", "content": delivered},
    ]});
    let r =
        send(&emulator, "claude", Method::POST, "/v1/messages", &ANTHROPIC, continuation.to_string()).await.unwrap();
    let events = anthropic_codec::decode_stream(&r.body).expect("well-formed");
    assert_eq!(format!("{delivered}{}", StreamEvent::text_of(&events)), full);

    // And back: OpenAI continues what Anthropic began.
    let openai = json!({"model": "gpt-4o", "stream": true, "continue_final_message": true, "messages": [
        {"role": "user", "content": "tell me about routing"},
        {"role": "assistant", "content": &full[..9]},
    ]});
    faults(&emulator, "gpt", "[]");
    let r = send(&emulator, "gpt", Method::POST, "/v1/chat/completions", &OPENAI, openai.to_string()).await.unwrap();
    let events = openai_codec::decode_stream(&r.body).expect("well-formed");
    assert_eq!(format!("{}{}", &full[..9], StreamEvent::text_of(&events)), full);
}

#[tokio::test(start_paused = true)]
async fn bedrock_answers_the_same_and_continues_a_prefill() {
    let emulator = emulator().await;
    let messages =
        [json!({"role": "system", "content": "Be brief."}), json!({"role": "user", "content": "hello there"})];
    let full = answer_to(&messages);
    let openai = json!({"model": "gpt-4o", "messages": messages});
    let a =
        send(&emulator, "gpt", Method::POST, "/v1/chat/completions", &OPENAI, openai.to_string()).await.unwrap().json();
    let bearer = format!("Bearer {BEDROCK_KEY}");
    let path = "/model/amazon.nova-pro-v1%3A0/converse";
    let converse = json!({"system": [{"text": "Be brief."}], "messages": [{"role": "user", "content": [{"text": "hello there"}]}]});
    let b = send(&emulator, "nova", Method::POST, path, &[("authorization", &bearer)], converse.to_string())
        .await
        .unwrap()
        .json();
    assert_eq!(b["output"]["message"]["content"][0]["text"], full);
    assert_eq!(a["usage"]["prompt_tokens"], b["usage"]["inputTokens"], "the same input count");
    let prefilled = json!({"system": [{"text": "Be brief."}], "messages": [
        {"role": "user", "content": [{"text": "hello there"}]},
        {"role": "assistant", "content": [{"text": &full[..11]}]},
    ]});
    let c = send(&emulator, "nova", Method::POST, path, &[("authorization", &bearer)], prefilled.to_string())
        .await
        .unwrap()
        .json();
    assert_eq!(format!("{}{}", &full[..11], c["output"]["message"]["content"][0]["text"].as_str().unwrap()), full);
}
