//! The client side of each cloud protocol: building the upstream request (URL, auth), sending
//! it with the connect and first-byte timeouts, and classifying every failure into the core's
//! closed [`AttemptError`] — the one place where transport and status codes become decisions.
//!
//! Protocols, behind one closed enum (`adapter.rs`): OpenAI Chat Completions (OpenAI, vLLM,
//! OCI Generative AI's compatible endpoint, with OCI request signing) as a byte pass-through,
//! Azure OpenAI (the same pass-through at Azure's URLs, with `api-key` or an Entra ID token),
//! Anthropic Messages, AWS Bedrock's Converse and ConverseStream with SigV4, and Google's
//! Gemini `generateContent` (API key, token, or a service account), and OCI Generative AI's
//! native chat (GENERIC or COHERE, signed or with an API key); answers are read back as
//! OpenAI chunks
//! ([`AnswerDecoder`]). Embeddings on Bedrock (Titan, Cohere Embed), the Gemini API, Vertex
//! AI and OCI are the calls each API allows, merged into one OpenAI answer ([`Upstream::embed`]).
//! Connections go over TCP, or to an in-memory peer for tests ([`Transport`]).

mod adapter;
mod answer;
mod embed;
pub mod eventstream;
pub mod google;
pub mod headroom;
pub mod oci;
pub mod sigv4;
mod transport;

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{HeaderMap, RETRY_AFTER};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::ResponseFuture;
use hyper_util::client::legacy::connect::{Connect, HttpConnector};
use hyper_util::rt::TokioExecutor;
use switchyard_core::AttemptError;
use switchyard_wire::chat::{UpstreamRejection, classify_rejection};

use adapter::Target;
pub use adapter::{
    Auth, AzureCredential, CARRIED_ANTHROPIC, DEFAULT_ANTHROPIC_MAX_TOKENS, Endpoint, GeminiCredential, OciCredential,
    OciNative, cohere_untranslatable, untranslatable,
};
pub use answer::{AnswerDecoder, StreamFault};
use transport::MemoryConnector;
pub use transport::{Dial, Transport};

/// Error bodies are read up to this size for classification.
const MAX_ERROR_BODY: usize = 64 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    ChatCompletions,
    Embeddings,
}

/// The pooled client of one transport. An enum rather than a boxed connector: the TCP path
/// stays the concrete hyper client it always was, one match away.
#[derive(Clone)]
enum Client {
    Tcp(hyper_util::client::legacy::Client<HttpsConnector<HttpConnector>, Full<Bytes>>),
    Memory(hyper_util::client::legacy::Client<MemoryConnector, Full<Bytes>>),
}

impl Client {
    fn request(&self, request: http::Request<Full<Bytes>>) -> ResponseFuture {
        match self {
            Client::Tcp(client) => client.request(request),
            Client::Memory(client) => client.request(request),
        }
    }
}

/// An upstream response whose status was a success; its body is read by the caller.
pub type Response = http::Response<Incoming>;

/// The upstream side: a pooled keep-alive HTTP client per thread (so a request and its
/// upstream connection stay on one thread) and every deployment's prepared target. HTTP/1.1
/// over TCP or TLS (rustls, the platform's verifier), TCP_NODELAY, no redirects followed; or,
/// for tests, over in-memory pipes ([`Upstream::with_transport`]).
#[derive(Clone, Debug)]
pub struct Upstream {
    id: u64,
    connect_timeout: Duration,
    targets: Arc<[Target]>,
    transport: Transport,
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
        Upstream::with_transport(connect_timeout, endpoints, Transport::Tcp)
    }

    /// [`Upstream::new`], with connections made over `transport`: [`Transport::Memory`] lets
    /// tests and embedders put an in-memory peer where the deployments would be.
    pub fn with_transport(
        connect_timeout: Duration,
        endpoints: &[Endpoint],
        transport: Transport,
    ) -> Result<Upstream, ClientBuildError> {
        let targets = endpoints.iter().map(Target::new).collect::<Result<Vec<_>, _>>()?;
        let upstream = Upstream {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            connect_timeout,
            targets: targets.into(),
            transport,
        };
        upstream.client()?;
        Ok(upstream)
    }

    fn client(&self) -> Result<Client, ClientBuildError> {
        CLIENTS.with(|clients| {
            let mut clients = clients.borrow_mut();
            if let Some((_, c)) = clients.iter().find(|(id, _)| *id == self.id) {
                return Ok(c.clone());
            }
            let client = match &self.transport {
                Transport::Tcp => {
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
                    Client::Tcp(pooled(https))
                }
                Transport::Memory(dial) => Client::Memory(pooled(MemoryConnector(dial.clone()))),
            };
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
        self.exchange(index, operation, body, first_byte).await.map(|(response, _)| response)
    }

    /// [`Upstream::send`], with the reader for the answer: what the gateway uses.
    pub async fn attempt(
        &self,
        index: usize,
        operation: Operation,
        body: Vec<u8>,
        first_byte: Duration,
    ) -> Result<(Response, AnswerDecoder), AttemptError> {
        let (response, trimmed) = self.exchange(index, operation, body, first_byte).await?;
        let mut decoder = self.decoder(index);
        decoder.skip_leading(trimmed);
        Ok((response, decoder))
    }

    /// The response, and the whitespace cut from the end of a prefill.
    async fn exchange(
        &self,
        index: usize,
        operation: Operation,
        body: Vec<u8>,
        first_byte: Duration,
    ) -> Result<(Response, String), AttemptError> {
        let target = &self.targets[index];
        let client = self.client().map_err(|e| AttemptError::ConnectFailed { detail: e.to_string() })?;
        let body = Bytes::from(body);
        let (response, trimmed) = match target.tokens() {
            None => {
                let (request, trimmed) = target.build(operation, body, SystemTime::now)?;
                (send(&client, request, first_byte).await?, trimmed)
            }
            Some(tokens) => {
                let build = || target.build(operation, body.clone(), SystemTime::now);
                with_google_token(&client, tokens, first_byte, build).await?
            }
        };
        if response.status().is_success() {
            return Ok((response, trimmed));
        }
        Err(refusal(target, response, first_byte).await)
    }

    /// The reader for an answer from deployment `index`, in its protocol.
    pub fn decoder(&self, index: usize) -> AnswerDecoder {
        let target = &self.targets[index];
        AnswerDecoder::new(target.protocol, &target.model)
    }
}

/// A non-success answer, classified from the protocol's error body (read for at most `limit`).
async fn refusal(target: &Target, response: Response, limit: Duration) -> AttemptError {
    let status = response.status().as_u16();
    let retry_after = retry_after(response.headers());
    let error_type = response
        .headers()
        .get(switchyard_wire::bedrock_codec::ERROR_TYPE_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = read_capped(response.into_body(), limit).await;
    target.classify(status, retry_after, error_type.as_deref(), &body)
}

/// One request, its response headers awaited at most `first_byte`.
async fn send(
    client: &Client,
    request: http::Request<Full<Bytes>>,
    first_byte: Duration,
) -> Result<Response, AttemptError> {
    match tokio::time::timeout(first_byte, client.request(request)).await {
        Err(_) => Err(AttemptError::FirstByteTimeout),
        Ok(Err(e)) => Err(classify_transport(&e)),
        Ok(Ok(r)) => Ok(r),
    }
}

/// The request `build` makes (and what it says beside it), sent to a deployment authenticated
/// by a service account: its token fetched first when none is held, and once more on a 401
/// (the token expired or was revoked), the request then built and sent again. The token is
/// forgotten only if it is still the one refused, so requests refused together fetch one new
/// token between them. Fetching, sending and sending again share one deadline, `limit` away:
/// the response's headers are never later than a request without a token would allow.
async fn with_google_token<T>(
    client: &Client,
    tokens: &google::TokenSource,
    limit: Duration,
    mut build: impl FnMut() -> Result<(http::Request<Full<Bytes>>, T), AttemptError>,
) -> Result<(Response, T), AttemptError> {
    let deadline = tokio::time::Instant::now() + limit;
    let left = || match deadline.saturating_duration_since(tokio::time::Instant::now()) {
        Duration::ZERO => Err(AttemptError::FirstByteTimeout),
        left => Ok(left),
    };
    google_token(client, tokens, left()?).await?;
    let (request, said) = build()?;
    let refused = request.headers().get(http::header::AUTHORIZATION).cloned();
    let response = send(client, request, left()?).await?;
    if response.status() != http::StatusCode::UNAUTHORIZED {
        return Ok((response, said));
    }
    drop(response);
    tokens.invalidate(refused.as_ref());
    google_token(client, tokens, left()?).await?;
    let (request, said) = build()?;
    Ok((send(client, request, left()?).await?, said))
}

/// Makes sure `tokens` holds a good access token: when it holds none, one is fetched from the
/// token endpoint (within `limit`), by one request at a time per account: others wait for it
/// and use what it fetched. The endpoint's refusal is the deployment's fault (its key is
/// wrong): `UpstreamRefused`.
async fn google_token(client: &Client, tokens: &google::TokenSource, limit: Duration) -> Result<(), AttemptError> {
    if tokens.current(SystemTime::now()).is_some() {
        return Ok(());
    }
    // Waiting for the turn, the answer's headers and its body, all within `limit`.
    let deadline = tokio::time::Instant::now() + limit;
    let left = || deadline.saturating_duration_since(tokio::time::Instant::now());
    let Ok(_turn) = tokio::time::timeout(limit, tokens.fetching()).await else {
        return Err(AttemptError::FirstByteTimeout);
    };
    let now = SystemTime::now();
    if tokens.current(now).is_some() {
        return Ok(());
    }
    let failed = |detail: String| AttemptError::ConnectFailed { detail: format!("service account token: {detail}") };
    let response = send(client, tokens.request(now).map_err(failed)?, left()).await?;
    let status = response.status().as_u16();
    let read = Limited::new(response.into_body(), MAX_ERROR_BODY).collect();
    let body = match tokio::time::timeout(left(), read).await {
        Ok(Ok(body)) => body.to_bytes(),
        Ok(Err(_)) => {
            return Err(AttemptError::InvalidResponse {
                detail: "service account token: an answer cut off or too large".into(),
            });
        }
        Err(_) => return Err(AttemptError::FirstByteTimeout),
    };
    match status {
        200..=299 => tokens.accept(&body, now).map_err(|detail| AttemptError::InvalidResponse { detail }),
        400..=499 => Err(AttemptError::UpstreamRefused { status }),
        _ => Err(AttemptError::ServerError { status }),
    }
}

/// A keep-alive client over `connector`, pooled the same whatever the transport.
fn pooled<C: Connect + Clone>(connector: C) -> hyper_util::client::legacy::Client<C, Full<Bytes>> {
    hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(1024)
        .build(connector)
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
    if let Some(local) = first_io(error).and_then(local_resource) {
        return local;
    }
    if error.is_connect() {
        if io_kind(error) == Some(std::io::ErrorKind::TimedOut) {
            return AttemptError::ConnectTimeout;
        }
        return AttemptError::ConnectFailed { detail: root_cause(error) };
    }
    AttemptError::ResetBeforeHeaders
}

/// Errors that mean this machine ran short, not that the deployment failed: out of file
/// descriptors (EMFILE, ENFILE), buffers or memory (ENOBUFS, ENOMEM), or local ports
/// (EADDRNOTAVAIL). Linux numbers.
pub fn local_resource(error: &std::io::Error) -> Option<AttemptError> {
    const ENOMEM: i32 = 12;
    const ENFILE: i32 = 23;
    const EMFILE: i32 = 24;
    const EADDRNOTAVAIL: i32 = 99;
    const ENOBUFS: i32 = 105;
    let code = error.raw_os_error()?;
    matches!(code, ENOMEM | ENFILE | EMFILE | EADDRNOTAVAIL | ENOBUFS)
        .then(|| AttemptError::LocalResource { detail: error.to_string() })
}

/// The first I/O error in a source chain.
fn first_io<'e>(error: &'e (dyn std::error::Error + 'static)) -> Option<&'e std::io::Error> {
    let mut e: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = e {
        if let Some(io) = current.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        e = current.source();
    }
    None
}

/// The kind of the first I/O error in a source chain.
fn io_kind(error: &(dyn std::error::Error + 'static)) -> Option<std::io::ErrorKind> {
    first_io(error).map(std::io::Error::kind)
}

fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut e = error;
    while let Some(source) = e.source() {
        e = source;
    }
    e.to_string()
}

/// The provider's own error code (`error.code`, a string, at most 64 bytes), if it gave one.
fn provider_code(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let code = value.get("error").unwrap_or(&value).get("code")?.as_str()?;
    (!code.is_empty() && code.len() <= 64).then(|| code.to_owned())
}

/// A non-success status and its body, classified.
pub fn classify_status(status: u16, retry_after: Option<Duration>, body: &[u8]) -> AttemptError {
    match status {
        429 => AttemptError::RateLimited { retry_after },
        401 | 403 | 404 => AttemptError::UpstreamRefused { status },
        400..=499 => match classify_rejection(body) {
            (UpstreamRejection::ContextLength, message) => AttemptError::ContextLengthExceeded { message },
            (UpstreamRejection::ContentFilter, message) => {
                AttemptError::ContentFiltered { message, code: provider_code(body) }
            }
            (UpstreamRejection::Other, message) => {
                AttemptError::ClientError { status, message, code: provider_code(body) }
            }
        },
        500..=599 => AttemptError::ServerError { status },
        _ => AttemptError::InvalidResponse { detail: format!("unexpected status {status}") },
    }
}

/// The longest wait an upstream's Retry-After is taken at: one hour. Longer ones are clamped
/// to it (the core caps what it waits out far lower; a longer hint only sets a cool-down).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// `retry-after-ms` (OpenAI, Azure) wins over `retry-after`, in seconds or as an HTTP date.
/// Untrusted: negative, NaN and unreadable values are ignored, longer ones are clamped to
/// [`MAX_RETRY_AFTER`], and nothing here can panic or overflow.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    retry_after_at(headers, SystemTime::now())
}

/// [`retry_after`] with the time `now` to count an HTTP date from.
pub fn retry_after_at(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(wait) = text("retry-after-ms").and_then(|v| v.parse::<f64>().ok()).and_then(|ms| seconds(ms / 1000.0)) {
        return Some(wait);
    }
    let value = text(RETRY_AFTER.as_str())?;
    match value.parse::<f64>() {
        Ok(s) => seconds(s),
        Err(_) => {
            let at = http_date(value)?;
            Some(at.duration_since(now).unwrap_or(Duration::ZERO).min(MAX_RETRY_AFTER))
        }
    }
}

/// A wait in seconds, clamped to [`MAX_RETRY_AFTER`]; `None` when negative or NaN.
fn seconds(s: f64) -> Option<Duration> {
    if s.is_nan() || s < 0.0 {
        return None;
    }
    Some(Duration::try_from_secs_f64(s.min(MAX_RETRY_AFTER.as_secs_f64())).unwrap_or(MAX_RETRY_AFTER))
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the HTTP date form servers send. The
/// obsolete RFC 850 and asctime forms are not read.
fn http_date(text: &str) -> Option<SystemTime> {
    let b = text.as_bytes();
    if !text.is_ascii()
        || b.len() != 29
        || &b[3..5] != b", "
        || &b[25..] != b" GMT"
        || [b[7], b[11], b[16]] != [b' '; 3]
    {
        return None;
    }
    if [b[19], b[22]] != [b':'; 2] {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<u64> {
        let digits = &text[range];
        if digits.bytes().all(|c| c.is_ascii_digit()) { digits.parse().ok() } else { None }
    };
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let month = MONTHS.iter().position(|m| *m == &text[8..11])? as u64 + 1;
    let (day, year) = (number(5..7)?, number(12..16)?);
    let (hour, minute, second) = (number(17..19)?, number(20..22)?, number(23..25)?);
    if !(1..=31).contains(&day) || year < 1970 || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    // Days since 1970-01-01 in the proleptic Gregorian calendar (years from March).
    let (y, m) = if month <= 2 { (year - 1, month + 9) } else { (year, month - 3) };
    let era_days = |y: u64| y * 365 + y / 4 - y / 100 + y / 400;
    let days = era_days(y) + (153 * m + 2) / 5 + day - 1 - era_days(1969) - 306;
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second;
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use http::header::HeaderValue;

    use super::*;

    #[test]
    fn running_out_locally_is_not_the_deployments_fault() {
        for code in [12, 23, 24, 99, 105] {
            let error = std::io::Error::from_raw_os_error(code);
            assert!(matches!(local_resource(&error), Some(AttemptError::LocalResource { .. })), "{code}");
        }
        assert_eq!(local_resource(&std::io::Error::from_raw_os_error(111)), None, "ECONNREFUSED is the deployment's");
        assert_eq!(local_resource(&std::io::Error::other("x")), None);
    }

    #[test]
    fn provider_error_codes_pass_through() {
        let body = br#"{"error":{"message":"no","code":"content_policy_violation"}}"#;
        let code = match classify_status(400, None, body) {
            AttemptError::ContentFiltered { code, .. } => code,
            other => panic!("{other:?}"),
        };
        assert_eq!(code.as_deref(), Some("content_policy_violation"));
        let body = br#"{"error":{"message":"bad","code":"invalid_value"}}"#;
        assert!(
            matches!(classify_status(422, None, body), AttemptError::ClientError { code: Some(c), .. } if c == "invalid_value")
        );
    }

    #[test]
    fn statuses_classify_into_attempt_errors() {
        let ctx = br#"{"error":{"message":"maximum context length is 8192","code":"context_length_exceeded"}}"#;
        assert!(matches!(classify_status(400, None, ctx), AttemptError::ContextLengthExceeded { .. }));
        let filter = br#"{"error":{"message":"no","code":"content_filter"}}"#;
        assert!(
            matches!(classify_status(400, None, filter), AttemptError::ContentFiltered { message, .. } if message == "no")
        );
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

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.insert(*name, HeaderValue::from_static(value));
        }
        h
    }

    /// Upstream values are untrusted: huge ones used to panic in `Duration::from_secs_f64`.
    #[test]
    fn retry_after_saturates_and_never_panics() {
        for huge in ["1e300", "18446744073709551616", "inf", "+Infinity", "3601", "1e19"] {
            assert_eq!(retry_after(&headers(&[("retry-after", huge)])), Some(MAX_RETRY_AFTER), "{huge}");
        }
        for huge in ["1e300", "18446744073709551616", "inf", "3600001"] {
            assert_eq!(retry_after(&headers(&[("retry-after-ms", huge)])), Some(MAX_RETRY_AFTER), "{huge} ms");
        }
        for ignored in ["-5", "-0.001", "NaN", "nan", "-inf", "", "soon", "1,5", "0x10"] {
            assert_eq!(retry_after(&headers(&[("retry-after", ignored)])), None, "{ignored}");
            assert_eq!(retry_after(&headers(&[("retry-after-ms", ignored)])), None, "{ignored} ms");
        }
        // An unusable retry-after-ms leaves retry-after to be read.
        for ignored in ["-5", "NaN", "-inf"] {
            let h = headers(&[("retry-after-ms", ignored), ("retry-after", "3")]);
            assert_eq!(retry_after(&h), Some(Duration::from_secs(3)), "{ignored} ms");
        }
        assert_eq!(retry_after(&headers(&[("retry-after", "0")])), Some(Duration::ZERO));
        assert_eq!(retry_after(&headers(&[("retry-after", "1.5")])), Some(Duration::from_millis(1500)));
        assert_eq!(retry_after(&headers(&[("retry-after-ms", "0.5")])), Some(Duration::from_micros(500)));
        assert_eq!(retry_after(&headers(&[("retry-after", "3600")])), Some(MAX_RETRY_AFTER));
    }

    #[test]
    fn retry_after_reads_an_http_date() {
        // 1994-11-06T08:49:37Z is 784111777 seconds after the epoch.
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777 - 120);
        let h = headers(&[("retry-after", "Sun, 06 Nov 1994 08:49:37 GMT")]);
        assert_eq!(retry_after_at(&h, now), Some(Duration::from_secs(120)));
        let later = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777 + 5);
        assert_eq!(retry_after_at(&h, later), Some(Duration::ZERO), "a date passed means now");
        let far = headers(&[("retry-after", "Fri, 31 Dec 9999 23:59:59 GMT")]);
        assert_eq!(retry_after_at(&far, now), Some(MAX_RETRY_AFTER));
        // Leap days and the turn of a century.
        assert_eq!(
            http_date("Thu, 29 Feb 2024 00:00:00 GMT"),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_709_164_800))
        );
        assert_eq!(
            http_date("Sat, 01 Jan 2000 00:00:00 GMT"),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(946_684_800))
        );
        assert_eq!(http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(SystemTime::UNIX_EPOCH));
        for bad in [
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 32 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:49:37 GMT",
            "Sun, +6 Nov 1994 08:49:37 GMT",
            "Wed, 31 Dec 1969 23:59:59 GMT",
            "Sun, 06 Nov 19é 08:49:37 GMT",
            "Sun, 06 Né 1994 08:49:37 GMT",
        ] {
            assert_eq!(http_date(bad), None, "{bad}");
        }
    }
}
