//! Two replicas, each on its own thread and runtime, hold a tenant's daily dollar budget
//! cluster-wide within the documented overshoot; spend counted before a start is counted once
//! however many replicas bring it.

use std::sync::Arc;
use std::time::Duration;

use switchyard_core::counters::{Counters, LimitId};
use switchyard_core::tenancy::{Period, window_of};
use switchyard_shared::{RedisWindows, Settings};

use crate::common::{Clock, budget, calendar_at, remote_used, runtime};

const BUDGET: f64 = 10.0;
const RESERVE: f64 = 0.10;
const TASKS: u64 = 4;
const RUN: Duration = Duration::from_millis(1_000);

/// What one replica granted.
#[derive(Debug, Default)]
struct Load {
    /// Real cost of the requests admitted, as settled.
    spent: f64,
    admitted: u64,
}

#[test]
fn two_replicas_hold_a_daily_budget_cluster_wide() -> anyhow::Result<()> {
    check("budget-fast", Duration::from_millis(50))
}

/// As for allowances, the bound does not depend on the sync interval.
#[test]
fn the_budget_bound_holds_with_a_slow_sync_too() -> anyhow::Result<()> {
    check("budget-slow", Duration::from_millis(500))
}

fn check(prefix: &str, sync_interval: Duration) -> anyhow::Result<()> {
    let Some(redis) = switchyard_testkit::redis() else { return Ok(()) };
    let specs = [budget("tenant/acme/daily_usd", Period::Day, BUDGET)];
    // Mid-day: the run stays in one window.
    let calendar = calendar_at(2025, 6, 15, 12 * 3_600_000);
    let settings = Settings { sync_interval, ..Settings::default() };
    let clock = Clock::new();
    let replicas = [
        RedisWindows::start(&redis.url(), prefix, &specs, calendar, settings.clone())?,
        RedisWindows::start(&redis.url(), prefix, &specs, calendar, settings.clone())?,
    ];
    let threads: Vec<_> = replicas
        .iter()
        .enumerate()
        .map(|(r, windows)| {
            let windows = windows.clone();
            std::thread::spawn(move || -> anyhow::Result<Load> {
                runtime()?.block_on(replica_load(r as u64, windows, clock))
            })
        })
        .collect();
    let mut loads = Vec::new();
    for thread in threads {
        loads.push(thread.join().map_err(|_| anyhow::anyhow!("replica thread panicked"))??);
    }
    let spent: f64 = loads.iter().map(|l| l.spent).sum();

    // The crate's bound: N = 2 replicas, U = max(S, A) = max(10% of $10, $0.10) = $1, no
    // races within a replica (a check and its reservation run with no await between them on
    // one thread, W = 1), and no settlement above its estimate (E = 0).
    let bound = BUDGET + (settings.unconfirmed_share * BUDGET).max(RESERVE);
    eprintln!("sync {sync_interval:?}: {loads:?}, spent ${spent:.4}, bound ${bound:.2}");
    assert!(spent <= bound + 1e-9, "spent ${spent}, over the bound ${bound}");
    assert!(spent >= 0.9 * BUDGET, "spent only ${spent}: limiting far too hard");
    assert!(loads.iter().all(|l| l.admitted > 0), "both replicas admit: {loads:?}");

    // Every settlement reached Redis, once, in today's key, which lives about two days.
    let rt = runtime()?;
    for windows in &replicas {
        rt.block_on(windows.flush())?;
    }
    let day = window_of(Period::Day, calendar.unix_ms(clock.now()));
    let key = format!("{prefix}:budget:tenant/acme/daily_usd:{day}");
    let (used, ttl) = remote_used(&redis.url(), &key)?.unwrap_or((f64::NAN, 0));
    assert!((used - spent).abs() < 1e-6, "Redis holds ${used}, ${spent} was spent");
    assert!(ttl > 2 * 86_400_000 - 60_000 && ttl <= 2 * 86_400_000, "TTL {ttl} ms");
    for windows in &replicas {
        let seen = windows.used(LimitId(0), clock.now());
        assert!((seen - spent).abs() < 1e-6, "{windows:?} sees ${seen}");
    }
    Ok(())
}

/// Tasks that admit a request whenever its $0.10 estimate fits, back to back, each request
/// held a moment by a task of its own and then settled as `Tenancy::settle` does: the estimate
/// given back at the admission's time, the real cost ($0.06 to $0.10) taken now.
async fn replica_load(replica: u64, windows: Arc<RedisWindows>, clock: Clock) -> anyhow::Result<Load> {
    let id = LimitId(0);
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let windows = windows.clone();
            tokio::spawn(async move {
                let mut load = Load::default();
                let mut held = tokio::task::JoinSet::new();
                let mut i = replica * 1_000_000 + t * 10_000;
                while clock.elapsed() < RUN {
                    i += 1;
                    let at = clock.now();
                    if !windows.has_room(id, RESERVE, at) {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                        continue;
                    }
                    windows.adjust(id, -RESERVE, at);
                    let cost = 0.06 + (i * 37 % 41) as f64 / 1_000.0;
                    load.spent += cost;
                    load.admitted += 1;
                    let windows = windows.clone();
                    held.spawn(async move {
                        tokio::time::sleep(Duration::from_millis(1 + i % 3)).await;
                        windows.adjust(id, RESERVE, at);
                        windows.adjust(id, -cost, clock.now());
                    });
                    tokio::task::yield_now().await;
                }
                held.join_all().await;
                load
            })
        })
        .collect();
    let mut total = Load::default();
    for task in tasks {
        let load = task.await?;
        total.spent += load.spent;
        total.admitted += load.admitted;
    }
    Ok(total)
}

/// Every replica brings the ledger's spend at its start: as a floor it counts once, and what
/// is spent after it counts on top.
#[test]
fn spend_before_a_start_counts_once_however_many_replicas_bring_it() -> anyhow::Result<()> {
    let Some(redis) = switchyard_testkit::redis() else { return Ok(()) };
    let specs = [budget("tenant/acme/daily_usd", Period::Day, BUDGET)];
    let calendar = calendar_at(2025, 6, 15, 12 * 3_600_000);
    let clock = Clock::new();
    let rt = runtime()?;
    let id = LimitId(0);
    let a = RedisWindows::start(&redis.url(), "floor", &specs, calendar, Settings::default())?;
    a.preload(id, 4.0, clock.now());
    assert_eq!(a.used(id, clock.now()), 4.0, "counted here at once");
    rt.block_on(a.flush())?;
    a.adjust(id, -1.0, clock.now());
    rt.block_on(a.flush())?;
    // A second replica starts; the ledger now holds the $5 spent so far.
    let b = RedisWindows::start(&redis.url(), "floor", &specs, calendar, Settings::default())?;
    b.preload(id, 5.0, clock.now());
    rt.block_on(b.flush())?;
    b.adjust(id, -2.0, clock.now());
    rt.block_on(b.flush())?;
    rt.block_on(a.flush())?;
    for (name, w) in [("a", &a), ("b", &b)] {
        let seen = w.used(id, clock.now());
        assert!((seen - 7.0).abs() < 1e-9, "{name} sees ${seen}, not $7");
    }
    assert!(a.has_room(id, 1.0, clock.now()) && !a.has_room(id, 3.5, clock.now()));
    let day = window_of(Period::Day, calendar.unix_ms(clock.now()));
    let stored = remote_used(&redis.url(), &format!("floor:budget:tenant/acme/daily_usd:{day}"))?;
    assert!(stored.is_some_and(|(used, _)| (used - 7.0).abs() < 1e-9), "Redis holds {stored:?}");
    Ok(())
}
