//! OCI Generative AI's native inference API: `POST /20231130/actions/chat` (any prefix before
//! it is served), a `ChatDetails` body in the GENERIC or COHERE format, decoded with
//! `oci_codec`. The serving mode's model (or dedicated endpoint) is held to the deployment's,
//! the compartment to the cloud's, and a Cohere model to the COHERE format. Callers
//! authenticate as the cloud is configured: an OCI request signature (verified with the `oci`
//! key's public half, as the oci-openai speaker does) or an API key as a Bearer token. Answers
//! are `ChatResult` JSON or the format's SSE events (`isStream`); errors are OCI's
//! `{"code", "message"}`: a wrong or missing credential is 401 `NotAuthenticated`, an unknown
//! model or compartment 404 `NotAuthorizedOrNotFound`, a full deployment 429
//! `TooManyRequests`, a prompt over the window 400 `InvalidParameter` naming the maximum
//! context length; the content filter ends an answer (`content_filter`, Cohere's
//! `ERROR_TOXIC`). `POST /20231130/actions/embedText` makes embeddings, at most 96 `inputs` a
//! call (more is OCI's 400), the same vectors as the other clouds' for the same text.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::request::Parts;
use http::{Method, StatusCode, header};
use serde_json::{Value, json};
use switchyard_core::config::{Fault, OciFormat};
use switchyard_wire::canonical::{ErrorClass, ErrorObject, StreamEvent};
use switchyard_wire::embed_codec::Api as EmbedApi;
use switchyard_wire::oci_codec::{self, Format};

use crate::answer::{Plan, Refusal};
use crate::embeddings::Embedded;
use crate::server::{self, Reply, Speaker, respond, respond_with};
use crate::stream::{HeldEnd, WriteEvent};
use crate::{EmulatedDeployment, Seen, conversation, embeddings};

const NOT_AUTHENTICATED: &str =
    "The required information to complete authentication was not provided or was incorrect.";
const NOT_FOUND: &str = "Authorization failed or requested resource not found.";

/// The chat action's path (after any prefix).
const CHAT: &str = "/20231130/actions/chat";
/// The embeddings action's path (after any prefix).
const EMBED_TEXT: &str = "/20231130/actions/embedText";
/// The most `inputs` one `embedText` call takes.
const MAX_INPUTS: usize = 96;

pub(crate) async fn handle(dep: Arc<EmulatedDeployment>, parts: &Parts, body: Bytes) -> Reply {
    let path = parts.uri.path();
    if parts.method != Method::POST || !(path.ends_with(CHAT) || path.ends_with(EMBED_TEXT)) {
        dep.record(Seen::BadRequest, false, false);
        return error(StatusCode::NOT_FOUND, "NotAuthorizedOrNotFound", NOT_FOUND, None);
    }
    if dep.auth.check(parts, &body, SystemTime::now()).is_err() {
        dep.record(Seen::Unauthorized, false, false);
        return error(StatusCode::UNAUTHORIZED, "NotAuthenticated", NOT_AUTHENTICATED, None);
    }
    if path.ends_with(EMBED_TEXT) {
        let faults = dep.active_faults();
        if let Some(reply) = server::hang_up(&dep, &faults).await {
            return reply;
        }
        embeddings::take_time(&dep).await;
        return embed_text(&dep, &body, &faults);
    }
    let details = match oci_codec::decode_request(&body) {
        Ok(details) => details,
        Err(e) => {
            dep.record(Seen::BadRequest, false, false);
            return error(StatusCode::BAD_REQUEST, "InvalidParameter", &e.message, None);
        }
    };
    let stream = details.request.stream;
    if details.model != dep.model || dep.compartment.as_ref().is_some_and(|c| *c != details.compartment) {
        dep.record(Seen::BadRequest, stream, false);
        return error(StatusCode::NOT_FOUND, "NotAuthorizedOrNotFound", NOT_FOUND, None);
    }
    if OciFormat::of_model(&dep.model) == OciFormat::Cohere && details.format != Format::Cohere {
        dep.record(Seen::BadRequest, stream, false);
        let message = format!("Please pass in correct format of request: {} takes COHERE", dep.model);
        return error(StatusCode::BAD_REQUEST, "InvalidParameter", &message, None);
    }
    let faults = dep.active_faults();
    if let Some(reply) = server::hang_up(&dep, &faults).await {
        return reply;
    }
    let ask = conversation::ask(&details.request);
    server::chat(dep, Oci { format: details.format }, ask, faults).await
}

/// An `embedText` call: a deterministic unit vector per input (the same as every other
/// cloud's for the same text), at most [`MAX_INPUTS`] of them, at the model's own dimensions
/// (`embed_codec::Api::oci`'s: 384 for a light v3 model, 1536 for v4, else 1024); the usage
/// counted with the emulated tokenizer.
fn embed_text(dep: &EmulatedDeployment, body: &[u8], faults: &[Fault]) -> Reply {
    if let Some(Embedded::Status { status, retry_after }) = embeddings::status_fault(dep, faults) {
        return status_error(status, retry_after);
    }
    let invalid = |message: &str| {
        dep.record(Seen::BadRequest, false, false);
        error(StatusCode::BAD_REQUEST, "InvalidParameter", message, None)
    };
    let Ok(Value::Object(request)) = serde_json::from_slice::<Value>(body) else {
        return invalid("The request body is not a valid EmbedTextDetails.");
    };
    let serving = request.get("servingMode");
    let model = serving.and_then(|s| s.get("modelId").or_else(|| s.get("endpointId"))).and_then(Value::as_str);
    let compartment = request.get("compartmentId").and_then(Value::as_str);
    if model != Some(dep.model.as_str()) || dep.compartment.as_deref().is_some_and(|c| compartment != Some(c)) {
        dep.record(Seen::BadRequest, false, false);
        return error(StatusCode::NOT_FOUND, "NotAuthorizedOrNotFound", NOT_FOUND, None);
    }
    let inputs: Option<Vec<&str>> =
        request.get("inputs").and_then(Value::as_array).map(|i| i.iter().filter_map(Value::as_str).collect());
    let Some(inputs) = inputs.filter(|i| !i.is_empty()) else {
        return invalid("inputs: must be a non-empty list of strings.");
    };
    if inputs.len() > MAX_INPUTS {
        return invalid(&format!("inputs: size must be between 1 and {MAX_INPUTS}, not {}.", inputs.len()));
    }
    // `EmbedTextDetails` takes no dimensions: the model's own.
    let dimensions = EmbedApi::oci(&dep.model).oci_dimensions().unwrap_or(1024) as usize;
    let vectors: Vec<Vec<f32>> = inputs.iter().map(|t| embeddings::vector(&json!(t), dimensions)).collect();
    let tokens: u64 = inputs.iter().map(|t| embeddings::counted(t)).sum();
    dep.record(Seen::Completed, false, false);
    let body = json!({"id": format!("emb-{}", dep.name), "embeddings": vectors, "modelId": dep.model,
        "modelVersion": "1.0", "usage": {"promptTokens": tokens, "totalTokens": tokens}});
    respond(StatusCode::OK, "application/json", None, body.to_string().into_bytes())
}

/// An error as OCI writes one.
fn error(status: StatusCode, code: &str, message: &str, retry_after: Option<Duration>) -> Reply {
    let body = json!({"code": code, "message": message});
    respond_with(status, "application/json", retry_after, &[], body.to_string().into_bytes())
}

/// An emulated status's error, with the code OCI gives it.
fn status_error(status: u16, retry_after: Option<Duration>) -> Reply {
    let class = ErrorClass::of_status(Some(status), false);
    let (_, body) = oci_codec::encode_error(&ErrorObject::new(class, format!("emulated error {status}")));
    respond(server::status(status), "application/json", retry_after, body.to_string().into_bytes())
}

/// A `ChatResult`'s writer, in the request's format.
struct Oci {
    format: Format,
}

impl Speaker for Oci {
    type Encoder = HeldEnd<oci_codec::StreamEncoder>;
    const IN_BAND_FILTER: bool = true;
    const TOOL_ID_PREFIX: &'static str = "call_";

    fn refuse(&self, _dep: &EmulatedDeployment, refusal: &Refusal) -> Reply {
        match *refusal {
            Refusal::Capacity { retry_after } => error(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                "Too many requests for the user",
                Some(retry_after),
            ),
            Refusal::Status { status, retry_after } => status_error(status, retry_after),
            Refusal::ContextLength { input, max_tokens, window } => {
                let message = format!(
                    "This model's maximum context length is {window} tokens. However, you requested {} tokens \
                     ({input} in the messages, {max_tokens} in the completion).",
                    input.saturating_add(max_tokens).max(window.saturating_add(1))
                );
                error(StatusCode::BAD_REQUEST, "InvalidParameter", &message, None)
            }
            Refusal::ContentFilter => {
                error(StatusCode::BAD_REQUEST, "InvalidParameter", "Inappropriate content detected.", None)
            }
            Refusal::PrefillRejected => error(
                StatusCode::BAD_REQUEST,
                "InvalidParameter",
                "The last message must be from the USER or a TOOL.",
                None,
            ),
        }
    }

    fn whole(&self, dep: &EmulatedDeployment, plan: &Plan) -> Reply {
        let response = plan.answer.response(String::new(), dep.model.clone());
        let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let created = switchyard_core::calendar::format_utc(i64::try_from(since.as_millis()).unwrap_or(i64::MAX));
        let body = oci_codec::encode_response(&response, self.format, &created).to_string().into_bytes();
        respond(StatusCode::OK, "application/json", None, body)
    }

    fn stream(&self, _dep: &EmulatedDeployment, _plan: &Plan) -> (Self::Encoder, StreamEvent, http::response::Builder) {
        let start = StreamEvent::MessageStart { id: String::new(), model: String::new(), usage: None };
        let head = http::Response::builder()
            .header(header::CONTENT_TYPE, "text/event-stream")
            .header(header::CACHE_CONTROL, "no-cache");
        (HeldEnd::new(oci_codec::StreamEncoder::new(self.format), MALFORMED), start, head)
    }
}

impl WriteEvent for oci_codec::StreamEncoder {
    fn write(&mut self, event: &StreamEvent, out: &mut Vec<u8>) {
        self.encode(event, out);
    }
}

/// An OCI event cut in the middle of its text.
const MALFORMED: &[u8] = b"data: {\"index\":0,\"message\":{\"content\":[{\"type\":\"TEXT\",\"text\n\n";
