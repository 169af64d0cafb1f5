//! The upstream protocols behind one closed enum: for each deployment, how an attempt's request
//! is built (URL, auth, body in the deployment's protocol) and how a refusal is classified.
//!
//! The gateway always hands over an OpenAI Chat Completions body (the byte pass-through's
//! shape). An OpenAI or Azure OpenAI deployment gets it as it is: the fast path (Azure differs
//! only in its URLs and auth). An Anthropic, Bedrock, Gemini or OCI native one
//! gets it decoded into the canonical model and encoded in its own protocol; what that protocol
//! cannot express is a 400 naming the parameter ([`AttemptError::ClientError`], returned to the
//! caller), never dropped.

use std::time::SystemTime;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderName, HeaderValue};
use http::{Method, Uri};
use http_body_util::Full;
use serde_json::Value;
use switchyard_core::AttemptError;
use switchyard_core::config::{Config, Deployment, OciCredentials, OciFormat, Protocol, ServiceAccount};
use switchyard_wire::canonical::{ErrorClass, ErrorObject, Part, Request as Canonical, Role, Unsupported};
use switchyard_wire::embed_codec::{Api as EmbedApi, Embed};
use switchyard_wire::{anthropic_codec, bedrock_codec, gemini_codec, oci_codec, openai_codec};

use crate::google::TokenSource;
use crate::oci;
use crate::sigv4::{self, BEDROCK, Credentials, Scope};
use crate::{ClientBuildError, Operation, classify_status};

/// The field of a gateway body that carries an Anthropic caller's own request, when it asks for
/// what OpenAI's protocol cannot express (`top_k`, a prefill, `thinking`, ...). The rest of the
/// body is that request without those, for routing; Anthropic and Bedrock deployments are sent
/// the carried request whole, and OpenAI deployments are passed over.
pub const CARRIED_ANTHROPIC: &str = "x_switchyard_anthropic";

/// `max_tokens` sent to Anthropic when the caller gave none: Anthropic requires one.
pub const DEFAULT_ANTHROPIC_MAX_TOKENS: u32 = 4096;

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
                let format = match d.oci_format {
                    Some(OciFormat::Cohere) => oci_codec::Format::Cohere,
                    Some(OciFormat::Generic) => oci_codec::Format::Generic,
                    None => oci_codec::Format::of_model(&d.model),
                };
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

/// A deployment's prepared target: its URLs and auth, built once.
#[derive(Debug)]
pub(crate) struct Target {
    pub(crate) protocol: Protocol,
    pub(crate) model: String,
    /// Chat (OpenAI, Anthropic) or Converse (Bedrock).
    chat: Uri,
    /// ConverseStream (Bedrock); the chat URL otherwise.
    stream: Uri,
    pub(crate) embeddings: Uri,
    /// The embeddings API behind `embeddings` when it is not OpenAI's (`embed.rs`).
    pub(crate) embed: Option<EmbedApi>,
    auth: PreparedAuth,
    /// An OCI native deployment's compartment and request format.
    oci: Option<(String, oci_codec::Format)>,
}

#[derive(Debug)]
enum PreparedAuth {
    None,
    Header(HeaderName, HeaderValue),
    Anthropic { key: Option<HeaderValue>, version: HeaderValue },
    Aws { credentials: Credentials, region: String },
    Oci { signer: oci::Signer, compartment: HeaderValue },
    Google(TokenSource),
}

impl Target {
    pub(crate) fn new(e: &Endpoint) -> Result<Target, ClientBuildError> {
        let uri = |path: &str| {
            format!("{}{path}", e.base)
                .parse::<Uri>()
                .map_err(|err| ClientBuildError::Url(e.base.clone(), err.to_string()))
        };
        let sensitive = |value: String| {
            let mut value = HeaderValue::from_str(&value)
                .map_err(|_| ClientBuildError::Client("a credential holds characters a header cannot".into()))?;
            value.set_sensitive(true);
            Ok::<_, ClientBuildError>(value)
        };
        let auth = match &e.auth {
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
        };
        let oci = match &e.auth {
            Auth::OciNative(native) => Some((native.compartment.clone(), native.format)),
            _ if e.protocol == Protocol::Oci => {
                return Err(ClientBuildError::Client(
                    "an oci deployment needs its compartment (Auth::OciNative)".into(),
                ));
            }
            _ => None,
        };
        let (chat, stream, embeddings) = match e.protocol {
            Protocol::OpenAi => (uri("/chat/completions")?, uri("/chat/completions")?, uri("/embeddings")?),
            // Azure's v1 API: OpenAI's paths under `/openai/v1`, no api-version, the deployment
            // named by the body's `model`.
            Protocol::AzureOpenAi if e.base.ends_with("/openai/v1") => {
                (uri("/chat/completions")?, uri("/chat/completions")?, uri("/embeddings")?)
            }
            Protocol::AzureOpenAi => {
                let version = match &e.auth {
                    Auth::Azure { api_version, .. } => api_version.as_str(),
                    _ => switchyard_core::config::DEFAULT_AZURE_API_VERSION,
                };
                let query = format!("?api-version={}", path_segment(version));
                let deployment = format!("/openai/deployments/{}", path_segment(&e.model));
                let chat = uri(&format!("{deployment}/chat/completions{query}"))?;
                (chat.clone(), chat, uri(&format!("{deployment}/embeddings{query}"))?)
            }
            Protocol::Anthropic => (uri("/messages")?, uri("/messages")?, uri("/messages")?),
            Protocol::Bedrock => {
                let model = path_segment(&e.model);
                let converse = uri(&format!("/model/{model}/converse"))?;
                (converse, uri(&format!("/model/{model}/converse-stream"))?, uri(&format!("/model/{model}/invoke"))?)
            }
            // Gemini API (`…/v1beta`) and Vertex AI (`…/publishers/google`) alike.
            Protocol::Gemini => {
                let model = format!("/models/{}", path_segment(&e.model));
                let generate = uri(&format!("{model}:generateContent"))?;
                // Embeddings: Vertex AI's `predict`, the Gemini API's `batchEmbedContents`.
                let embed = match EmbedApi::google(&e.base, &e.model) {
                    EmbedApi::Vertex { .. } => uri(&format!("{model}:predict"))?,
                    _ => uri(&format!("{model}:batchEmbedContents"))?,
                };
                (generate, uri(&format!("{model}:streamGenerateContent?alt=sse"))?, embed)
            }
            // OCI's native API: one action for plain and streamed chat (`isStream` in the body).
            Protocol::Oci => {
                let chat = uri("/20231130/actions/chat")?;
                (chat.clone(), chat, uri("/20231130/actions/embedText")?)
            }
        };
        let embed = match e.protocol {
            Protocol::Bedrock => EmbedApi::bedrock(&e.model),
            Protocol::Gemini => Some(EmbedApi::google(&e.base, &e.model)),
            Protocol::Oci => Some(EmbedApi::oci(&e.model)),
            _ => None,
        };
        Ok(Target { protocol: e.protocol, model: e.model.clone(), chat, stream, embeddings, embed, auth, oci })
    }

    /// An OCI native deployment's compartment and request format (`Target::new` holds one for
    /// every `oci` deployment).
    fn oci_target(&self) -> (&str, oci_codec::Format) {
        match &self.oci {
            Some((compartment, format)) => (compartment, *format),
            None => ("", oci_codec::Format::of_model(&self.model)),
        }
    }

    /// The body of an embeddings call of `embed`'s inputs in `range` in `api` (`embed.rs`); an
    /// OCI deployment's names its compartment.
    pub(crate) fn embed_body(&self, api: EmbedApi, embed: &Embed, range: std::ops::Range<usize>) -> Bytes {
        let mut body = api.encode(&self.model, embed, range);
        if let (Some((compartment, _)), Some(fields)) = (&self.oci, body.as_object_mut()) {
            fields.insert("compartmentId".into(), Value::String(compartment.clone()));
        }
        Bytes::from(body.to_string())
    }

    /// A service account's tokens, when the deployment authenticates with one.
    pub(crate) fn tokens(&self) -> Option<&TokenSource> {
        match &self.auth {
            PreparedAuth::Google(tokens) => Some(tokens),
            _ => None,
        }
    }

    /// The request for one attempt: `body` is an OpenAI body, translated when the deployment
    /// speaks another protocol; and the whitespace cut from the end of its prefill. The clock
    /// is read only to sign.
    pub(crate) fn build(
        &self,
        operation: Operation,
        body: Bytes,
        now: impl FnOnce() -> SystemTime,
    ) -> Result<(http::Request<Full<Bytes>>, String), AttemptError> {
        let mut trimmed = String::new();
        let (uri, body) = match (self.protocol, operation) {
            (Protocol::OpenAi | Protocol::AzureOpenAi, Operation::ChatCompletions) => (self.chat.clone(), body),
            (Protocol::OpenAi | Protocol::AzureOpenAi, Operation::Embeddings) => (self.embeddings.clone(), body),
            (_, Operation::Embeddings) => {
                let detail = format!("{} deployments serve no embeddings", self.protocol.name());
                return Err(AttemptError::InvalidResponse { detail });
            }
            (Protocol::Anthropic, Operation::ChatCompletions) => {
                let mut request = canonical(&body)?;
                request.max_tokens = request.max_tokens.or(Some(DEFAULT_ANTHROPIC_MAX_TOKENS));
                trimmed = trim_prefill(&mut request);
                (self.chat.clone(), encoded(anthropic_codec::encode_request(&request))?)
            }
            (Protocol::Bedrock, Operation::ChatCompletions) => {
                let mut request = canonical(&body)?;
                // Claude on Bedrock refuses a prefill ending in whitespace, as Anthropic does.
                trimmed = trim_prefill(&mut request);
                let uri = if request.stream { self.stream.clone() } else { self.chat.clone() };
                (uri, encoded(bedrock_codec::encode_request(&request))?)
            }
            (Protocol::Gemini, Operation::ChatCompletions) => {
                let request = canonical(&body)?;
                let uri = if request.stream { self.stream.clone() } else { self.chat.clone() };
                (uri, encoded(gemini_codec::encode_request(&request))?)
            }
            (Protocol::Oci, Operation::ChatCompletions) => {
                let request = canonical(&body)?;
                let (compartment, format) = self.oci_target();
                let chat = oci_codec::encode_request(&request, format).map_err(refusal)?;
                let details = oci_codec::chat_details(compartment, &self.model, chat);
                (self.chat.clone(), Bytes::from(details.to_string()))
            }
        };
        Ok((self.request(uri, body, now)?, trimmed))
    }

    /// A POST of `body` (JSON) to `uri` with the deployment's auth: a header, or a signature
    /// made at `now()`.
    pub(crate) fn request(
        &self,
        uri: Uri,
        body: Bytes,
        now: impl FnOnce() -> SystemTime,
    ) -> Result<http::Request<Full<Bytes>>, AttemptError> {
        let unbuildable = |e: http::Error| AttemptError::ConnectFailed { detail: e.to_string() };
        // The body is kept aside only to sign it.
        let signing = matches!(self.auth, PreparedAuth::Aws { .. } | PreparedAuth::Oci { .. }).then(|| body.clone());
        let mut request = http::Request::post(uri)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(Full::new(body))
            .map_err(unbuildable)?;
        let headers = request.headers_mut();
        match &self.auth {
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
        Ok(request)
    }

    /// A refusal (a non-success status) classified from the protocol's error body.
    pub(crate) fn classify(
        &self,
        status: u16,
        retry_after: Option<std::time::Duration>,
        error_type: Option<&str>,
        body: &[u8],
    ) -> AttemptError {
        let error = match self.protocol {
            // Azure's error bodies are OpenAI's shape; its content filter is `content_filter`
            // with `innererror.code: ResponsibleAIPolicyViolation`, which both read.
            Protocol::OpenAi | Protocol::AzureOpenAi => return classify_status(status, retry_after, body),
            Protocol::Anthropic => anthropic_codec::decode_error(status, body),
            Protocol::Bedrock => bedrock_codec::decode_error(status, error_type, body),
            Protocol::Gemini => gemini_codec::decode_error(status, body),
            Protocol::Oci => oci_codec::decode_error(status, body),
        };
        match status {
            // Anthropic's 529 is `overloaded_error`: out of capacity, like a 429.
            429 | 529 => AttemptError::RateLimited { retry_after },
            401 | 403 | 404 => AttemptError::UpstreamRefused { status },
            // Bedrock's ModelTimeoutException (408) and ModelErrorException (424) are the
            // model's failures, not the caller's.
            408 | 424 => AttemptError::ServerError { status },
            // Payment required (Anthropic's `billing_error`): the account, not the request.
            402 => AttemptError::UpstreamRefused { status },
            400..=499 => match error.class {
                ErrorClass::RateLimit | ErrorClass::Overloaded => AttemptError::RateLimited { retry_after },
                // Our credentials or model id are wrong, whatever the status says: the deployment
                // is misconfigured, and it is not the caller's doing.
                ErrorClass::Authentication | ErrorClass::Permission | ErrorClass::NotFound => {
                    AttemptError::UpstreamRefused { status }
                }
                _ if misconfigured(&error.message) => AttemptError::UpstreamRefused { status },
                _ => by_class(error, status),
            },
            500..=599 => AttemptError::ServerError { status },
            _ => AttemptError::InvalidResponse { detail: format!("unexpected status {status}") },
        }
    }
}

/// Which of `protocols` (`Protocol::bit`s) cannot express `body`, an OpenAI body, as bits; and
/// why the first of them cannot. OpenAI's own protocol always can (its bodies pass through), and
/// so can Azure OpenAI's ([`Protocol::PASS_THROUGH`]).
/// A body that does not decode is left for the attempt to report.
pub fn untranslatable(body: &[u8], protocols: u8) -> (u8, Option<Unsupported>) {
    let (mut bits, mut first) = (0, None);
    if protocols & !Protocol::PASS_THROUGH == 0 {
        return (0, None);
    }
    let mut request = match canonical(body) {
        Ok(request) => request,
        // What the strict codec cannot read can be sent only as it is: to OpenAI (and Azure
        // OpenAI) deployments.
        Err(_) => {
            let bits = protocols & !Protocol::PASS_THROUGH;
            use switchyard_wire::canonical::Protocol as Wire;
            let target = if bits & Protocol::Bedrock.bit() != 0 {
                Wire::Bedrock
            } else if bits & Protocol::Gemini.bit() != 0 {
                Wire::Gemini
            } else if bits & Protocol::Oci.bit() != 0 {
                Wire::Oci
            } else {
                Wire::Anthropic
            };
            let reason = "the request uses a form that cannot be translated (read by OpenAI deployments only)";
            return (bits, Some(Unsupported { param: "messages".into(), target, reason }));
        }
    };
    let mut check = |protocol: Protocol, result: Result<Value, Unsupported>| {
        if let Err(e) = result {
            bits |= protocol.bit();
            first.get_or_insert(e);
        }
    };
    if protocols & Protocol::Bedrock.bit() != 0 {
        check(Protocol::Bedrock, bedrock_codec::encode_request(&request));
    }
    if protocols & Protocol::Gemini.bit() != 0 {
        check(Protocol::Gemini, gemini_codec::encode_request(&request));
    }
    // GENERIC, what most OCI models speak; what only Cohere's format cannot say is refused by
    // the attempt (a 400 naming it).
    if protocols & Protocol::Oci.bit() != 0 {
        check(Protocol::Oci, oci_codec::encode_request(&request, oci_codec::Format::Generic));
    }
    if protocols & Protocol::Anthropic.bit() != 0 {
        request.max_tokens = request.max_tokens.or(Some(DEFAULT_ANTHROPIC_MAX_TOKENS));
        trim_prefill(&mut request);
        check(Protocol::Anthropic, anthropic_codec::encode_request(&request));
    }
    (bits, first)
}

/// Refusals that say the deployment is set up wrong, under a status that does not: Bedrock's
/// `ValidationException` for a model id it does not know, or one that needs an inference
/// profile; Anthropic's 400 for an account out of credit; Gemini's 400 for a bad API key or
/// a region the API is not offered in.
fn misconfigured(message: &str) -> bool {
    const SIGNS: [&str; 5] = [
        "model identifier is invalid",
        "with on-demand throughput isn",
        "credit balance is too low",
        "api key not valid",
        "user location is not supported",
    ];
    let message = message.to_ascii_lowercase();
    SIGNS.iter().any(|sign| message.contains(sign))
}

/// An error reported inside a stream (no status of its own), classified by its class.
pub(crate) fn in_stream(error: ErrorObject) -> AttemptError {
    match error.class {
        ErrorClass::RateLimit | ErrorClass::Overloaded => AttemptError::RateLimited { retry_after: None },
        ErrorClass::Server => AttemptError::ServerError { status: 500 },
        ErrorClass::Authentication | ErrorClass::Permission | ErrorClass::NotFound => {
            AttemptError::UpstreamRefused { status: 403 }
        }
        _ => by_class(error, 400),
    }
}

fn by_class(error: ErrorObject, status: u16) -> AttemptError {
    let ErrorObject { class, message, code, .. } = error;
    match class {
        ErrorClass::ContextLength => AttemptError::ContextLengthExceeded { message },
        ErrorClass::ContentFilter => AttemptError::ContentFiltered { message, code },
        _ => AttemptError::ClientError { status, message, code },
    }
}

/// The gateway's OpenAI body in the canonical model. A continuation's
/// `continue_final_message` (vLLM's way to continue a prefill) becomes the model's `prefill`.
/// A carried Anthropic request ([`CARRIED_ANTHROPIC`]) is the request, with the body's model,
/// stream, `max_tokens` and continuation.
fn canonical(body: &[u8]) -> Result<Canonical, AttemptError> {
    let refused = |message: String| AttemptError::ClientError {
        status: 400,
        message,
        code: Some("invalid_request_error".into()),
    };
    let mut request = openai_codec::decode_request(body).map_err(|e| refused(e.message))?;
    let mut continues = false;
    let mut carried = None;
    if let Some(extra) = &mut request.extra {
        let fields = &mut extra.fields;
        continues = fields.remove("continue_final_message") == Some(Value::Bool(true));
        fields.remove("add_generation_prompt");
        carried = fields.remove(CARRIED_ANTHROPIC);
        if fields.is_empty() {
            request.extra = None;
        }
    }
    let Some(carried) = carried else {
        request.prefill |= continues;
        return Ok(request);
    };
    let mut own = anthropic_codec::decode_request(carried.to_string().as_bytes()).map_err(|e| refused(e.message))?;
    own.model = std::mem::take(&mut request.model);
    own.stream = request.stream;
    own.include_usage = request.include_usage;
    own.max_tokens = request.max_tokens.or(own.max_tokens);
    if continues {
        // The delivered text is the routing body's last message: it continues the caller's
        // own prefill, if there was one, or starts one.
        let delivered: String = request
            .messages
            .last()
            .into_iter()
            .flat_map(|m| &m.content)
            .filter_map(|p| match p {
                Part::Text(text) => Some(text.as_str()),
                _ => None,
            })
            .collect();
        match own.messages.last_mut() {
            Some(last) if own.prefill && last.role == Role::Assistant => match last.content.last_mut() {
                Some(Part::Text(text)) => text.push_str(&delivered),
                _ => last.content.push(Part::Text(delivered)),
            },
            _ => own.messages.push(switchyard_wire::canonical::Message {
                role: Role::Assistant,
                content: vec![Part::Text(delivered)],
            }),
        }
        own.prefill = true;
    }
    Ok(own)
}

/// Cuts the trailing whitespace off a prefill's text, which Anthropic refuses ("final assistant
/// content cannot end with trailing whitespace"), and returns what was cut.
fn trim_prefill(request: &mut Canonical) -> String {
    if !request.prefill {
        return String::new();
    }
    let Some(last) = request.messages.last_mut().filter(|m| m.role == Role::Assistant) else {
        return String::new();
    };
    let Some(Part::Text(text)) = last.content.last_mut() else { return String::new() };
    let kept = text.trim_end().len();
    let cut = text.split_off(kept);
    if text.is_empty() {
        // A prefill of only whitespace is no prefill: the model starts the answer.
        last.content.pop();
        if last.content.is_empty() {
            request.messages.pop();
            request.prefill = false;
        }
    }
    cut
}

/// An encoded body, or the 400 that names what the protocol cannot express.
fn encoded(result: Result<Value, Unsupported>) -> Result<Bytes, AttemptError> {
    result.map(|value| Bytes::from(value.to_string())).map_err(refusal)
}

/// The 400 that names what the protocol cannot express.
fn refusal(e: Unsupported) -> AttemptError {
    AttemptError::ClientError { status: 400, message: e.to_string(), code: Some("unsupported_parameter".into()) }
}

/// A path segment percent-encoded as botocore does: all but unreserved characters (a model
/// id's `:` becomes `%3A`).
fn path_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deployment set up wrong (a model id Bedrock does not know, an Anthropic account out of
    /// credit) fails over and counts against it, whatever status it came with.
    #[test]
    fn misconfiguration_is_the_deployments_fault_under_any_status() {
        let target = |protocol| {
            let auth = Auth::None;
            let e = Endpoint { base: "http://h".into(), protocol, auth, model: "m".into(), region: "us-east-1".into() };
            Target::new(&e).expect("target")
        };
        let bedrock = target(Protocol::Bedrock);
        let invalid = br#"{"message":"The provided model identifier is invalid."}"#;
        let refused = bedrock.classify(400, None, Some("ValidationException"), invalid);
        assert_eq!(refused, AttemptError::UpstreamRefused { status: 400 });
        let profile =
            br#"{"message":"Invocation of model ID anthropic.claude-x with on-demand throughput isn't supported."}"#;
        assert_eq!(
            bedrock.classify(400, None, Some("ValidationException"), profile),
            AttemptError::UpstreamRefused { status: 400 }
        );
        let anthropic = target(Protocol::Anthropic);
        let billing = br#"{"type":"error","error":{"type":"billing_error","message":"billing"}}"#;
        assert_eq!(anthropic.classify(402, None, None, billing), AttemptError::UpstreamRefused { status: 402 });
        let credit = br#"{"type":"error","error":{"type":"invalid_request_error","message":"Your credit balance is too low to access the Anthropic API."}}"#;
        assert_eq!(anthropic.classify(400, None, None, credit), AttemptError::UpstreamRefused { status: 400 });
        let plain =
            br#"{"type":"error","error":{"type":"invalid_request_error","message":"messages: field required"}}"#;
        assert!(matches!(anthropic.classify(400, None, None, plain), AttemptError::ClientError { status: 400, .. }));
    }

    #[test]
    fn model_ids_are_encoded_in_the_path() {
        assert_eq!(path_segment("us.meta.llama3-3-70b-instruct-v1:0"), "us.meta.llama3-3-70b-instruct-v1%3A0");
        assert_eq!(path_segment("arn:aws:x/y"), "arn%3Aaws%3Ax%2Fy");
    }

    #[test]
    fn a_prefill_loses_its_trailing_whitespace_for_anthropic() {
        let body =
            br#"{"model":"m","messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"Hello, \n"}],
            "continue_final_message":true}"#;
        let mut request = canonical(body).expect("decodes");
        assert_eq!(trim_prefill(&mut request), ", \n".trim_start_matches(','));
        assert_eq!(request.messages.last().map(|m| m.content.clone()), Some(vec![Part::Text("Hello,".into())]));
        let body = br#"{"model":"m","messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"  "}],
            "continue_final_message":true}"#;
        let mut request = canonical(body).expect("decodes");
        assert_eq!(trim_prefill(&mut request), "  ");
        assert!(!request.prefill && request.messages.len() == 1, "nothing left to continue from");
    }

    #[test]
    fn a_carried_anthropic_request_is_sent_whole_with_the_bodys_model_and_continuation() {
        let own = serde_json::json!({"model": "alias", "max_tokens": 64, "top_k": 5, "thinking": {"type": "enabled", "budget_tokens": 1024},
            "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Once"}]});
        let body = serde_json::json!({"model": "claude-x", "stream": true, "max_tokens": 40,
            "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Once"},
                {"role": "assistant", "content": " upon a"}],
            "continue_final_message": true, CARRIED_ANTHROPIC: own});
        let request = canonical(body.to_string().as_bytes()).expect("decodes");
        assert_eq!((request.model.as_str(), request.stream, request.max_tokens), ("claude-x", true, Some(40)));
        assert_eq!(request.sampling.top_k, Some(5));
        assert!(request.prefill);
        assert_eq!(
            request.messages.last().map(|m| m.content.clone()),
            Some(vec![Part::Text("Once upon a".into())]),
            "the delivered text continues the caller's own prefill"
        );
        let sent = anthropic_codec::encode_request(&request).expect("Anthropic can carry it all");
        assert_eq!(
            (sent["top_k"].as_u64(), sent["thinking"]["budget_tokens"].as_u64()),
            (Some(5), Some(1024)),
            "{sent}"
        );
    }

    #[test]
    fn a_continuation_becomes_a_prefill() {
        let body = br#"{"model":"m","messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"Hel"}],
            "continue_final_message":true,"add_generation_prompt":false,"stream":true}"#;
        let request = canonical(body).expect("decodes");
        assert!(request.prefill && request.extra.is_none(), "{request:?}");
    }
}
