//! Google service-account tokens: a JWT signed with the account's key (RS256 through
//! `aws-lc-rs`, as `oci.rs` signs), exchanged at the key's token URI for an OAuth access token
//! (RFC 7523's `jwt-bearer` grant, as Google's SDKs do), cached until a minute before it
//! expires. The time is always passed in. The gateway's side: a [`TokenSource`] per deployment,
//! refreshed by `Upstream` before an attempt when it holds no token that is still good, and
//! once again after a 401; the emulator's side: [`TokenIssuer`], which checks the JWT and
//! issues tokens.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{KeyPair, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256, RsaKeyPair, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http_body_util::Full;
use serde_json::Value;
use switchyard_core::config::ServiceAccount;
use switchyard_core::config::google::{CLOUD_PLATFORM_SCOPE, DEFAULT_TOKEN_URI};
use switchyard_core::config::oci::{RsaKeyDer, rsa_private_key_der};

/// How long an assertion is good for: Google takes at most an hour.
const ASSERTION_LIFETIME: Duration = Duration::from_secs(3600);
/// A token is used until this long before it expires.
const MARGIN: Duration = Duration::from_secs(60);
/// The grant type of a JWT exchanged for a token, form-encoded.
const GRANT: &str = "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer";

/// A service account's tokens: the key to sign assertions, and the token held now.
pub struct TokenSource {
    email: String,
    key_id: Option<String>,
    token_uri: String,
    key: Arc<RsaKeyPair>,
    held: Mutex<Option<Held>>,
    /// Held while a token is fetched: one fetch at a time per account.
    fetching: tokio::sync::Mutex<()>,
}

struct Held {
    /// `Bearer <token>`, marked sensitive.
    authorization: HeaderValue,
    until: SystemTime,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource").field("email", &self.email).finish_non_exhaustive()
    }
}

/// An RSA key pair from a PEM (PKCS#1 or PKCS#8).
fn key_pair(pem: &str) -> Result<RsaKeyPair, String> {
    match rsa_private_key_der(pem)? {
        RsaKeyDer::Pkcs1(der) => RsaKeyPair::from_der(&der),
        RsaKeyDer::Pkcs8(der) => RsaKeyPair::from_pkcs8(&der),
    }
    .map_err(|e| format!("not a usable RSA key ({e})"))
}

fn encode_json(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_default()
}

fn seconds(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

// === impl TokenSource ===

impl TokenSource {
    /// The tokens of `account` (whose key the config checked).
    pub fn new(account: &ServiceAccount) -> Result<TokenSource, String> {
        Ok(TokenSource {
            email: account.client_email.clone(),
            key_id: account.private_key_id.clone(),
            token_uri: account.token_uri.clone(),
            key: Arc::new(key_pair(account.private_key.expose())?),
            held: Mutex::new(None),
            fetching: tokio::sync::Mutex::new(()),
        })
    }

    /// The signed JWT that asks for a token at `now`, byte for byte what google-auth's
    /// `service_account.Credentials` writes (`tests/google/test_google_jwt.py` checks it):
    /// header `{"typ": "JWT", "alg": "RS256", "kid": …}`, claims `{"iat", "exp", "iss", "aud",
    /// "scope"}` (an hour's lifetime, the account, Google's token endpoint as the audience
    /// whatever the token URI, the cloud-platform scope), as Python's `json.dumps` spaces them.
    pub fn assertion(&self, now: SystemTime) -> Result<String, String> {
        let mut header = r#"{"typ": "JWT", "alg": "RS256""#.to_owned();
        if let Some(kid) = &self.key_id {
            header.push_str(&format!(r#", "kid": {}"#, encode_json(kid)));
        }
        header.push('}');
        let iat = seconds(now);
        let claims = format!(
            r#"{{"iat": {iat}, "exp": {}, "iss": {}, "aud": {}, "scope": {}}}"#,
            iat + ASSERTION_LIFETIME.as_secs(),
            encode_json(&self.email),
            encode_json(DEFAULT_TOKEN_URI),
            encode_json(CLOUD_PLATFORM_SCOPE),
        );
        let signed = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims));
        let mut signature = vec![0; self.key.public_modulus_len()];
        self.key
            .sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), signed.as_bytes(), &mut signature)
            .map_err(|e| format!("cannot sign the assertion ({e})"))?;
        Ok(format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }

    /// The token request at `now`: the assertion, form-encoded, to the token URI.
    pub fn request(&self, now: SystemTime) -> Result<http::Request<Full<Bytes>>, String> {
        let body = self.form(now)?;
        http::Request::post(&self.token_uri)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("cannot make the token request ({e})"))
    }

    /// The token request's form body at `now`, in google-auth's order.
    pub fn form(&self, now: SystemTime) -> Result<String, String> {
        Ok(format!("assertion={}&grant_type={GRANT}", self.assertion(now)?))
    }

    /// Takes the token endpoint's answer (`access_token`, `expires_in`) received at `now`.
    pub fn accept(&self, body: &[u8], now: SystemTime) -> Result<(), String> {
        let answer: Value = serde_json::from_slice(body).map_err(|e| format!("not a token endpoint's answer ({e})"))?;
        let Some(token) = answer["access_token"].as_str() else {
            return Err("the token endpoint's answer has no access_token".to_owned());
        };
        let mut authorization = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| "the access token holds characters a header cannot".to_owned())?;
        authorization.set_sensitive(true);
        let lifetime = Duration::from_secs(answer["expires_in"].as_u64().unwrap_or(3600).min(86_400));
        // A token shorter-lived than the margin is still used for half its life.
        let until = now + lifetime.saturating_sub(MARGIN.min(lifetime / 2));
        if let Ok(mut held) = self.held.lock() {
            *held = Some(Held { authorization, until });
        }
        Ok(())
    }

    /// `Bearer <token>`, while the token held is good at `now`.
    pub fn current(&self, now: SystemTime) -> Option<HeaderValue> {
        let held = self.held.lock().ok()?;
        held.as_ref().filter(|h| now < h.until).map(|h| h.authorization.clone())
    }

    /// Forgets the token held if it is still `refused` (the `Authorization` a deployment
    /// refused; `None`: whatever is held): one fetched since by another request is kept.
    pub fn invalidate(&self, refused: Option<&HeaderValue>) {
        if let Ok(mut held) = self.held.lock()
            && refused.is_none_or(|r| held.as_ref().is_some_and(|h| h.authorization == *r))
        {
            *held = None;
        }
    }

    /// The turn to fetch a token: one request at a time per account fetches; the others wait
    /// and then find the token it fetched.
    pub async fn fetching(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.fetching.lock().await
    }
}

/// The token endpoint's side: checks an assertion made by one account's key and issues tokens.
pub struct TokenIssuer {
    email: String,
    public_key: Vec<u8>,
}

/// Why an assertion is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AssertionError {
    #[error("invalid_request: {0}")]
    Malformed(String),
    #[error("invalid_grant: Invalid JWT Signature.")]
    Signature,
    #[error("invalid_grant: {0}")]
    Claims(String),
}

// === impl TokenIssuer ===

impl TokenIssuer {
    pub fn new(account: &ServiceAccount) -> Result<TokenIssuer, String> {
        let key = key_pair(account.private_key.expose())?;
        Ok(TokenIssuer { email: account.client_email.clone(), public_key: key.public_key().as_ref().to_vec() })
    }

    /// Checks a token request's form body at `now`: the grant type, the JWT's signature by the
    /// account's key, its issuer, audience (Google's token endpoint) and times (issued at most five
    /// minutes ahead, not expired, at most an hour long).
    pub fn check(&self, form: &[u8], now: SystemTime) -> Result<(), AssertionError> {
        let form = std::str::from_utf8(form).map_err(|_| AssertionError::Malformed("the body is not text".into()))?;
        let field = |name: &str| form.split('&').find_map(|p| p.strip_prefix(name)?.strip_prefix('='));
        if field("grant_type") != Some(GRANT) {
            return Err(AssertionError::Malformed(
                "grant_type must be urn:ietf:params:oauth:grant-type:jwt-bearer".into(),
            ));
        }
        let jwt = field("assertion").ok_or_else(|| AssertionError::Malformed("no assertion".into()))?;
        let mut parts = jwt.split('.');
        let (Some(header), Some(claims), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AssertionError::Malformed("the assertion is not a JWT".into()));
        };
        let decode = |part: &str| {
            URL_SAFE_NO_PAD.decode(part).map_err(|_| AssertionError::Malformed("a JWT part is not base64url".into()))
        };
        let header: Value = serde_json::from_slice(&decode(header)?)
            .map_err(|_| AssertionError::Malformed("the JWT header is not JSON".into()))?;
        if header["alg"] != "RS256" {
            return Err(AssertionError::Malformed("the JWT must be signed with RS256".into()));
        }
        let signed = &jwt[..jwt.len() - signature.len() - 1];
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &self.public_key)
            .verify(signed.as_bytes(), &decode(signature)?)
            .map_err(|_| AssertionError::Signature)?;
        let claims: Value = serde_json::from_slice(&decode(claims)?)
            .map_err(|_| AssertionError::Malformed("the JWT claims are not JSON".into()))?;
        if claims["iss"] != self.email.as_str() {
            return Err(AssertionError::Claims("Invalid issuer.".into()));
        }
        if claims["aud"] != DEFAULT_TOKEN_URI {
            return Err(AssertionError::Claims("Invalid JWT audience.".into()));
        }
        let (Some(iat), Some(exp)) = (claims["iat"].as_u64(), claims["exp"].as_u64()) else {
            return Err(AssertionError::Claims("iat and exp are required.".into()));
        };
        let now = seconds(now);
        if iat > now + 300 || exp <= now || exp.saturating_sub(iat) > ASSERTION_LIFETIME.as_secs() {
            return Err(AssertionError::Claims(
                "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe.".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use switchyard_core::config::Secret;

    use super::*;

    fn account(pem: &str) -> ServiceAccount {
        ServiceAccount {
            client_email: "gw@p.iam.gserviceaccount.com".into(),
            private_key_id: Some("kid-1".into()),
            private_key: Secret::new(pem.to_owned()),
            token_uri: "https://oauth2.googleapis.com/token".into(),
        }
    }

    #[test]
    fn an_assertion_is_a_jwt_the_issuer_accepts_and_tokens_are_cached_until_expiry() {
        let pem = crate::oci::generate_pem().expect("a key");
        let source = TokenSource::new(&account(&pem)).expect("a source");
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600);
        let jwt = source.assertion(now).expect("signs");
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header = URL_SAFE_NO_PAD.decode(parts[0]).expect("base64url");
        assert_eq!(header, br#"{"typ": "JWT", "alg": "RS256", "kid": "kid-1"}"#);
        let claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).expect("base64url")).expect("JSON");
        assert_eq!(claims["iss"], "gw@p.iam.gserviceaccount.com");
        assert_eq!((claims["iat"].as_u64(), claims["exp"].as_u64()), (Some(1_767_225_600), Some(1_767_229_200)));
        assert_eq!(claims["scope"], CLOUD_PLATFORM_SCOPE);

        let form = source.form(now).expect("a form").into_bytes();
        assert_eq!(source.request(now).expect("a request").uri(), "https://oauth2.googleapis.com/token");
        let issuer = TokenIssuer::new(&account(&pem)).expect("an issuer");
        assert_eq!(issuer.check(&form, now), Ok(()));
        let later = now + Duration::from_secs(3601);
        assert!(matches!(issuer.check(&form, later), Err(AssertionError::Claims(_))), "expired");
        let other = TokenIssuer::new(&account(&crate::oci::generate_pem().expect("a key"))).expect("an issuer");
        assert_eq!(other.check(&form, now), Err(AssertionError::Signature));

        assert_eq!(source.current(now), None);
        source.accept(br#"{"access_token":"ya29.a","expires_in":3599,"token_type":"Bearer"}"#, now).expect("taken");
        assert_eq!(
            source.current(now + Duration::from_secs(3000)).as_ref().map(|v| v.to_str().ok()),
            Some(Some("Bearer ya29.a"))
        );
        assert_eq!(source.current(now + Duration::from_secs(3540)), None, "refreshed a minute before expiry");
        // A token that lives less than the margin is still used for half its life.
        source.accept(br#"{"access_token":"ya29.b","expires_in":30}"#, now).expect("taken");
        assert!(source.current(now + Duration::from_secs(14)).is_some(), "usable at once");
        assert_eq!(source.current(now + Duration::from_secs(15)), None);
        source.invalidate(None);
        assert_eq!(source.current(now), None);
        assert!(source.accept(b"{}", now).is_err());
    }
}
