//! Who may call a deployment, checked as its cloud checks: a Bearer key (OpenAI, a Bedrock
//! API key, an Entra ID token for Azure, an OAuth token for Gemini), `x-api-key` (Anthropic),
//! `api-key` (Azure OpenAI), `x-goog-api-key` or `?key=` (a Gemini API key), or an AWS Signature Version 4 (Bedrock with access
//! keys), which is verified by signing the request again with the configured secret key over
//! the headers it names, at its `x-amz-date`; or an OCI request signature (an `oci-openai`
//! or `oci` cloud with an `oci` key), verified with the key's public half over the headers it names.
//! Each front end writes a [`Denied`] in its protocol's shape.

use std::time::{Duration, SystemTime};

use http::header::{AUTHORIZATION, HOST, HeaderMap, HeaderName};
use http::request::Parts;
use switchyard_core::calendar::{civil_from_days, days_from_civil};
use switchyard_core::config::{Cloud, Deployment, Emulation, Protocol};
use switchyard_providers::oci::{Signer, Verifier, VerifyError};
use switchyard_providers::sigv4::{self, Credentials, Scope};

/// How far a signature's time may be from the server's, as AWS allows.
const SKEW: Duration = Duration::from_secs(5 * 60);

/// What a deployment asks of its callers. (No `Debug`: it holds the keys.)
pub(crate) enum Rule {
    /// Anyone.
    Open,
    /// `Authorization: Bearer <key>`.
    Bearer(String),
    /// `x-api-key: <key>`.
    ApiKey(String),
    /// `api-key: <key>` (Azure OpenAI).
    AzureKey(String),
    /// `x-goog-api-key: <key>` or `?key=<key>` (a Gemini API key).
    GoogleKey(String),
    /// A Bearer token this deployment's token endpoint issued to the cloud's service account
    /// (`gemini.rs`).
    GoogleAccount(Box<crate::gemini::Issued>),
    /// A SigV4 signature by these credentials, scoped to this region and `bedrock`.
    SigV4 { credentials: Credentials, region: String },
    /// An OCI request signature by this key (`None`: the configured key is unusable, and
    /// nothing is let in).
    Oci(Option<Verifier>),
}

/// Why a caller is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Denied {
    /// No credentials at all.
    Missing,
    /// A key other than the one expected.
    WrongKey,
    /// SigV4: the authorization does not parse, or a header it needs is missing.
    Incomplete(String),
    /// SigV4: an access key id (or session token) that is not the one issued.
    UnknownKey,
    /// SigV4: `x-amz-date` is more than five minutes from now; the message says which way.
    Expired(String),
    /// SigV4: the signature is not the one the secret key gives, or its scope is wrong.
    Mismatch,
}

// === impl Rule ===

impl Rule {
    /// The rule of deployment `d` of `cloud`: OpenAI checks the emulation's key; Anthropic the
    /// emulation's key, else the cloud's; Bedrock the cloud's AWS credentials, else a key as
    /// a Bearer token; Azure OpenAI the emulation's key as `api-key`, else the cloud's Entra ID
    /// token as a Bearer token, else its key as `api-key`; Gemini the emulation's key, else the
    /// cloud's OAuth token as a Bearer token, or a token its service account got from this
    /// deployment's token endpoint, else its key (`x-goog-api-key` or `?key=`); OCI native the
    /// cloud's `oci` key's signatures, as `oci-openai`, else a key as a Bearer token.
    pub(crate) fn of(d: &Deployment, cloud: &Cloud, spec: &Emulation) -> Rule {
        let key = spec.api_key.as_ref().or(cloud.api_key.as_ref()).map(|k| k.expose().to_owned());
        match cloud.protocol {
            Protocol::OpenAi | Protocol::Oci if let Some(oci) = &cloud.oci => {
                Rule::Oci(Signer::new(oci).ok().map(|s| s.verifier()))
            }
            Protocol::Oci => key.map_or(Rule::Open, Rule::Bearer),
            Protocol::OpenAi => spec.api_key.as_ref().map_or(Rule::Open, |k| Rule::Bearer(k.expose().to_owned())),
            Protocol::Anthropic => key.map_or(Rule::Open, Rule::ApiKey),
            Protocol::AzureOpenAi => match (&spec.api_key, &cloud.entra_token) {
                (None, Some(token)) => Rule::Bearer(token.expose().to_owned()),
                _ => key.map_or(Rule::Open, Rule::AzureKey),
            },
            Protocol::Gemini => match (&spec.api_key, &cloud.bearer_token, &cloud.service_account) {
                (None, _, Some(account)) => Rule::GoogleAccount(Box::new(crate::gemini::Issued::new(account))),
                (None, Some(token), None) => Rule::Bearer(token.expose().to_owned()),
                _ => key.map_or(Rule::Open, Rule::GoogleKey),
            },
            Protocol::Bedrock => match &cloud.aws {
                Some(aws) => Rule::SigV4 {
                    credentials: Credentials {
                        access_key_id: aws.access_key_id.expose().to_owned(),
                        secret_access_key: aws.secret_access_key.expose().to_owned(),
                        session_token: aws.session_token.as_ref().map(|t| t.expose().to_owned()),
                    },
                    region: d.region.clone(),
                },
                None => key.map_or(Rule::Open, Rule::Bearer),
            },
        }
    }

    /// Whether the request `parts` with `body` may be served at `now`.
    pub(crate) fn check(&self, parts: &Parts, body: &[u8], now: SystemTime) -> Result<(), Denied> {
        let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
        let given = |key: &str, value: Option<&str>| match value {
            None => Err(Denied::Missing),
            Some(v) if v == key => Ok(()),
            Some(_) => Err(Denied::WrongKey),
        };
        match self {
            Rule::Open => Ok(()),
            Rule::Bearer(key) => {
                let auth = header("authorization");
                given(key, auth.map(|v| v.strip_prefix("Bearer ").unwrap_or("")))
            }
            Rule::ApiKey(key) => given(key, header("x-api-key")),
            Rule::AzureKey(key) => given(key, header("api-key")),
            Rule::GoogleKey(key) => given(key, header("x-goog-api-key").or_else(|| crate::gemini::query(parts, "key"))),
            Rule::GoogleAccount(issued) => match header("authorization").and_then(|v| v.strip_prefix("Bearer ")) {
                None => Err(Denied::Missing),
                Some(token) if issued.holds(token, now) => Ok(()),
                Some(_) => Err(Denied::WrongKey),
            },
            Rule::SigV4 { credentials, region } => verify(parts, body, now, credentials, region),
            Rule::Oci(None) => Err(Denied::Mismatch),
            Rule::Oci(Some(verifier)) => {
                verifier.check(&parts.method, &parts.uri, &parts.headers, body, now).map_err(|e| match e {
                    VerifyError::Missing => Denied::Missing,
                    VerifyError::UnknownKey => Denied::UnknownKey,
                    VerifyError::Date => Denied::Expired(e.to_string()),
                    VerifyError::Malformed(_) | VerifyError::Unsigned(_) => Denied::Incomplete(e.to_string()),
                    VerifyError::Body | VerifyError::Mismatch => Denied::Mismatch,
                })
            }
        }
    }

    /// Whether callers are refused in OCI's shape (an `oci-openai` cloud that signs).
    pub(crate) fn is_oci(&self) -> bool {
        matches!(self, Rule::Oci(_))
    }
}

/// `Credential=AKID/20250101/us-east-1/bedrock/aws4_request, SignedHeaders=a;b, Signature=hex`.
struct Authorization<'a> {
    key_id: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: &'a str,
    signature: &'a str,
}

fn parse_authorization(value: &str) -> Result<Authorization<'_>, Denied> {
    let Some(rest) = value.strip_prefix("AWS4-HMAC-SHA256 ") else {
        return Err(Denied::Incomplete(
            "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters \
             (AWS4-HMAC-SHA256)."
                .into(),
        ));
    };
    let field = |name: &str| {
        rest.split(',').map(str::trim).find_map(|p| p.strip_prefix(name)?.strip_prefix('=')).ok_or_else(|| {
            Denied::Incomplete(format!("Authorization header requires '{name}' parameter. Authorization={value}"))
        })
    };
    let credential = field("Credential")?;
    let signed_headers = field("SignedHeaders")?;
    let signature = field("Signature")?;
    let scope: Vec<&str> = credential.split('/').collect();
    let [key_id, _date, region, service, "aws4_request"] = scope[..] else {
        return Err(Denied::Incomplete(format!(
            "Credential should be scoped to a valid region, service and terminator: {credential}"
        )));
    };
    Ok(Authorization { key_id, region, service, signed_headers, signature })
}

fn verify(parts: &Parts, body: &[u8], now: SystemTime, credentials: &Credentials, region: &str) -> Result<(), Denied> {
    let Some(value) = parts.headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return Err(Denied::Missing);
    };
    let auth = parse_authorization(value)?;
    if auth.key_id != credentials.access_key_id {
        return Err(Denied::UnknownKey);
    }
    let token = parts.headers.get("x-amz-security-token").and_then(|v| v.to_str().ok());
    if token != credentials.session_token.as_deref() {
        return Err(Denied::UnknownKey);
    }
    let stamp = parts.headers.get("x-amz-date").and_then(|v| v.to_str().ok()).unwrap_or("");
    let Some(time) = parse_amz_date(stamp) else {
        return Err(Denied::Incomplete(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.".into(),
        ));
    };
    if time + SKEW < now {
        let earliest = format_amz_date(now - SKEW);
        return Err(Denied::Expired(format!(
            "Signature expired: {stamp} is now earlier than {earliest} ({} - 5 min.)",
            format_amz_date(now)
        )));
    }
    if time > now + SKEW {
        let latest = format_amz_date(now + SKEW);
        return Err(Denied::Expired(format!(
            "Signature not yet current: {stamp} is still later than {latest} ({} + 5 min.)",
            format_amz_date(now)
        )));
    }
    if auth.region != region || auth.service != sigv4::BEDROCK {
        return Err(Denied::Mismatch);
    }
    // Sign again what the caller says it signed, with the secret key we know.
    let mut signed = HeaderMap::new();
    for name in auth.signed_headers.split(';') {
        let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else { return Err(Denied::Mismatch) };
        if name == AUTHORIZATION {
            continue;
        }
        for value in parts.headers.get_all(&name) {
            signed.append(name.clone(), value.clone());
        }
    }
    let host = parts.headers.get(HOST).and_then(|v| v.to_str().ok()).unwrap_or("localhost");
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let Ok(uri) = format!("http://{host}{path}").parse() else { return Err(Denied::Mismatch) };
    let request = sigv4::Request { method: &parts.method, uri: &uri, headers: &signed, body };
    let scope = Scope { region: auth.region, service: auth.service };
    let expected = sigv4::sign(&request, scope, credentials, time).map_err(|_| Denied::Mismatch)?;
    let ours = expected
        .iter()
        .find(|(name, _)| name == AUTHORIZATION)
        .and_then(|(_, v)| v.to_str().ok())
        .and_then(|v| parse_authorization(v).ok())
        .map(|a| (a.signed_headers.to_owned(), a.signature.to_owned()));
    match ours {
        Some((headers, signature)) if headers == auth.signed_headers && signature == auth.signature => Ok(()),
        Some(_) | None => Err(Denied::Mismatch),
    }
}

/// `20150830T123600Z`.
fn parse_amz_date(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |range: std::ops::Range<usize>| s.get(range)?.parse::<u32>().ok();
    let (year, month, day) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (hour, minute, second) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let days = days_from_civil(i64::from(year), month, day);
    let secs = days * 86_400 + i64::from(hour * 3_600 + minute * 60 + second);
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

fn format_amz_date(time: SystemTime) -> String {
    let secs = time.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (y, m, d) = civil_from_days(i64::try_from(secs / 86_400).unwrap_or(0));
    let s = secs % 86_400;
    format!("{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z", s / 3_600, s / 60 % 60, s % 60)
}

#[cfg(test)]
mod tests {
    use http::{Method, Request};

    use super::*;

    fn credentials() -> Credentials {
        Credentials { access_key_id: "AKIDEXAMPLE".into(), secret_access_key: "secret".into(), session_token: None }
    }

    /// A Converse request signed by `credentials` for `region` at `time`, as a client sends it.
    fn signed(credentials: &Credentials, region: &str, time: SystemTime) -> Parts {
        let uri: http::Uri = "http://127.0.0.1:9/model/us.meta.llama3-3-70b-instruct-v1%3A0/converse".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("content-type", "application/json".parse().unwrap());
        headers.insert(HOST, "127.0.0.1:9".parse().unwrap());
        let request = sigv4::Request { method: &Method::POST, uri: &uri, headers: &headers, body: b"{}" };
        let scope = Scope { region, service: sigv4::BEDROCK };
        for (name, value) in sigv4::sign(&request, scope, credentials, time).unwrap() {
            headers.insert(name, value);
        }
        let mut builder = Request::builder().method(Method::POST).uri(uri.path_and_query().unwrap().as_str());
        for (name, value) in &headers {
            builder = builder.header(name, value);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn sigv4_is_verified_as_aws_does() {
        let rule = Rule::SigV4 { credentials: credentials(), region: "us-east-1".into() };
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000);
        let ok = signed(&credentials(), "us-east-1", now);
        assert_eq!(rule.check(&ok, b"{}", now + Duration::from_secs(60)), Ok(()));
        assert_eq!(rule.check(&ok, b"{\"x\":1}", now), Err(Denied::Mismatch), "the body is signed");
        let wrong_secret = Credentials { secret_access_key: "other".into(), ..credentials() };
        assert_eq!(rule.check(&signed(&wrong_secret, "us-east-1", now), b"{}", now), Err(Denied::Mismatch));
        assert_eq!(rule.check(&signed(&credentials(), "eu-west-1", now), b"{}", now), Err(Denied::Mismatch));
        let stranger = Credentials { access_key_id: "AKIDOTHER".into(), ..credentials() };
        assert_eq!(rule.check(&signed(&stranger, "us-east-1", now), b"{}", now), Err(Denied::UnknownKey));
        let late = rule.check(&ok, b"{}", now + Duration::from_secs(301));
        assert!(matches!(&late, Err(Denied::Expired(m)) if m.starts_with("Signature expired: ")), "{late:?}");
        let early = rule.check(&ok, b"{}", now - Duration::from_secs(301));
        assert!(matches!(&early, Err(Denied::Expired(m)) if m.starts_with("Signature not yet current")), "{early:?}");
        let mut bare = ok.clone();
        bare.headers.remove(AUTHORIZATION);
        assert_eq!(rule.check(&bare, b"{}", now), Err(Denied::Missing));
        bare.headers.insert(AUTHORIZATION, "AWS4-HMAC-SHA256 Signature=00".parse().unwrap());
        assert!(matches!(rule.check(&bare, b"{}", now), Err(Denied::Incomplete(_))));
    }

    #[test]
    fn keys_are_checked() {
        let parts = |name: &str, value: &str| {
            Request::builder().uri("/v1/messages").header(name, value).body(()).unwrap().into_parts().0
        };
        let now = SystemTime::now();
        let api_key = Rule::ApiKey("k".into());
        assert_eq!(api_key.check(&parts("x-api-key", "k"), b"", now), Ok(()));
        assert_eq!(api_key.check(&parts("x-api-key", "j"), b"", now), Err(Denied::WrongKey));
        assert_eq!(api_key.check(&parts("authorization", "Bearer k"), b"", now), Err(Denied::Missing));
        let bearer = Rule::Bearer("k".into());
        assert_eq!(bearer.check(&parts("authorization", "Bearer k"), b"", now), Ok(()));
        assert_eq!(bearer.check(&parts("authorization", "k"), b"", now), Err(Denied::WrongKey));
        assert_eq!(Rule::Open.check(&parts("x", "y"), b"", now), Ok(()));
        assert_eq!(parse_amz_date("20150830T123600Z").map(format_amz_date).as_deref(), Some("20150830T123600Z"));
        assert_eq!(parse_amz_date("2015-08-30T12:36"), None);
    }
}
