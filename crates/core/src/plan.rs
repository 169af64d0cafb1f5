//! Planning one request: candidates → hard filters → score per policy → power-of-two choices
//! among near-ties → an ordered attempt list that spreads over failure domains.
//!
//! When the filters leave nothing, [`NoRoute`] says why in words a person can act on.

use std::fmt;

use crate::config::{AliasId, Config, Deployment, DeploymentId, Policy, Tenant};
use crate::health::Availability;
use crate::rng::Rng;
use crate::state::RouterState;
use crate::time::Time;
use crate::usage::marginal_cost;

/// What a request needs from a deployment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Needs {
    pub streaming: bool,
    pub tools: bool,
    pub vision: bool,
    /// Accepts an assistant prefill (stream continuation).
    pub prefill: bool,
}

#[derive(Clone, Copy, Debug)]
pub struct PlanRequest<'a> {
    pub alias: AliasId,
    pub tenant: &'a Tenant,
    /// Estimated prompt tokens.
    pub input_tokens: u32,
    /// The request's `max_tokens`, if it set one.
    pub max_output_tokens: Option<u32>,
    pub needs: Needs,
    /// Deployments with a context window at or below this are skipped (larger-context fallback).
    pub min_context_above: u32,
    /// Put this deployment last, if it is a candidate at all (the one that just failed).
    pub avoid: Option<DeploymentId>,
}

/// An ordered attempt list: the first entry is the first choice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub deployments: Vec<DeploymentId>,
    /// True when every candidate was ejected and the plan uses them anyway, soonest back first.
    pub panic: bool,
}

/// Why no deployment can take the request: how many candidates each filter removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NoRoute {
    pub alias: String,
    pub allowed_jurisdictions: Vec<String>,
    pub n_candidates: usize,
    pub outside_jurisdiction: usize,
    pub missing_capability: Vec<&'static str>,
    pub n_missing_capability: usize,
    pub context_too_small: usize,
    pub needed_context: u32,
    pub largest_context: u32,
    pub cooling_down: usize,
    pub no_headroom: usize,
}

impl NoRoute {
    /// Whether every candidate was removed for capacity only (worth a 429 rather than a 400).
    pub fn is_capacity(&self) -> bool {
        self.n_candidates > 0
            && self.cooling_down + self.no_headroom > 0
            && self.outside_jurisdiction
                + self.n_missing_capability
                + self.context_too_small
                + self.cooling_down
                + self.no_headroom
                == self.n_candidates
    }

    /// Whether the request's context needs were the whole problem.
    pub fn is_context(&self) -> bool {
        self.context_too_small > 0 && self.context_too_small + self.outside_jurisdiction == self.n_candidates
    }
}

impl fmt::Display for NoRoute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no deployment of model '{}' can serve this request", self.alias)?;
        let mut parts = Vec::new();
        if self.outside_jurisdiction > 0 {
            parts.push(format!(
                "{} outside the allowed jurisdictions ({})",
                self.outside_jurisdiction,
                self.allowed_jurisdictions.join(", ")
            ));
        }
        if self.n_missing_capability > 0 {
            parts.push(format!("{} lacking {}", self.n_missing_capability, self.missing_capability.join(", ")));
        }
        if self.context_too_small > 0 {
            parts.push(format!(
                "{} with a context window too small (need about {} tokens, largest is {})",
                self.context_too_small, self.needed_context, self.largest_context
            ));
        }
        if self.cooling_down > 0 {
            parts.push(format!("{} rate limited by the provider (cooling down)", self.cooling_down));
        }
        if self.no_headroom > 0 {
            parts.push(format!("{} at their concurrency or rate limit", self.no_headroom));
        }
        if !parts.is_empty() {
            write!(f, ": {}", parts.join("; "))?;
        }
        Ok(())
    }
}

struct Candidate<'a> {
    deployment: &'a Deployment,
    score: f64,
    load: f64,
}

/// Plans a request. Same config, state, request, time and RNG state → same plan.
pub fn plan(
    config: &Config,
    state: &RouterState,
    request: &PlanRequest<'_>,
    now: Time,
    rng: &mut dyn Rng,
) -> Result<Plan, Box<NoRoute>> {
    let alias = &config.aliases[usize::from(request.alias.0)];
    let output_tokens = request.max_output_tokens.unwrap_or(config.routing.default_output_tokens);
    let needed_context = request.input_tokens.saturating_add(request.max_output_tokens.unwrap_or(0));
    let mut why = NoRoute {
        alias: alias.name.clone(),
        allowed_jurisdictions: request.tenant.jurisdictions.clone(),
        n_candidates: alias.deployments.len(),
        needed_context,
        ..NoRoute::default()
    };
    let mut survivors: Vec<&Deployment> = Vec::with_capacity(alias.deployments.len());
    let mut ejected: Vec<(Time, &Deployment)> = Vec::new();
    for id in &alias.deployments {
        let d = config.deployment(*id);
        let s = state.deployment(*id);
        if !request.tenant.jurisdictions.contains(&d.jurisdiction) {
            why.outside_jurisdiction += 1;
            continue;
        }
        let caps = &d.capabilities;
        let lacking = [
            (request.needs.streaming && !caps.streaming, "streaming"),
            (request.needs.tools && !caps.tools, "tools"),
            (request.needs.vision && !caps.vision, "vision"),
            (request.needs.prefill && !caps.prefill, "assistant prefill"),
        ];
        if lacking.iter().any(|(l, _)| *l) {
            why.n_missing_capability += 1;
            for (l, name) in lacking {
                if l && !why.missing_capability.contains(&name) {
                    why.missing_capability.push(name);
                }
            }
            continue;
        }
        if caps.context_window < needed_context || caps.context_window <= request.min_context_above {
            why.context_too_small += 1;
            why.largest_context = why.largest_context.max(caps.context_window);
            continue;
        }
        if let Availability::Ejected { until } = s.health.availability(now) {
            ejected.push((until, d));
            continue;
        }
        if s.cooling_down(now) {
            why.cooling_down += 1;
            continue;
        }
        if !s.has_headroom(request.input_tokens.saturating_add(output_tokens), now) {
            why.no_headroom += 1;
            continue;
        }
        survivors.push(d);
    }
    if survivors.is_empty() {
        if ejected.is_empty() {
            return Err(Box::new(why));
        }
        // Every eligible deployment is ejected: try them anyway, soonest back first.
        ejected.sort_by_key(|(until, d)| (*until, d.id));
        let deployments = order_by_domain(ejected.into_iter().map(|(_, d)| d).collect(), request.avoid);
        return Ok(Plan { deployments, panic: true });
    }

    let mut candidates =
        score(state, alias.policy, &alias.deployments, &survivors, request.input_tokens, output_tokens);
    candidates.sort_by(|a, b| a.score.total_cmp(&b.score).then(a.deployment.id.cmp(&b.deployment.id)));

    // Power of two choices among near-ties: the less loaded of two random picks goes first.
    let best = candidates[0].score;
    let tie_limit = best + best.abs() * config.routing.near_tie + 1e-12;
    let n_ties = candidates.iter().take_while(|c| c.score <= tie_limit).count();
    if n_ties >= 2 && alias.policy != Policy::Priority {
        let a = rng.below(n_ties);
        let mut b = rng.below(n_ties - 1);
        if b >= a {
            b += 1;
        }
        let (first, second) = (&candidates[a], &candidates[b]);
        let pick = match first.load.total_cmp(&second.load) {
            std::cmp::Ordering::Less => a,
            std::cmp::Ordering::Greater => b,
            std::cmp::Ordering::Equal => a.min(b),
        };
        let chosen = candidates.remove(pick);
        candidates.insert(0, chosen);
    }
    let deployments = order_by_domain(candidates.into_iter().map(|c| c.deployment).collect(), request.avoid);
    Ok(Plan { deployments, panic: false })
}

/// Scores survivors per policy; lower is better.
fn score<'a>(
    state: &RouterState,
    policy: Policy,
    alias_order: &[DeploymentId],
    survivors: &[&'a Deployment],
    input_tokens: u32,
    output_tokens: u32,
) -> Vec<Candidate<'a>> {
    let raw: Vec<(f64, f64, f64)> = survivors
        .iter()
        .map(|d| {
            let s = state.deployment(d.id);
            let cost = marginal_cost(&d.price, d.tier, input_tokens, output_tokens);
            let load = s.load();
            let latency = s.latency.expected_ms(output_tokens) * (1.0 + load);
            (cost, latency, load)
        })
        .collect();
    let n = raw.len() as f64;
    let mean_cost = raw.iter().map(|r| r.0).sum::<f64>() / n;
    let mean_latency = raw.iter().map(|r| r.1).sum::<f64>() / n;
    survivors
        .iter()
        .zip(raw)
        .map(|(d, (cost, latency, load))| {
            let score = match policy {
                // Cost first; latency only separates equal prices.
                Policy::Cost => cost + latency * 1e-12,
                Policy::Latency => latency,
                Policy::Balanced => {
                    let c = if mean_cost > 0.0 { cost / mean_cost } else { 0.0 };
                    let l = if mean_latency > 0.0 { latency / mean_latency } else { 0.0 };
                    0.5 * c + 0.5 * l
                }
                Policy::Priority => alias_order.iter().position(|x| *x == d.id).unwrap_or(0) as f64,
            };
            Candidate { deployment: d, score, load }
        })
        .collect()
}

/// Orders an already ranked list so that each next entry leaves the failure domains behind:
/// first another region, then, once a cloud has failed in two places, another cloud.
fn order_by_domain(ranked: Vec<&Deployment>, avoid: Option<DeploymentId>) -> Vec<DeploymentId> {
    let mut rest = ranked;
    let mut avoided = None;
    if let Some(a) = avoid
        && let Some(pos) = rest.iter().position(|d| d.id == a)
    {
        avoided = Some(rest.remove(pos));
    }
    let mut ordered: Vec<&Deployment> = Vec::with_capacity(rest.len() + 1);
    if !rest.is_empty() {
        ordered.push(rest.remove(0));
    }
    while !rest.is_empty() {
        let penalty = |d: &Deployment| -> u32 {
            let same_region = ordered.iter().any(|o| o.cloud == d.cloud && o.region == d.region);
            let cloud_uses = ordered.iter().filter(|o| o.cloud == d.cloud).count();
            2 * u32::from(same_region) + u32::from(cloud_uses >= 2)
        };
        let (best_idx, _) = rest.iter().enumerate().min_by_key(|(i, d)| (penalty(d), *i)).unwrap_or((0, &rest[0]));
        ordered.push(rest.remove(best_idx));
    }
    ordered.extend(avoided);
    ordered.into_iter().map(|d| d.id).collect()
}

#[cfg(test)]
mod tests;
