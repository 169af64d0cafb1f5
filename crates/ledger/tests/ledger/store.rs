//! Records in and out of the store: round trip, idempotent batches, spend reports.

use switchyard_ledger::{AttemptRecord, Group, RequestRecord, SpendRow};

use crate::common::{each_backend, record};

#[tokio::test]
async fn records_round_trip_and_persist() {
    each_backend(async |case| {
        let store = case.open().await;
        assert_eq!(store.backend(), case.backend);
        let mut full = record(1);
        full.attempts.insert(
            0,
            AttemptRecord {
                deployment: "aws-d9".into(),
                outcome: "rate_limited".into(),
                started_ms: 0,
                duration_ms: 3,
                output_tokens: 0,
            },
        );
        full.cost_usd = 0.123_456_789;
        let mut bare = RequestRecord::new("req-bare", 7, "t", "key_x");
        bare.status = 503;
        bare.outcome = "exhausted".into();
        assert_eq!(store.insert_batch(&[full.clone(), bare.clone()]).await.unwrap(), 2);
        assert_eq!(store.get("req-1").await.unwrap(), Some(full.clone()));
        assert_eq!(store.get("req-bare").await.unwrap(), Some(bare.clone()));
        assert_eq!(store.get("req-none").await.unwrap(), None);
        assert_eq!(store.count().await.unwrap(), 2);
        store.close().await;

        // Reopening runs no migration twice and finds everything.
        let store = case.open().await;
        assert_eq!(store.count().await.unwrap(), 2);
        assert_eq!(store.get("req-1").await.unwrap(), Some(full));
    })
    .await;
}

#[tokio::test]
async fn odd_values_are_stored_safely() {
    each_backend(async |case| {
        let store = case.open().await;
        let mut odd = record(2);
        odd.alias = "nul\0in alias".into();
        odd.cost_usd = f64::NAN;
        odd.input_tokens = u64::MAX;
        store.insert_batch(std::slice::from_ref(&odd)).await.unwrap();
        let back = store.get("req-2").await.unwrap().unwrap();
        assert_eq!(back.alias, "nul\u{FFFD}in alias");
        assert_eq!(back.cost_usd, 0.0);
        assert_eq!(back.input_tokens, i64::MAX as u64);
    })
    .await;
}

#[tokio::test]
async fn batches_are_idempotent_on_request_id() {
    each_backend(async |case| {
        let store = case.open().await;
        let first: Vec<_> = (0..10).map(record).collect();
        assert_eq!(store.insert_batch(&first).await.unwrap(), 10);
        assert_eq!(store.insert_batch(&first).await.unwrap(), 0, "a re-sent batch adds nothing");
        let overlapping: Vec<_> = (5..20).map(record).collect();
        assert_eq!(store.insert_batch(&overlapping).await.unwrap(), 10);
        let twice = vec![record(30), record(30)];
        assert_eq!(store.insert_batch(&twice).await.unwrap(), 1, "a duplicate within a batch");
        assert_eq!(store.count().await.unwrap(), 21);
        // The first write wins: a replay does not overwrite.
        let mut changed = record(0);
        changed.cost_usd = 99.0;
        store.insert_batch(&[changed]).await.unwrap();
        assert_eq!(store.get("req-0").await.unwrap().unwrap().cost_usd, 0.25);
    })
    .await;
}

#[tokio::test]
async fn spend_groups_sum_right() {
    each_backend(async |case| {
        let store = case.open().await;
        // Records 0..12 at 1000..1012: clouds cycle aws, azure, oci; each costs 0.25.
        let mut records: Vec<_> = (0..12).map(record).collect();
        records[0].cost_usd = 1.0;
        let mut none = RequestRecord::new("req-none", 1_005, "tenant-0", "key_1");
        none.input_tokens = 3;
        records.push(none);
        store.insert_batch(&records).await.unwrap();

        let row = |key: &str, requests, input_tokens, output_tokens, cost_usd| SpendRow {
            key: key.to_owned(),
            requests,
            input_tokens,
            output_tokens,
            cost_usd,
        };
        let sum = |ids: &[usize], f: fn(usize) -> u64| ids.iter().map(|&i| f(i)).sum::<u64>();
        let (aws, azure, oci) = ([0, 3, 6, 9], [1, 4, 7, 10], [2, 5, 8, 11]);
        let input = |i: usize| 100 + i as u64;
        let output = |i: usize| 10 + i as u64;
        assert_eq!(
            store.spend(Group::Cloud, 0, 10_000).await.unwrap(),
            vec![
                row("aws", 4, sum(&aws, input), sum(&aws, output), 1.75),
                row("azure", 4, sum(&azure, input), sum(&azure, output), 1.0),
                row("oci", 4, sum(&oci, input), sum(&oci, output), 1.0),
                row("", 1, 3, 0, 0.0),
            ]
        );
        let tenants = store.spend(Group::Tenant, 0, 10_000).await.unwrap();
        let keys: Vec<_> = tenants.iter().map(|r| (r.key.as_str(), r.requests, r.cost_usd)).collect();
        assert_eq!(keys, vec![("tenant-0", 7, 2.25), ("tenant-1", 6, 1.5)]);
        let by_key = store.spend(Group::Key, 0, 10_000).await.unwrap();
        assert_eq!(
            by_key.iter().map(|r| (r.key.as_str(), r.requests)).collect::<Vec<_>>(),
            [("key_0", 12), ("key_1", 1)]
        );
        let aliases = store.spend(Group::Alias, 0, 10_000).await.unwrap();
        assert_eq!(aliases.iter().map(|r| r.requests).sum::<u64>(), 13);
        assert_eq!(aliases[0], row("alias-0", 3, sum(&[0, 4, 8], input), sum(&[0, 4, 8], output), 1.5));

        // The range is half-open: [1003, 1006) holds records 3, 4, 5 and req-none.
        let window = store.spend(Group::Deployment, 1_003, 1_006).await.unwrap();
        assert_eq!(window.iter().map(|r| r.requests).sum::<u64>(), 4);
        assert_eq!(store.spend(Group::Cloud, 2_000, 3_000).await.unwrap(), vec![]);

        // Deployments: aws-d0 served 0 and 6, aws-d1 served 3 and 9, azure-d0 4 and 10.
        let burn = |deployments: &[&str], from, to| {
            let deployments: Vec<String> = deployments.iter().map(|d| (*d).to_owned()).collect();
            let store = store.clone();
            async move { store.spend_for_deployments(&deployments, from, to).await.unwrap() }
        };
        assert_eq!(burn(&["aws-d0"], 0, 10_000).await, 1.25);
        assert_eq!(burn(&["aws-d0", "aws-d1", "azure-d0"], 0, 10_000).await, 2.25);
        assert_eq!(burn(&["aws-d0", "aws-d1"], 1_003, 1_010).await, 0.75);
        assert_eq!(burn(&["nowhere"], 0, 10_000).await, 0.0);
        assert_eq!(burn(&[], 0, 10_000).await, 0.0);
    })
    .await;
}

#[tokio::test]
async fn batches_of_every_size_count_what_they_add() {
    // SQLite writes a batch as one statement of a fixed size, repeating the last row to fill
    // it, and a batch over 512 as several; the count must still be the records that were new.
    each_backend(async |case| {
        let store = case.open().await;
        let mut next = 0;
        for n in [1, 7, 9, 33, 500, 513, 1100] {
            let batch: Vec<_> = (next..next + n).map(record).collect();
            assert_eq!(store.insert_batch(&batch).await.unwrap(), n as u64, "a batch of {n}");
            next += n;
        }
        assert_eq!(store.count().await.unwrap(), next as u64);
        // Half old, half new, with the last an old one (the one a statement repeats).
        let mixed: Vec<_> = (next - 6..next + 6).rev().map(record).collect();
        assert_eq!(store.insert_batch(&mixed).await.unwrap(), 6);
        assert_eq!(store.count().await.unwrap(), next as u64 + 6);
    })
    .await;
}

#[tokio::test]
async fn attempts_with_odd_text_round_trip() {
    each_backend(async |case| {
        let store = case.open().await;
        let mut r = record(3);
        r.attempts.push(AttemptRecord {
            deployment: "quote\" back\\slash \n\t\r \u{1} ünï 🦀".into(),
            outcome: "nul\0here".into(),
            started_ms: u64::MAX,
            duration_ms: 0,
            output_tokens: 12,
        });
        store.insert_batch(std::slice::from_ref(&r)).await.unwrap();
        let back = store.get("req-3").await.unwrap().unwrap();
        r.attempts[1].outcome = "nul\u{FFFD}here".into();
        assert_eq!(back.attempts, r.attempts);
    })
    .await;
}
