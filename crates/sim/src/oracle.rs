//! A lower bound on cost: what a router with perfect knowledge of the schedule and the
//! capacities would have spent on the same traffic. Each request, in arrival order, goes to the
//! cheapest eligible deployment that is up and still has capacity in the current step
//! (throughput capacity = concurrency × step / mean service time). Failures, retries and
//! latency cost it nothing.

use std::time::Duration;

use switchyard_core::Time;
use switchyard_core::config::Tier;
use switchyard_core::rng::SplitMix64;
use switchyard_core::usage::marginal_cost;

use crate::scenario::{EventKind, Scenario};
use crate::traffic::{draw_request, next_arrival, scaled, tenant_cdf};

pub fn lower_bound(scenario: &Scenario, seed: u64) -> f64 {
    let config = &scenario.config;
    let mut rng_arrivals = SplitMix64::new(seed);
    let mut rng_mix = SplitMix64::new(seed ^ 0x5EED_0001);
    let cdf = tenant_cdf(scenario);
    let n = config.deployments.len();
    let mut down = vec![0u32; n];
    let mut brownout = vec![1.0f64; n];
    let mut prices: Vec<_> = config.deployments.iter().map(|d| d.price).collect();
    // The same (scaled) capacities the engine's world has.
    let mut capacity: Vec<Option<u32>> = config
        .deployments
        .iter()
        .map(|d| scaled(d.emulation.as_ref().and_then(|e| e.max_concurrency).or(d.limits.concurrency), scenario.scale))
        .collect();
    // (time, starting, event index), applied in order as arrivals pass them.
    let mut changes: Vec<(Duration, bool, usize)> = Vec::new();
    for (i, e) in scenario.events.iter().enumerate() {
        changes.push((e.from, true, i));
        if let Some(u) = e.until {
            changes.push((u, false, i));
        }
    }
    changes.sort_by_key(|c| (c.0, c.1, c.2));
    let mut next_change = 0;
    let step_s = scenario.step.as_secs_f64();
    let output_median = scenario.mix.output_tokens.median().max(1.0);
    let mut step_index = u64::MAX;
    let mut used = vec![0.0f64; n];
    let mut spend = 0.0;
    let end = Time::ZERO + scenario.duration;
    let mut now = next_arrival(scenario, Time::ZERO, &mut rng_arrivals);
    while now < end {
        let t = Duration::from_micros(now.as_micros());
        while next_change < changes.len() && changes[next_change].0 <= t {
            let (_, starting, i) = changes[next_change];
            let event = &scenario.events[i];
            for d in &event.deployments {
                let d = usize::from(d.0);
                match (event.kind, starting) {
                    (EventKind::Outage, true) => down[d] += 1,
                    (EventKind::Outage, false) => down[d] = down[d].saturating_sub(1),
                    (EventKind::Brownout { multiplier }, true) => brownout[d] *= multiplier,
                    (EventKind::Brownout { multiplier }, false) => brownout[d] /= multiplier,
                    (EventKind::PriceChange { input_per_mtok, output_per_mtok }, true) => {
                        prices[d].input_per_mtok = input_per_mtok.unwrap_or(prices[d].input_per_mtok);
                        prices[d].output_per_mtok = output_per_mtok.unwrap_or(prices[d].output_per_mtok);
                    }
                    (EventKind::Capacity { concurrency }, true) => {
                        capacity[d] = scaled(Some(concurrency), scenario.scale)
                    }
                    (EventKind::RateLimitStorm { .. }, _)
                    | (EventKind::PriceChange { .. } | EventKind::Capacity { .. }, false) => (),
                }
            }
            next_change += 1;
        }
        let step = (t.as_secs_f64() / step_s) as u64;
        if step != step_index {
            step_index = step;
            used.iter_mut().for_each(|u| *u = 0.0);
        }
        let (tenant_index, input, output, stream) = draw_request(scenario, &cdf, &mut rng_mix);
        let share = &scenario.mix.tenants[tenant_index];
        let tenant = config.tenant(share.tenant);
        let alias = &config.aliases[usize::from(share.alias.0)];
        let mut best: Option<(f64, usize)> = None;
        for id in &alias.deployments {
            let d = config.deployment(*id);
            let i = usize::from(id.0);
            if down[i] > 0
                || d.jurisdiction_bit & tenant.jurisdiction_mask == 0
                || (stream && !d.capabilities.streaming)
                || d.capabilities.context_window < input + output
            {
                continue;
            }
            if let Some(c) = capacity[i] {
                let (ttft_ms, tps) = d
                    .emulation
                    .as_ref()
                    .map_or((250.0, 60.0), |e| (e.ttft_ms.median(), e.tokens_per_s.median().max(0.1)));
                let service_s = (ttft_ms / 1000.0 + output_median / tps) * brownout[i];
                let per_step = f64::from(c) * step_s / service_s.max(1e-6);
                if used[i] + 1.0 > per_step {
                    continue;
                }
            }
            let cost = match d.tier {
                Tier::Reserved => 0.0,
                Tier::OnDemand => marginal_cost(&prices[i], d.tier, input, output),
            };
            if best.is_none_or(|(b, _)| cost < b) {
                best = Some((cost, i));
            }
        }
        if let Some((cost, i)) = best {
            used[i] += 1.0;
            spend += cost * scenario.scale;
        }
        now = next_arrival(scenario, now, &mut rng_arrivals);
    }
    spend
}
