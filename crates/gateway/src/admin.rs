//! The admin API (`/admin/…`), for operators holding a key listed in `server.admin_keys`: make
//! (with the key's own settings), list, read, change (name, expiry, settings) and revoke API
//! keys, and read spend from the ledger.
//! Errors are OpenAI-shaped like the rest of the API; a bad request is a 400 naming the field.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;
use switchyard_core::tenancy::{KeyChangeError, KeyField, KeySettings, format_utc};
use switchyard_ledger::{Changed, Group, KeyError, KeyRow, Store};

use crate::error::ApiError;
use crate::{Gateway, caller_text};

pub(crate) fn routes() -> Router<Arc<Gateway>> {
    Router::new()
        .route("/admin/keys", get(list_keys).post(create_key))
        .route("/admin/keys/{id}", delete(revoke_key).get(get_key).patch(update_key))
        .route("/admin/spend", get(spend))
}

/// `POST /admin/keys`'s body: who and when, besides the key's settings (the other fields).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKey {
    tenant: String,
    name: Option<String>,
    /// Unix milliseconds.
    expires_ms: Option<i64>,
}

const NEW_KEY_FIELDS: [&str; 3] = ["tenant", "name", "expires_ms"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SpendQuery {
    by: Option<String>,
    from_ms: Option<i64>,
    to_ms: Option<i64>,
}

/// The admin key's check, and the ledger the admin API works on.
fn admitted<'a>(gw: &'a Gateway, headers: &HeaderMap) -> Result<&'a Store, ApiError> {
    let key = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .unwrap_or_default();
    let hash = switchyard_core::config::hash_key(key);
    if key.is_empty() || !gw.config.server.admin_keys.contains(&hash) {
        return Err(ApiError::Unauthorized("the admin API needs an admin key: Authorization: Bearer <key>"));
    }
    gw.store.as_ref().ok_or_else(|| ApiError::Unavailable("the admin API needs a ledger (ledger.url)".to_owned()))
}

fn key_json(row: &KeyRow, now_ms: i64) -> serde_json::Value {
    json!({
        "id": row.id,
        "tenant": row.tenant,
        "name": row.name,
        "created_ms": row.created_ms,
        "expires_ms": row.expires_ms,
        "revoked_ms": row.revoked_ms,
        "status": row.status(now_ms),
        "settings": KeySettings::shown(&row.settings),
    })
}

/// Reads `POST /admin/keys`'s body: the key's tenant, name and expiry, and its settings, each
/// error naming its field (the first that cannot be read, or every setting that cannot be).
fn new_key(gw: &Gateway, body: &[u8]) -> Result<(NewKey, KeySettings), ApiError> {
    // Messages are bounded and escaped when the error is written; not cut here, so that every
    // setting's error is told.
    let bad = |message: String, param: Option<&'static str>| ApiError::BadRequest {
        message: format!("invalid key request: {message}"),
        param,
    };
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| bad(e.to_string(), None))?;
    let serde_json::Value::Object(mut fields) = value else {
        return Err(bad("the body must be a JSON object".to_owned(), None));
    };
    let head: serde_json::Map<_, _> = NEW_KEY_FIELDS.iter().filter_map(|f| fields.remove_entry(*f)).collect();
    let new: NewKey = serde_path_to_error::deserialize(serde_json::Value::Object(head)).map_err(|e| {
        let param = NEW_KEY_FIELDS.into_iter().find(|f| e.path().to_string() == *f);
        bad(e.to_string(), param)
    })?;
    let settings = KeySettings::from_value(serde_json::Value::Object(fields)).map_err(|e| {
        let param = KeyField::ALL.into_iter().find(|f| e.starts_with(f.name())).map(KeyField::name);
        bad(e, param)
    })?;
    let Some(tenant) = gw.config.tenants.iter().find(|t| t.name == new.tenant) else {
        let known: Vec<&str> = gw.config.tenants.iter().map(|t| t.name.as_str()).collect();
        let message = format!("unknown tenant '{}'; configured: {}", caller_text(&new.tenant), known.join(", "));
        return Err(ApiError::BadRequest { message, param: Some("tenant") });
    };
    let errors = settings.check_for(&gw.config, tenant);
    if let Some(first) = errors.first() {
        let all: Vec<String> = errors.iter().map(ToString::to_string).collect();
        return Err(bad(all.join("; "), Some(first.field.name())));
    }
    Ok((new, settings))
}

fn ledger_error(error: impl std::fmt::Display) -> ApiError {
    ApiError::Unavailable(format!("the ledger did not answer: {error}"))
}

async fn list_keys(State(gw): State<Arc<Gateway>>, headers: HeaderMap) -> Result<Response, ApiError> {
    let store = admitted(&gw, &headers)?;
    let now_ms = gw.unix_ms(gw.now());
    let rows = store.keys().list().await.map_err(ledger_error)?;
    let data: Vec<_> = rows.iter().map(|r| key_json(r, now_ms)).collect();
    Ok(axum::Json(json!({"object": "list", "data": data})).into_response())
}

async fn create_key(State(gw): State<Arc<Gateway>>, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    let store = admitted(&gw, &headers)?;
    let (new, settings) = new_key(&gw, &body)?;
    let now_ms = gw.unix_ms(gw.now());
    if new.expires_ms.is_some_and(|e| e <= now_ms) {
        let message = format!("expires_ms is in the past (now is {})", format_utc(now_ms));
        return Err(ApiError::BadRequest { message, param: Some("expires_ms") });
    }
    let name = new.name.as_deref().map(caller_text);
    let keys = store.keys();
    let created = keys.create_with(&new.tenant, name.as_deref(), new.expires_ms, &settings.to_json(), now_ms).await;
    let (row, secret) = created.map_err(ledger_error)?;
    refresh(&gw).await;
    tracing::info!(message = "API key created.", key = %row.id, tenant = %row.tenant);
    let mut body = key_json(&row, now_ms);
    body["key"] = json!(secret);
    Ok((StatusCode::CREATED, axum::Json(body)).into_response())
}

async fn get_key(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let store = admitted(&gw, &headers)?;
    let now_ms = gw.unix_ms(gw.now());
    let row = store.keys().get(&id).await.map_err(|e| key_error(e, &id))?;
    Ok(axum::Json(key_json(&row, now_ms)).into_response())
}

/// `PATCH /admin/keys/{id}`: `name` and `expires_ms` (Unix ms) replaced when given (`null`
/// clears them), and each setting given set, or cleared by `null`; the rest kept. The
/// settings are checked against the key's tenant as at creation. Takes effect at once on this
/// replica, and on others at their next read of the keys.
async fn update_key(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let store = admitted(&gw, &headers)?;
    let now_ms = gw.unix_ms(gw.now());
    let bad = |message: String, param: Option<&'static str>| ApiError::BadRequest {
        message: format!("invalid key change: {message}"),
        param,
    };
    let value: serde_json::Value = serde_json::from_slice(&body).map_err(|e| bad(e.to_string(), None))?;
    let serde_json::Value::Object(mut patch) = value else {
        return Err(bad("the body must be a JSON object".to_owned(), None));
    };
    let name = match patch.remove("name") {
        None => None,
        Some(serde_json::Value::Null) => Some(None),
        Some(serde_json::Value::String(name)) => Some(Some(caller_text(&name))),
        Some(other) => return Err(bad(format!("name must be a string or null, not {other}"), Some("name"))),
    };
    let expires_ms = match patch.remove("expires_ms") {
        None => None,
        Some(serde_json::Value::Null) => Some(None),
        Some(value) => match value.as_i64() {
            Some(at) if at > now_ms => Some(Some(at)),
            Some(_) => {
                let message = format!("expires_ms is in the past (now is {})", format_utc(now_ms));
                return Err(bad(message, Some("expires_ms")));
            }
            None => {
                let message = format!("expires_ms must be Unix milliseconds or null, not {value}");
                return Err(bad(message, Some("expires_ms")));
            }
        },
    };
    if let Some(field) = ["tenant", "id"].into_iter().find(|f| patch.contains_key(*f)) {
        return Err(bad(format!("a key's {field} cannot change"), None));
    }
    // Applied to the key as stored, again if another change lands meanwhile.
    let change = |row: &KeyRow| {
        let tenant = gw.config.tenants.iter().find(|t| t.name == row.tenant).map(|t| (&*gw.config, t));
        let settings = KeySettings::changed(&row.settings, patch.clone(), tenant).map_err(|e| match e {
            KeyChangeError::Unreadable(e) => ApiError::Unavailable(format!(
                "the key's stored settings cannot be read ({}); a replica that can read them must change it",
                caller_text(&e)
            )),
            KeyChangeError::Field(e) => {
                let param = KeyField::ALL.into_iter().find(|f| e.starts_with(f.name())).map(KeyField::name);
                bad(e, param)
            }
            KeyChangeError::Checks(wrong) => {
                let all: Vec<String> = wrong.iter().map(ToString::to_string).collect();
                bad(all.join("; "), wrong.first().map(|w| w.field.name()))
            }
        })?;
        let name = name.clone().unwrap_or_else(|| row.name.clone());
        Ok((name, expires_ms.unwrap_or(row.expires_ms), settings.to_json()))
    };
    let row = match store.keys().change(&id, change).await {
        Ok(row) => row,
        Err(Changed::Refused(error)) => return Err(error),
        Err(Changed::Key(error)) => return Err(key_error(error, &id)),
    };
    refresh(&gw).await;
    tracing::info!(message = "API key changed.", key = %row.id, tenant = %row.tenant);
    Ok(axum::Json(key_json(&row, now_ms)).into_response())
}

/// A key store's error as the caller's: an unknown key 404, a revoked one 400, one that kept
/// changing under this change 503 (try again).
fn key_error(error: KeyError, id: &str) -> ApiError {
    match error {
        KeyError::Unknown(_) => ApiError::UnknownKey(caller_text(id)),
        KeyError::Revoked(_) => ApiError::BadRequest { message: caller_text(&error.to_string()), param: None },
        KeyError::Contended(_) => ApiError::Unavailable(caller_text(&error.to_string())),
        e => ledger_error(e),
    }
}

async fn revoke_key(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let store = admitted(&gw, &headers)?;
    let now_ms = gw.unix_ms(gw.now());
    match store.keys().revoke(&id, now_ms).await {
        Ok(()) => {
            refresh(&gw).await;
            tracing::info!(message = "API key revoked.", key = %caller_text(&id));
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        Err(e) => Err(key_error(e, &id)),
    }
}

async fn spend(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    query: Result<Query<SpendQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let store = admitted(&gw, &headers)?;
    let Query(q) = query.map_err(|e| ApiError::BadRequest { message: caller_text(&e.body_text()), param: None })?;
    let group = match q.by.as_deref().unwrap_or("tenant") {
        "cloud" => Group::Cloud,
        "tenant" => Group::Tenant,
        "key" => Group::Key,
        "alias" => Group::Alias,
        "deployment" => Group::Deployment,
        other => {
            let message = format!("unknown grouping '{}': cloud, tenant, key, alias or deployment", caller_text(other));
            return Err(ApiError::BadRequest { message, param: Some("by") });
        }
    };
    let (from, to) = (q.from_ms.unwrap_or(0), q.to_ms.unwrap_or(i64::MAX));
    let rows = store.spend(group, from, to).await.map_err(ledger_error)?;
    let data: Vec<_> = rows
        .iter()
        .map(|r| {
            json!({"key": r.key, "requests": r.requests, "input_tokens": r.input_tokens,
                   "output_tokens": r.output_tokens, "cost_usd": r.cost_usd})
        })
        .collect();
    let budgets: Vec<_> = gw
        .config
        .tenants
        .iter()
        .filter(|t| t.budgets.daily_usd.is_some() || t.budgets.monthly_usd.is_some())
        .map(|t| json!({"tenant": t.name, "daily_usd": t.budgets.daily_usd, "monthly_usd": t.budgets.monthly_usd}))
        .collect();
    let now = gw.now();
    let commitments: Vec<_> = gw
        .config
        .commitments
        .iter()
        .map(|c| {
            let (spent, pace) = gw.router().commitment_progress(c.id, now);
            json!({"commitment": c.name, "amount_usd": c.amount_usd, "spent_usd": spent, "pace_usd": pace})
        })
        .collect();
    Ok(axum::Json(json!({"object": "spend", "by": q.by.unwrap_or_else(|| "tenant".to_owned()), "data": data,
        "budgets": budgets, "commitments": commitments}))
    .into_response())
}

/// Reads the ledger's active keys again (after a change here, and every few seconds).
pub(crate) async fn refresh(gw: &Gateway) {
    let Some(store) = &gw.store else { return };
    if let Err(error) = gw.keys.refresh(gw, store).await {
        tracing::warn!(message = "Cannot read API keys from the ledger.", %error);
    }
}
