//! AWS Signature Version 4 for Bedrock Runtime requests: the headers that sign one request,
//! computed by the `aws-sigv4` crate from the request, the scope, the credentials and a time the
//! caller passes in.
//!
//! Only the signer is used: no aws-config, no SDK, no HTTP client of its own. The settings are
//! the crate's defaults, which are what Bedrock expects and what botocore does for it: the path
//! is percent-encoded a second time in the canonical request (a model id's `%3A` is signed as
//! `%253A`), the session token is signed, and no `x-amz-content-sha256` header is added.
//! `tests/sigv4/test_sigv4_botocore.py` holds the headers equal to botocore's on the same inputs.

use std::fmt;
use std::time::{Duration, SystemTime};

use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningParams, SigningSettings};
use aws_sigv4::sign::v4;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, Uri};

/// The service name Bedrock Runtime signs with (`bedrock-runtime.<region>.amazonaws.com` is
/// signed as `bedrock`).
pub const BEDROCK: &str = "bedrock";

/// The last instant the signer can format: 9999-12-31T23:59:59Z. Later times are refused
/// rather than handed to a date formatter that would panic on them.
const LAST_SIGNABLE: Duration = Duration::from_secs(253_402_300_799);

/// An access key pair and, for temporary credentials, the session token. `Debug` shows the key
/// id only.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("session_token", &self.session_token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// What a request is signed for: the region and the service's signing name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scope<'a> {
    pub region: &'a str,
    pub service: &'a str,
}

/// The parts of an HTTP request that are signed. `uri` is absolute and already percent-encoded
/// as it will be sent; every header in `headers` is signed except `authorization`,
/// `user-agent`, `x-amzn-trace-id` and `transfer-encoding`, so add the others before signing.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    pub method: &'a Method,
    pub uri: &'a Uri,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    #[error("the request URI {0:?} has no host to sign")]
    NoHost(String),
    #[error("header {0:?} holds bytes that are not visible ASCII text")]
    HeaderNotText(String),
    #[error("the signing time is before 1970 or after 9999")]
    TimeOutOfRange,
    #[error("cannot sign: {0}")]
    Signer(String),
}

impl SignError {
    /// A bounded label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            SignError::NoHost(_) => "no_host",
            SignError::HeaderNotText(_) => "header_not_text",
            SignError::TimeOutOfRange => "time_out_of_range",
            SignError::Signer(_) => "signer",
        }
    }
}

/// The headers to add to `request` to sign it at `time`: `authorization`, `x-amz-date`, and
/// `x-amz-security-token` when the credentials carry a session token. The authorization and
/// token values are marked sensitive.
pub fn sign(
    request: &Request<'_>,
    scope: Scope<'_>,
    credentials: &Credentials,
    time: SystemTime,
) -> Result<Vec<(HeaderName, HeaderValue)>, SignError> {
    // The signer panics on a URI without a host (unless a Host header is given) and on times
    // its date type cannot hold: both are checked here first.
    if request.uri.host().is_none() && !request.headers.contains_key(http::header::HOST) {
        return Err(SignError::NoHost(request.uri.to_string()));
    }
    match time.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(since) if since <= LAST_SIGNABLE => {}
        Ok(_) | Err(_) => return Err(SignError::TimeOutOfRange),
    }
    let mut headers = Vec::with_capacity(request.headers.len());
    for (name, value) in request.headers {
        let value = value.to_str().map_err(|_| SignError::HeaderNotText(name.as_str().to_owned()))?;
        headers.push((name.as_str(), value));
    }
    let identity = aws_credential_types::Credentials::new(
        &credentials.access_key_id,
        &credentials.secret_access_key,
        credentials.session_token.clone(),
        None,
        "switchyard",
    )
    .into();
    let params: SigningParams<'_> = v4::SigningParams::builder()
        .identity(&identity)
        .region(scope.region)
        .name(scope.service)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| SignError::Signer(e.to_string()))?
        .into();
    let signable = SignableRequest::new(
        request.method.as_str(),
        request.uri.to_string(),
        headers.into_iter(),
        SignableBody::Bytes(request.body),
    )
    .map_err(|e| SignError::Signer(e.to_string()))?;
    let (instructions, _signature) =
        aws_sigv4::http_request::sign(signable, &params).map_err(|e| SignError::Signer(e.to_string()))?.into_parts();
    let (signed, _query) = instructions.into_parts();
    signed
        .into_iter()
        .map(|header| {
            let name = HeaderName::from_static(header.name());
            let mut value = HeaderValue::from_str(header.value())
                .map_err(|_| SignError::HeaderNotText(header.name().to_owned()))?;
            value.set_sensitive(header.sensitive() || name == http::header::AUTHORIZATION);
            Ok((name, value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The key pair of AWS's published SigV4 test suite.
    fn example_credentials(session_token: Option<&str>) -> Credentials {
        Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: session_token.map(str::to_owned),
        }
    }

    /// 2015-08-30T12:36:00Z, the suite's time.
    fn suite_time() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_440_938_160)
    }

    /// Signs a body-less request of the suite (service `service`, us-east-1) and compares the
    /// headers with the suite's signed request.
    fn check(method: Method, uri: &str, session_token: Option<&str>, expected: &[(&str, &str)]) {
        let uri: Uri = uri.parse().unwrap();
        let request = Request { method: &method, uri: &uri, headers: &HeaderMap::new(), body: b"" };
        let scope = Scope { region: "us-east-1", service: "service" };
        let signed = sign(&request, scope, &example_credentials(session_token), suite_time()).unwrap();
        let mut got: Vec<(&str, &str)> = signed.iter().map(|(n, v)| (n.as_str(), v.to_str().unwrap())).collect();
        got.sort();
        let mut expected = expected.to_vec();
        expected.sort();
        assert_eq!(got, expected, "{method} {uri}");
    }

    /// Vectors of AWS's SigV4 test suite (`get-vanilla`, `post-vanilla`,
    /// `get-vanilla-query-order-key-case`, `get-vanilla-with-session-token`).
    #[test]
    fn the_published_test_suite_vectors() {
        let auth = |headers: &str, signature: &str| {
            format!(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
                 SignedHeaders={headers}, Signature={signature}"
            )
        };
        let get_vanilla = auth("host;x-amz-date", "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
        check(
            Method::GET,
            "https://example.amazonaws.com/",
            None,
            &[("authorization", &get_vanilla), ("x-amz-date", "20150830T123600Z")],
        );
        let post_vanilla = auth("host;x-amz-date", "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b");
        check(
            Method::POST,
            "https://example.amazonaws.com/",
            None,
            &[("authorization", &post_vanilla), ("x-amz-date", "20150830T123600Z")],
        );
        let query = auth("host;x-amz-date", "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500");
        check(
            Method::GET,
            "https://example.amazonaws.com/?Param2=value2&Param1=value1",
            None,
            &[("authorization", &query), ("x-amz-date", "20150830T123600Z")],
        );
        let token = "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267";
        let with_token = auth(
            "host;x-amz-date;x-amz-security-token",
            "07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8",
        );
        check(
            Method::GET,
            "https://example.amazonaws.com/",
            Some(token),
            &[("authorization", &with_token), ("x-amz-date", "20150830T123600Z"), ("x-amz-security-token", token)],
        );
    }

    #[test]
    fn secrets_are_sensitive_and_not_printed() {
        let uri: Uri = "https://bedrock-runtime.us-east-1.amazonaws.com/model/m/converse".parse().unwrap();
        let request = Request { method: &Method::POST, uri: &uri, headers: &HeaderMap::new(), body: b"{}" };
        let scope = Scope { region: "us-east-1", service: BEDROCK };
        let credentials = example_credentials(Some("token"));
        let signed = sign(&request, scope, &credentials, suite_time()).unwrap();
        for (name, value) in &signed {
            let secret = *name == http::header::AUTHORIZATION || name == "x-amz-security-token";
            assert_eq!(value.is_sensitive(), secret, "{name}");
        }
        let shown = format!("{credentials:?}");
        assert!(
            shown.contains("AKIDEXAMPLE") && !shown.contains("EXAMPLEKEY") && !shown.contains("token\""),
            "{shown}"
        );
    }

    /// What the signer would panic on is refused first.
    #[test]
    fn unsignable_requests_are_errors() {
        let scope = Scope { region: "us-east-1", service: BEDROCK };
        let credentials = example_credentials(None);
        let relative: Uri = "/model/m/converse".parse().unwrap();
        let request = Request { method: &Method::POST, uri: &relative, headers: &HeaderMap::new(), body: b"" };
        assert!(matches!(sign(&request, scope, &credentials, suite_time()), Err(SignError::NoHost(_))));

        let uri: Uri = "https://bedrock-runtime.us-east-1.amazonaws.com/".parse().unwrap();
        let request = Request { method: &Method::POST, uri: &uri, headers: &HeaderMap::new(), body: b"" };
        let before_1970 = SystemTime::UNIX_EPOCH - Duration::from_secs(1);
        let after_9999 = SystemTime::UNIX_EPOCH + LAST_SIGNABLE + Duration::from_secs(1);
        for time in [before_1970, after_9999] {
            assert_eq!(sign(&request, scope, &credentials, time), Err(SignError::TimeOutOfRange));
        }
        let last = sign(&request, scope, &credentials, SystemTime::UNIX_EPOCH + LAST_SIGNABLE).unwrap();
        assert!(last.iter().any(|(n, v)| n == "x-amz-date" && v == "99991231T235959Z"));

        let mut headers = HeaderMap::new();
        headers.insert("x-odd", HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap());
        let request = Request { method: &Method::POST, uri: &uri, headers: &headers, body: b"" };
        assert_eq!(sign(&request, scope, &credentials, suite_time()), Err(SignError::HeaderNotText("x-odd".into())));
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 256,
            rng_seed: proptest::test_runner::RngSeed::Fixed(0x5164),
            ..ProptestConfig::default()
        })]

        /// Whatever the path, query, header, token, scope and time: a value, never a panic.
        #[test]
        fn signing_never_panics(
            path in "(/[a-zA-Z0-9%:._~!$'()*,;=@-]{0,12}){0,4}",
            query in proptest::option::of("[a-zA-Z0-9=&%._~-]{0,24}"),
            value in "[ -~\\t]{0,24}",
            token in proptest::option::of(any::<String>()),
            region in any::<String>(),
            service in "[a-z-]{0,12}",
            secs in prop_oneof![0..=LAST_SIGNABLE.as_secs() + 1, any::<u64>()],
            body in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let uri = match query {
                Some(q) => format!("https://bedrock-runtime.us-east-1.amazonaws.com{path}?{q}"),
                None => format!("https://bedrock-runtime.us-east-1.amazonaws.com{path}"),
            };
            let Ok(uri) = uri.parse::<Uri>() else { return Ok(()) };
            let mut headers = HeaderMap::new();
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert("x-custom", value);
            }
            let Some(time) = SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs)) else { return Ok(()) };
            let credentials = example_credentials(token.as_deref());
            let request = Request { method: &Method::POST, uri: &uri, headers: &headers, body: &body };
            let scope = Scope { region: &region, service: &service };
            if let Ok(signed) = sign(&request, scope, &credentials, time) {
                prop_assert!(signed.iter().any(|(name, _)| name == http::header::AUTHORIZATION));
            }
        }
    }
}
