//! A tenant's and a managed key's concurrency limits counted across two replicas through the
//! shared signals' gauges: held for the cluster, a burst far from the limit admitted at once,
//! each replica's unconfirmed admissions held to its share of the room, and the policies when
//! the store is lost.

use std::sync::Arc;

use super::{A_ZERO, B_ZERO, Fake, Hub, Mode, at, replica};
use crate::config::{Config, TenantBudgets, TenantLimits};
use crate::fixture::synthetic_config;
use crate::state::RouterState;
use crate::tenancy::{Admission, Estimate, Refusal};
use crate::time::Time;

const ESTIMATE: Estimate = Estimate { tokens: 10, usd: 0.0 };

fn config(limit: u32) -> Config {
    let mut config = synthetic_config(4, "balanced");
    config.tenants[0].limits.concurrency = Some(limit);
    config
}

fn admit(state: &RouterState, config: &Config, now: Time) -> Result<Admission, Refusal> {
    state.admit(&config.tenants[0], ESTIMATE, now)
}

fn replicas(config: &Config) -> ((RouterState, Arc<Fake>), (RouterState, Arc<Fake>)) {
    let hub = Arc::new(Hub::default());
    (replica(config, &hub, 0, A_ZERO), replica(config, &hub, 1, B_ZERO))
}

#[test]
fn a_tenants_concurrency_limit_holds_across_replicas() {
    let config = config(8);
    let ((a, fa), (b, fb)) = replicas(&config);
    let (ta, tb) = at(1);
    assert!(a.tenancy().gauge(config.tenants[0].id).is_some(), "the tenant has a gauge");
    fa.sync();
    fb.sync();
    // Nothing confirmed yet: each may take half of the room (8 / 2 replicas) at once.
    let mut on_a: Vec<Admission> = (0..4).map(|_| admit(&a, &config, ta).expect("A's share")).collect();
    assert_eq!(admit(&a, &config, ta).err(), Some(Refusal::Concurrency { limit: 8 }), "A's share is taken");
    let mut on_b: Vec<Admission> = (0..3).map(|_| admit(&b, &config, tb).expect("B's share")).collect();
    fa.sync();
    fb.sync();
    fa.sync();
    // Seven in progress: one slot left for the cluster, and only one of them gets it.
    on_b.push(admit(&b, &config, tb).expect("the last slot"));
    fb.sync();
    fa.sync();
    assert!(admit(&a, &config, ta).is_err() && admit(&b, &config, tb).is_err(), "eight in progress");
    // One ends on B: once B's count is confirmed and heard, A may take it.
    b.settle(on_b.pop().expect("held"), 10, 0.0, tb);
    fb.sync();
    fa.sync();
    on_a.push(admit(&a, &config, ta).expect("the freed slot"));
    fa.sync();
    fb.sync();
    assert!(admit(&b, &config, tb).is_err() && admit(&a, &config, ta).is_err());
    for (state, held, now) in [(&a, on_a, ta), (&b, on_b, tb)] {
        for admission in held {
            state.settle(admission, 10, 0.0, now);
        }
    }
    assert_eq!(a.tenancy().in_flight(config.tenants[0].id) + b.tenancy().in_flight(config.tenants[0].id), 0);
}

#[test]
fn unconfirmed_admissions_overshoot_by_at_most_a_cap_per_replica() {
    // Both replicas burst at once on what they last heard: each takes at most half the room,
    // so together they fill the limit and no more.
    let config = config(10);
    let ((a, fa), (b, fb)) = replicas(&config);
    let (ta, tb) = at(1);
    let mut a_took = 0;
    while admit(&a, &config, ta).map(std::mem::forget).is_ok() {
        a_took += 1;
    }
    let mut b_took = 0;
    while admit(&b, &config, tb).map(std::mem::forget).is_ok() {
        b_took += 1;
    }
    assert_eq!((a_took, b_took), (5, 5));
    fa.sync();
    fb.sync();
    fa.sync();
    assert!(admit(&a, &config, ta).is_err() && admit(&b, &config, tb).is_err());
}

#[test]
fn a_keys_concurrency_limit_holds_across_replicas_too() {
    let config = synthetic_config(4, "balanced");
    let ((a, fa), (b, fb)) = replicas(&config);
    let (ta, tb) = at(1);
    let limits = TenantLimits { rpm: None, tpm: None, concurrency: Some(2) };
    let gate_a = a.register_key("key_1", limits, TenantBudgets::default(), ta).expect("registered");
    let gate_b = b.register_key("key_1", limits, TenantBudgets::default(), tb).expect("registered");
    let tenant = &config.tenants[0];
    let one = a.admit_key(tenant, Some(&gate_a), ESTIMATE, ta).expect("first");
    fa.sync();
    fb.sync();
    let two = b.admit_key(tenant, Some(&gate_b), ESTIMATE, tb).expect("second");
    fb.sync();
    fa.sync();
    for (state, gate, now) in [(&a, &gate_a, ta), (&b, &gate_b, tb)] {
        match state.admit_key(tenant, Some(gate), ESTIMATE, now) {
            Err(Refusal::Key(inner)) => assert_eq!(*inner, Refusal::Concurrency { limit: 2 }),
            other => panic!("the key's two are in progress: {other:?}"),
        }
    }
    a.settle(one, 1, 0.0, ta);
    b.settle(two, 1, 0.0, tb);
}

#[test]
fn a_lost_store_counts_alone_when_open_and_refuses_when_closed() {
    let config = config(2);
    let ((a, fa), _) = replicas(&config);
    let ta = Time::from_millis(1);
    fa.set_mode(Mode::FailOpen);
    let held: Vec<Admission> = (0..2).map(|_| admit(&a, &config, ta).expect("its own count")).collect();
    assert!(admit(&a, &config, ta).is_err());
    for admission in held {
        a.settle(admission, 1, 0.0, ta);
    }
    fa.set_mode(Mode::FailClosed);
    assert_eq!(admit(&a, &config, ta).err(), Some(Refusal::Concurrency { limit: 2 }));
}
