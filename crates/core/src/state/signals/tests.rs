//! The router's side of shared signals, over an in-memory store shared by two router states
//! (`Hub`, synced when a test says so, as `switchyard-shared`'s Redis store is each round):
//! what is published, in Unix time; what is taken in, and once; the concurrency limit counted
//! across replicas within the unconfirmed cap; and the failure policies.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::attempt::AttemptError;
use crate::config::{Config, DeploymentId, Priority, TenantId};
use crate::counters::LocalCounters;
use crate::fixture::{bench_request, synthetic_config};
use crate::signals::{Cluster, GaugeId, Heard, Signal, Signals, gauge_cap, unconfirmed_cap};
use crate::state::{Outcome, RouterState};
use crate::tenancy::{Calendar, LocalWindows, budget_specs};
use crate::time::Time;

/// Unix ms at replica A's `Time::ZERO`; replica B started 10 s earlier.
const A_ZERO: i64 = 1_750_000_000_000;
const B_ZERO: i64 = A_ZERO - 10_000;

/// What Redis holds in the real store: per deployment what was heard, and each replica's count.
#[derive(Debug, Default)]
struct Hub {
    heard: Mutex<Vec<Heard>>,
    counts: Mutex<Vec<[u32; 2]>>,
    /// Each gauge's count per replica, by name.
    gauges: Mutex<std::collections::HashMap<String, [u32; 2]>>,
}

/// A gauge in one replica's store: as a deployment's count, and the count last confirmed.
#[derive(Debug, Default)]
struct FakeGauge {
    name: String,
    in_flight: u32,
    begun: u64,
    acked: u64,
    others: u32,
    confirmed: u32,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Connected,
    FailOpen,
    FailClosed,
}

/// One replica's store: pending signals and live counts go to the hub at `sync`, what was
/// heard and the others' counts come back.
#[derive(Debug)]
struct Fake {
    hub: Arc<Hub>,
    me: usize,
    mode: Mutex<Mode>,
    pending: Mutex<Vec<Heard>>,
    heard: Mutex<Vec<(u64, Heard)>>,
    in_flight: Vec<AtomicU32>,
    begun: Vec<AtomicU64>,
    acked: Vec<AtomicU64>,
    others: Vec<AtomicU32>,
    published: Mutex<Vec<(DeploymentId, Signal)>>,
    gauges: Mutex<Vec<FakeGauge>>,
}

impl Fake {
    fn new(hub: &Arc<Hub>, me: usize, n: usize) -> Arc<Fake> {
        hub.heard.lock().unwrap().resize(n, Heard::default());
        hub.counts.lock().unwrap().resize(n, [0; 2]);
        let atomics = |_| AtomicU64::new(0);
        Arc::new(Fake {
            hub: hub.clone(),
            me,
            mode: Mutex::new(Mode::Connected),
            pending: Mutex::new(vec![Heard::default(); n]),
            heard: Mutex::new(vec![(0, Heard::default()); n]),
            in_flight: (0..n).map(|_| AtomicU32::new(0)).collect(),
            begun: (0..n).map(atomics).collect(),
            acked: (0..n).map(atomics).collect(),
            others: (0..n).map(|_| AtomicU32::new(0)).collect(),
            published: Mutex::default(),
            gauges: Mutex::default(),
        })
    }

    /// One round: push, then read back.
    fn sync(&self) {
        let (mut hub, mut counts) = (self.hub.heard.lock().unwrap(), self.hub.counts.lock().unwrap());
        let mut pending = self.pending.lock().unwrap();
        let mut heard = self.heard.lock().unwrap();
        for i in 0..pending.len() {
            for s in pending[i].signals() {
                hub[i].record(s);
            }
            pending[i] = Heard::default();
            let begun = self.begun[i].load(Ordering::SeqCst);
            counts[i][self.me] = self.in_flight[i].load(Ordering::SeqCst);
            self.acked[i].store(begun, Ordering::SeqCst);
            self.others[i].store(counts[i][1 - self.me], Ordering::SeqCst);
            if heard[i].1 != hub[i] {
                heard[i] = (heard[i].0 + 1, hub[i]);
            }
        }
        let mut counts = self.hub.gauges.lock().unwrap();
        for g in self.gauges.lock().unwrap().iter_mut() {
            let count = counts.entry(g.name.clone()).or_default();
            count[self.me] = g.in_flight;
            (g.acked, g.confirmed, g.others) = (g.begun, g.in_flight, count[1 - self.me]);
        }
    }

    fn set_mode(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    fn published(&self) -> Vec<Signal> {
        self.published.lock().unwrap().iter().map(|(_, s)| *s).collect()
    }
}

impl Signals for Fake {
    fn publish(&self, deployment: DeploymentId, signal: Signal) {
        self.pending.lock().unwrap()[usize::from(deployment.0)].record(signal);
        self.published.lock().unwrap().push((deployment, signal));
    }

    fn heard_since(&self, deployment: DeploymentId, seen: u64) -> Option<(u64, Heard)> {
        let (version, heard) = self.heard.lock().unwrap()[usize::from(deployment.0)];
        (version != seen).then_some((version, heard))
    }

    fn began(&self, deployment: DeploymentId) {
        self.in_flight[usize::from(deployment.0)].fetch_add(1, Ordering::SeqCst);
        self.begun[usize::from(deployment.0)].fetch_add(1, Ordering::SeqCst);
    }

    fn ended(&self, deployment: DeploymentId) {
        self.in_flight[usize::from(deployment.0)].fetch_sub(1, Ordering::SeqCst);
    }

    fn add_gauge(&self, name: &str) -> Option<GaugeId> {
        let mut gauges = self.gauges.lock().unwrap();
        let i = match gauges.iter().position(|g| g.name == name) {
            Some(i) => i,
            None => {
                gauges.push(FakeGauge { name: name.to_owned(), ..FakeGauge::default() });
                gauges.len() - 1
            }
        };
        Some(GaugeId(i as u32))
    }

    fn retire_gauge(&self, _gauge: GaugeId) {}

    fn gauge_began(&self, gauge: GaugeId) {
        let mut gauges = self.gauges.lock().unwrap();
        let g = &mut gauges[gauge.0 as usize];
        (g.in_flight, g.begun) = (g.in_flight + 1, g.begun + 1);
    }

    fn gauge_ended(&self, gauge: GaugeId) {
        self.gauges.lock().unwrap()[gauge.0 as usize].in_flight -= 1;
    }

    fn gauge_cluster(&self, gauge: GaugeId, limit: u32) -> Cluster {
        let gauges = self.gauges.lock().unwrap();
        let g = &gauges[gauge.0 as usize];
        match *self.mode.lock().unwrap() {
            Mode::Connected => Cluster::Shared {
                others: g.others,
                unconfirmed: (g.begun - g.acked) as u32,
                cap: gauge_cap(limit, 0.1, g.others, g.confirmed, 2),
            },
            Mode::FailOpen => Cluster::Alone,
            Mode::FailClosed => Cluster::Closed,
        }
    }

    fn cluster(&self, deployment: DeploymentId, limit: u32) -> Cluster {
        let i = usize::from(deployment.0);
        match *self.mode.lock().unwrap() {
            Mode::Connected => Cluster::Shared {
                others: self.others[i].load(Ordering::SeqCst),
                unconfirmed: (self.begun[i].load(Ordering::SeqCst) - self.acked[i].load(Ordering::SeqCst)) as u32,
                cap: unconfirmed_cap(limit, 0.1),
            },
            Mode::FailOpen => Cluster::Alone,
            Mode::FailClosed => Cluster::Closed,
        }
    }
}

/// A router state on a calendar whose zero is `zero`, sharing signals through `hub`.
fn replica(config: &Config, hub: &Arc<Hub>, me: usize, zero: i64) -> (RouterState, Arc<Fake>) {
    let calendar = Calendar { unix_ms_at_zero: zero };
    let counters = Arc::new(LocalCounters::for_config(config, Time::ZERO));
    let windows = Arc::new(LocalWindows::new(&budget_specs(config), calendar));
    let fake = Fake::new(hub, me, config.deployments.len());
    let state = RouterState::with_stores(config, Time::ZERO, counters, windows, calendar)
        .with_signals(fake.clone())
        .expect("the fake adds gauges");
    (state, fake)
}

/// A's time and B's at the same wall-clock instant, `ms` after A started.
fn at(ms: u64) -> (Time, Time) {
    let a = Time::from_millis(ms);
    (a, Calendar { unix_ms_at_zero: B_ZERO }.time_of(A_ZERO + ms as i64))
}

fn planned(config: &Config, state: &RouterState, now: Time) -> Vec<DeploymentId> {
    let mut rng = crate::SplitMix64::new(7);
    crate::plan::plan(config, state, &bench_request(config), now, &mut rng).map(|p| p.deployments).unwrap_or_default()
}

fn fail(state: &RouterState, id: DeploymentId, error: &AttemptError, now: Time) {
    state.begin_attempt(id, TenantId(0), 10, now);
    state.end_attempt(id, TenantId(0), 10, Outcome::Failure(error), now);
}

fn succeed(state: &RouterState, id: DeploymentId, now: Time) {
    state.begin_attempt(id, TenantId(0), 10, now);
    let ok = Outcome::Success { ttft: None, duration: Duration::from_millis(10), output_tokens: 1, total_tokens: 10 };
    state.end_attempt(id, TenantId(0), 10, ok, now);
}

const DOWN: AttemptError = AttemptError::ServerError { status: 502 };

#[test]
fn transitions_are_published_in_unix_time() {
    let config = synthetic_config(4, "balanced");
    let (a, fake) = replica(&config, &Arc::new(Hub::default()), 0, A_ZERO);
    let id = config.deployments[1].id;
    let t = Time::from_millis(2_000);
    for _ in 0..3 {
        fail(&a, id, &DOWN, t);
    }
    let later = t + Duration::from_millis(1_000);
    a.begin_attempt(id, TenantId(0), 10, later);
    let limited = AttemptError::RateLimited { retry_after: Some(Duration::from_secs(5)) };
    a.end_attempt(id, TenantId(0), 10, Outcome::Failure(&limited), later);
    let probe = later + Duration::from_millis(1);
    succeed(&a, id, probe);
    let t_ms = A_ZERO + 2_000;
    assert_eq!(
        fake.published(),
        [
            Signal::Ejected { at: t_ms, until: t_ms + 1_000 },
            Signal::Cooling { until: t_ms + 6_000 },
            Signal::Recovered { at: t_ms + 1_001 },
        ],
        "the third failure ejects for the base second; the 429 ends the probe; the next probe recovers"
    );
}

#[test]
fn an_ejection_on_one_replica_stops_the_other_planning_it_until_a_recovery() {
    let config = synthetic_config(4, "balanced");
    let hub = Arc::new(Hub::default());
    let ((a, fa), (b, fb)) = (replica(&config, &hub, 0, A_ZERO), replica(&config, &hub, 1, B_ZERO));
    let id = config.deployments[2].id;
    let (ta, tb) = at(5_000);
    for _ in 0..3 {
        fail(&a, id, &DOWN, ta);
    }
    assert!(!planned(&config, &a, ta).contains(&id));
    assert!(planned(&config, &b, tb).contains(&id), "not before a sync");
    fa.sync();
    fb.sync();
    assert!(!planned(&config, &b, tb).contains(&id), "B honours A's ejection");
    assert!(b.deployment(id).health.is_ejected(tb));
    assert!(fb.published().is_empty(), "adopting an ejection publishes nothing");
    // It ends at the same wall-clock instant on both, though their clocks started 10 s apart.
    let (end_a, end_b) = at(6_000);
    assert!(b.deployment_at(id, end_b - Duration::from_millis(1)).health.is_ejected(end_b - Duration::from_millis(1)));
    assert!(!b.deployment_at(id, end_b).health.is_ejected(end_b), "half-open on B too");

    // A's probe succeeds: both bring it back, B without a probe of its own.
    succeed(&a, id, end_a);
    fa.sync();
    fb.sync();
    let (t2a, t2b) = at(6_100);
    assert!(planned(&config, &a, t2a).contains(&id));
    assert!(planned(&config, &b, t2b).contains(&id));
    let health = b.deployment_at(id, t2b).health;
    assert_eq!(health.availability(t2b), crate::health::Availability::Healthy);

    // Taken in once: B ejecting on its own after that recovery stays ejected across syncs.
    for _ in 0..3 {
        fail(&b, id, &DOWN, t2b);
    }
    for f in [&fa, &fb, &fa] {
        f.sync();
    }
    assert!(b.deployment_at(id, t2b).health.is_ejected(t2b), "a recovery before B's ejection does not end it");
    assert!(a.deployment_at(id, t2a).health.is_ejected(t2a), "and A takes B's in");
}

#[test]
fn ejections_adopted_from_another_replica_stay_within_the_ejected_share() {
    // Four deployments, at most half ejected: A ejects two, B the other two.
    let config = synthetic_config(4, "balanced");
    assert_eq!(config.routing.outlier.max_ejected_share, 0.5);
    let hub = Arc::new(Hub::default());
    let ((a, fa), (b, fb)) = (replica(&config, &hub, 0, A_ZERO), replica(&config, &hub, 1, B_ZERO));
    let (ta, tb) = at(5_000);
    let ids: Vec<DeploymentId> = config.deployments.iter().map(|d| d.id).collect();
    for (state, now, mine) in [(&a, ta, &ids[..2]), (&b, tb, &ids[2..])] {
        for id in mine {
            for _ in 0..3 {
                fail(state, *id, &DOWN, now);
            }
        }
        assert_eq!(state.n_ejected(now), 2, "each within its own cap");
    }
    fa.sync();
    fb.sync();
    fa.sync();
    // Reading every deployment takes in what the other said: none of it is adopted, since
    // either replica already has its share out.
    for (state, now) in [(&a, ta), (&b, tb)] {
        let ejected = ids.iter().filter(|id| state.deployment_at(**id, now).health.is_ejected(now)).count();
        assert_eq!((ejected, state.n_ejected(now)), (2, 2), "not all four out");
        assert_eq!(planned(&config, state, now).len(), 2, "two are left to plan");
    }
    // Once A's own have ended (half-open after the base second), B's next one is adopted.
    let (later_a, later_b) = at(6_100);
    assert_eq!(a.n_ejected(later_a), 0);
    fail(&b, ids[2], &DOWN, later_b);
    assert!(b.deployment(ids[2]).health.is_ejected(later_b), "its failed probe ejects it again");
    fb.sync();
    fa.sync();
    assert!(a.deployment_at(ids[2], later_a).health.is_ejected(later_a), "adopted");
    assert_eq!(a.n_ejected(later_a), 1);
}

#[test]
fn a_cooldown_on_one_replica_is_honoured_by_the_other_until_it_ends() {
    let config = synthetic_config(4, "balanced");
    let hub = Arc::new(Hub::default());
    let ((a, fa), (b, fb)) = (replica(&config, &hub, 0, A_ZERO), replica(&config, &hub, 1, B_ZERO));
    let id = config.deployments[3].id;
    let (ta, tb) = at(1_000);
    let limited = AttemptError::RateLimited { retry_after: Some(Duration::from_secs(3)) };
    fail(&a, id, &limited, ta);
    fa.sync();
    fb.sync();
    assert!(b.deployment_at(id, tb).cooling_down(tb));
    assert!(!planned(&config, &b, tb).contains(&id));
    assert!(!b.deployment(id).health.is_ejected(tb), "a 429 is no failure");
    let (_, end_b) = at(4_000);
    assert!(planned(&config, &b, end_b).contains(&id), "over at the same instant");
    // A success on B ends B's cool-down early; the same news is not taken in again.
    let (_, mid_b) = at(2_000);
    succeed(&b, id, mid_b);
    fb.sync();
    assert!(!b.deployment_at(id, mid_b).cooling_down(mid_b));
}

#[test]
fn a_deployment_that_reports_no_requests_left_is_passed_over_by_the_other_replica_too() {
    let config = synthetic_config(4, "balanced");
    let hub = Arc::new(Hub::default());
    let ((a, fa), (b, fb)) = (replica(&config, &hub, 0, A_ZERO), replica(&config, &hub, 1, B_ZERO));
    let id = config.deployments[1].id;
    let (ta, tb) = at(1_000);
    let full = crate::state::Headroom {
        requests: Some(0),
        requests_reset: Some(Duration::from_secs(2)),
        ..Default::default()
    };
    assert!(a.observe_headroom(id, &full, ta));
    // Tokens left are each replica's own business: only "no requests" is told.
    let tokens = crate::state::Headroom { tokens: Some(5), ..Default::default() };
    a.observe_headroom(config.deployments[2].id, &tokens, ta);
    assert_eq!(fa.published(), [Signal::Cooling { until: A_ZERO + 3_000 }]);
    fa.sync();
    fb.sync();
    assert!(!planned(&config, &b, tb).contains(&id), "B passes it over until the reset");
    let (_, after) = at(3_000);
    assert!(planned(&config, &b, after).contains(&id), "and takes it back at the reset");
    // On A, its own report heard back is no cool-down: a report of room ends it at once.
    let (ta, _) = at(1_100);
    let room = crate::state::Headroom { requests: Some(50), ..Default::default() };
    assert!(!a.observe_headroom(id, &room, ta));
    assert!(a.deployment_at(id, ta).resting_until(10, ta).is_none(), "room again on A");
    assert!(planned(&config, &a, ta).contains(&id));
}

/// The fixture with deployment 0's concurrency limit at `limit` (the rest unlimited), and
/// the other deployments' out of the way.
fn limited_config(limit: u32) -> Config {
    let mut config = synthetic_config(4, "balanced");
    for d in &mut config.deployments {
        d.limits.concurrency = None;
    }
    config.deployments[0].limits.concurrency = Some(limit);
    config
}

fn try_begin(state: &RouterState, id: DeploymentId, now: Time) -> bool {
    state.try_begin_attempt(id, TenantId(0), Priority::High, 10, now)
}

#[test]
fn a_concurrency_limit_holds_across_replicas() {
    let config = limited_config(4);
    let hub = Arc::new(Hub::default());
    let ((a, fa), (b, fb)) = (replica(&config, &hub, 0, A_ZERO), replica(&config, &hub, 1, B_ZERO));
    let id = config.deployments[0].id;
    let (ta, tb) = at(1);
    // The cap is one attempt between confirmations (10% of 4, at least one).
    assert!(try_begin(&a, id, ta));
    assert!(!try_begin(&a, id, ta), "a second waits for the first to be confirmed");
    fa.sync();
    assert!(try_begin(&a, id, ta));
    fa.sync();
    assert!(try_begin(&b, id, tb) && !try_begin(&b, id, tb));
    fb.sync();
    assert!(try_begin(&b, id, tb));
    for f in [&fa, &fb, &fa] {
        f.sync();
    }
    // Two in flight on each: the cluster is full, and both refuse a fifth.
    assert!(!try_begin(&a, id, ta) && !try_begin(&b, id, tb));
    assert!(!a.has_headroom(id, 10, ta) && !b.has_headroom(id, 10, tb));
    assert!(!planned(&config, &b, tb).contains(&id));
    assert_eq!(b.deployment_at(id, tb).in_flight_elsewhere(), 2);
    assert!((b.deployment_at(id, tb).load() - 1.0).abs() < 1e-9, "load counts the cluster");
    // Unlimited deployments are not counted.
    assert!(try_begin(&a, config.deployments[1].id, ta) && try_begin(&a, config.deployments[1].id, ta));
    // One ends on A: after a sync B may take the slot.
    let ok = Outcome::Success { ttft: None, duration: Duration::ZERO, output_tokens: 1, total_tokens: 10 };
    a.end_attempt(id, TenantId(0), 10, ok, ta);
    assert!(!try_begin(&b, id, tb), "not before A's count is published");
    fa.sync();
    fb.sync();
    assert!(try_begin(&b, id, tb));
    // A has not seen B's third yet: it may take one more, within its cap of one between
    // confirmations (the overshoot this bounds), and then no more.
    assert!(try_begin(&a, id, ta) && !try_begin(&a, id, ta));
    for f in [&fa, &fb, &fa] {
        f.sync();
    }
    let seen = a.deployment_at(id, ta).in_flight_elsewhere();
    assert_eq!(seen + a.deployment(id).in_flight, 5);
    assert!(!try_begin(&a, id, ta) && !try_begin(&b, id, tb), "over: both refuse until two end");
}

#[test]
fn a_lost_store_fails_open_to_the_replicas_own_count_or_closed() {
    let config = limited_config(2);
    let hub = Arc::new(Hub::default());
    let ((a, fa), (b, fb)) = (replica(&config, &hub, 0, A_ZERO), replica(&config, &hub, 1, B_ZERO));
    let id = config.deployments[0].id;
    let (ta, tb) = at(1);
    assert!(try_begin(&b, id, tb));
    fb.sync();
    assert!(try_begin(&b, id, tb));
    fb.sync();
    fa.sync();
    assert!(!try_begin(&a, id, ta), "B holds both");
    fa.set_mode(Mode::FailOpen);
    assert!(try_begin(&a, id, ta) && try_begin(&a, id, ta), "alone, A counts only its own");
    assert!(!try_begin(&a, id, ta), "and still holds the limit by itself");
    fb.set_mode(Mode::FailClosed);
    let other = config.deployments[1].id;
    let ok = Outcome::Success { ttft: None, duration: Duration::ZERO, output_tokens: 1, total_tokens: 10 };
    b.end_attempt(id, TenantId(0), 10, ok, tb);
    assert!(!try_begin(&b, id, tb), "closed: nothing starts where a limit is set");
    assert!(!planned(&config, &b, tb).contains(&id));
    assert!(try_begin(&b, other, tb), "deployments without one are not held");
    fb.set_mode(Mode::Connected);
    fb.sync();
    fa.set_mode(Mode::Connected);
    fa.sync();
    fb.sync();
    assert!(!try_begin(&b, id, tb), "connected again: A's two and B's one are counted");
}

#[test]
fn without_signals_reading_a_deployment_takes_nothing_in() {
    let config = limited_config(2);
    let state = RouterState::new(&config, Time::ZERO);
    assert!(!state.shares_signals());
    let id = config.deployments[0].id;
    assert!(try_begin(&state, id, Time::ZERO) && try_begin(&state, id, Time::ZERO));
    assert!(!try_begin(&state, id, Time::ZERO));
    assert_eq!(state.deployment_at(id, Time::ZERO).in_flight_elsewhere(), 0);
}

mod gauges;
