//! Config loading: errors name the path of the value at fault; valid files load.

use super::*;

const BASE: &str = r#"
clouds:
  - { name: aws, protocol: openai, api_key: "env:AWS_KEY" }
deployments:
  - name: d0
    cloud: aws
    region: us-east-1
    jurisdiction: us
    model: m
    endpoint: http://127.0.0.1:1/v1/
    price: { input_per_mtok: 1, output_per_mtok: 2 }
aliases:
  - { name: chat, deployments: [d0] }
tenants:
  - { name: t, keys: ["sha256:0000000000000000000000000000000000000000000000000000000000000001"], jurisdictions: [us], aliases: ["*"] }
"#;

struct Env;
impl SecretSource for Env {
    fn env(&self, name: &str) -> Option<String> {
        match name {
            "AWS_KEY" => Some("secret-value".to_owned()),
            "METRICS_TOKEN" => Some("metrics-secret".to_owned()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }
    fn file(&self, path: &str) -> Result<String, String> {
        Err(format!("cannot read {path}"))
    }
}

fn check_error(yaml: &str, expected: &str) {
    let err = Config::from_yaml(yaml, &Env).expect_err("config should be rejected").to_string();
    assert!(err.contains(expected), "expected {expected:?} in:\n{err}");
}

#[test]
fn valid_config_loads_with_defaults_and_secrets() {
    let config = Config::from_yaml(BASE, &Env).unwrap();
    let d = &config.deployments[0];
    assert_eq!(d.endpoint, "http://127.0.0.1:1/v1");
    assert_eq!(d.capabilities.context_window, 8192);
    assert_eq!(config.aliases[0].policy, Policy::Balanced);
    assert_eq!(config.clouds[0].api_key.as_ref().unwrap().expose(), "secret-value");
    assert!(!format!("{:?}", config.clouds[0]).contains("secret-value"));
    assert!(config.tenant_for_key("nope").is_none());
}

#[test]
fn errors_name_their_path() {
    check_error(
        &BASE.replace("input_per_mtok: 1", "input_per_mtok: -1"),
        "deployments[0].price.input_per_mtok: must be >= 0",
    );
    check_error(
        &BASE.replace("output_per_mtok: 2", "output_per_mtok: 2, extra: 1"),
        "deployments[0].price.extra: unknown field `extra`",
    );
    check_error(
        &BASE.replace("region: us-east-1", "region: us-east-1\n    colour: red"),
        "deployments[0].colour: unknown field `colour`",
    );
    check_error(
        &BASE.replace("deployments: [d0]", "deployments: [d9]"),
        "aliases[0].deployments[0]: unknown deployment \"d9\"",
    );
    check_error(
        &BASE.replace("env:AWS_KEY", "env:MISSING"),
        "clouds[0].api_key: environment variable MISSING is not set",
    );
    check_error(&BASE.replace("env:AWS_KEY", "sk-inline"), "clouds[0].api_key: must be a reference");
    check_error(&BASE.replace("protocol: openai", "protocol: smtp"), "clouds[0].protocol: unknown protocol");
    check_error(&BASE.replace("jurisdictions: [us]", "jurisdictions: [US]"), "tenants[0].jurisdictions[0]");
    check_error(&BASE.replace("sha256:0000", "md5:0000"), "tenants[0].keys[0]: must be sha256:");
    check_error("clouds: [", "");
}

#[test]
fn every_error_is_reported_at_once() {
    let yaml =
        BASE.replace("input_per_mtok: 1", "input_per_mtok: -1").replace("deployments: [d0]", "deployments: [d9]");
    let err = Config::from_yaml(&yaml, &Env).unwrap_err();
    let ConfigError::Invalid(errors) = err else { panic!("expected validation errors") };
    assert_eq!(errors.len(), 2, "{errors:?}");
}

#[test]
fn fault_plans_validate_per_kind() {
    let yaml = BASE.replace(
        "price: { input_per_mtok: 1, output_per_mtok: 2 }",
        "price: { input_per_mtok: 1, output_per_mtok: 2 }\n    emulation:\n      faults:\n        - { kind: cut }\n        - { kind: error, status: 200 }\n        - { kind: meteor }",
    );
    let err = Config::from_yaml(&yaml, &Env).unwrap_err().to_string();
    assert!(err.contains("deployments[0].emulation.faults[0].after_tokens: required for kind cut"), "{err}");
    assert!(err.contains("deployments[0].emulation.faults[1].status: must be an HTTP error status"), "{err}");
    assert!(err.contains("deployments[0].emulation.faults[2].kind: unknown fault kind"), "{err}");
}

fn errors_of(yaml: &str) -> Vec<String> {
    match Config::from_yaml(yaml, &Env) {
        Err(ConfigError::Invalid(errors)) => errors,
        Err(ConfigError::Parse(e)) => panic!("expected shape or validation errors, got a parse error: {e}"),
        Ok(_) => panic!("config should be rejected"),
    }
}

const SECOND_TENANT: &str = r#"
  - { name: t, keys: ["sha256:0000000000000000000000000000000000000000000000000000000000000002"], jurisdictions: [us], aliases: ["*"] }
"#;

#[test]
fn duplicate_tenant_names_are_rejected() {
    let errors = errors_of(&format!("{}{}", BASE.trim_end(), SECOND_TENANT));
    assert_eq!(errors, ["tenants[1].name: duplicate tenant \"t\""]);

    let renamed = format!("{}{}", BASE.trim_end(), SECOND_TENANT.replace("name: t,", "name: t2,"));
    let config = Config::from_yaml(&renamed, &Env).unwrap();
    assert_eq!(config.tenant_by_name("t2").map(|t| t.id), Some(TenantId(1)));
    assert!(config.tenant_by_name("nobody").is_none());
}

#[test]
fn duplicate_commitment_names_are_rejected() {
    let yaml = format!(
        "{BASE}commitments:\n  - {{ name: c, cloud: aws, amount_usd: 10, term_days: 30, deployments: [] }}\n  \
         - {{ name: c, cloud: aws, amount_usd: 10, term_days: 30, deployments: [] }}\n"
    );
    assert_eq!(errors_of(&yaml), ["commitments[1].name: duplicate commitment \"c\""]);
}

#[test]
fn a_huge_commitment_term_is_an_error_not_a_panic() {
    for term in ["1e308", "1e15", "36501", "18446744073709551615"] {
        let yaml = format!("{BASE}commitments:\n  - {{ name: c, cloud: aws, amount_usd: 10, term_days: {term} }}\n");
        let errors = errors_of(&yaml);
        assert!(
            errors.iter().any(|e| e.starts_with("commitments[0].term_days: must be > 0 and at most")),
            "{errors:?}"
        );
    }
    let yaml = format!("{BASE}commitments:\n  - {{ name: c, cloud: aws, amount_usd: 10, term_days: 36500 }}\n");
    let config = Config::from_yaml(&yaml, &Env).unwrap();
    let c = &config.commitments[0];
    assert_eq!(c.term, Duration::from_secs(36_500 * 86_400));
    assert_eq!(c.pace(Duration::MAX), 10.0);
}

#[test]
fn commitment_errors_come_with_every_other_error() {
    let yaml = format!(
        "{}commitments:\n  - {{ name: c, cloud: aws, amount_usd: -5, term_days: 30 }}\n",
        BASE.replace("input_per_mtok: 1", "input_per_mtok: -1")
    );
    let errors = errors_of(&yaml);
    assert_eq!(
        errors,
        ["deployments[0].price.input_per_mtok: must be >= 0", "commitments[0].amount_usd: must be > 0"],
        "{errors:?}"
    );
}

#[test]
fn shape_errors_from_every_section_and_item_come_together() {
    let yaml = BASE
        .replace("region: us-east-1", "region: us-east-1\n    colour: red")
        .replace("jurisdictions: [us], aliases", "jurisdictions: us, aliases")
        .replace("clouds:", "colour_scheme: dark\nclouds:");
    let errors = errors_of(&yaml);
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(
        errors[0].starts_with("colour_scheme: unknown field `colour_scheme`, expected one of `server`"),
        "{errors:?}"
    );
    assert!(errors[1].starts_with("deployments[0].colour: unknown field `colour`"), "{errors:?}");
    assert!(
        errors[2].starts_with("tenants[0].jurisdictions: invalid type: string \"us\", expected a sequence"),
        "{errors:?}"
    );
}

#[test]
fn shape_errors_name_the_item_and_nested_path() {
    let two_deployments = BASE.replace(
        "aliases:\n",
        "  - { name: d1, cloud: aws, region: r, jurisdiction: us, model: m, endpoint: \"http://x\", price: { input_per_mtok: one } }\naliases:\n",
    );
    let yaml = two_deployments
        .replace("  - { name: aws,", "  - { name: aws, protocl: openai,")
        .replace("[\"*\"] }", "[\"*\"], workload: [batch] }");
    let errors = errors_of(&yaml);
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(errors[0].starts_with("clouds[0].protocl: unknown field `protocl`"), "{errors:?}");
    assert!(errors[1].starts_with("deployments[1].price.input_per_mtok: invalid type: string \"one\""), "{errors:?}");
    assert!(errors[2].starts_with("tenants[0].workload: invalid type: sequence"), "{errors:?}");

    let errors = errors_of("server: { listen: 1 }\nrouting: 3\n");
    assert_eq!(
        errors,
        [
            "server.listen: invalid type: integer `1`, expected a string",
            "routing: invalid type: integer `3`, expected struct RawRouting",
            "clouds: missing field `clouds`",
            "deployments: missing field `deployments`",
            "aliases: missing field `aliases`",
        ]
    );
    let errors = errors_of("[1, 2]");
    assert!(errors[0].starts_with("the file must be a mapping of sections (server, routing, clouds"), "{errors:?}");
}

#[test]
fn new_server_settings_have_defaults() {
    let config = Config::from_yaml(BASE, &Env).unwrap();
    let s = &config.server;
    assert_eq!(s.timeouts.body_read, Duration::from_secs(30));
    assert_eq!(s.buffered_body_limit_bytes, 64 << 20);
    assert_eq!(s.metrics_listen, None);
    assert!(s.metrics_token.is_none());
}

#[test]
fn new_server_settings_are_read_and_validated() {
    let server = "server:\n  listen: 127.0.0.1:8080\n  body_limit_bytes: 1000\n  buffered_body_limit_bytes: 5000\n  \
                  metrics_listen: 127.0.0.1:9090\n  metrics_token: env:METRICS_TOKEN\n  timeouts: { body_read_ms: 1500 }\n";
    let config = Config::from_yaml(&format!("{server}{BASE}"), &Env).unwrap();
    let s = &config.server;
    assert_eq!(s.timeouts.body_read, Duration::from_millis(1500));
    assert_eq!(s.body_limit_bytes, 1000);
    assert_eq!(s.buffered_body_limit_bytes, 5000);
    assert_eq!(s.metrics_listen.as_deref(), Some("127.0.0.1:9090"));
    assert_eq!(s.metrics_token.as_ref().map(Secret::expose), Some("metrics-secret"));
    assert!(!format!("{s:?}").contains("metrics-secret"));

    // Unset, the buffered limit grows to hold one whole body.
    let big = "server: { body_limit_bytes: 104857600 }\n";
    let config = Config::from_yaml(&format!("{big}{BASE}"), &Env).unwrap();
    assert_eq!(config.server.buffered_body_limit_bytes, 100 << 20);

    let bad = |server: &str, expected: &str| check_error(&format!("server:\n{server}\n{BASE}"), expected);
    bad("  timeouts: { body_read_ms: 0 }", "server.timeouts.body_read_ms: must be > 0");
    bad(
        "  body_limit_bytes: 1000\n  buffered_body_limit_bytes: 999",
        "server.buffered_body_limit_bytes: must be >= server.body_limit_bytes",
    );
    bad("  metrics_listen: metrics.local", "server.metrics_listen: must be an address such as 127.0.0.1:9090");
    bad(
        "  listen: 127.0.0.1:8080\n  metrics_listen: 127.0.0.1:8080",
        "server.metrics_listen: must differ from server.listen",
    );
    bad("  metrics_token: hunter2", "server.metrics_token: must be a reference, env:NAME or file:PATH");
    bad("  metrics_token: env:MISSING", "server.metrics_token: environment variable MISSING is not set");
    bad("  metrics_token: env:EMPTY", "server.metrics_token: the secret is empty");
    bad("  metrics_token: file:/nope", "server.metrics_token: cannot read /nope");
    bad("  metrics_port: 9090", "server.metrics_port: unknown field `metrics_port`");
}

/// A config that sets every number the file may hold; `@name@` marks each one.
const EVERY_NUMBER: &str = r#"
server:
  body_limit_bytes: @body_limit_bytes@
  buffered_body_limit_bytes: @buffered_body_limit_bytes@
  retry_after_cap_ms: @retry_after_cap_ms@
  max_attempts: @max_attempts@
  timeouts:
    connect_ms: @connect_ms@
    first_byte_ms: @first_byte_ms@
    first_token_ms: @first_token_ms@
    stream_idle_ms: @stream_idle_ms@
    request_ms: @request_ms@
    body_read_ms: @body_read_ms@
routing:
  outlier: { consecutive_failures: @consecutive_failures@, base_ejection_ms: @base_ejection_ms@, max_ejection_ms: @max_ejection_ms@, max_ejected_share: @max_ejected_share@ }
  retry_budget: { ratio: @ratio@, min_per_second: @min_per_second@, window_ms: @window_ms@ }
  near_tie: @near_tie@
  default_output_tokens: @default_output_tokens@
clouds:
  - { name: aws, protocol: openai }
deployments:
  - name: d0
    cloud: aws
    region: us-east-1
    jurisdiction: us
    model: m
    endpoint: http://127.0.0.1:1/v1
    price: { input_per_mtok: @input_per_mtok@, output_per_mtok: @output_per_mtok@, cached_input_per_mtok: @cached_input_per_mtok@ }
    limits: { rpm: @rpm@, tpm: @tpm@, concurrency: @concurrency@ }
    capabilities: { context_window: @context_window@ }
    emulation:
      ttft_ms: { lognormal: [@median@, @p99@] }
      tokens_per_s: { uniform: [@uniform_min@, @uniform_max@] }
      max_concurrency: @max_concurrency@
      max_queue: @max_queue@
      retry_after_ms: @emulation_retry_after_ms@
      answer_tokens: [@answer_min@, @answer_max@]
      faults:
        - { kind: error, status: @status@, retry_after_ms: @fault_retry_after_ms@, from_ms: @from_ms@, until_ms: @until_ms@, rate: @rate@ }
        - { kind: stall, after_tokens: @after_tokens@, duration_ms: @duration_ms@ }
        - { kind: slow_first_token, delay_ms: @delay_ms@ }
        - { kind: flap, period_ms: @period_ms@ }
  - name: d1
    cloud: aws
    region: us-east-1
    jurisdiction: us
    model: m
    endpoint: http://127.0.0.1:2/v1
    price: { input_per_mtok: 1 }
    emulation: { ttft_ms: { fixed: @fixed@ } }
aliases:
  - { name: chat, deployments: [d0, d1] }
commitments:
  - { name: c, cloud: aws, amount_usd: @amount_usd@, term_days: @term_days@, elapsed_days: @elapsed_days@, spent_usd: @spent_usd@ }
"#;

/// Each number's marker, a valid value, and the path its errors must name.
const NUMBERS: &[(&str, &str, &str)] = &[
    ("body_limit_bytes", "1000", "server.body_limit_bytes"),
    ("buffered_body_limit_bytes", "100000", "server.buffered_body_limit_bytes"),
    ("retry_after_cap_ms", "1000", "server.retry_after_cap_ms"),
    ("max_attempts", "4", "server.max_attempts"),
    ("connect_ms", "1000", "server.timeouts.connect_ms"),
    ("first_byte_ms", "1000", "server.timeouts.first_byte_ms"),
    ("first_token_ms", "1000", "server.timeouts.first_token_ms"),
    ("stream_idle_ms", "1000", "server.timeouts.stream_idle_ms"),
    ("request_ms", "1000", "server.timeouts.request_ms"),
    ("body_read_ms", "1000", "server.timeouts.body_read_ms"),
    ("consecutive_failures", "3", "routing.outlier.consecutive_failures"),
    ("base_ejection_ms", "1000", "routing.outlier.base_ejection_ms"),
    ("max_ejection_ms", "10000", "routing.outlier.max_ejection_ms"),
    ("max_ejected_share", "0.5", "routing.outlier.max_ejected_share"),
    ("ratio", "0.2", "routing.retry_budget.ratio"),
    ("min_per_second", "5", "routing.retry_budget.min_per_second"),
    ("window_ms", "10000", "routing.retry_budget.window_ms"),
    ("near_tie", "0.05", "routing.near_tie"),
    ("default_output_tokens", "256", "routing.default_output_tokens"),
    ("input_per_mtok", "1", "deployments[0].price.input_per_mtok"),
    ("output_per_mtok", "2", "deployments[0].price.output_per_mtok"),
    ("cached_input_per_mtok", "0.5", "deployments[0].price.cached_input_per_mtok"),
    ("rpm", "100", "deployments[0].limits.rpm"),
    ("tpm", "100000", "deployments[0].limits.tpm"),
    ("concurrency", "8", "deployments[0].limits.concurrency"),
    ("context_window", "8192", "deployments[0].capabilities.context_window"),
    ("median", "100", "deployments[0].emulation.ttft_ms"),
    ("p99", "400", "deployments[0].emulation.ttft_ms"),
    ("uniform_min", "40", "deployments[0].emulation.tokens_per_s"),
    ("uniform_max", "80", "deployments[0].emulation.tokens_per_s"),
    ("max_concurrency", "8", "deployments[0].emulation.max_concurrency"),
    ("max_queue", "0", "deployments[0].emulation.max_queue"),
    ("emulation_retry_after_ms", "1000", "deployments[0].emulation.retry_after_ms"),
    ("answer_min", "16", "deployments[0].emulation.answer_tokens"),
    ("answer_max", "96", "deployments[0].emulation.answer_tokens"),
    ("status", "503", "deployments[0].emulation.faults[0].status"),
    ("fault_retry_after_ms", "1000", "deployments[0].emulation.faults[0].retry_after_ms"),
    ("from_ms", "0", "deployments[0].emulation.faults[0].from_ms"),
    ("until_ms", "1000", "deployments[0].emulation.faults[0].until_ms"),
    ("rate", "0.5", "deployments[0].emulation.faults[0].rate"),
    ("after_tokens", "3", "deployments[0].emulation.faults[1].after_tokens"),
    ("duration_ms", "1000", "deployments[0].emulation.faults[1].duration_ms"),
    ("delay_ms", "1000", "deployments[0].emulation.faults[2].delay_ms"),
    ("period_ms", "1000", "deployments[0].emulation.faults[3].period_ms"),
    ("fixed", "100", "deployments[1].emulation.ttft_ms"),
    ("amount_usd", "1000", "commitments[0].amount_usd"),
    ("term_days", "365", "commitments[0].term_days"),
    ("elapsed_days", "10", "commitments[0].elapsed_days"),
    ("spent_usd", "10", "commitments[0].spent_usd"),
];

/// Values at and past the edge of every numeric type. (YAML's `.nan` and `.inf` are refused by
/// the YAML parser itself, with a line and column.)
const EXTREMES: &[&str] = &[
    "18446744073709551615",
    "18446744073709551616",
    "4294967295",
    "9223372036854775807",
    "1e308",
    "-1e308",
    "1e-300",
    "-1",
    "0",
    "0.5",
];

fn every_number(chosen: &str, value: &str) -> String {
    NUMBERS.iter().fold(EVERY_NUMBER.to_owned(), |yaml, (name, valid, _)| {
        yaml.replace(&format!("@{name}@"), if *name == chosen { value } else { valid })
    })
}

/// What a loaded config's numbers are used for downstream must not overflow either.
fn use_every_number(config: &Config) {
    use crate::rng::SplitMix64;
    let s = &config.server;
    let longest = Duration::from_secs(365 * 86_400);
    for t in [s.timeouts.connect, s.timeouts.first_byte, s.timeouts.first_token, s.timeouts.stream_idle] {
        assert!(t <= longest);
    }
    assert!(s.timeouts.request <= longest && s.timeouts.body_read <= longest && s.retry_after_cap <= longest);
    assert!(s.body_limit_bytes <= s.buffered_body_limit_bytes);
    let r = &config.routing;
    assert!(r.outlier.max_ejection <= longest && r.retry_budget.window <= longest);
    let mut rng = SplitMix64::new(7);
    for d in &config.deployments {
        let Some(e) = &d.emulation else { continue };
        for dist in [e.ttft_ms, e.tokens_per_s] {
            for _ in 0..2_000 {
                let v = dist.sample(&mut rng);
                assert!((0.0..=emulation::DIST_MAX).contains(&v), "{dist:?} sampled {v}");
                let _ = Duration::from_secs_f64(v / 1000.0) + Duration::from_secs_f64(1.0 / v.max(0.1));
            }
        }
        assert!(e.retry_after <= longest);
        for f in &e.faults {
            let _ = f.active(Duration::MAX);
            assert!(f.window.from <= longest && f.window.until.is_none_or(|u| u <= longest));
        }
    }
    for c in &config.commitments {
        assert!(c.pace(Duration::MAX).is_finite());
        assert!(c.pace(Duration::ZERO).is_finite());
    }
}

#[test]
fn every_config_number_is_validated_or_saturated_never_a_panic() {
    let valid = every_number("", "");
    use_every_number(&Config::from_yaml(&valid, &Env).unwrap_or_else(|e| panic!("{e}\n{valid}")));
    let mut failures = Vec::new();
    for (name, _, path) in NUMBERS {
        for value in EXTREMES {
            let yaml = every_number(name, value);
            let outcome = std::panic::catch_unwind(|| match Config::from_yaml(&yaml, &Env) {
                Ok(config) => {
                    use_every_number(&config);
                    Ok(())
                }
                Err(e) => Err(e.to_string()),
            });
            // The error names the number's path, or its field when it is checked against a
            // sibling (`max_ejection_ms: must be >= base_ejection_ms`).
            let (parent, field) = path.rsplit_once('.').unwrap_or(("", path));
            match outcome {
                Err(_) => failures.push(format!("{name} = {value}: panicked")),
                Ok(Err(e)) if !(e.contains(path) || (e.contains(parent) && e.contains(field))) => {
                    failures.push(format!("{name} = {value}: error without {path}: {e}"));
                }
                Ok(_) => {}
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn huge_durations_are_errors_naming_their_path() {
    for (name, path) in [
        ("request_ms", "server.timeouts.request_ms: must be > 0 and at most 31536000000 (365 days)"),
        ("body_read_ms", "server.timeouts.body_read_ms: must be > 0 and at most"),
        ("retry_after_cap_ms", "server.retry_after_cap_ms: must be at most"),
        ("window_ms", "routing.retry_budget.window_ms: must be at most"),
        ("until_ms", "deployments[0].emulation.faults[0].until_ms: must be at most"),
        ("emulation_retry_after_ms", "deployments[0].emulation.retry_after_ms: must be at most"),
        ("body_limit_bytes", "server.body_limit_bytes: must be > 0 and at most 1073741824 (1 GiB)"),
        ("buffered_body_limit_bytes", "server.buffered_body_limit_bytes: must be at most 1099511627776 (1 TiB)"),
    ] {
        check_error(&every_number(name, "18446744073709551615"), path);
    }
    check_error(&every_number("p99", "1e308"), "deployments[0].emulation.ttft_ms: must be at most 1e9");
    check_error(&every_number("min_per_second", "1e308"), "routing.retry_budget.min_per_second: must be between");
    check_error(&every_number("answer_max", "4294967295"), "deployments[0].emulation.answer_tokens: must be at most");
}

#[test]
fn a_key_id_is_the_start_of_its_configured_hash() {
    let hash = super::key_hash_text("sk-some-key");
    let id = super::key_id(&super::hash_key("sk-some-key")).to_string();
    assert_eq!(id.len(), "key_".len() + 12);
    assert!(hash.starts_with(&format!("sha256:{}", &id["key_".len()..])), "{hash} {id}");
}

#[test]
fn tenant_limits_budgets_and_priority_are_read_and_validated() {
    let tenant = r#"aliases: ["*"] }"#;
    let with = |extra: &str| BASE.replace(tenant, &format!(r#"aliases: ["*"], {extra} }}"#));
    let config = Config::from_yaml(
        &with("workload: batch, limits: { rpm: 60, tpm: 9000, concurrency: 4 }, budgets: { daily_usd: 5, monthly_usd: 100 }"),
        &Env,
    )
    .unwrap();
    let t = &config.tenants[0];
    assert_eq!(t.priority, Priority::Normal, "batch work defaults to normal priority");
    assert_eq!(t.limits, TenantLimits { rpm: Some(60), tpm: Some(9000), concurrency: Some(4) });
    assert_eq!(t.budgets, TenantBudgets { daily_usd: Some(5.0), monthly_usd: Some(100.0) });
    let config = Config::from_yaml(&with("workload: training, priority: high"), &Env).unwrap();
    assert_eq!(config.tenants[0].priority, Priority::High, "an explicit priority wins");
    assert_eq!(Config::from_yaml(BASE, &Env).unwrap().tenants[0].priority, Priority::High);

    check_error(&with("budgets: { daily_usd: -1 }"), "tenants[0].budgets.daily_usd: must be a dollar amount above 0");
    check_error(&with("limits: { concurrency: 0 }"), "tenants[0].limits.concurrency: must be > 0");
    check_error(&with("limits: { rps: 5 }"), "tenants[0].limits.rps: unknown field `rps`");
    check_error(&with("priority: urgent"), "tenants[0].priority: unknown variant `urgent`");
    check_error(&format!("routing: {{ fair_share_above: 0 }}\n{BASE}"), "routing.fair_share_above: must be above 0");
}

#[test]
fn ledger_and_shared_sections_have_defaults_and_are_validated() {
    let config = Config::from_yaml(BASE, &Env).unwrap();
    assert_eq!(config.ledger.url.expose(), "sqlite:switchyard-ledger.db");
    assert_eq!(config.ledger.on_failure, LedgerPolicy::Spool("switchyard-ledger.spool".into()));
    assert!(config.shared.redis.is_none() && config.shared.fail_open);

    let text = format!(
        "ledger: {{ url: \"postgres://sy@127.0.0.1:5432/ledger\", on_failure: refuse, batch: 64 }}\n\
         shared: {{ redis: env:METRICS_TOKEN, on_failure: closed }}\n{BASE}"
    );
    check_error(&text, "shared.redis: must be a redis:// URL");
    let text = text.replace("env:METRICS_TOKEN", "\"redis://127.0.0.1:6379/\"");
    let config = Config::from_yaml(&text, &Env).unwrap();
    assert_eq!(config.ledger.on_failure, LedgerPolicy::Refuse);
    assert_eq!(config.ledger.batch, 64);
    assert_eq!(config.shared.redis.as_ref().map(Secret::expose), Some("redis://127.0.0.1:6379/"));
    assert!(!config.shared.fail_open);

    check_error(
        &format!("ledger: {{ url: \"mysql://x\" }}\n{BASE}"),
        "ledger.url: must start with sqlite: or postgres://",
    );
    check_error(&format!("ledger: {{ queue: 0 }}\n{BASE}"), "ledger.queue: must be between 1 and 10000000");
    check_error(&format!("ledger: {{ colour: red }}\n{BASE}"), "ledger.colour: unknown field `colour`");
    assert!(!Config::from_yaml(&format!("ledger: {{ url: none }}\n{BASE}"), &Env).unwrap().ledger.enabled());
    assert!(config.ledger.enabled());
}

#[test]
fn anthropic_and_bedrock_clouds_take_their_auth_and_are_checked() {
    let bedrock = BASE.replace(
        r#"{ name: aws, protocol: openai, api_key: "env:AWS_KEY" }"#,
        r#"{ name: aws, protocol: bedrock, aws: { access_key_id: "env:AWS_KEY", secret_access_key: "env:METRICS_TOKEN" } }"#,
    );
    let config = Config::from_yaml(&bedrock, &Env).unwrap();
    let cloud = &config.clouds[0];
    assert_eq!(cloud.protocol, Protocol::Bedrock);
    let aws = cloud.aws.as_ref().expect("credentials");
    assert_eq!((aws.access_key_id.expose(), aws.secret_access_key.expose()), ("secret-value", "metrics-secret"));
    assert!(aws.session_token.is_none() && cloud.api_key.is_none());
    assert!(!format!("{cloud:?}").contains("metrics-secret"), "secrets stay out of Debug");

    let anthropic = BASE.replace("protocol: openai", "protocol: anthropic");
    let config = Config::from_yaml(&anthropic, &Env).unwrap();
    assert_eq!(config.clouds[0].anthropic_version, DEFAULT_ANTHROPIC_VERSION);
    assert!(config.deployments[0].capabilities.prefill, "Anthropic continues a prefill natively");

    check_error(
        &BASE.replace(
            "protocol: openai",
            "protocol: bedrock, aws: { access_key_id: \"env:AWS_KEY\", secret_access_key: \"env:AWS_KEY\" }",
        ),
        "clouds[0]: give either api_key",
    );
    check_error(
        &BASE.replace(", api_key: \"env:AWS_KEY\"", "").replace("protocol: openai", "protocol: bedrock"),
        "clouds[0]: the bedrock protocol needs api_key",
    );
    check_error(
        &BASE.replace(
            "protocol: openai",
            "protocol: openai, aws: { access_key_id: \"env:AWS_KEY\", secret_access_key: \"env:AWS_KEY\" }",
        ),
        "clouds[0].aws: only the bedrock protocol",
    );
    check_error(
        &bedrock.replace("secret_access_key: \"env:METRICS_TOKEN\"", "secret_access_key: \"env:NOPE\""),
        "clouds[0].aws.secret_access_key: environment variable NOPE is not set",
    );
    check_error(
        &bedrock.replace("\"env:METRICS_TOKEN\" }", "\"env:METRICS_TOKEN\", region: x }"),
        "clouds[0].aws.region: unknown field",
    );
    check_error(
        &BASE.replace("protocol: openai", "protocol: anthropic, anthropic_version: latest"),
        "clouds[0].anthropic_version: must be a date",
    );
    check_error(
        &BASE.replace("protocol: openai", "protocol: openai, anthropic_version: 2023-06-01"),
        "clouds[0].anthropic_version: only for the anthropic protocol",
    );
    check_error(
        &anthropic.replace("model: m", "model: m\n    kind: embeddings"),
        "deployments[0].kind: the anthropic protocol serves no embeddings",
    );
}

#[test]
fn azure_openai_clouds_take_a_key_or_an_entra_token_and_an_api_version() {
    let azure = BASE.replace("protocol: openai", "protocol: azure-openai");
    let config = Config::from_yaml(&azure, &Env).unwrap();
    let cloud = &config.clouds[0];
    assert_eq!(
        (cloud.protocol, cloud.protocol.name(), cloud.protocol.bit()),
        (Protocol::AzureOpenAi, "azure-openai", 8)
    );
    assert!(cloud.protocol.passes_openai_through() && Protocol::OpenAi.passes_openai_through());
    assert!(!Protocol::Anthropic.passes_openai_through() && !Protocol::Bedrock.passes_openai_through());
    assert_eq!(cloud.api_version, DEFAULT_AZURE_API_VERSION);
    assert_eq!(cloud.api_key.as_ref().map(|k| k.expose()), Some("secret-value"));
    assert!(cloud.entra_token.is_none());

    let entra = BASE.replace(
        r#"protocol: openai, api_key: "env:AWS_KEY""#,
        r#"protocol: azure-openai, entra_token: "env:METRICS_TOKEN", api_version: 2025-04-01-preview"#,
    );
    let config = Config::from_yaml(&entra, &Env).unwrap();
    let cloud = &config.clouds[0];
    assert_eq!(cloud.entra_token.as_ref().map(|t| t.expose()), Some("metrics-secret"));
    assert_eq!((cloud.api_key.is_none(), cloud.api_version.as_str()), (true, "2025-04-01-preview"));
    assert!(!format!("{cloud:?}").contains("metrics-secret"), "the token stays out of Debug");
    let embeddings = azure.replace("model: m", "model: text-embedding-3-small\n    kind: embeddings");
    assert!(Config::from_yaml(&embeddings, &Env).is_ok(), "Azure serves embeddings");

    check_error(
        &azure.replace("protocol: azure-openai", "protocol: azure-openai, entra_token: \"env:AWS_KEY\""),
        "clouds[0]: give either api_key (sent as api-key) or entra_token",
    );
    check_error(
        &azure.replace(", api_key: \"env:AWS_KEY\"", ""),
        "clouds[0]: the azure-openai protocol needs api_key (sent as api-key) or entra_token",
    );
    check_error(
        &azure
            .replace("protocol: azure-openai", "protocol: azure-openai, entra_token: \"env:NOPE\"")
            .replace(", api_key: \"env:AWS_KEY\"", ""),
        "clouds[0].entra_token: environment variable NOPE is not set",
    );
    for bad in ["latest", "2024-10-21-beta", "2024-10", "preview"] {
        check_error(
            &azure.replace("protocol: azure-openai", &format!("protocol: azure-openai, api_version: {bad}")),
            "clouds[0].api_version: must be a date such as 2024-10-21",
        );
    }
    check_error(
        &BASE.replace("protocol: openai", "protocol: openai, api_version: 2024-10-21"),
        "clouds[0].api_version: only for the azure-openai protocol",
    );
    check_error(
        &BASE.replace("protocol: openai", "protocol: anthropic, entra_token: \"env:AWS_KEY\""),
        "clouds[0].entra_token: only for the azure-openai protocol",
    );
    check_error(
        &azure.replace("model: m", "model: gpt-4o/chat"),
        "deployments[0].model: on azure-openai this is the Azure deployment name",
    );
    check_error(
        &BASE.replace("protocol: openai", "protocol: azure"),
        "supported: openai, vllm, oci-openai, anthropic, bedrock, azure-openai",
    );
}

#[test]
fn an_inference_profile_carries_the_jurisdiction_it_spans() {
    let bedrock = BASE.replace("protocol: openai", "protocol: bedrock");
    let with = |model: &str, jurisdiction: &str| {
        bedrock
            .replace("model: m", &format!("model: {model}"))
            .replace("jurisdiction: us", &format!("jurisdiction: {jurisdiction}"))
    };
    assert!(Config::from_yaml(&with("us.meta.llama3-3-70b-instruct-v1:0", "us"), &Env).is_ok());
    assert!(
        Config::from_yaml(&with("meta.llama3-3-70b-instruct-v1:0", "eu"), &Env).is_ok(),
        "a model id runs in its region"
    );
    assert!(Config::from_yaml(&with("global.anthropic.claude-sonnet-4-5-20250929-v1:0", "global"), &Env).is_ok());
    check_error(
        &with("global.anthropic.claude-sonnet-4-5-20250929-v1:0", "eu"),
        "deployments[0].jurisdiction: model \"global.anthropic.claude-sonnet-4-5-20250929-v1:0\" is a global inference profile, which may run in any region: its jurisdiction must be \"global\", not \"eu\"",
    );
    check_error(
        &with("us.amazon.nova-pro-v1:0", "eu"),
        "an inference profile spanning us: its jurisdiction must be \"us\"",
    );
    check_error(
        &bedrock.replace("region: us-east-1", "region: US East"),
        "deployments[0].region: must be an AWS region",
    );
    assert_eq!(inference_profile_jurisdiction("eu.mistral.pixtral-large-2502-v1:0"), Some("eu"));
    assert_eq!(inference_profile_jurisdiction("mistral.pixtral-large-2502-v1:0"), None);
}

#[test]
fn bedrock_embeddings_are_titan_or_cohere_models() {
    let bedrock = BASE.replace("protocol: openai", "protocol: bedrock");
    let embeddings = |model: &str| bedrock.replace("model: m", &format!("model: {model}\n    kind: embeddings"));
    for model in ["amazon.titan-embed-text-v2:0", "amazon.titan-embed-text-v1", "cohere.embed-english-v3"] {
        assert!(Config::from_yaml(&embeddings(model), &Env).is_ok(), "{model}");
    }
    assert!(Config::from_yaml(&embeddings("us.cohere.embed-v4:0"), &Env).is_ok(), "an inference profile");
    check_error(
        &embeddings("amazon.nova-pro-v1:0"),
        "deployments[0].model: embeddings on bedrock are Amazon Titan Text Embeddings",
    );
}

#[test]
fn gemini_clouds_take_a_key_or_a_bearer_token() {
    let gemini = BASE.replace("protocol: openai", "protocol: gemini");
    let config = Config::from_yaml(&gemini, &Env).unwrap();
    let cloud = &config.clouds[0];
    assert_eq!((cloud.protocol, cloud.protocol.name(), cloud.protocol.bit()), (Protocol::Gemini, "gemini", 16));
    assert!(!cloud.protocol.passes_openai_through());
    assert_eq!(cloud.api_key.as_ref().map(|k| k.expose()), Some("secret-value"));
    let token = BASE.replace(
        r#"protocol: openai, api_key: "env:AWS_KEY""#,
        r#"protocol: gemini, bearer_token: "env:METRICS_TOKEN""#,
    );
    let config = Config::from_yaml(&token, &Env).unwrap();
    let cloud = &config.clouds[0];
    assert_eq!(
        (cloud.bearer_token.as_ref().map(|t| t.expose()), cloud.api_key.is_none()),
        (Some("metrics-secret"), true)
    );
    assert!(!format!("{cloud:?}").contains("metrics-secret"), "the token stays out of Debug");
    check_error(
        &gemini.replace("protocol: gemini", "protocol: gemini, bearer_token: \"env:AWS_KEY\""),
        "clouds[0]: give one of api_key (a Gemini API key, sent as x-goog-api-key), bearer_token",
    );
    check_error(&gemini.replace(", api_key: \"env:AWS_KEY\"", ""), "clouds[0]: the gemini protocol needs api_key");
    check_error(
        &BASE.replace("protocol: openai", "protocol: openai, bearer_token: \"env:AWS_KEY\""),
        "clouds[0].bearer_token: only for the gemini protocol",
    );
    let embeddings = gemini.replace("model: m", "model: text-embedding-004\n    kind: embeddings");
    assert!(Config::from_yaml(&embeddings, &Env).is_ok(), "Gemini serves embeddings");
}
