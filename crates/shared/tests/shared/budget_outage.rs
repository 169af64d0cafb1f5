//! Redis goes away and comes back on the same port, empty: budget replicas say so, answer by
//! their policy meanwhile, recover by themselves and push their whole totals for the day, so
//! the day's spend by running replicas survives the empty server. A detached start comes up
//! without Redis; a start against nothing fails.

use std::time::Duration;

use switchyard_core::Time;
use switchyard_core::counters::{Counters, LimitId};
use switchyard_core::tenancy::{Period, window_of};
use switchyard_shared::{Policy, RedisWindows, Settings, SharedError, Status};

use crate::common::{Clock, OwnRedis, budget, calendar_at, remote_used, runtime, wait_for};

const ID: LimitId = LimitId(0);

fn settings(policy: Policy) -> Settings {
    Settings {
        policy,
        sync_interval: Duration::from_millis(20),
        call_timeout: Duration::from_millis(100),
        connect_timeout: Duration::from_millis(300),
        ..Settings::default()
    }
}

fn near(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn fail_open_and_fail_closed_budget_replicas_ride_out_an_outage() -> anyhow::Result<()> {
    let Some(redis) = switchyard_testkit::redis() else { return Ok(()) };
    let (url, port) = (redis.url(), redis.port());
    let specs = [budget("tenant/acme/daily_usd", Period::Day, 10.0)];
    let calendar = calendar_at(2025, 6, 15, 9 * 3_600_000);
    let clock = Clock::new();
    let rt = runtime()?;
    let open = RedisWindows::start(&url, "out", &specs, calendar, settings(Policy::FailOpen))?;
    let closed = RedisWindows::start(&url, "out", &specs, calendar, settings(Policy::FailClosed))?;
    closed.used(ID, clock.now());
    open.adjust(ID, -3.0, clock.now());
    rt.block_on(open.flush())?;
    rt.block_on(closed.flush())?;
    assert!(near(closed.used(ID, clock.now()), 3.0));

    // Redis goes away.
    drop(redis);
    let down = wait_for(Duration::from_secs(3), || !open.connected() && !closed.connected());
    assert!(down, "{open:?} {closed:?}");
    for w in [&open, &closed] {
        let stats = w.stats();
        assert_eq!(stats.status, Status::Disconnected);
        assert!(stats.sync_failures > 0, "{stats:?}");
    }
    assert!(open.has_room(ID, 1.0, clock.now()), "fail-open answers from its view");
    assert!(!closed.has_room(ID, 0.01, clock.now()), "fail-closed refuses");
    // Fail-open keeps counting by its own view, with no cap on unconfirmed use.
    open.adjust(ID, -6.0, clock.now());
    assert!(open.has_room(ID, 1.0, clock.now()) && !open.has_room(ID, 1.5, clock.now()));
    // Settlements keep coming on the fail-closed replica.
    closed.adjust(ID, -0.5, clock.now());
    let failures = open.stats().sync_failures;
    assert!(wait_for(Duration::from_secs(1), || open.stats().sync_failures > failures), "it keeps trying");

    // Redis comes back empty on the same port; nobody restarts the replicas.
    let _restarted = OwnRedis::start(port)?;
    let up = wait_for(Duration::from_secs(10), || open.connected() && closed.connected());
    assert!(up, "recovered by themselves: {open:?} {closed:?}");
    rt.block_on(open.flush())?;
    rt.block_on(closed.flush())?;
    rt.block_on(open.flush())?;
    // The empty server took each replica's whole total for the day: the $3 from before the
    // outage too, not only what was spent meanwhile.
    let day = window_of(Period::Day, calendar.unix_ms(clock.now()));
    let stored = remote_used(&url, &format!("out:budget:tenant/acme/daily_usd:{day}"))?;
    assert!(stored.is_some_and(|(used, _)| near(used, 9.5)), "Redis holds {stored:?}");
    for w in [&open, &closed] {
        assert!(near(w.used(ID, clock.now()), 9.5), "{w:?} sees {}", w.used(ID, clock.now()));
        assert!(w.has_room(ID, 0.5, clock.now()) && !w.has_room(ID, 0.6, clock.now()));
    }
    assert_eq!(closed.status(), Status::Connected);
    Ok(())
}

#[test]
fn a_detached_budget_start_comes_up_without_redis_and_follows_its_policy() -> anyhow::Result<()> {
    let port = switchyard_testkit::free_port();
    let url = format!("redis://app:hunter2@127.0.0.1:{port}/");
    let specs = [budget("t/daily_usd", Period::Day, 1.0)];
    let calendar = calendar_at(2025, 6, 15, 0);
    let started = std::time::Instant::now();
    let refused = RedisWindows::start(&url, "detached", &specs, calendar, settings(Policy::FailOpen));
    match refused {
        Err(e @ SharedError::Unreachable { .. }) => {
            assert!(e.to_string().contains(":***@") && !e.to_string().contains("hunter2"), "{e}")
        }
        other => panic!("started against nothing: {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    let open = RedisWindows::start_detached(&url, "detached", &specs, calendar, settings(Policy::FailOpen))?;
    let closed = RedisWindows::start_detached(&url, "detached", &specs, calendar, settings(Policy::FailClosed))?;
    let down = wait_for(Duration::from_secs(3), || {
        open.status() == Status::Disconnected && closed.status() == Status::Disconnected
    });
    assert!(down, "{open:?} {closed:?}");
    // Fail-open: this replica's own use alone.
    for _ in 0..10 {
        assert!(open.has_room(ID, 0.1, Time::ZERO));
        open.adjust(ID, -0.1, Time::ZERO);
    }
    assert!(!open.has_room(ID, 0.1, Time::ZERO), "the local view still limits");
    assert!(!closed.has_room(ID, 0.01, Time::ZERO));
    let bad = RedisWindows::start_detached("nope", "detached", &specs, calendar, Settings::default());
    assert!(matches!(bad, Err(SharedError::Url { .. })), "{bad:?}");
    Ok(())
}
