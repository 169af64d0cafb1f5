//! Blocks: what each failure class covers, expiry, and re-planning until placed or nothing fits.

use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::optimize::{Reason, Snapshot, plan};
use crate::testing::{config, job, now};

#[test]
fn each_class_blocks_its_scope_for_its_ttl() {
    let c = config();
    let o = c.offering("aws/us-east-1/p5/on_demand").unwrap().clone();
    let spot = c.offering("aws/us-east-1/p5/spot").unwrap().clone();
    let other_region = c.offering("aws/eu-north-1/p5/on_demand").unwrap().clone();
    let cases = [
        (FailureClass::NoCapacity, false, false, c.blocks.no_capacity),
        (FailureClass::Quota, true, false, c.blocks.quota),
        (FailureClass::ZoneOutage, true, false, c.blocks.zone),
        (FailureClass::RegionOutage, true, false, c.blocks.region),
        (FailureClass::Unreachable, true, false, c.blocks.unreachable),
        (FailureClass::ClusterLost, true, false, c.blocks.cluster_lost),
        (FailureClass::CloudOutage, true, true, c.blocks.cloud),
        (FailureClass::Auth, true, true, c.blocks.auth),
        (FailureClass::Preempted, false, false, c.blocks.preempted),
    ];
    for (class, covers_spot, covers_other_region, ttl) in cases {
        let mut blocks = Blocks::default();
        let b = blocks.record(&Failure::new(class, "x"), &o, now(), &c.blocks).unwrap();
        assert_eq!(b.until, now() + ttl, "{class:?}");
        assert!(blocks.covering(&o, now()).is_some(), "{class:?}");
        assert_eq!(blocks.covering(&spot, now()).is_some(), covers_spot, "{class:?}");
        assert_eq!(blocks.covering(&other_region, now()).is_some(), covers_other_region, "{class:?}");
        assert!(blocks.covering(&o, now() + ttl).is_none(), "{class:?} expires");
        blocks.prune(now() + ttl);
        assert!(blocks.all().is_empty());
    }
    let mut blocks = Blocks::default();
    assert_eq!(blocks.record(&Failure::new(FailureClass::InvalidJob, "bad"), &o, now(), &c.blocks), None);
    assert_eq!(consequence(FailureClass::InvalidJob, &c.blocks), Consequence::FailJob);
}

#[test]
fn a_second_block_on_a_scope_keeps_the_later_expiry() {
    let c = config();
    let o = c.offering("aws/us-east-1/p5/on_demand").unwrap().clone();
    let mut blocks = Blocks::default();
    blocks.record(&Failure::new(FailureClass::Quota, "first"), &o, now(), &c.blocks);
    let again =
        blocks.record(&Failure::new(FailureClass::Quota, "second"), &o, now() + Duration::from_secs(60), &c.blocks);
    assert_eq!(blocks.all().len(), 1);
    assert_eq!(again.unwrap().until, now() + Duration::from_secs(60) + c.blocks.quota);
}

/// The placing loop's shape: try the best, block what failed, re-plan; it ends placed or with
/// every candidate rejected, each with its reason.
#[test]
fn replanning_after_failures_ends_with_every_candidate_explained() {
    let c = config();
    let mut snapshot = Snapshot::default();
    let job = job("jurisdictions: [eu]\n");
    let mut tried = Vec::new();
    loop {
        let p = plan(&c, &snapshot, &job, now());
        let Some(best) = p.best() else {
            assert!(p.rejected.iter().all(|r| !matches!(r.reason, Reason::NoPrice)));
            assert!(
                p.rejected
                    .iter()
                    .filter(|r| r.jurisdiction == "eu")
                    .all(|r| matches!(r.reason, Reason::Blocked { .. }))
            );
            break;
        };
        tried.push(best.offering.clone());
        let o = c.offering(&best.offering).unwrap().clone();
        snapshot.blocks.record(&Failure::new(FailureClass::NoCapacity, "full"), &o, now(), &c.blocks);
        assert!(tried.len() < 20, "the loop must end");
    }
    assert_eq!(
        tried,
        [
            "oci/eu-frankfurt-1/bm-h100/on_demand",
            "aws/eu-north-1/p5/on_demand",
            "azure/swedencentral/nd-h100/on_demand"
        ]
    );
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 200,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0xb10c_4ed5),
        ..ProptestConfig::default()
    })]

    /// Whatever the failures and times, a block covers its offering exactly until it expires.
    #[test]
    fn blocks_expire_exactly_when_they_say(
        events in proptest::collection::vec((0usize..10, 0u8..9, 0u64..7_200), 1..30),
        probe in 0u64..20_000,
    ) {
        let c = config();
        let classes = [
            FailureClass::NoCapacity, FailureClass::Quota, FailureClass::Auth, FailureClass::Unreachable,
            FailureClass::ZoneOutage, FailureClass::RegionOutage, FailureClass::CloudOutage,
            FailureClass::Preempted, FailureClass::ClusterLost,
        ];
        let mut blocks = Blocks::default();
        let mut events = events;
        events.sort_by_key(|e| e.2);
        for (i, class, at) in &events {
            let o = &c.catalog.offerings[*i % c.catalog.offerings.len()];
            blocks.record(&Failure::new(classes[usize::from(*class)], "x"), o, now() + Duration::from_secs(*at), &c.blocks);
        }
        let t = now() + Duration::from_secs(probe);
        for o in &c.catalog.offerings {
            let expected = blocks.all().iter().any(|b| b.scope.covers(o) && b.until > t);
            prop_assert_eq!(blocks.covering(o, t).is_some(), expected);
        }
        blocks.prune(t);
        prop_assert!(blocks.all().iter().all(|b| b.until > t));
    }
}
