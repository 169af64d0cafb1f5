//! Secret references (`env:NAME`, `file:PATH`) and where their values come from.
//!
//! Resolving a reference is IO, so the core takes a [`SecretSource`]; the binary passes the
//! real environment and file system, tests pass a map.

use std::fmt;

/// A resolved secret. `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Secret {
        Secret(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Where secret references are looked up.
pub trait SecretSource {
    fn env(&self, name: &str) -> Option<String>;
    fn file(&self, path: &str) -> Result<String, String>;
}

/// A source with no secrets at all: every reference fails.
pub struct NoSecrets;

impl SecretSource for NoSecrets {
    fn env(&self, _name: &str) -> Option<String> {
        None
    }
    fn file(&self, path: &str) -> Result<String, String> {
        Err(format!("cannot read {path}: no secret source"))
    }
}

/// Resolves `env:NAME` or `file:PATH`; inline values are refused so they never sit in config.
pub(crate) fn resolve(reference: &str, source: &dyn SecretSource) -> Result<Secret, String> {
    if let Some(name) = reference.strip_prefix("env:") {
        return source.env(name).map(Secret).ok_or_else(|| format!("environment variable {name} is not set"));
    }
    if let Some(path) = reference.strip_prefix("file:") {
        return source.file(path).map(Secret);
    }
    Err("must be a reference, env:NAME or file:PATH (inline secrets are not accepted)".to_owned())
}
