//! Google service-account keys in config: a `gemini` cloud's `service_account`, a secret
//! reference (`file:` the JSON key Google issues, or `env:` its text), read and checked with
//! paths: its `client_email`, an RSA `private_key` (PKCS#8 PEM, as Google writes it; decoded by
//! `oci::rsa_private_key_der`), its `token_uri` (Google's by default). `providers` signs a JWT
//! with the key and exchanges it at the token URI for access tokens.

use std::fmt;

use serde::Deserialize;

use super::oci::rsa_private_key_der;
use super::raw::RawCloud;
use super::secret::{Secret, SecretSource, resolve};

/// Where Google exchanges a signed JWT for an access token, when the key names no other.
pub const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

/// The OAuth scope the tokens are asked for: Vertex AI's, which the Gemini API takes too.
pub const CLOUD_PLATFORM_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// A service account's key. `Debug` shows whose it is, never the key.
#[derive(Clone)]
pub struct ServiceAccount {
    /// The account (`name@project.iam.gserviceaccount.com`): the JWT's issuer.
    pub client_email: String,
    /// The key's id, the JWT header's `kid`, when the file has one.
    pub private_key_id: Option<String>,
    /// The private key's PEM.
    pub private_key: Secret,
    /// Where the JWT is exchanged for an access token (and the JWT's audience).
    pub token_uri: String,
}

impl fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("client_email", &self.client_email)
            .field("token_uri", &self.token_uri)
            .finish_non_exhaustive()
    }
}

/// The fields of Google's JSON key that are used; the others are ignored.
#[derive(Deserialize)]
struct RawKey {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    client_email: Option<String>,
    #[serde(default)]
    private_key_id: Option<String>,
    private_key: Option<String>,
    #[serde(default)]
    token_uri: Option<String>,
}

/// The `service_account` of cloud `c` at `path`, resolved and checked; `None` when absent or
/// wrong (the errors say why).
pub(super) fn service_account(
    c: &RawCloud,
    path: &str,
    secrets: &dyn SecretSource,
    errors: &mut Vec<String>,
) -> Option<ServiceAccount> {
    let reference = c.service_account.as_deref()?;
    let at = format!("{path}.service_account");
    let text = resolve(reference, secrets).map_err(|e| errors.push(format!("{at}: {e}"))).ok()?;
    let key: RawKey = match serde_json::from_str(text.expose()) {
        Ok(key) => key,
        Err(_) => {
            errors.push(format!(
                "{at}: not a service account's JSON key (a JSON object with client_email and private_key)"
            ));
            return None;
        }
    };
    let before = errors.len();
    if let Some(kind) = key.kind.as_deref().filter(|k| *k != "service_account") {
        errors.push(format!("{at}: a key of type {kind:?}, not \"service_account\""));
    }
    let client_email = key.client_email.filter(|e| e.contains('@')).unwrap_or_else(|| {
        errors.push(format!("{at}: client_email is missing or not an email address"));
        String::new()
    });
    let private_key = match key.private_key {
        Some(pem) => match rsa_private_key_der(&pem) {
            Ok(_) => Some(Secret::new(pem)),
            Err(e) => {
                errors.push(format!("{at}: private_key: {e}"));
                None
            }
        },
        None => {
            errors.push(format!("{at}: private_key is missing"));
            None
        }
    };
    let token_uri = key.token_uri.unwrap_or_else(|| DEFAULT_TOKEN_URI.to_owned());
    if !(token_uri.starts_with("https://") || token_uri.starts_with("http://")) {
        errors.push(format!("{at}: token_uri must be an http(s) URL, not {token_uri:?}"));
    }
    let private_key = private_key.filter(|_| errors.len() == before)?;
    Some(ServiceAccount { client_email, private_key_id: key.private_key_id, private_key, token_uri })
}

#[cfg(test)]
#[path = "google_tests.rs"]
mod tests;
