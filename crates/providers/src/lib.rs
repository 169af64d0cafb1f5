//! The client side of each cloud protocol: building the upstream request (URL, auth), sending
//! it with the connect and first-byte timeouts, and classifying every failure into the core's
//! closed [`AttemptError`] — the one place where transport and status codes become decisions.
//!
//! Protocols: OpenAI Chat Completions (OpenAI, vLLM, OCI Generative AI's compatible endpoint).

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::Uri;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use switchyard_core::AttemptError;
use switchyard_wire::chat::{UpstreamRejection, classify_rejection};

/// Error bodies are read up to this size for classification.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// A deployment's endpoint as configured.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// The base URL, e.g. `http://127.0.0.1:9101/v1`.
    pub base: String,
    pub api_key: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    ChatCompletions,
    Embeddings,
}

/// A deployment's URLs and auth header, built once.
#[derive(Debug)]
struct Prepared {
    chat: Uri,
    embeddings: Uri,
    auth: Option<HeaderValue>,
}

type Connector = HttpsConnector<HttpConnector>;
type Client = hyper_util::client::legacy::Client<Connector, Full<Bytes>>;

/// An upstream response whose status was a success; its body is read by the caller.
pub type Response = http::Response<Incoming>;

/// The upstream side: a pooled keep-alive HTTP client per thread (so a request and its
/// upstream connection stay on one thread) and every deployment's prepared target. HTTP/1.1
/// over TCP or TLS (rustls, the platform's verifier), TCP_NODELAY, no redirects followed.
#[derive(Clone, Debug)]
pub struct Upstream {
    id: u64,
    connect_timeout: Duration,
    targets: Arc<[Prepared]>,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientBuildError {
    #[error("cannot build the upstream HTTP client: {0}")]
    Client(String),
    #[error("deployment endpoint {0:?} is not a valid URL: {1}")]
    Url(String, String),
}

thread_local! {
    /// One client per (thread, `Upstream`): connections live on the thread that uses them.
    static CLIENTS: RefCell<Vec<(u64, Client)>> = const { RefCell::new(Vec::new()) };
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl Upstream {
    /// Prepares targets for `endpoints`, indexed like the config's deployments.
    pub fn new(connect_timeout: Duration, endpoints: &[Endpoint]) -> Result<Upstream, ClientBuildError> {
        let mut targets = Vec::with_capacity(endpoints.len());
        for e in endpoints {
            let uri = |path: &str| {
                format!("{}{path}", e.base)
                    .parse::<Uri>()
                    .map_err(|err| ClientBuildError::Url(e.base.clone(), err.to_string()))
            };
            let auth = match &e.api_key {
                Some(key) => {
                    let mut value = HeaderValue::from_str(&format!("Bearer {key}"))
                        .map_err(|_| ClientBuildError::Client("an API key holds characters a header cannot".into()))?;
                    value.set_sensitive(true);
                    Some(value)
                }
                None => None,
            };
            targets.push(Prepared { chat: uri("/chat/completions")?, embeddings: uri("/embeddings")?, auth });
        }
        let upstream =
            Upstream { id: NEXT_ID.fetch_add(1, Ordering::Relaxed), connect_timeout, targets: targets.into() };
        upstream.client()?;
        Ok(upstream)
    }

    fn client(&self) -> Result<Client, ClientBuildError> {
        CLIENTS.with(|clients| {
            let mut clients = clients.borrow_mut();
            if let Some((_, c)) = clients.iter().find(|(id, _)| *id == self.id) {
                return Ok(c.clone());
            }
            let mut http = HttpConnector::new();
            http.set_nodelay(true);
            http.set_connect_timeout(Some(self.connect_timeout));
            http.enforce_http(false);
            let https = HttpsConnectorBuilder::new()
                .with_provider_and_platform_verifier(rustls::crypto::aws_lc_rs::default_provider())
                .map_err(|e| ClientBuildError::Client(e.to_string()))?
                .https_or_http()
                .enable_http1()
                .wrap_connector(http);
            let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(90))
                .pool_max_idle_per_host(1024)
                .build(https);
            clients.push((self.id, client.clone()));
            Ok(client)
        })
    }

    /// Sends one attempt to deployment `index` and waits for response headers, at most
    /// `first_byte`. A success status gives the response; anything else is classified.
    pub async fn send(
        &self,
        index: usize,
        operation: Operation,
        body: Vec<u8>,
        first_byte: Duration,
    ) -> Result<Response, AttemptError> {
        let target = &self.targets[index];
        let uri = match operation {
            Operation::ChatCompletions => target.chat.clone(),
            Operation::Embeddings => target.embeddings.clone(),
        };
        let client = self.client().map_err(|e| AttemptError::ConnectFailed { detail: e.to_string() })?;
        let mut request = http::Request::post(uri).header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(auth) = &target.auth {
            request = request.header(AUTHORIZATION, auth.clone());
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| AttemptError::ConnectFailed { detail: e.to_string() })?;
        let response = match tokio::time::timeout(first_byte, client.request(request)).await {
            Err(_) => return Err(AttemptError::FirstByteTimeout),
            Ok(Err(e)) => return Err(classify_transport(&e)),
            Ok(Ok(r)) => r,
        };
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(response);
        }
        let retry_after = retry_after(response.headers());
        let body = read_capped(response.into_body(), first_byte).await;
        Err(classify_status(status, retry_after, &body))
    }
}

/// Reads a body up to a cap, giving up after `limit`; what could not be read is left out.
async fn read_capped(body: Incoming, limit: Duration) -> Bytes {
    match tokio::time::timeout(limit, Limited::new(body, MAX_ERROR_BODY).collect()).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(_)) | Err(_) => Bytes::new(),
    }
}

/// Transport failures before a response: connect problems and resets.
pub fn classify_transport(error: &hyper_util::client::legacy::Error) -> AttemptError {
    if error.is_connect() {
        if io_kind(error) == Some(std::io::ErrorKind::TimedOut) {
            return AttemptError::ConnectTimeout;
        }
        return AttemptError::ConnectFailed { detail: root_cause(error) };
    }
    AttemptError::ResetBeforeHeaders
}

/// The kind of the first I/O error in a source chain.
fn io_kind(error: &(dyn std::error::Error + 'static)) -> Option<std::io::ErrorKind> {
    let mut e: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = e {
        if let Some(io) = current.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        e = current.source();
    }
    None
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
