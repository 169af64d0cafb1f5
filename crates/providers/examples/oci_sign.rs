//! Signs requests read as JSON on stdin with OCI's request signatures and prints the headers
//! the signer adds, for `tests/oci/test_oci_signer.py` to compare with the oci Python SDK's.
//!
//! Input: a JSON array of cases, each `{"method", "url", "content_type", "body" (UTF-8 text),
//! "key_id", "private_key" (PEM), "time" (Unix seconds)}`. Output: a JSON array with, per case,
//! an object of the added headers (lower-case names), or `{"error": text}`.

use std::io::Read;
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};
use switchyard_providers::oci::{Request, Signer};

fn main() {
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input).expect("stdin");
    let cases: Vec<Value> = serde_json::from_str(&input).expect("a JSON array of cases");
    let out: Vec<Value> =
        cases.iter().map(|case| sign(case).unwrap_or_else(|error| json!({ "error": error }))).collect();
    println!("{}", Value::Array(out));
}

fn sign(case: &Value) -> Result<Value, String> {
    let text = |key: &str| case[key].as_str().ok_or_else(|| format!("{key} must be a string"));
    let method: http::Method = text("method")?.parse().map_err(|e| format!("method: {e}"))?;
    let uri: http::Uri = text("url")?.parse().map_err(|e| format!("url: {e}"))?;
    let signer = Signer::from_pem(text("key_id")?.to_owned(), text("private_key")?).map_err(|e| e.to_string())?;
    let time = SystemTime::UNIX_EPOCH + Duration::from_secs(case["time"].as_u64().ok_or("time must be seconds")?);
    let request =
        Request { method: &method, uri: &uri, content_type: text("content_type")?, body: text("body")?.as_bytes() };
    let signed = signer.sign(&request, time).map_err(|e| e.to_string())?;
    let mut out = serde_json::Map::new();
    for (name, value) in signed {
        out.insert(name.as_str().to_owned(), Value::String(value.to_str().map_err(|e| e.to_string())?.to_owned()));
    }
    Ok(Value::Object(out))
}
