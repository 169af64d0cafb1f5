//! The traffic a scenario generates: arrival times (thinned Poisson over the time-varying
//! rate) and each request's shape, from their own seeded generators so that every policy, the
//! oracle and a live replay see exactly the same requests.

use std::time::Duration;

use switchyard_core::Time;
use switchyard_core::rng::{Rng, SplitMix64};

use crate::scenario::Scenario;

/// A capacity in scaled mode: the simulated traffic is `scale` times thinner, so is capacity
/// (at least 1: below `scale` concurrent, a capacity no longer binds, which the report's mode says).
pub(crate) fn scaled(capacity: Option<u32>, scale: f64) -> Option<u32> {
    capacity.map(|c| ((f64::from(c) / scale).ceil() as u32).max(1))
}

/// Draws the next request's shape: (tenant index, input, output, stream).
pub(crate) fn draw_request(scenario: &Scenario, cdf: &[f64], rng: &mut SplitMix64) -> (usize, u32, u32, bool) {
    let u = rng.next_f64() * cdf.last().copied().unwrap_or(1.0);
    let tenant = cdf.iter().position(|c| u < *c).unwrap_or(cdf.len() - 1);
    let input = scenario.mix.input_tokens.sample(rng).max(1.0) as u32;
    let output = scenario.mix.output_tokens.sample(rng).max(1.0) as u32;
    let stream = rng.next_f64() < scenario.mix.streaming_share;
    (tenant, input, output, stream)
}

/// The next arrival after `now` (thinning over the time-varying rate), in simulated requests.
pub(crate) fn next_arrival(scenario: &Scenario, now: Time, rng: &mut SplitMix64) -> Time {
    let max = scenario.arrivals.max_rate() / scenario.scale;
    let mut t = now;
    loop {
        let gap = -(1.0 - rng.next_f64()).ln() / max;
        t = t + Duration::from_secs_f64(gap);
        let rate = scenario.arrivals.rate_at(Duration::from_micros(t.as_micros())) / scenario.scale;
        if rng.next_f64() * max <= rate {
            return t;
        }
    }
}

pub(crate) fn tenant_cdf(scenario: &Scenario) -> Vec<f64> {
    let mut acc = 0.0;
    scenario
        .mix
        .tenants
        .iter()
        .map(|t| {
            acc += t.share;
            acc
        })
        .collect()
}

/// One request of a scenario's traffic, as the simulator generates it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Arrival {
    pub at: std::time::Duration,
    /// Index into the scenario's `mix.tenants`.
    pub tenant: usize,
    pub input_tokens: u32,
    pub output_tokens: u32,
    pub stream: bool,
}

/// The scenario's traffic for `seed`: exactly the requests every simulated policy sees, for
/// replaying against a live gateway.
pub fn traffic(scenario: &Scenario, seed: u64) -> Vec<Arrival> {
    let mut rng_arrivals = switchyard_core::rng::SplitMix64::new(seed);
    let mut rng_mix = switchyard_core::rng::SplitMix64::new(seed ^ 0x5EED_0001);
    let cdf = tenant_cdf(scenario);
    let end = switchyard_core::Time::ZERO + scenario.duration;
    let mut out = Vec::new();
    let mut now = next_arrival(scenario, switchyard_core::Time::ZERO, &mut rng_arrivals);
    while now < end {
        let (tenant, input_tokens, output_tokens, stream) = draw_request(scenario, &cdf, &mut rng_mix);
        out.push(Arrival {
            at: std::time::Duration::from_micros(now.as_micros()),
            tenant,
            input_tokens,
            output_tokens,
            stream,
        });
        now = next_arrival(scenario, now, &mut rng_arrivals);
    }
    out
}
