//! `POST /v1/responses`: OpenAI's Responses API, answered by the same machinery as chat.
//!
//! The caller's body is decoded into the canonical model (`responses_codec`; a refusal is a
//! 400 naming the parameter: hosted tools, parameters the gateway does not know, and
//! `previous_response_id`, since no response state is kept), its `model` resolved as an alias
//! like chat's, and the request encoded as an OpenAI Chat body, which `providers` re-encodes for
//! Anthropic, Bedrock or Gemini deployments. That body is an ordinary `ChatRequest`: the machine,
//! hedges, continuations, hold-back, usage and the ledger (as protocol `responses`) work on it
//! unchanged. A whole answer is decoded from OpenAI's shape and written as a `response` object;
//! a stream goes through the relay with the Responses dialect. Errors are in OpenAI's shape.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use switchyard_core::Rng;
use switchyard_core::config::DeploymentKind;
use switchyard_wire::canonical::Usage;
use switchyard_wire::chat::{ChatRequest, CompletionView, RequestError};
use switchyard_wire::responses_codec::{self, Envelope};
use switchyard_wire::{estimate_tokens, openai_codec};
use tokio::time::Instant;

use crate::answer::whole;
use crate::chat::{Watch, admit, finish_metrics, recorded, where_headers};
use crate::dialect::Responses;
use crate::drive::Driver;
use crate::error::{ApiError, Shape};
use crate::metrics::Api;
use crate::{Gateway, authenticated_body};

pub(crate) async fn responses(State(gw): State<Arc<Gateway>>, request: Request) -> Response {
    let started = Instant::now();
    let mut watch = Watch { gw: &gw, api: Api::Responses, answered: false };
    let result = handle(gw.clone(), request, started, &mut watch.api).await;
    watch.answered = true;
    finish_metrics(&gw, watch.api, started, result, Shape::OpenAi)
}

fn bad_request(e: RequestError) -> ApiError {
    ApiError::BadRequest { message: e.message, param: e.param }
}

async fn handle(gw: Arc<Gateway>, request: Request, started: Instant, api: &mut Api) -> Result<Response, ApiError> {
    let (tenant, caller, body) = authenticated_body(&gw, request).await?;
    let canonical = responses_codec::decode_request(&body).map_err(bad_request)?;
    let alias = gw.alias_for(tenant, &canonical.model, DeploymentKind::Chat)?;
    // The gateway's own shape is an OpenAI Chat body; the decoder refuses what it cannot carry,
    // so a refusal here names what OpenAI Chat cannot express.
    let translated = openai_codec::encode_request(&canonical)
        .map_err(|e| ApiError::BadRequest { message: e.to_string(), param: None })?;
    let bytes = serde_json::to_vec(&translated).map_err(|e| ApiError::Internal(e.to_string()))?;
    let chat = ChatRequest::parse(Bytes::from(bytes)).map_err(bad_request)?;
    let (spec, timing, account) = admit(&gw, tenant, &caller, alias, &chat, started, "responses")?;
    let id = gw.with_rng(|rng| format!("{:016x}{:016x}", rng.next_u64(), rng.next_u64()));
    let created_at = u64::try_from(gw.unix_ms(gw.now()) / 1000).unwrap_or(0);
    let envelope = Envelope::of(&canonical, &id, created_at);
    let chat = Arc::new(chat);
    if chat.stream {
        *api = Api::ResponsesStream;
        return crate::stream::run(gw.clone(), chat, spec, timing, started, account, Responses::new(envelope)).await;
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
    // What the caller is billed: the upstream's report, or the gateway's count without one.
    let usage = &driver.usage;
    response.usage = Some(Usage {
        input_tokens: usage.prompt_tokens,
        output_tokens: usage.completion_tokens,
        cache_read_tokens: usage.cached_prompt_tokens,
        ..response.usage.unwrap_or_default()
    });
    let body = responses_codec::encode_response(&envelope, &response).to_string();
    let mut response = ([(header::CONTENT_TYPE, "application/json")], body).into_response();
    where_headers(&mut response, &gw, gw.config.deployment(answer.deployment), driver.machine.n_attempts());
    Ok(response)
}
