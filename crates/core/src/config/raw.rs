//! The config file as written: serde structs that reject unknown fields, validated elsewhere.
//!
//! Every field a user may omit is an `Option` here; defaults are applied in `validate`, so that
//! this file says exactly what the YAML may contain and nothing more.
//!
//! [`RawConfig::from_value`] reads the file section by section and list item by list item, so
//! that shape errors (unknown fields, wrong types, missing fields) in different places are all
//! reported together, each with its path.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// The whole file. Not `Deserialize` itself: [`RawConfig::from_value`] reads it piece by piece.
#[derive(Debug)]
pub struct RawConfig {
    pub server: Option<RawServer>,
    pub routing: Option<RawRouting>,
    pub clouds: Vec<RawCloud>,
    pub deployments: Vec<RawDeployment>,
    pub aliases: Vec<RawAlias>,
    /// Optional: no tenants means no key is accepted.
    pub tenants: Vec<RawTenant>,
    /// Optional.
    pub commitments: Vec<RawCommitment>,
    pub ledger: Option<super::stores::RawLedger>,
    pub shared: Option<super::stores::RawShared>,
}

/// The top-level sections, in the order the file usually has them.
const SECTIONS: [&str; 9] =
    ["server", "routing", "clouds", "deployments", "aliases", "tenants", "commitments", "ledger", "shared"];

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
    /// The most request-body bytes all requests together may hold while being read.
    pub buffered_body_limit_bytes: Option<u64>,
    /// A separate address for `/metrics`; when set, the main listener does not serve it.
    pub metrics_listen: Option<String>,
    /// A secret reference (`env:NAME`, `file:PATH`); when set, `/metrics` needs this bearer token.
    pub metrics_token: Option<String>,
    /// SHA-256 hashes (`sha256:<hex>`) of the keys that may use the admin API (`/admin/…`).
    pub admin_keys: Option<Vec<String>>,
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
    /// Longest time to receive a whole request body.
    pub body_read_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRouting {
    pub outlier: Option<RawOutlier>,
    pub retry_budget: Option<RawRetryBudget>,
    pub near_tie: Option<f64>,
    pub default_output_tokens: Option<u32>,
    pub fair_share_above: Option<f64>,
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
    pub aws: Option<RawAwsCredentials>,
    pub anthropic_version: Option<String>,
    /// Azure OpenAI's `api-version` (a date, optionally `-preview`).
    pub api_version: Option<String>,
    /// Azure OpenAI: a secret reference to a Microsoft Entra ID token (instead of `api_key`).
    pub entra_token: Option<String>,
    /// OCI Generative AI (`oci-openai`): an API signing key (instead of `api_key`).
    pub oci: Option<RawOciCredentials>,
    /// Gemini / Vertex AI: a secret reference to an OAuth access token (instead of `api_key`).
    pub bearer_token: Option<String>,
    /// Gemini / Vertex AI: a secret reference to a service account's JSON key (`file:`),
    /// exchanged for access tokens (instead of `api_key` or `bearer_token`).
    pub service_account: Option<String>,
    /// OCI Generative AI's native API (`oci`) with an `api_key`: the compartment's OCID, the
    /// body's `compartmentId` (with an `oci` signing key, `oci.compartment` is it).
    pub compartment: Option<String>,
}

/// An OCI API signing key: whose it is, and the private key as a secret reference.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOciCredentials {
    pub tenancy: String,
    pub user: String,
    pub fingerprint: String,
    pub private_key: String,
    /// The compartment requests are made in (`opc-compartment-id`); the tenancy by default.
    pub compartment: Option<String>,
}

/// Secret references for SigV4 signing.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAwsCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
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
    /// Reserved capacity counts as free up to this share of its concurrency limit.
    pub utilisation_target: Option<f64>,
    pub limits: Option<RawLimits>,
    pub capabilities: Option<RawCapabilities>,
    pub emulation: Option<RawEmulation>,
    /// OCI native (`oci`) chat: the `chatRequest` format, `generic` or `cohere`; by default
    /// from the model id (`cohere.` → cohere), needed for a dedicated endpoint serving Cohere.
    pub api_format: Option<String>,
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
    pub hedge_after_ms: Option<u64>,
    pub hedge_after_ttft: Option<f64>,
    pub hold_back_tokens: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTenant {
    pub name: String,
    pub keys: Vec<String>,
    pub jurisdictions: Vec<String>,
    pub aliases: Vec<String>,
    pub workload: Option<String>,
    pub priority: Option<RawPriority>,
    pub limits: Option<RawTenantLimits>,
    pub budgets: Option<RawBudgets>,
}

#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RawPriority {
    Low,
    Normal,
    High,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTenantLimits {
    pub rpm: Option<u32>,
    pub tpm: Option<u64>,
    pub concurrency: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBudgets {
    pub daily_usd: Option<f64>,
    pub monthly_usd: Option<f64>,
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

// === impl RawConfig ===

impl RawConfig {
    /// Reads a config parsed into a JSON value. Each top-level section and each list item is
    /// deserialized on its own, so every shape error is collected, each as `path: message`.
    pub fn from_value(value: Value) -> Result<RawConfig, Vec<String>> {
        let mut map = match value {
            Value::Object(map) => map,
            // An empty file: every required section is reported missing below.
            Value::Null => Map::new(),
            other => {
                return Err(vec![format!(
                    "the file must be a mapping of sections ({}), not {}",
                    SECTIONS.join(", "),
                    kind_of(&other)
                )]);
            }
        };
        let mut errors = Vec::new();
        for key in map.keys() {
            if !SECTIONS.contains(&key.as_str()) {
                let expected: Vec<String> = SECTIONS.iter().map(|s| format!("`{s}`")).collect();
                errors.push(format!("{key}: unknown field `{key}`, expected one of {}", expected.join(", ")));
            }
        }
        let raw = RawConfig {
            server: section(&mut map, "server", &mut errors),
            routing: section(&mut map, "routing", &mut errors),
            clouds: list(&mut map, "clouds", true, &mut errors),
            deployments: list(&mut map, "deployments", true, &mut errors),
            aliases: list(&mut map, "aliases", true, &mut errors),
            tenants: list(&mut map, "tenants", false, &mut errors),
            commitments: list(&mut map, "commitments", false, &mut errors),
            ledger: section(&mut map, "ledger", &mut errors),
            shared: section(&mut map, "shared", &mut errors),
        };
        if errors.is_empty() { Ok(raw) } else { Err(errors) }
    }
}

/// An optional mapping section; absent or `null` is `None`.
fn section<T: DeserializeOwned>(map: &mut Map<String, Value>, name: &str, errors: &mut Vec<String>) -> Option<T> {
    match map.remove(name) {
        None | Some(Value::Null) => None,
        Some(value) => deserialize_at(value, name, errors),
    }
}

/// A list section, each item deserialized on its own so that every bad item is reported.
fn list<T: DeserializeOwned>(
    map: &mut Map<String, Value>,
    name: &str,
    required: bool,
    errors: &mut Vec<String>,
) -> Vec<T> {
    match map.remove(name) {
        None if required => {
            errors.push(format!("{name}: missing field `{name}`"));
            Vec::new()
        }
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .into_iter()
            .enumerate()
            .filter_map(|(i, item)| deserialize_at(item, &format!("{name}[{i}]"), errors))
            .collect(),
        // Not a list: serde says what it is instead.
        Some(other) => deserialize_at(other, name, errors).unwrap_or_default(),
    }
}

/// Deserializes `value`, pushing any error as `path.inner.path: message`. Shared with the
/// placer's files, which are read the same way.
pub fn deserialize_at<T: DeserializeOwned>(value: Value, path: &str, errors: &mut Vec<String>) -> Option<T> {
    match serde_path_to_error::deserialize(value) {
        Ok(v) => Some(v),
        Err(e) => {
            let inner_path = e.path().to_string();
            let inner = e.into_inner();
            errors.push(match inner_path.as_str() {
                "." => format!("{path}: {inner}"),
                p if p.starts_with('[') => format!("{path}{p}: {inner}"),
                p => format!("{path}.{p}: {inner}"),
            });
            None
        }
    }
}

/// How a JSON value's kind reads in an error message ("a list", "a mapping", ...).
pub fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}
