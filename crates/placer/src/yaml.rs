//! Reading YAML through `serde_json::Value` field by field, so that every shape error in a file
//! (unknown field, wrong type, missing field) is reported at once, each with its path.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use switchyard_core::config::raw::kind_of;
pub(crate) use switchyard_core::config::{check_jurisdiction, check_name};

use crate::LoadError;

/// Parses YAML text into a JSON value (an empty document is `null`).
pub(crate) fn parse(text: &str) -> Result<Value, LoadError> {
    serde_saphyr::from_str::<Value>(text).map_err(|e| LoadError::Parse(e.to_string()))
}

/// Deserializes `value`, pushing any error as `path.inner.path: message` (the gateway config's
/// reader, shared).
pub(crate) use switchyard_core::config::raw::deserialize_at as at;

/// The fields of one mapping, taken one by one; [`Fields::finish`] reports the ones left over.
pub(crate) struct Fields {
    map: Map<String, Value>,
    path: String,
    known: &'static [&'static str],
}

impl Fields {
    /// `value` must be a mapping (or null, read as empty); `path` prefixes every error ("" at
    /// the top of a file).
    pub(crate) fn new(value: Value, path: &str, known: &'static [&'static str], errors: &mut Vec<String>) -> Fields {
        let map = match value {
            Value::Object(map) => map,
            Value::Null => Map::new(),
            other => {
                errors.push(format!("{}must be a mapping, not {}", prefix(path), kind_of(&other)));
                Map::new()
            }
        };
        Fields { map, path: path.to_owned(), known }
    }

    fn child(&self, key: &str) -> String {
        if self.path.is_empty() { key.to_owned() } else { format!("{}.{key}", self.path) }
    }

    /// An optional field; absent or `null` is `None`.
    pub(crate) fn optional<T: DeserializeOwned>(&mut self, key: &str, errors: &mut Vec<String>) -> Option<T> {
        match self.map.remove(key) {
            None | Some(Value::Null) => None,
            Some(v) => at(v, &self.child(key), errors),
        }
    }

    /// A required field: its absence is an error.
    pub(crate) fn required<T: DeserializeOwned>(&mut self, key: &str, errors: &mut Vec<String>) -> Option<T> {
        if !self.map.contains_key(key) {
            errors.push(format!("{}: missing field `{key}`", self.child(key)));
            return None;
        }
        self.optional(key, errors)
    }

    /// A list whose items are read one by one, so that every bad item is reported; absent is
    /// empty. Items come with their paths (`offerings[3]`).
    pub(crate) fn list(&mut self, key: &str, errors: &mut Vec<String>) -> Vec<(String, Value)> {
        let path = self.child(key);
        match self.map.remove(key) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => {
                items.into_iter().enumerate().map(|(i, item)| (format!("{path}[{i}]"), item)).collect()
            }
            Some(other) => {
                errors.push(format!("{path}: must be a list, not {}", kind_of(&other)));
                Vec::new()
            }
        }
    }

    /// Reports every field not taken as unknown, naming the expected ones.
    pub(crate) fn finish(self, errors: &mut Vec<String>) {
        for key in self.map.keys() {
            let expected: Vec<String> = self.known.iter().map(|k| format!("`{k}`")).collect();
            errors.push(format!("{}: unknown field `{key}`, expected one of {}", self.child(key), expected.join(", ")));
        }
    }
}

fn prefix(path: &str) -> String {
    if path.is_empty() { "the file ".to_owned() } else { format!("{path}: ") }
}

/// `Ok(v)` when no error was recorded, else every error.
pub(crate) fn done<T>(value: T, errors: Vec<String>) -> Result<T, LoadError> {
    if errors.is_empty() { Ok(value) } else { Err(LoadError::Invalid(errors)) }
}
