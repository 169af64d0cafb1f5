//! API keys: a secret shown once and stored as its hash; list, revoke, expiry.

use switchyard_ledger::{KeyError, hash_secret};

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
