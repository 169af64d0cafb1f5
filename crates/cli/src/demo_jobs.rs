//! `switchyard demo --jobs`: GPU jobs on the local engine, with no services. Training jobs go to
//! the training cloud (Azure) until it is full; the next one is spun up on another cloud; then a
//! node is lost under a running job, which is re-placed elsewhere and resumed from its
//! checkpoint. Ends with a table of where each job ran; exits non-zero if the story did not hold.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use switchyard_placer::lifecycle::Status;
use switchyard_placer::table::{grid, usd};
use switchyard_placer::{JobSpec, PlacerConfig};
use switchyard_placer_engines::{Placer, Progress};

use crate::outln;

const CONFIG: &str = include_str!("../../../examples/jobs/placer.yaml");
const TRAIN: &str = include_str!("../../../examples/jobs/train.sh");

fn say(p: Progress) {
    // Progress lines go to stdout here: they are the demo.
    let _ = outln!("    {p}");
}

fn spec(name: &str, script: &Path, steps: u32) -> (JobSpec, String) {
    let s = script.display();
    let text = format!(
        "name: {name}\naccelerators: H100:8\nnodes: 2\nduration: 24h\nworkload: training\njurisdictions: [us, eu]\n\
         run: sh {s}\nenv: {{ STEPS: \"{steps}\", STEP_SECONDS: \"0.1\" }}\ncheckpoint: {{ resume: sh {s} --resume, every: 30m }}\n"
    );
    (JobSpec::from_yaml(&text).expect("the demo's job spec is valid"), text)
}

async fn place(placer: &Placer, name: &str, script: &Path, steps: u32) -> anyhow::Result<String> {
    let (job, text) = spec(name, script, steps);
    let plan = placer.dry_run(&job).await?;
    outln!("\n>>> placing {name}: 2 nodes x 8 H100, training (rule: azure first, then anyone)")?;
    let shown =
        |r: &&switchyard_placer::Rejected| r.cloud == "azure" && r.reason != switchyard_placer::Reason::NoEngine;
    for r in plan.rejected.iter().filter(shown) {
        outln!("    rejected {}: {}", r.offering, r.reason)?;
    }
    let id = placer.submit(&job, &text).await?;
    let status = placer.place(&id, false, &mut say).await?;
    anyhow::ensure!(status == Status::Running, "{id} did not start: {status}");
    Ok(id)
}

async fn first_cloud(placer: &Placer, id: &str) -> anyhow::Result<String> {
    Ok(placer.store.attempts(id).await?.first().map(|a| a.pool.cloud.clone()).unwrap_or_default())
}

pub(crate) async fn run() -> anyhow::Result<ExitCode> {
    let state: PathBuf = std::env::temp_dir().join(format!("switchyard-demo-jobs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    std::fs::create_dir_all(&state).with_context(|| format!("cannot create {}", state.display()))?;
    let script = state.join("train.sh");
    std::fs::write(&script, TRAIN)?;
    let config = PlacerConfig::from_yaml(CONFIG, &|p| Err(format!("the demo reads no files ({p})")))
        .map_err(|e| anyhow::anyhow!("the demo's config: {e}"))?;
    outln!("GPU job demo: the shipped catalog, example contract prices, local pools of logical GPUs.")?;
    outln!("Azure has two H100 pools of 16; AWS, OCI and GCP have pools too. State: {}", state.display())?;
    let placer = Placer::open(config, &state).await?;

    let a = place(&placer, "train-a", &script, 30).await?;
    let b = place(&placer, "train-b", &script, 60).await?;
    outln!("\n>>> Azure is now full: both of its H100 pools hold a job.")?;
    let c = place(&placer, "train-c", &script, 30).await?;

    outln!("\n>>> a node is lost under {b}: its process group is killed")?;
    let record = std::fs::read_to_string(state.join("local").join(format!("{b}.1.record")))?;
    if let Some(pid) = record.lines().find_map(|l| l.strip_prefix("pid=")) {
        let _ = std::process::Command::new("kill").args(["-s", "KILL", "--", &format!("-{pid}")]).status();
    }
    outln!("\n>>> supervising until every job ends")?;
    let mut finals = Vec::new();
    for id in [&a, &b, &c] {
        finals.push(placer.supervise(id, &mut say).await?);
    }

    let mut rows = Vec::new();
    for id in [&a, &b, &c] {
        let job = placer.store.job(id).await?.context("job missing")?;
        let attempts = placer.store.attempts(id).await?;
        let places: Vec<String> =
            attempts.iter().map(|a| format!("{}{}", a.offering, if a.resumed { " (resumed)" } else { "" })).collect();
        let hourly: f64 = attempts.last().map_or(0.0, |a| a.usd_per_hour * f64::from(a.instances));
        rows.push(vec![id.clone(), job.status.to_string(), places.join(" -> "), usd(hourly * 24.0)]);
    }
    outln!("\n{}", grid(&["job", "status", "ran on", ">cost of 24h there"], &rows))?;
    let spilled = first_cloud(&placer, &c).await?;
    let resumed = placer.store.attempts(&b).await?.iter().any(|a| a.resumed);
    let ok = first_cloud(&placer, &a).await? == "azure"
        && first_cloud(&placer, &b).await? == "azure"
        && spilled != "azure"
        && resumed
        && finals.iter().all(|s| *s == Status::Succeeded);
    outln!(
        "training went to azure first: {}; the third job spun up on {spilled}; the lost job resumed from its checkpoint: {}",
        if ok { "yes" } else { "no" },
        if resumed { "yes" } else { "no" }
    )?;
    let _ = std::fs::remove_dir_all(&state);
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
