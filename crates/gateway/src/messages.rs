//! `POST /v1/messages`: Anthropic's Messages API, answered by the same machinery as chat.
//!
//! The caller's body is decoded into the canonical model (a refusal is a 400 naming the
//! parameter), its `model` resolved as an alias like chat's, and the request encoded as the
//! gateway's own shape, a Chat Completions body, which `providers` re-encodes for each
//! deployment's protocol. What OpenAI's protocol cannot express rides along whole for the
//! translated protocols (Anthropic, Bedrock, Gemini: `carried`), each of which takes it if it
//! can, and OpenAI-shaped deployments are passed over; with none left it is a 400 naming it,
//! never dropped. That body is then an ordinary
//! `ChatRequest`: the machine, hedges, continuations, hold-back, usage and the ledger (as
//! protocol `anthropic`) work on it unchanged. A whole answer is decoded from OpenAI's shape
//! and written in Anthropic's; a stream goes through the relay with the Anthropic dialect.
//! Every error is in Anthropic's shape.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use switchyard_core::config::{DeploymentKind, Protocol};
use switchyard_providers::CARRIED_ANTHROPIC;
use switchyard_wire::canonical::{Part, Request as Canonical, Usage};
use switchyard_wire::chat::{ChatRequest, CompletionView, RequestError};
use switchyard_wire::{anthropic_codec, estimate_tokens, openai_codec};
use tokio::time::Instant;

use crate::answer::whole;
use crate::chat::{Watch, admit, finish_metrics, recorded, where_headers};
use crate::dialect::Anthropic;
use crate::drive::Driver;
use crate::error::{ApiError, Shape};
use crate::metrics::Api;
use crate::{Gateway, authenticated_body, caller_text};

pub(crate) async fn messages(State(gw): State<Arc<Gateway>>, request: Request) -> Response {
    let started = Instant::now();
    let mut watch = Watch { gw: &gw, api: Api::Messages, answered: false };
    let result = handle(gw.clone(), request, started, &mut watch.api).await;
    watch.answered = true;
    finish_metrics(&gw, watch.api, started, result, Shape::Anthropic)
}

/// 405 on `/v1/messages`, in Anthropic's shape.
pub(crate) async fn not_allowed(method: axum::http::Method) -> Response {
    let allow = "POST".to_owned();
    ApiError::MethodNotAllowed { method: caller_text(method.as_str()), allow }.into_anthropic_response()
}

/// The routing body of a request OpenAI's protocol cannot express in full: the request without
/// what it cannot express (its estimates and needs are the same), with the caller's own body in
/// `CARRIED_ANTHROPIC` for the deployments that get it whole.
fn carried(canonical: &Canonical, body: &[u8]) -> Result<serde_json::Value, ApiError> {
    let mut routing = canonical.clone();
    routing.sampling.top_k = None;
    routing.extra = None;
    routing.prefill = false;
    for part in routing.messages.iter_mut().flat_map(|m| &mut m.content) {
        if let Part::ToolResult(result) = part {
            result.is_error = false;
        }
    }
    let mut routing = openai_codec::encode_request(&routing)
        .map_err(|e| ApiError::BadRequest { message: e.to_string(), param: None })?;
    let own: serde_json::Value = serde_json::from_slice(body).map_err(|e| ApiError::Internal(e.to_string()))?;
    routing[CARRIED_ANTHROPIC] = own;
    Ok(routing)
}

fn bad_request(e: RequestError) -> ApiError {
    ApiError::BadRequest { message: e.message, param: e.param }
}

async fn handle(gw: Arc<Gateway>, request: Request, started: Instant, api: &mut Api) -> Result<Response, ApiError> {
    let (tenant, caller, body) = authenticated_body(&gw, request).await?;
    let canonical = anthropic_codec::decode_request(&body).map_err(bad_request)?;
    // Thinking blocks are not carried back (decoders skip them), so asking for them would be
    // asking for something the caller cannot get: refused rather than quietly lost.
    if canonical.extra.as_ref().is_some_and(|e| e.fields.contains_key("thinking")) {
        let message =
            "`thinking` is not supported through this gateway yet: its blocks are not carried back".to_owned();
        return Err(ApiError::BadRequest { message, param: Some("thinking") });
    }
    let alias = gw.alias_for(tenant, &canonical.model, DeploymentKind::Chat)?;
    // The gateway's own shape is an OpenAI Chat body. What OpenAI's protocol cannot express
    // rides along for the deployments whose protocol can (Anthropic's, Bedrock's, Gemini's),
    // or, when the alias has none, is a 400 naming it.
    let translated = match openai_codec::encode_request(&canonical) {
        Ok(translated) => translated,
        Err(e) if gw.protocols(alias.id) & !Protocol::PASS_THROUGH == 0 => {
            return Err(ApiError::BadRequest { message: e.to_string(), param: None });
        }
        Err(_) => carried(&canonical, &body)?,
    };
    let bytes = serde_json::to_vec(&translated).map_err(|e| ApiError::Internal(e.to_string()))?;
    let chat = ChatRequest::parse(Bytes::from(bytes)).map_err(bad_request)?;
    let (spec, timing, account) = admit(&gw, tenant, &caller, alias, &chat, started, "anthropic")?;
    let chat = Arc::new(chat);
    if chat.stream {
        *api = Api::MessagesStream;
        let dialect = Anthropic::new(canonical.model);
        return crate::stream::run(gw.clone(), chat, spec, timing, started, account, dialect).await;
    }
    let mut driver = Driver::start(&gw, chat, spec, timing, account);
    // An answer that cannot be translated is a failed attempt, like any garbage answer.
    let answer = whole(&mut driver, |bytes| {
        openai_codec::decode_response(bytes).map_err(|e| e.message)?;
        let view = CompletionView::parse(bytes)?;
        Ok((view.usage, u64::from(estimate_tokens(&view.content))))
    })
    .await;
    let answer = recorded(&gw, &mut driver, answer).await?;
    let mut response = openai_codec::decode_response(&answer.bytes).map_err(|e| ApiError::Internal(e.message))?;
    response.model = canonical.model;
    // What the caller is billed: the upstream's report, or the gateway's count without one.
    let usage = &driver.usage;
    response.usage = Some(Usage {
        input_tokens: usage.prompt_tokens,
        output_tokens: usage.completion_tokens,
        cache_read_tokens: usage.cached_prompt_tokens,
        ..response.usage.unwrap_or_default()
    });
    let body = anthropic_codec::encode_response(&response).to_string();
    let mut response = ([(header::CONTENT_TYPE, "application/json")], body).into_response();
    where_headers(&mut response, &gw, gw.config.deployment(answer.deployment), driver.machine.n_attempts());
    Ok(response)
}
