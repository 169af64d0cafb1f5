//! What the tests that run `switchyard serve` as child processes share: [`Serve`], a gateway
//! process started on a free loopback port and killed on drop, and [`spend_json`], what
//! `switchyard spend --json` reads from the ledger a config names.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use switchyard_testkit::free_port;
use tokio::time::Instant;

/// How long a started gateway may take to answer `/readyz`, or a stopped one to exit.
const START_LIMIT: Duration = Duration::from_secs(20);

/// A `switchyard serve` child process (`--workers 2`), SIGKILLed on drop if still running.
pub(crate) struct Serve {
    pub(crate) child: Child,
    /// `http://127.0.0.1:PORT`.
    pub(crate) base: String,
    log: PathBuf,
}

impl Serve {
    /// Starts the gateway with `config` on a free loopback port, in `dir` (its working
    /// directory, where its log `{name}.log` goes too), and waits (bounded) until `/readyz`
    /// says 200.
    pub(crate) async fn start(config: &Path, dir: &Path, name: &str, client: &reqwest::Client) -> Serve {
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
        let child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .arg("serve")
            .arg("--config")
            .arg(config)
            .args(["--listen", &addr.to_string(), "--workers", "2"])
            .env_remove("SWITCHYARD_CONFIG")
            .env_remove("SWITCHYARD_LISTEN")
            .env_remove("SWITCHYARD_WORKERS")
            .env_remove("RUST_LOG")
            .env("SWITCHYARD_LOG", "warn")
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("spawn switchyard serve");
        let mut serve = Serve { child, base: format!("http://{addr}"), log };
        let deadline = Instant::now() + START_LIMIT;
        loop {
            if let Ok(Some(status)) = serve.child.try_wait() {
                panic!("{name} exited with {status} before it was ready: {}", serve.log());
            }
            let ready = client.get(format!("{}/readyz", serve.base)).timeout(Duration::from_secs(1)).send().await;
            if ready.is_ok_and(|r| r.status() == 200) {
                return serve;
            }
            assert!(Instant::now() < deadline, "{name} not ready within {START_LIMIT:?}: {}", serve.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, and wait (bounded) for a clean exit.
    pub(crate) async fn stop(&mut self) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().expect("run kill");
        assert!(sent.success(), "kill -TERM {pid}");
        let deadline = Instant::now() + START_LIMIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the gateway") {
                assert!(status.success(), "the gateway exited with {status} after SIGTERM: {}", self.log());
                return;
            }
            assert!(Instant::now() < deadline, "the gateway did not stop after SIGTERM: {}", self.log());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The end of its log, for failure messages.
    pub(crate) fn log(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let start = text.len().saturating_sub(4_000);
        let start = (start..text.len()).find(|i| text.is_char_boundary(*i)).unwrap_or(text.len());
        format!("\n--- {} ---\n{}", self.log.display(), &text[start..])
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `switchyard spend --config CONFIG --json`: the ledger's spend per group, and with the config
/// each tenant's budget use this UTC day and month.
pub(crate) fn spend_json(config: &Path) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["spend", "--json", "--config"])
        .arg(config)
        .env_remove("SWITCHYARD_CONFIG")
        .env_remove("SWITCHYARD_LEDGER")
        .output()
        .expect("run switchyard spend");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "switchyard spend failed: {stderr}");
    serde_json::from_slice(&out.stdout).expect("spend --json writes JSON")
}
