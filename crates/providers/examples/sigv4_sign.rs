//! Signs requests read as JSON on stdin and prints the headers the signer adds, for
//! `tests/sigv4/test_sigv4_botocore.py` to compare with botocore's.
//!
//! Input: a JSON array of cases, each `{"method", "url", "headers": [[name, value], ...],
//! "body" (UTF-8 text), "region", "service", "access_key_id", "secret_access_key",
//! "session_token" (string or null), "time" (Unix seconds)}`. Output: a JSON array with, per
//! case, an object of the added headers (lower-case names), or `{"error": text}`.

use std::io::Read;
use std::time::{Duration, SystemTime};

use http::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};
use switchyard_providers::sigv4::{self, Credentials, Request, Scope};

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
    let mut headers = HeaderMap::new();
    for pair in case["headers"].as_array().ok_or("headers must be an array")? {
        let (Some(name), Some(value)) = (pair[0].as_str(), pair[1].as_str()) else {
            return Err("each header is [name, value]".into());
        };
        let name: HeaderName = name.parse().map_err(|e| format!("header name: {e}"))?;
        headers.append(name, HeaderValue::from_str(value).map_err(|e| format!("header value: {e}"))?);
    }
    let credentials = Credentials {
        access_key_id: text("access_key_id")?.to_owned(),
        secret_access_key: text("secret_access_key")?.to_owned(),
        session_token: case["session_token"].as_str().map(str::to_owned),
    };
    let time = SystemTime::UNIX_EPOCH + Duration::from_secs(case["time"].as_u64().ok_or("time must be seconds")?);
    let request = Request { method: &method, uri: &uri, headers: &headers, body: text("body")?.as_bytes() };
    let scope = Scope { region: text("region")?, service: text("service")? };
    let signed = sigv4::sign(&request, scope, &credentials, time).map_err(|e| e.to_string())?;
    let mut out = serde_json::Map::new();
    for (name, value) in signed {
        out.insert(name.as_str().to_owned(), Value::String(value.to_str().map_err(|e| e.to_string())?.to_owned()));
    }
    Ok(Value::Object(out))
}
