//! `switchyard keys create | list | update | revoke`: API keys in the ledger. A new key's secret is
//! printed once and stored nowhere; the ledger keeps only its hash, and the key's own settings
//! (aliases, jurisdictions, priority, limits, budgets), which narrow its tenant's.

use std::process::ExitCode;

use switchyard_core::config::{Priority, Workload, check_name};
use switchyard_core::tenancy::{KeyChangeError, KeyField, KeySettingError, KeySettings};
use switchyard_ledger::{Changed, KeyError, KeyRow};
use switchyard_placer::table::grid;

use crate::ledger_args::{LedgerArgs, When, exit_code, now_ms, parse_when, show_time, usage};
use crate::{errln, out, outln};

#[derive(clap::Subcommand, Clone, Debug)]
pub(crate) enum KeysAction {
    /// Create a key for a tenant and print its secret, once.
    Create(Box<CreateArgs>),
    /// Every key with its state: active, revoked or expired (never a secret or a hash).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Change a key's name, expiry or settings by its id (`key_…`): what is given is set,
    /// `--clear` fields go back to the tenant's, the rest is kept. Gateways apply it at their
    /// next read of the keys (within seconds).
    Update(Box<UpdateArgs>),
    /// Revoke a key by its id (`key_…`); the gateway stops accepting it.
    Revoke { id: String },
}

/// `keys create`'s arguments.
#[derive(clap::Args, Clone, Debug)]
pub(crate) struct CreateArgs {
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
    #[command(flatten)]
    settings: SettingsArgs,
}

/// `keys update`'s arguments.
#[derive(clap::Args, Clone, Debug)]
pub(crate) struct UpdateArgs {
    /// The key's id (`key_…`, as `keys list` shows).
    id: String,
    /// A new label.
    #[arg(long)]
    name: Option<String>,
    /// A new expiry: a duration from now (`30d`) or a UTC date.
    #[arg(long, value_parser = parse_when, value_name = "DURATION|DATE", conflicts_with = "never_expires")]
    expires: Option<When>,
    /// Remove its expiry.
    #[arg(long)]
    never_expires: bool,
    /// Settings to take back to the tenant's (comma-separated names: aliases, jurisdictions,
    /// workload, priority, rpm, tpm, concurrency, daily_usd, monthly_usd).
    #[arg(long, value_delimiter = ',', value_name = "FIELD,…")]
    clear: Vec<String>,
    #[command(flatten)]
    settings: SettingsArgs,
}

/// A key's own settings, as flags (`keys create`, `keys update`).
#[derive(clap::Args, Clone, Debug)]
pub(crate) struct SettingsArgs {
    /// Aliases the key may use, some of its tenant's (comma-separated). Default: the tenant's.
    #[arg(long, value_delimiter = ',', value_name = "ALIAS,…")]
    aliases: Option<Vec<String>>,
    /// Jurisdictions its requests may go to, some of its tenant's. Default: the tenant's.
    #[arg(long, value_delimiter = ',', value_name = "CODE,…")]
    jurisdictions: Option<Vec<String>>,
    /// What it is used for; sets its priority unless --priority does (interactive high, batch
    /// normal, training and research low), at most its tenant's. Default: the tenant's.
    #[arg(long, value_parser = ["interactive", "batch", "training", "research"])]
    workload: Option<String>,
    /// Its priority, at most its tenant's. Default: the tenant's.
    #[arg(long, value_parser = ["low", "normal", "high"])]
    priority: Option<String>,
    /// Its own requests per minute, on top of the tenant's limit.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    rpm: Option<u32>,
    /// Its own tokens per minute, on top of the tenant's limit.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    tpm: Option<u64>,
    /// Its own requests in progress at once, on top of the tenant's limit.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    concurrency: Option<u32>,
    /// Its own dollars per UTC day (list price), on top of the tenant's budget.
    #[arg(long, value_name = "USD", allow_negative_numbers = true)]
    daily_usd: Option<f64>,
    /// Its own dollars per UTC month, on top of the tenant's budget.
    #[arg(long, value_name = "USD", allow_negative_numbers = true)]
    monthly_usd: Option<f64>,
}

impl SettingsArgs {
    fn settings(&self) -> KeySettings {
        let priority = self.priority.as_deref().map(|p| match p {
            "low" => Priority::Low,
            "normal" => Priority::Normal,
            _ => Priority::High,
        });
        let workload = self.workload.as_deref().map(|w| match w {
            "batch" => Workload::Batch,
            "training" => Workload::Training,
            "research" => Workload::Research,
            _ => Workload::Interactive,
        });
        KeySettings {
            aliases: self.aliases.clone(),
            jurisdictions: self.jurisdictions.clone(),
            workload,
            priority,
            rpm: self.rpm,
            tpm: self.tpm,
            concurrency: self.concurrency,
            daily_usd: self.daily_usd,
            monthly_usd: self.monthly_usd,
        }
    }
}

/// Settings' errors as one usage error, each at its flag: `--rpm: must be > 0 …`.
fn bad_settings(errors: &[KeySettingError]) -> anyhow::Error {
    let all: Vec<String> = errors.iter().map(|e| format!("{}: {}", e.flag_path(), e.message)).collect();
    usage(all.join("; "))
}

/// A key's settings for a table: one line, `-` for none.
fn settings_summary(key: &KeyRow) -> String {
    match KeySettings::from_json(&key.settings) {
        Ok(s) if s.is_empty() => "-".to_owned(),
        Ok(s) => s.summary(),
        Err(_) => "unreadable".to_owned(),
    }
}

pub(crate) async fn run(args: &LedgerArgs, action: &KeysAction) -> anyhow::Result<ExitCode> {
    exit_code(match action {
        KeysAction::Create(create_args) => create(args, create_args).await,
        KeysAction::List { json } => list(args, *json).await,
        KeysAction::Update(update_args) => update(args, update_args).await,
        KeysAction::Revoke { id } => revoke(args, id).await,
    })
}

async fn create(args: &LedgerArgs, new: &CreateArgs) -> anyhow::Result<ExitCode> {
    let (tenant, name) = (new.tenant.as_str(), new.name.as_deref());
    let now = now_ms();
    let expires_ms = new.expires.map(|w| w.ahead(now));
    if let Some(at) = expires_ms.filter(|at| *at <= now) {
        return Err(usage(format!("--expires {} is in the past", show_time(at))));
    }
    let mut errors = Vec::new();
    check_name(tenant, "--tenant", &mut errors);
    if let Some(e) = errors.pop() {
        return Err(usage(e));
    }
    let settings = new.settings.settings();
    let wrong = settings.check();
    if !wrong.is_empty() {
        return Err(bad_settings(&wrong));
    }
    let opened = args.open(true).await?;
    match &opened.config {
        Some(config) => {
            let Some(t) = config.tenants.iter().find(|t| t.name == tenant) else {
                let known: Vec<&str> = config.tenants.iter().map(|t| t.name.as_str()).collect();
                opened.store.close().await;
                return Err(usage(format!(
                    "no tenant {tenant:?} in {}; its tenants: {}",
                    opened.config_name(),
                    if known.is_empty() { "none".to_owned() } else { known.join(", ") }
                )));
            };
            let wrong = settings.check_for(config, t);
            if !wrong.is_empty() {
                opened.store.close().await;
                return Err(bad_settings(&wrong));
            }
        }
        None if settings.is_empty() => {
            errln!("note: no --config given, so tenant {tenant:?} was not checked against one")
        }
        None => errln!(
            "note: no --config given, so tenant {tenant:?} and the key's aliases, jurisdictions and priority were not checked against one (a gateway narrows a key to what its tenant has)"
        ),
    }
    let created = opened.store.keys().create_with(tenant, name, expires_ms, &settings.to_json(), now).await;
    opened.store.close().await;
    let (key, secret) = created?;
    outln!("{secret}")?;
    let expiry = key.expires_ms.map_or("never expires".to_owned(), |e| format!("expires {} UTC", show_time(e)));
    let label = key.name.as_deref().map(|n| format!(" ({n})")).unwrap_or_default();
    let own = match settings.is_empty() {
        true => String::new(),
        false => format!(", with {}", settings.summary()),
    };
    errln!(
        "created {}{label} for tenant {}{own}, {expiry}. The line above is its secret; store it now: it cannot be shown again.",
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
                    "status": k.status(now),
                    "settings": KeySettings::shown(&k.settings),
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
                settings_summary(k),
                k.status(now).to_owned(),
            ]
        })
        .collect();
    let head = ["id", "tenant", "name", "created (UTC)", "expires", "settings", "status"];
    out!("{}", grid(&head, &rows))?;
    Ok(ExitCode::SUCCESS)
}

async fn update(args: &LedgerArgs, change: &UpdateArgs) -> anyhow::Result<ExitCode> {
    let now = now_ms();
    let expires_ms = change.expires.map(|w| w.ahead(now));
    if let Some(at) = expires_ms.filter(|at| *at <= now) {
        return Err(usage(format!("--expires {} is in the past", show_time(at))));
    }
    let mut patch = match serde_json::to_value(change.settings.settings()) {
        Ok(serde_json::Value::Object(fields)) => fields,
        _ => serde_json::Map::new(),
    };
    for field in &change.clear {
        let Some(known) = KeyField::of_name(field) else {
            let names: Vec<&str> = KeyField::ALL.iter().map(|f| f.name()).collect();
            return Err(usage(format!("--clear: no setting {field:?}; settings: {}", names.join(", "))));
        };
        if patch.contains_key(known.name()) {
            return Err(usage(format!("--clear {field} and {} at once", known.flag())));
        }
        patch.insert(known.name().to_owned(), serde_json::Value::Null);
    }
    let opened = args.open(false).await?;
    // Applied to the key as stored, again if another change lands meanwhile.
    let apply = |row: &KeyRow| {
        let config = opened.config.as_ref();
        let tenant = config.and_then(|c| Some((c, c.tenants.iter().find(|t| t.name == row.tenant)?)));
        let settings = KeySettings::changed(&row.settings, patch.clone(), tenant).map_err(|e| match e {
            KeyChangeError::Unreadable(e) => {
                anyhow::anyhow!("{}'s stored settings cannot be read ({e}); change it with a build that can", row.id)
            }
            KeyChangeError::Field(e) => usage(e),
            KeyChangeError::Checks(wrong) => bad_settings(&wrong),
        })?;
        let name = change.name.clone().or_else(|| row.name.clone());
        let expires_ms = if change.never_expires { None } else { expires_ms.or(row.expires_ms) };
        Ok((name, expires_ms, settings.to_json()))
    };
    let result = match opened.store.keys().change(&change.id, apply).await {
        Ok(key) => Ok(key),
        Err(Changed::Refused(error)) => Err(error),
        Err(Changed::Key(KeyError::Unknown(id))) => {
            Err(anyhow::anyhow!("no key with id {id:?} (`switchyard keys list` shows them)"))
        }
        Err(Changed::Key(error)) => Err(error.into()),
    };
    opened.store.close().await;
    let key = result?;
    let own = KeySettings::from_json(&key.settings).map(|s| if s.is_empty() { "-".to_owned() } else { s.summary() });
    let expiry = key.expires_ms.map_or("never expires".to_owned(), |e| format!("expires {} UTC", show_time(e)));
    outln!("{}: updated; settings: {}; {expiry}", key.id, own.unwrap_or_else(|_| "unreadable".to_owned()))?;
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
            settings: "{}".to_owned(),
        }
    }

    #[test]
    fn status_is_revoked_then_expired_then_active() {
        assert_eq!(key(None, None).status(10), "active");
        assert_eq!(key(Some(11), None).status(10), "active");
        assert_eq!(key(Some(10), None).status(10), "expired");
        assert_eq!(key(Some(5), Some(1)).status(10), "revoked");
    }
}
