//! A scenario: the gateway's own config (clouds, deployments with their timing, aliases,
//! tenants, commitments) plus traffic and a schedule of cloud events. Parsed strictly, like
//! the config: unknown fields and bad values are errors that name their path.

use std::time::Duration;

use serde::Deserialize;
use switchyard_core::config::raw::RawDist;
use switchyard_core::config::{AliasId, Config, DeploymentId, Dist, NoSecrets, TenantId};

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("{0}")]
    Parse(String),
    #[error("{}", .0.join("\n"))]
    Invalid(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: String,
    duration_s: f64,
    #[serde(default)]
    step_s: Option<f64>,
    #[serde(default)]
    scale: Option<f64>,
    arrivals: RawArrivals,
    mix: RawMix,
    #[serde(default)]
    events: Vec<RawEvent>,
    gateway: serde_json::Value,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArrivals {
    rate_per_s: f64,
    #[serde(default)]
    diurnal: Option<RawDiurnal>,
    #[serde(default)]
    bursts: Vec<RawBurst>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDiurnal {
    amplitude: f64,
    peak_hour: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBurst {
    at_s: f64,
    duration_s: f64,
    multiplier: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMix {
    input_tokens: RawDist,
    output_tokens: RawDist,
    #[serde(default)]
    streaming_share: Option<f64>,
    tenants: Vec<RawTenantShare>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTenantShare {
    tenant: String,
    alias: String,
    share: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvent {
    at_s: f64,
    #[serde(default)]
    until_s: Option<f64>,
    kind: String,
    #[serde(default)]
    cloud: Option<String>,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    deployment: Option<String>,
    #[serde(default)]
    latency_multiplier: Option<f64>,
    #[serde(default)]
    rate: Option<f64>,
    #[serde(default)]
    input_per_mtok: Option<f64>,
    #[serde(default)]
    output_per_mtok: Option<f64>,
    #[serde(default)]
    concurrency: Option<u32>,
}

/// Traffic shape: a base Poisson rate, a daily cycle and bursts.
#[derive(Debug, Clone)]
pub struct Arrivals {
    pub rate_per_s: f64,
    /// (amplitude, peak hour): the rate is multiplied by `1 + a·cos(2π(h − peak)/24)`.
    pub diurnal: Option<(f64, f64)>,
    /// (from, until, multiplier).
    pub bursts: Vec<(Duration, Duration, f64)>,
}

#[derive(Debug, Clone)]
pub struct TenantShare {
    pub tenant: TenantId,
    pub alias: AliasId,
    pub share: f64,
}

#[derive(Debug, Clone)]
pub struct Mix {
    pub input_tokens: Dist,
    pub output_tokens: Dist,
    pub streaming_share: f64,
    pub tenants: Vec<TenantShare>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum EventKind {
    /// The deployments refuse connections; attempts in flight are cut.
    Outage,
    /// Latency multiplied.
    Brownout { multiplier: f64 },
    /// This share of attempts get 429.
    RateLimitStorm { rate: f64 },
    /// New prices from then on.
    PriceChange { input_per_mtok: Option<f64>, output_per_mtok: Option<f64> },
    /// A new concurrency capacity from then on (new GPUs online, or capacity lost).
    Capacity { concurrency: u32 },
}

/// A scheduled change to some deployments.
#[derive(Debug, Clone)]
pub struct Event {
    pub from: Duration,
    /// When the change ends (outages, brownouts, storms); `None` for lasting changes.
    pub until: Option<Duration>,
    pub kind: EventKind,
    pub deployments: Vec<DeploymentId>,
}

#[derive(Debug)]
pub struct Scenario {
    pub name: String,
    pub duration: Duration,
    pub step: Duration,
    /// Each simulated request stands for this many real ones (scaled mode when > 1).
    pub scale: f64,
    pub arrivals: Arrivals,
    pub mix: Mix,
    pub events: Vec<Event>,
    pub config: Config,
}

fn parse_dist(raw: &RawDist, path: &str, errors: &mut Vec<String>) -> Dist {
    switchyard_core::config::emulation::dist_from_raw(raw, path, errors).unwrap_or(Dist::Fixed(1.0))
}

impl Scenario {
    pub fn from_yaml(text: &str) -> Result<Scenario, ScenarioError> {
        let value: serde_json::Value = serde_saphyr::from_str(text).map_err(|e| ScenarioError::Parse(e.to_string()))?;
        let raw: RawScenario = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            ScenarioError::Parse(format!("{path}: {}", e.into_inner()))
        })?;
        let config = Config::from_value(raw.gateway, &NoSecrets).map_err(|e| match e {
            switchyard_core::ConfigError::Parse(m) => ScenarioError::Parse(format!("gateway.{m}")),
            switchyard_core::ConfigError::Invalid(errors) => {
                ScenarioError::Invalid(errors.into_iter().map(|e| format!("gateway.{e}")).collect())
            }
        })?;
        let mut errors = Vec::new();
        if raw.duration_s.is_nan() || raw.duration_s <= 0.0 || raw.duration_s > 400.0 * 86_400.0 {
            errors.push("duration_s: must be > 0 and at most 400 days".to_owned());
        }
        let step = raw.step_s.unwrap_or((raw.duration_s / 120.0).max(1.0));
        if step.is_nan() || step <= 0.0 {
            errors.push("step_s: must be > 0".to_owned());
        }
        let scale = raw.scale.unwrap_or(1.0);
        if scale.is_nan() || scale < 1.0 {
            errors.push("scale: must be >= 1".to_owned());
        }
        if raw.arrivals.rate_per_s.is_nan() || raw.arrivals.rate_per_s <= 0.0 {
            errors.push("arrivals.rate_per_s: must be > 0".to_owned());
        }
        let diurnal = raw.arrivals.diurnal.as_ref().map(|d| (d.amplitude, d.peak_hour));
        if let Some((a, _)) = diurnal
            && !(0.0..1.0).contains(&a)
        {
            errors.push("arrivals.diurnal.amplitude: must be in [0, 1)".to_owned());
        }
        // Saturating: a huge (or NaN) time in a scenario file must not panic the simulator.
        let secs = |s: f64| Duration::try_from_secs_f64(s.max(0.0)).unwrap_or(Duration::MAX);
        let bursts = raw
            .arrivals
            .bursts
            .iter()
            .enumerate()
            .map(|(i, b)| {
                if b.multiplier.is_nan() || b.multiplier <= 0.0 {
                    errors.push(format!("arrivals.bursts[{i}].multiplier: must be > 0"));
                }
                (secs(b.at_s), secs(b.at_s + b.duration_s), b.multiplier)
            })
            .collect();
        let input_tokens = parse_dist(&raw.mix.input_tokens, "mix.input_tokens", &mut errors);
        let output_tokens = parse_dist(&raw.mix.output_tokens, "mix.output_tokens", &mut errors);
        let streaming_share = raw.mix.streaming_share.unwrap_or(0.5);
        if !(0.0..=1.0).contains(&streaming_share) {
            errors.push("mix.streaming_share: must be between 0 and 1".to_owned());
        }
        let mut tenants = Vec::new();
        for (i, t) in raw.mix.tenants.iter().enumerate() {
            let tenant = config.tenants.iter().find(|x| x.name == t.tenant);
            let alias = config.alias(&t.alias);
            match (tenant, alias) {
                (Some(tenant), Some(alias)) => {
                    if !config.tenant_may_use(tenant, alias.id) {
                        errors.push(format!("mix.tenants[{i}]: tenant {:?} may not use {:?}", t.tenant, t.alias));
                    }
                    tenants.push(TenantShare { tenant: tenant.id, alias: alias.id, share: t.share.max(0.0) });
                }
                (None, _) => errors.push(format!("mix.tenants[{i}].tenant: unknown tenant {:?}", t.tenant)),
                (_, None) => errors.push(format!("mix.tenants[{i}].alias: unknown alias {:?}", t.alias)),
            }
        }
        if tenants.iter().map(|t| t.share).sum::<f64>() <= 0.0 {
            errors.push("mix.tenants: shares must add up to more than 0".to_owned());
        }
        let mut events = Vec::new();
        for (i, e) in raw.events.iter().enumerate() {
            let path = format!("events[{i}]");
            let deployments: Vec<DeploymentId> = config
                .deployments
                .iter()
                .filter(|d| {
                    e.cloud.as_ref().is_none_or(|c| config.clouds[usize::from(d.cloud.0)].name == *c)
                        && e.region.as_ref().is_none_or(|r| d.region == *r)
                        && e.deployment.as_ref().is_none_or(|n| d.name == *n)
                })
                .map(|d| d.id)
                .collect();
            if e.cloud.is_none() && e.region.is_none() && e.deployment.is_none() {
                errors.push(format!("{path}: name a cloud, a region or a deployment"));
            } else if deployments.is_empty() {
                errors.push(format!("{path}: no deployment matches"));
            }
            let kind = match e.kind.as_str() {
                "outage" => EventKind::Outage,
                "brownout" => EventKind::Brownout { multiplier: e.latency_multiplier.unwrap_or(3.0).max(1.0) },
                "rate_limit_storm" => EventKind::RateLimitStorm { rate: e.rate.unwrap_or(0.5).clamp(0.0, 1.0) },
                "price_change" => {
                    EventKind::PriceChange { input_per_mtok: e.input_per_mtok, output_per_mtok: e.output_per_mtok }
                }
                "capacity" => match e.concurrency {
                    Some(c) => EventKind::Capacity { concurrency: c },
                    None => {
                        errors.push(format!("{path}.concurrency: required for kind capacity"));
                        continue;
                    }
                },
                other => {
                    errors.push(format!(
                        "{path}.kind: unknown event {other:?} (expected outage, brownout, rate_limit_storm, price_change or capacity)"
                    ));
                    continue;
                }
            };
            if let Some(until) = e.until_s
                && until <= e.at_s
            {
                errors.push(format!("{path}.until_s: must be after at_s"));
            }
            events.push(Event { from: secs(e.at_s), until: e.until_s.map(secs), kind, deployments });
        }
        if !errors.is_empty() {
            return Err(ScenarioError::Invalid(errors));
        }
        Ok(Scenario {
            name: raw.name,
            duration: secs(raw.duration_s),
            step: secs(step),
            scale,
            arrivals: Arrivals { rate_per_s: raw.arrivals.rate_per_s, diurnal, bursts },
            mix: Mix { input_tokens, output_tokens, streaming_share, tenants },
            events,
            config,
        })
    }
}

impl Arrivals {
    /// The arrival rate at `t` since the start, per second.
    pub fn rate_at(&self, t: Duration) -> f64 {
        let mut rate = self.rate_per_s;
        if let Some((amplitude, peak_hour)) = self.diurnal {
            let hour = t.as_secs_f64() / 3600.0;
            rate *= 1.0 + amplitude * (std::f64::consts::TAU * (hour - peak_hour) / 24.0).cos();
        }
        for (from, until, m) in &self.bursts {
            if t >= *from && t < *until {
                rate *= m;
            }
        }
        rate
    }

    /// An upper bound of the rate, for thinning.
    pub fn max_rate(&self) -> f64 {
        let diurnal = self.diurnal.map_or(1.0, |(a, _)| 1.0 + a);
        let burst = self.bursts.iter().map(|b| b.2).fold(1.0, f64::max);
        self.rate_per_s * diurnal * burst
    }
}
