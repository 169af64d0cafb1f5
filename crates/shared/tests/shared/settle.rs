//! A reservation settled to its real figure leaves only the real use in Redis, seen by every
//! replica; a dropped replica pushes what it had not yet; a new size applies at once.

use std::time::Duration;

use switchyard_core::counters::{Counters, LimitId};
use switchyard_shared::{RedisCounters, Settings};

use crate::common::{Clock, remote_level, runtime, spec, wait_for};

const PER_MINUTE: f64 = 6_000.0;
const KEY: &str = "settle:limit:deployment/a/tpm";

#[test]
fn settling_gives_back_the_estimate_and_takes_the_real_figure() -> anyhow::Result<()> {
    let Some(redis) = switchyard_testkit::redis() else { return Ok(()) };
    let specs = [spec("deployment/a/tpm", PER_MINUTE)];
    let clock = Clock::new();
    let rt = runtime()?;
    let a = RedisCounters::start(&redis.url(), "settle", &specs, Settings::default())?;
    let b = RedisCounters::start(&redis.url(), "settle", &specs, Settings::default())?;
    let id = LimitId(0);
    let level = || remote_level(&redis.url(), KEY).map(|l| l.unwrap_or(f64::NAN));
    // At most this much refill so far (the bucket is full until the first use).
    let refill = || PER_MINUTE / 60.0 * clock.elapsed().as_secs_f64() + 1e-6;

    // A reservation, pushed.
    a.adjust(id, -1_000.0, clock.now());
    rt.block_on(a.flush())?;
    let l = level()?;
    assert!(l >= 5_000.0 && l <= 5_000.0 + refill(), "Redis holds {l}");

    // Its settlement to a real use of 300.
    a.adjust(id, 1_000.0 - 300.0, clock.now());
    rt.block_on(a.flush())?;
    let l = level()?;
    assert!(l >= 5_700.0 && l <= 5_700.0 + refill(), "Redis holds {l}");

    // Reserved and settled within one push: only the real use arrives.
    b.adjust(id, -2_000.0, clock.now());
    b.adjust(id, 2_000.0 - 450.0, clock.now());
    rt.block_on(b.flush())?;
    let l = level()?;
    assert!(l >= 5_250.0 && l <= 5_250.0 + refill(), "Redis holds {l}");

    // Both replicas see it.
    rt.block_on(a.flush())?;
    for (name, c) in [("a", &a), ("b", &b)] {
        let seen = c.level(id, clock.now()).unwrap_or(f64::NAN);
        assert!(seen >= 5_250.0 && seen <= 5_250.0 + refill(), "{name} sees {seen}");
    }

    // Dropping a replica pushes what it had not.
    let before = level()?;
    let slow = Settings { sync_interval: Duration::from_secs(30), ..Settings::default() };
    let c = RedisCounters::start(&redis.url(), "settle", &specs, slow)?;
    c.adjust(id, -250.0, clock.now());
    drop(c);
    let pushed = wait_for(Duration::from_secs(2), || level().is_ok_and(|l| l <= before - 250.0 + refill()));
    assert!(pushed, "a dropped replica's last use reached Redis: {:?}", level());

    // A smaller size (a config change) takes effect at the next push: the level is cut to it.
    let smaller =
        RedisCounters::start(&redis.url(), "settle", &[spec("deployment/a/tpm", 1_000.0)], Settings::default())?;
    smaller.adjust(id, -10.0, clock.now());
    rt.block_on(smaller.flush())?;
    assert_eq!(level()?, 990.0);
    Ok(())
}
