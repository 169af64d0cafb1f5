//! The simulated clouds: each deployment's capacity, queue and scheduled faults, and what an
//! attempt sent to one does on the virtual clock: refused during an outage, answered 429 in a
//! storm or when full, queued, or served with the emulator's timing model, token by token.

use std::collections::VecDeque;
use std::time::Duration;

use switchyard_core::config::{Config, DeploymentId, Price};
use switchyard_core::lifecycle::AttemptId;
use switchyard_core::rng::{Rng, SplitMix64};
use switchyard_core::{AttemptError, Time};

use crate::traffic::scaled;

/// How long a refused connection takes to fail.
const CONNECT_FAIL: Duration = Duration::from_millis(1);
/// How long a 429 takes to come back.
const RATE_LIMIT_REPLY: Duration = Duration::from_millis(20);
/// Retry-After of a 429 in a rate-limit storm.
const STORM_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Which request, and which of its attempts, a queue entry or an event is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Key {
    pub(crate) slot: u32,
    pub(crate) serial: u32,
    pub(crate) attempt: AttemptId,
}

/// What is true of a deployment right now in the simulated world.
#[derive(Clone, Debug)]
pub(crate) struct Deployment {
    pub(crate) capacity: Option<u32>,
    in_flight: u32,
    pub(crate) down: u32,
    pub(crate) brownout: f64,
    pub(crate) storm: f64,
    pub(crate) price: Price,
    /// Attempts waiting for a slot, up to `queue_limit`.
    queue: VecDeque<Key>,
    queue_limit: u32,
}

/// A failure the deployment answers with, after a short while.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Reply {
    Refused,
    RateLimited(Duration),
}

impl Reply {
    pub(crate) fn error(self) -> AttemptError {
        match self {
            Reply::Refused => AttemptError::ConnectFailed { detail: String::new() },
            Reply::RateLimited(wait) => AttemptError::RateLimited { retry_after: Some(wait) },
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Phase {
    /// A failure comes back at `due`.
    Replying(Reply),
    /// Waiting in the deployment's queue: no headers yet.
    Queued,
    /// Holding a slot: tokens come out from `first_token`, one per `per_token`.
    Serving,
    /// Over on the world's side (answered, failed, cut or stopped); its booking may follow.
    Over,
}

/// One attempt as the deployment sees it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Service {
    pub(crate) id: AttemptId,
    pub(crate) deployment: DeploymentId,
    pub(crate) stream: bool,
    pub(crate) phase: Phase,
    /// When this attempt's next event is due (none while queued or over).
    pub(crate) due: Option<Time>,
    pub(crate) first_token: Time,
    pub(crate) per_token: Duration,
    /// Output tokens this attempt produces in all (a continuation: only the rest).
    pub(crate) tokens: u32,
    /// Output tokens already handed to the request.
    pub(crate) sent: u32,
}

impl Service {
    /// Tokens produced by `now`.
    pub(crate) fn produced(&self, now: Time) -> u32 {
        if self.phase != Phase::Serving || now < self.first_token {
            return 0;
        }
        if now >= self.end() {
            // Times are whole microseconds: the last token is out at `end` exactly.
            return self.tokens;
        }
        let after = now.saturating_since(self.first_token).as_nanos();
        let n = 1 + after / self.per_token.as_nanos().max(1);
        n.min(u128::from(self.tokens)) as u32
    }

    /// When the last token comes out.
    pub(crate) fn end(&self) -> Time {
        self.first_token + self.per_token * self.tokens.saturating_sub(1)
    }

    /// The next batch of a stream after `now`: every `half_idle` at most, so that a steady
    /// stream never looks stalled, unless the next token itself takes longer.
    pub(crate) fn next_batch(&self, now: Time, half_idle: Duration) -> Time {
        let next_token = self.first_token + self.per_token * self.sent;
        (now + half_idle).max(next_token).min(self.end())
    }
}

/// A request's attempts as the world sees them: nearly always one, so that one is kept inline.
#[derive(Debug, Default)]
pub(crate) struct Services {
    /// Empty only when `more` is.
    first: Option<Service>,
    more: Vec<Service>,
}

impl Services {
    pub(crate) fn push(&mut self, service: Service) {
        match self.first {
            None => self.first = Some(service),
            Some(_) => self.more.push(service),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.first.is_none()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Service> {
        self.first.iter().chain(&self.more)
    }

    pub(crate) fn get_mut(&mut self, id: AttemptId) -> Option<&mut Service> {
        self.first.iter_mut().chain(&mut self.more).find(|s| s.id == id)
    }

    pub(crate) fn remove(&mut self, id: AttemptId) -> Option<Service> {
        if self.first.is_some_and(|s| s.id == id) {
            let removed = self.first.take();
            self.first = (!self.more.is_empty()).then(|| self.more.swap_remove(0));
            return removed;
        }
        let i = self.more.iter().position(|s| s.id == id)?;
        Some(self.more.swap_remove(i))
    }
}

/// Every simulated deployment, and the service-time generator.
pub(crate) struct World {
    pub(crate) deployments: Vec<Deployment>,
    rng: SplitMix64,
}

impl World {
    pub(crate) fn new(config: &Config, scale: f64, rng: SplitMix64) -> World {
        let deployments = config
            .deployments
            .iter()
            .map(|d| Deployment {
                capacity: scaled(d.emulation.as_ref().and_then(|e| e.max_concurrency).or(d.limits.concurrency), scale),
                in_flight: 0,
                down: 0,
                brownout: 1.0,
                storm: 0.0,
                price: d.price,
                queue: VecDeque::new(),
                queue_limit: d.emulation.as_ref().map_or(0, |e| e.max_queue),
            })
            .collect();
        World { deployments, rng }
    }

    /// An attempt reaches `deployment` at `now`: refused, rate limited, queued or served.
    pub(crate) fn begin(
        &mut self,
        config: &Config,
        key: Key,
        deployment: DeploymentId,
        stream: bool,
        tokens: u32,
        now: Time,
    ) -> Service {
        let mut service = Service {
            id: key.attempt,
            deployment,
            stream,
            phase: Phase::Queued,
            due: None,
            first_token: now,
            per_token: Duration::ZERO,
            tokens: tokens.max(1),
            sent: 0,
        };
        let d = &mut self.deployments[usize::from(deployment.0)];
        let full = d.capacity.is_some_and(|c| d.in_flight >= c);
        let reply = if d.down > 0 {
            Some((Reply::Refused, CONNECT_FAIL))
        } else if d.storm > 0.0 && self.rng.next_f64() < d.storm {
            Some((Reply::RateLimited(STORM_RETRY_AFTER), RATE_LIMIT_REPLY))
        } else if full && (d.queue.len() as u32) < d.queue_limit {
            // Full, but there is room to wait: served when a slot frees (see `admit`).
            d.queue.push_back(key);
            return service;
        } else if full {
            let spec = config.deployments[usize::from(deployment.0)].emulation.as_ref();
            Some((Reply::RateLimited(spec.map_or(Duration::from_secs(1), |s| s.retry_after)), RATE_LIMIT_REPLY))
        } else {
            None
        };
        match reply {
            Some((reply, after)) => {
                service.phase = Phase::Replying(reply);
                service.due = Some(now + after);
            }
            None => self.serve(config, &mut service, now),
        }
        service
    }

    /// Starts serving an attempt now (a slot is taken). Time spent queued counts toward its
    /// time to first token, as the caller sees it.
    pub(crate) fn serve(&mut self, config: &Config, service: &mut Service, now: Time) {
        let d = &mut self.deployments[usize::from(service.deployment.0)];
        d.in_flight += 1;
        let (ttft_ms, tps) = match config.deployments[usize::from(service.deployment.0)].emulation.as_ref() {
            Some(s) => (s.ttft_ms.sample(&mut self.rng), s.tokens_per_s.sample(&mut self.rng)),
            None => (250.0, 60.0),
        };
        service.phase = Phase::Serving;
        service.first_token = now + Duration::from_secs_f64((ttft_ms * d.brownout).max(0.0) / 1000.0);
        service.per_token = Duration::from_secs_f64(d.brownout / tps.max(0.1));
        service.due = Some(if service.stream { service.first_token } else { service.end() });
    }

    /// The attempt ends on the world's side, whatever its phase; true when it freed a slot
    /// (then call `admit`).
    pub(crate) fn end(&mut self, key: Key, service: &mut Service) -> bool {
        let d = &mut self.deployments[usize::from(service.deployment.0)];
        let phase = std::mem::replace(&mut service.phase, Phase::Over);
        service.due = None;
        match phase {
            Phase::Serving => {
                d.in_flight -= 1;
                true
            }
            Phase::Queued => {
                d.queue.retain(|k| *k != key);
                false
            }
            Phase::Replying(_) | Phase::Over => false,
        }
    }

    /// The next queued attempt that may be served at `deployment` now, if a slot is free.
    pub(crate) fn next_admitted(&mut self, deployment: DeploymentId) -> Option<Key> {
        let d = &mut self.deployments[usize::from(deployment.0)];
        if d.capacity.is_some_and(|c| d.in_flight >= c) {
            return None;
        }
        d.queue.pop_front()
    }

    /// An outage begins: its queue is dropped (those attempts are reset by the caller).
    pub(crate) fn drop_queue(&mut self, deployment: DeploymentId) {
        self.deployments[usize::from(deployment.0)].queue.clear();
    }
}
