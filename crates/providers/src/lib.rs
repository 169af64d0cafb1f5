//! The client side of each cloud protocol: building the upstream request (URL, auth), sending
//! it with the connect and first-byte timeouts, and classifying every failure into the core's
//! closed [`AttemptError`] — the one place where transport and status codes become decisions.
//!
//! Protocols: OpenAI Chat Completions (OpenAI, vLLM, OCI Generative AI's compatible endpoint).

use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};
use switchyard_core::AttemptError;
use switchyard_wire::chat::{UpstreamRejection, classify_rejection};

/// Error bodies are read up to this size for classification.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// Where one attempt goes.
#[derive(Clone, Copy, Debug)]
pub struct Target<'a> {
    /// The deployment's base URL, e.g. `http://127.0.0.1:9101/v1`.
    pub endpoint: &'a str,
    pub api_key: Option<&'a str>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    ChatCompletions,
    Embeddings,
}

/// A pooled keep-alive HTTP client shared by every attempt.
#[derive(Clone, Debug)]
pub struct Upstream {
    client: reqwest::Client,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot build the upstream HTTP client: {0}")]
pub struct ClientBuildError(String);

impl Upstream {
    pub fn new(connect_timeout: Duration) -> Result<Upstream, ClientBuildError> {
        let client = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(256)
            .build()
            .map_err(|e| ClientBuildError(e.to_string()))?;
        Ok(Upstream { client })
    }

    /// Sends one attempt and waits for response headers, at most `first_byte`.
    /// A success status gives the response; anything else is classified.
    pub async fn send(
        &self,
        target: Target<'_>,
        operation: Operation,
        body: Vec<u8>,
        first_byte: Duration,
    ) -> Result<reqwest::Response, AttemptError> {
        let path = match operation {
            Operation::ChatCompletions => "/chat/completions",
            Operation::Embeddings => "/embeddings",
        };
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(key) = target.api_key
            && let Ok(mut value) = HeaderValue::from_str(&format!("Bearer {key}"))
        {
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        let url = format!("{}{path}", target.endpoint);
        let request = self.client.post(url).headers(headers).body(body).send();
        let response = match tokio::time::timeout(first_byte, request).await {
            Err(_) => return Err(AttemptError::FirstByteTimeout),
            Ok(Err(e)) => return Err(classify_transport(&e)),
            Ok(Ok(r)) => r,
        };
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(response);
        }
        let retry_after = retry_after(response.headers());
        let body = read_capped(response, first_byte).await;
        Err(classify_status(status, retry_after, &body))
    }
}

/// Reads a body up to a cap, giving up after `limit`; what could not be read is left out.
async fn read_capped(mut response: reqwest::Response, limit: Duration) -> Bytes {
    let mut out = Vec::new();
    let read = async {
        while let Ok(Some(chunk)) = response.chunk().await {
            out.extend_from_slice(&chunk);
            if out.len() >= MAX_ERROR_BODY {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(limit, read).await;
    Bytes::from(out)
}

/// Transport failures before a response: connect problems and resets.
pub fn classify_transport(error: &reqwest::Error) -> AttemptError {
    if error.is_connect() {
        if error.is_timeout() {
            return AttemptError::ConnectTimeout;
        }
        return AttemptError::ConnectFailed { detail: root_cause(error) };
    }
    if error.is_timeout() {
        return AttemptError::FirstByteTimeout;
    }
    AttemptError::ResetBeforeHeaders
}

fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut e = error;
    while let Some(source) = e.source() {
        e = source;
    }
    e.to_string()
}

/// A non-success status and its body, classified.
pub fn classify_status(status: u16, retry_after: Option<Duration>, body: &[u8]) -> AttemptError {
    match status {
        429 => AttemptError::RateLimited { retry_after },
        401 | 403 | 404 => AttemptError::UpstreamRefused { status },
        400..=499 => match classify_rejection(body) {
            (UpstreamRejection::ContextLength, message) => AttemptError::ContextLengthExceeded { message },
            (UpstreamRejection::ContentFilter, message) => AttemptError::ContentFiltered { message },
            (UpstreamRejection::Other, message) => AttemptError::ClientError { status, message },
        },
        500..=599 => AttemptError::ServerError { status },
        _ => AttemptError::InvalidResponse { detail: format!("unexpected status {status}") },
    }
}

/// `retry-after-ms` (OpenAI, Azure) wins over `retry-after` in seconds.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(ms) = text("retry-after-ms").and_then(|v| v.parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    let seconds = headers.get(RETRY_AFTER).and_then(|v| v.to_str().ok())?.trim().parse::<f64>().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_classify_into_attempt_errors() {
        let ctx = br#"{"error":{"message":"maximum context length is 8192","code":"context_length_exceeded"}}"#;
        assert!(matches!(classify_status(400, None, ctx), AttemptError::ContextLengthExceeded { .. }));
        let filter = br#"{"error":{"message":"no","code":"content_filter"}}"#;
        assert_eq!(classify_status(400, None, filter), AttemptError::ContentFiltered { message: "no".into() });
        assert!(matches!(classify_status(422, None, b"{}"), AttemptError::ClientError { status: 422, .. }));
        assert_eq!(classify_status(401, None, b""), AttemptError::UpstreamRefused { status: 401 });
        assert_eq!(classify_status(503, None, b""), AttemptError::ServerError { status: 503 });
        let wait = Some(Duration::from_millis(300));
        assert_eq!(classify_status(429, wait, b""), AttemptError::RateLimited { retry_after: wait });
    }

    #[test]
    fn retry_after_prefers_milliseconds() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("2"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert("retry-after-ms", HeaderValue::from_static("250"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(250)));
        h.insert("retry-after-ms", HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
    }
}
