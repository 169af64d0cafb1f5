//! The `switchyard` binary: argument parsing and wiring only.

mod catalog;
mod demo;
mod demo_jobs;
mod jobs;
mod keys;
mod ledger_args;
mod load;
mod placer_args;
mod report;
mod sim;
mod sim_jobs;
mod spend;

use std::fmt;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use switchyard_core::config::{Config, ConfigError, SecretSource, key_hash_text};

#[derive(Parser)]
#[command(name = "switchyard", version, about = "A control plane for multi-cloud AI inference")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the OpenAI-compatible gateway.
    Serve {
        #[arg(long, env = "SWITCHYARD_CONFIG")]
        config: PathBuf,
        /// Overrides `server.listen`.
        #[arg(long, env = "SWITCHYARD_LISTEN")]
        listen: Option<SocketAddr>,
        /// Worker threads, each with its own runtime and listener (default: one per core).
        #[arg(long, env = "SWITCHYARD_WORKERS")]
        workers: Option<usize>,
    },
    /// Serve the config's deployments as emulated clouds on loopback.
    Emulate {
        #[arg(long)]
        config: PathBuf,
        /// Address of the admin API (set faults live, read stats). It has no authentication, so
        /// it must be a loopback address, and it answers loopback peers only.
        #[arg(long, default_value = "127.0.0.1:9100")]
        admin: SocketAddr,
        /// Let the admin API listen on a non-loopback address and answer remote peers.
        #[arg(long)]
        admin_allow_remote: bool,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Emulated clouds + gateway + traffic, with a cloud outage midway; writes a report.
    Demo {
        /// Where the report goes.
        #[arg(long, default_value = "switchyard-demo-report.md")]
        report: PathBuf,
        /// Length of the traffic run in seconds.
        #[arg(long, default_value_t = 21)]
        seconds: u64,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// The GPU job demo instead: jobs placed on the local engine, a cloud filling up, the
        /// next job on another cloud, a lost node resumed elsewhere.
        #[arg(long)]
        jobs: bool,
    },
    /// List the GPU catalog as a table, with the config's negotiated prices when given.
    Catalog {
        #[arg(long)]
        accelerator: Option<String>,
        #[arg(long)]
        cloud: Option<String>,
        /// A catalog file to read instead of the shipped one.
        #[arg(long)]
        catalog: Option<PathBuf>,
        /// A placer config: its catalog, with its prices and reservations applied.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Place a GPU job: plan, provision the best pool, fail over, supervise until it ends.
    Place {
        job: PathBuf,
        /// Print the plan and why each other offering was rejected; provision nothing.
        #[arg(long)]
        dry_run: bool,
        /// Return once the job runs instead of supervising it (`switchyard jobs` picks it up).
        #[arg(long)]
        detach: bool,
        #[command(flatten)]
        placer: placer_args::PlacerArgs,
    },
    /// GPU jobs: a status table (after checking every running job), or logs or cancel one.
    Jobs {
        #[command(subcommand)]
        action: Option<jobs::JobsAction>,
        #[command(flatten)]
        placer: placer_args::PlacerArgs,
    },
    /// Simulate a scenario against routing policies: a table, a JSON report and an HTML report.
    Sim {
        scenario: PathBuf,
        /// A policy to compare (repeatable): cost, latency, balanced, priority, commitment,
        /// round_robin, static:CLOUD. Default: the product's policies, round robin, and a
        /// static single-cloud baseline on the first cloud.
        #[arg(long = "policy")]
        policies: Vec<String>,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Where report.json and report.html go.
        #[arg(long, default_value = "sim-report")]
        out: PathBuf,
    },
    /// Validate a config file: print a summary, or every error with its path.
    CheckConfig { file: PathBuf },
    /// Print the hash of an API key, the form a config's `tenants[].keys` holds.
    HashKey { key: String },
    /// API keys in the ledger: create one (its secret is shown once), list them, revoke one.
    Keys {
        #[command(subcommand)]
        action: keys::KeysAction,
        #[command(flatten)]
        ledger: ledger_args::LedgerArgs,
    },
    /// Spend recorded in the ledger per cloud, tenant, key, alias or deployment; with a config,
    /// budget use and commitment burn-down too.
    Spend(spend::SpendArgs),
}

/// The real environment and file system.
struct EnvAndFiles;

impl SecretSource for EnvAndFiles {
    fn env(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
    fn file(&self, path: &str) -> Result<String, String> {
        std::fs::read_to_string(path).map(|s| s.trim_end().to_owned()).map_err(|e| format!("cannot read {path}: {e}"))
    }
}

fn load_config(path: &Path) -> anyhow::Result<Config> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Config::from_yaml(&text, &EnvAndFiles).map_err(|e| match e {
        ConfigError::Parse(m) => anyhow::anyhow!("{}: {m}", path.display()),
        ConfigError::Invalid(errors) => {
            anyhow::anyhow!("{}:\n  {}", path.display(), errors.join("\n  "))
        }
    })
}

/// Standard output was closed early (`switchyard check-config x.yaml | head -1`): the reader
/// has what it wanted, so the command ends cleanly instead of failing.
#[derive(Debug)]
struct StdoutClosed;

impl fmt::Display for StdoutClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("standard output was closed")
    }
}

impl std::error::Error for StdoutClosed {}

/// Writes to standard output and flushes. A closed pipe is [`StdoutClosed`], which `main` turns
/// into a clean exit; `println!` would panic instead.
fn write_stdout(args: fmt::Arguments<'_>) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_fmt(args).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(StdoutClosed.into()),
        Err(e) => Err(anyhow::Error::new(e).context("cannot write to standard output")),
    }
}

/// `println!` that returns an error (`?` it) instead of panicking when stdout is closed.
macro_rules! outln {
    () => { $crate::write_stdout(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::write_stdout(format_args!("{}\n", format_args!($($arg)*))) };
}
/// `print!`, likewise.
macro_rules! out {
    ($($arg:tt)*) => { $crate::write_stdout(format_args!($($arg)*)) };
}
/// `eprintln!` that ignores a closed stderr: there is nowhere left to report it.
macro_rules! errln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}
pub(crate) use {errln, out, outln};

/// The log filter: `SWITCHYARD_LOG`, else `RUST_LOG`, else `info` (empty counts as unset). An
/// unparseable filter falls back to `info`, with the reason as a warning.
fn log_filter(
    switchyard_log: Option<String>,
    rust_log: Option<String>,
) -> (tracing_subscriber::EnvFilter, Option<String>) {
    use tracing_subscriber::EnvFilter;
    let chosen = [("SWITCHYARD_LOG", switchyard_log), ("RUST_LOG", rust_log)]
        .into_iter()
        .find_map(|(name, value)| value.filter(|v| !v.trim().is_empty()).map(|v| (name, v)));
    match chosen {
        None => (EnvFilter::new("info"), None),
        Some((name, value)) => match EnvFilter::try_new(&value) {
            Ok(filter) => (filter, None),
            Err(e) => (EnvFilter::new("info"), Some(format!("ignoring {name}={value:?} ({e}); logging at info"))),
        },
    }
}

fn init_tracing() {
    let (filter, warning) = log_filter(std::env::var("SWITCHYARD_LOG").ok(), std::env::var("RUST_LOG").ok());
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    if let Some(warning) = warning {
        tracing::warn!(message = "Bad log filter.", %warning);
    }
}

/// Ctrl-C, or SIGTERM as service managers and Kubernetes send it.
async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => (),
        _ = term.recv() => (),
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve { config, listen, workers } => {
            init_tracing();
            let config = load_config(&config)?;
            let addr: SocketAddr = match listen {
                Some(a) => a,
                None => config.server.listen.parse().context("server.listen")?,
            };
            let workers = workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
            let opened = match config.ledger.enabled() {
                true => Some(switchyard_gateway::open_ledger(&config).await?),
                false => None,
            };
            let shared = {
                let config = config.clone();
                tokio::task::spawn_blocking(move || switchyard_gateway::start_shared(&config)).await??
            };
            if let Some(shared) = &shared {
                let (url, status) = (shared.counters.url(), shared.counters.status().as_str());
                tracing::info!(message = "Sharing limits, budgets and deployment signals through Redis.", %url, status);
            }
            let (store, ledger) = opened.unzip();
            let (shared, shared_budgets, shared_signals) = match shared {
                Some(s) => (Some(s.counters), Some(s.budgets), Some(s.signals)),
                None => (None, None, None),
            };
            let parts = switchyard_gateway::Parts {
                ledger,
                shared,
                shared_budgets,
                shared_signals,
                store: store.clone(),
                ..Default::default()
            };
            let gateway = switchyard_gateway::Gateway::assemble(config, rand_seed(), parts)?;
            match &store {
                Some(store) => {
                    switchyard_gateway::restore(&gateway, store).await?;
                    tracing::info!(message = "Ledger open.", url = %store.url());
                }
                None => tracing::warn!(message = "No ledger (ledger.url: none): requests are not recorded."),
            }
            if store.is_some() {
                // Keys made with `switchyard keys create` elsewhere reach this replica within seconds.
                let gateway = gateway.clone();
                tokio::spawn(async move {
                    let mut every = tokio::time::interval(std::time::Duration::from_secs(5));
                    loop {
                        every.tick().await;
                        gateway.refresh_keys().await;
                    }
                });
            }
            let (stop, stopped) = tokio::sync::watch::channel(false);
            tokio::spawn(async move {
                shutdown_signal().await;
                let _ = stop.send(true);
            });
            tracing::info!(message = "Gateway listening.", %addr, workers);
            let served = {
                let gateway = gateway.clone();
                tokio::task::spawn_blocking(move || switchyard_gateway::serve_workers(gateway, addr, workers, stopped))
            };
            served.await.context("the gateway's workers")??;
            if let Some(ledger) = &gateway.ledger {
                let counts = switchyard_gateway::close_ledger(ledger, std::time::Duration::from_secs(30)).await;
                tracing::info!(message = "Ledger flushed.", ?counts);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Emulate { config, admin, admin_allow_remote, seed } => {
            init_tracing();
            let config = load_config(&config)?;
            let admin = switchyard_emulator::AdminBind { addr: admin, allow_remote: admin_allow_remote };
            let emulator = switchyard_emulator::Emulator::start_with_admin(
                &config,
                switchyard_emulator::Bind::Endpoints,
                Some(admin),
                seed,
            )
            .await?;
            for d in emulator.deployments() {
                tracing::info!(message = "Emulating deployment.", deployment = %d.name, endpoint = %d.endpoint());
            }
            tracing::info!(message = "Emulator admin API listening.", addr = ?emulator.admin_addr());
            shutdown_signal().await;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo { jobs: true, .. } => demo_jobs::run().await,
        Command::Demo { report, seconds, seed, jobs: false } => demo::run(&report, seconds, seed).await,
        Command::Catalog { accelerator, cloud, catalog, config } => {
            catalog::run(accelerator.as_deref(), cloud.as_deref(), catalog.as_deref(), config.as_deref())
        }
        Command::Place { job, dry_run, detach, placer } => jobs::place(&placer, &job, dry_run, detach).await,
        Command::Jobs { action, placer } => jobs::jobs(&placer, action.as_ref()).await,
        Command::Sim { scenario, policies, seed, out } => sim::run(&scenario, &policies, seed, &out),
        Command::CheckConfig { file } => match load_config(&file) {
            Ok(config) => {
                outln!("{}", summary(&config))?;
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                errln!("error: {e:#}");
                Ok(ExitCode::FAILURE)
            }
        },
        Command::HashKey { key } => {
            outln!("{}", key_hash_text(&key))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Keys { action, ledger } => keys::run(&ledger, &action).await,
        Command::Spend(args) => spend::run(&args).await,
    }
}

fn summary(config: &Config) -> String {
    let mut out = format!(
        "config ok: {} clouds, {} deployments, {} aliases, {} tenants\n",
        config.clouds.len(),
        config.deployments.len(),
        config.aliases.len(),
        config.tenants.len()
    );
    for a in &config.aliases {
        let names: Vec<_> = a.deployments.iter().map(|d| config.deployment(*d).name.as_str()).collect();
        out.push_str(&format!("  {} ({}): {}\n", a.name, a.policy, names.join(", ")));
    }
    for t in &config.tenants {
        out.push_str(&format!("  tenant {}: jurisdictions {}\n", t.name, t.jurisdictions.join(", ")));
    }
    out.trim_end().to_owned()
}

/// A seed for power-of-two choices in production: varies per process, from the clock.
fn rand_seed() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64)
        ^ u64::from(std::process::id())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            errln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) if e.is::<StdoutClosed>() => ExitCode::SUCCESS,
        Err(e) => {
            errln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(switchyard_log: Option<&str>, rust_log: Option<&str>) -> (String, Option<String>) {
        let (filter, warning) = log_filter(switchyard_log.map(str::to_owned), rust_log.map(str::to_owned));
        (filter.to_string(), warning)
    }

    #[test]
    fn log_filter_reads_switchyard_log_then_rust_log() {
        assert_eq!(filter(None, None), ("info".to_owned(), None));
        assert_eq!(filter(None, Some("debug")), ("debug".to_owned(), None));
        assert_eq!(filter(Some("warn"), None), ("warn".to_owned(), None));
        assert_eq!(filter(Some("warn"), Some("debug")), ("warn".to_owned(), None));
        assert_eq!(filter(Some(""), Some("switchyard_gateway=trace")), ("switchyard_gateway=trace".to_owned(), None));
        let (level, warning) = filter(Some("gateway=loudest"), Some("debug"));
        assert_eq!(level, "info");
        assert!(warning.is_some_and(|w| w.starts_with("ignoring SWITCHYARD_LOG=\"gateway=loudest\"")));
    }
}
