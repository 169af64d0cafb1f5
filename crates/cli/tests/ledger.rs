//! `switchyard keys` and `switchyard spend` as a process, against a SQLite ledger in a temporary
//! directory: keys created, listed and revoked; records written with the ledger's own `Store`,
//! then reported as a table, JSON and CSV, with budgets and a commitment's burn-down.

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use switchyard_ledger::{RequestRecord, Store, hash_secret};
use switchyard_testkit::TempDir;

const DAY_MS: i64 = 86_400_000;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn switchyard(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(args)
        .env_remove("SWITCHYARD_CONFIG")
        .env_remove("SWITCHYARD_LEDGER")
        .output()
        .expect("the binary runs");
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(!run.stderr.contains("panicked"), "{args:?} panicked:\n{}", run.stderr);
    run
}

/// Two clouds, a deployment on each, two tenants with budgets, and a commitment on `aws-us`: a
/// year's term, 100 days in, $500 spent before the ledger.
fn write_config(dir: &Path, ledger: &str) -> String {
    let text = format!(
        r#"
clouds:
  - {{ name: aws, protocol: openai }}
  - {{ name: gcp, protocol: openai }}
deployments:
  - {{ name: aws-us, cloud: aws, region: us-east-1, jurisdiction: us, model: m, endpoint: "http://127.0.0.1:9/v1",
      price: {{ input_per_mtok: 1, output_per_mtok: 2 }} }}
  - {{ name: gcp-eu, cloud: gcp, region: europe-west4, jurisdiction: eu, model: m, endpoint: "http://127.0.0.1:9/v1",
      price: {{ input_per_mtok: 1, output_per_mtok: 2 }} }}
aliases:
  - {{ name: chat, deployments: [aws-us, gcp-eu] }}
tenants:
  - name: acme
    keys: ["sha256:39f9742666377d1b2d177efec3c73c95112c6c70f9ffe9b49abd1a2523295b86"]
    jurisdictions: [us, eu]
    aliases: ["*"]
    budgets: {{ daily_usd: 5, monthly_usd: 100 }}
  - name: beta
    keys: ["sha256:c29d79ad08b23ba5095b823d0b2e777320983be14c1150de96d07a86da5cd78c"]
    jurisdictions: [eu]
    aliases: ["*"]
    priority: normal
    budgets: {{ monthly_usd: 10 }}
commitments:
  - {{ name: aws-1yr, cloud: aws, amount_usd: 3650, term_days: 365, elapsed_days: 100, spent_usd: 500, deployments: [aws-us] }}
ledger:
  url: "{ledger}"
"#
    );
    let path = dir.join("switchyard.yaml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

fn record(
    id: &str,
    at_ms: i64,
    tenant: &str,
    deployment: Option<(&str, &str)>,
    tokens: (u64, u64),
    cost: f64,
) -> RequestRecord {
    let mut r = RequestRecord::new(id, at_ms, tenant, format!("key_{tenant}"));
    r.alias = "chat".into();
    r.deployment = deployment.map(|(d, _)| d.into());
    r.cloud = deployment.map(|(_, c)| c.into());
    (r.input_tokens, r.output_tokens, r.cost_usd) = (tokens.0, tokens.1, cost);
    if deployment.is_none() {
        (r.status, r.outcome) = (429, "no_route".into());
    }
    r
}

fn insert(url: &str, records: &[RequestRecord]) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let store = Store::open(url).await.unwrap();
        assert_eq!(store.insert_batch(records).await.unwrap(), records.len() as u64);
        store.close().await;
    });
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-6
}

#[test]
fn keys_are_created_listed_and_revoked_and_secrets_are_shown_once() {
    let dir = TempDir::new("switchyard-keys").unwrap();
    let ledger = format!("sqlite:{}", dir.path().join("ledger.db").display());
    let config = write_config(dir.path(), &ledger);

    let unknown = switchyard(&["keys", "create", "--tenant", "nobody", "--config", &config]);
    assert_eq!(unknown.code, 2, "{}", unknown.stderr);
    assert!(
        unknown.stderr.contains("no tenant \"nobody\"") && unknown.stderr.contains("acme, beta"),
        "{}",
        unknown.stderr
    );
    let past = switchyard(&["keys", "create", "--tenant", "acme", "--config", &config, "--expires", "2020-01-01"]);
    assert_eq!(past.code, 2);
    assert!(past.stderr.contains("in the past"), "{}", past.stderr);

    let a =
        switchyard(&["keys", "create", "--tenant", "acme", "--name", "ci", "--expires", "30d", "--config", &config]);
    assert_eq!(a.code, 0, "{}", a.stderr);
    let b =
        switchyard(&["keys", "create", "--tenant", "beta", "--ledger", &ledger, "--expires", "2099-01-31T00:00:00Z"]);
    assert_eq!(b.code, 0, "{}", b.stderr);
    let secrets = [a.stdout.trim().to_owned(), b.stdout.trim().to_owned()];
    for (run, secret) in [(&a, &secrets[0]), (&b, &secrets[1])] {
        assert!(secret.starts_with("sk-sy-") && !secret.contains('\n'), "{}", run.stdout);
        assert!(run.stderr.contains("store it now: it cannot be shown again"), "{}", run.stderr);
    }
    assert!(a.stderr.contains("for tenant acme") && a.stderr.contains("expires"), "{}", a.stderr);
    assert!(b.stderr.contains("2099-01-31 00:00"), "{}", b.stderr);

    let list = switchyard(&["keys", "list", "--config", &config]);
    assert_eq!(list.code, 0, "{}", list.stderr);
    let json = switchyard(&["keys", "list", "--ledger", &ledger, "--json"]);
    for secret in &secrets {
        for out in [&list.stdout, &json.stdout] {
            assert!(!out.contains(secret.as_str()) && !out.contains(&hash_secret(secret)), "{out}");
        }
    }
    let keys: Value = serde_json::from_str(&json.stdout).unwrap();
    let keys = keys.as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!((keys[0]["tenant"].as_str(), keys[0]["name"].as_str()), (Some("acme"), Some("ci")));
    assert_eq!(keys[1]["expires_ms"], 4_073_500_800_000_i64);
    let ids: Vec<&str> = keys.iter().map(|k| k["id"].as_str().unwrap()).collect();
    assert!(list.stdout.starts_with("id ") && list.stdout.contains("status"), "{}", list.stdout);
    assert_eq!(list.stdout.matches(" active").count(), 2, "{}", list.stdout);

    let revoke = switchyard(&["keys", "revoke", ids[0], "--ledger", &ledger]);
    assert_eq!(revoke.code, 0, "{}", revoke.stderr);
    let list = switchyard(&["keys", "list", "--ledger", &ledger]).stdout;
    let row = |id: &str| list.lines().find(|l| l.starts_with(id)).unwrap_or_default().to_owned();
    assert!(row(ids[0]).ends_with("revoked") && row(ids[1]).ends_with("active"), "{list}");

    let unknown = switchyard(&["keys", "revoke", "key_000000000000", "--ledger", &ledger]);
    assert_eq!(unknown.code, 1);
    assert!(unknown.stderr.starts_with("error: no key with id \"key_000000000000\""), "{}", unknown.stderr);
}

#[test]
fn keys_carry_their_own_settings_checked_against_the_tenant() {
    let dir = TempDir::new("switchyard-key-settings").unwrap();
    let ledger = format!("sqlite:{}", dir.path().join("ledger.db").display());
    let config = write_config(dir.path(), &ledger);
    let create = |extra: &[&str]| {
        let mut args = vec!["keys", "create", "--config", config.as_str()];
        args.extend_from_slice(extra);
        switchyard(&args)
    };
    let made = create(&[
        "--tenant",
        "acme",
        "--name",
        "narrow",
        "--aliases",
        "chat",
        "--jurisdictions",
        "eu",
        "--workload",
        "batch",
        "--priority",
        "low",
        "--rpm",
        "10",
        "--tpm",
        "1000",
        "--concurrency",
        "2",
        "--daily-usd",
        "1.5",
        "--monthly-usd",
        "20",
    ]);
    assert_eq!(made.code, 0, "{}", made.stderr);
    let summary = "aliases=chat jurisdictions=eu workload=batch priority=low rpm=10 tpm=1000 concurrency=2 daily_usd=1.5 monthly_usd=20";
    assert!(made.stderr.contains(&format!("with {summary}")), "{}", made.stderr);
    assert_eq!(create(&["--tenant", "beta"]).code, 0, "a key without settings");

    // Each bad setting is a usage error at its flag, all of them at once; nothing is stored.
    let bad: [(&[&str], &str); 7] = [
        (
            &["--tenant", "acme", "--aliases", "chat,nope"],
            "error: --aliases (entry 2): \"nope\" is not an alias tenant acme may use (chat)",
        ),
        (
            &["--tenant", "beta", "--jurisdictions", "us"],
            "error: --jurisdictions (entry 1): \"us\" is not one of tenant beta's jurisdictions (eu)",
        ),
        (
            &["--tenant", "beta", "--priority", "high"],
            "error: --priority: high is above tenant beta's priority (normal)",
        ),
        (
            &["--tenant", "acme", "--rpm", "0", "--tpm", "0"],
            "error: --rpm: must be > 0 (leave it out for no limit); --tpm: must be > 0",
        ),
        (&["--tenant", "acme", "--daily-usd", "-1"], "error: --daily-usd: must be a dollar amount above 0 (got -1)"),
        (&["--tenant", "acme", "--rpm", "-5"], "error: invalid value '-5' for '--rpm <N>'"),
        (&["--tenant", "acme", "--priority", "urgent"], "error: invalid value 'urgent' for '--priority <PRIORITY>'"),
    ];
    for (args, expected) in bad {
        let run = create(args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.starts_with(expected), "{args:?}:\n{}", run.stderr);
        assert!(run.stdout.is_empty(), "no secret for a refused key");
    }
    // Without a config only what needs no tenant is checked (a gateway narrows the key to its
    // tenant's when it loads it).
    let loose = switchyard(&["keys", "create", "--ledger", &ledger, "--tenant", "acme", "--aliases", "other"]);
    assert_eq!(loose.code, 0, "{}", loose.stderr);
    assert!(loose.stderr.contains("were not checked"), "{}", loose.stderr);
    let zero = switchyard(&["keys", "create", "--ledger", &ledger, "--tenant", "acme", "--concurrency", "0"]);
    assert_eq!(zero.code, 2);
    assert!(zero.stderr.starts_with("error: --concurrency: must be > 0"), "{}", zero.stderr);

    let json = switchyard(&["keys", "list", "--ledger", &ledger, "--json"]);
    let keys: Value = serde_json::from_str(&json.stdout).unwrap();
    let keys = keys.as_array().unwrap();
    assert_eq!(keys.len(), 3, "{keys:?}");
    assert_eq!(
        keys[0]["settings"],
        serde_json::json!({"aliases": ["chat"], "jurisdictions": ["eu"], "workload": "batch", "priority": "low", "rpm": 10, "tpm": 1000,
            "concurrency": 2, "daily_usd": 1.5, "monthly_usd": 20.0})
    );
    assert_eq!(keys[1]["settings"], serde_json::json!({}));
    let table = switchyard(&["keys", "list", "--config", &config]).stdout;
    assert!(table.lines().next().unwrap_or_default().contains("settings"), "{table}");
    let row = |name: &str| table.lines().find(|l| l.contains(name)).unwrap_or_default().to_owned();
    assert!(row("narrow").contains(summary) && row("narrow").ends_with("active"), "{table}");
    assert!(table.lines().nth(3).unwrap_or_default().contains(" - "), "no settings: {table}");
}

#[test]
fn a_keys_settings_change_and_clear_until_it_is_revoked() {
    let dir = TempDir::new("switchyard-keys-update").unwrap();
    let ledger = format!("sqlite:{}", dir.path().join("ledger.db").display());
    let config = write_config(dir.path(), &ledger);
    let made = switchyard(&["keys", "create", "--config", &config, "--tenant", "acme", "--name", "ci", "--rpm", "10"]);
    assert_eq!(made.code, 0, "{}", made.stderr);
    let listed = || -> Value {
        let json = switchyard(&["keys", "list", "--ledger", &ledger, "--json"]);
        serde_json::from_str::<Value>(&json.stdout).unwrap()[0].clone()
    };
    let id = listed()["id"].as_str().unwrap().to_owned();

    let update = |args: &[&str]| {
        let mut all = vec!["keys", "update", id.as_str(), "--config", config.as_str()];
        all.extend_from_slice(args);
        switchyard(&all)
    };
    let changed = update(&["--name", "deploy", "--concurrency", "3", "--clear", "rpm", "--expires", "30d"]);
    assert_eq!(changed.code, 0, "{}", changed.stderr);
    assert!(changed.stdout.starts_with(&format!("{id}: updated")), "{}", changed.stdout);
    let key = listed();
    assert_eq!((key["name"].as_str(), &key["settings"]), (Some("deploy"), &serde_json::json!({"concurrency": 3})));
    assert!(key["expires_ms"].as_i64().is_some_and(|at| at > now_ms()), "{key}");
    let kept = update(&["--never-expires", "--priority", "low"]);
    assert_eq!(kept.code, 0, "{}", kept.stderr);
    let key = listed();
    assert_eq!(key["settings"], serde_json::json!({"concurrency": 3, "priority": "low"}), "the rest kept");
    assert_eq!((key["name"].as_str(), &key["expires_ms"]), (Some("deploy"), &Value::Null));

    // Bad changes are usage errors at their flag, and change nothing.
    for (args, says) in [
        (&["--clear", "colour"][..], "--clear: no setting \"colour\""),
        (&["--rpm", "0"][..], "--rpm: must be > 0"),
        (&["--aliases", "nope"][..], "--aliases"),
        (&["--rpm", "5", "--clear", "rpm"][..], "at once"),
        (&["--expires", "2020-01-01"][..], "in the past"),
    ] {
        let bad = update(args);
        assert_eq!(bad.code, 2, "{args:?}: {}", bad.stderr);
        assert!(bad.stderr.contains(says), "{args:?}: {}", bad.stderr);
    }
    assert_eq!(listed()["settings"], serde_json::json!({"concurrency": 3, "priority": "low"}));

    let unknown = switchyard(&["keys", "update", "key_000000000000", "--ledger", &ledger, "--rpm", "5"]);
    assert_eq!(unknown.code, 1);
    assert!(unknown.stderr.contains("no key with id \"key_000000000000\""), "{}", unknown.stderr);
    assert_eq!(switchyard(&["keys", "revoke", &id, "--ledger", &ledger]).code, 0);
    let revoked = update(&["--rpm", "5"]);
    assert_eq!(revoked.code, 1);
    assert!(revoked.stderr.contains("is revoked"), "{}", revoked.stderr);
}

#[test]
fn spend_sums_the_ledger_with_budgets_and_burn_down() {
    let dir = TempDir::new("switchyard-spend").unwrap();
    let ledger = format!("sqlite:{}", dir.path().join("ledger.db").display());
    let config = write_config(dir.path(), &ledger);
    let now = now_ms();
    // Earlier today (its first millisecond, just after midnight UTC), and 40 days ago: last
    // month, outside the week the daily rate is taken over, inside the commitment's term.
    let today = (now - 1_000).max(now - now.rem_euclid(DAY_MS));
    let old = now - 40 * DAY_MS;
    insert(
        &ledger,
        &[
            record("r1", today, "acme", Some(("aws-us", "aws")), (1_000, 500), 2.0),
            record("r2", old, "acme", Some(("aws-us", "aws")), (100, 50), 10.0),
            record("r3", today, "beta", Some(("gcp-eu", "gcp")), (300, 200), 1.5),
            record("r4", today, "beta", None, (0, 0), 0.0),
        ],
    );

    let run = switchyard(&["spend", "--config", &config, "--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let doc: Value = serde_json::from_str(&run.stdout).unwrap();
    let rows = |group: &str| doc["spend"][group].as_array().unwrap().clone();
    let find = |group: &str, name: &str| rows(group).into_iter().find(|r| r["name"] == name).unwrap();
    for group in ["cloud", "tenant", "key"] {
        let cost: f64 = rows(group).iter().map(|r| r["cost_usd"].as_f64().unwrap()).sum();
        let requests: u64 = rows(group).iter().map(|r| r["requests"].as_u64().unwrap()).sum();
        assert!(close(cost, 13.5) && requests == 4, "{group}: {cost} over {requests}");
    }
    assert_eq!(
        (find("cloud", "aws")["requests"].as_u64(), find("cloud", "aws")["cost_usd"].as_f64()),
        (Some(2), Some(12.0))
    );
    assert_eq!(find("cloud", "")["requests"], 1);
    let acme = find("tenant", "acme");
    assert_eq!((acme["input_tokens"].as_u64(), acme["output_tokens"].as_u64()), (Some(1_100), Some(550)));
    assert_eq!(find("key", "key_beta")["cost_usd"], 1.5);

    let budgets = doc["budgets"].as_array().unwrap();
    let budget = |tenant: &str, period: &str| {
        budgets.iter().find(|b| b["tenant"] == tenant && b["period"] == period).map(|b| {
            (b["budget_usd"].as_f64().unwrap(), b["spent_usd"].as_f64().unwrap(), b["left_usd"].as_f64().unwrap())
        })
    };
    assert_eq!(budget("acme", "day"), Some((5.0, 2.0, 3.0)));
    assert_eq!(budget("acme", "month"), Some((100.0, 2.0, 98.0)));
    assert_eq!(budget("beta", "month"), Some((10.0, 1.5, 8.5)));
    assert_eq!(budget("beta", "day"), None);
    assert_eq!(budgets[0]["resets_ms"].as_i64().unwrap() % DAY_MS, 0);

    let burn = &doc["commitments"][0];
    let number = |field: &str| burn[field].as_f64().unwrap();
    // $500 before the ledger and $12 in it; 100 of 365 days in on $3650: $1000 due. $2 over the
    // last 7 days is 2/7 $/day, for the 265 days left.
    assert_eq!(burn["name"], "aws-1yr");
    assert!(close(number("spent_usd"), 512.0) && close(number("pace_usd"), 1_000.0), "{burn}");
    assert!(close(number("per_day_usd"), 2.0 / 7.0), "{burn}");
    let projected = 512.0 + 2.0 / 7.0 * 265.0;
    assert!(close(number("projected_usd"), projected), "{burn}");
    assert!(close(number("shortfall_usd"), 3_650.0 - projected), "{burn}");

    let table = switchyard(&["spend", "--config", &config]);
    assert_eq!(table.code, 0, "{}", table.stderr);
    for text in
        ["Spend by cloud, all records:", "Spend by tenant", "Spend by key", "Budgets", "Commitments:", "aws-1yr"]
    {
        assert!(table.stdout.contains(text), "{text}:\n{}", table.stdout);
    }
    assert!(table.stdout.contains("cloud   requests  input tokens  output tokens    cost"), "{}", table.stdout);
    let total = table.stdout.lines().find(|l| l.starts_with("total")).unwrap();
    assert!(total.split_whitespace().eq(["total", "4", "1400", "750", "$13.50"]), "{total}");

    let csv = switchyard(&["spend", "--ledger", &ledger, "--by", "deployment", "--csv"]);
    assert_eq!(csv.code, 0, "{}", csv.stderr);
    let lines: Vec<&str> = csv.stdout.split("\r\n").collect();
    assert_eq!(lines[0], "group,name,requests,input_tokens,output_tokens,cost_usd");
    assert_eq!(lines[1], "deployment,aws-us,2,1100,550,12");
    assert_eq!(lines.len(), 5, "{}", csv.stdout);

    // A window: only the old record; no config, so no budgets.
    let windowed = switchyard(&["spend", "--ledger", &ledger, "--by", "tenant", "--until", "39d", "--json"]);
    let doc: Value = serde_json::from_str(&windowed.stdout).unwrap();
    assert_eq!(doc["spend"]["tenant"].as_array().unwrap().len(), 1, "{doc}");
    assert_eq!(doc["spend"]["tenant"][0]["cost_usd"], 10.0);
    assert!(doc["budgets"].is_null() && doc["commitments"].is_null(), "{doc}");
}

#[test]
fn bad_input_is_a_one_line_error_with_the_right_exit_code() {
    let dir = TempDir::new("switchyard-ledger-errors").unwrap();
    let ledger = format!("sqlite:{}", dir.path().join("ledger.db").display());
    let usage: [&[&str]; 5] = [
        &["spend", "--ledger", &ledger, "--by", "region"],
        &["spend", "--ledger", &ledger, "--since", "last tuesday"],
        &["spend", "--ledger", &ledger, "--since", "2026-02-30"],
        &["spend", "--ledger", &ledger, "--since", "2026-01-02", "--until", "2026-01-01"],
        &["spend"],
    ];
    for args in usage {
        let run = switchyard(args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.starts_with("error: "), "{args:?}: {}", run.stderr);
    }
    let missing = dir.path().join("missing.yaml");
    let runtime: [(&[&str], &str); 3] = [
        (&["spend", "--config", missing.to_str().unwrap()], "cannot read"),
        (&["keys", "list", "--ledger", &ledger], "does not exist"),
        (
            &["spend", "--ledger", "postgres://alice:hunter2@127.0.0.1:1/ledger"],
            "postgres://alice:***@127.0.0.1:1/ledger",
        ),
    ];
    for (args, says) in runtime {
        let run = switchyard(args);
        assert_eq!(run.code, 1, "{args:?}: {}", run.stderr);
        assert!(run.stderr.starts_with("error: ") && run.stderr.contains(says), "{args:?}: {}", run.stderr);
        assert_eq!(run.stderr.trim_end().lines().count(), 1, "{args:?}: {}", run.stderr);
        assert!(!run.stderr.contains("hunter2"), "{}", run.stderr);
    }
}
