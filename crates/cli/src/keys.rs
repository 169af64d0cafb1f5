//! `switchyard keys create | list | revoke`: API keys in the ledger. A new key's secret is
//! printed once and stored nowhere; the ledger keeps only its hash.

use std::process::ExitCode;

use switchyard_core::config::check_name;
use switchyard_ledger::{KeyError, KeyRow};
use switchyard_placer::table::grid;

use crate::ledger_args::{LedgerArgs, When, exit_code, now_ms, parse_when, show_time, usage};
use crate::{errln, out, outln};

#[derive(clap::Subcommand, Clone, Debug)]
pub(crate) enum KeysAction {
    /// Create a key for a tenant and print its secret, once.
    Create {
        /// The tenant the key belongs to (must be one of the config's, when a config is given).
        #[arg(long)]
        tenant: String,
        /// A label to tell keys apart.
        #[arg(long)]
        name: Option<String>,
        /// When it stops working: a duration from now (`30d`, `12h`) or a UTC date
        /// (`2027-01-31`, `2027-01-31T00:00:00Z`). Default: never.
        #[arg(long, value_parser = parse_when, value_name = "DURATION|DATE")]
        expires: Option<When>,
    },
    /// Every key with its state: active, revoked or expired (never a secret or a hash).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key by its id (`key_…`); the gateway stops accepting it.
    Revoke { id: String },
}

/// `active`, `revoked` or `expired` at `now_ms`.
fn status(key: &KeyRow, now_ms: i64) -> &'static str {
    match (key.revoked_ms, key.expires_ms) {
        (Some(_), _) => "revoked",
        (None, Some(expires)) if expires <= now_ms => "expired",
        _ => "active",
    }
}

pub(crate) async fn run(args: &LedgerArgs, action: &KeysAction) -> anyhow::Result<ExitCode> {
    exit_code(match action {
        KeysAction::Create { tenant, name, expires } => create(args, tenant, name.as_deref(), *expires).await,
        KeysAction::List { json } => list(args, *json).await,
        KeysAction::Revoke { id } => revoke(args, id).await,
    })
}

async fn create(
    args: &LedgerArgs,
    tenant: &str,
    name: Option<&str>,
    expires: Option<When>,
) -> anyhow::Result<ExitCode> {
    let now = now_ms();
    let expires_ms = expires.map(|w| w.ahead(now));
    if let Some(at) = expires_ms.filter(|at| *at <= now) {
        return Err(usage(format!("--expires {} is in the past", show_time(at))));
    }
    let mut errors = Vec::new();
    check_name(tenant, "--tenant", &mut errors);
    if let Some(e) = errors.pop() {
        return Err(usage(e));
    }
    let opened = args.open(true).await?;
    match &opened.config {
        Some(config) if !config.tenants.iter().any(|t| t.name == tenant) => {
            let known: Vec<&str> = config.tenants.iter().map(|t| t.name.as_str()).collect();
            return Err(usage(format!(
                "no tenant {tenant:?} in {}; its tenants: {}",
                opened.config_name(),
                if known.is_empty() { "none".to_owned() } else { known.join(", ") }
            )));
        }
        Some(_) => {}
        None => errln!("note: no --config given, so tenant {tenant:?} was not checked against one"),
    }
    let created = opened.store.keys().create(tenant, name, expires_ms, now).await;
    opened.store.close().await;
    let (key, secret) = created?;
    outln!("{secret}")?;
    let expiry = key.expires_ms.map_or("never expires".to_owned(), |e| format!("expires {} UTC", show_time(e)));
    let label = key.name.as_deref().map(|n| format!(" ({n})")).unwrap_or_default();
    errln!(
        "created {}{label} for tenant {}, {expiry}. The line above is its secret; store it now: it cannot be shown again.",
        key.id,
        key.tenant
    );
    Ok(ExitCode::SUCCESS)
}

async fn list(args: &LedgerArgs, json: bool) -> anyhow::Result<ExitCode> {
    let opened = args.open(false).await?;
    let keys = opened.store.keys().list().await;
    opened.store.close().await;
    let keys = keys?;
    let now = now_ms();
    if json {
        let rows: Vec<serde_json::Value> = keys
            .iter()
            .map(|k| {
                serde_json::json!({
                    "id": k.id,
                    "tenant": k.tenant,
                    "name": k.name,
                    "created_ms": k.created_ms,
                    "expires_ms": k.expires_ms,
                    "revoked_ms": k.revoked_ms,
                    "status": status(k, now),
                })
            })
            .collect();
        outln!("{}", serde_json::Value::Array(rows))?;
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = keys
        .iter()
        .map(|k| {
            vec![
                k.id.clone(),
                k.tenant.clone(),
                k.name.clone().unwrap_or_default(),
                show_time(k.created_ms),
                k.expires_ms.map_or("never".to_owned(), show_time),
                status(k, now).to_owned(),
            ]
        })
        .collect();
    out!("{}", grid(&["id", "tenant", "name", "created (UTC)", "expires", "status"], &rows))?;
    Ok(ExitCode::SUCCESS)
}

async fn revoke(args: &LedgerArgs, id: &str) -> anyhow::Result<ExitCode> {
    let opened = args.open(false).await?;
    let done = opened.store.keys().revoke(id, now_ms()).await;
    opened.store.close().await;
    match done {
        Ok(()) => {
            outln!("{id}: revoked")?;
            Ok(ExitCode::SUCCESS)
        }
        Err(KeyError::Unknown(_)) => anyhow::bail!("no key with id {id:?} (`switchyard keys list` shows them)"),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(expires_ms: Option<i64>, revoked_ms: Option<i64>) -> KeyRow {
        KeyRow {
            id: "key_0123456789ab".to_owned(),
            tenant: "acme".to_owned(),
            name: None,
            created_ms: 0,
            expires_ms,
            revoked_ms,
            hash: String::new(),
        }
    }

    #[test]
    fn status_is_revoked_then_expired_then_active() {
        assert_eq!(status(&key(None, None), 10), "active");
        assert_eq!(status(&key(Some(11), None), 10), "active");
        assert_eq!(status(&key(Some(10), None), 10), "expired");
        assert_eq!(status(&key(Some(5), Some(1)), 10), "revoked");
    }
}
