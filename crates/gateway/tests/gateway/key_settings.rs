//! Managed keys with settings of their own, made through the admin API: a key's limits refuse
//! it (429 saying it was the key's, and when to come back) while another key of its tenant
//! goes on; a key held to a jurisdiction or to some aliases is planned only there; bad
//! settings are a 400 naming the field.

use http::Method;
use serde_json::{Value, json};

use crate::support::*;

const ADMIN_KEY: &str = "sk-test-admin";

/// The base config with an admin key, `d2` (the `chat` alias's second choice) in the EU.
fn config() -> String {
    let admin_hash = switchyard_core::config::key_hash_text(ADMIN_KEY);
    let text = config_text(true, false)
        .replacen("server:\n", &format!("server:\n  admin_keys: [\"{admin_hash}\"]\n"), 1)
        .replacen("region: r2\n    jurisdiction: us", "region: r2\n    jurisdiction: eu", 1);
    assert!(text.contains("jurisdiction: eu"), "d2 moved to the EU");
    text
}

async fn admin(h: &Harness, method: Method, path: &str, body: Value) -> Reply {
    let body = if body.is_null() { String::new() } else { body.to_string() };
    let opened = h.send(method, path, Some(ADMIN_KEY), body).await;
    let (status, headers) = (opened.status, opened.headers.clone());
    let bytes = opened.bytes().await.expect("body");
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Reply { status, headers, body, elapsed: std::time::Duration::ZERO }
}

/// Makes a key through the admin API and returns its secret.
async fn make_key(h: &Harness, body: Value) -> String {
    let made = admin(h, Method::POST, "/admin/keys", body).await;
    assert_eq!(made.status, 201, "{}", made.body);
    made.body["key"].as_str().expect("the secret").to_owned()
}

async fn chat_as(h: &Harness, key: &str, body: Value) -> Reply {
    h.post("/v1/chat/completions", Some(key), body.to_string()).await
}

#[tokio::test]
async fn a_keys_own_tokens_per_minute_refuse_it_while_another_key_of_its_tenant_goes_on() {
    let (h, _store) = Harness::with_ledger(&config()).await;
    let small = make_key(&h, json!({"tenant": "global", "name": "small", "tpm": 100})).await;
    let other = make_key(&h, json!({"tenant": "global", "name": "other"})).await;
    // Each request reserves its prompt and 40 tokens of output, and is settled to what it
    // really used (about two dozen): a few fit in 100 a minute, then the key's own limit says no.
    let ask40 = |i: usize| {
        let mut body = ask("chat", &format!("small {i}"));
        body["max_tokens"] = json!(40);
        body
    };
    let mut answered = 0;
    let refused = loop {
        let r = chat_as(&h, &small, ask40(answered)).await;
        if r.status != 200 {
            break r;
        }
        answered += 1;
        assert!(answered < 10, "the key's limit never said no");
    };
    assert!(answered >= 1, "settled to real use, so more than none fit");
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert_eq!(refused.body["error"]["code"], "key_tokens_per_minute");
    assert_eq!(refused.body["error"]["type"], "rate_limit_error");
    let message = refused.body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("this key's limit of 100 tokens per minute"), "{message}");
    let wait: u64 = header(&refused.headers, "retry-after").parse().expect("Retry-After in seconds");
    assert!((1..=60).contains(&wait), "when the key's allowance has room again: {wait}");

    // The tenant has room: its other keys, managed or from the config, are served.
    assert_eq!(chat_as(&h, &other, ask40(100)).await.status, 200);
    assert_eq!(h.chat(ask40(101)).await.status, 200);

    // Anthropic's shape on /v1/messages, with the same headers.
    let body = json!({"model": "chat", "max_tokens": 40, "messages": [{"role": "user", "content": "hi"}]});
    let r = h.post("/v1/messages", Some(&small), body.to_string()).await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!((r.body["type"].as_str(), r.body["error"]["type"].as_str()), (Some("error"), Some("rate_limit_error")));
    assert!(r.body["error"]["message"].as_str().unwrap_or_default().contains("this key's limit"), "{}", r.body);
    assert!(!header(&r.headers, "retry-after").is_empty());

    let metrics = h.metrics().await;
    let refusals = metrics
        .lines()
        .find_map(|l| l.strip_prefix("switchyard_tenant_refused_total{tenant=\"global\",reason=\"key_tpm\"} "))
        .and_then(|n| n.parse::<u64>().ok());
    assert_eq!(refusals, Some(2), "counted as the key's, under its tenant");
    assert!(metrics.contains("switchyard_tenant_refused_total{tenant=\"global\",reason=\"tpm\"} 0"));

    // Listed with its settings; revoked, it is refused at once.
    let listed = admin(&h, Method::GET, "/admin/keys", Value::Null).await;
    let row = listed.body["data"].as_array().and_then(|d| d.iter().find(|k| k["name"] == "small")).cloned();
    let row = row.expect("the small key is listed");
    assert_eq!(row["settings"], json!({"tpm": 100}));
    let id = row["id"].as_str().expect("id");
    assert_eq!(admin(&h, Method::DELETE, &format!("/admin/keys/{id}"), Value::Null).await.status, 204);
    assert_eq!(chat_as(&h, &small, ask("chat", "revoked")).await.status, 401);
}

#[tokio::test]
async fn a_key_held_to_a_jurisdiction_or_some_aliases_is_planned_only_there() {
    let (h, _store) = Harness::with_ledger(&config()).await;
    let eu = make_key(&h, json!({"tenant": "global", "jurisdictions": ["eu"]})).await;
    let solo = make_key(&h, json!({"tenant": "global", "aliases": ["solo"], "priority": "low"})).await;

    // `chat` puts d1 (US) first: the tenant's config key goes there, the EU key to d2 only,
    // whole or streamed.
    let (d1, d2) = (h.requests("d1"), h.requests("d2"));
    for i in 0..5 {
        let r = h.chat(ask("chat", &format!("tenant {i}"))).await;
        assert_eq!((r.status, header(&r.headers, "x-switchyard-deployment")), (200, "d1"), "{}", r.body);
        let r = chat_as(&h, &eu, ask("chat", &format!("eu {i}"))).await;
        assert_eq!((r.status, header(&r.headers, "x-switchyard-deployment")), (200, "d2"), "{}", r.body);
    }
    let streamed = h.stream(&eu, ask("chat", "eu stream")).await;
    assert!(streamed.done);
    assert_eq!((h.requests("d1") - d1, h.requests("d2") - d2), (5, 6), "the stream went to d2 too");
    // With d2 failing, the EU key fails rather than going to the US.
    h.faults("d2", r#"[{"kind": "error", "status": 500}]"#);
    let r = chat_as(&h, &eu, ask("chat", "eu while d2 fails")).await;
    assert_eq!(r.status, 502, "{}", r.body);
    assert_eq!(h.requests("d1") - d1, 5, "nothing of the EU key reached d1");
    h.faults("d2", "[]");
    // `solo` is d1 only: nowhere the EU key may go.
    let r = chat_as(&h, &eu, ask("solo", "eu solo")).await;
    assert_eq!((r.status, r.body["error"]["code"].as_str()), (403, Some("jurisdiction_not_allowed")), "{}", r.body);

    // The key held to `solo` may not use `chat`, which its tenant may; and lists only `solo`.
    let r = chat_as(&h, &solo, ask("chat", "solo key")).await;
    assert_eq!((r.status, r.body["error"]["code"].as_str()), (403, Some("model_not_allowed")), "{}", r.body);
    assert_eq!(chat_as(&h, &solo, ask("solo", "solo key")).await.status, 200);
    let models = h.send(Method::GET, "/v1/models", Some(&solo), String::new()).await.text().await;
    let models: Value = serde_json::from_str(&models).expect("models");
    let ids: Vec<&str> = models["data"].as_array().expect("list").iter().filter_map(|m| m["id"].as_str()).collect();
    assert_eq!(ids, ["solo"]);
}

#[tokio::test]
async fn bad_key_settings_are_a_400_naming_the_field() {
    let (h, _store) = Harness::with_ledger(&config()).await;
    let cases = [
        (
            json!({"tenant": "chat-only", "aliases": ["solo"]}),
            "aliases",
            "aliases[0]: \"solo\" is not an alias tenant chat-only may use (chat)",
        ),
        (
            json!({"tenant": "eu-only", "jurisdictions": ["us"]}),
            "jurisdictions",
            "jurisdictions[0]: \"us\" is not one of tenant eu-only's jurisdictions (eu)",
        ),
        (
            json!({"tenant": "global", "daily_usd": -1}),
            "daily_usd",
            "daily_usd: must be a dollar amount above 0 (got -1)",
        ),
        (
            json!({"tenant": "global", "rpm": 0, "monthly_usd": 0}),
            "rpm",
            "rpm: must be > 0 (leave it out for no limit); monthly_usd: must be",
        ),
        (json!({"tenant": "global", "rpm": -1}), "rpm", "rpm: invalid value: integer `-1`"),
        (json!({"tenant": "global", "priority": "urgent"}), "priority", "priority: unknown variant `urgent`"),
        (json!({"tenant": "global", "aliases": []}), "aliases", "aliases: an empty list allows nothing"),
        (json!({"tenant": "global", "budget": 5}), "", "unknown field `budget`"),
        (json!({"tenant": 7}), "tenant", "tenant: invalid type"),
        (json!({"name": "no tenant"}), "", "missing field `tenant`"),
        (json!([1]), "", "the body must be a JSON object"),
    ];
    for (body, param, message) in cases {
        let r = admin(&h, Method::POST, "/admin/keys", body.clone()).await;
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        let error = &r.body["error"];
        assert_eq!(error["type"], "invalid_request_error", "{body}");
        assert_eq!(error["param"].as_str().unwrap_or_default(), param, "{body}: {error}");
        let text = error["message"].as_str().unwrap_or_default();
        assert!(text.starts_with("invalid key request: ") && text.contains(message), "{body}: {text}");
    }
    let listed = admin(&h, Method::GET, "/admin/keys", Value::Null).await;
    assert_eq!(listed.body["data"], json!([]), "no key was made");
}

#[tokio::test]
async fn a_keys_settings_change_through_the_admin_api_and_apply_at_once() {
    let (h, _store) = Harness::with_ledger(&config()).await;
    let secret = make_key(&h, json!({"tenant": "global", "name": "team", "aliases": ["solo"]})).await;
    let listed = admin(&h, Method::GET, "/admin/keys", Value::Null).await;
    let id = listed.body["data"][0]["id"].as_str().expect("id").to_owned();
    let path = format!("/admin/keys/{id}");
    assert_eq!(chat_as(&h, &secret, ask("chat", "held to solo")).await.status, 403);

    // The alias list cleared (back to the tenant's), a name and a concurrency limit set.
    let changed = admin(&h, Method::PATCH, &path, json!({"aliases": null, "name": "team-b", "concurrency": 4})).await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    assert_eq!(changed.body["settings"], json!({"concurrency": 4}));
    assert_eq!((changed.body["name"].as_str(), changed.body["status"].as_str()), (Some("team-b"), Some("active")));
    assert_eq!(chat_as(&h, &secret, ask("chat", "any alias now")).await.status, 200, "applied at once");
    let read = admin(&h, Method::GET, &path, Value::Null).await;
    assert_eq!((read.status, &read.body), (200, &changed.body));

    // Bad changes: a 400 naming the field, nothing changed.
    for (patch, param) in [
        (json!({"rpm": 0}), "rpm"),
        (json!({"jurisdictions": ["mars"]}), "jurisdictions"),
        (json!({"expires_ms": 1}), "expires_ms"),
        (json!({"name": 7}), "name"),
        (json!({"colour": "red"}), ""),
        (json!({"tenant": "other"}), ""),
    ] {
        let r = admin(&h, Method::PATCH, &path, patch.clone()).await;
        assert_eq!(r.status, 400, "{patch}: {}", r.body);
        assert_eq!(r.body["error"]["param"].as_str().unwrap_or_default(), param, "{patch}: {}", r.body);
    }
    let r = h.send(Method::PATCH, &path, Some(ADMIN_KEY), "not json".to_owned()).await;
    assert_eq!(r.status, 400);
    assert_eq!(admin(&h, Method::GET, &path, Value::Null).await.body, changed.body, "unchanged");

    // An unknown key is a 404; a revoked one cannot change; no admin key, no change.
    assert_eq!(admin(&h, Method::PATCH, "/admin/keys/key_nosuchkey0", json!({})).await.status, 404);
    assert_eq!(admin(&h, Method::GET, "/admin/keys/key_nosuchkey0", Value::Null).await.status, 404);
    let r = h.send(Method::PATCH, &path, Some(&secret), json!({"rpm": 5}).to_string()).await;
    assert_eq!(r.status, 401);
    assert_eq!(admin(&h, Method::DELETE, &path, Value::Null).await.status, 204);
    let r = admin(&h, Method::PATCH, &path, json!({"rpm": 5})).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body["error"]["message"].as_str().unwrap_or_default().contains("revoked"), "{}", r.body);
}

/// Settings this build cannot read (a newer build's, say) are never taken for none: a change
/// is refused rather than widening the key.
#[tokio::test]
async fn a_key_whose_settings_cannot_be_read_is_not_changed() {
    let (h, store) = Harness::with_ledger(&config()).await;
    make_key(&h, json!({"tenant": "global", "aliases": ["solo"]})).await;
    let listed = admin(&h, Method::GET, "/admin/keys", Value::Null).await;
    let id = listed.body["data"][0]["id"].as_str().expect("id").to_owned();
    let newer = r#"{"aliases":["solo"],"from_a_newer_build":true}"#;
    let written = store.keys().change(&id, |r| Ok::<_, ()>((r.name.clone(), r.expires_ms, newer.to_owned()))).await;
    assert!(written.is_ok(), "{written:?}");
    let r = admin(&h, Method::PATCH, &format!("/admin/keys/{id}"), json!({"name": "renamed"})).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.body["error"]["message"].as_str().unwrap_or_default().contains("cannot be read"), "{}", r.body);
    let stored = store.keys().get(&id).await.expect("the key");
    assert_eq!((stored.name, stored.settings.as_str()), (None, newer), "nothing changed");
}
