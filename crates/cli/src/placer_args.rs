//! Shared by the placer's subcommands: where the placer's config and state are, and loading them.

use std::path::{Path, PathBuf};

use anyhow::Context;
use switchyard_placer::{JobSpec, LoadError, PlacerConfig};

#[derive(clap::Args, Clone, Debug)]
pub(crate) struct PlacerArgs {
    /// The placer's config: pools, negotiated prices, reservations, commitments, rules.
    #[arg(long = "config", env = "SWITCHYARD_PLACER_CONFIG", default_value = "placer.yaml")]
    pub(crate) config: PathBuf,
    /// Where job state (SQLite), logs and checkpoints live.
    #[arg(long, env = "SWITCHYARD_STATE", default_value = ".switchyard")]
    pub(crate) state: PathBuf,
}

/// `path:` then every error, one per line, indented.
pub(crate) fn load_error(path: &Path, e: &LoadError) -> anyhow::Error {
    anyhow::anyhow!("{}:\n  {}", path.display(), e.lines().join("\n  "))
}

/// Reads and validates the placer's config; a catalog path in it is relative to the config file.
pub(crate) fn load_config(path: &Path) -> anyhow::Result<PlacerConfig> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!("cannot read the placer config {} (pass --config; examples/jobs/placer.yaml is one)", path.display())
    })?;
    let base = path.parent().unwrap_or(Path::new(".")).to_owned();
    let read = move |p: &str| std::fs::read_to_string(base.join(p)).map_err(|e| format!("cannot read {p}: {e}"));
    PlacerConfig::from_yaml(&text, &read).map_err(|e| load_error(path, &e))
}

/// Reads and validates a job spec; returns it with its text (stored with the job).
pub(crate) fn load_job(path: &Path) -> anyhow::Result<(JobSpec, String)> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let spec = JobSpec::from_yaml(&text).map_err(|e| load_error(path, &e))?;
    Ok((spec, text))
}
