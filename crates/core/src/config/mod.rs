//! The validated config: types that cannot hold a wrong value, built from `switchyard.yaml`.
//!
//! Loading is two steps: [`raw`] parses (unknown fields are errors that name their path), then
//! [`validate`] checks every value and resolves references and secrets. The typed config is the
//! domain model the rest of the core works on.

pub mod emulation;
pub mod google;
pub mod oci;
mod protocols;
pub mod raw;
mod secret;
pub mod stores;
mod validate;

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

pub use emulation::{Dist, Emulation, Fault, FaultKind, FaultWindow};
pub use google::ServiceAccount;
pub use oci::OciCredentials;
pub use protocols::{BedrockEmbedder, inference_profile_jurisdiction};
pub use secret::{NoSecrets, Secret, SecretSource};
pub use stores::{LedgerPolicy, LedgerSettings, SharedSettings};
pub use validate::{check_commitment_numbers, check_jurisdiction, check_name, hash_key, key_hash_text, parse_key_hash};

/// Index of a cloud in [`Config::clouds`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CloudId(pub u16);

/// Index of a deployment in [`Config::deployments`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeploymentId(pub u16);

/// Index of an alias in [`Config::aliases`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AliasId(pub u16);

/// Index of a tenant in [`Config::tenants`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(pub u16);

#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerSettings,
    pub routing: RoutingSettings,
    pub clouds: Vec<Cloud>,
    pub deployments: Vec<Deployment>,
    pub aliases: Vec<Alias>,
    pub tenants: Vec<Tenant>,
    pub commitments: Vec<Commitment>,
    pub ledger: LedgerSettings,
    pub shared: SharedSettings,
    /// Distinct (cloud, region) pairs; `Deployment::region_id` indexes it.
    pub n_regions: usize,
    alias_index: HashMap<String, AliasId>,
    key_index: HashMap<[u8; 32], TenantId>,
}

#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub listen: String,
    /// The largest request body one request may send (413 beyond it).
    pub body_limit_bytes: usize,
    /// The most request-body bytes all requests together may hold in memory while being read;
    /// at least `body_limit_bytes` (`server.buffered_body_limit_bytes`, default 64 MiB).
    pub buffered_body_limit_bytes: usize,
    /// When set, `/metrics` is served only on this separate address, not on `listen`
    /// (`server.metrics_listen`; a valid socket address, different from `listen`).
    pub metrics_listen: Option<String>,
    /// When set, `/metrics` requires `Authorization: Bearer <token>` (`server.metrics_token`,
    /// a secret reference resolved like a cloud's `api_key`; never empty).
    pub metrics_token: Option<Secret>,
    /// Hashes of the keys that may use the admin API (`server.admin_keys`); none turns it off.
    pub admin_keys: Vec<[u8; 32]>,
    pub timeouts: Timeouts,
    /// Longest Retry-After the gateway waits out on the same deployment before moving on.
    pub retry_after_cap: Duration,
    /// Most upstream attempts one request may make, failover and retries included.
    pub max_attempts: u32,
}

#[derive(Debug, Clone)]
pub struct Timeouts {
    pub connect: Duration,
    pub first_byte: Duration,
    pub first_token: Duration,
    pub stream_idle: Duration,
    pub request: Duration,
    /// Longest time to receive a whole request body (408 past it; `body_read_ms`, default 30 s).
    pub body_read: Duration,
}

#[derive(Debug, Clone)]
pub struct RoutingSettings {
    pub outlier: OutlierSettings,
    pub retry_budget: RetryBudgetSettings,
    /// Candidates whose score is within this fraction of the best are near-ties.
    pub near_tie: f64,
    /// Output tokens assumed when a request sets no `max_tokens`, for cost and latency estimates.
    pub default_output_tokens: u32,
    /// Fair share: once a deployment is this full (a share of its concurrency limit), a tenant
    /// already holding its share of it (the limit over the tenants using it) starts no more
    /// attempts there, so one tenant cannot crowd out the others. 1 turns it off.
    pub fair_share_above: f64,
}

#[derive(Debug, Clone)]
pub struct OutlierSettings {
    pub consecutive_failures: u32,
    pub base_ejection: Duration,
    pub max_ejection: Duration,
    pub max_ejected_share: f64,
}

#[derive(Debug, Clone)]
pub struct RetryBudgetSettings {
    pub ratio: f64,
    pub min_per_second: f64,
    pub window: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// OpenAI's Chat Completions API: OpenAI, vLLM, OCI Generative AI's compatible endpoint.
    /// `api_key` goes in `Authorization: Bearer`; an `oci-openai` cloud's `oci` key signs each
    /// request instead (OCI's HTTP signatures).
    OpenAi,
    /// Anthropic's Messages API: `api_key` goes in `x-api-key`, with `anthropic-version`.
    Anthropic,
    /// AWS Bedrock Runtime's Converse and ConverseStream: SigV4 with `aws` credentials (the
    /// deployment's region is the signing region), or a Bedrock API key as a Bearer token.
    Bedrock,
    /// Azure OpenAI: OpenAI's bodies, passed through, at a deployment's URL
    /// (`/openai/deployments/{model}/…?api-version=…`, the deployment's `model` being the Azure
    /// deployment name) or at Azure's v1 path (an endpoint ending in `/openai/v1`); `api_key`
    /// goes in `api-key`, an `entra_token` in `Authorization: Bearer`.
    AzureOpenAi,
    /// Google's Gemini API and Vertex AI: `generateContent` and
    /// `streamGenerateContent?alt=sse` at `{endpoint}/models/{model}:…`; `api_key` goes in
    /// `x-goog-api-key`, a `bearer_token` (an OAuth access token) in `Authorization: Bearer`, or
    /// a `service_account` key is exchanged for such tokens.
    Gemini,
    /// OCI Generative AI's native inference API: `POST {endpoint}/20231130/actions/chat` with
    /// the compartment and serving mode in the body, in its GENERIC or COHERE request format
    /// ([`OciFormat`]); signed with the cloud's `oci` API key, or an OCI Generative AI API key
    /// as a Bearer token.
    Oci,
}

/// The request format of an OCI native deployment's `chatRequest`: `GENERIC` (Meta, xAI, Google,
/// OpenAI models: messages with typed content) or `COHERE` (Cohere's command models: a message
/// and its chat history).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OciFormat {
    Generic,
    Cohere,
}

impl Protocol {
    /// This protocol's bit in a set of protocols (a `u8`, as `Needs::untranslatable`).
    pub fn bit(self) -> u8 {
        match self {
            Protocol::OpenAi => 1,
            Protocol::Anthropic => 2,
            Protocol::Bedrock => 4,
            Protocol::AzureOpenAi => 8,
            Protocol::Gemini => 16,
            Protocol::Oci => 32,
        }
    }

    /// The protocols (as [`Protocol::bit`]s) that take the gateway's OpenAI body as it is: they
    /// can express whatever OpenAI's protocol can, with nothing to translate.
    pub const PASS_THROUGH: u8 = 1 | 8;

    /// Whether this protocol takes OpenAI's bodies as they are (see [`Protocol::PASS_THROUGH`]).
    pub fn passes_openai_through(self) -> bool {
        self.bit() & Protocol::PASS_THROUGH != 0
    }

    /// The name config and the ledger use.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::OpenAi => "openai",
            Protocol::Anthropic => "anthropic",
            Protocol::Bedrock => "bedrock",
            Protocol::AzureOpenAi => "azure-openai",
            Protocol::Gemini => "gemini",
            Protocol::Oci => "oci",
        }
    }
}

/// The `anthropic-version` header sent when a cloud does not set one.
pub const DEFAULT_ANTHROPIC_VERSION: &str = "2023-06-01";

/// The `api-version` Azure OpenAI's deployment URLs get when a cloud does not set one (the
/// latest generally available version of the data-plane API).
pub const DEFAULT_AZURE_API_VERSION: &str = "2024-10-21";

#[derive(Debug, Clone)]
pub struct Cloud {
    pub name: String,
    pub protocol: Protocol,
    pub api_key: Option<Secret>,
    /// SigV4 credentials (Bedrock only).
    pub aws: Option<AwsCredentials>,
    /// The `anthropic-version` header (Anthropic only; [`DEFAULT_ANTHROPIC_VERSION`]).
    pub anthropic_version: String,
    /// The `api-version` query of Azure OpenAI's deployment URLs (Azure OpenAI only;
    /// [`DEFAULT_AZURE_API_VERSION`]).
    pub api_version: String,
    /// A Microsoft Entra ID access token, sent as `Authorization: Bearer` (Azure OpenAI only,
    /// instead of `api_key`).
    pub entra_token: Option<Secret>,
    /// An OCI API signing key: requests are signed with OCI's HTTP signatures (`oci-openai`
    /// only, instead of `api_key`).
    pub oci: Option<OciCredentials>,
    /// An OAuth access token, sent as `Authorization: Bearer` (Gemini only, instead of
    /// `api_key`).
    pub bearer_token: Option<Secret>,
    /// A service account's key, exchanged for access tokens (Gemini only, instead of
    /// `api_key` or `bearer_token`).
    pub service_account: Option<ServiceAccount>,
    /// The compartment an OCI native (`oci`) cloud's requests run in, their `compartmentId`:
    /// its `oci` key's compartment, or `compartment` with an API key. `None` on other protocols.
    pub compartment: Option<String>,
}

/// An AWS access key pair, and a session token for temporary credentials.
#[derive(Debug, Clone)]
pub struct AwsCredentials {
    pub access_key_id: Secret,
    pub secret_access_key: Secret,
    pub session_token: Option<Secret>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeploymentKind {
    Chat,
    Embeddings,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tier {
    /// Prepaid capacity: marginal cost about zero up to its capacity.
    Reserved,
    OnDemand,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Price {
    pub input_per_mtok: f64,
    pub output_per_mtok: f64,
    pub cached_input_per_mtok: f64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    pub rpm: Option<u32>,
    pub tpm: Option<u64>,
    pub concurrency: Option<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    pub context_window: u32,
    pub tools: bool,
    pub vision: bool,
    pub streaming: bool,
    /// Accepts a trailing assistant message as a prefill and continues it.
    pub prefill: bool,
}

#[derive(Debug, Clone)]
pub struct Deployment {
    pub id: DeploymentId,
    pub name: String,
    pub cloud: CloudId,
    pub region: String,
    /// Interned (cloud, region): deployments that share one share a failure domain.
    pub region_id: u16,
    pub jurisdiction: String,
    /// This deployment's jurisdiction as a bit, to test against [`Tenant::jurisdiction_mask`].
    pub jurisdiction_bit: u64,
    pub model: String,
    /// Base URL without a trailing slash, e.g. `http://127.0.0.1:9101/v1`.
    pub endpoint: String,
    pub kind: DeploymentKind,
    pub price: Price,
    pub tier: Tier,
    /// For reserved capacity: its marginal cost is about zero while it is less than this full
    /// (a share of its concurrency limit), list price beyond (`utilisation_target`, 0.8).
    pub utilisation_target: f64,
    pub limits: Limits,
    pub capabilities: Capabilities,
    /// The commitment this deployment's spend counts against, if any.
    pub commitment: Option<CommitmentId>,
    pub emulation: Option<Emulation>,
    /// An OCI native (`oci`) deployment's `chatRequest` format (`api_format`, or from the model
    /// id); `None` on other protocols.
    pub oci_format: Option<OciFormat>,
}

/// Index of a commitment in [`Config::commitments`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CommitmentId(pub u16);

/// A contract to spend `amount_usd` with a cloud over a term, paced in a straight line.
#[derive(Debug, Clone)]
pub struct Commitment {
    pub id: CommitmentId,
    pub name: String,
    pub cloud: CloudId,
    pub amount_usd: f64,
    pub term: Duration,
    /// How far into the term the contract is at time zero.
    pub elapsed_at_start: Duration,
    pub spent_at_start: f64,
    pub deployments: Vec<DeploymentId>,
}

impl Commitment {
    /// Where spend should be by `since_start` into the run, on a straight-line pace.
    pub fn pace(&self, since_start: Duration) -> f64 {
        let term = self.term.as_secs_f64().max(1.0);
        let elapsed = self.elapsed_at_start.saturating_add(since_start).as_secs_f64();
        self.amount_usd * (elapsed / term).min(1.0)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    Cost,
    Latency,
    Balanced,
    /// The order the alias lists its deployments in.
    Priority,
    /// Like balanced, but spend on a commitment running behind its pace counts as nearly free
    /// (that money is forfeited if unspent).
    Commitment,
}

#[derive(Debug, Clone)]
pub struct Alias {
    pub id: AliasId,
    pub name: String,
    pub policy: Policy,
    pub kind: DeploymentKind,
    pub deployments: Vec<DeploymentId>,
    /// Aliases to use, in order, when a request does not fit this alias's context windows.
    pub fallbacks: Vec<AliasId>,
    /// Hedging: when an attempt has no content this long after it started, a second one starts
    /// in another failure domain (`hedge_after_ms`; off when absent).
    pub hedge_after: Option<Duration>,
    /// Hedging, relative: after this multiple of the attempt's deployment's time-to-first-token
    /// estimate (`hedge_after_ttft`, e.g. 3.0). Exclusive with `hedge_after_ms`.
    pub hedge_after_ttft: Option<f64>,
    /// When a broken stream could not be continued (no deployment of the alias accepts a
    /// prefill, or the request has tools), hold back this many output tokens before the caller
    /// sees any, so that a cut before then restarts cleanly anywhere (`hold_back_tokens`).
    pub hold_back_tokens: Option<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    Interactive,
    Batch,
    Training,
    Research,
}

impl Workload {
    /// The priority a tenant or key of this workload has unless it sets one: interactive
    /// high, batch normal, training and research low.
    pub fn default_priority(self) -> Priority {
        match self {
            Workload::Interactive => Priority::High,
            Workload::Batch => Priority::Normal,
            Workload::Training | Workload::Research => Priority::Low,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Workload::Interactive => "interactive",
            Workload::Batch => "batch",
            Workload::Training => "training",
            Workload::Research => "research",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    pub jurisdictions: Vec<String>,
    /// The allowed jurisdictions as bits (see [`Deployment::jurisdiction_bit`]).
    pub jurisdiction_mask: u64,
    /// `None` means every alias.
    pub aliases: Option<Vec<AliasId>>,
    pub workload: Workload,
    /// Default: high for interactive work, normal for batch, low for training and research.
    pub priority: Priority,
    pub limits: TenantLimits,
    pub budgets: TenantBudgets,
}

/// Which tenants keep a deployment's last slots: a request of priority `p` may fill a
/// deployment's concurrency limit only up to [`Priority::share`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Low,
    Normal,
    High,
}

impl Priority {
    /// The share of a deployment's concurrency limit this priority may fill: the rest is kept
    /// for higher priorities.
    pub fn share(self) -> f64 {
        match self {
            Priority::Low => 0.8,
            Priority::Normal => 0.9,
            Priority::High => 1.0,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
        }
    }
}

/// A tenant's own limits, over all its keys and aliases.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TenantLimits {
    pub rpm: Option<u32>,
    pub tpm: Option<u64>,
    /// Requests in progress at once.
    pub concurrency: Option<u32>,
}

/// Dollars a tenant may spend per UTC day and per UTC calendar month, at list price.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TenantBudgets {
    pub daily_usd: Option<f64>,
    pub monthly_usd: Option<f64>,
}

/// A key's stable id, safe to log and to keep spend and limits by: `key_` and the first 12 hex
/// digits of its SHA-256, which is how the key's hash in the config begins. Never the key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KeyId([u8; 6]);

/// The id of the key whose SHA-256 is `hash`.
pub fn key_id(hash: &[u8; 32]) -> KeyId {
    let mut prefix = [0u8; 6];
    prefix.copy_from_slice(&hash[..6]);
    KeyId(prefix)
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("key_")?;
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// Config loading failed: a YAML syntax error, or every shape or validation error found.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The text is not YAML, or is not a mapping of sections.
    #[error("{0}")]
    Parse(String),
    /// Each entry is `path: message`: unknown fields and wrong types (all of them, when the
    /// file's shape is wrong), or else every value that failed validation.
    #[error("{}", .0.join("\n"))]
    Invalid(Vec<String>),
}

// === impl Config ===

impl Config {
    /// Parses and validates YAML text; secrets (`env:NAME`, `file:PATH`) come from `secrets`.
    pub fn from_yaml(text: &str, secrets: &dyn SecretSource) -> Result<Config, ConfigError> {
        let value: serde_json::Value = serde_saphyr::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        Config::from_value(value, secrets)
    }

    /// Validates a config already parsed into a JSON value (a section of a larger file).
    ///
    /// Shape errors come first, all together: when any section or list item has the wrong
    /// shape, those errors are returned without validating values.
    pub fn from_value(value: serde_json::Value, secrets: &dyn SecretSource) -> Result<Config, ConfigError> {
        let raw = raw::RawConfig::from_value(value).map_err(ConfigError::Invalid)?;
        validate::validate(raw, secrets)
    }

    pub fn alias(&self, name: &str) -> Option<&Alias> {
        self.alias_index.get(name).map(|id| &self.aliases[usize::from(id.0)])
    }

    pub fn deployment(&self, id: DeploymentId) -> &Deployment {
        &self.deployments[usize::from(id.0)]
    }

    pub fn cloud_of(&self, id: DeploymentId) -> &Cloud {
        &self.clouds[usize::from(self.deployment(id).cloud.0)]
    }

    pub fn deployment_by_name(&self, name: &str) -> Option<&Deployment> {
        self.deployments.iter().find(|d| d.name == name)
    }

    pub fn tenant(&self, id: TenantId) -> &Tenant {
        &self.tenants[usize::from(id.0)]
    }

    /// The tenant of that name; names are unique (validation rejects duplicates).
    pub fn tenant_by_name(&self, name: &str) -> Option<&Tenant> {
        self.tenants.iter().find(|t| t.name == name)
    }

    /// The tenant an API key belongs to, looked up by the key's SHA-256.
    pub fn tenant_for_key(&self, key: &str) -> Option<&Tenant> {
        self.key_index.get(&hash_key(key)).map(|id| self.tenant(*id))
    }

    /// The tenant an API key belongs to and the key's stable id (see [`key_id`]).
    pub fn key_for(&self, key: &str) -> Option<(&Tenant, KeyId)> {
        let hash = hash_key(key);
        self.key_index.get(&hash).map(|id| (self.tenant(*id), key_id(&hash)))
    }

    /// Whether `tenant` may call `alias`.
    pub fn tenant_may_use(&self, tenant: &Tenant, alias: AliasId) -> bool {
        match &tenant.aliases {
            None => true,
            Some(list) => list.contains(&alias),
        }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Policy::Cost => "cost",
            Policy::Latency => "latency",
            Policy::Balanced => "balanced",
            Policy::Priority => "priority",
            Policy::Commitment => "commitment",
        })
    }
}

#[cfg(test)]
mod tests;
