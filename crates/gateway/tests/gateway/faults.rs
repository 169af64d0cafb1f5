//! Every fault class of the emulator, through the gateway.

use std::time::Duration;

use serde_json::json;
use switchyard_emulator::Seen;

use crate::support::*;

#[tokio::test]
async fn outage_fails_over_to_another_cloud() {
    let h = Harness::start().await;
    h.faults("d1", r#"[{"kind":"outage"}]"#);
    let r = h.chat(ask("chat", "outage")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(header(&r.headers, "x-switchyard-deployment"), "d2");
    assert_eq!(header(&r.headers, "x-switchyard-attempts"), "2");
    assert_eq!(r.body["model"], "model-two", "model names what served it");
    assert_eq!(r.body["choices"][0]["message"]["content"], expected_answer("outage"));
    assert_eq!(h.seen("d1", Seen::ConnectionReset), 1);
    assert_eq!(h.seen("d2", Seen::Completed), 1);
}

#[tokio::test(start_paused = true)]
async fn consecutive_failures_eject_and_recovery_returns() {
    let h = Harness::memory().await;
    h.faults("d1", r#"[{"kind":"outage","until_ms":600}]"#);
    for i in 0..6 {
        let r = h.chat(ask("chat", &format!("eject {i}"))).await;
        assert_eq!(r.status, 200);
    }
    // Three failures eject d1; later requests go straight to d2.
    assert_eq!(h.seen("d1", Seen::ConnectionReset), 3);
    assert_eq!(h.seen("d2", Seen::Completed), 6);
    // After the outage and the 1 s ejection, a probe finds d1 healthy again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = h.chat(ask("chat", "back")).await;
    assert_eq!(header(&r.headers, "x-switchyard-deployment"), "d1");
    assert_eq!(header(&r.headers, "x-switchyard-attempts"), "1");
}

#[tokio::test]
async fn server_errors_are_retried_once_then_fail_over() {
    let h = Harness::start().await;
    h.faults("d1", r#"[{"kind":"error","status":503}]"#);
    let r = h.chat(ask("chat", "503")).await;
    assert_eq!(r.status, 200);
    assert_eq!(header(&r.headers, "x-switchyard-attempts"), "3");
    assert_eq!(h.seen("d1", Seen::ErrorStatus(503)), 2);
    assert_eq!(h.seen("d2", Seen::Completed), 1);
}

#[tokio::test(start_paused = true)]
async fn short_retry_after_is_waited_out_on_the_same_deployment() {
    let h = Harness::memory().await;
    h.faults("d1", r#"[{"kind":"error","status":429,"retry_after_ms":200,"until_ms":150}]"#);
    let r = h.chat(ask("chat", "429 short")).await;
    assert_eq!(r.status, 200);
    assert_eq!(header(&r.headers, "x-switchyard-deployment"), "d1");
    assert_eq!(header(&r.headers, "x-switchyard-attempts"), "2");
    assert_eq!(r.elapsed, Duration::from_millis(200) + ANSWER_TIME, "waited out the 200 ms, then the answer");
    assert_eq!(h.seen("d1", Seen::ErrorStatus(429)), 1);
    assert_eq!(h.seen("d1", Seen::Completed), 1);
}

#[tokio::test(start_paused = true)]
async fn long_retry_after_moves_on_and_cools_the_deployment_down() {
    let h = Harness::memory().await;
    h.faults("d1", r#"[{"kind":"error","status":429,"retry_after_ms":5000}]"#);
    let r = h.chat(ask("chat", "429 long")).await;
    assert_eq!(r.status, 200);
    assert_eq!(header(&r.headers, "x-switchyard-deployment"), "d2");
    assert_eq!(r.elapsed, ANSWER_TIME, "moved on at once, without waiting");
    // Cooling down: the next request does not even try d1.
    let r = h.chat(ask("chat", "429 again")).await;
    assert_eq!(header(&r.headers, "x-switchyard-attempts"), "1");
    assert_eq!(h.seen("d1", Seen::ErrorStatus(429)), 1);
}

#[tokio::test(start_paused = true)]
async fn capacity_429_from_concurrency_is_a_signal_not_a_failure() {
    let text = config_text(true, false).replace(
        "answer_tokens: [12, 12] }\n  - name: d2",
        "answer_tokens: [12, 12], max_concurrency: 1, retry_after_ms: 3000 }\n  - name: d2",
    );
    let h = Harness::memory_with(&text).await;
    h.faults("d1", r#"[{"kind":"slow_first_token","delay_ms":300}]"#);
    let (slow, r) = h.while_holding_d1(Duration::from_millis(50), h.chat(ask("chat", "no room"))).await;
    assert!(slow.done);
    assert_eq!(r.status, 200);
    assert_eq!(header(&r.headers, "x-switchyard-deployment"), "d2");
    assert_eq!(h.seen("d1", Seen::RateLimited), 1);
}

#[tokio::test(start_paused = true)]
async fn a_deployment_with_a_queue_serves_beyond_capacity_after_a_wait() {
    let text = config_text(true, false).replace(
        "answer_tokens: [12, 12] }\n  - name: d2",
        "answer_tokens: [12, 12], max_concurrency: 1, max_queue: 4 }\n  - name: d2",
    );
    let h = Harness::memory_with(&text).await;
    h.faults("d1", r#"[{"kind":"slow_first_token","delay_ms":300}]"#);
    let (first, second) = h.while_holding_d1(Duration::from_millis(50), h.stream(KEY, ask("solo", "queued"))).await;
    assert!(first.done && second.done);
    assert_eq!(second.content, expected_answer("queued"));
    assert_eq!(h.seen("d1", Seen::RateLimited), 0, "queued, not refused");
    // Each answer takes 300 ms more than usual; the second, sent 50 ms in, waits for the first.
    let slow_answer = Duration::from_millis(300) + ANSWER_TIME;
    assert_eq!(second.elapsed, slow_answer * 2 - Duration::from_millis(50), "waited for the first");
}

#[tokio::test]
async fn reset_before_headers_fails_over() {
    let h = Harness::start().await;
    h.faults("d1", r#"[{"kind":"reset_before_headers"}]"#);
    let r = h.chat(ask("chat", "reset")).await;
    assert_eq!(r.status, 200);
    assert_eq!(header(&r.headers, "x-switchyard-deployment"), "d2");
    assert_eq!(h.seen("d1", Seen::ResetBeforeHeaders), 1);
}

#[tokio::test(start_paused = true)]
async fn no_response_times_out_at_first_byte_and_is_not_retried() {
    let h = Harness::memory_with(&config_text(true, false).replace("first_byte_ms: 3000", "first_byte_ms: 400")).await;
    h.faults("d1", r#"[{"kind":"no_response"}]"#);
    let r = h.chat(ask("chat", "silent")).await;
    assert_eq!(r.status, 200);
    assert_eq!(header(&r.headers, "x-switchyard-attempts"), "2");
    assert_eq!(r.elapsed, Duration::from_millis(400) + ANSWER_TIME, "the 400 ms first-byte timeout, then d2");
    assert_eq!(h.seen("d1", Seen::NoResponse), 1);
}

#[tokio::test(start_paused = true)]
async fn slow_first_token_fails_over_invisibly() {
    let h =
        Harness::memory_with(&config_text(true, false).replace("first_token_ms: 3000", "first_token_ms: 400")).await;
    h.faults("d1", r#"[{"kind":"slow_first_token","delay_ms":2000}]"#);
    let r = h.stream(KEY, ask("chat", "slow")).await;
    assert!(r.done && r.error.is_none());
    assert_eq!(r.content, expected_answer("slow"));
    assert_eq!(header(&r.headers, "x-switchyard-deployment"), "d2");
    assert_eq!(r.elapsed, Duration::from_millis(400) + ANSWER_TIME, "the 400 ms first-token timeout, then d2");
}

#[tokio::test]
async fn a_stream_cut_twice_is_continued_twice() {
    let h = Harness::start().await;
    h.faults("d1", r#"[{"kind":"cut","after_tokens":3}]"#);
    h.faults("d2", r#"[{"kind":"cut","after_tokens":6}]"#);
    let r = h.stream(KEY, ask("chat", "cut twice")).await;
    assert!(r.done && r.error.is_none(), "{:?}", r.error);
    assert_eq!(r.content, expected_answer("cut twice"));
    assert!(h.seen("d1", Seen::Cut) + h.seen("d2", Seen::Cut) >= 2);
}

#[tokio::test]
async fn cut_stream_is_continued_and_the_caller_gets_one_whole_answer() {
    let h = Harness::start().await;
    h.faults("d1", r#"[{"kind":"cut","after_tokens":5}]"#);
    let mut body = ask("chat", "cut me");
    body["stream_options"] = json!({"include_usage": true});
    let r = h.stream(KEY, body).await;
    assert!(r.done, "no clean finish");
    assert!(r.error.is_none(), "{:?}", r.error);
    assert_eq!(r.content, expected_answer("cut me"));
    assert_eq!(h.seen("d1", Seen::Cut), 1);
    let d2 = h.emulator.deployment("d2").unwrap().records();
    assert_eq!(d2.len(), 1);
    assert!(d2[0].prefill, "the continuation carried the delivered text as a prefill");
    assert_eq!(r.usage.unwrap()["completion_tokens"], 12);
    assert_eq!(h.gateway.metrics.continuations(), (1, 0));
}

#[tokio::test(start_paused = true)]
async fn stalled_stream_is_continued() {
    let h =
        Harness::memory_with(&config_text(true, false).replace("stream_idle_ms: 2000", "stream_idle_ms: 300")).await;
    h.faults("d1", r#"[{"kind":"stall","after_tokens":4}]"#);
    let r = h.stream(KEY, ask("chat", "stall")).await;
    assert!(r.done && r.error.is_none());
    assert_eq!(r.content, expected_answer("stall"));
    // d1's fourth token comes at 8 ms; 300 ms idle; d2 sends the other eight in 5 + 7 ms.
    assert_eq!(r.elapsed, Duration::from_millis(8 + 300 + 12), "continued at the 300 ms idle timeout");
    assert_eq!(h.seen("d2", Seen::Completed), 1);
}

#[tokio::test]
async fn cut_without_a_prefill_deployment_ends_with_an_error_event() {
    let text = config_text(false, false).replace("prefill: true, tools: true", "prefill: false, tools: true");
    let h = Harness::with_config(&text).await;
    h.faults("d1", r#"[{"kind":"cut","after_tokens":5}]"#);
    let r = h.stream(KEY, ask("chat", "no prefill")).await;
    assert!(!r.done, "never a clean finish");
    let error = r.error.expect("an explicit error event");
    assert_eq!(error["code"], "stream_interrupted");
    assert!(expected_answer("no prefill").starts_with(&r.content));
    assert_eq!(h.requests("d2"), 0);
}

#[tokio::test]
async fn a_rejected_prefill_is_never_the_error_the_caller_sees() {
    // d2 claims prefill support in config but rejects it: the error names the cut.
    let text = config_text(true, true).replace("prefill: true, tools: true", "prefill: false, tools: true");
    let h = Harness::with_config(&text).await;
    h.faults("d1", r#"[{"kind":"cut","after_tokens":5}]"#);
    let r = h.stream(KEY, ask("chat", "rejected")).await;
    assert!(!r.done);
    let error = r.error.expect("an explicit error event");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("stream cut"), "{message}");
    assert!(!message.contains("continue_final_message"), "{message}");
    assert_eq!(h.seen("d2", Seen::PrefillRejected), 1);
}

#[tokio::test]
async fn a_malformed_event_is_skipped_and_relaying_goes_on() {
    let h = Harness::start().await;
    h.faults("d1", r#"[{"kind":"malformed_chunk","after_tokens":3}]"#);
    let r = h.stream(KEY, ask("chat", "malformed")).await;
    assert!(r.done && r.error.is_none());
    assert_eq!(r.content, expected_answer("malformed"));
    let d1 = h.gateway.config.deployment_by_name("d1").unwrap().id;
    assert_eq!(h.gateway.metrics.malformed_events(d1), 1);
    assert_eq!(h.requests("d2"), 0);
}

#[tokio::test(start_paused = true)]
async fn a_stream_without_done_is_finalised_at_once() {
    let text = config_text(true, false).replace("stream_idle_ms: 2000", "stream_idle_ms: 5000");
    let h = Harness::memory_with(&text).await;
    h.faults("d1", r#"[{"kind":"no_done"}]"#);
    let mut body = ask("chat", "no done");
    body["stream_options"] = json!({"include_usage": true});
    let r = h.stream(KEY, body).await;
    assert!(r.done && r.error.is_none());
    assert_eq!(r.content, expected_answer("no done"));
    assert!(r.usage.is_some());
    assert_eq!(r.elapsed, ANSWER_TIME, "did not wait for the idle timeout, nor the after-finish grace");
    assert_eq!(h.seen("d1", Seen::NoDone), 1);
}

#[tokio::test]
async fn a_garbage_answer_fails_over_for_streams_and_whole_answers() {
    let h = Harness::start().await;
    h.faults("d1", r#"[{"kind":"garbage"}]"#);
    let r = h.chat(ask("chat", "garbage")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(header(&r.headers, "x-switchyard-deployment"), "d2");
    assert_eq!(r.body["choices"][0]["message"]["content"], expected_answer("garbage"));
    let s = h.stream(KEY, ask("chat", "garbage stream")).await;
    assert!(s.done && s.error.is_none());
    assert_eq!(s.content, expected_answer("garbage stream"));
    assert_eq!(header(&s.headers, "x-switchyard-deployment"), "d2");
    assert_eq!(h.seen("d1", Seen::Garbage), 2);
}

#[tokio::test]
async fn context_length_goes_to_the_larger_context_fallback() {
    let h = Harness::start().await;
    h.faults("d1", r#"[{"kind":"context_length"}]"#);
    let r = h.chat(ask("chat", "long prompt")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(header(&r.headers, "x-switchyard-deployment"), "big");
    assert_eq!(h.seen("d1", Seen::ContextLength), 1);
    assert_eq!(h.requests("d2"), 0, "never the same-size model");
}

#[tokio::test]
async fn content_filter_is_returned_without_retry() {
    let h = Harness::start().await;
    h.faults("d1", r#"[{"kind":"content_filter"}]"#);
    let r = h.chat(ask("chat", "forbidden")).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["error"]["code"], "content_filter");
    assert!(r.body["error"]["message"].as_str().unwrap().contains("content management policy"));
    assert_eq!(h.requests("d2"), 0);
}

#[tokio::test]
async fn a_flapping_deployment_is_routed_around_while_down() {
    let h = Harness::start().await;
    h.faults("d1", r#"[{"kind":"flap","period_ms":60000}]"#);
    let r = h.chat(ask("chat", "flap")).await;
    assert_eq!(header(&r.headers, "x-switchyard-deployment"), "d2");
    assert_eq!(h.seen("d1", Seen::ConnectionReset), 1);
}

#[tokio::test]
async fn when_every_attempt_fails_each_reason_is_listed() {
    let h = Harness::start().await;
    h.faults("d1", r#"[{"kind":"outage"}]"#);
    h.faults("d2", r#"[{"kind":"error","status":502}]"#);
    let r = h.chat(ask("chat", "doomed")).await;
    assert_eq!(r.status, 502);
    let message = r.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("d1: connection"), "{message}");
    assert!(message.contains("d2: upstream server error (502)"), "{message}");
    assert_eq!(r.body["error"]["code"], "all_attempts_failed");
}

#[tokio::test(start_paused = true)]
async fn the_request_deadline_gives_504() {
    let text = config_text(true, false).replace("request_ms: 8000", "request_ms: 300");
    let h = Harness::memory_with(&text).await;
    h.faults("d1", r#"[{"kind":"no_response"}]"#);
    let r = h.chat(ask("chat", "deadline")).await;
    assert_eq!(r.status, 504);
    assert_eq!(r.body["error"]["code"], "deadline_exceeded");
    assert_eq!(r.elapsed, Duration::from_millis(300), "at the deadline");
}

#[tokio::test(start_paused = true)]
async fn a_caller_that_leaves_mid_stream_releases_the_attempt() {
    let h = Harness::memory().await;
    // The upstream stalls for good after three tokens; the caller reads a little and leaves.
    h.faults("d1", r#"[{"kind":"stall","after_tokens":3}]"#);
    let mut stream = h.open_stream(KEY, ask("chat", "leaving")).await;
    let first = stream.chunk().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("data:"));
    let in_flight = async || {
        let text = h.metrics().await;
        text.lines().find(|l| l.starts_with("switchyard_deployment_in_flight{deployment=\"d1\"}")).unwrap().to_owned()
    };
    assert!(in_flight().await.ends_with(" 1"), "the stream holds an attempt");
    drop(stream);
    // The gateway notices the closed connection, drops the relay and closes the attempt.
    let mut released = false;
    for _ in 0..100 {
        if in_flight().await.ends_with(" 0") {
            released = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(released, "attempt still open after the caller left");
    let metrics = h.metrics().await;
    assert!(
        metrics.contains("switchyard_upstream_attempts_total{deployment=\"d1\",result=\"abandoned\"} 1"),
        "{metrics}"
    );
}
