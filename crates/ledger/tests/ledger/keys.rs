//! API keys: a secret shown once and stored as its hash; list, revoke, expiry.

use switchyard_ledger::{Backend, Changed, KeyError, hash_secret};

use crate::common::each_backend;

#[tokio::test]
async fn keys_are_created_hashed_listed_revoked_and_expire() {
    each_backend(async |case| {
        let store = case.open().await;
        let keys = store.keys();
        let (row, secret) = keys.create("acme", Some("ci"), None, 1_000).await.unwrap();
        assert!(secret.starts_with("sk-sy-") && secret.len() == 6 + 64, "{secret}");
        assert_eq!(row.hash, hash_secret(&secret));
        assert_eq!(row.id, format!("key_{}", &row.hash[..12]));
        assert_eq!((row.tenant.as_str(), row.name.as_deref(), row.created_ms), ("acme", Some("ci"), 1_000));
        assert_eq!((row.expires_ms, row.revoked_ms), (None, None));

        let (temp, temp_secret) = keys.create("acme", None, Some(2_000), 1_001).await.unwrap();
        assert_ne!(temp_secret, secret);
        assert_ne!(temp.id, row.id);
        let (other, _) = keys.create("globex", None, None, 1_002).await.unwrap();

        // Only hashes are stored: no column holds a secret.
        let listed = keys.list().await.unwrap();
        assert_eq!(listed, vec![row.clone(), temp.clone(), other.clone()]);

        let ids = |rows: Vec<switchyard_ledger::KeyRow>| rows.into_iter().map(|r| r.id).collect::<Vec<_>>();
        assert_eq!(ids(keys.active(1_999).await.unwrap()), [row.id.as_str(), &temp.id, &other.id]);
        assert_eq!(ids(keys.active(2_000).await.unwrap()), [row.id.as_str(), &other.id], "expired at its expiry");

        keys.revoke(&other.id, 1_500).await.unwrap();
        assert_eq!(ids(keys.active(1_600).await.unwrap()), [row.id.as_str(), &temp.id]);
        keys.revoke(&other.id, 1_700).await.unwrap();
        let revoked = keys.list().await.unwrap().into_iter().find(|k| k.id == other.id).unwrap();
        assert_eq!(revoked.revoked_ms, Some(1_500), "revoking again keeps the first time");
        assert!(!revoked.is_active(1_600) && row.is_active(1_600) && !temp.is_active(2_000));

        let err = keys.revoke("key_nosuchkey0", 1_800).await.unwrap_err();
        assert!(matches!(&err, KeyError::Unknown(id) if id == "key_nosuchkey0"), "{err:?}");
        assert_eq!(err.to_string(), "no key with id \"key_nosuchkey0\"");
        assert_eq!(err.kind(), "unknown_key");
    })
    .await;
}

#[tokio::test]
async fn keys_carry_their_settings_and_keys_made_before_settings_read_as_none() {
    each_backend(async |case| {
        // A database at schema version 1, as a build before key settings left it, with a key.
        let old_hash = hash_secret("sk-sy-old");
        let v1 = [
            "CREATE TABLE schema_version (version BIGINT PRIMARY KEY, applied_ms BIGINT NOT NULL)".to_owned(),
            "INSERT INTO schema_version VALUES (1, 0)".to_owned(),
            "CREATE TABLE keys (id TEXT PRIMARY KEY, tenant TEXT NOT NULL, name TEXT, created_ms BIGINT NOT NULL,
                expires_ms BIGINT, revoked_ms BIGINT, hash TEXT NOT NULL UNIQUE)"
                .to_owned(),
            format!(
                "INSERT INTO keys VALUES ('key_{}', 'acme', 'old', 1000, NULL, NULL, '{old_hash}')",
                &old_hash[..12]
            ),
        ];
        run(case, &v1).await;

        let store = case.open().await;
        let keys = store.keys();
        let listed = keys.list().await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!((listed[0].name.as_deref(), listed[0].settings.as_str()), (Some("old"), "{}"));
        assert_eq!(keys.active(2_000).await.unwrap(), listed, "the old key still authenticates");

        let settings = r#"{"aliases":["chat"],"jurisdictions":["eu"],"priority":"low","tpm":1000,"daily_usd":2.5}"#;
        let (row, _) = keys.create_with("acme", Some("narrow"), None, settings, 3_000).await.unwrap();
        assert_eq!(row.settings, settings);
        let listed = keys.list().await.unwrap();
        assert_eq!(listed[1], row, "read back as written");
        let (plain, _) = keys.create("acme", None, None, 4_000).await.unwrap();
        assert_eq!(plain.settings, "{}");

        for bad in ["[1]", "not json", "\"x\""] {
            let err = keys.create_with("acme", None, None, bad, 5_000).await.unwrap_err();
            assert!(matches!(err, KeyError::Settings(_)) && err.kind() == "bad_settings", "{bad}: {err}");
        }
        assert_eq!(keys.list().await.unwrap().len(), 3, "nothing stored for bad settings");
        store.close().await;
        // Opening again migrates nothing more.
        case.open().await.close().await;
    })
    .await;
}

/// Runs `statements` on the case's database directly, outside the ledger.
async fn run(case: &crate::common::Case, statements: &[String]) {
    use sqlx::{AssertSqlSafe, Connection, Executor};
    match case.backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&format!("{}?mode=rwc", case.url)).await.unwrap();
            for s in statements {
                conn.execute(AssertSqlSafe(s.as_str())).await.unwrap();
            }
            conn.close().await.unwrap();
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&case.url).await.unwrap();
            for s in statements {
                conn.execute(AssertSqlSafe(s.as_str())).await.unwrap();
            }
            conn.close().await.unwrap();
        }
    }
}

/// `change` as a caller that sets the key to fixed values uses it.
async fn set(
    keys: &switchyard_ledger::Keys<'_>,
    id: &str,
    name: Option<&str>,
    expires_ms: Option<i64>,
    settings: &str,
) -> Result<switchyard_ledger::KeyRow, KeyError> {
    let to = (name.map(str::to_owned), expires_ms, settings.to_owned());
    keys.change(id, |_| Ok::<_, ()>(to.clone())).await.map_err(|e| match e {
        Changed::Key(e) => e,
        Changed::Refused(()) => unreachable!("never refused"),
    })
}

#[tokio::test]
async fn a_keys_name_expiry_and_settings_change_until_it_is_revoked() {
    each_backend(async |case| {
        let store = case.open().await;
        let keys = store.keys();
        let (row, _) = keys.create_with("acme", Some("ci"), None, r#"{"rpm":10}"#, 1_000).await.unwrap();
        let changed = set(&keys, &row.id, Some("deploy"), Some(9_000), r#"{"rpm":20,"concurrency":2}"#).await.unwrap();
        assert_eq!((changed.name.as_deref(), changed.expires_ms), (Some("deploy"), Some(9_000)));
        assert_eq!(changed.settings, r#"{"rpm":20,"concurrency":2}"#);
        assert_eq!((changed.hash.as_str(), changed.created_ms), (row.hash.as_str(), 1_000), "the secret stays");
        assert_eq!(keys.get(&row.id).await.unwrap(), changed);
        let cleared = set(&keys, &row.id, None, None, "{}").await.unwrap();
        assert_eq!((cleared.name, cleared.expires_ms, cleared.settings.as_str()), (None, None, "{}"));

        let err = set(&keys, &row.id, None, None, "[1]").await.unwrap_err();
        assert_eq!(err.kind(), "bad_settings", "{err}");
        let err = set(&keys, "key_nosuchkey0", None, None, "{}").await.unwrap_err();
        assert!(matches!(&err, KeyError::Unknown(id) if id == "key_nosuchkey0"), "{err:?}");
        keys.revoke(&row.id, 2_000).await.unwrap();
        let err = set(&keys, &row.id, Some("again"), None, "{}").await.unwrap_err();
        assert!(matches!(&err, KeyError::Revoked(_)) && err.kind() == "revoked_key", "{err:?}");
        assert_eq!(keys.get(&row.id).await.unwrap().name, None, "a revoked key is not changed");
    })
    .await;
}

#[tokio::test]
async fn a_change_made_meanwhile_is_not_overwritten() {
    each_backend(async |case| {
        let store = case.open().await;
        let keys = store.keys();
        let (row, _) = keys.create_with("acme", None, None, r#"{"rpm":10}"#, 1_000).await.unwrap();
        // Read, then another change lands (a name set, settings changed): a write from the
        // stale read is refused, null name and expiry compared as equal.
        let stale = keys.get(&row.id).await.unwrap();
        set(&keys, &row.id, Some("ops"), None, r#"{"rpm":10,"tpm":500}"#).await.unwrap();
        assert!(!keys.write_if(&stale, None, None, r#"{"rpm":20}"#).await.unwrap(), "the row moved on");
        let fresh = keys.get(&row.id).await.unwrap();
        assert!(keys.write_if(&fresh, fresh.name.as_deref(), Some(9_000), &fresh.settings).await.unwrap());
        // `change` reads again when it must: here it applies to what is stored.
        let mut seen = Vec::new();
        let changed = keys
            .change(&row.id, |r| {
                seen.push(r.settings.clone());
                Ok::<_, ()>((r.name.clone(), r.expires_ms, r.settings.replace("10", "20")))
            })
            .await
            .unwrap();
        assert_eq!(seen, [r#"{"rpm":10,"tpm":500}"#]);
        assert_eq!((changed.name.as_deref(), changed.expires_ms), (Some("ops"), Some(9_000)));
        assert_eq!(changed.settings, r#"{"rpm":20,"tpm":500}"#);
        keys.revoke(&row.id, 2_000).await.unwrap();
        let revoked = keys.change(&row.id, |r| Ok::<_, ()>((r.name.clone(), None, "{}".to_owned()))).await;
        assert!(matches!(revoked, Err(switchyard_ledger::Changed::Key(KeyError::Revoked(_)))), "{revoked:?}");
        let refused = keys.get(&row.id).await.unwrap();
        assert_eq!(refused.settings, r#"{"rpm":20,"tpm":500}"#);
    })
    .await;
}
