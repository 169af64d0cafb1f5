//! The config file as written: serde structs that reject unknown fields, validated elsewhere.
//!
//! Every field a user may omit is an `Option` here; defaults are applied in `validate`, so that
//! this file says exactly what the YAML may contain and nothing more.

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub server: Option<RawServer>,
    pub routing: Option<RawRouting>,
    pub clouds: Vec<RawCloud>,
    pub deployments: Vec<RawDeployment>,
    pub aliases: Vec<RawAlias>,
    #[serde(default)]
    pub tenants: Vec<RawTenant>,
    #[serde(default)]
    pub commitments: Vec<RawCommitment>,
}

/// A spend commitment with a cloud (e.g. a multi-year contract).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCommitment {
    pub name: String,
    pub cloud: String,
    pub amount_usd: f64,
    pub term_days: f64,
    /// How far into the term the contract is when this config starts (default 0).
    pub elapsed_days: Option<f64>,
    /// Spend already counted against it at that point (default 0).
    pub spent_usd: Option<f64>,
    /// Deployments whose spend counts (default: every deployment of the cloud).
    pub deployments: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: Option<String>,
    pub body_limit_bytes: Option<u64>,
    pub timeouts: Option<RawTimeouts>,
    pub retry_after_cap_ms: Option<u64>,
    pub max_attempts: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTimeouts {
    pub connect_ms: Option<u64>,
    pub first_byte_ms: Option<u64>,
    pub first_token_ms: Option<u64>,
    pub stream_idle_ms: Option<u64>,
    pub request_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRouting {
    pub outlier: Option<RawOutlier>,
    pub retry_budget: Option<RawRetryBudget>,
    pub near_tie: Option<f64>,
    pub default_output_tokens: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOutlier {
    pub consecutive_failures: Option<u32>,
    pub base_ejection_ms: Option<u64>,
    pub max_ejection_ms: Option<u64>,
    pub max_ejected_share: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetryBudget {
    pub ratio: Option<f64>,
    pub min_per_second: Option<f64>,
    pub window_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCloud {
    pub name: String,
    pub protocol: String,
    pub api_key: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDeployment {
    pub name: String,
    pub cloud: String,
    pub region: String,
    pub jurisdiction: String,
    pub model: String,
    pub endpoint: String,
    pub kind: Option<String>,
    pub price: RawPrice,
    pub tier: Option<String>,
    pub limits: Option<RawLimits>,
    pub capabilities: Option<RawCapabilities>,
    pub emulation: Option<RawEmulation>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPrice {
    pub input_per_mtok: f64,
    pub output_per_mtok: Option<f64>,
    pub cached_input_per_mtok: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub rpm: Option<u32>,
    pub tpm: Option<u64>,
    pub concurrency: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCapabilities {
    pub context_window: Option<u32>,
    pub tools: Option<bool>,
    pub vision: Option<bool>,
    pub streaming: Option<bool>,
    pub prefill: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlias {
    pub name: String,
    pub policy: Option<String>,
    pub deployments: Vec<String>,
    #[serde(default)]
    pub fallbacks: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTenant {
    pub name: String,
    pub keys: Vec<String>,
    pub jurisdictions: Vec<String>,
    pub aliases: Vec<String>,
    pub workload: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEmulation {
    pub ttft_ms: Option<RawDist>,
    pub tokens_per_s: Option<RawDist>,
    pub max_concurrency: Option<u32>,
    pub max_queue: Option<u32>,
    pub retry_after_ms: Option<u64>,
    pub answer_tokens: Option<[u32; 2]>,
    pub reject_prefill: Option<bool>,
    pub api_key: Option<String>,
    #[serde(default)]
    pub faults: Vec<RawFault>,
}

/// A distribution, written as exactly one of its forms.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDist {
    pub fixed: Option<f64>,
    pub uniform: Option<[f64; 2]>,
    /// `[median, p99]` of a log-normal distribution.
    pub lognormal: Option<[f64; 2]>,
}

/// One fault, flat so that YAML config and the JSON admin API share it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFault {
    pub kind: String,
    pub from_ms: Option<u64>,
    pub until_ms: Option<u64>,
    pub rate: Option<f64>,
    pub status: Option<u16>,
    pub retry_after_ms: Option<u64>,
    pub delay_ms: Option<u64>,
    pub after_tokens: Option<u32>,
    pub duration_ms: Option<u64>,
    pub period_ms: Option<u64>,
}
