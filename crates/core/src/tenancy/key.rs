//! A managed key's own settings. A key may narrow its tenant (some of its aliases, some of its
//! jurisdictions, a priority no higher than its own) and have limits and budgets of its own,
//! which apply as well as the tenant's: a request must fit both. Stored as one JSON object with
//! the key (the ledger's `keys.settings`), written by `switchyard keys create` and `POST
//! /admin/keys`, read back by every replica when it loads its keys.
//!
//! Checked twice: when the key is made ([`KeySettings::check_for`], every error at once, each
//! with the field it is about), and when a replica loads it ([`KeySettings::narrow`]), against
//! the config it runs with, which may have changed since: what no longer holds is dropped from
//! the key's view (an alias the tenant lost, say), never widened, so a key whose list is left
//! empty may use nothing.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::config::{Config, Priority, Tenant, TenantBudgets, TenantLimits, Workload, check_jurisdiction, check_name};

/// What a managed key sets for itself; `None` leaves the tenant's.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySettings {
    /// Aliases the key may use: some of its tenant's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aliases: Option<Vec<String>>,
    /// Jurisdictions the key's requests may go to: some of its tenant's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jurisdictions: Option<Vec<String>>,
    /// What the key is used for; without a `priority`, its priority is the workload's default
    /// (interactive high, batch normal, training and research low), at most the tenant's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<Workload>,
    /// At most the tenant's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<Priority>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpm: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm: Option<u64>,
    /// Requests in progress at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily_usd: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly_usd: Option<f64>,
}

/// One of a key's settings, as the admin API and the CLI name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyField {
    Aliases,
    Jurisdictions,
    Workload,
    Priority,
    Rpm,
    Tpm,
    Concurrency,
    DailyUsd,
    MonthlyUsd,
}

/// A setting that cannot be: which field (and which entry of a list), and why.
#[derive(Clone, Debug, PartialEq)]
pub struct KeySettingError {
    pub field: KeyField,
    pub index: Option<usize>,
    pub message: String,
}

// === impl KeyField ===

impl KeyField {
    pub const ALL: [KeyField; 9] = [
        KeyField::Aliases,
        KeyField::Jurisdictions,
        KeyField::Workload,
        KeyField::Priority,
        KeyField::Rpm,
        KeyField::Tpm,
        KeyField::Concurrency,
        KeyField::DailyUsd,
        KeyField::MonthlyUsd,
    ];

    /// Its name in JSON (the admin API's body, the ledger's column).
    pub fn name(self) -> &'static str {
        match self {
            KeyField::Aliases => "aliases",
            KeyField::Jurisdictions => "jurisdictions",
            KeyField::Workload => "workload",
            KeyField::Priority => "priority",
            KeyField::Rpm => "rpm",
            KeyField::Tpm => "tpm",
            KeyField::Concurrency => "concurrency",
            KeyField::DailyUsd => "daily_usd",
            KeyField::MonthlyUsd => "monthly_usd",
        }
    }

    /// Its flag on `switchyard keys create`.
    pub fn flag(self) -> &'static str {
        match self {
            KeyField::Aliases => "--aliases",
            KeyField::Jurisdictions => "--jurisdictions",
            KeyField::Workload => "--workload",
            KeyField::Priority => "--priority",
            KeyField::Rpm => "--rpm",
            KeyField::Tpm => "--tpm",
            KeyField::Concurrency => "--concurrency",
            KeyField::DailyUsd => "--daily-usd",
            KeyField::MonthlyUsd => "--monthly-usd",
        }
    }

    /// The field of that JSON name.
    pub fn of_name(name: &str) -> Option<KeyField> {
        KeyField::ALL.into_iter().find(|f| f.name() == name)
    }
}

// === impl KeySettingError ===

impl KeySettingError {
    fn new(field: KeyField, index: Option<usize>, message: impl Into<String>) -> KeySettingError {
        KeySettingError { field, index, message: message.into() }
    }

    /// Where it is in JSON: `aliases[1]`, `daily_usd`.
    pub fn path(&self) -> String {
        self.at(self.field.name())
    }

    /// Where it is on the command line: `--aliases (entry 2)`, `--daily-usd`.
    pub fn flag_path(&self) -> String {
        match self.index {
            Some(i) => format!("{} (entry {})", self.field.flag(), i + 1),
            None => self.field.flag().to_owned(),
        }
    }

    fn at(&self, name: &str) -> String {
        match self.index {
            Some(i) => format!("{name}[{i}]"),
            None => name.to_owned(),
        }
    }
}

impl fmt::Display for KeySettingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path(), self.message)
    }
}

/// Why a key's settings could not be changed ([`KeySettings::changed`]).
#[derive(Clone, Debug, PartialEq)]
pub enum KeyChangeError {
    /// The settings stored cannot be read (written by a newer build, or by hand).
    Unreadable(String),
    /// A field of the change cannot be read (its message starts with the field's name).
    Field(String),
    /// The settings it would give are wrong, each at its field.
    Checks(Vec<KeySettingError>),
}

// === impl KeySettings ===

impl KeySettings {
    /// Reads the JSON object the ledger stores (or an admin request's settings). An error names
    /// the field it is about (`rpm: invalid value: integer \`-1\`, expected u32`).
    pub fn from_json(text: &str) -> Result<KeySettings, String> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        KeySettings::from_value(value)
    }

    /// [`KeySettings::from_json`] from a parsed value, which must be an object.
    pub fn from_value(value: serde_json::Value) -> Result<KeySettings, String> {
        if !value.is_object() {
            return Err(format!("the settings must be a JSON object, not {value}"));
        }
        serde_path_to_error::deserialize(value).map_err(path_error)
    }

    /// These settings with `patch` applied: each field it names is set to its value, or
    /// cleared by `null` (back to the tenant's); the rest are kept. Errors as
    /// [`KeySettings::from_value`] does, naming the field.
    pub fn patched(&self, patch: serde_json::Map<String, serde_json::Value>) -> Result<KeySettings, String> {
        let mut fields = match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(fields)) => fields,
            _ => serde_json::Map::new(),
        };
        for (field, value) in patch {
            match value {
                serde_json::Value::Null => fields.remove(&field),
                value => fields.insert(field, value),
            };
        }
        KeySettings::from_value(serde_json::Value::Object(fields))
    }

    /// A stored key's settings (`stored`, as the ledger keeps them) with `patch` applied
    /// ([`KeySettings::patched`]), checked against its tenant when `tenant` is known (else
    /// without it, [`KeySettings::check`]). Settings stored that cannot be read are refused,
    /// not taken for none: a change must never widen a key.
    pub fn changed(
        stored: &str,
        patch: serde_json::Map<String, serde_json::Value>,
        tenant: Option<(&Config, &Tenant)>,
    ) -> Result<KeySettings, KeyChangeError> {
        let current = KeySettings::from_json(stored).map_err(KeyChangeError::Unreadable)?;
        let settings = current.patched(patch).map_err(KeyChangeError::Field)?;
        let wrong = match tenant {
            Some((config, tenant)) => settings.check_for(config, tenant),
            None => settings.check(),
        };
        if wrong.is_empty() { Ok(settings) } else { Err(KeyChangeError::Checks(wrong)) }
    }

    /// Settings as stored (`stored`), to show: the object, or `{"unreadable": why}`.
    pub fn shown(stored: &str) -> serde_json::Value {
        match KeySettings::from_json(stored) {
            Ok(settings) => serde_json::to_value(&settings).unwrap_or_else(|_| serde_json::json!({})),
            Err(e) => serde_json::json!({"unreadable": e}),
        }
    }

    /// The JSON object to store: only the settings that are set (`{}` for none).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned())
    }

    /// Nothing set: the key works with its tenant's settings alone.
    pub fn is_empty(&self) -> bool {
        *self == KeySettings::default()
    }

    /// The key's own limits and budgets.
    pub fn limits(&self) -> (TenantLimits, TenantBudgets) {
        let limits = TenantLimits { rpm: self.rpm, tpm: self.tpm, concurrency: self.concurrency };
        (limits, TenantBudgets { daily_usd: self.daily_usd, monthly_usd: self.monthly_usd })
    }

    /// What can be wrong without knowing the tenant: an empty list, a malformed name, a limit
    /// of zero, a budget that is not a dollar amount above zero.
    pub fn check(&self) -> Vec<KeySettingError> {
        let mut errors = Vec::new();
        let lists = [
            (KeyField::Aliases, &self.aliases, "the tenant's aliases", check_name as fn(&str, &str, &mut Vec<String>)),
            (KeyField::Jurisdictions, &self.jurisdictions, "the tenant's jurisdictions", check_jurisdiction),
        ];
        for (field, list, default, well_formed) in lists {
            let Some(list) = list else { continue };
            if list.is_empty() {
                let message = format!("an empty list allows nothing; leave it out for {default}");
                errors.push(KeySettingError::new(field, None, message));
            }
            for (i, name) in list.iter().enumerate() {
                let mut found = Vec::new();
                well_formed(name, "", &mut found);
                if let Some(message) = found.pop() {
                    let message = message.trim_start_matches(": ").to_owned();
                    errors.push(KeySettingError::new(field, Some(i), message));
                }
            }
        }
        let zero = [
            (KeyField::Rpm, self.rpm == Some(0)),
            (KeyField::Tpm, self.tpm == Some(0)),
            (KeyField::Concurrency, self.concurrency == Some(0)),
        ];
        for (field, _) in zero.into_iter().filter(|(_, zero)| *zero) {
            errors.push(KeySettingError::new(field, None, "must be > 0 (leave it out for no limit)"));
        }
        for (field, value) in [(KeyField::DailyUsd, self.daily_usd), (KeyField::MonthlyUsd, self.monthly_usd)] {
            if let Some(v) = value
                && !(v.is_finite() && v > 0.0 && v <= 1e12)
            {
                let message = format!("must be a dollar amount above 0 (got {v})");
                errors.push(KeySettingError::new(field, None, message));
            }
        }
        errors
    }

    /// [`KeySettings::check`], and what the key's tenant does not allow: an alias or a
    /// jurisdiction that is not its, a priority above its own.
    pub fn check_for(&self, config: &Config, tenant: &Tenant) -> Vec<KeySettingError> {
        let mut errors = self.check();
        for (i, name) in self.aliases.iter().flatten().enumerate() {
            let allowed = config.alias(name).is_some_and(|a| config.tenant_may_use(tenant, a.id));
            if !allowed {
                let may: Vec<&str> = config
                    .aliases
                    .iter()
                    .filter(|a| config.tenant_may_use(tenant, a.id))
                    .map(|a| a.name.as_str())
                    .collect();
                let message = format!("{name:?} is not an alias tenant {} may use ({})", tenant.name, list(&may));
                errors.push(KeySettingError::new(KeyField::Aliases, Some(i), message));
            }
        }
        for (i, j) in self.jurisdictions.iter().flatten().enumerate() {
            if !tenant.jurisdictions.contains(j) {
                let theirs: Vec<&str> = tenant.jurisdictions.iter().map(String::as_str).collect();
                let message = format!("{j:?} is not one of tenant {}'s jurisdictions ({})", tenant.name, list(&theirs));
                errors.push(KeySettingError::new(KeyField::Jurisdictions, Some(i), message));
            }
        }
        if let Some(p) = self.priority
            && p > tenant.priority
        {
            let message =
                format!("{} is above tenant {}'s priority ({})", p.name(), tenant.name, tenant.priority.name());
            errors.push(KeySettingError::new(KeyField::Priority, None, message));
        }
        errors
    }

    /// The tenant as this key sees it: its aliases and jurisdictions narrowed to the key's, its
    /// priority lowered to the key's. Whatever the key names that the tenant does not allow (the
    /// config changed since the key was made) is left out, never added: the errors say what.
    pub fn narrow(&self, config: &Config, tenant: &Tenant) -> (Tenant, Vec<KeySettingError>) {
        let mut view = tenant.clone();
        if let Some(names) = &self.aliases {
            let mut ids: Vec<_> = names
                .iter()
                .filter_map(|n| config.alias(n))
                .map(|a| a.id)
                .filter(|id| config.tenant_may_use(tenant, *id))
                .collect();
            ids.sort_unstable();
            ids.dedup();
            view.aliases = Some(ids);
        }
        if let Some(js) = &self.jurisdictions {
            view.jurisdictions.retain(|j| js.contains(j));
            let bits = config
                .deployments
                .iter()
                .filter(|d| js.contains(&d.jurisdiction))
                .fold(0, |m, d| m | d.jurisdiction_bit);
            view.jurisdiction_mask &= bits;
        }
        if let Some(w) = self.workload {
            view.workload = w;
        }
        if let Some(p) = self.priority.or(self.workload.map(Workload::default_priority)) {
            view.priority = view.priority.min(p);
        }
        (view, self.check_for(config, tenant))
    }

    /// One line for a table: `aliases=chat jurisdictions=eu priority=low rpm=10 …`, or empty.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        for (name, list) in [("aliases", &self.aliases), ("jurisdictions", &self.jurisdictions)] {
            if let Some(list) = list {
                parts.push(format!("{name}={}", list.join(",")));
            }
        }
        if let Some(w) = self.workload {
            parts.push(format!("workload={}", w.name()));
        }
        if let Some(p) = self.priority {
            parts.push(format!("priority={}", p.name()));
        }
        let counts =
            [("rpm", self.rpm.map(u64::from)), ("tpm", self.tpm), ("concurrency", self.concurrency.map(u64::from))];
        parts.extend(counts.iter().filter_map(|(n, v)| v.map(|v| format!("{n}={v}"))));
        for (name, usd) in [("daily_usd", self.daily_usd), ("monthly_usd", self.monthly_usd)] {
            if let Some(usd) = usd {
                parts.push(format!("{name}={usd}"));
            }
        }
        parts.join(" ")
    }
}

fn list(names: &[&str]) -> String {
    if names.is_empty() { "none".to_owned() } else { names.join(", ") }
}

fn path_error<E: fmt::Display>(e: serde_path_to_error::Error<E>) -> String {
    match e.path().to_string().as_str() {
        "." => e.inner().to_string(),
        path => format!("{path}: {}", e.inner()),
    }
}

#[cfg(test)]
mod tests;
