//! What a stream reads like to a client that checks every chunk: one identity and one role
//! from start to end, the model that served it in the usage chunk, the route at the end, and
//! the true reason when a stream ends early.

use serde_json::{Value, json};
use switchyard_wire::sse::SseParser;

use crate::support::*;

/// Every event of a stream, as JSON (`[DONE]` as a string), and the comment lines.
async fn events(h: &Harness, body: Value) -> (Vec<Value>, String) {
    let text = h.open_stream(KEY, body).await.text().await;
    let mut parser = SseParser::default();
    let mut out = Vec::new();
    parser.push(text.as_bytes(), &mut out).unwrap();
    parser.finish(&mut out);
    let comments = text.lines().filter(|l| l.starts_with(':')).collect::<Vec<_>>().join("\n");
    let values = out.into_iter().map(|e| serde_json::from_str(&e.data).unwrap_or(Value::String(e.data))).collect();
    (values, comments)
}

fn with_usage(mut body: Value) -> Value {
    body["stream_options"] = json!({"include_usage": true});
    body
}

#[tokio::test]
async fn a_continued_stream_keeps_one_identity_and_one_role() {
    let h = Harness::start().await;
    h.faults("d1", r#"[{"kind":"cut","after_tokens":4}]"#);
    let (events, comments) = events(&h, with_usage(ask("chat", "one identity"))).await;
    let chunks: Vec<&Value> = events.iter().filter(|e| e.is_object()).collect();
    let first = chunks[0];
    for chunk in &chunks {
        assert_eq!(chunk["id"], first["id"], "{chunk}");
        assert_eq!(chunk["created"], first["created"], "{chunk}");
        assert_eq!(chunk["model"], "model-one", "{chunk}");
    }
    let roles = chunks.iter().filter(|c| c.pointer("/choices/0/delta/role").is_some()).count();
    assert_eq!(roles, 1, "exactly one role delta");
    let text: String = chunks.iter().filter_map(|c| c.pointer("/choices/0/delta/content")?.as_str()).collect();
    assert_eq!(text, expected_answer("one identity"));
    let usage = chunks.last().unwrap();
    assert_eq!(usage["usage"]["completion_tokens"], 12);
    assert!(comments.contains("x-switchyard-route: d1,d2"), "{comments}");
    assert_eq!(events.last().unwrap(), "[DONE]");
}

#[tokio::test]
async fn the_usage_chunk_names_the_model_that_served_after_failover() {
    let h = Harness::start().await;
    h.faults("d1", r#"[{"kind":"outage"}]"#);
    let (events, comments) = events(&h, with_usage(ask("chat", "failover"))).await;
    let chunks: Vec<&Value> = events.iter().filter(|e| e.is_object()).collect();
    let last = chunks.last().unwrap();
    assert!(last["usage"].is_object(), "{last}");
    assert_eq!(last["model"], "model-two");
    assert_eq!(last["id"], chunks[0]["id"]);
    assert_ne!(last["created"], 0);
    assert!(comments.contains("x-switchyard-route: d2"), "{comments}");
}

#[tokio::test(start_paused = true)]
async fn a_stream_ended_by_the_deadline_says_deadline() {
    let h = Harness::memory_with(&config_text(true, false).replace("request_ms: 8000", "request_ms: 800")).await;
    h.faults("d1", r#"[{"kind":"stall","after_tokens":3}]"#);
    let r = h.stream(KEY, ask("solo", "too slow")).await;
    let error = r.error.expect("an error event");
    assert_eq!(error["code"], "deadline_exceeded", "{error}");
    assert!(!r.done);
    assert_eq!(r.elapsed, std::time::Duration::from_millis(800), "at the deadline");
}

#[tokio::test(start_paused = true)]
async fn a_slow_first_attempt_is_hedged_and_the_hedge_answers() {
    let text = config_text(true, false).replace(
        "  - { name: solo, policy: priority, deployments: [d1] }",
        "  - { name: solo, policy: priority, deployments: [d1] }\n  - { name: hedged, policy: priority, deployments: [d1, d2], hedge_after_ms: 150 }",
    );
    let h = Harness::memory_with(&text).await;
    h.faults("d1", r#"[{"kind":"slow_first_token","delay_ms":3000}]"#);
    let r = h.stream(KEY, ask("hedged", "hedge me")).await;
    assert!(r.done, "{:?}", r.error);
    assert_eq!(r.content, expected_answer("hedge me"));
    let hedged = std::time::Duration::from_millis(150) + ANSWER_TIME;
    assert_eq!(r.elapsed, hedged, "the hedge started at 150 ms and answered");
    assert_eq!(header(&r.headers, "x-switchyard-deployment"), "d2");
    // Whole answers hedge too.
    let r = h.chat(ask("hedged", "hedge me whole")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(header(&r.headers, "x-switchyard-deployment"), "d2");
    assert_eq!(r.elapsed, hedged);
    let metrics = h.metrics().await;
    assert!(metrics.contains("switchyard_hedges_total{result=\"started\"} 2"), "{metrics}");
    assert!(metrics.contains("switchyard_hedges_total{result=\"won\"} 2"), "{metrics}");
    assert!(
        metrics.contains("switchyard_upstream_attempts_total{deployment=\"d1\",result=\"abandoned\"} 2"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_held_back_stream_cut_before_release_restarts_cleanly() {
    // Neither deployment accepts a prefill: a cut stream could not be continued.
    let text = config_text(false, false).replace("prefill: true, tools: true", "prefill: false, tools: true").replace(
        "  - { name: solo, policy: priority, deployments: [d1] }",
        "  - { name: solo, policy: priority, deployments: [d1] }\n  - { name: held, policy: priority, deployments: [d1, d2], hold_back_tokens: 100 }",
    );
    let h = Harness::with_config(&text).await;
    h.faults("d1", r#"[{"kind":"cut","after_tokens":5}]"#);
    let (events, comments) = events(&h, with_usage(ask("held", "hold it"))).await;
    let chunks: Vec<&Value> = events.iter().filter(|e| e.is_object()).collect();
    assert!(chunks.iter().all(|c| c.get("error").is_none()), "{chunks:?}");
    let text: String = chunks.iter().filter_map(|c| c.pointer("/choices/0/delta/content")?.as_str()).collect();
    assert_eq!(text, expected_answer("hold it"), "one whole answer, the cut part never shown");
    assert!(chunks.iter().all(|c| c["model"] == "model-two"), "only the restart's chunks");
    assert!(comments.contains("x-switchyard-route: d2"), "{comments}");
    assert_eq!(events.last().unwrap(), "[DONE]");
    assert_eq!(chunks.last().unwrap()["usage"]["completion_tokens"], 12);
}
