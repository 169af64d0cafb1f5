//! Headroom a deployment reports on its answers (Azure's and OpenAI's
//! `x-ratelimit-remaining-requests` / `-tokens`, with their resets): a deployment that says it
//! has no requests left, or fewer tokens than a request would take, is planned around until its
//! reset, like one cooling down after a 429. It is not a failure: health is not touched, and a
//! later answer that shows room brings it back at once. With shared signals, "no requests left"
//! reaches the other replicas as a cool-down until the reset.
//!
//! The values come in as arguments (the gateway reads the headers), so this stays pure.

use std::time::Duration;

use super::RouterState;
use crate::config::DeploymentId;
use crate::time::Time;

/// How long a deployment that said it is full is passed over when it gave no reset.
pub const DEFAULT_HEADROOM_RESET: Duration = Duration::from_secs(1);

/// The longest a reported reset keeps a deployment out: token windows may announce minutes
/// (`6m0s`) while their bucket refills continuously.
pub const MAX_HEADROOM_WAIT: Duration = Duration::from_secs(60);

/// What one answer said about the deployment's remaining allowance; `None`: not reported.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Headroom {
    pub requests: Option<u64>,
    pub tokens: Option<u64>,
    pub requests_reset: Option<Duration>,
    pub tokens_reset: Option<Duration>,
}

impl Headroom {
    /// Whether the answer reported anything.
    pub fn is_reported(&self) -> bool {
        self.requests.is_some() || self.tokens.is_some()
    }

    /// Whether the answer said the deployment is full: no requests, or no tokens, left.
    pub fn says_full(&self) -> bool {
        self.requests == Some(0) || self.tokens == Some(0)
    }
}

/// The latest headroom a deployment reported, as far as it still binds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reported {
    /// No requests left until then.
    pub requests_until: Option<Time>,
    /// This many tokens left until then.
    pub tokens: Option<(u64, Time)>,
}

impl Reported {
    /// Until when a request of `estimated_tokens` should not be sent here (`None`: it may).
    #[inline]
    pub fn full_until(&self, estimated_tokens: u32, now: Time) -> Option<Time> {
        let requests = self.requests_until.filter(|until| now < *until);
        let tokens = match self.tokens {
            Some((left, until)) if now < until && left < u64::from(estimated_tokens) => Some(until),
            _ => None,
        };
        requests.max(tokens)
    }

    /// Takes in what an answer reported; returns until when it said no requests are left.
    fn observe(&mut self, headroom: &Headroom, now: Time) -> Option<Time> {
        let until = |reset: Option<Duration>| now + reset.unwrap_or(DEFAULT_HEADROOM_RESET).min(MAX_HEADROOM_WAIT);
        if let Some(left) = headroom.requests {
            self.requests_until = (left == 0).then(|| until(headroom.requests_reset));
        }
        if let Some(left) = headroom.tokens {
            self.tokens = Some((left, until(headroom.tokens_reset)));
        }
        self.requests_until.filter(|_| headroom.requests == Some(0))
    }
}

// === impl RouterState ===

impl RouterState {
    /// An answer's headers reported the deployment's headroom (nothing happens when they did
    /// not). Kept until its reset, or until a later answer reports again.
    /// Returns whether the answer said the deployment is full.
    ///
    /// With shared signals, "no requests left" is told to the other replicas as a cool-down
    /// until its reset: they pass the deployment over too. (How many tokens are left depends
    /// on each request, so that stays this replica's.)
    pub fn observe_headroom(&self, id: DeploymentId, headroom: &Headroom, now: Time) -> bool {
        if headroom.is_reported() {
            let mut d = self.deployment(id);
            if let Some(until) = d.reported.observe(headroom, now) {
                d.reported_cooling = self.calendar.unix_ms(until);
                self.publish_cooldown(id, until);
            }
        }
        headroom.says_full()
    }
}

#[cfg(test)]
mod tests;
