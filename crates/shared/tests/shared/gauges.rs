//! Tenants' and managed keys' concurrency limits across two replicas, each a `RouterState`
//! over its own `RedisSignals`: the limit holds for the cluster, a slot freed on one replica is
//! taken on the other, a key's limit holds as its tenant's does, and a replica that dies stops
//! counting when its lease runs out.

use std::time::{Duration, Instant};

use switchyard_core::config::{Config, TenantBudgets, TenantLimits};
use switchyard_core::fixture::synthetic_config;
use switchyard_core::tenancy::{Admission, Estimate, Refusal};
use switchyard_shared::{Policy, Settings};

use crate::common::{Clock, wait_for};
use crate::signals::{Replica, fast};

const ESTIMATE: Estimate = Estimate { tokens: 10, usd: 0.0 };

fn config(limit: u32) -> Config {
    let mut config = synthetic_config(2, "balanced");
    config.tenants[0].limits.concurrency = Some(limit);
    config
}

fn admit(r: &Replica, config: &Config) -> Result<Admission, Refusal> {
    r.state.admit(&config.tenants[0], ESTIMATE, r.now())
}

/// Admits requests on `r` until it refuses even after a sync.
fn fill(r: &Replica, config: &Config) -> anyhow::Result<Vec<Admission>> {
    let mut held = Vec::new();
    loop {
        match admit(r, config) {
            Ok(a) => held.push(a),
            Err(_) => {
                r.flush()?;
                match admit(r, config) {
                    Ok(a) => held.push(a),
                    Err(_) => return Ok(held),
                }
            }
        }
    }
}

fn settle(r: &Replica, held: Vec<Admission>) {
    for admission in held {
        r.state.settle(admission, 10, 0.0, r.now());
    }
}

#[test]
fn a_tenants_concurrency_limit_of_eight_holds_across_two_replicas() -> anyhow::Result<()> {
    let Some(redis) = switchyard_testkit::redis() else { return Ok(()) };
    let url = redis.url();
    let config = config(8);
    let clock = Clock::new();
    let a = Replica::start(&url, "tenant8", &config, clock, Duration::ZERO, fast(Policy::FailOpen))?;
    let b = Replica::start(&url, "tenant8", &config, clock, Duration::from_secs(10), fast(Policy::FailOpen))?;
    for r in [&a, &b, &a] {
        r.flush()?;
    }
    assert_eq!((a.signals.replicas_alive(), b.signals.replicas_alive()), (2, 2));
    let on_a = fill(&a, &config)?;
    assert!(on_a.len() >= 4, "at least A's share of the room at once: {}", on_a.len());
    for r in [&a, &b] {
        r.flush()?;
    }
    let mut on_b = fill(&b, &config)?;
    assert_eq!(on_a.len() + on_b.len(), 8, "A took {}, B {}", on_a.len(), on_b.len());
    for r in [&b, &a] {
        r.flush()?;
        assert!(admit(r, &config).is_err(), "eight in progress: no ninth");
    }
    // Three end on B: once its count is published, A takes them, and no more.
    let ended = on_b.split_off(on_b.len().saturating_sub(3));
    let freed = ended.len();
    settle(&b, ended);
    for r in [&b, &a] {
        r.flush()?;
    }
    let more = fill(&a, &config)?;
    assert_eq!(more.len(), freed);
    settle(&a, on_a);
    settle(&a, more);
    settle(&b, on_b);
    Ok(())
}

#[test]
fn a_keys_concurrency_limit_holds_across_replicas() -> anyhow::Result<()> {
    let Some(redis) = switchyard_testkit::redis() else { return Ok(()) };
    let url = redis.url();
    let config = synthetic_config(2, "balanced");
    let clock = Clock::new();
    let a = Replica::start(&url, "key2", &config, clock, Duration::ZERO, fast(Policy::FailOpen))?;
    let b = Replica::start(&url, "key2", &config, clock, Duration::ZERO, fast(Policy::FailOpen))?;
    let limits = TenantLimits { rpm: None, tpm: None, concurrency: Some(2) };
    let gate_a =
        a.state.register_key("key_abc", limits, TenantBudgets::default(), a.now()).map_err(anyhow::Error::msg)?;
    let gate_b =
        b.state.register_key("key_abc", limits, TenantBudgets::default(), b.now()).map_err(anyhow::Error::msg)?;
    let tenant = &config.tenants[0];
    let one = a.state.admit_key(tenant, Some(&gate_a), ESTIMATE, a.now()).map_err(|r| anyhow::anyhow!("{r:?}"))?;
    for r in [&a, &b] {
        r.flush()?;
    }
    let two = b.state.admit_key(tenant, Some(&gate_b), ESTIMATE, b.now()).map_err(|r| anyhow::anyhow!("{r:?}"))?;
    for r in [&b, &a] {
        r.flush()?;
    }
    for (r, gate) in [(&a, &gate_a), (&b, &gate_b)] {
        match r.state.admit_key(tenant, Some(gate), ESTIMATE, r.now()) {
            Err(Refusal::Key(inner)) => assert_eq!(*inner, Refusal::Concurrency { limit: 2 }),
            other => anyhow::bail!("the key's two are in progress, one on each replica: {other:?}"),
        }
    }
    a.state.settle(one, 1, 0.0, a.now());
    b.state.settle(two, 1, 0.0, b.now());
    Ok(())
}

#[test]
fn a_dead_replicas_requests_stop_counting_when_its_lease_runs_out() -> anyhow::Result<()> {
    let Some(redis) = switchyard_testkit::redis() else { return Ok(()) };
    let url = redis.url();
    let config = config(4);
    let clock = Clock::new();
    let lease = Duration::from_millis(400);
    let a = Replica::start(&url, "gauge_lease", &config, clock, Duration::ZERO, fast(Policy::FailOpen))?;
    let settings = Settings { lease, ..fast(Policy::FailOpen) };
    let b = Replica::start(&url, "gauge_lease", &config, clock, Duration::ZERO, settings)?;
    let held_b = fill(&b, &config)?;
    assert_eq!(held_b.len(), 4);
    a.flush()?;
    assert!(admit(&a, &config).is_err(), "B holds all four");
    let gauge = a.state.tenancy().gauge(config.tenants[0].id).expect("a gauge");
    // B dies with its four in progress: nobody settles them.
    let died = Instant::now();
    std::mem::forget(held_b);
    drop(b);
    assert!(wait_for(Duration::from_secs(5), || a.signals.gauge_others(gauge) == Some(0)), "B's count never expired");
    assert!(died.elapsed() >= lease - Duration::from_millis(100), "{:?}", died.elapsed());
    assert!(wait_for(Duration::from_secs(5), || a.signals.replicas_alive() == 1), "B is still counted alive");
    let held_a = fill(&a, &config)?;
    assert_eq!(held_a.len(), 4, "B's slots are free again");
    settle(&a, held_a);
    Ok(())
}
