//! What the ledger keeps: one [`RequestRecord`] per request, with every attempt it made.
//!
//! Plain data. The same shape is a row of `requests` (the attempts as a JSON text column) and a
//! line of the spool file (JSON), so it derives serde both ways. Its text is [`Text`]: a static
//! string or a shared one, so that filling a record in copies no text.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One request, as the caller saw it: who asked, where it went, what it cost, how it ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// The request's id (`x-request-id`); the primary key, so a record written twice is kept once.
    pub request_id: Text,
    /// When the request arrived, in unix milliseconds.
    pub at_ms: i64,
    pub tenant: Text,
    /// The id of the API key that authenticated it (`key_…`), not the key.
    pub key_id: Text,
    /// The model alias the caller asked for.
    pub alias: Text,
    /// Where the answer came from: the last attempt's deployment and its place. `None` when no
    /// attempt ran (refused before routing, no route).
    pub deployment: Option<Text>,
    pub cloud: Option<Text>,
    pub region: Option<Text>,
    pub jurisdiction: Option<Text>,
    /// The caller's protocol (`openai`, `anthropic`, ...).
    pub protocol: Text,
    pub stream: bool,
    /// The HTTP status given to the caller.
    pub status: u16,
    /// A bounded kind: `ok`, `exhausted`, `client_closed`, `deadline`, ...
    pub outcome: Text,
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

/// A record's text: a `&'static str` (the bounded kinds: `ok`, `openai`, ...) or an `Arc<str>`
/// (names the gateway holds one copy of), so cloning it allocates nothing. It reads as a `str`
/// and compares with one; it is a string in serde.
#[derive(Clone)]
pub enum Text {
    Static(&'static str),
    Shared(Arc<str>),
}

/// One attempt of a request on one deployment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptRecord {
    pub deployment: Text,
    /// A bounded kind: `ok`, or the failure's kind (`rate_limited`, `stream_cut`, ...).
    pub outcome: Text,
    /// When it started, in milliseconds after the request arrived.
    pub started_ms: u64,
    pub duration_ms: u64,
    pub output_tokens: u64,
}

// === impl RequestRecord ===

impl RequestRecord {
    /// A record of a request that ran no attempt yet: the fields every record has, the rest zero.
    pub fn new(request_id: impl Into<Text>, at_ms: i64, tenant: impl Into<Text>, key_id: impl Into<Text>) -> Self {
        RequestRecord {
            request_id: request_id.into(),
            at_ms,
            tenant: tenant.into(),
            key_id: key_id.into(),
            alias: Text::default(),
            deployment: None,
            cloud: None,
            region: None,
            jurisdiction: None,
            protocol: Text::from_static("openai"),
            stream: false,
            status: 200,
            outcome: Text::from_static("ok"),
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

// === impl Text ===

impl Text {
    pub const fn from_static(s: &'static str) -> Text {
        Text::Static(s)
    }

    pub fn as_str(&self) -> &str {
        match self {
            Text::Static(s) => s,
            Text::Shared(s) => s,
        }
    }
}

impl Default for Text {
    fn default() -> Text {
        Text::Static("")
    }
}

impl Deref for Text {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Text {
        Text::Shared(Arc::from(s))
    }
}

impl From<String> for Text {
    fn from(s: String) -> Text {
        Text::Shared(Arc::from(s))
    }
}

impl From<Arc<str>> for Text {
    fn from(s: Arc<str>) -> Text {
        Text::Shared(s)
    }
}

impl PartialEq for Text {
    fn eq(&self, other: &Text) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Text {}

impl PartialEq<str> for Text {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for Text {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Text {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Text, D::Error> {
        String::deserialize(d).map(Text::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_reads_compares_and_round_trips_as_a_string() {
        let shared = Text::from(String::from("aws-east"));
        let same = Text::from_static("aws-east");
        assert_eq!(shared, same, "equal by content, whichever kind");
        let owned = String::from("aws-east");
        assert!(shared == "aws-east" && shared == *"aws-east" && shared == owned);
        assert_ne!(shared, Text::from("aws-west"));
        assert_eq!((format!("{shared}"), format!("{same:?}")), ("aws-east".to_owned(), "\"aws-east\"".to_owned()));
        assert_eq!(shared.len(), 8, "reads as a str");
        let json = serde_json::to_string(&[&shared, &Text::default()]).unwrap();
        assert_eq!(json, r#"["aws-east",""]"#);
        let back: Vec<Text> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, [same, Text::default()]);
    }
}
