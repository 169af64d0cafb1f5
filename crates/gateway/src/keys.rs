//! API keys made at run time (`switchyard keys create`, `POST /admin/keys`): the ledger keeps
//! them (hashed), with each key's own settings; every replica reads the active ones into a table
//! it swaps whole, so a lookup takes no lock, and refreshes it every few seconds and after each
//! admin change.
//!
//! A key with settings gets a [`Scope`]: its tenant as the key narrows it (the planner's view
//! for its requests: aliases, jurisdictions, priority) and, when it has limits or budgets of its
//! own, its [`KeyGate`], registered in the router's stores at load (by name, so replicas
//! sharing Redis share it). A key revoked or changed is picked up at the next refresh; what it
//! no longer uses is retired.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use switchyard_core::calendar::{Period, window_start};
use switchyard_core::config::{Config, KeyId, Tenant, TenantId, key_id, parse_key_hash};
use switchyard_core::tenancy::{KeyGate, KeySettings};
use switchyard_ledger::{Group, KeyRow, Store};

use crate::Gateway;

/// What a managed key with settings of its own changes for its requests.
#[derive(Debug)]
pub(crate) struct Scope {
    /// The tenant as the key narrows it (same id): every plan of its requests uses this.
    pub(crate) view: Arc<Tenant>,
    /// The key's own limits and budgets, when it has any.
    pub(crate) gate: Option<Arc<KeyGate>>,
}

/// A key's tenant, id, expiry (Unix ms) and scope.
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub(crate) tenant: TenantId,
    pub(crate) id: KeyId,
    expires: Option<i64>,
    pub(crate) scope: Option<Arc<Scope>>,
}

/// Active run-time keys, by the SHA-256 of their secrets.
#[derive(Default)]
pub(crate) struct KeyTable {
    by_hash: ArcSwap<HashMap<[u8; 32], Entry>>,
    /// The gates of the table installed last (to retire what a new one no longer uses); held
    /// while a table is installed, so installs do not interleave.
    gates: Mutex<Vec<Arc<KeyGate>>>,
}

impl KeyTable {
    /// The key with this hash, if it is active at `now_ms`.
    pub(crate) fn get(&self, hash: &[u8; 32], now_ms: i64) -> Option<Entry> {
        let table = self.by_hash.load();
        let entry = table.get(hash)?;
        entry.expires.is_none_or(|e| now_ms < e).then(|| entry.clone())
    }

    /// Replaces the table with these rows, registering each key's own limits and budgets in the
    /// router. A key is left out, and said once per refresh, when its tenant is not in the
    /// config, its settings cannot be read, or its limits cannot be kept: it fails closed
    /// rather than working with its tenant's whole reach. Returns the number installed and the
    /// gates whose budgets still want the spend before this start.
    pub(crate) fn install(&self, gw: &Gateway, rows: &[KeyRow]) -> (usize, Vec<Arc<KeyGate>>) {
        let mut gates = self.gates.lock().unwrap_or_else(PoisonError::into_inner);
        let now = gw.now();
        let mut table = HashMap::with_capacity(rows.len());
        let mut new_gates = Vec::new();
        for row in rows {
            let hash = parse_key_hash(&format!("sha256:{}", row.hash));
            let tenant = gw.config.tenants.iter().find(|t| t.name == row.tenant);
            let (Some(hash), Some(tenant)) = (hash, tenant) else {
                tracing::warn!(message = "A key in the ledger names a tenant this config does not have.", key = %row.id, tenant = %row.tenant);
                continue;
            };
            let scope = match scope(gw, &gw.config, tenant, row, now) {
                Ok(scope) => scope,
                Err(why) => {
                    tracing::warn!(message = "A key in the ledger is not loaded.", key = %row.id, %why);
                    continue;
                }
            };
            if let Some(gate) = scope.as_ref().and_then(|s| s.gate.clone()) {
                new_gates.push(gate);
            }
            table.insert(hash, Entry { tenant: tenant.id, id: key_id(&hash), expires: row.expires_ms, scope });
        }
        let n = table.len();
        self.by_hash.store(Arc::new(table));
        gw.router().retire_keys(&gates, &new_gates);
        let preload = new_gates.iter().filter(|g| gw.router().tenancy().wants_preload(g)).cloned().collect();
        *gates = new_gates;
        (n, preload)
    }

    /// Reads the ledger's active keys into the table, and counts the ledger's spend today and
    /// this month against keys whose budgets are new here.
    pub(crate) async fn refresh(&self, gw: &Gateway, store: &Store) -> Result<usize, String> {
        let now_ms = gw.unix_ms(gw.now());
        let rows = store.keys().active(now_ms).await.map_err(|e| e.to_string())?;
        let (n, preload) = self.install(gw, &rows);
        if !preload.is_empty() {
            let to = now_ms + 1;
            let spend = |from| store.spend(Group::Key, from, to);
            let today = spend(window_start(Period::Day, now_ms)).await.map_err(|e| e.to_string())?;
            let month = spend(window_start(Period::Month, now_ms)).await.map_err(|e| e.to_string())?;
            let of = |rows: &[switchyard_ledger::SpendRow], key: &str| {
                rows.iter().find(|r| r.key == key).map_or(0.0, |r| r.cost_usd)
            };
            let now = gw.now();
            for gate in preload {
                let key = gate.key();
                gw.router().tenancy().preload_key(&gate, of(&today, key), of(&month, key), now);
            }
        }
        Ok(n)
    }
}

/// A key's scope from its stored settings: `None` for a key without settings (its tenant's
/// apply as they are).
fn scope(
    gw: &Gateway,
    config: &Config,
    tenant: &Tenant,
    row: &KeyRow,
    now: switchyard_core::Time,
) -> Result<Option<Arc<Scope>>, String> {
    let settings = KeySettings::from_json(&row.settings).map_err(|e| format!("its settings cannot be read: {e}"))?;
    if settings.is_empty() {
        return Ok(None);
    }
    let (view, unmet) = settings.narrow(config, tenant);
    for why in unmet {
        tracing::warn!(message = "A key's setting does not hold with this config; it is narrowed, not widened.", key = %row.id, why = %why);
    }
    let (limits, budgets) = settings.limits();
    let has_own = limits != Default::default() || budgets != Default::default();
    let gate = match has_own {
        true => Some(gw.router().register_key(&row.id, limits, budgets, now)?),
        false => None,
    };
    Ok(Some(Arc::new(Scope { view: Arc::new(view), gate })))
}
