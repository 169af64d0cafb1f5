//! API keys: created with a secret shown once, stored only as the secret's SHA-256, with the
//! key's own settings (a JSON object), listed, changed (name, expiry, settings), revoked, and
//! loaded by the gateway while active.

use std::fs::File;
use std::io::Read;

use sha2::{Digest, Sha256};
use sqlx::{ColumnIndex, Decode, Row, Type};

use crate::schema;
use crate::store::{Store, StoreError, on_backend};

/// Every secret starts with this, so a leaked one is easy to recognise (and to scan for).
pub const SECRET_PREFIX: &str = "sk-sy-";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("no key with id {0:?}")]
    Unknown(String),
    #[error("key {0:?} is revoked; a revoked key cannot be changed")]
    Revoked(String),
    #[error("key {0:?} kept changing while this change was made; try again")]
    Contended(String),
    #[error("no randomness for a new key: {0}")]
    Random(std::io::Error),
    #[error("a key's settings must be a JSON object: {0}")]
    Settings(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why [`Keys::change`] did not change a key: the store's reason, or the change's own.
#[derive(Debug)]
pub enum Changed<E> {
    Key(KeyError),
    Refused(E),
}

/// A key as stored: everything but the secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRow {
    /// `key_` and the first 12 hex digits of the hash: stable, short, safe to show and log.
    pub id: String,
    pub tenant: String,
    pub name: Option<String>,
    pub created_ms: i64,
    pub expires_ms: Option<i64>,
    pub revoked_ms: Option<i64>,
    /// The secret's SHA-256, lower-case hex.
    pub hash: String,
    /// The key's own settings, a JSON object (`{}` for none, and for keys made before there
    /// were settings). What they mean is the core's `KeySettings`; the ledger only keeps them.
    pub settings: String,
}

/// The keys of one [`Store`] ([`Store::keys`]).
pub struct Keys<'a> {
    store: &'a Store,
}

/// The SHA-256 of `secret`, lower-case hex: what the ledger stores and the gateway compares.
pub fn hash_secret(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// A new secret: the prefix and 32 bytes from the OS's random source, hex.
fn new_secret() -> Result<String, KeyError> {
    let mut bytes = [0u8; 32];
    File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes)).map_err(KeyError::Random)?;
    Ok(format!("{SECRET_PREFIX}{}", hex(&bytes)))
}

// === impl KeyError ===

impl KeyError {
    /// A bounded label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            KeyError::Unknown(_) => "unknown_key",
            KeyError::Revoked(_) => "revoked_key",
            KeyError::Contended(_) => "contended_key",
            KeyError::Random(_) => "random",
            KeyError::Settings(_) => "bad_settings",
            KeyError::Store(e) => e.kind(),
        }
    }
}

// === impl KeyRow ===

impl KeyRow {
    /// Neither revoked nor expired at `now_ms`.
    pub fn is_active(&self, now_ms: i64) -> bool {
        self.revoked_ms.is_none() && self.expires_ms.is_none_or(|e| e > now_ms)
    }

    /// `revoked`, `expired` or `active` at `now_ms`, as the admin API and the CLI show it.
    pub fn status(&self, now_ms: i64) -> &'static str {
        match (self.revoked_ms, self.is_active(now_ms)) {
            (Some(_), _) => "revoked",
            (None, true) => "active",
            (None, false) => "expired",
        }
    }
}

// === impl Keys ===

impl Store {
    /// This store's API keys.
    pub fn keys(&self) -> Keys<'_> {
        Keys { store: self }
    }
}

impl Keys<'_> {
    /// Creates a key for `tenant`, with no settings of its own, and returns it with its
    /// secret, which is stored nowhere: the caller shows it once.
    pub async fn create(
        &self,
        tenant: &str,
        name: Option<&str>,
        expires_ms: Option<i64>,
        now_ms: i64,
    ) -> Result<(KeyRow, String), KeyError> {
        self.create_with(tenant, name, expires_ms, "{}", now_ms).await
    }

    /// [`Keys::create`], with the key's own settings: a JSON object (checked to be one; what
    /// is in it is the caller's to check).
    pub async fn create_with(
        &self,
        tenant: &str,
        name: Option<&str>,
        expires_ms: Option<i64>,
        settings: &str,
        now_ms: i64,
    ) -> Result<(KeyRow, String), KeyError> {
        check_object(settings)?;
        let q = self.store.db.sql(schema::INSERT_KEY);
        // Two secrets whose hashes share 12 hex digits would share an id: draw again.
        let mut attempts = 0;
        loop {
            let secret = new_secret()?;
            let hash = hash_secret(&secret);
            let row = KeyRow {
                id: format!("key_{}", &hash[..12]),
                tenant: tenant.to_owned(),
                name: name.map(str::to_owned),
                created_ms: now_ms,
                expires_ms,
                revoked_ms: None,
                hash,
                settings: settings.to_owned(),
            };
            let inserted = on_backend!(&self.store.db, |pool| {
                sqlx::query(q)
                    .bind(&row.id)
                    .bind(&row.tenant)
                    .bind(&row.name)
                    .bind(row.created_ms)
                    .bind(row.expires_ms)
                    .bind(&row.hash)
                    .bind(&row.settings)
                    .execute(pool)
                    .await
                    .map(|done| done.rows_affected())
            });
            match inserted {
                Ok(_) => return Ok((row, secret)),
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() && attempts < 3 => attempts += 1,
                Err(e) => return Err(StoreError::Sql(e).into()),
            }
        }
    }

    /// Every key, revoked and expired ones too, oldest first.
    pub async fn list(&self) -> Result<Vec<KeyRow>, KeyError> {
        let q = self.store.db.sql(schema::LIST_KEYS);
        on_backend!(&self.store.db, |pool| {
            let rows = sqlx::query(q).fetch_all(pool).await.map_err(StoreError::Sql)?;
            rows.iter().map(key_of).collect()
        })
    }

    /// The keys that authenticate at `now_ms`: neither revoked nor expired.
    pub async fn active(&self, now_ms: i64) -> Result<Vec<KeyRow>, KeyError> {
        let q = self.store.db.sql(schema::ACTIVE_KEYS);
        on_backend!(&self.store.db, |pool| {
            let rows = sqlx::query(q).bind(now_ms).fetch_all(pool).await.map_err(StoreError::Sql)?;
            rows.iter().map(key_of).collect()
        })
    }

    /// Key `id` as stored; an id that names no key is [`KeyError::Unknown`].
    pub async fn get(&self, id: &str) -> Result<KeyRow, KeyError> {
        let q = self.store.db.sql(schema::KEY_BY_ID);
        let row = on_backend!(&self.store.db, |pool| {
            let row = sqlx::query(q).bind(id).fetch_optional(pool).await.map_err(StoreError::Sql)?;
            row.as_ref().map(key_of).transpose()
        })?;
        row.ok_or_else(|| KeyError::Unknown(id.to_owned()))
    }

    /// Changes key `id` to what `change` makes of it as stored (its new name, expiry and
    /// settings, a JSON object), without losing a change made meanwhile: the row is written only
    /// if it is still what was read, and otherwise read again and `change` applied to that, a
    /// few times at most ([`KeyError::Contended`] then). Returns the key as it now is. A revoked
    /// key is [`KeyError::Revoked`], an unknown one [`KeyError::Unknown`]; `change`'s own
    /// refusal is passed back as it is.
    pub async fn change<E>(
        &self,
        id: &str,
        mut change: impl FnMut(&KeyRow) -> Result<(Option<String>, Option<i64>, String), E>,
    ) -> Result<KeyRow, Changed<E>> {
        for _ in 0..5 {
            let row = self.get(id).await.map_err(Changed::Key)?;
            if row.revoked_ms.is_some() {
                return Err(Changed::Key(KeyError::Revoked(id.to_owned())));
            }
            let (name, expires_ms, settings) = change(&row).map_err(Changed::Refused)?;
            if self.write_if(&row, name.as_deref(), expires_ms, &settings).await.map_err(Changed::Key)? {
                return self.get(id).await.map_err(Changed::Key);
            }
        }
        Err(Changed::Key(KeyError::Contended(id.to_owned())))
    }

    /// Writes `read`'s key's new name, expiry and settings if the stored row is still `read`
    /// (and not revoked); whether it was.
    pub async fn write_if(
        &self,
        read: &KeyRow,
        name: Option<&str>,
        expires_ms: Option<i64>,
        settings: &str,
    ) -> Result<bool, KeyError> {
        check_object(settings)?;
        let q = self.store.db.sql(schema::UPDATE_KEY_IF);
        let written = on_backend!(&self.store.db, |pool| {
            let done = sqlx::query(q)
                .bind(name)
                .bind(expires_ms)
                .bind(settings)
                .bind(&read.id)
                .bind(&read.settings)
                .bind(&read.name)
                .bind(read.expires_ms)
                .execute(pool)
                .await
                .map_err(StoreError::Sql)?;
            done.rows_affected()
        });
        Ok(written > 0)
    }

    /// Revokes key `id` as of `now_ms`. Revoking a revoked key keeps its first revocation time;
    /// an id that names no key is [`KeyError::Unknown`].
    pub async fn revoke(&self, id: &str, now_ms: i64) -> Result<(), KeyError> {
        let (revoke, exists) = (self.store.db.sql(schema::REVOKE_KEY), self.store.db.sql(schema::KEY_EXISTS));
        let known = on_backend!(&self.store.db, |pool| {
            let done = sqlx::query(revoke).bind(now_ms).bind(id).execute(pool).await.map_err(StoreError::Sql)?;
            match done.rows_affected() {
                0 => {
                    let row = sqlx::query(exists).bind(id).fetch_one(pool).await.map_err(StoreError::Sql)?;
                    row.try_get::<i64, _>("n").map_err(StoreError::Sql)? > 0
                }
                _ => true,
            }
        });
        match known {
            true => Ok(()),
            false => Err(KeyError::Unknown(id.to_owned())),
        }
    }
}

/// Settings must be a JSON object (what is in it is the caller's to check).
fn check_object(settings: &str) -> Result<(), KeyError> {
    match serde_json::from_str::<serde_json::Value>(settings) {
        Ok(serde_json::Value::Object(_)) => Ok(()),
        Ok(other) => Err(KeyError::Settings(format!("got {other}"))),
        Err(e) => Err(KeyError::Settings(e.to_string())),
    }
}

fn key_of<'r, R>(r: &'r R) -> Result<KeyRow, KeyError>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
{
    let get = |e| KeyError::Store(StoreError::Sql(e));
    Ok(KeyRow {
        id: r.try_get("id").map_err(get)?,
        tenant: r.try_get("tenant").map_err(get)?,
        name: r.try_get("name").map_err(get)?,
        created_ms: r.try_get("created_ms").map_err(get)?,
        expires_ms: r.try_get("expires_ms").map_err(get)?,
        revoked_ms: r.try_get("revoked_ms").map_err(get)?,
        hash: r.try_get("hash").map_err(get)?,
        settings: r.try_get("settings").map_err(get)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_sha256_hex() {
        // SHA-256 of "abc", from FIPS 180-2.
        assert_eq!(hash_secret("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn secrets_are_fresh_and_shaped() {
        let (a, b) = (new_secret().unwrap(), new_secret().unwrap());
        assert_ne!(a, b);
        assert!(a.starts_with(SECRET_PREFIX));
        assert_eq!(a.len(), SECRET_PREFIX.len() + 64);
    }
}
