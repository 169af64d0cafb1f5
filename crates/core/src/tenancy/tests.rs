//! Admission and settlement against tenants' limits and budgets, on explicit times.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::RouterState;
use crate::config::{Priority, TenantBudgets};
use crate::fixture::synthetic_config;

/// 2026-12-01T23:59:00Z.
const LATE_ON_DEC_1: i64 = 1_796_169_540_000;

fn state_with(
    limits: crate::config::TenantLimits,
    budgets: TenantBudgets,
    calendar: Calendar,
) -> (Config, RouterState) {
    let mut config = synthetic_config(4, "balanced");
    config.tenants[0].limits = limits;
    config.tenants[0].budgets = budgets;
    let counters = Arc::new(crate::counters::LocalCounters::for_config(&config, Time::ZERO));
    let windows = Arc::new(LocalWindows::new(&budget_specs(&config), calendar));
    let state = RouterState::with_stores(&config, Time::ZERO, counters, windows, calendar);
    (config, state)
}

#[test]
fn calendar_arithmetic_round_trips_and_finds_window_ends() {
    for days in [-800_000, -1, 0, 59, 60, 365, 11_016, 20_423, 20_453, 2_932_896] {
        let (y, m, d) = civil_from_days(days);
        assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
    }
    assert_eq!(civil_from_days(20_423), (2025, 12, 1));
    assert_eq!(civil_from_days(0), (1970, 1, 1));
    assert_eq!(format_utc(LATE_ON_DEC_1), "2026-12-01T23:59:00Z");
    assert_eq!(format_utc(window_end(Period::Day, LATE_ON_DEC_1)), "2026-12-02T00:00:00Z");
    assert_eq!(format_utc(window_end(Period::Month, LATE_ON_DEC_1)), "2027-01-01T00:00:00Z");
    assert_eq!(
        format_utc(window_end(Period::Month, days_from_civil(2028, 2, 10) * 86_400_000)),
        "2028-03-01T00:00:00Z"
    );
    assert_eq!(
        window_of(Period::Month, LATE_ON_DEC_1) + 1,
        window_of(Period::Month, window_end(Period::Month, LATE_ON_DEC_1))
    );
}

#[test]
fn a_daily_budget_refuses_then_resets_at_midnight_utc() {
    let calendar = Calendar { unix_ms_at_zero: LATE_ON_DEC_1 };
    let budgets = TenantBudgets { daily_usd: Some(1.0), monthly_usd: Some(100.0) };
    let (config, state) = state_with(Default::default(), budgets, calendar);
    let tenant = &config.tenants[0];
    let t = Time::from_millis(1_000);
    let estimate = Estimate { tokens: 100, usd: 0.4 };
    let a = state.admit(tenant, estimate, t).unwrap();
    let b = state.admit(tenant, estimate, t).unwrap();
    let refused = state.admit(tenant, estimate, t).unwrap_err();
    assert_eq!(
        refused,
        Refusal::Budget { period: Period::Day, usd: 1.0, resets_at_unix_ms: window_end(Period::Day, LATE_ON_DEC_1) }
    );
    // Settled to less than estimated: room comes back.
    state.settle(a, 50, 0.1, t);
    let c = state.admit(tenant, estimate, t).unwrap();
    let left = state.tenancy().budget_left(tenant.id, Period::Day, t).unwrap();
    assert!((left - 0.1).abs() < 1e-12, "0.1 spent, 0.4 and 0.4 held: {left}");
    // Failed requests cost the caller nothing.
    state.settle(b, 0, 0.0, t);
    state.settle(c, 0, 0.0, t);
    let d = state.admit(tenant, Estimate { tokens: 100, usd: 0.9 }, t).unwrap();
    assert!(state.admit(tenant, estimate, t).is_err(), "0.1 + 0.9 spent or held");
    // A minute later it is a new UTC day, whose window starts empty. `d` is billed then, so
    // its 0.9 counts for the new day (its reservation is given back to the old one).
    let tomorrow = Time::from_millis(61_000);
    state.settle(d, 100, 0.9, tomorrow);
    let e = state.admit(tenant, Estimate { tokens: 1, usd: 0.1 }, tomorrow).unwrap();
    assert!(state.admit(tenant, Estimate { tokens: 1, usd: 0.1 }, tomorrow).is_err());
    state.settle(e, 0, 0.0, tomorrow);
}

#[test]
fn rate_and_concurrency_limits_refuse_with_when_to_retry() {
    let limits = crate::config::TenantLimits { rpm: Some(2), tpm: None, concurrency: Some(3) };
    let (config, state) = state_with(limits, TenantBudgets::default(), Calendar::default());
    let tenant = &config.tenants[0];
    let t = Time::ZERO;
    let small = Estimate { tokens: 100, usd: 0.0 };
    let a = state.admit(tenant, small, t).unwrap();
    let b = state.admit(tenant, small, t).unwrap();
    assert_eq!(
        state.admit(tenant, small, t).unwrap_err(),
        Refusal::RequestsPerMinute { limit: 2, retry_after: Duration::from_secs(30) }
    );
    let later = t + Duration::from_secs(60);
    let c = state.admit(tenant, small, later).unwrap();
    assert_eq!(state.tenancy().in_flight(tenant.id), 3);
    let later = later + Duration::from_secs(60);
    assert_eq!(state.admit(tenant, small, later).unwrap_err(), Refusal::Concurrency { limit: 3 });
    for admission in [a, b, c] {
        state.settle(admission, 10, 0.0, later);
    }
    assert_eq!(state.tenancy().in_flight(tenant.id), 0);
    assert!(state.admit(tenant, small, later).is_ok());

    // Tokens per minute: reservations hold the allowance; settling to real use frees the rest.
    let limits = crate::config::TenantLimits { rpm: None, tpm: Some(1_000), concurrency: None };
    let (config, state) = state_with(limits, TenantBudgets::default(), Calendar::default());
    let tenant = &config.tenants[0];
    let a = state.admit(tenant, Estimate { tokens: 600, usd: 0.0 }, t).unwrap();
    assert_eq!(
        state.admit(tenant, Estimate { tokens: 500, usd: 0.0 }, t).unwrap_err(),
        Refusal::TokensPerMinute { limit: 1_000, retry_after: Duration::from_secs(6) },
        "100 tokens short at 1,000 a minute"
    );
    state.settle(a, 200, 0.0, t);
    assert!(state.admit(tenant, Estimate { tokens: 800, usd: 0.0 }, t).is_ok());
}

#[test]
fn spend_before_the_start_counts_against_budgets() {
    let calendar = Calendar { unix_ms_at_zero: LATE_ON_DEC_1 };
    let budgets = TenantBudgets { daily_usd: Some(10.0), monthly_usd: Some(20.0) };
    let (config, state) = state_with(Default::default(), budgets, calendar);
    let tenant = &config.tenants[0];
    state.tenancy().preload(tenant.id, 9.5, 19.0, Time::ZERO);
    assert!(state.admit(tenant, Estimate { tokens: 1, usd: 0.6 }, Time::ZERO).is_err());
    let tomorrow = Time::from_millis(120_000);
    match state.admit(tenant, Estimate { tokens: 1, usd: 1.5 }, tomorrow) {
        Err(Refusal::Budget { period: Period::Month, .. }) => {}
        other => panic!("the month still holds 19 of 20: {other:?}"),
    }
}

#[test]
fn fair_share_and_priority_keep_room_for_other_tenants() {
    let mut config = synthetic_config(2, "balanced");
    config.deployments[0].limits.concurrency = Some(8);
    config.routing.fair_share_above = 0.5;
    let mut other = config.tenants[0].clone();
    other.id = crate::config::TenantId(1);
    config.tenants.push(other);
    let state = RouterState::new(&config, Time::ZERO);
    let (a, b) = (crate::config::TenantId(0), crate::config::TenantId(1));
    let d = config.deployments[0].id;
    let room = |tenant, priority| state.deployment(d).has_concurrency_room(tenant, priority, 0.5);
    // Alone, tenant a may fill half the deployment and then its share, half of it: b is
    // configured too and keeps its room.
    for _ in 0..4 {
        assert!(room(a, Priority::High));
        state.begin_attempt(d, a, 1, Time::ZERO);
    }
    assert!(!room(a, Priority::High), "past the line (4 of 8), a holds its share of two");
    assert!(!room(b, Priority::Low) || state.deployment(d).in_flight < 6, "low priority may fill 6 of 8");
    // b arrives: a tenant with nothing here may start, up to its own share.
    for _ in 0..3 {
        assert!(room(b, Priority::High));
        state.begin_attempt(d, b, 1, Time::ZERO);
    }
    assert!(!room(b, Priority::Normal), "normal work may fill 90%, rounded down: 7 of 8");
    assert!(room(b, Priority::High), "b's fourth, the eighth slot");
    state.begin_attempt(d, b, 1, Time::ZERO);
    assert!(!room(a, Priority::High) && !room(b, Priority::High), "full");
    let error = crate::AttemptError::StreamCut;
    state.end_attempt(d, a, 1, crate::state::Outcome::Failure(&error), Time::ZERO);
    for _ in 0..3 {
        state.end_attempt(d, b, 1, crate::state::Outcome::Failure(&error), Time::ZERO);
    }
    // 4 in flight (a 3, b 1) of 8: at the fair-share line, a is under its half and may start.
    assert!(room(a, Priority::High));
    state.begin_attempt(d, b, 1, Time::ZERO);
    state.begin_attempt(d, b, 1, Time::ZERO);
    state.begin_attempt(d, b, 1, Time::ZERO);
    // b holds 4 of 7: at its share (8 / 2), so b waits while a (3) may go on.
    assert!(!room(b, Priority::High));
    assert!(room(a, Priority::High));
}

#[test]
fn concurrent_admissions_overdraw_by_at_most_one_estimate_per_racing_thread() {
    // Four threads admit $1/64 requests (exact in binary) against a $1 budget at the same
    // instant and settle each to its estimate: the check and the take are two steps, so the day's spend may pass
    // the budget by at most one estimate per thread that raced, never more.
    let calendar = Calendar { unix_ms_at_zero: LATE_ON_DEC_1 - 3_600_000 };
    let budgets = TenantBudgets { daily_usd: Some(1.0), monthly_usd: None };
    let (config, state) = state_with(Default::default(), budgets, calendar);
    let tenant = &config.tenants[0];
    let t = Time::ZERO;
    let admitted = std::sync::atomic::AtomicU32::new(0);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..200 {
                    if let Ok(a) = state.admit(tenant, Estimate { tokens: 1, usd: 1.0 / 64.0 }, t) {
                        admitted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        state.settle(a, 1, 1.0 / 64.0, t);
                    }
                }
            });
        }
    });
    let n = admitted.into_inner();
    assert!((64..=67).contains(&n), "{n} admitted against 64 that fit");
    let left = state.tenancy().budget_left(tenant.id, Period::Day, t).unwrap();
    assert!((-3.0 / 64.0..=0.0).contains(&left), "{left}");
}

#[test]
fn a_keys_own_limits_refuse_while_its_tenant_has_room_and_settle_to_both() {
    let calendar = Calendar { unix_ms_at_zero: LATE_ON_DEC_1 - 3_600_000 };
    let mut config = synthetic_config(4, "balanced");
    config.tenants[0].limits = crate::config::TenantLimits { rpm: None, tpm: Some(10_000), concurrency: Some(10) };
    config.tenants[0].budgets = TenantBudgets { daily_usd: Some(10.0), monthly_usd: None };
    let counters = Arc::new(crate::counters::LocalCounters::for_config(&config, Time::ZERO));
    let windows = Arc::new(LocalWindows::new(&budget_specs(&config), calendar));
    let state = RouterState::with_stores(&config, Time::ZERO, counters.clone(), windows, calendar);
    let tenant_tpm = crate::counters::limit_ids(&config).tenants[0].1.expect("the tenant's tpm");
    let tenant = &config.tenants[0];
    let t = Time::ZERO;
    let own = crate::config::TenantLimits { rpm: None, tpm: Some(1_000), concurrency: Some(2) };
    let dollar = TenantBudgets { daily_usd: Some(1.0), monthly_usd: None };
    let key = state.register_key("key_aaaaaaaaaaaa", own, dollar, t).unwrap();
    let other = state.register_key("key_bbbbbbbbbbbb", own, dollar, t).unwrap();

    let a = state.admit_key(tenant, Some(&key), Estimate { tokens: 800, usd: 0.1 }, t).unwrap();
    assert_eq!(
        state.admit_key(tenant, Some(&key), Estimate { tokens: 500, usd: 0.1 }, t).unwrap_err(),
        Refusal::Key(Box::new(Refusal::TokensPerMinute { limit: 1_000, retry_after: Duration::from_secs(18) })),
        "300 tokens short at 1,000 a minute, while the tenant has 9,200 left"
    );
    assert_eq!(counters.level(tenant_tpm, t), Some(9_200.0), "a refusal takes nothing");
    // Another key of the tenant, and its config keys, are not held by this key's limit.
    let b = state.admit_key(tenant, Some(&other), Estimate { tokens: 500, usd: 0.1 }, t).unwrap();
    let c = state.admit(tenant, Estimate { tokens: 500, usd: 0.1 }, t).unwrap();
    assert_eq!(counters.level(tenant_tpm, t), Some(8_200.0));
    assert_eq!((state.tenancy().in_flight(tenant.id), key.in_flight(), other.in_flight()), (3, 1, 1));

    // Settled to 100 tokens and $0.05: the tenant and the key each get back the rest.
    state.settle(a, 100, 0.05, t);
    assert_eq!(counters.level(tenant_tpm, t), Some(8_900.0));
    let left = state.tenancy().budget_left(tenant.id, Period::Day, t).unwrap();
    assert!((left - (10.0 - 0.05 - 0.2)).abs() < 1e-12, "{left}");
    let d = state.admit_key(tenant, Some(&key), Estimate { tokens: 800, usd: 0.9 }, t).unwrap();
    assert_eq!(key.in_flight(), 1);

    // The key's budget: $0.05 spent and $0.9 held of $1.
    match state.admit_key(tenant, Some(&key), Estimate { tokens: 1, usd: 0.1 }, t) {
        Err(Refusal::Key(inner)) => assert!(matches!(*inner, Refusal::Budget { period: Period::Day, usd: 1.0, .. })),
        other => panic!("the key's daily budget: {other:?}"),
    }
    // Its concurrency (2), once its tokens and dollars have room: the tenant's slot is not kept.
    state.settle(d, 0, 0.0, t);
    let later = t + Duration::from_secs(60);
    let e = state.admit_key(tenant, Some(&key), Estimate { tokens: 1, usd: 0.0 }, later).unwrap();
    let f = state.admit_key(tenant, Some(&key), Estimate { tokens: 1, usd: 0.0 }, later).unwrap();
    let before = state.tenancy().in_flight(tenant.id);
    assert_eq!(
        state.admit_key(tenant, Some(&key), Estimate { tokens: 1, usd: 0.0 }, later).unwrap_err(),
        Refusal::Key(Box::new(Refusal::Concurrency { limit: 2 }))
    );
    assert_eq!(state.tenancy().in_flight(tenant.id), before, "the tenant's place was given back");

    // Loaded again (the key table refreshes): the same allowances, the same count in progress.
    let again = state.register_key("key_aaaaaaaaaaaa", own, dollar, later).unwrap();
    assert_eq!(again.in_flight(), 2);
    assert!(state.admit_key(tenant, Some(&again), Estimate { tokens: 1, usd: 0.0 }, later).is_err());
    for admission in [b, c, e, f] {
        state.settle(admission, 0, 0.0, later);
    }
    assert_eq!((state.tenancy().in_flight(tenant.id), again.in_flight(), other.in_flight()), (0, 0, 0));
    // The tenant's refusal comes first and is the tenant's.
    let g = state.admit(tenant, Estimate { tokens: 10_000, usd: 0.0 }, later).unwrap();
    assert!(matches!(
        state.admit_key(tenant, Some(&again), Estimate { tokens: 1, usd: 0.0 }, later),
        Err(Refusal::TokensPerMinute { limit: 10_000, .. })
    ));
    state.settle(g, 0, 0.0, later);
}

#[test]
fn key_budgets_count_earlier_spend_once() {
    let calendar = Calendar { unix_ms_at_zero: LATE_ON_DEC_1 - 3_600_000 };
    let (config, state) = state_with(Default::default(), TenantBudgets::default(), calendar);
    let tenant = &config.tenants[0];
    let budgets = TenantBudgets { daily_usd: Some(1.0), monthly_usd: Some(2.0) };
    let key = state.register_key("key_cccccccccccc", Default::default(), budgets, Time::ZERO).unwrap();
    assert!(key.has_budgets() && state.tenancy().wants_preload(&key));
    state.tenancy().preload_key(&key, 0.9, 1.0, Time::ZERO);
    state.tenancy().preload_key(&key, 0.9, 1.0, Time::ZERO);
    assert!(!state.tenancy().wants_preload(&key));
    assert!(state.admit_key(tenant, Some(&key), Estimate { tokens: 1, usd: 0.1 }, Time::ZERO).is_ok());
    assert!(
        state.admit_key(tenant, Some(&key), Estimate { tokens: 1, usd: 0.1 }, Time::ZERO).is_err(),
        "0.9 before the start, counted once, and 0.1 held"
    );
}
