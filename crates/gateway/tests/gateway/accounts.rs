//! Every request's account: its tenant's limits and budgets (429s that say which and when),
//! what the caller is billed, and its record in the ledger.

use serde_json::json;
use switchyard_ledger::Store;

use crate::support::*;

/// The `global` tenant with `extra` settings (limits, budgets).
fn with_tenant_settings(extra: &str) -> String {
    config_text(true, false).replacen(r#"aliases: ["*"] }"#, &format!(r#"aliases: ["*"], {extra} }}"#), 1)
}

#[tokio::test]
async fn every_request_is_on_record_with_what_it_cost() {
    let (h, store) = Harness::with_ledger(&config_text(true, false)).await;
    let whole = h.chat(ask("solo", "on record")).await;
    assert_eq!(whole.status, 200);
    let streamed = h.stream(KEY, ask("solo", "streamed on record")).await;
    assert!(streamed.done);
    h.faults("d1", r#"[{"kind": "error", "status": 500}]"#);
    let failed = h.chat(ask("solo", "fails")).await;
    assert_eq!(failed.status, 502, "{}", failed.body);
    h.faults("d1", "[]");
    // A caller who leaves after the first chunk.
    let mut opened = h.open_stream(KEY, ask("solo", "leave")).await;
    assert_eq!(opened.status, 200);
    let _ = opened.chunk().await;
    drop(opened);
    // Its driver is dropped with the connection; then every record is flushed.
    for _ in 0..200 {
        h.flush_ledger().await;
        if store.count().await.expect("count") >= 4 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(store.count().await.expect("count"), 4, "one record per request");

    let rows = store.spend(switchyard_ledger::Group::Tenant, 0, i64::MAX).await.expect("spend");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].key, "global");
    assert_eq!(rows[0].requests, 4);
    let keys = store.spend(switchyard_ledger::Group::Key, 0, i64::MAX).await.expect("spend");
    assert_eq!(keys[0].key, switchyard_core::config::key_id(&switchyard_core::config::hash_key(KEY)).to_string());

    // The whole answer: its usage as the caller saw it, priced at d1's list price ($1 in, $2
    // out per million tokens).
    let usage = &whole.body["usage"];
    let (prompt, completion) = (usage["prompt_tokens"].as_u64().unwrap(), usage["completion_tokens"].as_u64().unwrap());
    let deployments = store.spend(switchyard_ledger::Group::Deployment, 0, i64::MAX).await.expect("spend");
    let d1 = deployments.iter().find(|r| r.key == "d1").expect("d1 row");
    assert_eq!(d1.requests, 4, "the failed one was last tried on d1 too");
    let all = all_records(&store).await;
    let ok: Vec<_> = all.iter().filter(|r| r.status == 200 && !r.stream).collect();
    assert_eq!(ok.len(), 1);
    let r = ok[0];
    assert_eq!((r.input_tokens, r.output_tokens), (prompt, completion));
    let expected = (prompt as f64 * 1.0 + completion as f64 * 2.0) / 1e6;
    assert!((r.cost_usd - expected).abs() < 1e-12, "{} vs {expected}", r.cost_usd);
    assert_eq!((r.alias.as_str(), r.deployment.as_deref(), r.cloud.as_deref()), ("solo", Some("d1"), Some("one")));
    assert_eq!(r.attempts.len(), 1);
    assert_eq!(r.attempts[0].outcome, "ok");
    assert!(r.ttft_ms.is_none(), "a whole answer has no time to first token");

    let s = all.iter().find(|r| r.stream && r.status == 200 && r.outcome == "ok").expect("the stream");
    assert!(s.ttft_ms.is_some() && s.output_tokens > 0 && s.cost_usd > 0.0);

    let f = all.iter().find(|r| r.status == 502).expect("the failure");
    assert_eq!(f.cost_usd, 0.0, "failed requests cost the caller nothing");
    assert!(!f.attempts.is_empty() && f.attempts.iter().all(|a| a.outcome == "server_error"), "{:?}", f.attempts);

    let left = all.iter().find(|r| r.outcome == "client_closed").expect("the caller who left");
    assert_eq!(left.status, 499);
    assert!(left.attempts.iter().any(|a| a.outcome == "client_closed"), "{:?}", left.attempts);
}

/// Every record the store holds (the tests make a handful).
async fn all_records(store: &Store) -> Vec<switchyard_ledger::RequestRecord> {
    store.recent(1_000).await.expect("records")
}

#[tokio::test]
async fn tenant_limits_answer_429_saying_which_and_when() {
    let (h, _store) = Harness::with_ledger(&with_tenant_settings("limits: { rpm: 2 }")).await;
    assert_eq!(h.chat(ask("chat", "one")).await.status, 200);
    assert_eq!(h.chat(ask("chat", "two")).await.status, 200);
    let refused = h.chat(ask("chat", "three")).await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert_eq!(refused.body["error"]["code"], "requests_per_minute_exceeded");
    assert_eq!(header(&refused.headers, "retry-after"), "30", "one request a minute comes back in 30 s");
    assert!(h.metrics().await.contains("switchyard_tenant_refused_total{tenant=\"global\",reason=\"rpm\"} 1"));
}

#[tokio::test]
async fn a_daily_budget_refuses_once_real_spend_and_the_next_estimate_pass_it() {
    // Each answer really costs about $0.00003; a request reserves its prompt and max_tokens
    // (200 tokens at $2 a million, $0.0004) until it ends. With $0.0005 a day, a few answers
    // fit before spend plus one more reservation would pass the budget.
    let (h, _store) = Harness::with_ledger(&with_tenant_settings("budgets: { daily_usd: 0.0005 }")).await;
    let mut answered = 0;
    let refused = loop {
        let mut body = ask("chat", "spend");
        body["max_tokens"] = json!(200);
        let r = h.chat(body).await;
        if r.status != 200 {
            break r;
        }
        answered += 1;
        assert!(answered < 20, "the budget never said no");
    };
    assert!((2..=5).contains(&answered), "{answered} answered: settled to real use, not to the estimate");
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert_eq!(refused.body["error"]["code"], "daily_budget_exceeded");
    let message = refused.body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("daily budget of $0.00") && message.contains("T00:00:00Z"), "{message}");
    let wait: u64 = header(&refused.headers, "retry-after").parse().expect("seconds");
    assert!((1..=86_400).contains(&wait), "until midnight UTC: {wait}");
    let metrics = h.metrics().await;
    let left = metrics
        .lines()
        .find_map(|l| l.strip_prefix("switchyard_tenant_budget_remaining_dollars{tenant=\"global\",period=\"day\"} "))
        .and_then(|v| v.parse::<f64>().ok())
        .expect("the day's budget left is a metric");
    assert!(left > 0.0 && left < 0.0004, "less than one more estimate is left: {left}");
}

#[tokio::test]
async fn a_tenant_at_its_concurrency_limit_is_told_so() {
    let (h, _store) = Harness::with_ledger(&with_tenant_settings("limits: { concurrency: 1 }")).await;
    h.faults("d1", r#"[{"kind": "slow_first_token", "delay_ms": 300}]"#);
    let (held, second) = h.while_holding_d1(std::time::Duration::from_millis(50), h.chat(ask("chat", "second"))).await;
    assert!(held.done);
    assert_eq!(second.status, 429, "{}", second.body);
    assert_eq!(second.body["error"]["code"], "concurrency_limit_exceeded");
    assert_eq!(h.chat(ask("chat", "after")).await.status, 200, "the slot came back");
}

const ADMIN_KEY: &str = "sk-test-admin";

async fn admin(h: &Harness, method: http::Method, path: &str, key: Option<&str>, body: &str) -> Reply {
    let opened = h.send(method, path, key, body.to_owned()).await;
    let (status, headers) = (opened.status, opened.headers.clone());
    let bytes = opened.bytes().await.expect("body");
    let body = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    Reply { status, headers, body, elapsed: std::time::Duration::ZERO }
}

#[tokio::test]
async fn keys_made_through_the_admin_api_work_until_revoked() {
    let admin_hash = switchyard_core::config::key_hash_text(ADMIN_KEY);
    let text =
        config_text(true, false).replacen("server:\n", &format!("server:\n  admin_keys: [\"{admin_hash}\"]\n"), 1);
    let (h, _store) = Harness::with_ledger(&text).await;
    use http::Method;
    assert_eq!(admin(&h, Method::GET, "/admin/keys", None, "").await.status, 401);
    assert_eq!(
        admin(&h, Method::GET, "/admin/keys", Some(KEY), "").await.status,
        401,
        "a tenant's key is not an admin's"
    );

    let made = admin(&h, Method::POST, "/admin/keys", Some(ADMIN_KEY), r#"{"tenant": "eu-only", "name": "ci"}"#).await;
    assert_eq!(made.status, 201, "{}", made.body);
    let secret = made.body["key"].as_str().expect("the secret, once").to_owned();
    let id = made.body["id"].as_str().expect("id").to_owned();
    assert!(secret.starts_with("sk-sy-") && id.starts_with("key_"));
    // The new key is the eu-only tenant's: it may use `chat`, only in the EU (none here).
    let r = h.post("/v1/chat/completions", Some(&secret), ask("chat", "new key").to_string()).await;
    assert_eq!(r.status, 403, "authenticated as eu-only, whose jurisdiction has no deployment: {}", r.body);
    let r = h.post("/v1/chat/completions", Some(&secret), ask("solo", "new key").to_string()).await;
    assert_eq!(r.status, 403, "eu-only may not use solo: {}", r.body);

    let listed = admin(&h, Method::GET, "/admin/keys", Some(ADMIN_KEY), "").await;
    assert_eq!(listed.body["data"][0]["id"], id.as_str());
    assert_eq!(listed.body["data"][0]["status"], "active");
    assert!(!listed.body.to_string().contains(&secret), "the secret is shown once, at creation");

    assert_eq!(admin(&h, Method::DELETE, &format!("/admin/keys/{id}"), Some(ADMIN_KEY), "").await.status, 204);
    let r = h.post("/v1/chat/completions", Some(&secret), ask("chat", "revoked").to_string()).await;
    assert_eq!(r.status, 401, "a revoked key is refused at once: {}", r.body);

    let unknown = admin(&h, Method::DELETE, "/admin/keys/key_000000000000", Some(ADMIN_KEY), "").await;
    assert_eq!((unknown.status, unknown.body["error"]["code"].as_str()), (404, Some("key_not_found")));
    let bad = admin(&h, Method::POST, "/admin/keys", Some(ADMIN_KEY), r#"{"tenant": "nobody"}"#).await;
    assert_eq!(bad.status, 400);
    assert!(bad.body["error"]["message"].as_str().unwrap_or_default().contains("unknown tenant 'nobody'"));
    let bad = admin(&h, Method::POST, "/admin/keys", Some(ADMIN_KEY), r#"{"tenant": "global", "budget": -1}"#).await;
    assert_eq!(bad.status, 400, "unknown fields are refused: {}", bad.body);
    let bad = admin(&h, Method::POST, "/admin/keys", Some(ADMIN_KEY), "{not json").await;
    assert_eq!(bad.status, 400);

    assert_eq!(h.chat(ask("chat", "spend")).await.status, 200);
    h.flush_ledger().await;
    let spend = admin(&h, Method::GET, "/admin/spend?by=tenant", Some(ADMIN_KEY), "").await;
    assert_eq!(spend.status, 200, "{}", spend.body);
    let rows = spend.body["data"].as_array().expect("rows");
    assert!(rows.iter().any(|r| r["key"] == "global" && r["requests"].as_u64() >= Some(1)), "{}", spend.body);
    let bad = admin(&h, Method::GET, "/admin/spend?by=colour", Some(ADMIN_KEY), "").await;
    assert_eq!(bad.status, 400);
}

/// `d1` (cloud `one`) five times dearer than `d2`, both behind a `commitment` alias, and a
/// commitment with `one` half way through its term.
fn committed_config() -> String {
    let dear = "price: { input_per_mtok: 5, output_per_mtok: 10 }";
    config_text(true, false).replacen("price: { input_per_mtok: 1, output_per_mtok: 2 }", dear, 1).replace(
        "  - { name: solo,",
        "  - { name: committed, policy: commitment, deployments: [d1, d2] }\n  - { name: solo,",
    ) + "commitments:\n  - { name: one-deal, cloud: one, amount_usd: 1000, term_days: 10, elapsed_days: 5 }\n"
}

async fn shares(h: &Harness) -> (usize, usize) {
    let mut n = (0, 0);
    for i in 0..10 {
        let r = h.chat(ask("committed", &format!("burn {i}"))).await;
        assert_eq!(r.status, 200, "{}", r.body);
        match header(&r.headers, "x-switchyard-deployment") {
            "d1" => n.0 += 1,
            _ => n.1 += 1,
        }
    }
    n
}

#[tokio::test]
async fn a_commitment_behind_pace_draws_traffic_and_one_on_pace_does_not() {
    // Nothing recorded against the commitment, half its term gone: it is $500 behind, and
    // spend on it would be forfeited anyway, so its dearer capacity counts as nearly free.
    let (h, _store) = Harness::with_ledger(&committed_config()).await;
    let (d1, d2) = shares(&h).await;
    assert_eq!((d1, d2), (10, 0), "the lagging commitment takes the traffic");

    // The ledger already holds $600 of spend on d1 within the term: on pace, list price rules.
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let mut spent = switchyard_ledger::RequestRecord::new("earlier", now_ms - 86_400_000, "global", "key_x");
    (spent.deployment, spent.cloud, spent.cost_usd) = (Some("d1".into()), Some("one".into()), 600.0);
    let (h, _store) = Harness::with_ledger_holding(&committed_config(), &[spent]).await;
    let (spent, pace) = h.gateway.router().commitment_progress(h.gateway.config.commitments[0].id, h.gateway.now());
    assert!(
        (spent - 600.0).abs() < 1e-9 && (pace - 500.0).abs() < 1.0,
        "burn-down from the ledger: {spent} of pace {pace}"
    );
    let (d1, d2) = shares(&h).await;
    assert_eq!((d1, d2), (0, 10), "on pace, the cheaper cloud answers");
}

#[tokio::test(start_paused = true)]
async fn one_tenant_holding_a_deployment_leaves_room_for_another() {
    // d1 takes 8 at once. The global tenant tries to hold all 8 with slow streams; past the
    // fair-share line (6 of 8) it holds its share of two tenants, so the chat-only tenant,
    // arriving later, is still served by d1 (its first choice), not pushed elsewhere or refused.
    let text = config_text(true, false).replacen(
        "model: model-one\n",
        "model: model-one\n    limits: { concurrency: 8 }\n",
        1,
    );
    let h = Harness::memory_with(&text).await;
    h.faults("d1", r#"[{"kind": "slow_first_token", "delay_ms": 300}]"#);
    let h = &h;
    let hold = |i: usize| async move {
        let opened = h.open_stream(KEY, ask("solo", &format!("hold {i}"))).await;
        let status = opened.status;
        let _ = opened.text().await;
        status
    };
    let holders = futures_util::future::join_all((0..8).map(hold));
    let other = async {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        h.post("/v1/chat/completions", Some(CHAT_ONLY_KEY), ask("chat", "mine").to_string()).await
    };
    let (statuses, other) = tokio::join!(holders, other);
    let held = statuses.iter().filter(|s| **s == 200).count();
    assert_eq!(held, 6, "the global tenant holds 6 of 8: {statuses:?}");
    assert!(statuses.iter().all(|s| *s == 200 || *s == 429), "{statuses:?}");
    assert_eq!(other.status, 200, "{}", other.body);
    assert_eq!(header(&other.headers, "x-switchyard-deployment"), "d1", "served where it asked first");
}
