//! Azure OpenAI: OpenAI's bodies at Azure's URLs, its `api-key` (or Entra ID token), and its
//! refusals in its own shapes.

use http::Method;
use serde_json::{Value, json};
use switchyard_wire::canonical::StreamEvent;
use switchyard_wire::openai_codec;

use crate::support::*;

const DEPLOYMENT_PATH: &str = "/openai/deployments/gpt-4o-prod/chat/completions?api-version=2024-10-21";
const ACCESS_DENIED: &str = "Access denied due to invalid subscription key or wrong API endpoint. Make sure to \
     provide a valid key for an active subscription and use a correct regional API endpoint for your resource.";

async fn post(
    emulator: &switchyard_emulator::Emulator,
    name: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &Value,
) -> Reply {
    send(emulator, name, Method::POST, path, headers, body.to_string()).await.expect("a response")
}

fn hello(stream: bool) -> Value {
    json!({"model": "gpt-4o-prod", "messages": [{"role": "user", "content": "hello"}], "stream": stream})
}

#[tokio::test(start_paused = true)]
async fn deployment_urls_and_the_v1_path_answer_as_openai_does() {
    let emulator = emulator().await;
    let key = [("api-key", AZURE_KEY)];
    let messages = [json!({"role": "user", "content": "hello"})];
    let r = post(&emulator, "gpt-4o-sweden", DEPLOYMENT_PATH, &key, &hello(false)).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let body = r.json();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["choices"][0]["message"]["content"], answer_to(&messages), "the same words as OpenAI's");

    // The v1 API: OpenAI's path under /openai/v1, the body's model names the deployment.
    let r = post(&emulator, "gpt-4o-sweden", "/openai/v1/chat/completions", &key, &hello(true)).await;
    assert_eq!((r.status.as_u16(), r.header("content-type")), (200, "text/event-stream"));
    let events = openai_codec::decode_stream(&r.body).expect("a well-formed stream");
    let text: String = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::TextDelta { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(text, answer_to(&messages));

    // Embeddings, at both kinds of URL.
    let input = json!({"model": "text-embedding-3-small", "input": ["a", "b"]});
    let r = post(&emulator, "embed-sweden", "/openai/v1/embeddings", &key, &input).await;
    assert_eq!((r.status.as_u16(), r.json()["data"].as_array().map(Vec::len)), (200, Some(2)), "{:?}", r.body);
    let path = "/openai/deployments/text-embedding-3-small/embeddings?api-version=2024-10-21";
    let r = post(&emulator, "embed-sweden", path, &key, &input).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
}

#[tokio::test(start_paused = true)]
async fn keys_deployments_and_api_versions_are_checked_as_azure_does() {
    let emulator = emulator().await;
    let denied = json!({"error": {"code": "401", "message": ACCESS_DENIED}});
    for headers in [&[][..], &[("api-key", "wrong")][..], &[("authorization", "Bearer azure-resource-key")][..]] {
        let r = post(&emulator, "gpt-4o-sweden", DEPLOYMENT_PATH, headers, &hello(false)).await;
        assert_eq!((r.status.as_u16(), r.json()), (401, denied.clone()), "{headers:?}");
    }
    let key = [("api-key", AZURE_KEY)];
    let path = "/openai/deployments/gpt-35-turbo/chat/completions?api-version=2024-10-21";
    let r = post(&emulator, "gpt-4o-sweden", path, &key, &hello(false)).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["code"], "DeploymentNotFound");
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("The API deployment for this resource does not exist")),
        "{:?}",
        r.body
    );
    let other = json!({"model": "gpt-35-turbo", "messages": [{"role": "user", "content": "hello"}]});
    let r = post(&emulator, "gpt-4o-sweden", "/openai/v1/chat/completions", &key, &other).await;
    assert_eq!((r.status.as_u16(), r.json()["error"]["code"].clone()), (404, json!("DeploymentNotFound")));
    let not_found = json!({"error": {"code": "404", "message": "Resource not found"}});
    for path in [
        "/openai/deployments/gpt-4o-prod/chat/completions",
        "/openai/deployments/gpt-4o-prod/chat/completions?api-version=",
        "/v1/chat/completions",
        "/openai/deployments/gpt-4o-prod/completions?api-version=2024-10-21",
    ] {
        let r = post(&emulator, "gpt-4o-sweden", path, &key, &hello(false)).await;
        assert_eq!((r.status.as_u16(), r.json()), (404, not_found.clone()), "{path}");
    }

    // An Entra ID token is a Bearer token; a key is no substitute.
    let path = "/openai/deployments/gpt-4o-entra/chat/completions?api-version=2024-10-21";
    let body = json!({"model": "gpt-4o-entra", "messages": [{"role": "user", "content": "hello"}]});
    let bearer = format!("Bearer {ENTRA_TOKEN}");
    let r = post(&emulator, "gpt-4o-entra", path, &[("authorization", &bearer)], &body).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = post(&emulator, "gpt-4o-entra", path, &[("api-key", AZURE_KEY)], &body).await;
    assert_eq!(r.status, 401);
    assert!(
        r.json()["error"]["message"].as_str().is_some_and(|m| m.contains("Access token is missing")),
        "{:?}",
        r.body
    );

    let seen = seen(&emulator, "gpt-4o-sweden");
    assert_eq!(seen.get("Unauthorized"), Some(&3), "{seen:?}");
    assert_eq!(seen.get("Completed"), None, "nothing refused was served: {seen:?}");
}

#[tokio::test(start_paused = true)]
async fn a_content_filter_and_capacity_are_refused_in_azures_shapes() {
    let emulator = emulator().await;
    let key = [("api-key", AZURE_KEY)];
    faults(&emulator, "gpt-4o-sweden", r#"[{"kind": "content_filter"}]"#);
    let r = post(&emulator, "gpt-4o-sweden", DEPLOYMENT_PATH, &key, &hello(true)).await;
    assert_eq!(r.status, 400);
    let error = &r.json()["error"];
    assert_eq!(error["code"], "content_filter");
    assert_eq!(error["innererror"]["code"], "ResponsibleAIPolicyViolation");
    assert_eq!(
        error["innererror"]["content_filter_result"]["violence"],
        json!({"filtered": true, "severity": "medium"})
    );
    let (class, _) = switchyard_wire::chat::classify_rejection(&r.body);
    assert_eq!(class, switchyard_wire::chat::UpstreamRejection::ContentFilter);

    // One slot: a second request while a stream holds it is Azure's 429.
    let slow = r#"[{"kind": "stall", "after_tokens": 1, "duration_ms": 5000}]"#;
    faults(&emulator, "gpt-4o-sweden", slow);
    let held = {
        let emulator = &emulator;
        async move { post(emulator, "gpt-4o-sweden", DEPLOYMENT_PATH, &key, &hello(true)).await }
    };
    let second = async {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        post(&emulator, "gpt-4o-sweden", DEPLOYMENT_PATH, &key, &hello(false)).await
    };
    let (_, r) = tokio::join!(held, second);
    assert_eq!(r.status, 429, "{:?}", r.body);
    assert_eq!(r.json()["error"]["code"], "429");
    assert!(r.header("retry-after-ms").parse::<u64>().is_ok(), "{:?}", r.headers);
    let seen = seen(&emulator, "gpt-4o-sweden");
    assert_eq!((seen.get("ContentFilter"), seen.get("RateLimited")), (Some(&1), Some(&1)), "{seen:?}");
}
