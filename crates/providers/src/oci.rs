//! OCI's request signatures (HTTP Signatures, draft-cavage, as OCI's SDKs write them): the
//! headers that sign one request with an API signing key at a time the caller passes in, and
//! their check (for the emulator).
//!
//! A request is signed over `date`, `(request-target)` and `host`; one with a body (POST, PUT,
//! PATCH) also over `content-length`, `content-type` and `x-content-sha256` (the body's base64
//! SHA-256). The signature is RSA PKCS#1 v1.5 with SHA-256 (`aws-lc-rs`, already in the build
//! through rustls), deterministic, so the `Authorization` header is exactly the oci Python SDK's
//! on the same inputs: `tests/oci/test_oci_signer.py` holds them equal.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{KeyPair, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256, RsaKeyPair, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, DATE, HOST, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Uri};
use sha2::{Digest, Sha256};
use switchyard_core::config::OciCredentials;
use switchyard_core::config::oci::{RsaKeyDer, rsa_private_key_der};

/// The header carrying the body's SHA-256.
pub const X_CONTENT_SHA256: HeaderName = HeaderName::from_static("x-content-sha256");

/// The compartment a request is made in (sent, not signed).
pub const OPC_COMPARTMENT_ID: HeaderName = HeaderName::from_static("opc-compartment-id");

/// The headers every request signs, in the order OCI's SDKs list them.
const GENERIC: [&str; 3] = ["date", "(request-target)", "host"];
/// The headers a request with a body signs too.
const BODY: [&str; 3] = ["content-length", "content-type", "x-content-sha256"];

/// The last instant an HTTP date can hold: 9999-12-31T23:59:59Z (later ones would panic the
/// formatter, so they are refused).
const LAST_SIGNABLE: Duration = Duration::from_secs(253_402_300_799);

/// How far a signature's `date` may be from the server's clock, as OCI allows.
pub const SKEW: Duration = Duration::from_secs(5 * 60);

/// An API signing key and its `keyId` (`tenancy/user/fingerprint`). `Debug` shows the id only.
#[derive(Clone)]
pub struct Signer {
    key_id: String,
    key: Arc<RsaKeyPair>,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer").field("key_id", &self.key_id).finish_non_exhaustive()
    }
}

/// The parts of a request that are signed. `uri` is absolute, as it will be sent.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    pub method: &'a Method,
    pub uri: &'a Uri,
    /// Signed for a request with a body (OCI's SDKs default to `application/json`).
    pub content_type: &'a str,
    pub body: &'a [u8],
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    #[error("the OCI private key: {0}")]
    Key(String),
    #[error("the request URI {0:?} has no host to sign")]
    NoHost(String),
    #[error("the signing time is before 1970 or after 9999")]
    TimeOutOfRange,
    #[error("a signed value is not a header value")]
    NotText,
    #[error("cannot sign: {0}")]
    Signer(String),
}

impl Signer {
    /// A signer with `credentials`' key (checked by the config: an RSA private key's PEM).
    pub fn new(credentials: &OciCredentials) -> Result<Signer, SignError> {
        Signer::from_pem(credentials.key_id(), credentials.private_key.expose())
    }

    /// A signer with the RSA private key in `pem` (PKCS#1 or PKCS#8), as `key_id`.
    pub fn from_pem(key_id: String, pem: &str) -> Result<Signer, SignError> {
        let key = match rsa_private_key_der(pem).map_err(SignError::Key)? {
            RsaKeyDer::Pkcs1(der) => RsaKeyPair::from_der(&der),
            RsaKeyDer::Pkcs8(der) => RsaKeyPair::from_pkcs8(&der),
        }
        .map_err(|e| SignError::Key(format!("not a usable RSA key ({e})")))?;
        Ok(Signer { key_id, key: Arc::new(key) })
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The check of this key's signatures: its `keyId` and public half.
    pub fn verifier(&self) -> Verifier {
        Verifier { key_id: self.key_id.clone(), public_key: self.key.public_key().as_ref().to_vec() }
    }

    /// The headers that sign `request` at `time`: `date`, `host`, for a body `content-length`,
    /// `content-type` and `x-content-sha256`, and `authorization`.
    pub fn sign(&self, request: &Request<'_>, time: SystemTime) -> Result<Vec<(HeaderName, HeaderValue)>, SignError> {
        let host = request.uri.authority().ok_or_else(|| SignError::NoHost(request.uri.to_string()))?.as_str();
        let since = time.duration_since(SystemTime::UNIX_EPOCH).map_err(|_| SignError::TimeOutOfRange)?;
        if since > LAST_SIGNABLE {
            return Err(SignError::TimeOutOfRange);
        }
        let target = request_target(request.method, request.uri);
        let mut values: Vec<(&str, String)> =
            vec![("date", httpdate::fmt_http_date(time)), ("(request-target)", target), ("host", host.to_owned())];
        if has_body(request.method) {
            values.push(("content-length", request.body.len().to_string()));
            values.push(("content-type", request.content_type.to_owned()));
            values.push(("x-content-sha256", STANDARD.encode(Sha256::digest(request.body))));
        }
        let message: Vec<String> = values.iter().map(|(name, value)| format!("{name}: {value}")).collect();
        let mut signature = vec![0; self.key.public_modulus_len()];
        self.key
            .sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), message.join("\n").as_bytes(), &mut signature)
            .map_err(|e| SignError::Signer(e.to_string()))?;
        let names: Vec<&str> = values.iter().map(|(name, _)| *name).collect();
        let authorization = format!(
            "Signature algorithm=\"rsa-sha256\",headers=\"{}\",keyId=\"{}\",signature=\"{}\",version=\"1\"",
            names.join(" "),
            self.key_id,
            STANDARD.encode(signature)
        );
        let header = |name: HeaderName, value: String| {
            HeaderValue::try_from(value).map(|v| (name, v)).map_err(|_| SignError::NotText)
        };
        let mut headers = Vec::with_capacity(values.len());
        for (name, value) in values {
            let name = match name {
                "date" => DATE,
                "host" => HOST,
                "content-length" => CONTENT_LENGTH,
                "content-type" => CONTENT_TYPE,
                "x-content-sha256" => X_CONTENT_SHA256,
                _ => continue, // (request-target) is not a header
            };
            headers.push(header(name, value)?);
        }
        headers.push(header(AUTHORIZATION, authorization)?);
        Ok(headers)
    }
}

/// A fresh 2048-bit RSA private key as a PKCS#8 PEM, for a key made at start (the demo's) or
/// in tests.
pub fn generate_pem() -> Result<String, SignError> {
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::rsa::KeySize;
    let fail = |e: aws_lc_rs::error::Unspecified| SignError::Key(format!("cannot generate a key ({e})"));
    let der = RsaKeyPair::generate(KeySize::Rsa2048).map_err(fail)?.as_der().map_err(fail)?;
    let text = STANDARD.encode(der.as_ref());
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in text.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    Ok(pem)
}

/// Whether requests of `method` sign their body, as OCI's SDKs decide.
fn has_body(method: &Method) -> bool {
    matches!(*method, Method::POST | Method::PUT | Method::PATCH)
}

/// `post /20231130/actions/chat?x=1`: the method in lower case and the path with its query.
fn request_target(method: &Method, uri: &Uri) -> String {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    format!("{} {path}", method.as_str().to_ascii_lowercase())
}

/// Checks OCI signatures by one key, as OCI does.
#[derive(Clone, Debug)]
pub struct Verifier {
    key_id: String,
    /// PKCS#1 `RSAPublicKey` DER.
    public_key: Vec<u8>,
}

/// Why a signature is refused (OCI answers each with the same 401).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("no Authorization header")]
    Missing,
    #[error("the Authorization header is not a signature: {0}")]
    Malformed(String),
    #[error("the signature's keyId is not the one configured")]
    UnknownKey,
    #[error("the signature does not cover {0}")]
    Unsigned(&'static str),
    #[error("the date is missing, unreadable, or more than five minutes from now")]
    Date,
    #[error("x-content-sha256 or content-length does not match the body")]
    Body,
    #[error("the signature does not verify")]
    Mismatch,
}

impl Verifier {
    /// Whether the request (`method`, its `uri` as received, `headers`, `body`) is signed by
    /// this key over what OCI requires, with a `date` within [`SKEW`] of `now`.
    pub fn check(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
        now: SystemTime,
    ) -> Result<(), VerifyError> {
        let value = headers.get(AUTHORIZATION).ok_or(VerifyError::Missing)?;
        let value = value.to_str().map_err(|_| VerifyError::Malformed("not text".into()))?;
        let params = parse_signature(value)?;
        let param = |name: &'static str| {
            params.iter().find(|(k, _)| *k == name).map(|(_, v)| *v).ok_or(VerifyError::Malformed(format!("no {name}")))
        };
        if param("algorithm")? != "rsa-sha256" || params.iter().any(|(k, v)| *k == "version" && *v != "1") {
            return Err(VerifyError::Malformed("the algorithm must be rsa-sha256, version 1".into()));
        }
        if param("keyId")? != self.key_id {
            return Err(VerifyError::UnknownKey);
        }
        let signed: Vec<&str> = param("headers")?.split(' ').collect();
        let required = if has_body(method) { &[&GENERIC[..], &BODY[..]][..] } else { &[&GENERIC[..]][..] };
        for name in required.iter().flat_map(|names| names.iter()) {
            if !signed.contains(name) {
                return Err(VerifyError::Unsigned(name));
            }
        }
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let date = text("date").and_then(|d| httpdate::parse_http_date(d).ok()).ok_or(VerifyError::Date)?;
        let off = date.duration_since(now).or_else(|_| now.duration_since(date)).map_err(|_| VerifyError::Date)?;
        if off > SKEW {
            return Err(VerifyError::Date);
        }
        if has_body(method)
            && (text("x-content-sha256") != Some(&STANDARD.encode(Sha256::digest(body)))
                || text("content-length") != Some(&body.len().to_string()))
        {
            return Err(VerifyError::Body);
        }
        let mut message = Vec::with_capacity(signed.len());
        for name in &signed {
            let line = match *name {
                "(request-target)" => request_target(method, uri),
                name => text(name).ok_or(VerifyError::Unsigned("a header it names"))?.to_owned(),
            };
            message.push(format!("{name}: {line}"));
        }
        let signature = STANDARD.decode(param("signature")?).map_err(|_| VerifyError::Mismatch)?;
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &self.public_key)
            .verify(message.join("\n").as_bytes(), &signature)
            .map_err(|_| VerifyError::Mismatch)
    }
}

/// `Signature k="v",k="v",...` as its pairs.
fn parse_signature(value: &str) -> Result<Vec<(&str, &str)>, VerifyError> {
    let rest = value.strip_prefix("Signature ").ok_or(VerifyError::Malformed("not a Signature".into()))?;
    rest.split(',')
        .map(|pair| {
            let (k, v) = pair.trim().split_once('=').ok_or(VerifyError::Malformed(pair.into()))?;
            let v = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).ok_or(VerifyError::Malformed(pair.into()))?;
            Ok((k, v))
        })
        .collect()
}
