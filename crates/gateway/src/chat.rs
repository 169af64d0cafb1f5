//! `POST /v1/chat/completions` and `POST /v1/embeddings`: authenticate, parse, and hand the
//! request to the core's state machine through the driver; non-streaming answers are passed
//! through whole, streams go to `stream`. Embeddings on a deployment whose API is not OpenAI's
//! are made by `Upstream::embed` (the calls its API allows, merged).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use switchyard_core::config::{Alias, Deployment, DeploymentId, DeploymentKind, Protocol, Tenant};
use switchyard_core::lifecycle::{Spec, Timing};
use switchyard_core::plan::Needs;
use switchyard_core::usage::Usage;
use switchyard_wire::chat::{ChatRequest, CompletionView, EmbeddingsRequest, WireUsage, parse_embeddings_usage};
use switchyard_wire::estimate_tokens;
use tokio::time::Instant;

use crate::account::{Account, Caller, durable};
pub(crate) use crate::answer::api_error;
use crate::answer::{timing, whole};
use crate::authenticated_body;
use crate::drive::Driver;
use crate::error::{ApiError, Shape};
use crate::metrics::Api;
use crate::{Gateway, caller_text};

pub(crate) async fn chat_completions(State(gw): State<Arc<Gateway>>, request: Request) -> Response {
    let started = Instant::now();
    let mut watch = Watch { gw: &gw, api: Api::Chat, answered: false };
    // The request's span (with its id) is the edge's; attempts get their own inside it.
    let result = chat(gw.clone(), request, started, &mut watch.api).await;
    watch.answered = true;
    finish_metrics(&gw, watch.api, started, result, Shape::OpenAi)
}

pub(crate) async fn embeddings(State(gw): State<Arc<Gateway>>, request: Request) -> Response {
    let started = Instant::now();
    let mut watch = Watch { gw: &gw, api: Api::Embeddings, answered: false };
    let result = embed(&gw, request, started).await;
    watch.answered = true;
    finish_metrics(&gw, Api::Embeddings, started, result, Shape::OpenAi)
}

/// Counts and logs a request whose handler is dropped before it answers: the caller hung up.
/// (Its open attempt, if any, is closed by its own guard.)
pub(crate) struct Watch<'a> {
    pub(crate) gw: &'a Gateway,
    pub(crate) api: Api,
    pub(crate) answered: bool,
}

impl Drop for Watch<'_> {
    fn drop(&mut self) {
        if !self.answered {
            self.gw.metrics.request_abandoned(self.api);
            tracing::info!(message = "The caller went away before the answer.", api = ?self.api);
        }
    }
}

/// Counts the request and, unless a stream is still running, its duration; an error is
/// answered in the endpoint's `shape`.
pub(crate) fn finish_metrics(
    gw: &Gateway,
    api: Api,
    started: Instant,
    result: Result<Response, ApiError>,
    shape: Shape,
) -> Response {
    match result {
        Ok(response) => {
            gw.metrics.request(api, None);
            if !api.is_stream() {
                gw.metrics.duration(api, started.elapsed());
            }
            response
        }
        Err(e) => {
            gw.metrics.request(api, Some(&e));
            gw.metrics.duration(api, started.elapsed());
            tracing::info!(message = "Request failed.", ?api, kind = e.kind(), error = %caller_text(&e.to_string()));
            e.respond(shape)
        }
    }
}

/// The usage of an attempt: what the upstream reported, or else (and when what it reported
/// could not be true, which is counted and logged) the prompt estimate and the counted output.
pub(crate) fn usage_from(
    gw: &Gateway,
    deployment: &Deployment,
    wire: Option<WireUsage>,
    prompt_estimate: u32,
    completion_count: u64,
) -> Usage {
    let wire = match wire {
        Some(u) if u.implausible => {
            gw.metrics.implausible_usage(deployment.id);
            tracing::warn!(message = "Upstream usage could not be true; counted ourselves instead.", deployment = %deployment.name, usage = ?u);
            None
        }
        other => other,
    };
    match wire {
        Some(u) => Usage {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
            cached_prompt_tokens: u.cached_tokens,
        },
        None => Usage {
            prompt_tokens: u64::from(prompt_estimate),
            completion_tokens: completion_count,
            cached_prompt_tokens: 0,
        },
    }
}

pub(crate) const DEPLOYMENT_HEADER: HeaderName = HeaderName::from_static("x-switchyard-deployment");
pub(crate) const CLOUD_HEADER: HeaderName = HeaderName::from_static("x-switchyard-cloud");
pub(crate) const ATTEMPTS_HEADER: HeaderName = HeaderName::from_static("x-switchyard-attempts");

pub(crate) fn where_headers(response: &mut Response, gw: &Gateway, won_deployment: &Deployment, n_attempts: u32) {
    let headers = response.headers_mut();
    // Prepared once per deployment: a clone is a reference count, not a copy and a check.
    if let Some((deployment, cloud)) = gw.where_values.get(usize::from(won_deployment.id.0)) {
        if let Some(v) = deployment {
            headers.insert(DEPLOYMENT_HEADER, v.clone());
        }
        if let Some(v) = cloud {
            headers.insert(CLOUD_HEADER, v.clone());
        }
    }
    headers.insert(ATTEMPTS_HEADER, HeaderValue::from(n_attempts));
}

/// What the machine is told of a chat request (its `Spec`), its clock, and its account, admitted
/// against the tenant's limits; `protocol` is the caller's, for the ledger.
pub(crate) fn admit(
    gw: &Arc<Gateway>,
    tenant: &Tenant,
    caller: &Caller,
    alias: &Alias,
    chat: &ChatRequest,
    started: Instant,
    protocol: &'static str,
) -> Result<(Spec, Timing, Account), ApiError> {
    let output_estimate = chat.max_tokens.unwrap_or(gw.config.routing.default_output_tokens);
    let untranslatable = gw.untranslatable(alias, chat);
    let spec = Spec {
        alias: alias.id,
        tenant: tenant.id,
        input_tokens: chat.input_tokens,
        context_tokens: None,
        max_output_tokens: chat.max_tokens,
        needs: Needs { streaming: chat.stream, tools: chat.tools, vision: chat.vision, prefill: false, untranslatable },
        reserved_tokens: chat.input_tokens.saturating_add(output_estimate),
        unfit: gw.unfit_formats(alias, chat),
    };
    let timing = timing(gw, alias, started);
    let mut account = Account::open(gw, caller, tenant, alias, chat.stream, chat.input_tokens, output_estimate)?;
    account.set_protocol(protocol);
    Ok((spec, timing, account))
}

async fn chat(gw: Arc<Gateway>, request: Request, started: Instant, api: &mut Api) -> Result<Response, ApiError> {
    let (tenant, caller, body) = authenticated_body(&gw, request).await?;
    let chat = ChatRequest::parse(body).map_err(|e| ApiError::BadRequest { message: e.message, param: e.param })?;
    if chat.object.get(switchyard_providers::CARRIED_ANTHROPIC).is_some() {
        // The gateway's own field for `/v1/messages` requests: never a caller's.
        let message = format!("unknown parameter: {}", switchyard_providers::CARRIED_ANTHROPIC);
        return Err(ApiError::BadRequest { message, param: None });
    }
    let alias = gw.alias_for(tenant, &chat.model, DeploymentKind::Chat)?;
    let (spec, timing, account) = admit(&gw, tenant, &caller, alias, &chat, started, "openai")?;
    let chat = Arc::new(chat);
    if chat.stream {
        *api = Api::ChatStream;
        return crate::stream::run(gw.clone(), chat, spec, timing, started, account, crate::dialect::OpenAi).await;
    }
    let mut driver = Driver::start(&gw, chat.clone(), spec, timing, account);
    let answer = whole(&mut driver, |bytes| {
        let view = CompletionView::parse(bytes)?;
        Ok((view.usage, u64::from(estimate_tokens(&view.content))))
    })
    .await;
    let answer = recorded(&gw, &mut driver, answer).await?;
    let deployment = gw.config.deployment(answer.deployment);
    // Usage is always reported: counted and added when the upstream gave none.
    let bytes = if answer.reported_usage { answer.bytes } else { with_usage(&answer.bytes, &driver.usage) };
    let mut response = ([(header::CONTENT_TYPE, "application/json")], bytes).into_response();
    where_headers(&mut response, &gw, deployment, driver.machine.n_attempts());
    Ok(response)
}

/// Concludes a whole answer's account and waits until its record is durable, so that a caller
/// who received the whole response is in the ledger even if the process dies right after.
pub(crate) async fn recorded<T>(gw: &Gateway, driver: &mut Driver, answer: Result<T, ApiError>) -> Result<T, ApiError> {
    let record = match &answer {
        Ok(_) => driver.conclude(200, "ok"),
        Err(e) => driver.conclude(e.status(), e.kind()),
    };
    durable(gw, record).await?;
    answer
}

fn with_usage(bytes: &Bytes, usage: &Usage) -> Bytes {
    let Ok(serde_json::Value::Object(mut body)) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return bytes.clone();
    };
    let usage = serde_json::json!({
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total(),
    });
    body.insert("usage".into(), usage);
    serde_json::to_vec(&body).map(Bytes::from).unwrap_or_else(|_| bytes.clone())
}

async fn embed(gw: &Arc<Gateway>, request: Request, started: Instant) -> Result<Response, ApiError> {
    let (tenant, caller, body) = authenticated_body(gw, request).await?;
    let embed =
        EmbeddingsRequest::parse(body).map_err(|e| ApiError::BadRequest { message: e.message, param: e.param })?;
    let alias = gw.alias_for(tenant, &embed.model, DeploymentKind::Embeddings)?;
    let spec = Spec {
        alias: alias.id,
        tenant: tenant.id,
        input_tokens: embed.input_tokens,
        context_tokens: Some(embed.longest_input_tokens),
        max_output_tokens: Some(0),
        needs: Needs::default(),
        reserved_tokens: embed.input_tokens,
        unfit: embeddings_unfit(gw, alias, &embed),
    };
    let account = Account::open(gw, &caller, tenant, alias, false, embed.input_tokens, 0)?;
    let mut driver = Driver::start(gw, Arc::new(embed), spec, timing(gw, alias, started), account);
    let answer = whole(&mut driver, |bytes| Ok((parse_embeddings_usage(bytes)?, 0))).await;
    let answer = recorded(gw, &mut driver, answer).await?;
    let deployment = gw.config.deployment(answer.deployment);
    let mut response = ([(header::CONTENT_TYPE, "application/json")], answer.bytes).into_response();
    where_headers(&mut response, gw, deployment, driver.machine.n_attempts());
    Ok(response)
}

/// The deployments `alias` may reach (its own, then its fallbacks', transitively) whose
/// embeddings API cannot take `embed` (token arrays, `dimensions` the model does not offer,
/// ...), each by its own model's API: the planner passes them over while another deployment is
/// left ([`switchyard_core::plan::PlanRequest::unfit`]).
fn embeddings_unfit(gw: &Gateway, alias: &Alias, embed: &EmbeddingsRequest) -> Vec<DeploymentId> {
    if gw.protocols(alias.id) & !Protocol::PASS_THROUGH == 0 {
        return Vec::new();
    }
    let reached = gw.reach(alias);
    let body = embed.object.bytes();
    let unfit: Vec<DeploymentId> =
        reached.iter().copied().filter(|d| gw.upstream.embeddings_refusal(usize::from(d.0), body).is_some()).collect();
    unfit
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_usage_is_added_from_the_count() {
        let body = Bytes::from_static(br#"{"choices":[{"message":{"content":"hi"}}]}"#);
        let usage = Usage { prompt_tokens: 7, completion_tokens: 1, cached_prompt_tokens: 0 };
        let out: serde_json::Value = serde_json::from_slice(&with_usage(&body, &usage)).unwrap();
        assert_eq!(out["usage"]["total_tokens"], 8);
        assert_eq!(out["choices"][0]["message"]["content"], "hi");
    }
}
