//! How the simulator drives one request: the actions of its state machine carried out in the
//! simulated world, the world's events fed back to it, and one wake-up kept armed for its timers.

use switchyard_core::AttemptError;
use switchyard_core::Time;
use switchyard_core::config::DeploymentId;
use switchyard_core::lifecycle::{Action, AttemptId, Ctx, Finished, RequestMachine};

use super::{Engine, Ev};
use crate::tally::Served;
use crate::world::{Key, Phase, Services};

/// A request in flight: its state machine, and the world's side of each of its attempts.
pub(super) struct Request {
    serial: u32,
    arrival: Time,
    /// Index into the scenario's `mix.tenants`.
    tenant: usize,
    input: u32,
    output: u32,
    stream: bool,
    machine: RequestMachine,
    /// Attempts not yet booked, as the world sees them.
    services: Services,
    /// The wake-up pending in the heap; an entry at any other instant is stale.
    armed: Option<Time>,
    /// When the first content reached the caller.
    first_content: Option<Time>,
}

impl Request {
    /// Content went to the machine: it reached the caller unless held back (then it does at
    /// `Action::Release`).
    fn content_seen(&mut self, now: Time) {
        if self.first_content.is_none() && self.machine.delivered_tokens() > 0 && !self.machine.holding_back() {
            self.first_content = Some(now);
        }
    }
}

impl Engine<'_> {
    /// A request arrived and was planned: it starts its life here.
    pub(super) fn open(
        &mut self,
        machine: RequestMachine,
        tenant: usize,
        input: u32,
        output: u32,
        stream: bool,
        now: Time,
    ) {
        self.serial = self.serial.wrapping_add(1);
        let request = Request {
            serial: self.serial,
            arrival: now,
            tenant,
            input,
            output,
            stream,
            machine,
            services: Services::default(),
            armed: None,
            first_content: None,
        };
        let slot = match self.free.pop() {
            Some(s) => {
                self.requests[s as usize] = Some(request);
                s
            }
            None => {
                self.requests.push(Some(request));
                (self.requests.len() - 1) as u32
            }
        };
        self.settle(slot);
    }

    /// Carries out what the request's machine asks, then frees the request when it is over or
    /// keeps its wake-up armed.
    fn settle(&mut self, slot: u32) {
        while let Some(action) = self.requests[slot as usize].as_mut().and_then(|r| r.machine.poll_action()) {
            match action {
                Action::Start { attempt, deployment, continuation, .. } => {
                    self.start(slot, attempt, deployment, continuation)
                }
                Action::Stop { attempt } => self.stop(slot, attempt),
                Action::Release => {
                    // The answer held back so far reaches the caller now.
                    let now = self.now;
                    if let Some(req) = self.requests[slot as usize].as_mut() {
                        req.first_content.get_or_insert(now);
                    }
                }
                Action::Restart => {
                    if let Some(req) = self.requests[slot as usize].as_mut() {
                        req.first_content = None;
                    }
                }
                Action::Closed { attempt, deployment, .. } => self.closed(slot, attempt, deployment),
                Action::Finish(finished) => self.finished(slot, &finished),
            }
        }
        let Some(req) = self.requests[slot as usize].as_ref() else { return };
        if req.machine.is_done() {
            debug_assert!(req.services.is_empty(), "every attempt is booked before the end");
            self.requests[slot as usize] = None;
            self.free.push(slot);
        } else {
            self.rearm(slot);
        }
    }

    /// Keeps one wake-up pending, no later than the machine's next timeout (an early one is
    /// harmless: it re-arms). None is needed while one of the request's attempts has an event
    /// due by then: every attempt event settles the request, which re-arms.
    fn rearm(&mut self, slot: u32) {
        let now = self.now;
        let Some(req) = self.requests[slot as usize].as_mut() else { return };
        let Some(at) = req.machine.poll_timeout() else { return };
        let at = at.max(now);
        if req.armed.is_some_and(|armed| armed <= at) || req.services.iter().any(|s| s.due.is_some_and(|d| d <= at)) {
            return;
        }
        req.armed = Some(at);
        let serial = req.serial;
        self.schedule.push(at, Ev::Wake { slot, serial });
    }

    pub(super) fn wake(&mut self, slot: u32, serial: u32) {
        let now = self.now;
        let Some(req) = self.requests[slot as usize].as_mut().filter(|r| r.serial == serial) else { return };
        if req.armed != Some(now) {
            return;
        }
        req.armed = None;
        if req.machine.poll_timeout().is_some_and(|t| t <= now) {
            let mut ctx = Ctx { config: &self.config, state: &self.state, rng: &mut self.rng_route };
            req.machine.handle_timeout(&mut ctx, now);
        }
        self.settle(slot);
    }

    /// The machine opened an attempt: it reaches its deployment now.
    fn start(&mut self, slot: u32, attempt: AttemptId, deployment: DeploymentId, continuation: bool) {
        let now = self.now;
        let Some(req) = self.requests[slot as usize].as_mut() else { return };
        // A continuation produces only the rest of the answer.
        let tokens = if continuation { req.output.saturating_sub(req.machine.delivered_tokens()) } else { req.output };
        let key = Key { slot, serial: req.serial, attempt };
        let service = self.world.begin(&self.config, key, deployment, req.stream, tokens, now);
        if let Some(due) = service.due {
            self.schedule.push(due, Ev::Attempt(key));
        }
        if service.phase == Phase::Serving && req.stream {
            req.machine.on_headers(attempt);
        }
        req.services.push(service);
    }

    /// The machine dropped an attempt (it timed out or lost): the deployment stops on it.
    fn stop(&mut self, slot: u32, attempt: AttemptId) {
        let Some(req) = self.requests[slot as usize].as_mut() else { return };
        let key = Key { slot, serial: req.serial, attempt };
        let Some(service) = req.services.get_mut(attempt) else { return };
        let deployment = service.deployment;
        if self.world.end(key, service) {
            self.admit(deployment);
        }
    }

    /// The machine booked an attempt: what it produced is charged.
    fn closed(&mut self, slot: u32, attempt: AttemptId, deployment: DeploymentId) {
        let Some(req) = self.requests[slot as usize].as_mut() else { return };
        let key = Key { slot, serial: req.serial, attempt };
        let Some(mut service) = req.services.remove(attempt) else { return };
        let input = req.input;
        let freed = self.world.end(key, &mut service);
        if service.sent > 0 {
            self.charge(input, deployment, service.sent);
        }
        if freed {
            self.admit(deployment);
        }
    }

    fn finished(&mut self, slot: u32, finished: &Finished) {
        let Some(req) = self.requests[slot as usize].as_ref() else { return };
        let route = req.machine.route();
        if route.len() > 1 {
            self.tally.continued();
        }
        self.tally.attempts(req.machine.n_attempts(), req.machine.hedges().0);
        match finished {
            Finished::Answered { deployment, .. } => {
                let tenant = self.config.tenant(self.scenario.mix.tenants[req.tenant].tenant);
                let outside =
                    route.iter().any(|d| self.config.deployment(*d).jurisdiction_bit & tenant.jurisdiction_mask == 0);
                let served = Served {
                    latency: self.now.saturating_since(req.arrival),
                    ttft: req.first_content.filter(|_| req.stream).map(|t| t.saturating_since(req.arrival)),
                    failover: req.machine.n_attempts() > 1,
                    cloud: self.cloud_of[usize::from(deployment.0)],
                    outside_jurisdiction: outside,
                };
                self.tally.succeeded(&served);
            }
            Finished::Failed(_) => self.tally.failed(),
        }
    }

    /// An attempt's next event in the world: its failure reply, a batch of its stream, or its end.
    pub(super) fn attempt_event(&mut self, key: Key) {
        let (now, half_idle) = (self.now, self.half_idle);
        let Some(req) = self.requests[key.slot as usize].as_mut().filter(|r| r.serial == key.serial) else { return };
        let Some(s) = req.services.get_mut(key.attempt) else { return };
        if s.due != Some(now) {
            return;
        }
        s.due = None;
        let deployment = s.deployment;
        let mut ctx = Ctx { config: &self.config, state: &self.state, rng: &mut self.rng_route };
        let mut freed = false;
        match s.phase {
            Phase::Replying(reply) => {
                s.phase = Phase::Over;
                req.machine.on_failed(&mut ctx, key.attempt, reply.error(), now);
            }
            Phase::Serving if s.stream => {
                let produced = s.produced(now);
                let fresh = produced - s.sent;
                s.sent = produced;
                let done = s.sent >= s.tokens;
                if done {
                    freed = self.world.end(key, s);
                } else {
                    let due = s.next_batch(now, half_idle);
                    s.due = Some(due);
                    self.schedule.push(due, Ev::Attempt(key));
                }
                if fresh > 0 {
                    req.machine.on_content(&mut ctx, key.attempt, fresh, false, now);
                    req.content_seen(now);
                }
                if done {
                    req.machine.on_finish_reason(key.attempt, now);
                    req.machine.on_done(&mut ctx, key.attempt, None, now);
                }
            }
            Phase::Serving => {
                // A whole answer: its headers come with the body. Its content is reported before
                // the end so that the attempt is booked with its output tokens: `on_done` alone
                // books none, and the latency estimate would then take the whole generation
                // time for time to first token.
                s.sent = s.tokens;
                let used = u64::from(req.input) + u64::from(s.tokens);
                freed = self.world.end(key, s);
                req.machine.on_headers(key.attempt);
                req.machine.on_content(&mut ctx, key.attempt, s.tokens, false, now);
                req.machine.on_done(&mut ctx, key.attempt, Some(used), now);
            }
            Phase::Queued | Phase::Over => {}
        }
        self.settle(key.slot);
        if freed {
            self.admit(deployment);
        }
    }

    /// Slots freed at a deployment: the attempts waiting for them are served, in order.
    pub(super) fn admit(&mut self, deployment: DeploymentId) {
        let now = self.now;
        while let Some(key) = self.world.next_admitted(deployment) {
            let Some(req) = self.requests[key.slot as usize].as_mut().filter(|r| r.serial == key.serial) else {
                continue;
            };
            let Some(s) = req.services.get_mut(key.attempt).filter(|s| s.phase == Phase::Queued) else {
                continue;
            };
            self.world.serve(&self.config, s, now);
            if let Some(due) = s.due {
                self.schedule.push(due, Ev::Attempt(key));
            }
            if req.stream {
                req.machine.on_headers(key.attempt);
                self.rearm(key.slot);
            }
        }
    }

    /// An outage resets what waits and cuts what is served at its deployments, as the emulator
    /// does: a stream that sent content is cut after it, anything else is reset.
    pub(super) fn cut_in_flight(&mut self, deployments: &[DeploymentId]) {
        let now = self.now;
        let mut cut = Vec::new();
        for (slot, req) in self.requests.iter().enumerate() {
            let Some(req) = req else { continue };
            for s in req.services.iter() {
                if matches!(s.phase, Phase::Serving | Phase::Queued) && deployments.contains(&s.deployment) {
                    cut.push(Key { slot: slot as u32, serial: req.serial, attempt: s.id });
                }
            }
        }
        for d in deployments {
            self.world.drop_queue(*d);
        }
        for key in cut {
            let Some(req) = self.requests[key.slot as usize].as_mut().filter(|r| r.serial == key.serial) else {
                continue;
            };
            let Some(s) = req.services.get_mut(key.attempt) else { continue };
            let fresh = if s.stream { s.produced(now) - s.sent } else { 0 };
            s.sent += fresh;
            let error = match (s.phase, s.stream) {
                (Phase::Serving, true) if s.sent > 0 => AttemptError::StreamCut,
                (Phase::Serving, true) => AttemptError::CutBeforeContent,
                _ => AttemptError::ResetBeforeHeaders,
            };
            // The deployment is down: the freed slot serves no one.
            self.world.end(key, s);
            let mut ctx = Ctx { config: &self.config, state: &self.state, rng: &mut self.rng_route };
            if fresh > 0 {
                req.machine.on_content(&mut ctx, key.attempt, fresh, false, now);
                req.content_seen(now);
            }
            req.machine.on_failed(&mut ctx, key.attempt, error, now);
            self.settle(key.slot);
        }
    }
}
