//! A `gemini` cloud's `service_account`: Google's JSON key read and checked, with paths.

use super::*;
use crate::config::Config;

const PKCS8: &str = include_str!("../../../../tests/oci/test_key.pem");

/// A JSON key as Google writes one.
fn key(token_uri: Option<&str>) -> String {
    let mut key = serde_json::json!({
        "type": "service_account",
        "project_id": "p",
        "private_key_id": "kid-1",
        "private_key": PKCS8,
        "client_email": "gateway@p.iam.gserviceaccount.com",
        "client_id": "1",
    });
    if let Some(uri) = token_uri {
        key["token_uri"] = serde_json::json!(uri);
    }
    key.to_string()
}

struct Keys;
impl SecretSource for Keys {
    fn env(&self, _: &str) -> Option<String> {
        None
    }
    fn file(&self, path: &str) -> Result<String, String> {
        match path {
            "/keys/sa.json" => Ok(key(Some("http://127.0.0.1:9/token"))),
            "/keys/default.json" => Ok(key(None)),
            "/keys/user.json" => Ok(key(None).replace("service_account", "authorized_user")),
            "/keys/nokey.json" => Ok(key(None).replace("BEGIN PRIVATE KEY", "BEGIN CERTIFICATE")),
            "/keys/text" => Ok("not json".into()),
            _ => Err(format!("cannot read {path}")),
        }
    }
}

fn yaml(cloud: &str) -> String {
    format!(
        r#"
clouds:
  - {cloud}
deployments:
  - {{ name: d0, cloud: g, region: global, jurisdiction: us, model: gemini-2.5-flash, endpoint: "http://127.0.0.1:1/v1beta", price: {{ input_per_mtok: 1, output_per_mtok: 2 }} }}
aliases:
  - {{ name: chat, deployments: [d0] }}
tenants:
  - {{ name: t, keys: ["sha256:0000000000000000000000000000000000000000000000000000000000000001"], jurisdictions: [us], aliases: ["*"] }}
"#
    )
}

fn error(cloud: &str) -> String {
    Config::from_yaml(&yaml(cloud), &Keys).expect_err("refused").to_string()
}

#[test]
fn a_service_account_key_is_read_from_its_file() {
    let config =
        Config::from_yaml(&yaml(r#"{ name: g, protocol: gemini, service_account: "file:/keys/sa.json" }"#), &Keys)
            .expect("valid");
    let account = config.clouds[0].service_account.as_ref().expect("a service account");
    assert_eq!(account.client_email, "gateway@p.iam.gserviceaccount.com");
    assert_eq!(
        (account.private_key_id.as_deref(), account.token_uri.as_str()),
        (Some("kid-1"), "http://127.0.0.1:9/token")
    );
    assert!(!format!("{:?}", config.clouds[0]).contains("PRIVATE KEY"), "the key stays out of Debug");
    let config =
        Config::from_yaml(&yaml(r#"{ name: g, protocol: gemini, service_account: "file:/keys/default.json" }"#), &Keys)
            .expect("valid");
    assert_eq!(config.clouds[0].service_account.as_ref().map(|a| a.token_uri.as_str()), Some(DEFAULT_TOKEN_URI));
}

#[test]
fn bad_keys_and_mixed_credentials_are_refused_with_their_path() {
    for (file, expected) in [
        ("/keys/user.json", "clouds[0].service_account: a key of type \"authorized_user\""),
        ("/keys/nokey.json", "clouds[0].service_account: private_key:"),
        ("/keys/text", "clouds[0].service_account: not a service account's JSON key"),
        ("/keys/missing.json", "clouds[0].service_account: cannot read /keys/missing.json"),
    ] {
        let err = error(&format!(r#"{{ name: g, protocol: gemini, service_account: "file:{file}" }}"#));
        assert!(err.contains(expected), "{file}: {err}");
    }
    let err = error(
        r#"{ name: g, protocol: gemini, service_account: "file:/keys/sa.json", bearer_token: "file:/keys/sa.json" }"#,
    );
    assert!(err.contains("clouds[0]: give one of api_key"), "{err}");
    let err = error(r#"{ name: g, protocol: openai, service_account: "file:/keys/sa.json" }"#);
    assert!(err.contains("clouds[0].service_account: only for the gemini protocol"), "{err}");
}
