//! Makes Google service-account assertions (the JWTs exchanged for access tokens) for cases read
//! as JSON on stdin, for `tests/google/test_google_jwt.py` to compare with google-auth's.
//!
//! Input: a JSON array of cases, each `{"client_email", "private_key_id" (or null),
//! "private_key" (PEM), "time" (Unix seconds)}`. Output: a JSON array with, per case, the
//! assertion as a string, or `{"error": text}`.

use std::io::Read;
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};
use switchyard_core::config::{Secret, ServiceAccount};
use switchyard_providers::google::TokenSource;

fn main() {
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input).expect("stdin");
    let cases: Vec<Value> = serde_json::from_str(&input).expect("a JSON array of cases");
    let out: Vec<Value> = cases
        .iter()
        .map(|case| assertion(case).map_or_else(|error| json!({ "error": error }), Value::String))
        .collect();
    println!("{}", Value::Array(out));
}

fn assertion(case: &Value) -> Result<String, String> {
    let text = |key: &str| case[key].as_str().ok_or_else(|| format!("{key} must be a string"));
    let account = ServiceAccount {
        client_email: text("client_email")?.to_owned(),
        private_key_id: case["private_key_id"].as_str().map(str::to_owned),
        private_key: Secret::new(text("private_key")?.to_owned()),
        token_uri: "https://oauth2.googleapis.com/token".to_owned(),
    };
    let time = SystemTime::UNIX_EPOCH + Duration::from_secs(case["time"].as_u64().ok_or("time must be seconds")?);
    TokenSource::new(&account)?.assertion(time)
}
