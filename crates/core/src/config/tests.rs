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
        (name == "AWS_KEY").then(|| "secret-value".to_owned())
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
