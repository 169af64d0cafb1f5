//! Two real Ray clusters on loopback as two clouds: one is filled and the next job fails over to
//! the other and completes; then a cluster is stopped under a running job, which is re-placed on
//! the other and resumed from its checkpoint. Skips, saying so, when Ray is not installed,
//! unless SWITCHYARD_REQUIRE_SERVICES=1 (as in CI, where `.ci/run` installs it).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use switchyard_placer::catalog::PoolKey;
use switchyard_placer::lifecycle::Status;
use switchyard_placer::{JobSpec, PlacerConfig};
use switchyard_placer_engines::engine::Engine;
use switchyard_placer_engines::ray::RayEngine;
use switchyard_placer_engines::{Placer, Progress};

/// The `ray` executable: `$SWITCHYARD_RAY`, the venv `.ci/run` makes under the target
/// directory, or `ray` on PATH.
fn ray_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("SWITCHYARD_RAY").map(PathBuf::from).filter(|p| p.exists()) {
        return Some(path);
    }
    let target = std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).ok().or_else(|| {
        // target/debug/deps/ray-HASH
        std::env::current_exe().ok()?.ancestors().nth(3).map(Path::to_owned)
    });
    let venv = target.map(|t| t.join("ray-venv/bin/ray")).filter(|p| p.exists());
    venv.or_else(|| {
        let found = Command::new("sh").args(["-c", "command -v ray"]).output().ok()?;
        found.status.success().then(|| PathBuf::from(String::from_utf8_lossy(&found.stdout).trim()))
    })
}

/// A Ray head started with `--block` in its own process group, every port explicit.
struct Cluster {
    child: Child,
    dashboard: u16,
    token: String,
}

impl Cluster {
    fn start(ray: &Path, dir: &Path, name: &str, base: u16, token: &str) -> Cluster {
        let temp = dir.join(format!("ray-{name}"));
        std::fs::create_dir_all(&temp).unwrap();
        let log = std::fs::File::create(dir.join(format!("ray-{name}.log"))).unwrap();
        let bin = ray.parent().unwrap();
        let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
        let port = |offset: u16| (base + offset).to_string();
        let child = Command::new(ray)
            .args(["start", "--head", "--block", "--node-ip-address=127.0.0.1", "--dashboard-host=127.0.0.1"])
            .arg(format!("--port={}", port(0)))
            .arg(format!("--dashboard-port={}", port(1)))
            .arg(format!("--ray-client-server-port={}", port(2)))
            .arg(format!("--dashboard-agent-listen-port={}", port(3)))
            .arg(format!("--dashboard-agent-grpc-port={}", port(4)))
            .arg(format!("--metrics-export-port={}", port(5)))
            .arg(format!("--runtime-env-agent-port={}", port(6)))
            .arg(format!("--node-manager-port={}", port(7)))
            .arg(format!("--object-manager-port={}", port(8)))
            .arg(format!("--min-worker-port={}", port(100)))
            .arg(format!("--max-worker-port={}", port(199)))
            .args(["--num-cpus=2", "--num-gpus=8", "--resources={\"H100\": 8}", "--object-store-memory=100000000"])
            .arg(format!("--temp-dir={}", temp.display()))
            .arg("--disable-usage-stats")
            .env("PATH", path)
            .env("RAY_USAGE_STATS_ENABLED", "0")
            .env("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
            .env("RAY_JOB_START_TIMEOUT_SECONDS", "20")
            .env("DASHBOARD_METRIC_PORT", port(9))
            .env("AUTOSCALER_METRIC_PORT", port(10))
            .env("RAY_AUTH_MODE", "token")
            .env("RAY_AUTH_TOKEN", token)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("ray start runs");
        Cluster { child, dashboard: base + 1, token: token.to_owned() }
    }

    fn address(&self) -> String {
        format!("http://127.0.0.1:{}", self.dashboard)
    }

    /// Waits (bounded: Ray starts in a few seconds) until the Jobs API answers and the head
    /// node's eight H100 show as free.
    async fn ready(&self) {
        let engine = RayEngine::new("probe", &self.address(), Some(self.token.clone())).unwrap();
        let h100 = PoolKey { cloud: "any".into(), region: "any".into(), accelerator: "H100".into() };
        for _ in 0..600 {
            if matches!(engine.free(&h100).await, Ok(Some(8))) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("Ray at {} did not come up", self.address());
    }

    /// SIGTERM to `ray start --block` (it drains and stops its cluster), SIGKILL to the group
    /// if that has not happened in time. Never `ray stop`: it would stop every cluster.
    fn stop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-s", "TERM", &pid]).status();
        for _ in 0..300 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = Command::new("kill").args(["-s", "KILL", "--", &format!("-{pid}")]).stderr(Stdio::null()).status();
        let _ = self.child.wait();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(Some(_))) {
            self.stop();
        }
    }
}

fn job(name: &str, steps: u32) -> (JobSpec, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/jobs/train.sh");
    let s = script.canonicalize().unwrap();
    let s = s.display();
    let text = format!(
        "name: {name}\naccelerators: H100:8\nduration: 2h\nworkload: training\nrun: sh {s}\n\
         env: {{ STEPS: \"{steps}\", STEP_SECONDS: \"0.1\" }}\ncheckpoint: {{ resume: sh {s} --resume }}\n"
    );
    (JobSpec::from_yaml(&text).unwrap(), text)
}

async fn until(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..600 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_ray_clusters_fail_over_when_full_and_resume_when_a_cluster_is_lost() {
    let Some(ray) = ray_binary() else {
        if std::env::var("SWITCHYARD_REQUIRE_SERVICES").is_ok_and(|v| v == "1") {
            panic!("Ray is required (SWITCHYARD_REQUIRE_SERVICES=1) but not installed");
        }
        eprintln!(
            "skipping: Ray is not installed (set SWITCHYARD_RAY, or run .ci/run, which installs it into $CARGO_TARGET_DIR/ray-venv)"
        );
        return;
    };
    let dir = std::env::temp_dir().join(format!("sy-ray-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (token_a, token_b) = ("5e11e0c7a1b2c3d4e5f60718293a4b5c", "0a1b2c3d4e5f60718293a4b5c6d7e8f9");
    std::fs::write(dir.join("token-a"), token_a).unwrap();
    std::fs::write(dir.join("token-b"), token_b).unwrap();
    let mut azure = Cluster::start(&ray, &dir, "azure", 23000, token_a);
    let aws = Cluster::start(&ray, &dir, "aws", 24000, token_b);
    azure.ready().await;
    aws.ready().await;

    let config = format!(
        r#"
prices:
  - {{ name: test-azure, cloud: azure, instance: Standard_ND96isr_H100_v5, usd_per_hour: 62 }}
  - {{ name: test-aws, cloud: aws, instance: p5.48xlarge, kind: on_demand, usd_per_hour: 55 }}
workloads:
  training: {{ prefer: [azure] }}
retries: {{ max_replacements: 2, lost_after: 2s, start_timeout: 30s }}
engines:
  - {{ name: ray-azure, kind: ray, address: "{}", token: "file:{}" }}
  - {{ name: ray-aws, kind: ray, address: "{}", token: "file:{}" }}
pools:
  - {{ cloud: azure, region: eastus, accelerator: H100, engine: ray-azure }}
  - {{ cloud: aws, region: us-east-1, accelerator: H100, engine: ray-aws }}
"#,
        azure.address(),
        dir.join("token-a").display(),
        aws.address(),
        dir.join("token-b").display()
    );
    let config = PlacerConfig::from_yaml(&config, &|p| Err(p.to_owned())).unwrap();
    let placer = Placer::open(config, &dir.join("state")).await.unwrap();
    let mut log: Vec<String> = Vec::new();
    let azure_engine = RayEngine::new("azure", &azure.address(), Some(token_a.to_owned())).unwrap();
    let h100 = PoolKey { cloud: "azure".into(), region: "eastus".into(), accelerator: "H100".into() };

    // 1. A long job fills Azure (the training cloud); the next fails over to AWS and completes.
    let (spec, text) = job("filler", 3_000);
    let filler = placer.submit(&spec, &text).await.unwrap();
    let placed = placer.place(&filler, false, &mut |p: Progress| log.push(p.to_string())).await.unwrap();
    assert_eq!(placed, Status::Running, "{log:#?} {:?}", placer.store.job(&filler).await.unwrap());
    assert!(placer.store.attempts(&filler).await.unwrap()[0].offering.starts_with("azure/"), "{log:#?}");
    assert_eq!(azure_engine.free(&h100).await.unwrap(), Some(0));
    let (spec, text) = job("spill", 5);
    let spill = placer.submit(&spec, &text).await.unwrap();
    placer.place(&spill, false, &mut |p: Progress| log.push(p.to_string())).await.unwrap();
    assert_eq!(
        placer.supervise(&spill, &mut |p: Progress| log.push(p.to_string())).await.unwrap(),
        Status::Succeeded,
        "{log:#?}"
    );
    let attempts = placer.store.attempts(&spill).await.unwrap();
    assert!(attempts[0].offering.starts_with("aws/"), "{attempts:?}");
    assert!(placer.logs(&spill).await.unwrap().contains("done after 5 steps"));
    // Submitting to the full cluster directly is refused as no capacity, not queued forever.
    let plan = placer.dry_run(&spec).await.unwrap();
    let azure_reason =
        plan.rejected.iter().find(|r| r.offering.starts_with("azure/eastus/")).map(|r| r.reason.to_string());
    assert!(azure_reason.as_deref().is_some_and(|r| r.starts_with("no capacity: 0")), "{azure_reason:?}");

    // 2. Free Azure, run a resumable job there, and stop the Azure cluster under it.
    assert_eq!(placer.cancel(&filler).await.unwrap(), Status::Cancelled);
    for _ in 0..200 {
        if azure_engine.free(&h100).await.unwrap() == Some(8) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (spec, text) = job("resumable", 150);
    let id = placer.submit(&spec, &text).await.unwrap();
    placer.place(&id, false, &mut |p: Progress| log.push(p.to_string())).await.unwrap();
    assert!(placer.store.attempts(&id).await.unwrap()[0].offering.starts_with("azure/"), "{log:#?}");
    let checkpoint = dir.join("state/checkpoints").join(&id).join("step");
    until("three checkpoints", || {
        std::fs::read_to_string(&checkpoint).is_ok_and(|s| s.trim().parse::<u32>().unwrap_or(0) >= 3)
    })
    .await;
    azure.stop();
    let status = placer.supervise(&id, &mut |p: Progress| log.push(p.to_string())).await.unwrap();
    assert_eq!(status, Status::Succeeded, "{log:#?}");
    let attempts = placer.store.attempts(&id).await.unwrap();
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert!(attempts[1].offering.starts_with("aws/") && attempts[1].resumed, "{attempts:?}");
    assert!(log.iter().any(|l| l.contains("cannot reach the job")), "{log:#?}");
    let logs = placer.logs(&id).await.unwrap();
    assert!(logs.contains("resumed from step") && logs.contains("done after 150 steps"), "{logs}");
    drop(aws);
    let _ = std::fs::remove_dir_all(&dir);
}
