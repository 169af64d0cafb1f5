//! How a deployment authenticates: its `Endpoint` as configured (`Endpoint::of`: the cloud's
//! protocol and credentials, [`Auth`]), the credentials prepared once per target
//! ([`PreparedAuth`]: header values made, a signer built, a token source), and applied to each
//! request (a header, or a signature made at the time it is built).

use std::time::SystemTime;

use bytes::Bytes;
use http::Method;
use http::header::{AUTHORIZATION, HOST, HeaderName, HeaderValue};
use http_body_util::Full;
use switchyard_core::AttemptError;
use switchyard_core::config::{Config, Deployment, OciCredentials, OciFormat, Protocol, ServiceAccount};
use switchyard_wire::oci_codec;

use crate::ClientBuildError;
use crate::google::TokenSource;
use crate::oci;
use crate::sigv4::{self, BEDROCK, Credentials, Scope};

/// A deployment's endpoint as configured: where, in which protocol, with which credentials.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// The API's base URL, e.g. `http://127.0.0.1:9101/v1` (OpenAI, Anthropic),
    /// `https://bedrock-runtime.us-east-1.amazonaws.com` (Bedrock), or
    /// `https://res.openai.azure.com` (Azure OpenAI's deployment URLs; ending in `/openai/v1`,
    /// its v1 API).
    pub base: String,
    pub protocol: Protocol,
    pub auth: Auth,
    /// The provider's model id (Bedrock puts it in the URL path), or Azure's deployment name
    /// (in the URL path of its deployment URLs).
    pub model: String,
    /// The deployment's region: Bedrock's SigV4 signing region.
    pub region: String,
}

/// How requests to an endpoint are authenticated.
#[derive(Clone, Debug)]
pub enum Auth {
    None,
    /// `Authorization: Bearer` (OpenAI; a Bedrock API key).
    Bearer(String),
    /// Anthropic's `x-api-key` (optional) and `anthropic-version`.
    Anthropic {
        key: Option<String>,
        version: String,
    },
    /// AWS SigV4 over the whole request.
    Aws(Credentials),
    /// Azure OpenAI: its credential, and the `api-version` its deployment URLs take.
    Azure {
        credential: AzureCredential,
        api_version: String,
    },
    /// OCI's HTTP signatures with an API signing key (an `oci-openai` cloud's `oci`).
    Oci(OciCredentials),
    /// Gemini / Vertex AI: an API key or an OAuth access token.
    Gemini(GeminiCredential),
    /// OCI Generative AI's native API: the credential, and what goes in every body.
    OciNative(OciNative),
}

/// An OCI native deployment's credential and the compartment and format of its requests.
#[derive(Clone, Debug)]
pub struct OciNative {
    /// An API signing key (its compartment is the one below), or an API key as a Bearer token.
    pub credential: OciCredential,
    /// The body's `compartmentId`.
    pub compartment: String,
    /// The `chatRequest`'s `apiFormat`.
    pub format: oci_codec::Format,
}

/// How OCI's native API is authenticated.
#[derive(Clone, Debug)]
pub enum OciCredential {
    /// OCI's HTTP signatures with an API signing key.
    Signed(OciCredentials),
    /// An OCI Generative AI API key, sent as `Authorization: Bearer`.
    ApiKey(String),
    None,
}

/// How Gemini and Vertex AI are authenticated.
#[derive(Clone, Debug)]
pub enum GeminiCredential {
    /// A Gemini API key, sent as `x-goog-api-key`.
    ApiKey(String),
    /// An OAuth access token, sent as `Authorization: Bearer`.
    Bearer(String),
    /// A service account's key, exchanged for OAuth access tokens (`google.rs`).
    ServiceAccount(ServiceAccount),
    None,
}

/// How Azure OpenAI is authenticated.
#[derive(Clone, Debug)]
pub enum AzureCredential {
    /// A resource key, sent as `api-key`.
    ApiKey(String),
    /// A Microsoft Entra ID access token, sent as `Authorization: Bearer`.
    Entra(String),
    None,
}

impl Endpoint {
    /// `d`'s endpoint, with its cloud's protocol and credentials.
    pub fn of(config: &Config, d: &Deployment) -> Endpoint {
        let cloud = config.cloud_of(d.id);
        let key = cloud.api_key.as_ref().map(|k| k.expose().to_owned());
        let auth = match (cloud.protocol, &cloud.aws, key) {
            (Protocol::OpenAi, _, _) if let Some(oci) = &cloud.oci => Auth::Oci(oci.clone()),
            (Protocol::Oci, _, key) => {
                let signed = cloud.oci.clone().map(OciCredential::Signed);
                let credential = signed.or(key.map(OciCredential::ApiKey)).unwrap_or(OciCredential::None);
                let format = oci_format(d.oci_format.unwrap_or_else(|| OciFormat::of_model(&d.model)));
                let compartment = cloud.compartment.clone().unwrap_or_default();
                Auth::OciNative(OciNative { credential, compartment, format })
            }
            (Protocol::Anthropic, _, key) => Auth::Anthropic { key, version: cloud.anthropic_version.clone() },
            (Protocol::AzureOpenAi, _, key) => {
                let entra = cloud.entra_token.as_ref().map(|t| AzureCredential::Entra(t.expose().to_owned()));
                let credential = entra.or(key.map(AzureCredential::ApiKey)).unwrap_or(AzureCredential::None);
                Auth::Azure { credential, api_version: cloud.api_version.clone() }
            }
            (Protocol::Gemini, _, key) => {
                let account = cloud.service_account.clone().map(GeminiCredential::ServiceAccount);
                let bearer = cloud.bearer_token.as_ref().map(|t| GeminiCredential::Bearer(t.expose().to_owned()));
                let credential = account.or(bearer).or(key.map(GeminiCredential::ApiKey));
                Auth::Gemini(credential.unwrap_or(GeminiCredential::None))
            }
            (Protocol::Bedrock, Some(aws), _) => Auth::Aws(Credentials {
                access_key_id: aws.access_key_id.expose().to_owned(),
                secret_access_key: aws.secret_access_key.expose().to_owned(),
                session_token: aws.session_token.as_ref().map(|t| t.expose().to_owned()),
            }),
            (_, _, Some(key)) => Auth::Bearer(key),
            (_, _, None) => Auth::None,
        };
        Endpoint {
            base: d.endpoint.clone(),
            protocol: cloud.protocol,
            auth,
            model: d.model.clone(),
            region: d.region.clone(),
        }
    }
}

/// A deployment's credentials, made ready to put on requests.
#[derive(Debug)]
pub(super) enum PreparedAuth {
    None,
    Header(HeaderName, HeaderValue),
    Anthropic { key: Option<HeaderValue>, version: HeaderValue },
    Aws { credentials: Credentials, region: String },
    Oci { signer: oci::Signer, compartment: HeaderValue },
    Google(TokenSource),
}

impl PreparedAuth {
    /// `e`'s credentials, prepared.
    pub(super) fn new(e: &Endpoint) -> Result<PreparedAuth, ClientBuildError> {
        let sensitive = |value: String| {
            let mut value = HeaderValue::from_str(&value)
                .map_err(|_| ClientBuildError::Client("a credential holds characters a header cannot".into()))?;
            value.set_sensitive(true);
            Ok::<_, ClientBuildError>(value)
        };
        Ok(match &e.auth {
            Auth::None => PreparedAuth::None,
            Auth::Bearer(key) => PreparedAuth::Header(AUTHORIZATION, sensitive(format!("Bearer {key}"))?),
            Auth::Anthropic { key, version } => PreparedAuth::Anthropic {
                key: key.clone().map(sensitive).transpose()?,
                version: HeaderValue::from_str(version)
                    .map_err(|_| ClientBuildError::Client("anthropic_version is not a header value".into()))?,
            },
            Auth::Aws(credentials) => PreparedAuth::Aws { credentials: credentials.clone(), region: e.region.clone() },
            Auth::Azure { credential: AzureCredential::ApiKey(key), .. } => {
                PreparedAuth::Header(HeaderName::from_static("api-key"), sensitive(key.clone())?)
            }
            Auth::Azure { credential: AzureCredential::Entra(token), .. } => {
                PreparedAuth::Header(AUTHORIZATION, sensitive(format!("Bearer {token}"))?)
            }
            Auth::Azure { credential: AzureCredential::None, .. } => PreparedAuth::None,
            Auth::Gemini(GeminiCredential::ApiKey(key)) => {
                PreparedAuth::Header(HeaderName::from_static("x-goog-api-key"), sensitive(key.clone())?)
            }
            Auth::Gemini(GeminiCredential::Bearer(token)) => {
                PreparedAuth::Header(AUTHORIZATION, sensitive(format!("Bearer {token}"))?)
            }
            Auth::Gemini(GeminiCredential::ServiceAccount(account)) => {
                PreparedAuth::Google(TokenSource::new(account).map_err(ClientBuildError::Client)?)
            }
            Auth::Gemini(GeminiCredential::None) => PreparedAuth::None,
            Auth::Oci(credentials)
            | Auth::OciNative(OciNative { credential: OciCredential::Signed(credentials), .. }) => PreparedAuth::Oci {
                signer: oci::Signer::new(credentials).map_err(|e| ClientBuildError::Client(e.to_string()))?,
                compartment: HeaderValue::from_str(&credentials.compartment)
                    .map_err(|_| ClientBuildError::Client("the OCI compartment is not a header value".into()))?,
            },
            Auth::OciNative(OciNative { credential: OciCredential::ApiKey(key), .. }) => {
                PreparedAuth::Header(AUTHORIZATION, sensitive(format!("Bearer {key}"))?)
            }
            Auth::OciNative(OciNative { credential: OciCredential::None, .. }) => PreparedAuth::None,
        })
    }

    /// Whether requests are signed over their body (which is then kept aside to sign).
    pub(super) fn signs(&self) -> bool {
        matches!(self, PreparedAuth::Aws { .. } | PreparedAuth::Oci { .. })
    }

    /// Puts the credentials on `request`: a header, or a signature over `signing` (its body,
    /// when [`PreparedAuth::signs`]) made at `now()`.
    pub(super) fn apply(
        &self,
        request: &mut http::Request<Full<Bytes>>,
        signing: Option<Bytes>,
        now: impl FnOnce() -> SystemTime,
    ) -> Result<(), AttemptError> {
        let headers = request.headers_mut();
        match self {
            PreparedAuth::None => {}
            PreparedAuth::Header(name, value) => {
                headers.insert(name.clone(), value.clone());
            }
            PreparedAuth::Anthropic { key, version } => {
                if let Some(key) = key {
                    headers.insert(HeaderName::from_static("x-api-key"), key.clone());
                }
                headers.insert(HeaderName::from_static("anthropic-version"), version.clone());
            }
            PreparedAuth::Aws { credentials, region } => {
                let uri = request.uri().clone();
                let host = uri.authority().map(|a| a.as_str().to_owned()).unwrap_or_default();
                let host = HeaderValue::from_str(&host).map_err(|_| AttemptError::ConnectFailed {
                    detail: "the endpoint's host is not a header value".into(),
                })?;
                request.headers_mut().insert(HOST, host);
                let body = signing.unwrap_or_default();
                let signable =
                    sigv4::Request { method: &Method::POST, uri: &uri, headers: request.headers(), body: &body };
                let signed = sigv4::sign(&signable, Scope { region, service: BEDROCK }, credentials, now())
                    .map_err(|e| AttemptError::ConnectFailed { detail: format!("cannot sign the request: {e}") })?;
                request.headers_mut().extend(signed);
            }
            PreparedAuth::Oci { signer, compartment } => {
                let body = signing.unwrap_or_default();
                let signable = oci::Request {
                    method: &Method::POST,
                    uri: request.uri(),
                    content_type: "application/json",
                    body: &body,
                };
                let signed = signer
                    .sign(&signable, now())
                    .map_err(|e| AttemptError::ConnectFailed { detail: format!("cannot sign the request: {e}") })?;
                request.headers_mut().extend(signed);
                request.headers_mut().insert(oci::OPC_COMPARTMENT_ID, compartment.clone());
            }
            PreparedAuth::Google(tokens) => {
                // `Upstream` fetched it just before.
                let Some(authorization) = tokens.current(now()) else {
                    return Err(AttemptError::ConnectFailed { detail: "no service account token".into() });
                };
                headers.insert(AUTHORIZATION, authorization);
            }
        }
        Ok(())
    }
}

/// The codec's format for config's.
pub(super) fn oci_format(format: OciFormat) -> oci_codec::Format {
    match format {
        OciFormat::Cohere => oci_codec::Format::Cohere,
        OciFormat::Generic => oci_codec::Format::Generic,
    }
}
