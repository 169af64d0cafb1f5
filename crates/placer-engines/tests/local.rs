//! The local engine end to end: jobs run as processes against logical GPU pools, persist in
//! SQLite, fail over when their training cloud is full, are re-placed and resumed from their
//! checkpoint when their process group is killed, and can be cancelled.

use std::path::{Path, PathBuf};
use std::time::Duration;

use switchyard_placer::lifecycle::Status;
use switchyard_placer::{JobSpec, PlacerConfig, Reason};
use switchyard_placer_engines::{Placer, Progress};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn config() -> PlacerConfig {
    let text = std::fs::read_to_string(repo().join("examples/jobs/placer.yaml")).unwrap();
    PlacerConfig::from_yaml(&text, &|p| std::fs::read_to_string(p).map_err(|e| e.to_string())).unwrap()
}

/// A fresh state directory per test.
fn state(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("switchyard-placer-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn job(name: &str, extra: &str) -> (JobSpec, String) {
    let script = repo().join("examples/jobs/train.sh");
    let text = format!(
        "name: {name}\naccelerators: H100:8\nnodes: 2\nduration: 2h\nworkload: training\nrun: sh {s}\ncheckpoint: {{ resume: sh {s} --resume }}\n{extra}",
        s = script.display()
    );
    (JobSpec::from_yaml(&text).unwrap(), text)
}

async fn start(placer: &Placer, name: &str, extra: &str, log: &mut Vec<String>) -> String {
    let (spec, text) = job(name, extra);
    let id = placer.submit(&spec, &text).await.unwrap();
    let status = placer.place(&id, false, &mut |p: Progress| log.push(p.to_string())).await.unwrap();
    assert_eq!(status, Status::Running, "{log:#?}");
    id
}

/// Waits (bounded) for a condition that the job itself brings about.
async fn until(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..400 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn training_fills_its_cloud_then_spills_over_and_state_survives_a_restart() {
    let dir = state("spill");
    let placer = Placer::open(config(), &dir).await.unwrap();
    let mut log = Vec::new();
    let hold = "env: { STEPS: \"400\", STEP_SECONDS: \"0.05\" }\n";
    let first = start(&placer, "first", hold, &mut log).await;
    let second = start(&placer, "second", hold, &mut log).await;
    let third = start(&placer, "third", hold, &mut log).await;
    let a1 = placer.store.attempts(&first).await.unwrap()[0].offering.clone();
    let a2 = placer.store.attempts(&second).await.unwrap()[0].offering.clone();
    let a3 = placer.store.attempts(&third).await.unwrap()[0].offering.clone();
    assert!(a1.starts_with("azure/") && a2.starts_with("azure/"), "{a1} {a2}");
    assert_ne!(a1, a2);
    assert!(!a3.starts_with("azure/"), "azure is full, so the third goes elsewhere: {a3}");
    // A restarted placer finds the same jobs running.
    drop(placer);
    let placer = Placer::open(config(), &dir).await.unwrap();
    let jobs = placer.store.jobs().await.unwrap();
    assert_eq!(jobs.iter().filter(|j| j.status == Status::Running).count(), 3);
    placer.reconcile(&mut |_| ()).await.unwrap();
    for id in [&first, &second, &third] {
        assert_eq!(placer.cancel(id).await.unwrap(), Status::Cancelled);
    }
    let plan = placer.dry_run(&job("after", "").0).await.unwrap();
    assert!(plan.best().unwrap().offering.starts_with("azure/"), "capacity is back after the cancels");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_killed_job_is_replaced_elsewhere_and_resumes_from_its_checkpoint() {
    let dir = state("resume");
    let placer = Placer::open(config(), &dir).await.unwrap();
    let mut log = Vec::new();
    let id = start(&placer, "resumable", "env: { STEPS: \"60\", STEP_SECONDS: \"0.05\" }\n", &mut log).await;
    let checkpoint = dir.join("checkpoints").join(&id).join("step");
    until("two checkpoints", || {
        std::fs::read_to_string(&checkpoint).is_ok_and(|s| s.trim().parse::<u32>().unwrap_or(0) >= 2)
    })
    .await;
    // Kill the whole process group, as a node going away would.
    let record = std::fs::read_to_string(dir.join("local").join(format!("{id}.1.record"))).unwrap();
    let pid = record.lines().find_map(|l| l.strip_prefix("pid=")).unwrap();
    let killed = std::process::Command::new("kill").args(["-s", "KILL", "--", &format!("-{pid}")]).status().unwrap();
    assert!(killed.success());
    let status = placer.supervise(&id, &mut |p: Progress| log.push(p.to_string())).await.unwrap();
    assert_eq!(status, Status::Succeeded, "{log:#?}");
    let attempts = placer.store.attempts(&id).await.unwrap();
    assert_eq!(attempts.len(), 2, "{log:#?}");
    assert!(attempts[0].outcome.as_deref().unwrap().starts_with("lost:"), "{attempts:?}");
    assert!(attempts[1].resumed);
    assert_ne!(
        (&attempts[0].pool.cloud, &attempts[0].pool.region),
        (&attempts[1].pool.cloud, &attempts[1].pool.region)
    );
    let logs = placer.logs(&id).await.unwrap();
    assert!(logs.contains("resumed from step"), "{logs}");
    assert!(logs.contains("done after 60 steps"), "{logs}");
    assert!(log.iter().any(|l| l.contains("blocked region")), "{log:#?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_failing_job_is_failed_not_replaced_and_an_impossible_one_is_unplaceable() {
    let dir = state("fail");
    let placer = Placer::open(config(), &dir).await.unwrap();
    let text = "name: broken\naccelerators: H100:8\nduration: 1h\nrun: echo oops >&2; exit 3\n";
    let spec = JobSpec::from_yaml(text).unwrap();
    let id = placer.submit(&spec, text).await.unwrap();
    let mut log = Vec::new();
    placer.place(&id, false, &mut |p: Progress| log.push(p.to_string())).await.unwrap();
    assert_eq!(placer.supervise(&id, &mut |_| ()).await.unwrap(), Status::Failed);
    let row = placer.store.job(&id).await.unwrap().unwrap();
    assert!(row.detail.contains("exited with 3"), "{row:?}");
    assert_eq!(placer.store.attempts(&id).await.unwrap().len(), 1);
    assert!(placer.logs(&id).await.unwrap().contains("oops"));

    let text = "name: jp-only\naccelerators: H100:8\nduration: 1h\njurisdictions: [jp]\nrun: \"true\"\n";
    let spec = JobSpec::from_yaml(text).unwrap();
    let id = placer.submit(&spec, text).await.unwrap();
    assert_eq!(placer.place(&id, false, &mut |_| ()).await.unwrap(), Status::Unplaceable);
    let row = placer.store.job(&id).await.unwrap().unwrap();
    assert!(row.detail.contains("outside the allowed jurisdictions"), "{}", row.detail);
    assert!(row.detail.contains("no pool declared"), "{}", row.detail);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn an_eu_job_dry_run_explains_every_non_eu_pool() {
    let dir = state("eu");
    let placer = Placer::open(config(), &dir).await.unwrap();
    let text = std::fs::read_to_string(repo().join("examples/jobs/eu-finetune.yaml")).unwrap();
    let plan = placer.dry_run(&JobSpec::from_yaml(&text).unwrap()).await.unwrap();
    assert!(!plan.ranked.is_empty());
    assert!(plan.ranked.iter().all(|c| c.jurisdiction == "eu"), "{:#?}", plan.ranked);
    let outside: Vec<_> = plan.rejected.iter().filter(|r| r.jurisdiction != "eu").collect();
    assert!(outside.len() > 10);
    for r in outside {
        assert!(matches!(r.reason, Reason::Jurisdiction { .. }), "{r:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
