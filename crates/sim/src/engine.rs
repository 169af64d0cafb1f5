//! The discrete-event loop: arrivals, attempts at deployments with the emulator's timing model
//! and capacities, scheduled cloud events, and every routing decision taken by the core's own
//! planner, attempt session, health tracker and budgets. A virtual clock; one seeded RNG per
//! concern (arrivals, request mix, service times) so policies see the same traffic.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use switchyard_core::attempt::{AttemptSession, Decision};
use switchyard_core::config::{Config, DeploymentId, Policy, Price, Tier};
use switchyard_core::plan::{Needs, PlanRequest, plan, plan_with_fallbacks};
use switchyard_core::rng::{Rng, SplitMix64};
use switchyard_core::state::Outcome;
use switchyard_core::usage::{Usage, list_cost};
use switchyard_core::{AttemptError, RouterState, Time};

use crate::histogram::Histogram;
pub use crate::policy::PolicyChoice;
use crate::results::{CloudResult, CommitmentResult, Percentiles, RunResult, Step, round};
use crate::scenario::{EventKind, Scenario};
use crate::traffic::{draw_request, next_arrival, scaled, tenant_cdf};

/// What is true of a deployment right now in the simulated world.
#[derive(Clone, Debug)]
struct World {
    capacity: Option<u32>,
    in_flight: u32,
    down: u32,
    brownout: f64,
    storm: f64,
    price: Price,
    /// Requests waiting for a slot (slot, generation), up to `queue_limit`.
    queue: std::collections::VecDeque<(u32, u32)>,
    queue_limit: u32,
}

#[derive(Clone, Copy, Debug)]
struct Attempt {
    deployment: DeploymentId,
    start: Time,
    ttft: Duration,
    per_token: Duration,
    tokens: u32,
    error: Option<AttemptError2>,
    /// Waiting in the deployment's queue: no service yet.
    queued: bool,
}

/// Failures the simulated world produces (a `Copy` subset of `AttemptError`).
#[derive(Clone, Copy, Debug)]
enum AttemptError2 {
    Refused,
    RateLimited(Duration),
}

struct Request {
    arrival: Time,
    tenant: usize,
    alias: switchyard_core::config::AliasId,
    input: u32,
    output: u32,
    stream: bool,
    delivered: u32,
    first_token: Option<Time>,
    session: AttemptSession,
    attempt: Option<Attempt>,
    generation: u32,
    estimated: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    Arrival,
    Step,
    EventStart(u32),
    EventEnd(u32),
    AttemptEnd { slot: u32, generation: u32 },
    Retry { slot: u32, generation: u32, deployment: DeploymentId },
}

const CONNECT_FAIL: Duration = Duration::from_millis(1);
const RATE_LIMIT_REPLY: Duration = Duration::from_millis(20);

pub struct Engine<'a> {
    scenario: &'a Scenario,
    config: Config,
    policy: PolicyChoice,
    state: RouterState,
    world: Vec<World>,
    cloud_of: Vec<usize>,
    heap: BinaryHeap<Reverse<(u64, u64, Ev)>>,
    seq: u64,
    requests: Vec<Option<Request>>,
    free: Vec<u32>,
    rng_arrivals: SplitMix64,
    rng_mix: SplitMix64,
    rng_service: SplitMix64,
    rng_route: SplitMix64,
    tenant_cdf: Vec<f64>,
    round_robin: usize,
    now: Time,
    end: Time,
    // Accounting.
    n_requests: u64,
    n_succeeded: u64,
    n_failed: u64,
    n_failovers: u64,
    n_continuations: u64,
    n_outside: u64,
    latency: Histogram,
    ttft: Histogram,
    spend: f64,
    cloud_requests: Vec<u64>,
    cloud_spend: Vec<f64>,
    step_latency: Histogram,
    step_requests: u64,
    step_failed: u64,
    step_cloud: Vec<u64>,
    series: Vec<Step>,
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
        let world = config
            .deployments
            .iter()
            .map(|d| World {
                capacity: scaled(
                    d.emulation.as_ref().and_then(|e| e.max_concurrency).or(d.limits.concurrency),
                    scenario.scale,
                ),
                in_flight: 0,
                down: 0,
                brownout: 1.0,
                storm: 0.0,
                price: d.price,
                queue: std::collections::VecDeque::new(),
                queue_limit: d.emulation.as_ref().map_or(0, |e| e.max_queue),
            })
            .collect();
        let cloud_of = config.deployments.iter().map(|d| usize::from(d.cloud.0)).collect();
        let n_clouds = config.clouds.len();
        let state = RouterState::new(&config, Time::ZERO);
        let mut engine = Engine {
            scenario,
            config,
            policy,
            state,
            world,
            cloud_of,
            heap: BinaryHeap::new(),
            seq: 0,
            requests: Vec::new(),
            free: Vec::new(),
            rng_arrivals: SplitMix64::new(seed),
            rng_mix: SplitMix64::new(seed ^ 0x5EED_0001),
            rng_service: SplitMix64::new(seed ^ 0x5EED_0002),
            rng_route: SplitMix64::new(seed ^ 0x5EED_0003),
            tenant_cdf: tenant_cdf(scenario),
            round_robin: 0,
            now: Time::ZERO,
            end: Time::ZERO + scenario.duration,
            n_requests: 0,
            n_succeeded: 0,
            n_failed: 0,
            n_failovers: 0,
            n_continuations: 0,
            n_outside: 0,
            latency: Histogram::default(),
            ttft: Histogram::default(),
            spend: 0.0,
            cloud_requests: vec![0; n_clouds],
            cloud_spend: vec![0.0; n_clouds],
            step_latency: Histogram::default(),
            step_requests: 0,
            step_failed: 0,
            step_cloud: vec![0; n_clouds],
            series: Vec::new(),
        };
        let first = next_arrival(scenario, Time::ZERO, &mut engine.rng_arrivals);
        engine.push(first, Ev::Arrival);
        engine.push(Time::ZERO + scenario.step, Ev::Step);
        for (i, e) in scenario.events.iter().enumerate() {
            engine.push(Time::ZERO + e.from, Ev::EventStart(i as u32));
            if let Some(until) = e.until {
                engine.push(Time::ZERO + until, Ev::EventEnd(i as u32));
            }
        }
        engine
    }

    fn push(&mut self, at: Time, ev: Ev) {
        self.seq += 1;
        self.heap.push(Reverse((at.as_micros(), self.seq, ev)));
    }

    /// Runs to the end; `progress` gets the share done now and then.
    pub fn run(mut self, progress: &mut dyn FnMut(f64)) -> RunResult {
        let mut n_events: u64 = 0;
        while let Some(Reverse((at, _, ev))) = self.heap.pop() {
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
                    self.push(next, Ev::Arrival);
                    self.arrive();
                }
                Ev::Step => {
                    self.close_step();
                    if self.now < self.end {
                        self.push(self.now + self.scenario.step, Ev::Step);
                    }
                }
                Ev::EventStart(i) => self.event(i as usize, true),
                Ev::EventEnd(i) => self.event(i as usize, false),
                Ev::AttemptEnd { slot, generation } => {
                    if self.current(slot, generation) {
                        self.attempt_end(slot);
                    }
                }
                Ev::Retry { slot, generation, deployment } => {
                    if self.current(slot, generation) {
                        self.start_attempt(slot, deployment);
                    }
                }
            }
        }
        progress(1.0);
        self.finish()
    }

    fn current(&self, slot: u32, generation: u32) -> bool {
        self.requests[slot as usize].as_ref().is_some_and(|r| r.generation == generation)
    }

    fn arrive(&mut self) {
        let (t, input, output, stream) = draw_request(self.scenario, &self.tenant_cdf, &mut self.rng_mix);
        let share = &self.scenario.mix.tenants[t];
        self.n_requests += 1;
        self.state.on_request(self.now);
        if let PolicyChoice::RoundRobin = self.policy {
            let alias = &mut self.config.aliases[usize::from(share.alias.0)];
            let n = alias.deployments.len();
            alias.deployments.rotate_left(self.round_robin % n.max(1));
            self.round_robin = 1;
        }
        let tenant = self.config.tenant(share.tenant);
        let request = PlanRequest {
            alias: share.alias,
            tenant,
            input_tokens: input,
            max_output_tokens: Some(output),
            needs: Needs { streaming: stream, ..Needs::default() },
            min_context_above: 0,
            avoid: None,
        };
        let planned = plan_with_fallbacks(&self.config, &self.state, &request, self.now, &mut self.rng_route);
        let Ok((request, planned)) = planned else {
            self.fail_new();
            return;
        };
        let session = AttemptSession::new(planned.deployments, self.config.server.max_attempts);
        let req = Request {
            arrival: self.now,
            tenant: t,
            alias: request.alias,
            input,
            output,
            stream,
            delivered: 0,
            first_token: None,
            session,
            attempt: None,
            generation: 0,
            estimated: input + output,
        };
        let slot = match self.free.pop() {
            Some(s) => {
                self.requests[s as usize] = Some(req);
                s
            }
            None => {
                self.requests.push(Some(req));
                (self.requests.len() - 1) as u32
            }
        };
        self.try_next(slot);
    }

    fn fail_new(&mut self) {
        self.n_failed += 1;
        self.step_requests += 1;
        self.step_failed += 1;
    }

    fn try_next(&mut self, slot: u32) {
        let now = self.now;
        let deadline = self.config.server.timeouts.request;
        let Some(req) = self.requests[slot as usize].as_mut() else { return };
        if now.saturating_since(req.arrival) > deadline {
            self.finish_request(slot, false);
            return;
        }
        let next = req.session.next(&mut self.state, now);
        match next {
            Err(_) => self.finish_request(slot, false),
            Ok(next) if !next.delay.is_zero() => {
                let generation = req.generation;
                self.push(now + next.delay, Ev::Retry { slot, generation, deployment: next.deployment });
            }
            Ok(next) => self.start_attempt(slot, next.deployment),
        }
    }

    fn start_attempt(&mut self, slot: u32, deployment: DeploymentId) {
        let now = self.now;
        let d = usize::from(deployment.0);
        let Some(req) = self.requests[slot as usize].as_mut() else { return };
        self.state.begin_attempt(deployment, req.estimated, now);
        let world = &mut self.world[d];
        let spec = self.config.deployments[d].emulation.as_ref();
        let mut attempt = Attempt {
            deployment,
            start: now,
            ttft: Duration::ZERO,
            per_token: Duration::ZERO,
            tokens: 0,
            error: None,
            queued: false,
        };
        let end;
        if world.down > 0 {
            attempt.error = Some(AttemptError2::Refused);
            end = now + CONNECT_FAIL;
        } else if world.storm > 0.0 && self.rng_service.next_f64() < world.storm {
            attempt.error = Some(AttemptError2::RateLimited(Duration::from_secs(1)));
            end = now + RATE_LIMIT_REPLY;
        } else if world.capacity.is_some_and(|c| world.in_flight >= c) && (world.queue.len() as u32) < world.queue_limit
        {
            // Full, but there is room to wait: served when a slot frees (see `admit`).
            attempt.queued = true;
            world.queue.push_back((slot, req.generation));
            req.attempt = Some(attempt);
            return;
        } else if world.capacity.is_some_and(|c| world.in_flight >= c) {
            let wait = spec.map_or(Duration::from_secs(1), |s| s.retry_after);
            attempt.error = Some(AttemptError2::RateLimited(wait));
            end = now + RATE_LIMIT_REPLY;
        } else {
            end = self.serve(slot, &mut attempt);
        }
        let Some(req) = self.requests[slot as usize].as_mut() else { return };
        req.attempt = Some(attempt);
        let generation = req.generation;
        self.push(end, Ev::AttemptEnd { slot, generation });
    }

    /// Starts service of an attempt now (a slot is taken); returns when it will end. Time spent
    /// queued counts toward its time to first token, as a caller would see it.
    fn serve(&mut self, slot: u32, attempt: &mut Attempt) -> Time {
        let now = self.now;
        let d = usize::from(attempt.deployment.0);
        let world = &mut self.world[d];
        world.in_flight += 1;
        let (ttft_ms, tps) = match self.config.deployments[d].emulation.as_ref() {
            Some(s) => (s.ttft_ms.sample(&mut self.rng_service), s.tokens_per_s.sample(&mut self.rng_service)),
            None => (250.0, 60.0),
        };
        let waited = now.saturating_since(attempt.start);
        attempt.queued = false;
        attempt.ttft = waited + Duration::from_secs_f64((ttft_ms * world.brownout).max(0.0) / 1000.0);
        attempt.per_token = Duration::from_secs_f64(world.brownout / tps.max(0.1));
        let (output, delivered) = self.requests[slot as usize].as_ref().map_or((1, 0), |r| (r.output, r.delivered));
        attempt.tokens = output.saturating_sub(delivered).max(1);
        attempt.start + attempt.ttft + attempt.per_token * (attempt.tokens - 1)
    }

    /// A slot freed at a deployment: the first request still waiting for it is served.
    fn admit(&mut self, deployment: DeploymentId) {
        let d = usize::from(deployment.0);
        while self.world[d].capacity.is_none_or(|c| self.world[d].in_flight < c) {
            let Some((slot, generation)) = self.world[d].queue.pop_front() else { return };
            if !self.current(slot, generation) {
                continue;
            }
            let Some(mut attempt) = self.requests[slot as usize].as_mut().and_then(|r| r.attempt.take()) else {
                continue;
            };
            let end = self.serve(slot, &mut attempt);
            if let Some(req) = self.requests[slot as usize].as_mut() {
                req.attempt = Some(attempt);
            }
            self.push(end, Ev::AttemptEnd { slot, generation });
        }
    }

    fn attempt_end(&mut self, slot: u32) {
        let now = self.now;
        let Some(req) = self.requests[slot as usize].as_mut() else { return };
        let Some(attempt) = req.attempt.take() else { return };
        req.generation += 1;
        let d = usize::from(attempt.deployment.0);
        match attempt.error {
            None => {
                self.world[d].in_flight -= 1;
                if req.first_token.is_none() {
                    req.first_token = Some(attempt.start + attempt.ttft);
                }
                req.delivered += attempt.tokens;
                let outcome = Outcome::Success {
                    ttft: Some(attempt.ttft),
                    duration: now.saturating_since(attempt.start),
                    output_tokens: attempt.tokens,
                    total_tokens: u64::from(req.input + attempt.tokens),
                };
                let estimated = req.estimated;
                self.state.end_attempt(attempt.deployment, estimated, outcome, now);
                self.charge(slot, attempt.deployment, attempt.tokens);
                self.finish_request(slot, true);
                self.admit(attempt.deployment);
            }
            Some(AttemptError2::Refused) => {
                self.failed(slot, attempt.deployment, AttemptError::ConnectFailed { detail: String::new() })
            }
            Some(AttemptError2::RateLimited(wait)) => {
                self.failed(slot, attempt.deployment, AttemptError::RateLimited { retry_after: Some(wait) })
            }
        }
    }

    /// Bills tokens produced at a deployment (to the caller's request and the commitment).
    fn charge(&mut self, slot: u32, deployment: DeploymentId, output_tokens: u32) {
        let Some(req) = self.requests[slot as usize].as_ref() else { return };
        let d = &self.config.deployments[usize::from(deployment.0)];
        // The prompt is billed again on every attempt that produced output.
        let usage = Usage {
            prompt_tokens: u64::from(req.input),
            completion_tokens: u64::from(output_tokens),
            cached_prompt_tokens: 0,
        };
        let list = list_cost(&self.world[usize::from(deployment.0)].price, &usage) * self.scenario.scale;
        self.state.record_spend(d.commitment, list);
        let marginal = match d.tier {
            Tier::Reserved => 0.0,
            Tier::OnDemand => list,
        };
        self.spend += marginal;
        self.cloud_spend[self.cloud_of[usize::from(deployment.0)]] += marginal;
    }

    fn failed(&mut self, slot: u32, deployment: DeploymentId, error: AttemptError) {
        let now = self.now;
        let Some(req) = self.requests[slot as usize].as_mut() else { return };
        self.state.end_attempt(deployment, req.estimated, Outcome::Failure(&error), now);
        let decision = req.session.on_failure(deployment, error, self.config.server.retry_after_cap);
        match decision {
            Decision::RetrySame { .. } | Decision::NextDeployment => self.try_next(slot),
            Decision::ContinueStream => self.continue_stream(slot, deployment),
            Decision::LargerContext | Decision::ReturnToCaller => self.finish_request(slot, false),
        }
    }

    /// A stream cut after content: re-plan on deployments that accept a prefill, as the gateway does.
    fn continue_stream(&mut self, slot: u32, broken: DeploymentId) {
        let now = self.now;
        let Some(req) = self.requests[slot as usize].as_mut() else { return };
        let share = &self.scenario.mix.tenants[req.tenant];
        let original = PlanRequest {
            alias: req.alias,
            tenant: self.config.tenant(share.tenant),
            input_tokens: req.input,
            max_output_tokens: Some(req.output),
            needs: Needs { streaming: req.stream, ..Needs::default() },
            min_context_above: 0,
            avoid: None,
        };
        let request = original.continuation(req.delivered, broken);
        match plan(&self.config, &self.state, &request, now, &mut self.rng_route) {
            Ok(p) => {
                req.session.replace_plan(p.deployments);
                self.n_continuations += 1;
                self.try_next(slot);
            }
            Err(_) => self.finish_request(slot, false),
        }
    }

    fn finish_request(&mut self, slot: u32, ok: bool) {
        let Some(req) = self.requests[slot as usize].take() else { return };
        self.free.push(slot);
        self.step_requests += 1;
        if !ok {
            self.n_failed += 1;
            self.step_failed += 1;
            return;
        }
        self.n_succeeded += 1;
        if req.session.n_attempts() > 1 {
            self.n_failovers += 1;
        }
        let latency = self.now.saturating_since(req.arrival).as_secs_f64() * 1e6;
        self.latency.record(latency);
        self.step_latency.record(latency);
        if let Some(first) = req.first_token {
            self.ttft.record(first.saturating_since(req.arrival).as_secs_f64() * 1e6);
        }
        if let Some(d) = req.session.last_attempted() {
            let cloud = self.cloud_of[usize::from(d.0)];
            self.cloud_requests[cloud] += 1;
            self.step_cloud[cloud] += 1;
            let tenant = self.config.tenant(self.scenario.mix.tenants[req.tenant].tenant);
            if self.config.deployment(d).jurisdiction_bit & tenant.jurisdiction_mask == 0 {
                self.n_outside += 1;
            }
        }
    }

    fn event(&mut self, index: usize, starting: bool) {
        let event = self.scenario.events[index].clone();
        for d in &event.deployments {
            let w = &mut self.world[usize::from(d.0)];
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
                }
                (EventKind::PriceChange { .. } | EventKind::Capacity { .. }, false) => (),
            }
        }
        if starting && event.kind == EventKind::Outage {
            self.cut_in_flight(&event.deployments);
        }
    }

    /// An outage cuts what is in flight at its deployments, as the emulator does.
    fn cut_in_flight(&mut self, deployments: &[DeploymentId]) {
        let now = self.now;
        let mut cut = Vec::new();
        for (slot, req) in self.requests.iter().enumerate() {
            let Some(req) = req else { continue };
            let Some(a) = req.attempt else { continue };
            if a.error.is_none() && deployments.contains(&a.deployment) {
                cut.push(slot as u32);
            }
        }
        for d in deployments {
            self.world[usize::from(d.0)].queue.clear();
        }
        for slot in cut {
            let Some(req) = self.requests[slot as usize].as_mut() else { continue };
            let Some(a) = req.attempt.take() else { continue };
            req.generation += 1;
            if a.queued {
                // Waiting in the queue: the connection is reset before any answer.
                self.failed(slot, a.deployment, AttemptError::ResetBeforeHeaders);
                continue;
            }
            self.world[usize::from(a.deployment.0)].in_flight -= 1;
            let first_token_at = a.start + a.ttft;
            let streamed = if now >= first_token_at {
                let after = now.saturating_since(first_token_at).as_secs_f64();
                ((after / a.per_token.as_secs_f64().max(1e-9)) as u32 + 1).min(a.tokens.saturating_sub(1))
            } else {
                0
            };
            let error = if req.stream && streamed > 0 {
                if req.first_token.is_none() {
                    req.first_token = Some(first_token_at);
                }
                req.delivered += streamed;
                AttemptError::StreamCut
            } else {
                AttemptError::ResetBeforeHeaders
            };
            if streamed > 0 && req.stream {
                self.charge(slot, a.deployment, streamed);
            }
            self.failed(slot, a.deployment, error);
        }
    }

    fn close_step(&mut self) {
        let commitments = self
            .config
            .commitments
            .iter()
            .map(|c| {
                let (spent, pace) = self.state.commitment_progress(c.id, self.now);
                (round(spent, 2), round(pace, 2))
            })
            .collect();
        self.series.push(Step {
            t_s: round(self.now.as_micros() as f64 / 1e6, 3),
            requests: self.step_requests,
            failed: self.step_failed,
            per_cloud: std::mem::replace(&mut self.step_cloud, vec![0; self.config.clouds.len()]),
            latency_p50_ms: round(self.step_latency.quantile(0.5) / 1000.0, 3),
            latency_p99_ms: round(self.step_latency.quantile(0.99) / 1000.0, 3),
            cumulative_spend_usd: round(self.spend, 4),
            commitments,
        });
        self.step_latency = Histogram::default();
        self.step_requests = 0;
        self.step_failed = 0;
    }

    fn finish(self) -> RunResult {
        let ms = |h: &Histogram| Percentiles {
            p50: round(h.quantile(0.5) / 1000.0, 3),
            p95: round(h.quantile(0.95) / 1000.0, 3),
            p99: round(h.quantile(0.99) / 1000.0, 3),
        };
        let n_served: u64 = self.cloud_requests.iter().sum();
        let per_cloud = self
            .config
            .clouds
            .iter()
            .enumerate()
            .map(|(i, c)| CloudResult {
                cloud: c.name.clone(),
                requests: self.cloud_requests[i],
                share: round(self.cloud_requests[i] as f64 / n_served.max(1) as f64, 4),
                spend_usd: round(self.cloud_spend[i], 4),
            })
            .collect();
        let mut forfeited = 0.0;
        let commitments = self
            .config
            .commitments
            .iter()
            .map(|c| {
                let (spent, pace) = self.state.commitment_progress(c.id, self.end);
                forfeited += (pace - spent).max(0.0);
                CommitmentResult {
                    name: c.name.clone(),
                    amount_usd: c.amount_usd,
                    spent_usd: round(spent, 2),
                    pace_usd: round(pace, 2),
                    burn_vs_pace: round(spent / pace.max(1e-9), 4),
                }
            })
            .collect();
        let total = self.n_succeeded + self.n_failed;
        RunResult {
            policy: self.policy.name(&self.config),
            requests: self.n_requests,
            succeeded: self.n_succeeded,
            failed: self.n_failed,
            success_rate: round(self.n_succeeded as f64 / total.max(1) as f64, 6),
            failovers: self.n_failovers,
            continuations: self.n_continuations,
            latency_ms: ms(&self.latency),
            ttft_ms: ms(&self.ttft),
            spend_usd: round(self.spend, 4),
            spend_vs_oracle: 0.0,
            effective_cost_usd: round(self.spend + forfeited, 4),
            outside_jurisdiction: self.n_outside,
            per_cloud,
            commitments,
            series: self.series,
        }
    }
}
