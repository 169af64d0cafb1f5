//! Bedrock Runtime Converse and ConverseStream: `POST …/model/{modelId}/converse` and
//! `…/model/{modelId}/converse-stream`, the model id percent-decoded from the path and held to
//! the deployment's. Callers authenticate with SigV4 (the cloud's AWS credentials, verified
//! by `auth.rs`) or a Bedrock API key as a Bearer token. Requests are decoded with
//! `bedrock_codec`; answers are Converse JSON or eventstream frames of ConverseStream
//! events; errors are `{"message"}` with their type in `x-amzn-ErrorType`: a full deployment
//! is a 429 `ThrottlingException`, a prompt over the window a `ValidationException` "Input is
//! too long for requested model.", and the content filter a `content_filtered` stop.
//! `…/model/{modelId}/invoke` of an embeddings model (Titan, Cohere) is `embeddings.rs`'.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::request::Parts;
use http::{Method, StatusCode, header};
use serde_json::json;
use switchyard_providers::eventstream::{self, Message};
use switchyard_wire::bedrock_codec::{self, EncodedEvent};
use switchyard_wire::canonical::StreamEvent;

use crate::answer::{Plan, Refusal};
use crate::auth::Denied;
use crate::embeddings::{self, Embedded};
use crate::server::{self, Reply, Speaker, respond_with};
use crate::stream::Encode;
use crate::{EmulatedDeployment, Seen, conversation};

/// What follows the type in `x-amzn-ErrorType`, for errors of the request's authentication
/// and for Bedrock's own.
const COMMON: &str = "http://internal.amazon.com/coral/com.amazon.coral.service/";
const BEDROCK: &str = "http://internal.amazon.com/coral/com.amazon.bedrock/";

const SIGNATURE_MISMATCH: &str = "The request signature we calculated does not match the signature you provided. \
    Check your AWS Secret Access Key and signing method. Consult the service documentation for details.";

pub(crate) async fn handle(dep: Arc<EmulatedDeployment>, parts: &Parts, body: Bytes) -> Reply {
    if let Err(denied) = dep.auth.check(parts, &body, SystemTime::now()) {
        dep.record(Seen::Unauthorized, false, false);
        return refused(&denied);
    }
    if let Some(model_id) = invoked(parts.uri.path()).filter(|_| parts.method == Method::POST) {
        return invoke(&dep, &model_id, &body).await;
    }
    let Some((model_id, stream)) = route(parts.uri.path()).filter(|_| parts.method == Method::POST) else {
        return error(StatusCode::NOT_FOUND, "UnknownOperationException", COMMON, "Unknown operation", None);
    };
    if model_id != dep.model {
        dep.record(Seen::BadRequest, stream, false);
        return validation("The provided model identifier is invalid.");
    }
    let faults = dep.active_faults();
    if let Some(reply) = server::hang_up(&dep, &faults).await {
        return reply;
    }
    let request = match bedrock_codec::decode_request(&body, &model_id, stream) {
        Ok(r) => r,
        Err(e) => {
            dep.record(Seen::BadRequest, stream, false);
            return validation(&e.message);
        }
    };
    let ask = conversation::ask(&request);
    server::chat(dep, Converse, ask, faults).await
}

/// `…/model/{modelId}/converse` → the model id, decoded, and whether it streams.
fn route(path: &str) -> Option<(String, bool)> {
    let rest = &path[path.find("/model/")? + "/model/".len()..];
    let (id, operation) = rest.rsplit_once('/')?;
    let stream = match operation {
        "converse" => false,
        "converse-stream" => true,
        _ => return None,
    };
    Some((percent_decode(id), stream))
}

/// `…/model/{modelId}/invoke` → the model id, decoded.
fn invoked(path: &str) -> Option<String> {
    let rest = &path[path.find("/model/")? + "/model/".len()..];
    rest.strip_suffix("/invoke").filter(|id| !id.is_empty() && !id.contains('/')).map(percent_decode)
}

/// `InvokeModel` of an embeddings model (`embeddings.rs`), its refusals as Bedrock's.
async fn invoke(dep: &EmulatedDeployment, model_id: &str, body: &[u8]) -> Reply {
    if model_id != dep.model {
        dep.record(Seen::BadRequest, false, false);
        return validation("The provided model identifier is invalid.");
    }
    let faults = dep.active_faults();
    if let Some(reply) = server::hang_up(dep, &faults).await {
        return reply;
    }
    embeddings::take_time(dep).await;
    match embeddings::bedrock(dep, body, &faults) {
        Embedded::Answer { body, tokens } => {
            let headers = [(switchyard_wire::embed_codec::BEDROCK_INPUT_TOKENS_HEADER, tokens.to_string())];
            respond_with(StatusCode::OK, "application/json", None, &headers, body.to_string().into_bytes())
        }
        Embedded::Invalid(message) => validation(&message),
        Embedded::Status { status, retry_after } => {
            let (kind, message) = exception(status);
            error(server::status(status), kind, BEDROCK, &message, retry_after)
        }
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match (bytes[i], bytes.get(i + 1).and_then(|b| hex(*b)), bytes.get(i + 2).and_then(|b| hex(*b))) {
            (b'%', Some(high), Some(low)) => {
                out.push((high * 16 + low) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An error as Bedrock writes one: its type in `x-amzn-ErrorType`, `{"message"}`.
fn error(
    status: StatusCode,
    kind: &str,
    namespace: &str,
    message: &str,
    retry_after: Option<std::time::Duration>,
) -> Reply {
    let body = json!({"message": message}).to_string().into_bytes();
    let headers = [(bedrock_codec::ERROR_TYPE_HEADER, format!("{kind}:{namespace}"))];
    respond_with(status, "application/json", retry_after, &headers, body)
}

fn validation(message: &str) -> Reply {
    error(StatusCode::BAD_REQUEST, "ValidationException", BEDROCK, message, None)
}

/// A refused caller, as AWS answers one.
fn refused(denied: &Denied) -> Reply {
    let (kind, message) = match denied {
        Denied::Missing => ("MissingAuthenticationTokenException", "Missing Authentication Token"),
        Denied::WrongKey => ("AccessDeniedException", "Authentication failed: Please make sure your API Key is valid."),
        Denied::Incomplete(message) => ("IncompleteSignatureException", message.as_str()),
        Denied::UnknownKey => ("UnrecognizedClientException", "The security token included in the request is invalid."),
        Denied::Expired(message) => ("InvalidSignatureException", message.as_str()),
        Denied::Mismatch => ("InvalidSignatureException", SIGNATURE_MISMATCH),
    };
    error(StatusCode::FORBIDDEN, kind, COMMON, message, None)
}

/// The exception Bedrock answers a status with, and its message.
fn exception(status: u16) -> (&'static str, String) {
    match status {
        429 => ("ThrottlingException", "Too many requests, please wait before trying again.".into()),
        503 => ("ServiceUnavailableException", "Bedrock is unable to process your request.".into()),
        403 => ("AccessDeniedException", format!("emulated error {status}")),
        404 => ("ResourceNotFoundException", format!("emulated error {status}")),
        408 => ("ModelTimeoutException", format!("emulated error {status}")),
        424 => ("ModelErrorException", format!("emulated error {status}")),
        400..=499 => ("ValidationException", format!("emulated error {status}")),
        _ => ("InternalServerException", format!("emulated error {status}")),
    }
}

/// A Converse answer's writer.
struct Converse;

impl Speaker for Converse {
    type Encoder = Frames;
    const IN_BAND_FILTER: bool = true;
    const TOOL_ID_PREFIX: &'static str = "tooluse_";

    fn refuse(&self, _dep: &EmulatedDeployment, refusal: &Refusal) -> Reply {
        match *refusal {
            Refusal::Capacity { retry_after } => {
                let (kind, message) = exception(429);
                error(StatusCode::TOO_MANY_REQUESTS, kind, BEDROCK, &message, Some(retry_after))
            }
            Refusal::Status { status, retry_after } => {
                let (kind, message) = exception(status);
                error(server::status(status), kind, BEDROCK, &message, retry_after)
            }
            Refusal::ContextLength { .. } => validation("Input is too long for requested model."),
            Refusal::ContentFilter => validation("The request was blocked by the content filter."),
            Refusal::PrefillRejected => validation(
                "A conversation must end with a user message. Try again with a conversation that ends with a user message.",
            ),
        }
    }

    fn whole(&self, _dep: &EmulatedDeployment, plan: &Plan) -> Reply {
        let response = plan.answer.response(String::new(), String::new());
        let body = bedrock_codec::encode_response(&response).to_string().into_bytes();
        respond_with(StatusCode::OK, "application/json", None, &[("x-amzn-requestid", request_id(plan))], body)
    }

    fn stream(&self, _dep: &EmulatedDeployment, plan: &Plan) -> (Frames, StreamEvent, http::response::Builder) {
        let start = StreamEvent::MessageStart { id: String::new(), model: String::new(), usage: None };
        let head = http::Response::builder()
            .header(header::CONTENT_TYPE, "application/vnd.amazon.eventstream")
            .header("x-amzn-requestid", request_id(plan));
        (Frames { encoder: bedrock_codec::StreamEncoder::new(), end: Vec::new() }, start, head)
    }
}

/// A request id in AWS's UUID shape.
fn request_id(plan: &Plan) -> String {
    let n = plan.nonce;
    format!("{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}", n >> 8 & 0xffff_ffff, n & 0xffff, n >> 4 & 0xfff, n & 0xfff, n)
}

/// ConverseStream events in eventstream frames. The end (`messageStop` and `metadata`, what
/// the answer's `MessageDelta` is written as) is held until the stream's `MessageStop`, so
/// that a stream that never ends lacks its `messageStop`.
struct Frames {
    encoder: bedrock_codec::StreamEncoder,
    end: Vec<EncodedEvent>,
}

fn frame(event: &EncodedEvent, out: &mut Vec<u8>) {
    let message = if event.exception {
        Message::new_exception(event.event_type, event.payload.clone())
    } else {
        Message::new_event(event.event_type, event.payload.clone())
    };
    out.extend(eventstream::encode(&message).unwrap_or_default());
}

impl Encode for Frames {
    fn encode(&mut self, event: &StreamEvent, out: &mut Vec<u8>) {
        match event {
            StreamEvent::MessageDelta { .. } => self.encoder.encode(event, &mut self.end),
            StreamEvent::MessageStop => {
                for event in self.end.drain(..) {
                    frame(&event, out);
                }
            }
            _ => {
                let mut events = Vec::new();
                self.encoder.encode(event, &mut events);
                for event in &events {
                    frame(event, out);
                }
            }
        }
    }

    /// A `contentBlockDelta` frame whose message CRC is wrong.
    fn malformed(&mut self) -> Vec<u8> {
        let payload = json!({"contentBlockIndex": 0, "delta": {"text": "?"}}).to_string();
        let mut bytes = eventstream::encode(&Message::new_event("contentBlockDelta", payload)).unwrap_or_default();
        if let Some(last) = bytes.last_mut() {
            *last ^= 0xff;
        }
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_and_model_ids() {
        assert_eq!(
            route("/model/us.meta.llama3-3-70b-instruct-v1%3A0/converse-stream"),
            Some(("us.meta.llama3-3-70b-instruct-v1:0".to_owned(), true))
        );
        assert_eq!(
            route("/v1/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Ainference-profile%2Fx/converse"),
            Some(("arn:aws:bedrock:us-east-1:1:inference-profile/x".to_owned(), false))
        );
        assert_eq!(route("/model/m/invoke"), None);
        assert_eq!(
            invoked("/model/amazon.titan-embed-text-v2%3A0/invoke"),
            Some("amazon.titan-embed-text-v2:0".into())
        );
        assert_eq!(invoked("/model/m/converse"), None);
        assert_eq!(route("/converse"), None);
        assert_eq!(percent_decode("a%2"), "a%2");
    }
}
