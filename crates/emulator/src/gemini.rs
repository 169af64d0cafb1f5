//! Google's Gemini API and Vertex AI: `POST …/models/{model}:generateContent` and
//! `…/models/{model}:streamGenerateContent?alt=sse` (any prefix before `/models/` is served:
//! the Gemini API's `/v1beta`, Vertex AI's `/v1/projects/…/publishers/google`), the model held
//! to the deployment's. Callers authenticate with an API key (`x-goog-api-key` or `?key=`) or
//! an OAuth access token (`Authorization: Bearer`), as the cloud is configured. Requests are
//! decoded with `gemini_codec`; answers are `GenerateContentResponse` JSON or its SSE chunks;
//! errors are Google's `{"error": {"code", "message", "status"}}`: a wrong or missing
//! credential is 401 `UNAUTHENTICATED`, a full deployment 429 `RESOURCE_EXHAUSTED`, a prompt
//! over the window 400 `INVALID_ARGUMENT` "The input token count … exceeds the maximum number
//! of tokens allowed …", and the content filter a blocked prompt (`promptFeedback.blockReason:
//! SAFETY`, no candidates), as Gemini answers one. A cloud with a `service_account` is served
//! its token endpoint here too (`POST …/token`, the key's `token_uri` pointed at the
//! deployment): a JWT signed by the account's key gets an access token, good for an hour or
//! until [`EmulatedDeployment::expire_tokens`]. Embeddings (`…:batchEmbedContents`, Vertex
//! AI's `…:predict`) are `embeddings.rs`', authenticated the same way.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::request::Parts;
use http::{Method, StatusCode, header};
use serde_json::json;
use switchyard_core::config::ServiceAccount;
use switchyard_providers::google::TokenIssuer;
use switchyard_wire::canonical::{ErrorClass, ErrorObject, StreamEvent};
use switchyard_wire::gemini_codec;

use crate::answer::{Plan, Refusal};
use crate::auth::Rule;
use crate::embeddings::{self, Embedded};
use crate::server::{self, Reply, Speaker, json_response, respond, respond_with};
use crate::stream::{HeldEnd, WriteEvent};
use crate::{EmulatedDeployment, Seen, conversation};

const UNAUTHENTICATED: &str = "Request had invalid authentication credentials. Expected OAuth 2 access token, \
    login cookie or other valid authentication credential. \
    See https://developers.google.com/identity/sign-in/web/devconsole-project.";

/// How long an issued access token is good for, as Google's are.
const TOKEN_LIFETIME: Duration = Duration::from_secs(3599);

/// A service account's token endpoint: the check of its assertions, and the tokens issued
/// with when each expires.
pub(crate) struct Issued {
    /// `None`: the configured key is unusable, and nothing is issued.
    issuer: Option<TokenIssuer>,
    tokens: Mutex<Vec<(String, SystemTime)>>,
    next: AtomicU64,
}

impl Issued {
    pub(crate) fn new(account: &ServiceAccount) -> Issued {
        Issued { issuer: TokenIssuer::new(account).ok(), tokens: Mutex::new(Vec::new()), next: AtomicU64::new(1) }
    }

    /// Whether `token` was issued here and is still good at `now`.
    pub(crate) fn holds(&self, token: &str, now: SystemTime) -> bool {
        self.tokens.lock().is_ok_and(|tokens| tokens.iter().any(|(t, until)| t == token && now < *until))
    }

    pub(crate) fn count(&self) -> u64 {
        self.next.load(Ordering::Relaxed) - 1
    }

    /// Every token issued so far expires now: the next request with one is refused (401).
    pub(crate) fn expire(&self) {
        if let Ok(mut tokens) = self.tokens.lock() {
            tokens.clear();
        }
    }

    /// Answers a token request (Google's `jwt-bearer` grant) made at `now`.
    fn issue(&self, form: &[u8], now: SystemTime) -> Reply {
        let checked = match &self.issuer {
            Some(issuer) => issuer.check(form, now).map_err(|e| e.to_string()),
            None => Err("invalid_grant: the service account's key is not usable".to_owned()),
        };
        if let Err(e) = checked {
            let (error, description) = e.split_once(": ").unwrap_or(("invalid_grant", e.as_str()));
            let body = json!({"error": error, "error_description": description});
            return respond(StatusCode::BAD_REQUEST, "application/json", None, body.to_string().into_bytes());
        }
        let token = format!("ya29.emulated-{}", self.next.fetch_add(1, Ordering::Relaxed));
        if let Ok(mut tokens) = self.tokens.lock() {
            tokens.retain(|(_, until)| now < *until);
            tokens.push((token.clone(), now + TOKEN_LIFETIME));
        }
        let body = json!({"access_token": token, "expires_in": TOKEN_LIFETIME.as_secs(), "token_type": "Bearer"});
        respond(StatusCode::OK, "application/json", None, body.to_string().into_bytes())
    }
}

pub(crate) async fn handle(dep: Arc<EmulatedDeployment>, parts: &Parts, body: Bytes) -> Reply {
    if let Rule::GoogleAccount(issued) = &dep.auth
        && parts.method == Method::POST
        && parts.uri.path().ends_with("/token")
    {
        return issued.issue(&body, SystemTime::now());
    }
    if let Some((model, vertex)) = embedding_route(parts.uri.path()).filter(|_| parts.method == Method::POST) {
        return embed(&dep, parts, &model, vertex, &body).await;
    }
    let Some((model, stream)) = route(parts.uri.path()).filter(|_| parts.method == Method::POST) else {
        dep.record(Seen::BadRequest, false, false);
        return error(StatusCode::NOT_FOUND, "NOT_FOUND", "Method not found.", None);
    };
    if dep.auth.check(parts, &body, SystemTime::now()).is_err() {
        dep.record(Seen::Unauthorized, stream, false);
        return error(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", UNAUTHENTICATED, None);
    }
    if stream && query(parts, "alt") != Some("sse") {
        dep.record(Seen::BadRequest, stream, false);
        return error(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", "only alt=sse streams are emulated", None);
    }
    if model != dep.model {
        dep.record(Seen::BadRequest, stream, false);
        let message = format!("models/{model} is not found for API version v1beta, or is not supported.");
        return error(StatusCode::NOT_FOUND, "NOT_FOUND", &message, None);
    }
    let faults = dep.active_faults();
    if let Some(reply) = server::hang_up(&dep, &faults).await {
        return reply;
    }
    let request = match gemini_codec::decode_request(&body, &model, stream) {
        Ok(r) => r,
        Err(e) => {
            dep.record(Seen::BadRequest, stream, false);
            return error(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", &e.message, None);
        }
    };
    let ask = conversation::ask(&request);
    server::chat(dep, Gemini { stream }, ask, faults).await
}

/// `…/models/{model}:generateContent` → the model, and whether it streams.
fn route(path: &str) -> Option<(String, bool)> {
    let rest = &path[path.rfind("/models/")? + "/models/".len()..];
    let (model, method) = rest.rsplit_once(':')?;
    let stream = match method {
        "generateContent" => false,
        "streamGenerateContent" => true,
        _ => return None,
    };
    (!model.is_empty() && !model.contains('/')).then(|| (model.to_owned(), stream))
}

/// `…/models/{model}:batchEmbedContents` (the Gemini API) or `…:predict` (Vertex AI) → the
/// model, and whether it is Vertex AI's.
fn embedding_route(path: &str) -> Option<(String, bool)> {
    let rest = &path[path.rfind("/models/")? + "/models/".len()..];
    let (model, method) = rest.rsplit_once(':')?;
    let vertex = match method {
        "batchEmbedContents" => false,
        "predict" => true,
        _ => return None,
    };
    (!model.is_empty() && !model.contains('/')).then(|| (model.to_owned(), vertex))
}

/// Embeddings (`embeddings.rs`), authenticated as generation is, refusals in Google's shape.
async fn embed(dep: &EmulatedDeployment, parts: &Parts, model: &str, vertex: bool, body: &[u8]) -> Reply {
    if dep.auth.check(parts, body, SystemTime::now()).is_err() {
        dep.record(Seen::Unauthorized, false, false);
        return error(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", UNAUTHENTICATED, None);
    }
    if model != dep.model {
        dep.record(Seen::BadRequest, false, false);
        let message = format!("models/{model} is not found for API version v1beta, or is not supported.");
        return error(StatusCode::NOT_FOUND, "NOT_FOUND", &message, None);
    }
    let faults = dep.active_faults();
    if let Some(reply) = server::hang_up(dep, &faults).await {
        return reply;
    }
    embeddings::take_time(dep).await;
    let embedded = if vertex {
        embeddings::vertex(dep, model, body, &faults)
    } else {
        embeddings::gemini(dep, model, body, &faults)
    };
    match embedded {
        Embedded::Answer { body, .. } => json_response(StatusCode::OK, body.to_string().into_bytes()),
        Embedded::Invalid(message) => error(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", &message, None),
        Embedded::Status { status, retry_after } => status_error(status, retry_after),
    }
}

/// A query parameter's value (as given, not decoded).
pub(crate) fn query<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts.uri.query()?.split('&').find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
}

/// An error as Google writes one.
fn error(status: StatusCode, kind: &str, message: &str, retry_after: Option<Duration>) -> Reply {
    let body = json!({"error": {"code": status.as_u16(), "message": message, "status": kind}});
    respond_with(status, "application/json", retry_after, &[], body.to_string().into_bytes())
}

/// An emulated status's error, with the Google status name its code has.
fn status_error(status: u16, retry_after: Option<Duration>) -> Reply {
    let class = ErrorClass::of_status(Some(status), false);
    let (_, body) = gemini_codec::encode_error(&ErrorObject::new(class, format!("emulated error {status}")));
    let mut body = body;
    body["error"]["code"] = json!(status);
    respond(server::status(status), "application/json", retry_after, body.to_string().into_bytes())
}

fn response_id(plan: &Plan) -> String {
    format!("{:022x}", plan.nonce)
}

/// A `generateContent` answer's writer; `stream` says which method was called (a refusal that
/// is an answer, a blocked prompt, is written in its shape).
struct Gemini {
    stream: bool,
}

impl Speaker for Gemini {
    type Encoder = HeldEnd<gemini_codec::StreamEncoder>;
    const IN_BAND_FILTER: bool = false;
    const TOOL_ID_PREFIX: &'static str = "call_";

    fn refuse(&self, _dep: &EmulatedDeployment, refusal: &Refusal) -> Reply {
        match *refusal {
            Refusal::Capacity { retry_after } => error(
                StatusCode::TOO_MANY_REQUESTS,
                "RESOURCE_EXHAUSTED",
                "Resource has been exhausted (e.g. check quota).",
                Some(retry_after),
            ),
            Refusal::Status { status, retry_after } => status_error(status, retry_after),
            Refusal::ContextLength { input, max_tokens: _, window } => {
                let message = format!(
                    "The input token count ({}) exceeds the maximum number of tokens allowed ({window}).",
                    input.max(window.saturating_add(1))
                );
                error(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", &message, None)
            }
            Refusal::ContentFilter => {
                let blocked = json!({"promptFeedback": {"blockReason": "SAFETY", "safetyRatings": [
                    {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": true}]},
                    "usageMetadata": {"promptTokenCount": 0, "totalTokenCount": 0}});
                if self.stream {
                    let body = format!("data: {blocked}\r\n\r\n").into_bytes();
                    respond(StatusCode::OK, "text/event-stream", None, body)
                } else {
                    respond(StatusCode::OK, "application/json", None, blocked.to_string().into_bytes())
                }
            }
            Refusal::PrefillRejected => error(
                StatusCode::BAD_REQUEST,
                "INVALID_ARGUMENT",
                "Please ensure that multiturn requests end with a user role or a function response.",
                None,
            ),
        }
    }

    fn whole(&self, dep: &EmulatedDeployment, plan: &Plan) -> Reply {
        let response = plan.answer.response(response_id(plan), dep.model.clone());
        let body = gemini_codec::encode_response(&response).to_string().into_bytes();
        respond(StatusCode::OK, "application/json", None, body)
    }

    fn stream(&self, dep: &EmulatedDeployment, plan: &Plan) -> (Self::Encoder, StreamEvent, http::response::Builder) {
        let start = StreamEvent::MessageStart { id: response_id(plan), model: dep.model.clone(), usage: None };
        let head = http::Response::builder()
            .header(header::CONTENT_TYPE, "text/event-stream")
            .header(header::CACHE_CONTROL, "no-cache");
        (HeldEnd::new(gemini_codec::StreamEncoder::new(), MALFORMED), start, head)
    }
}

impl WriteEvent for gemini_codec::StreamEncoder {
    fn write(&mut self, event: &StreamEvent, out: &mut Vec<u8>) {
        self.encode(event, out);
    }
}

/// A Gemini chunk cut in the middle of its text.
const MALFORMED: &[u8] = b"data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\n\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(route("/v1beta/models/gemini-2.5-flash:generateContent"), Some(("gemini-2.5-flash".into(), false)));
        assert_eq!(
            route("/v1/projects/p/locations/us-central1/publishers/google/models/gemini-2.5-pro:streamGenerateContent"),
            Some(("gemini-2.5-pro".into(), true))
        );
        assert_eq!(route("/v1beta/models/m:countTokens"), None);
        assert_eq!(route("/v1beta/models/:generateContent"), None);
        assert_eq!(route("/v1beta/generateContent"), None);
    }
}
