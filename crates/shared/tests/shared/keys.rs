//! A managed key's own limit and budget, registered at run time by two replicas (each a
//! `RouterState` over its own `RedisCounters` and `RedisWindows`, as two gateways are), are one
//! cluster-wide under names stable across replicas; a retired one is no longer synced.

use std::sync::Arc;

use switchyard_core::RouterState;
use switchyard_core::config::{TenantBudgets, TenantLimits};
use switchyard_core::counters::limit_specs;
use switchyard_core::fixture::synthetic_config;
use switchyard_core::tenancy::{Estimate, Period, Refusal, budget_specs, window_of};
use switchyard_shared::{RedisCounters, RedisWindows, Settings};

use crate::common::{Clock, calendar_at, remote_level, remote_used, runtime};

const KEY: &str = "key_0123456789ab";

struct Replica {
    state: RouterState,
    counters: Arc<RedisCounters>,
    windows: Arc<RedisWindows>,
}

#[test]
fn a_keys_limit_and_budget_made_at_run_time_are_shared_by_replicas() -> anyhow::Result<()> {
    let Some(redis) = switchyard_testkit::redis() else { return Ok(()) };
    let url = redis.url();
    // The config's tenant has no limits of its own: only the key's can refuse.
    let config = synthetic_config(2, "balanced");
    let tenant = &config.tenants[0];
    let (specs, _) = limit_specs(&config);
    let budgets = budget_specs(&config);
    let calendar = calendar_at(2025, 6, 15, 12 * 3_600_000);
    let clock = Clock::new();
    let rt = runtime()?;
    let replica = || -> anyhow::Result<Replica> {
        let counters = RedisCounters::start(&url, "keys", &specs, Settings::default())?;
        let windows = RedisWindows::start(&url, "keys", &budgets, calendar, Settings::default())?;
        let state = RouterState::with_stores(&config, clock.now(), counters.clone(), windows.clone(), calendar);
        Ok(Replica { state, counters, windows })
    };
    let (a, b) = (replica()?, replica()?);
    let flush = |r: &Replica| -> anyhow::Result<()> {
        rt.block_on(r.counters.flush())?;
        rt.block_on(r.windows.flush())?;
        Ok(())
    };

    // The key is loaded by each replica after both started, as a key made at run time is.
    let limits = TenantLimits { rpm: None, tpm: Some(1_000), concurrency: None };
    let dollars = TenantBudgets { daily_usd: Some(1.0), monthly_usd: None };
    let gate_a = a.state.register_key(KEY, limits, dollars, clock.now()).map_err(anyhow::Error::msg)?;
    let gate_b = b.state.register_key(KEY, limits, dollars, clock.now()).map_err(anyhow::Error::msg)?;

    // Each replica has served the key once (so each follows the test calendar's day).
    for (r, gate) in [(&a, &gate_a), (&b, &gate_b)] {
        let first = r.state.admit_key(tenant, Some(gate), Estimate { tokens: 0, usd: 0.0 }, clock.now());
        r.state.settle(first.map_err(|r| anyhow::anyhow!("{r:?}"))?, 0, 0.0, clock.now());
    }
    // A reserves 800 tokens and $0.80 of the key's.
    let held = a.state.admit_key(tenant, Some(&gate_a), Estimate { tokens: 800, usd: 0.8 }, clock.now());
    let held = held.map_err(|r| anyhow::anyhow!("{r:?}"))?;
    for r in [&a, &b, &a] {
        flush(r)?;
    }
    let tpm_key = format!("keys:limit:key/{KEY}/tpm");
    let level = remote_level(&url, &tpm_key)?.expect("the key's allowance is in Redis, by its name");
    let refill = |level: f64| level - 200.0;
    assert!((0.0..50.0).contains(&refill(level)), "Redis holds A's reservation: {level}");
    let day = window_of(Period::Day, calendar.unix_ms(clock.now()));
    let budget_key = format!("keys:budget:key/{KEY}/daily_usd:{day}");
    let (used, _) = remote_used(&url, &budget_key)?.expect("the key's budget is in Redis, by its name");
    assert!((used - 0.8).abs() < 1e-9, "{used}");

    // B sees it: the key's 300 more tokens, or $0.30 more, do not fit there.
    match b.state.admit_key(tenant, Some(&gate_b), Estimate { tokens: 300, usd: 0.0 }, clock.now()) {
        Err(Refusal::Key(inner)) => assert!(matches!(*inner, Refusal::TokensPerMinute { limit: 1_000, .. })),
        other => panic!("B must see A's tokens: {other:?}"),
    }
    match b.state.admit_key(tenant, Some(&gate_b), Estimate { tokens: 1, usd: 0.3 }, clock.now()) {
        Err(Refusal::Key(inner)) => assert!(matches!(*inner, Refusal::Budget { period: Period::Day, .. })),
        other => panic!("B must see A's dollars: {other:?}"),
    }
    // The tenant's other requests are not the key's.
    let other = b.state.admit(tenant, Estimate { tokens: 300, usd: 0.3 }, clock.now());
    b.state.settle(other.map_err(|r| anyhow::anyhow!("{r:?}"))?, 0, 0.0, clock.now());

    // A settles to real use (100 tokens, $0.10): both replicas get the rest back.
    a.state.settle(held, 100, 0.1, clock.now());
    for r in [&a, &b] {
        flush(r)?;
    }
    let fits = b.state.admit_key(tenant, Some(&gate_b), Estimate { tokens: 800, usd: 0.8 }, clock.now());
    let fits = fits.map_err(|r| anyhow::anyhow!("B sees the give-back: {r:?}"))?;
    b.state.settle(fits, 0, 0.0, clock.now());
    flush(&b)?;

    // Revoked on A: A no longer syncs the key's allowance; what it does with it stays local.
    a.state.retire_keys(std::slice::from_ref(&gate_a), &[]);
    let before = remote_level(&url, &tpm_key)?.expect("level");
    let late = a.state.admit_key(tenant, Some(&gate_a), Estimate { tokens: 500, usd: 0.0 }, clock.now());
    drop(late);
    flush(&a)?;
    let after = remote_level(&url, &tpm_key)?.expect("level");
    assert!((after - before).abs() < 1e-9, "a retired allowance is not pushed: {before} then {after}");
    // Loaded again, it is synced again, with what was done meanwhile.
    let again = a.state.register_key(KEY, limits, dollars, clock.now()).map_err(anyhow::Error::msg)?;
    assert_eq!(again.in_flight(), gate_a.in_flight());
    flush(&a)?;
    let pushed = remote_level(&url, &tpm_key)?.expect("level");
    assert!(pushed < before - 400.0, "the 500 reserved while retired arrive: {before} then {pushed}");
    Ok(())
}
