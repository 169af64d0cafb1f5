//! The discrete-event loop: arrivals, scheduled cloud events, and every request driven through
//! the core's request state machine (`RequestMachine`), as the gateway drives it: the first
//! attempt, retries, failovers, stream continuations, hedges and every timeout are the core's
//! decisions. The simulated world (`world.rs`) produces each attempt's events on a virtual
//! clock. One seeded RNG per concern (arrivals, request mix, service times, routing), so that
//! every policy sees the same traffic.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use switchyard_core::config::{AliasId, Config, DeploymentId, Policy, Tier};
use switchyard_core::lifecycle::{Ctx, RequestMachine, Spec, Timing};
use switchyard_core::plan::Needs;
use switchyard_core::rng::SplitMix64;
use switchyard_core::usage::{Usage, list_cost};
use switchyard_core::{RouterState, Time};

pub use crate::policy::PolicyChoice;
use crate::results::RunResult;
use crate::scenario::{EventKind, Scenario};
use crate::tally::Tally;
use crate::traffic::{draw_request, next_arrival, scaled, tenant_cdf};
use crate::world::{Key, World};
use drive::Request;

mod drive;

/// How long the gateway waits after a stream's finish reason for its usage chunk or its end
/// (the gateway's `AFTER_FINISH_GRACE`).
pub const AFTER_FINISH_GRACE: Duration = Duration::from_millis(250);

/// The clock of a request to `alias` that arrived at `arrival`, as the gateway sets it: the
/// configured timeouts, the deadline, and the alias's hedge.
pub fn timing_for(config: &Config, alias: AliasId, arrival: Time) -> Timing {
    let timeouts = &config.server.timeouts;
    Timing {
        deadline: arrival + timeouts.request,
        first_byte: timeouts.first_byte,
        first_token: timeouts.first_token,
        stream_idle: timeouts.stream_idle,
        after_finish: AFTER_FINISH_GRACE,
        hedge_after: hedge_after(config, alias),
    }
}

/// When a request to `alias` hedges: its `hedge_after_ms`, as live.
fn hedge_after(config: &Config, alias: AliasId) -> Option<Duration> {
    config.aliases[usize::from(alias.0)].hedge_after
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    Arrival,
    Step,
    EventStart(u32),
    EventEnd(u32),
    /// A request's machine asked to be woken now.
    Wake {
        slot: u32,
        serial: u32,
    },
    /// An attempt's next event in the world.
    Attempt(Key),
}

/// Events by (virtual µs, sequence).
#[derive(Default)]
struct Schedule {
    heap: BinaryHeap<Reverse<(u64, u64, Ev)>>,
    seq: u64,
}

impl Schedule {
    fn push(&mut self, at: Time, ev: Ev) {
        self.seq += 1;
        self.heap.push(Reverse((at.as_micros(), self.seq, ev)));
    }
}

pub struct Engine<'a> {
    scenario: &'a Scenario,
    config: Config,
    policy: PolicyChoice,
    state: RouterState,
    world: World,
    cloud_of: Vec<usize>,
    schedule: Schedule,
    requests: Vec<Option<Request>>,
    free: Vec<u32>,
    serial: u32,
    rng_arrivals: SplitMix64,
    rng_mix: SplitMix64,
    rng_route: SplitMix64,
    tenant_cdf: Vec<f64>,
    round_robin: usize,
    /// Streams deliver content at least this often while tokens flow (half of `stream_idle`).
    half_idle: Duration,
    now: Time,
    end: Time,
    tally: Tally,
}

impl<'a> Engine<'a> {
    pub fn new(scenario: &'a Scenario, policy: PolicyChoice, seed: u64) -> Engine<'a> {
        let mut config = scenario.config.clone();
        for alias in &mut config.aliases {
            match policy {
                PolicyChoice::Core(p) => alias.policy = p,
                PolicyChoice::RoundRobin => alias.policy = Policy::Priority,
                PolicyChoice::StaticCloud(cloud) => {
                    let deployments = &scenario.config.deployments;
                    alias.deployments.retain(|d| deployments[usize::from(d.0)].cloud == cloud);
                    alias.policy = Policy::Balanced;
                }
            }
        }
        // Scaled mode: simulated traffic is `scale` times thinner, and so are the limits.
        for d in &mut config.deployments {
            d.limits.concurrency = scaled(d.limits.concurrency, scenario.scale);
        }
        let world = World::new(&config, scenario.scale, SplitMix64::new(seed ^ 0x5EED_0002));
        let cloud_of = config.deployments.iter().map(|d| usize::from(d.cloud.0)).collect();
        let state = RouterState::new(&config, Time::ZERO);
        let mut engine = Engine {
            scenario,
            half_idle: (config.server.timeouts.stream_idle / 2).max(Duration::from_millis(1)),
            tally: Tally::new(config.clouds.len()),
            config,
            policy,
            state,
            world,
            cloud_of,
            schedule: Schedule::default(),
            requests: Vec::new(),
            free: Vec::new(),
            serial: 0,
            rng_arrivals: SplitMix64::new(seed),
            rng_mix: SplitMix64::new(seed ^ 0x5EED_0001),
            rng_route: SplitMix64::new(seed ^ 0x5EED_0003),
            tenant_cdf: tenant_cdf(scenario),
            round_robin: 0,
            now: Time::ZERO,
            end: Time::ZERO + scenario.duration,
        };
        let first = next_arrival(scenario, Time::ZERO, &mut engine.rng_arrivals);
        engine.schedule.push(first, Ev::Arrival);
        engine.schedule.push(Time::ZERO + scenario.step, Ev::Step);
        for (i, e) in scenario.events.iter().enumerate() {
            engine.schedule.push(Time::ZERO + e.from, Ev::EventStart(i as u32));
            if let Some(until) = e.until {
                engine.schedule.push(Time::ZERO + until, Ev::EventEnd(i as u32));
            }
        }
        engine
    }

    /// Runs to the end; `progress` gets the share done now and then.
    pub fn run(mut self, progress: &mut dyn FnMut(f64)) -> RunResult {
        let mut n_events: u64 = 0;
        while let Some(Reverse((at, _, ev))) = self.schedule.heap.pop() {
            self.now = Time::from_micros(at);
            n_events += 1;
            if n_events.is_multiple_of(1 << 20) {
                progress(self.now.as_micros() as f64 / self.end.as_micros().max(1) as f64);
            }
            match ev {
                Ev::Arrival => {
                    if self.now >= self.end {
                        continue;
                    }
                    let next = next_arrival(self.scenario, self.now, &mut self.rng_arrivals);
                    self.schedule.push(next, Ev::Arrival);
                    self.arrive();
                }
                Ev::Step => {
                    self.tally.close_step(&self.config, &self.state, self.now);
                    if self.now < self.end {
                        self.schedule.push(self.now + self.scenario.step, Ev::Step);
                    }
                }
                Ev::EventStart(i) => self.event(i as usize, true),
                Ev::EventEnd(i) => self.event(i as usize, false),
                Ev::Wake { slot, serial } => self.wake(slot, serial),
                Ev::Attempt(key) => self.attempt_event(key),
            }
        }
        progress(1.0);
        let policy = self.policy.name(&self.config);
        self.tally.result(policy, &self.config, &self.state, self.end)
    }

    fn arrive(&mut self) {
        let now = self.now;
        let (t, input, output, stream) = draw_request(self.scenario, &self.tenant_cdf, &mut self.rng_mix);
        let (alias, tenant) = (self.scenario.mix.tenants[t].alias, self.scenario.mix.tenants[t].tenant);
        self.tally.n_requests += 1;
        if let PolicyChoice::RoundRobin = self.policy {
            let alias = &mut self.config.aliases[usize::from(alias.0)];
            let n = alias.deployments.len();
            alias.deployments.rotate_left(self.round_robin % n.max(1));
            self.round_robin = 1;
        }
        let spec = Spec {
            alias,
            tenant,
            input_tokens: input,
            context_tokens: None,
            max_output_tokens: Some(output),
            needs: Needs { streaming: stream, ..Needs::default() },
            reserved_tokens: input.saturating_add(output),
            unfit: Vec::new(),
        };
        let timing = timing_for(&self.config, alias, now);
        let mut ctx = Ctx { config: &self.config, state: &self.state, rng: &mut self.rng_route };
        let machine = RequestMachine::new(&mut ctx, spec, timing, now);
        self.open(machine, t, input, output, stream, now);
    }

    /// Bills tokens produced at a deployment (to the caller's request and the commitment).
    fn charge(&mut self, input: u32, deployment: DeploymentId, output_tokens: u32) {
        let d = &self.config.deployments[usize::from(deployment.0)];
        // The prompt is billed again on every attempt that produced output.
        let usage = Usage {
            prompt_tokens: u64::from(input),
            completion_tokens: u64::from(output_tokens),
            cached_prompt_tokens: 0,
        };
        let list = list_cost(&self.world.deployments[usize::from(deployment.0)].price, &usage) * self.scenario.scale;
        self.state.record_spend(d.commitment, list);
        let marginal = match d.tier {
            Tier::Reserved => 0.0,
            Tier::OnDemand => list,
        };
        self.tally.spend(self.cloud_of[usize::from(deployment.0)], marginal);
    }

    fn event(&mut self, index: usize, starting: bool) {
        let event = &self.scenario.events[index];
        for d in &event.deployments {
            let w = &mut self.world.deployments[usize::from(d.0)];
            match (event.kind, starting) {
                (EventKind::Outage, true) => w.down += 1,
                (EventKind::Outage, false) => w.down = w.down.saturating_sub(1),
                (EventKind::Brownout { multiplier }, true) => w.brownout *= multiplier,
                (EventKind::Brownout { multiplier }, false) => w.brownout /= multiplier,
                (EventKind::RateLimitStorm { rate }, true) => w.storm = rate,
                (EventKind::RateLimitStorm { .. }, false) => w.storm = 0.0,
                (EventKind::PriceChange { input_per_mtok, output_per_mtok }, true) => {
                    w.price.input_per_mtok = input_per_mtok.unwrap_or(w.price.input_per_mtok);
                    w.price.output_per_mtok = output_per_mtok.unwrap_or(w.price.output_per_mtok);
                }
                (EventKind::Capacity { concurrency }, true) => {
                    // New capacity, and the operator raises the gateway's limit to match.
                    w.capacity = scaled(Some(concurrency), self.scenario.scale);
                    self.state.set_concurrency_limit(*d, w.capacity);
                    self.admit(*d);
                }
                (EventKind::PriceChange { .. } | EventKind::Capacity { .. }, false) => (),
            }
        }
        if starting && event.kind == EventKind::Outage {
            self.cut_in_flight(&event.deployments);
        }
    }
}
