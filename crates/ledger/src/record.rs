//! What the ledger keeps: one [`RequestRecord`] per request, with every attempt it made.
//!
//! Plain data. The same shape is a row of `requests` (the attempts as a JSON text column) and a
//! line of the spool file (JSON), so it derives serde both ways.

use serde::{Deserialize, Serialize};

/// One request, as the caller saw it: who asked, where it went, what it cost, how it ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// The request's id (`x-request-id`); the primary key, so a record written twice is kept once.
    pub request_id: String,
    /// When the request arrived, in unix milliseconds.
    pub at_ms: i64,
    pub tenant: String,
    /// The id of the API key that authenticated it (`key_…`), not the key.
    pub key_id: String,
    /// The model alias the caller asked for.
    pub alias: String,
    /// Where the answer came from: the last attempt's deployment and its place. `None` when no
    /// attempt ran (refused before routing, no route).
    pub deployment: Option<String>,
    pub cloud: Option<String>,
    pub region: Option<String>,
    pub jurisdiction: Option<String>,
    /// The caller's protocol (`openai`, `anthropic`, ...).
    pub protocol: String,
    pub stream: bool,
    /// The HTTP status given to the caller.
    pub status: u16,
    /// A bounded kind: `ok`, `exhausted`, `client_closed`, `deadline`, ...
    pub outcome: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_tokens: u64,
    pub cost_usd: f64,
    /// From arrival to the last byte (or the error).
    pub latency_ms: u64,
    /// Time to first token, for an answer that had one.
    pub ttft_ms: Option<u64>,
    /// Every attempt, in the order they started.
    pub attempts: Vec<AttemptRecord>,
}

/// One attempt of a request on one deployment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptRecord {
    pub deployment: String,
    /// A bounded kind: `ok`, or the failure's kind (`rate_limited`, `stream_cut`, ...).
    pub outcome: String,
    /// When it started, in milliseconds after the request arrived.
    pub started_ms: u64,
    pub duration_ms: u64,
    pub output_tokens: u64,
}

// === impl RequestRecord ===

impl RequestRecord {
    /// A record of a request that ran no attempt yet: the fields every record has, the rest zero.
    pub fn new(
        request_id: impl Into<String>,
        at_ms: i64,
        tenant: impl Into<String>,
        key_id: impl Into<String>,
    ) -> Self {
        RequestRecord {
            request_id: request_id.into(),
            at_ms,
            tenant: tenant.into(),
            key_id: key_id.into(),
            alias: String::new(),
            deployment: None,
            cloud: None,
            region: None,
            jurisdiction: None,
            protocol: "openai".to_owned(),
            stream: false,
            status: 200,
            outcome: "ok".to_owned(),
            input_tokens: 0,
            output_tokens: 0,
            cached_tokens: 0,
            cost_usd: 0.0,
            latency_ms: 0,
            ttft_ms: None,
            attempts: Vec::new(),
        }
    }
}
