//! The `ledger` and `shared` sections: where request records go (SQLite by default,
//! PostgreSQL to scale out) and the Redis that replicas share counters through.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::secret::{Secret, SecretSource, resolve};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLedger {
    pub url: Option<String>,
    pub on_failure: Option<RawLedgerPolicy>,
    pub spool_path: Option<String>,
    pub queue: Option<usize>,
    pub batch: Option<usize>,
    pub linger_ms: Option<u64>,
}

#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RawLedgerPolicy {
    Spool,
    Refuse,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawShared {
    pub redis: Option<String>,
    pub on_failure: Option<RawSharedPolicy>,
    pub sync_ms: Option<u64>,
    pub prefix: Option<String>,
}

#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RawSharedPolicy {
    Open,
    Closed,
}

/// Where every request's record is written, and what happens when it cannot be.
#[derive(Clone, Debug)]
pub struct LedgerSettings {
    /// `sqlite:PATH` (default `sqlite:switchyard-ledger.db`), `sqlite::memory:`, or
    /// `postgres://…` (may come from `env:`/`file:`); `none` keeps no records (and no
    /// budgets across restarts).
    pub url: Secret,
    pub on_failure: LedgerPolicy,
    /// Records waiting to be written, at most; a full queue makes requests wait.
    pub queue: usize,
    pub batch: usize,
    pub linger: Duration,
}

#[derive(Clone, Debug, PartialEq)]
pub enum LedgerPolicy {
    /// Keep serving; write what the database refuses to this file and replay it later.
    Spool(PathBuf),
    /// Refuse new requests (503) until the database takes writes again.
    Refuse,
}

/// Counters shared with other replicas through Redis, if configured.
#[derive(Clone, Debug)]
pub struct SharedSettings {
    pub redis: Option<Secret>,
    /// When Redis does not answer: keep limiting with what this replica knows (`open`), or
    /// refuse what a shared limit covers (`closed`).
    pub fail_open: bool,
    pub sync: Duration,
    /// Key prefix in Redis, so that several clusters can share one server.
    pub prefix: String,
}

/// A URL written inline, or a reference (`env:NAME`, `file:PATH`) for one holding a password.
fn url_value(text: &str, secrets: &dyn SecretSource) -> Result<Secret, String> {
    if text.starts_with("env:") || text.starts_with("file:") {
        resolve(text, secrets).map(|s| Secret::new(s.expose().trim().to_owned()))
    } else {
        Ok(Secret::new(text.to_owned()))
    }
}

impl LedgerSettings {
    /// Whether requests are recorded at all (`url: none` turns the ledger off).
    pub fn enabled(&self) -> bool {
        self.url.expose() != "none"
    }
}

pub(super) fn ledger(raw: RawLedger, secrets: &dyn SecretSource, errors: &mut Vec<String>) -> LedgerSettings {
    let url = match raw.url.as_deref() {
        None => Secret::new("sqlite:switchyard-ledger.db".to_owned()),
        Some(r) => url_value(r, secrets).unwrap_or_else(|e| {
            errors.push(format!("ledger.url: {e}"));
            Secret::new(String::new())
        }),
    };
    let scheme_ok = ["sqlite:", "postgres://", "postgresql://"].iter().any(|p| url.expose().starts_with(p));
    if !scheme_ok && !url.expose().is_empty() && url.expose() != "none" {
        errors.push("ledger.url: must start with sqlite: or postgres://, or be none".to_owned());
    }
    let on_failure = match raw.on_failure {
        None | Some(RawLedgerPolicy::Spool) => {
            LedgerPolicy::Spool(PathBuf::from(raw.spool_path.as_deref().unwrap_or("switchyard-ledger.spool")))
        }
        Some(RawLedgerPolicy::Refuse) => {
            if raw.spool_path.is_some() {
                errors.push("ledger.spool_path: only used with on_failure: spool".to_owned());
            }
            LedgerPolicy::Refuse
        }
    };
    let queue = raw.queue.unwrap_or(65_536);
    let batch = raw.batch.unwrap_or(512);
    // A request waits for its record before its last byte: a batch that waits for company
    // would make every request wait that long. Batches still form while a write is under way.
    let linger_ms = raw.linger_ms.unwrap_or(0);
    if !(1..=10_000_000).contains(&queue) {
        errors.push("ledger.queue: must be between 1 and 10000000".to_owned());
    }
    if !(1..=100_000).contains(&batch) {
        errors.push("ledger.batch: must be between 1 and 100000".to_owned());
    }
    if linger_ms > 60_000 {
        errors.push("ledger.linger_ms: must be at most 60000".to_owned());
    }
    LedgerSettings { url, on_failure, queue, batch, linger: Duration::from_millis(linger_ms) }
}

pub(super) fn shared(raw: RawShared, secrets: &dyn SecretSource, errors: &mut Vec<String>) -> SharedSettings {
    let redis = raw.redis.as_deref().and_then(|r| match url_value(r, secrets) {
        Ok(url) if url.expose().starts_with("redis://") => Some(url),
        Ok(_) => {
            errors.push("shared.redis: must be a redis:// URL".to_owned());
            None
        }
        Err(e) => {
            errors.push(format!("shared.redis: {e}"));
            None
        }
    });
    let sync_ms = raw.sync_ms.unwrap_or(50);
    if !(1..=10_000).contains(&sync_ms) {
        errors.push("shared.sync_ms: must be between 1 and 10000".to_owned());
    }
    let prefix = raw.prefix.unwrap_or_else(|| "switchyard".to_owned());
    if prefix.is_empty() || prefix.len() > 64 || prefix.chars().any(|c| c.is_whitespace() || c.is_control()) {
        errors.push("shared.prefix: 1 to 64 characters, no spaces".to_owned());
    }
    SharedSettings {
        redis,
        fail_open: !matches!(raw.on_failure, Some(RawSharedPolicy::Closed)),
        sync: Duration::from_millis(sync_ms),
        prefix,
    }
}
