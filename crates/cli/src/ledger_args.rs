//! Shared by `switchyard keys` and `switchyard spend`: where the ledger is (`--ledger`, or the
//! config's `ledger.url`), opening it, dates and durations on the command line, and usage errors
//! (exit code 2).

use std::fmt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use switchyard_core::Time;
use switchyard_core::config::Config;
use switchyard_ledger::Store;
use switchyard_placer::date::{format_time, parse_duration, parse_time};

use crate::errln;

#[derive(clap::Args, Clone, Debug)]
pub(crate) struct LedgerArgs {
    /// The gateway's config: its `ledger.url`, and its tenants, budgets and commitments.
    #[arg(long, env = "SWITCHYARD_CONFIG", global = true)]
    pub(crate) config: Option<PathBuf>,
    /// The ledger's URL (`sqlite:PATH`, a path, or `postgres://…`); overrides the config's.
    #[arg(long, env = "SWITCHYARD_LEDGER", hide_env_values = true, global = true)]
    pub(crate) ledger: Option<String>,
}

/// The ledger, opened, and the config when one was given.
pub(crate) struct Opened {
    pub(crate) store: Store,
    pub(crate) config: Option<Config>,
    pub(crate) config_path: Option<PathBuf>,
}

/// A bad argument: printed as `error: …` with exit code 2, like clap's own.
#[derive(Debug)]
pub(crate) struct Usage(pub(crate) String);

impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

pub(crate) fn usage(message: impl Into<String>) -> anyhow::Error {
    Usage(message.into()).into()
}

/// Turns a [`Usage`] error into its message and exit code 2; other results pass through.
pub(crate) fn exit_code(result: anyhow::Result<ExitCode>) -> anyhow::Result<ExitCode> {
    match result {
        Err(e) if e.is::<Usage>() => {
            errln!("error: {e}");
            Ok(ExitCode::from(2))
        }
        other => other,
    }
}

/// A point in time on the command line: a date, or a duration from now (ahead for an expiry,
/// back for `--since`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum When {
    At(i64),
    From(Duration),
}

/// Parses `2027-01-31`, `2027-01-31T00:00:00Z` (UTC), or a duration such as `30d`, `12h`, `1h30m`.
pub(crate) fn parse_when(text: &str) -> Result<When, String> {
    if text.contains('-') {
        let t = parse_time(text)?;
        return Ok(When::At(i64::try_from(t.0 / 1_000).unwrap_or(i64::MAX)));
    }
    parse_duration(text).map(When::From).map_err(|e| format!("{e}, nor a date such as 2027-01-31"))
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl When {
    /// The time this is, a duration counting ahead of `now_ms`.
    pub(crate) fn ahead(self, now_ms: i64) -> i64 {
        match self {
            When::At(at) => at,
            When::From(d) => now_ms.saturating_add(ms(d)),
        }
    }

    /// The time this is, a duration counting back from `now_ms`.
    pub(crate) fn back(self, now_ms: i64) -> i64 {
        match self {
            When::At(at) => at,
            When::From(d) => now_ms.saturating_sub(ms(d)),
        }
    }
}

/// The wall clock in unix milliseconds.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, ms)
}

/// `YYYY-MM-DD HH:MM` UTC for unix milliseconds.
pub(crate) fn show_time(at_ms: i64) -> String {
    format_time(Time::from_millis(u64::try_from(at_ms).unwrap_or(0)))
}

/// The file of a SQLite URL, unless it is in memory.
fn sqlite_file(url: &str) -> Option<PathBuf> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") || url.contains(":memory:") {
        return None;
    }
    let path = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).unwrap_or(url);
    let path = path.split('?').next().unwrap_or(path);
    (!path.is_empty()).then(|| PathBuf::from(path))
}

impl LedgerArgs {
    /// Loads the config (if given) and opens the ledger. With `create` false, a SQLite file that
    /// does not exist is an error instead of a new empty ledger: reading one would only hide a
    /// mistyped path.
    pub(crate) async fn open(&self, create: bool) -> anyhow::Result<Opened> {
        let config = self.config.as_deref().map(crate::load_config).transpose()?;
        let url = match (&self.ledger, &config) {
            (Some(url), _) => url.clone(),
            (None, Some(config)) => config.ledger.url.expose().to_owned(),
            (None, None) => {
                return Err(usage("no ledger: pass --ledger URL or --config FILE (or set SWITCHYARD_CONFIG)"));
            }
        };
        if !create
            && let Some(file) = sqlite_file(&url)
            && !file.exists()
        {
            anyhow::bail!("ledger database {} does not exist (nothing was recorded there yet)", file.display());
        }
        let store = Store::open(&url).await?;
        Ok(Opened { store, config, config_path: self.config.clone() })
    }
}

impl Opened {
    /// The config file's name, for messages.
    pub(crate) fn config_name(&self) -> String {
        self.config_path.as_deref().map_or_else(|| "the config".to_owned(), |p| p.display().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_durations_parse() {
        assert_eq!(parse_when("2027-01-31"), Ok(When::At(1_801_353_600_000)));
        assert_eq!(parse_when("2027-01-31T00:00:00Z"), Ok(When::At(1_801_353_600_000)));
        assert_eq!(parse_when("30d"), Ok(When::From(Duration::from_secs(30 * 86_400))));
        assert_eq!(parse_when("12h").map(|w| w.ahead(1_000)), Ok(1_000 + 12 * 3_600_000));
        assert_eq!(parse_when("12h").map(|w| w.back(50_000_000)), Ok(50_000_000 - 12 * 3_600_000));
        for bad in ["", "tomorrow", "2027-13-01", "2027-01-31T00:00:00+02:00", "30x", "-3d"] {
            assert!(parse_when(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sqlite_urls_name_their_file() {
        assert_eq!(sqlite_file("sqlite:a/b.db"), Some(PathBuf::from("a/b.db")));
        assert_eq!(sqlite_file("sqlite:///tmp/l.db?mode=rwc"), Some(PathBuf::from("/tmp/l.db")));
        assert_eq!(sqlite_file("ledger.db"), Some(PathBuf::from("ledger.db")));
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("postgres://u:p@h/db"), None);
    }
}
