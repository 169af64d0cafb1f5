//! Redis goes away and comes back on the same port, empty: a fail-open replica keeps serving on
//! its own count, a fail-closed one starts nothing where a concurrency limit is set; both say
//! so (status, counts, one log line each way), recover by themselves, and then push what they
//! did meanwhile: the other replica learns the ejection made during the outage and counts the
//! attempts begun then.

use std::io::Write;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use switchyard_shared::{Policy, Status};

use crate::common::{Clock, OwnRedis, wait_for};
use crate::signals::{DOWN, Replica, config, fast};

/// Every log line of this test binary (one subscriber for the process: the sync threads log
/// from threads of their own).
static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct Logs;

impl Write for Logs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        LOGS.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let subscriber = tracing_subscriber::fmt().with_writer(|| Logs).with_ansi(false).finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
    });
}

fn logged(text: &str) -> bool {
    String::from_utf8_lossy(&LOGS.lock().unwrap_or_else(|e| e.into_inner())).contains(text)
}

#[test]
fn replicas_ride_out_an_outage_by_their_policy_and_catch_up() -> anyhow::Result<()> {
    capture_logs();
    let Some(redis) = switchyard_testkit::redis() else { return Ok(()) };
    let (url, port) = (redis.url(), redis.port());
    // Ejections long enough to outlast the outage.
    let config = config(Duration::from_secs(30));
    let clock = Clock::new();
    let open = Replica::start(&url, "outage", &config, clock, Duration::ZERO, fast(Policy::FailOpen))?;
    let closed = Replica::start(&url, "outage", &config, clock, Duration::from_secs(5), fast(Policy::FailClosed))?;
    let (d0, d1, d2) = (config.deployments[0].id, config.deployments[1].id, config.deployments[2].id);
    assert!(closed.begin(d0)?);
    closed.flush()?;
    open.flush()?;
    assert_eq!(open.signals.others_in_flight(d0), 1);

    // Redis goes away.
    drop(redis);
    let down = wait_for(Duration::from_secs(3), || !open.signals.connected() && !closed.signals.connected());
    assert!(down, "{:?} {:?}", open.signals, closed.signals);
    for r in [&open, &closed] {
        let stats = r.signals.stats();
        assert_eq!(stats.status, Status::Disconnected);
        assert!(stats.sync_failures > 0, "{stats:?}");
    }
    assert!(wait_for(Duration::from_secs(2), || logged("shared signals: Redis does not answer; fail-open")));
    assert!(logged("shared signals: Redis does not answer; fail-closed"));
    // Fail-open: its own attempts alone count (the other replica's one is not seen), with no
    // cap between confirmations; the limit still holds for what it does itself.
    for _ in 0..4 {
        assert!(open.try_begin(d0), "fail-open serves on its own count");
    }
    assert!(!open.try_begin(d0));
    // It keeps detecting outliers, and what it learns waits for Redis.
    for _ in 0..3 {
        open.fail(d2, &DOWN);
    }
    assert!(!open.plans(d2));
    // Fail-closed: nothing starts where a concurrency limit is set; elsewhere it serves.
    closed.end(d0);
    assert!(!closed.try_begin(d0) && !closed.plans(d0));
    assert!(closed.try_begin(d1), "a deployment without a concurrency limit is not held");
    assert!(closed.plans(d2), "it has not heard of the ejection");

    // Redis comes back empty on the same port; nobody restarts the replicas.
    let _restarted = OwnRedis::start(port)?;
    let up = wait_for(Duration::from_secs(10), || open.signals.connected() && closed.signals.connected());
    assert!(up, "recovered by themselves: {:?} {:?}", open.signals, closed.signals);
    assert!(wait_for(Duration::from_secs(2), || logged("shared signals: Redis answers again")));
    for r in [&open, &closed, &open] {
        r.flush()?;
    }
    // What was done meanwhile arrived: the ejection, and the four attempts in flight.
    assert!(!closed.plans(d2), "the ejection made during the outage reached the other replica");
    assert!(closed.state.deployment(d2).health.is_ejected(closed.now()));
    assert_eq!(closed.signals.others_in_flight(d0), 4);
    assert!(!closed.begin(d0)?, "connected again, it counts the cluster: full");
    assert_eq!(open.signals.others_in_flight(d0), 0);
    open.end(d0);
    open.flush()?;
    assert!(closed.begin(d0)?, "and takes a slot given back");
    assert_eq!(open.signals.status(), Status::Connected);
    Ok(())
}
