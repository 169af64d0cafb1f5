//! Planning one request: candidates → hard filters → score per policy → power-of-two choices
//! among near-ties → an ordered attempt list that spreads over failure domains.
//!
//! When the filters leave nothing, [`NoRoute`] says why in words a person can act on.

use std::fmt;

use crate::config::{Alias, AliasId, Config, Deployment, DeploymentId, Policy, Tenant, Tier};
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
    /// The protocols (`Protocol::bit`s) that cannot express the request: deployments speaking
    /// them are skipped.
    pub untranslatable: u8,
}

#[derive(Clone, Copy, Debug)]
pub struct PlanRequest<'a> {
    pub alias: AliasId,
    pub tenant: &'a Tenant,
    /// Estimated prompt tokens.
    pub input_tokens: u32,
    /// What one call must fit in a context window, when that is not the whole prompt:
    /// embeddings' longest input (each input is embedded on its own).
    pub context_tokens: Option<u32>,
    /// The request's `max_tokens`, if it set one.
    pub max_output_tokens: Option<u32>,
    pub needs: Needs,
    /// Deployments with a context window at or below this are skipped (larger-context fallback).
    pub min_context_above: u32,
    /// Put this deployment last, if it is a candidate at all (the one that just failed).
    pub avoid: Option<DeploymentId>,
    /// Deployments whose own API cannot take this request (an embeddings model that does not
    /// offer the `dimensions` asked for, an OCI format that cannot express a parameter), checked
    /// by the caller, per deployment: passed over while another deployment is left to plan;
    /// when none is (for want of fit, not of capacity), planned after all, so that the first
    /// one's refusal, naming the parameter, is the caller's answer.
    pub unfit: &'a [DeploymentId],
}

impl<'a> PlanRequest<'a> {
    /// The request for the rest of a stream that broke after `delivered_tokens` were sent: the
    /// same alias and tenant, the delivered text added to the prompt as an assistant prefill,
    /// a deployment that accepts prefills, the broken one last.
    pub fn continuation(&self, delivered_tokens: u32, broken: DeploymentId) -> PlanRequest<'a> {
        PlanRequest {
            input_tokens: self.input_tokens.saturating_add(delivered_tokens),
            context_tokens: None,
            needs: Needs { streaming: true, prefill: true, ..self.needs },
            avoid: Some(broken),
            ..*self
        }
    }
}

/// After `failed` refused a request for its context length: the first of the alias's fallback
/// aliases with a deployment of a larger window and another model, and its plan.
pub fn plan_larger_context<'a>(
    config: &Config,
    state: &RouterState,
    request: &PlanRequest<'a>,
    failed: &Deployment,
    now: Time,
    rng: &mut dyn Rng,
) -> Option<(PlanRequest<'a>, Vec<DeploymentId>)> {
    let alias = &config.aliases[usize::from(request.alias.0)];
    // A fallback is held to the same tenant checks as a direct request.
    alias.fallbacks.iter().filter(|f| config.tenant_may_use(request.tenant, **f)).find_map(|fallback| {
        let larger = PlanRequest {
            alias: *fallback,
            min_context_above: failed.capabilities.context_window.max(request.min_context_above),
            ..*request
        };
        let planned = plan(config, state, &larger, now, rng).ok()?;
        let deployments: Vec<_> =
            planned.deployments.into_iter().filter(|d| config.deployment(*d).model != failed.model).collect();
        (!deployments.is_empty()).then_some((larger, deployments))
    })
}

/// Plans a request, falling back to the alias's larger-context fallbacks (those the tenant may
/// use) when the request's own estimate is too large for every deployment of the alias. The
/// request that was planned comes back with the plan: its alias is the fallback's when one
/// was taken. When no fallback can take it, the original alias's [`NoRoute`] is the answer.
pub fn plan_with_fallbacks<'a>(
    config: &Config,
    state: &RouterState,
    request: &PlanRequest<'a>,
    now: Time,
    rng: &mut dyn Rng,
) -> Result<(PlanRequest<'a>, Plan), Box<NoRoute>> {
    let why = match plan(config, state, request, now, rng) {
        Ok(planned) => return Ok((*request, planned)),
        Err(why) => why,
    };
    if !why.is_context() {
        return Err(why);
    }
    let alias = &config.aliases[usize::from(request.alias.0)];
    alias
        .fallbacks
        .iter()
        .filter(|f| config.tenant_may_use(request.tenant, **f))
        .find_map(|fallback| {
            let larger = PlanRequest { alias: *fallback, ..*request };
            plan(config, state, &larger, now, rng).ok().map(|planned| (larger, planned))
        })
        .ok_or(why)
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
    /// When a candidate cooling down after a 429 comes back (from planning time), if any is.
    pub retry_in: Option<std::time::Duration>,
    pub no_headroom: usize,
    /// Ejected after repeated failures (and not used, because a healthy one is only busy).
    pub ejected: usize,
    /// Speaking a protocol that cannot express the request.
    pub untranslatable: usize,
}

impl NoRoute {
    /// Whether every candidate was removed for capacity only (worth a 429 rather than a 400).
    pub fn is_capacity(&self) -> bool {
        self.n_candidates > 0
            && self.cooling_down + self.no_headroom > 0
            && self.outside_jurisdiction
                + self.n_missing_capability
                + self.untranslatable
                + self.context_too_small
                + self.cooling_down
                + self.no_headroom
                + self.ejected
                == self.n_candidates
    }

    /// Whether the deployments that could otherwise serve it all speak a protocol that cannot
    /// express the request (worth a 400 naming what cannot be expressed).
    pub fn is_untranslatable(&self) -> bool {
        self.untranslatable > 0 && self.untranslatable + self.outside_jurisdiction == self.n_candidates
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
        if self.untranslatable > 0 {
            parts.push(format!("{} speaking a protocol that cannot express it", self.untranslatable));
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
        if self.ejected > 0 {
            parts.push(format!("{} ejected after repeated failures", self.ejected));
        }
        if !parts.is_empty() {
            write!(f, ": {}", parts.join("; "))?;
        }
        Ok(())
    }
}

/// Entries of a plan ordered for failure domains; the rest follow by score.
const DOMAIN_ORDERED: usize = 8;

struct Candidate<'a> {
    deployment: &'a Deployment,
    /// Position in the alias's list (the `priority` policy's order).
    position: usize,
    cost: f64,
    /// The cost before any commitment shadow price.
    list_cost: f64,
    latency: f64,
    load: f64,
    score: f64,
}

/// What each filter removed; turned into a [`NoRoute`] only when nothing is left.
#[derive(Clone, Copy, Default)]
struct Removed {
    outside_jurisdiction: usize,
    missing: [bool; 4],
    n_missing_capability: usize,
    untranslatable: usize,
    /// Of those, passed over as `unfit`.
    unfit: usize,
    context_too_small: usize,
    largest_context: u32,
    cooling_down: usize,
    /// The soonest end of a cool-down among the candidates cooling down.
    cooldown_ends: Option<Time>,
    no_headroom: usize,
}

const CAPABILITY_NAMES: [&str; 4] = ["streaming", "tools", "vision", "assistant prefill"];

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
    let prompt = request.context_tokens.unwrap_or(request.input_tokens);
    let needed_context = prompt.saturating_add(request.max_output_tokens.unwrap_or(0));
    let estimated_tokens = request.input_tokens.saturating_add(output_tokens);
    let mask = request.tenant.jurisdiction_mask;
    let needs = [request.needs.streaming, request.needs.tools, request.needs.vision, request.needs.prefill];
    let mut removed = Removed::default();
    let mut candidates: Vec<Candidate<'_>> = Vec::with_capacity(alias.deployments.len());
    let mut ejected: Vec<(Time, &Deployment)> = Vec::new();
    for (position, id) in alias.deployments.iter().enumerate() {
        let d = config.deployment(*id);
        if d.jurisdiction_bit & mask == 0 {
            removed.outside_jurisdiction += 1;
            continue;
        }
        let caps = &d.capabilities;
        let has = [caps.streaming, caps.tools, caps.vision, caps.prefill];
        if needs.iter().zip(has).any(|(need, has)| *need && !has) {
            removed.n_missing_capability += 1;
            for i in 0..4 {
                removed.missing[i] |= needs[i] && !has[i];
            }
            continue;
        }
        if request.needs.untranslatable != 0 && request.needs.untranslatable & config.cloud_of(*id).protocol.bit() != 0
        {
            removed.untranslatable += 1;
            continue;
        }
        if request.unfit.contains(id) {
            removed.untranslatable += 1;
            removed.unfit += 1;
            continue;
        }
        if caps.context_window < needed_context || caps.context_window <= request.min_context_above {
            removed.context_too_small += 1;
            removed.largest_context = removed.largest_context.max(caps.context_window);
            continue;
        }
        let s = state.deployment_at(*id, now);
        if let Availability::Ejected { until } = s.health.availability(now) {
            ejected.push((until, d));
            continue;
        }
        // Cooling down after a 429, or full by its own report: planned around, not ejected.
        if let Some(until) = s.resting_until(estimated_tokens, now) {
            removed.cooling_down += 1;
            removed.cooldown_ends = Some(removed.cooldown_ends.map_or(until, |soonest| soonest.min(until)));
            continue;
        }
        let tenant = request.tenant;
        if !s.has_concurrency_room(tenant.id, tenant.priority, state.fair_share_above())
            || !state.has_rate_room(*id, estimated_tokens, now)
        {
            removed.no_headroom += 1;
            continue;
        }
        let load = s.load();
        // Prepaid capacity is free to use until it is as full as it should run; beyond, an
        // attempt costs what the same work would on demand.
        let tier = match d.tier {
            Tier::Reserved if load >= d.utilisation_target => Tier::OnDemand,
            tier => tier,
        };
        let list_cost = marginal_cost(&d.price, tier, request.input_tokens, output_tokens);
        let mut cost = list_cost;
        if alias.policy == Policy::Commitment
            && let Some(c) = d.commitment
        {
            // Spend that keeps a lagging commitment on pace would be forfeited anyway.
            cost *= (1.0 - 10.0 * state.commitment_behind(c, now)).max(0.02);
        }
        candidates.push(Candidate {
            deployment: d,
            position,
            cost,
            list_cost,
            latency: s.latency.expected_ms(output_tokens) * (1.0 + load),
            load,
            score: 0.0,
        });
    }
    if candidates.is_empty()
        && removed.unfit > 0
        && ejected.is_empty()
        && removed.cooling_down + removed.no_headroom == 0
    {
        // Nothing that fits is left (not for want of capacity): the unfit ones, for their refusal.
        return plan(config, state, &PlanRequest { unfit: &[], ..*request }, now, rng);
    }
    if candidates.is_empty() {
        // Panic routing to ejected deployments only when no healthy one exists at all: a
        // healthy but busy deployment means "no capacity", not "try the broken ones".
        if ejected.is_empty() || removed.cooling_down + removed.no_headroom > 0 {
            let mut why = no_route(alias, request, needed_context, removed, now);
            why.ejected = ejected.len();
            return Err(Box::new(why));
        }
        // Every eligible deployment is ejected: try them anyway, soonest back first.
        ejected.sort_by_key(|(until, d)| (*until, d.id));
        let ranked = ejected.into_iter().map(|(_, d)| d).collect();
        return Ok(Plan { deployments: order_by_domain(config, ranked, request.avoid), panic: true });
    }

    score(alias.policy, &mut candidates);
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
        let pick = match candidates[a].load.total_cmp(&candidates[b].load) {
            std::cmp::Ordering::Less => a,
            std::cmp::Ordering::Greater => b,
            std::cmp::Ordering::Equal => a.min(b),
        };
        candidates[..=pick].rotate_right(1);
    }
    let ranked = candidates.into_iter().map(|c| c.deployment).collect();
    Ok(Plan { deployments: order_by_domain(config, ranked, request.avoid), panic: false })
}

fn no_route(alias: &Alias, request: &PlanRequest<'_>, needed_context: u32, removed: Removed, now: Time) -> NoRoute {
    NoRoute {
        alias: alias.name.clone(),
        allowed_jurisdictions: request.tenant.jurisdictions.clone(),
        n_candidates: alias.deployments.len(),
        outside_jurisdiction: removed.outside_jurisdiction,
        missing_capability: (0..4).filter(|i| removed.missing[*i]).map(|i| CAPABILITY_NAMES[i]).collect(),
        n_missing_capability: removed.n_missing_capability,
        untranslatable: removed.untranslatable,
        context_too_small: removed.context_too_small,
        needed_context,
        largest_context: removed.largest_context,
        cooling_down: removed.cooling_down,
        retry_in: removed.cooldown_ends.map(|until| until.saturating_since(now)),
        no_headroom: removed.no_headroom,
        ejected: 0,
    }
}

/// Scores candidates per policy; lower is better.
fn score(policy: Policy, candidates: &mut [Candidate<'_>]) {
    let n = candidates.len() as f64;
    // Under the commitment policy, shadow-priced costs are compared on the list-price scale, so
    // that "nearly free" and "free" are near-ties rather than far apart.
    let mean_cost = match policy {
        Policy::Commitment => candidates.iter().map(|c| c.list_cost).sum::<f64>() / n,
        _ => candidates.iter().map(|c| c.cost).sum::<f64>() / n,
    };
    let mean_latency = candidates.iter().map(|c| c.latency).sum::<f64>() / n;
    for c in candidates {
        c.score = match policy {
            // Cost first; latency only separates equal prices.
            Policy::Cost => c.cost + c.latency * 1e-12,
            Policy::Latency => c.latency,
            Policy::Balanced | Policy::Commitment => {
                let cost = if mean_cost > 0.0 { c.cost / mean_cost } else { 0.0 };
                let latency = if mean_latency > 0.0 { c.latency / mean_latency } else { 0.0 };
                0.5 * cost + 0.5 * latency
            }
            Policy::Priority => c.position as f64,
        };
    }
}

/// Orders an already ranked list so that each next entry leaves the failure domains behind:
/// first another region, then, once a cloud has been used in two places, another cloud. Only
/// the first entries (as many as a request could try) are reordered; the rest keep their rank.
fn order_by_domain(config: &Config, ranked: Vec<&Deployment>, avoid: Option<DeploymentId>) -> Vec<DeploymentId> {
    let mut rest = ranked;
    let avoided = avoid.and_then(|a| rest.iter().position(|d| d.id == a)).map(|pos| rest.remove(pos));
    let mut ordered: Vec<DeploymentId> = Vec::with_capacity(rest.len() + 1);
    let mut region_used = vec![false; config.n_regions];
    let mut cloud_uses = vec![0u8; config.clouds.len()];
    let mut start = 0;
    while start < rest.len() && ordered.len() < DOMAIN_ORDERED {
        let penalty = |d: &Deployment| -> u32 {
            2 * u32::from(region_used[usize::from(d.region_id)]) + u32::from(cloud_uses[usize::from(d.cloud.0)] >= 2)
        };
        let mut best = start;
        let mut best_penalty = penalty(rest[start]);
        for (i, d) in rest.iter().enumerate().skip(start + 1) {
            if best_penalty == 0 {
                break;
            }
            let p = penalty(d);
            if p < best_penalty {
                best = i;
                best_penalty = p;
            }
        }
        rest[start..=best].rotate_right(1);
        let d = rest[start];
        region_used[usize::from(d.region_id)] = true;
        cloud_uses[usize::from(d.cloud.0)] = cloud_uses[usize::from(d.cloud.0)].saturating_add(1);
        ordered.push(d.id);
        start += 1;
    }
    ordered.extend(rest[start..].iter().map(|d| d.id));
    ordered.extend(avoided.map(|d| d.id));
    ordered
}

#[cfg(test)]
mod tests;
