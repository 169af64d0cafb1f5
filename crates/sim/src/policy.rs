//! Which routing a simulated run uses: one of the product's policies, or a baseline.

use switchyard_core::config::{CloudId, Config, Policy};

/// How requests are routed in a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyChoice {
    /// One of the product's policies, applied to every alias.
    Core(Policy),
    /// Baseline: rotate through the alias's deployments, with the core's health filters.
    RoundRobin,
    /// Baseline: one cloud only, no failover to others.
    StaticCloud(CloudId),
}

impl PolicyChoice {
    pub fn parse(text: &str, config: &Config) -> Result<PolicyChoice, String> {
        Ok(match text {
            "cost" => PolicyChoice::Core(Policy::Cost),
            "latency" => PolicyChoice::Core(Policy::Latency),
            "balanced" => PolicyChoice::Core(Policy::Balanced),
            "priority" => PolicyChoice::Core(Policy::Priority),
            "commitment" => PolicyChoice::Core(Policy::Commitment),
            "round_robin" => PolicyChoice::RoundRobin,
            other => match other.strip_prefix("static:") {
                Some(cloud) => match config.clouds.iter().position(|c| c.name == cloud) {
                    Some(i) => PolicyChoice::StaticCloud(CloudId(i as u16)),
                    None => return Err(format!("unknown cloud {cloud:?} in policy {other:?}")),
                },
                None => {
                    return Err(format!(
                        "unknown policy {other:?} (expected cost, latency, balanced, priority, commitment, round_robin or static:CLOUD)"
                    ));
                }
            },
        })
    }

    pub fn name(&self, config: &Config) -> String {
        match self {
            PolicyChoice::Core(p) => p.to_string(),
            PolicyChoice::RoundRobin => "round_robin".to_owned(),
            PolicyChoice::StaticCloud(c) => format!("static:{}", config.clouds[usize::from(c.0)].name),
        }
    }
}
