//! API keys made at run time (`switchyard keys create`, `POST /admin/keys`): the ledger keeps
//! them (hashed); every replica reads the active ones into a table it swaps whole, so a lookup
//! takes no lock, and refreshes it every few seconds and after each admin change.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use switchyard_core::config::{Config, KeyId, TenantId, key_id, parse_key_hash};
use switchyard_ledger::{KeyRow, Store};

/// A key's tenant, id and expiry (Unix ms), by the SHA-256 of its secret.
type ByHash = HashMap<[u8; 32], (TenantId, KeyId, Option<i64>)>;

/// Active run-time keys.
#[derive(Default)]
pub(crate) struct KeyTable {
    by_hash: ArcSwap<ByHash>,
}

impl KeyTable {
    /// The tenant and id of the key with this hash, if it is active at `now_ms`.
    pub(crate) fn get(&self, hash: &[u8; 32], now_ms: i64) -> Option<(TenantId, KeyId)> {
        let table = self.by_hash.load();
        let (tenant, id, expires) = table.get(hash)?;
        expires.is_none_or(|e| now_ms < e).then_some((*tenant, *id))
    }

    /// Replaces the table with these rows (keys of tenants the config does not have are left
    /// out, and said once per refresh).
    pub(crate) fn install(&self, config: &Config, rows: &[KeyRow]) -> usize {
        let mut table = HashMap::with_capacity(rows.len());
        for row in rows {
            let hash = parse_key_hash(&format!("sha256:{}", row.hash));
            let tenant = config.tenants.iter().find(|t| t.name == row.tenant);
            match (hash, tenant) {
                (Some(hash), Some(tenant)) => {
                    table.insert(hash, (tenant.id, key_id(&hash), row.expires_ms));
                }
                _ => {
                    tracing::warn!(message = "A key in the ledger names a tenant this config does not have.", key = %row.id, tenant = %row.tenant)
                }
            }
        }
        let n = table.len();
        self.by_hash.store(Arc::new(table));
        n
    }

    /// Reads the ledger's active keys into the table.
    pub(crate) async fn refresh(&self, config: &Config, store: &Store, now_ms: i64) -> Result<usize, String> {
        let rows = store.keys().active(now_ms).await.map_err(|e| e.to_string())?;
        Ok(self.install(config, &rows))
    }
}
