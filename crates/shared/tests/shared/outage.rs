//! Redis goes away and comes back on the same port, empty: replicas say so, answer by their
//! policy meanwhile, recover by themselves and push what they did while it was away (capped
//! at one minute's allowance).

use std::time::Duration;

use switchyard_core::counters::{Counters, LimitId};
use switchyard_shared::{Policy, RedisCounters, Settings, Status};

use crate::common::{Clock, OwnRedis, remote_level, runtime, spec, wait_for};

const PER_MINUTE: f64 = 6_000.0;

#[test]
fn fail_open_and_fail_closed_replicas_ride_out_an_outage() -> anyhow::Result<()> {
    let Some(redis) = switchyard_testkit::redis() else { return Ok(()) };
    let (url, port) = (redis.url(), redis.port());
    let specs = [spec("deployment/a/tpm", PER_MINUTE), spec("deployment/a/rpm", 60.0)];
    let settings = |policy| Settings {
        policy,
        sync_interval: Duration::from_millis(20),
        call_timeout: Duration::from_millis(100),
        connect_timeout: Duration::from_millis(300),
        ..Settings::default()
    };
    let clock = Clock::new();
    let rt = runtime()?;
    let open = RedisCounters::start(&url, "outage", &specs, settings(Policy::FailOpen))?;
    let closed = RedisCounters::start(&url, "outage", &specs, settings(Policy::FailClosed))?;
    let (tpm, rpm) = (LimitId(0), LimitId(1));
    open.adjust(tpm, -500.0, clock.now());
    rt.block_on(open.flush())?;
    rt.block_on(closed.flush())?;
    assert!(open.connected() && closed.connected());

    // Redis goes away.
    drop(redis);
    let down = wait_for(Duration::from_secs(3), || !open.connected() && !closed.connected());
    assert!(down, "{open:?} {closed:?}");
    for c in [&open, &closed] {
        let stats = c.stats();
        assert_eq!(stats.status, Status::Disconnected);
        assert!(stats.sync_failures > 0, "{stats:?}");
        assert_eq!(Status::Disconnected.as_str(), "disconnected");
    }
    assert!(open.has_room(tpm, 100.0, clock.now()), "fail-open answers from its view");
    assert!(open.has_room(rpm, 1.0, clock.now()));
    assert!(!closed.has_room(tpm, 100.0, clock.now()), "fail-closed refuses");
    assert!(!closed.has_room(rpm, 1.0, clock.now()));
    // Fail-open keeps limiting by its own view: 5,500 left, 7,000 taken.
    open.adjust(tpm, -7_000.0, clock.now());
    assert!(!open.has_room(tpm, 100.0, clock.now()));
    // Settlements keep coming on the fail-closed replica.
    closed.adjust(tpm, -200.0, clock.now());
    let failures = open.stats().sync_failures;
    assert!(wait_for(Duration::from_secs(1), || open.stats().sync_failures > failures), "it keeps trying");

    // Redis comes back empty on the same port; nobody restarts the replicas.
    let back = clock.elapsed();
    let _restarted = OwnRedis::start(port)?;
    let up = wait_for(Duration::from_secs(10), || open.connected() && closed.connected());
    assert!(up, "recovered by themselves: {open:?} {closed:?}");
    assert!(closed.has_room(rpm, 1.0, clock.now()), "fail-closed answers again");
    rt.block_on(open.flush())?;
    rt.block_on(closed.flush())?;
    // A new full bucket took both pushes: the fail-open replica's 7,000, capped at one
    // minute's allowance, and the fail-closed replica's 200 (the 500 from before went with
    // the old server).
    let level = remote_level(&url, "outage:limit:deployment/a/tpm")?.unwrap_or(f64::NAN);
    let refill = PER_MINUTE / 60.0 * (clock.elapsed() - back).as_secs_f64();
    assert!(level >= -200.0 - 1e-6 && level <= -200.0 + refill + 1e-6, "Redis holds {level}");
    assert!(!open.has_room(tpm, 100.0, clock.now()) && !closed.has_room(tpm, 100.0, clock.now()));
    assert_eq!(open.status(), Status::Connected);
    Ok(())
}
