//! `POST /v1/responses` end to end, on the multi-protocol emulator of `protocols.rs`: whole
//! and streamed answers (the typed events in order, numbered, and the completion holding the
//! output) from OpenAI-, Bedrock- and Anthropic-protocol deployments, function calls and their
//! outputs, the refusals (`previous_response_id`, hosted tools, unknown parameters) with
//! nothing sent, and `GET /v1/models/{id}`.

use http::Method;
use serde_json::{Value, json};
use switchyard_wire::responses_codec::NO_STATE;
use switchyard_wire::sse::SseParser;

use crate::protocols::{Secrets, TRANSLATED, answer_to, config, harness};
use crate::support::*;

const RESPONSES: &str = "/v1/responses";

/// Each alias, the deployment that answers it, and its protocol's name.
const ROUTES: [(&str, &str); 3] =
    [("azure", "az"), (TRANSLATED[0].0, TRANSLATED[0].1), (TRANSLATED[1].0, TRANSLATED[1].1)];

fn weather() -> Value {
    json!({"type": "function", "name": "get_weather", "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}})
}

/// The events of a Responses stream, checked as the SDK's accumulator needs them: each
/// `event:` names its data's `type`, sequence numbers count from 0, one response id throughout,
/// `response.created` first; and the comment lines.
fn events(text: &str) -> (Vec<Value>, String) {
    let mut parser = SseParser::default();
    let mut raw = Vec::new();
    parser.push(text.as_bytes(), &mut raw).expect("sse");
    parser.finish(&mut raw);
    let events: Vec<Value> = raw
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let data: Value = serde_json::from_str(&e.data).expect("JSON events only");
            assert_eq!(e.event.as_deref(), data["type"].as_str(), "{data}");
            assert_eq!(data["sequence_number"], i, "{data}");
            data
        })
        .collect();
    assert_eq!(events[0]["type"], "response.created", "{text}");
    let id = &events[0]["response"]["id"];
    assert!(id.as_str().is_some_and(|id| id.starts_with("resp_")), "{id}");
    for e in events.iter().filter(|e| e.get("response").is_some()) {
        assert_eq!(&e["response"]["id"], id, "one response: {e}");
    }
    let comments = text.lines().filter(|l| l.starts_with(':')).collect::<Vec<_>>().join("\n");
    (events, comments)
}

async fn stream_text(h: &Harness, mut body: Value) -> String {
    body["stream"] = json!(true);
    let opened = h.send(Method::POST, RESPONSES, Some(KEY), body.to_string()).await;
    assert_eq!(opened.status, 200);
    assert_eq!(header(&opened.headers, "content-type"), "text/event-stream");
    opened.text().await
}

#[tokio::test(start_paused = true)]
async fn a_response_is_answered_whole_and_streamed_by_every_protocol() {
    let h = harness().await;
    for (alias, deployment) in ROUTES {
        let r =
            h.post(RESPONSES, Some(KEY), json!({"model": alias, "input": "hello", "store": true}).to_string()).await;
        assert_eq!(r.status, 200, "{alias}: {}", r.body);
        assert_eq!(header(&r.headers, "x-switchyard-deployment"), deployment);
        let b = &r.body;
        assert_eq!(
            (b["object"].as_str(), b["status"].as_str(), b["model"].as_str()),
            (Some("response"), Some("completed"), Some(alias)),
            "{b}"
        );
        assert!(b["id"].as_str().is_some_and(|id| id.starts_with("resp_")), "{b}");
        let output = b["output"].as_array().expect("output");
        assert_eq!(output.len(), 1, "{b}");
        assert_eq!((output[0]["type"].as_str(), output[0]["role"].as_str()), (Some("message"), Some("assistant")));
        assert_eq!(output[0]["content"][0]["type"], "output_text");
        assert_eq!(output[0]["content"][0]["text"], expected_answer("hello"), "{alias}");
        let usage = &b["usage"];
        let input = usage["input_tokens"].as_u64().expect("input tokens");
        assert!(input > 0, "{usage}");
        assert_eq!((usage["output_tokens"].as_u64(), usage["total_tokens"].as_u64()), (Some(12), Some(input + 12)));
        assert!(usage["input_tokens_details"]["cached_tokens"].is_u64(), "{usage}");

        // Instructions and a conversation of items reach the deployment as these messages.
        let body = json!({"model": alias, "instructions": "Be brief.", "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "Hi there"}]},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Hello."}]},
            {"role": "user", "content": "What routes requests?"},
        ]});
        let r = h.post(RESPONSES, Some(KEY), body.to_string()).await;
        assert_eq!(r.status, 200, "{alias}: {}", r.body);
        let seen = json!([
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi there"},
            {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": "What routes requests?"},
        ]);
        assert_eq!(r.body["output"][0]["content"][0]["text"], answer_to(&seen), "{alias}");
        assert_eq!(r.body["instructions"], "Be brief.");

        // A cut answer is incomplete, and says why.
        let r = h
            .post(RESPONSES, Some(KEY), json!({"model": alias, "input": "hello", "max_output_tokens": 3}).to_string())
            .await;
        assert_eq!(
            (r.body["status"].as_str(), r.body["usage"]["output_tokens"].as_u64()),
            (Some("incomplete"), Some(3)),
            "{}",
            r.body
        );
        assert_eq!(r.body["incomplete_details"], json!({"reason": "max_output_tokens"}));

        // Streamed: the typed events in order, the completion holding what the deltas said.
        let text = stream_text(&h, json!({"model": alias, "input": "stream it"})).await;
        let (events, comments) = events(&text);
        let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
        let deltas = types.iter().filter(|t| **t == "response.output_text.delta").count();
        assert!(deltas > 1, "{types:?}");
        let mut expected = vec![
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
        ];
        expected.extend(std::iter::repeat_n("response.output_text.delta", deltas));
        expected.extend([
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]);
        assert_eq!(types, expected, "{alias}");
        let streamed: String = events.iter().filter_map(|e| e["delta"].as_str()).collect();
        assert_eq!(streamed, expected_answer("stream it"), "{alias}");
        let done = &events.last().unwrap()["response"];
        assert_eq!((done["status"].as_str(), done["model"].as_str()), (Some("completed"), Some(alias)));
        assert_eq!(done["output"][0]["content"][0]["text"], streamed);
        assert_eq!(done["usage"]["output_tokens"], 12, "{done}");
        assert!(comments.contains(&format!("x-switchyard-route: {deployment}")), "{comments}");
        assert!(!text.contains("[DONE]") && !text.contains("chat.completion"), "nothing of Chat's: {text}");
    }
    let metrics = h.metrics().await;
    assert!(metrics.contains("switchyard_requests_total{api=\"responses\",outcome=\"ok\"} 9"), "{metrics}");
    assert!(metrics.contains("switchyard_requests_total{api=\"responses_stream\",outcome=\"ok\"} 3"), "{metrics}");
}

#[tokio::test(start_paused = true)]
async fn function_calls_and_their_outputs_cross_every_protocol() {
    let h = harness().await;
    for (alias, deployment) in ROUTES {
        let body = json!({"model": alias, "input": "Weather in Paris?", "tools": [weather()], "tool_choice": "auto"});
        let r = h.post(RESPONSES, Some(KEY), body.to_string()).await;
        assert_eq!(r.status, 200, "{alias}: {}", r.body);
        assert_eq!(header(&r.headers, "x-switchyard-deployment"), deployment);
        let calls: Vec<&Value> =
            r.body["output"].as_array().unwrap().iter().filter(|i| i["type"] == "function_call").collect();
        assert_eq!(calls.len(), 1, "{alias}: {}", r.body);
        let call = calls[0];
        assert_eq!(call["name"], "get_weather");
        assert!(call["call_id"].as_str().is_some_and(|id| !id.is_empty()), "{call}");
        let arguments: Value = serde_json::from_str(call["arguments"].as_str().unwrap()).expect("JSON arguments");
        assert_eq!(arguments, json!({"city": "Paris"}), "{alias}");
        assert_eq!(r.body["tools"][0]["name"], "get_weather", "the request's tools are repeated");

        let text = stream_text(&h, body.clone()).await;
        let (events, _) = events(&text);
        let added = events.iter().find(|e| e["type"] == "response.output_item.added").expect("an item");
        assert_eq!(
            (added["item"]["type"].as_str(), added["item"]["name"].as_str()),
            (Some("function_call"), Some("get_weather"))
        );
        let pieces: String = events
            .iter()
            .filter(|e| e["type"] == "response.function_call_arguments.delta")
            .filter_map(|e| e["delta"].as_str())
            .collect();
        let done =
            events.iter().find(|e| e["type"] == "response.function_call_arguments.done").expect("arguments done");
        assert_eq!(done["arguments"], pieces);
        assert_eq!(serde_json::from_str::<Value>(&pieces).unwrap(), json!({"city": "Paris"}), "{alias}");
        let completed = &events.last().unwrap()["response"];
        assert_eq!(completed["output"][0]["arguments"], pieces, "{completed}");

        // The call's output goes back, and the answer is text about it.
        let input = json!([
            {"role": "user", "content": "Weather in Paris?"},
            {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{\"city\":\"Paris\"}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "18 C"},
        ]);
        let r = h
            .post(RESPONSES, Some(KEY), json!({"model": alias, "input": input, "tools": [weather()]}).to_string())
            .await;
        assert_eq!(r.status, 200, "{alias}: {}", r.body);
        let seen = json!([
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18 C"},
        ]);
        assert_eq!(r.body["output"][0]["content"][0]["text"], answer_to(&seen), "{alias}");
    }
}

#[tokio::test(start_paused = true)]
async fn what_the_gateway_cannot_do_is_a_400_naming_it_and_nothing_is_sent() {
    let h = harness().await;
    let refused = |body: Value| {
        let h = &h;
        async move {
            let r = h.post(RESPONSES, Some(KEY), body.to_string()).await;
            assert_eq!(r.status, 400, "{}", r.body);
            assert_eq!(r.body["error"]["type"], "invalid_request_error", "{}", r.body);
            r.body["error"].clone()
        }
    };
    let e = refused(json!({"model": "bedrock", "input": "hi", "previous_response_id": "resp_1"})).await;
    assert_eq!((e["message"].as_str(), e["param"].as_str()), (Some(NO_STATE), Some("previous_response_id")));
    let e = refused(json!({"model": "anthropic", "input": "hi", "tools": [{"type": "web_search_preview"}]})).await;
    assert!(e["message"].as_str().unwrap().contains("'web_search_preview' tools are not supported"), "{e}");
    let e = refused(json!({"model": "azure", "input": "hi", "background": true})).await;
    assert!(e["message"].as_str().unwrap().contains("'background'"), "{e}");
    // What the deployment's protocol cannot express: Bedrock has no JSON mode.
    let e = refused(json!({"model": "bedrock", "input": "hi", "text": {"format": {"type": "json_object"}}})).await;
    assert!(e["message"].as_str().unwrap().contains("response_format"), "{e}");
    for deployment in ["br", "an", "az"] {
        assert_eq!(h.requests(deployment), 0, "{deployment}");
    }
    let r = h.post(RESPONSES, Some(KEY), json!({"model": "nope", "input": "hi"}).to_string()).await;
    assert_eq!((r.status, r.body["error"]["code"].as_str()), (404, Some("model_not_found")), "{}", r.body);
}

#[tokio::test]
async fn a_failed_over_response_is_on_record_as_the_responses_protocol() {
    let (h, store) = Harness::with_ledger_secrets(&config(), &Secrets::issued(), &[]).await;
    h.faults("br", r#"[{"kind":"error","status":429}]"#);
    let body = json!({"model": "br-an", "input": "failed over"});
    let whole = h.post(RESPONSES, Some(KEY), body.to_string()).await;
    assert_eq!(whole.status, 200, "{}", whole.body);
    assert_eq!(header(&whole.headers, "x-switchyard-deployment"), "an");
    assert_eq!(whole.body["output"][0]["content"][0]["text"], expected_answer("failed over"));
    let text = stream_text(&h, json!({"model": "oa-br", "input": "streamed"})).await;
    let (events, _) = events(&text);
    assert_eq!(events.last().unwrap()["type"], "response.completed", "{text}");
    h.flush_ledger().await;
    let records = store.recent(10).await.expect("records");
    assert_eq!(records.len(), 2, "{records:?}");
    let r = records.iter().find(|r| r.alias == "br-an").expect("the failed-over request");
    assert_eq!((r.protocol.as_str(), r.status, r.deployment.as_deref()), ("responses", 200, Some("an")));
    assert_eq!((r.input_tokens, r.output_tokens), (whole.body["usage"]["input_tokens"].as_u64().unwrap(), 12));
    let attempts: Vec<(&str, &str)> = r.attempts.iter().map(|a| (a.deployment.as_str(), a.outcome.as_str())).collect();
    assert_eq!(attempts, [("br", "rate_limited"), ("an", "ok")]);
    let r = records.iter().find(|r| r.alias == "oa-br").expect("the stream");
    assert_eq!((r.protocol.as_str(), r.outcome.as_str(), r.output_tokens), ("responses", "ok", 12));
}

#[tokio::test]
async fn a_model_is_read_by_its_id_when_the_key_may_use_it() {
    let h = &Harness::start().await;
    let get = |key: &'static str, path: &'static str| async move {
        let opened = h.send(Method::GET, path, Some(key), String::new()).await;
        let status = opened.status;
        (status, serde_json::from_str::<Value>(&opened.text().await).unwrap())
    };
    let (status, body) = get(KEY, "/v1/models/solo").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"id": "solo", "object": "model", "created": 0, "owned_by": "switchyard"}));
    for (key, path) in [(KEY, "/v1/models/nope"), (CHAT_ONLY_KEY, "/v1/models/solo")] {
        let (status, body) = get(key, path).await;
        assert_eq!((status, body["error"]["code"].as_str()), (404, Some("model_not_found")), "{path}: {body}");
    }
    let (status, _) = get("sk-wrong", "/v1/models/solo").await;
    assert_eq!(status, 401);
    // In Anthropic's shape for a caller that speaks Anthropic's API.
    let net = h.net();
    let anthropic = |path: &'static str| {
        net.client.get(format!("{}{path}", net.base)).header("x-api-key", KEY).header("anthropic-version", "2023-06-01")
    };
    let r = anthropic("/v1/models/solo").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let body: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!((body["type"].as_str(), body["id"].as_str()), (Some("model"), Some("solo")), "{body}");
    let r = anthropic("/v1/models/nope").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let body: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(body["error"]["type"], "not_found_error", "{body}");
}
