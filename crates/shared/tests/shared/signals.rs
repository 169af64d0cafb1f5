//! Deployment signals between two replicas, each a `RouterState` over its own `RedisSignals`
//! (as two gateways are), their clocks started 10 s apart: an ejection, a cool-down and a
//! recovery on one reach the other; a concurrency limit of 4 holds across both; a replica that
//! dies stops counting when its lease runs out; and `signals.lua` merges as the core does.

use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard_core::config::{Config, Priority, TenantId};
use switchyard_core::counters::LocalCounters;
use switchyard_core::fixture::{bench_request, synthetic_config};
use switchyard_core::health::Availability;
use switchyard_core::signals::{Heard, Signal, signal_specs};
use switchyard_core::state::Outcome;
use switchyard_core::tenancy::{Calendar, LocalWindows, budget_specs};
use switchyard_core::{AttemptError, DeploymentId, RouterState, SplitMix64, Time};
use switchyard_shared::{Policy, RedisSignals, Settings};

use crate::common::{Clock, runtime, wait_for};

pub(crate) const DOWN: AttemptError = AttemptError::ServerError { status: 502 };

/// One replica: its router state, its store, and where its clock stands against the test's.
pub(crate) struct Replica {
    pub(crate) state: RouterState,
    pub(crate) signals: Arc<RedisSignals>,
    clock: Clock,
    ahead: Duration,
    config: Config,
}

impl Replica {
    /// A replica whose core time runs `ahead` of the test clock (it started that much earlier),
    /// on a calendar that maps it to the same wall clock as every other replica's.
    pub(crate) fn start(
        url: &str,
        prefix: &str,
        config: &Config,
        clock: Clock,
        ahead: Duration,
        settings: Settings,
    ) -> anyhow::Result<Replica> {
        let calendar = Calendar { unix_ms_at_zero: clock.unix_ms_at_start() - ahead.as_millis() as i64 };
        let counters = Arc::new(LocalCounters::for_config(config, Time::ZERO));
        let windows = Arc::new(LocalWindows::new(&budget_specs(config), calendar));
        let signals = RedisSignals::start(url, prefix, &signal_specs(config), settings)?;
        let state = RouterState::with_stores(config, Time::ZERO, counters, windows, calendar)
            .with_signals(signals.clone())
            .map_err(anyhow::Error::msg)?;
        Ok(Replica { state, signals, clock, ahead, config: config.clone() })
    }

    pub(crate) fn now(&self) -> Time {
        self.clock.now() + self.ahead
    }

    /// Whether the replica would plan `d` for a request now.
    pub(crate) fn plans(&self, d: DeploymentId) -> bool {
        let mut rng = SplitMix64::new(3);
        let plan =
            switchyard_core::plan::plan(&self.config, &self.state, &bench_request(&self.config), self.now(), &mut rng);
        plan.is_ok_and(|p| p.deployments.contains(&d))
    }

    pub(crate) fn fail(&self, d: DeploymentId, error: &AttemptError) {
        let now = self.now();
        self.state.begin_attempt(d, TenantId(0), 10, now);
        self.state.end_attempt(d, TenantId(0), 10, Outcome::Failure(error), now);
    }

    pub(crate) fn succeed(&self, d: DeploymentId) {
        let now = self.now();
        self.state.begin_attempt(d, TenantId(0), 10, now);
        self.end(d);
    }

    pub(crate) fn end(&self, d: DeploymentId) {
        let ok =
            Outcome::Success { ttft: None, duration: Duration::from_millis(5), output_tokens: 1, total_tokens: 10 };
        self.state.end_attempt(d, TenantId(0), 10, ok, self.now());
    }

    pub(crate) fn try_begin(&self, d: DeploymentId) -> bool {
        self.state.try_begin_attempt(d, TenantId(0), Priority::High, 10, self.now())
    }

    /// Begins an attempt, after a sync if the unconfirmed cap asks for one.
    pub(crate) fn begin(&self, d: DeploymentId) -> anyhow::Result<bool> {
        if self.try_begin(d) {
            return Ok(true);
        }
        self.flush()?;
        Ok(self.try_begin(d))
    }

    pub(crate) fn flush(&self) -> anyhow::Result<()> {
        runtime()?.block_on(self.signals.flush())?;
        Ok(())
    }

    pub(crate) fn availability(&self, d: DeploymentId) -> Availability {
        let now = self.now();
        self.state.deployment_at(d, now).health.availability(now)
    }
}

/// Four deployments: `d0` with a concurrency limit of 4, the others unlimited; ejections of
/// `base_ejection` first.
pub(crate) fn config(base_ejection: Duration) -> Config {
    let mut config = synthetic_config(4, "balanced");
    for d in &mut config.deployments {
        d.limits.concurrency = None;
    }
    config.deployments[0].limits.concurrency = Some(4);
    config.routing.outlier.base_ejection = base_ejection;
    config.routing.outlier.max_ejection = base_ejection * 4;
    config
}

pub(crate) fn fast(policy: Policy) -> Settings {
    Settings {
        policy,
        sync_interval: Duration::from_millis(20),
        call_timeout: Duration::from_millis(100),
        connect_timeout: Duration::from_millis(500),
        ..Settings::default()
    }
}

#[test]
fn an_ejection_a_cooldown_and_a_recovery_reach_the_other_replica() -> anyhow::Result<()> {
    let Some(redis) = switchyard_testkit::redis() else { return Ok(()) };
    let url = redis.url();
    let config = config(Duration::from_millis(600));
    let clock = Clock::new();
    let settings = Settings { sync_interval: Duration::from_millis(50), ..Settings::default() };
    let a = Replica::start(&url, "signals", &config, clock, Duration::ZERO, settings.clone())?;
    let b = Replica::start(&url, "signals", &config, clock, Duration::from_secs(10), settings)?;
    let (d1, d2) = (config.deployments[1].id, config.deployments[2].id);
    assert!(a.plans(d1) && b.plans(d1));

    // A ejects d1 after three failures: B stops planning it within about a sync interval.
    for _ in 0..3 {
        a.fail(d1, &DOWN);
    }
    let ejected = Instant::now();
    assert!(!a.plans(d1));
    assert!(wait_for(Duration::from_secs(2), || !b.plans(d1)), "B never heard of A's ejection");
    let heard_after = ejected.elapsed();
    eprintln!("B stopped planning d1 {} ms after A ejected it", heard_after.as_millis());
    assert!(heard_after < Duration::from_millis(1_000), "{heard_after:?}");
    // Both end it at the same wall-clock instant, whatever their own clocks say.
    let until = |r: &Replica| {
        let t = r.state.deployment(d1).health.ejected_until().expect("ejected");
        t.as_micros() as i64 / 1_000 - r.ahead.as_millis() as i64
    };
    assert!((until(&a) - until(&b)).abs() <= 1, "A ends it at {}, B at {}", until(&a), until(&b));

    // A cool-down on A: B does not plan d2 while it runs.
    a.fail(d2, &AttemptError::RateLimited { retry_after: Some(Duration::from_secs(30)) });
    assert!(wait_for(Duration::from_secs(2), || !b.plans(d2)), "B never heard of A's cool-down");
    let cooling = { b.state.deployment_at(d2, b.now()).cooling_down(b.now()) };
    assert!(cooling && !b.state.deployment(d2).health.is_ejected(b.now()));

    // The ejection ends; A's probe succeeds and B has d1 back without probing it itself.
    assert!(wait_for(Duration::from_secs(3), || a.availability(d1) == Availability::HalfOpen));
    assert!(matches!(b.availability(d1), Availability::HalfOpen | Availability::Ejected { .. }));
    a.succeed(d1);
    assert_eq!(a.availability(d1), Availability::Healthy);
    assert!(
        wait_for(Duration::from_secs(2), || b.availability(d1) == Availability::Healthy),
        "B never heard of A's recovery: {:?}",
        b.availability(d1)
    );
    assert!(b.plans(d1));
    let heard = b.signals.heard(d1).expect("d1");
    assert!(heard.recovered_at > heard.ejected_at, "{heard:?}");
    Ok(())
}

#[test]
fn a_concurrency_limit_of_four_holds_across_two_replicas() -> anyhow::Result<()> {
    let Some(redis) = switchyard_testkit::redis() else { return Ok(()) };
    let url = redis.url();
    let config = config(Duration::from_secs(1));
    let clock = Clock::new();
    let a = Replica::start(&url, "limit4", &config, clock, Duration::ZERO, fast(Policy::FailOpen))?;
    let b = Replica::start(&url, "limit4", &config, clock, Duration::from_secs(10), fast(Policy::FailOpen))?;
    let d0 = config.deployments[0].id;
    for r in [&a, &a, &b, &b] {
        assert!(r.begin(d0)?, "room for four");
    }
    for r in [&a, &b, &a] {
        r.flush()?;
    }
    assert_eq!((a.signals.others_in_flight(d0), b.signals.others_in_flight(d0)), (2, 2));
    for r in [&a, &b] {
        assert!(!r.begin(d0)?, "two in flight on each: no fifth");
        assert!(!r.state.has_headroom(d0, 10, r.now()));
        assert!(!r.plans(d0));
    }
    // An unlimited deployment is not held.
    assert!(a.try_begin(config.deployments[1].id) && a.try_begin(config.deployments[1].id));
    // One ends on A: once A's count is published, B takes the slot; then neither has room.
    a.end(d0);
    a.flush()?;
    assert!(b.begin(d0)?);
    for r in [&b, &a] {
        r.flush()?;
    }
    let counts = |r: &Replica| (r.state.deployment(d0).in_flight, r.signals.others_in_flight(d0));
    assert_eq!((counts(&a), counts(&b)), ((1, 3), (3, 1)));
    assert!(!a.begin(d0)?, "full again: {:?}", counts(&a));
    assert!(!b.begin(d0)?, "full again: {:?}", counts(&b));
    Ok(())
}

#[test]
fn a_dead_replicas_attempts_stop_counting_when_its_lease_runs_out() -> anyhow::Result<()> {
    let Some(redis) = switchyard_testkit::redis() else { return Ok(()) };
    let url = redis.url();
    let config = config(Duration::from_secs(1));
    let clock = Clock::new();
    let lease = Duration::from_millis(400);
    let a = Replica::start(&url, "lease", &config, clock, Duration::ZERO, fast(Policy::FailOpen))?;
    let b =
        Replica::start(&url, "lease", &config, clock, Duration::ZERO, Settings { lease, ..fast(Policy::FailOpen) })?;
    let d0 = config.deployments[0].id;
    for _ in 0..3 {
        assert!(b.begin(d0)?);
    }
    b.flush()?;
    a.flush()?;
    assert_eq!(a.signals.others_in_flight(d0), 3);
    assert!(a.begin(d0)? && !a.begin(d0)?, "B's three and A's one fill it");

    // B dies with its three attempts open: nobody ends them.
    let died = Instant::now();
    drop(b);
    assert!(wait_for(Duration::from_secs(5), || a.signals.others_in_flight(d0) == 0), "B's count never expired");
    let expired = died.elapsed();
    eprintln!("a dead replica's count stopped counting after {} ms (lease {lease:?})", expired.as_millis());
    assert!(expired >= lease - Duration::from_millis(100), "{expired:?}");
    for _ in 0..3 {
        assert!(a.begin(d0)?, "B's slots are free again");
    }
    assert!(!a.begin(d0)?);
    let mut con = redis::Client::open(url.as_str())?.get_connection()?;
    let fields: Vec<String> = redis::cmd("HKEYS").arg("lease:inflight:d0").query(&mut con)?;
    assert_eq!(fields, [a.signals.replica_id()], "B's field was removed when it was read past its lease");
    Ok(())
}

/// One replica's push of one deployment's signals, straight through the script.
fn push(con: &mut redis::Connection, replica: &str, s: Heard, count: i64) -> anyhow::Result<(Heard, u32)> {
    let script = redis::Script::new(include_str!("../../src/signals.lua"));
    let mut call = script.prepare_invoke();
    call.arg(2_000).arg(replica).arg(180_000).key("script:signals:d").key("script:inflight:d");
    call.arg(s.ejected_at).arg(s.ejected_until).arg(s.recovered_at).arg(s.cooling_until).arg(count);
    let answers: Vec<String> = call.invoke(con)?;
    let n: Vec<i64> = answers[0].split(' ').map(str::parse).collect::<Result<_, _>>()?;
    let heard = Heard { ejected_at: n[0], ejected_until: n[1], recovered_at: n[2], cooling_until: n[3] };
    Ok((heard, u32::try_from(n[4])?))
}

#[test]
fn the_signals_script_merges_as_the_core_does_and_sums_other_replicas() -> anyhow::Result<()> {
    let Some(redis) = switchyard_testkit::redis() else { return Ok(()) };
    let mut con = redis::Client::open(redis.url().as_str())?.get_connection()?;
    // Three replicas push random batches, some twice; Redis holds what the core's
    // `Heard::record` makes of them all, in the order pushed.
    let mut rng = SplitMix64::new(11);
    let mut below = |n: u64| switchyard_core::Rng::below(&mut rng, n as usize) as i64;
    let mut expect = Heard::default();
    for round in 0..300 {
        let mut batch = Heard::default();
        for _ in 0..below(3) {
            let at = 1_750_000_000_000 + below(1_000);
            let signal = match below(3) {
                0 => Signal::Ejected { at, until: at + below(500) },
                1 => Signal::Recovered { at },
                _ => Signal::Cooling { until: at },
            };
            batch.record(signal);
        }
        for s in batch.signals() {
            expect.record(s);
        }
        let replica = ["a", "b", "c"][round % 3];
        let (heard, _) = push(&mut con, replica, batch, -1)?;
        let said = |h: &Heard| (h.recovered_at, h.cooling_until, h.stands().then_some((h.ejected_at, h.ejected_until)));
        assert_eq!(said(&heard), said(&expect), "round {round}");
        if round % 7 == 0 {
            assert_eq!(push(&mut con, replica, batch, -1)?.0, heard, "a push sent again changes nothing");
        }
    }
    let ttl: i64 = redis::cmd("PTTL").arg("script:signals:d").query(&mut con)?;
    assert!(ttl > 0, "the signals expire: {ttl}");

    // Counts: each replica's own field, summed for the others; zero removes it.
    assert_eq!(push(&mut con, "a", Heard::default(), 3)?.1, 0);
    assert_eq!(push(&mut con, "b", Heard::default(), 2)?.1, 3);
    assert_eq!(push(&mut con, "a", Heard::default(), 1)?.1, 2);
    assert_eq!(push(&mut con, "c", Heard::default(), 0)?.1, 3);
    assert_eq!(push(&mut con, "b", Heard::default(), 0)?.1, 1);
    assert_eq!(push(&mut con, "c", Heard::default(), -1)?.1, 0, "not counted: nothing read");
    let fields: Vec<String> = redis::cmd("HKEYS").arg("script:inflight:d").query(&mut con)?;
    assert_eq!(fields, ["a"]);
    // A field whose lease ran out does not count, and goes.
    redis::cmd("HSET").arg("script:inflight:d").arg("dead").arg("5:1000").exec(&mut con)?;
    assert_eq!(push(&mut con, "b", Heard::default(), 0)?.1, 1);
    let fields: Vec<String> = redis::cmd("HKEYS").arg("script:inflight:d").query(&mut con)?;
    assert_eq!(fields, ["a"]);
    Ok(())
}
