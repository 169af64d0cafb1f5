//! Two replicas, each on its own thread and runtime, hold one tokens-per-minute allowance
//! cluster-wide within the documented overshoot.

use std::sync::Arc;
use std::time::Duration;

use switchyard_core::counters::{Counters, LimitId};
use switchyard_shared::{RedisCounters, Settings};

use crate::common::{Clock, remote_level, runtime, spec};

const PER_MINUTE: f64 = 6_000.0;
const RESERVE: f64 = 100.0;
const TASKS: u64 = 4;
const RUN: Duration = Duration::from_millis(1_200);

/// What one replica granted.
#[derive(Debug, Default)]
struct Load {
    /// Real use of the attempts admitted.
    used: f64,
    admitted: u64,
}

#[test]
fn two_replicas_hold_a_tokens_per_minute_limit_cluster_wide() -> anyhow::Result<()> {
    check(Duration::from_millis(50))
}

/// The bound does not depend on the sync interval: a slow one makes views staler, and the cap
/// on unconfirmed use holds the overshoot.
#[test]
fn the_bound_holds_with_a_slow_sync_too() -> anyhow::Result<()> {
    check(Duration::from_millis(500))
}

fn check(sync_interval: Duration) -> anyhow::Result<()> {
    let Some(redis) = switchyard_testkit::redis() else { return Ok(()) };
    let specs = [spec("tenant/acme/tpm", PER_MINUTE)];
    let settings = Settings { sync_interval, ..Settings::default() };
    let clock = Clock::new();
    let replicas = [
        RedisCounters::start(&redis.url(), "limit", &specs, settings.clone())?,
        RedisCounters::start(&redis.url(), "limit", &specs, settings.clone())?,
    ];
    let threads: Vec<_> = replicas
        .iter()
        .enumerate()
        .map(|(r, counters)| {
            let counters = counters.clone();
            std::thread::spawn(move || -> anyhow::Result<Load> {
                runtime()?.block_on(replica_load(r as u64, counters, clock))
            })
        })
        .collect();
    let mut loads = Vec::new();
    for thread in threads {
        loads.push(thread.join().map_err(|_| anyhow::anyhow!("replica thread panicked"))??);
    }
    let elapsed = clock.elapsed().as_secs_f64();
    let used: f64 = loads.iter().map(|l| l.used).sum();

    // The crate's bound: N = 2 replicas, U = max(S, A) = 600, no races within a replica (a
    // check and its reservation run with no await between them on one thread, W = 1), and no
    // settlement above its estimate (E = 0).
    let unconfirmed = (settings.unconfirmed_share * PER_MINUTE).max(RESERVE);
    let bound = PER_MINUTE * (1.0 + elapsed / 60.0) + unconfirmed;
    eprintln!("sync {sync_interval:?}: {loads:?}, used {used} in {elapsed:.2} s, bound {bound:.0}");
    assert!(used <= bound, "granted {used} tokens, over the bound {bound:.0}");
    assert!(used >= 0.8 * PER_MINUTE, "granted only {used} tokens: limiting far too hard");
    assert!(loads.iter().all(|l| l.admitted > 0), "both replicas admit: {loads:?}");

    // Every use reached Redis, once: its level is one minute's allowance less what was used,
    // plus at most the refill since.
    let rt = runtime()?;
    for counters in &replicas {
        rt.block_on(counters.flush())?;
    }
    let level = remote_level(&redis.url(), "limit:limit:tenant/acme/tpm")?.unwrap_or(f64::NAN);
    let expect = PER_MINUTE - used;
    let refill = PER_MINUTE / 60.0 * clock.elapsed().as_secs_f64();
    assert!(
        level >= expect - 1e-6 && level <= expect + refill + 1e-6,
        "Redis holds {level}, expected {expect} + refill"
    );
    Ok(())
}

/// Tasks that reserve whenever there is room, back to back (a burst arrives faster than any
/// push's round trip), each reservation held a moment by a task of its own and then settled to
/// a real use of 60 to 100 tokens.
async fn replica_load(replica: u64, counters: Arc<RedisCounters>, clock: Clock) -> anyhow::Result<Load> {
    let id = LimitId(0);
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let counters = counters.clone();
            tokio::spawn(async move {
                let mut load = Load::default();
                let mut held = tokio::task::JoinSet::new();
                let mut i = replica * 1_000_000 + t * 10_000;
                while clock.elapsed() < RUN {
                    i += 1;
                    if !counters.has_room(id, RESERVE, clock.now()) {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                        continue;
                    }
                    counters.adjust(id, -RESERVE, clock.now());
                    let used = 60.0 + (i * 37 % 41) as f64;
                    load.used += used;
                    load.admitted += 1;
                    let counters = counters.clone();
                    held.spawn(async move {
                        tokio::time::sleep(Duration::from_millis(1 + i % 3)).await;
                        counters.adjust(id, RESERVE - used, clock.now());
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
        total.used += load.used;
        total.admitted += load.admitted;
    }
    Ok(total)
}
