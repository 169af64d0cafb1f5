//! The placer's subcommands as a process: catalog, place (dry run and real, on the local
//! engine), jobs, logs, and job-spec errors with their paths.

use std::path::PathBuf;
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn switchyard(args: &[&str], state: &str) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(args)
        .current_dir(repo())
        .env("SWITCHYARD_PLACER_CONFIG", "examples/jobs/placer.yaml")
        .env("SWITCHYARD_STATE", state)
        .output()
        .expect("the binary runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn state(name: &str) -> String {
    let dir = std::env::temp_dir().join(format!("switchyard-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir.display().to_string()
}

#[test]
fn catalog_lists_and_filters_and_marks_contract_offerings() {
    let (ok, out, err) = switchyard(&["catalog", "--accelerator", "GB200"], &state("catalog"));
    assert!(ok, "{err}");
    assert!(out.lines().skip(2).filter(|l| l.contains("offerings;")).count() == 1);
    for line in out.lines().skip(2).take_while(|l| !l.contains("offerings;")) {
        assert!(line.contains("GB200"), "{line}");
        assert!(line.contains("contract"), "{line}");
    }
    let (ok, out, _) =
        switchyard(&["catalog", "--cloud", "azure", "--config", "examples/jobs/placer.yaml"], &state("catalog2"));
    assert!(ok);
    assert!(out.contains("negotiated example-azure-contract"), "{out}");
    assert!(!out.contains("\naws "), "{out}");
}

#[test]
fn an_eu_dry_run_says_why_each_non_eu_pool_is_out() {
    let (ok, out, err) = switchyard(&["place", "examples/jobs/eu-finetune.yaml", "--dry-run"], &state("dry"));
    assert!(ok, "{err}");
    let rejected = out.split("Rejected:").nth(1).unwrap();
    let mut non_eu = 0;
    for line in rejected.lines().skip(3).take_while(|l| !l.is_empty()) {
        let jur = line.split_whitespace().nth(1).unwrap();
        if jur != "eu" {
            non_eu += 1;
            assert!(line.contains(&format!("outside the allowed jurisdictions: {jur} is not in [eu]")), "{line}");
        }
    }
    assert!(non_eu > 10, "{out}");
    let candidates = out.split("Rejected:").next().unwrap().split("Candidates, best first:").nth(1).unwrap();
    for line in candidates.lines().skip(3).take_while(|l| !l.is_empty()) {
        assert_eq!(line.split_whitespace().nth(2), Some("eu"), "{line}");
    }
    assert!(out.contains("Would place on "), "{out}");
}

#[test]
fn place_runs_a_job_and_jobs_shows_it_with_its_logs() {
    let state = state("place");
    let job = std::env::temp_dir().join(format!("switchyard-cli-job-{}.yaml", std::process::id()));
    std::fs::write(
        &job,
        "name: quick\naccelerators: H100:8\nduration: 1h\nworkload: inference\nrun: sh examples/jobs/train.sh\nenv: { STEPS: \"2\", STEP_SECONDS: \"0.05\" }\n",
    )
    .unwrap();
    let (ok, out, err) = switchyard(&["place", job.to_str().unwrap()], &state);
    assert!(ok, "{out}{err}");
    assert!(out.contains("quick-1: succeeded"), "{out}");
    assert!(err.contains("running on aws/"), "inference prefers aws: {err}");
    let (ok, out, _) = switchyard(&["jobs"], &state);
    assert!(ok);
    assert!(out.lines().any(|l| l.starts_with("quick-1") && l.contains("succeeded")), "{out}");
    let (ok, out, _) = switchyard(&["jobs", "logs", "quick-1"], &state);
    assert!(ok);
    assert!(out.contains("== attempt 1 on aws/") && out.contains("done after 2 steps"), "{out}");
    let (ok, _, err) = switchyard(&["jobs", "logs", "nope-9"], &state);
    assert!(!ok && err.contains("no job \"nope-9\""), "{err}");
    let _ = std::fs::remove_file(&job);
    let _ = std::fs::remove_dir_all(&state);
}

#[test]
fn a_bad_job_spec_lists_every_error_with_its_path() {
    let job = std::env::temp_dir().join(format!("switchyard-cli-bad-{}.yaml", std::process::id()));
    std::fs::write(&job, "name: x\naccelerators: H100\nduration: 3 weeks\nrun: r\ngpus: 8\n").unwrap();
    let (ok, _, err) = switchyard(&["place", job.to_str().unwrap(), "--dry-run"], &state("bad"));
    let _ = std::fs::remove_file(&job);
    assert!(!ok);
    for want in
        ["accelerators: \"H100\" is not MODEL:COUNT", "duration: \"3 weeks\" is not a duration", "gpus: unknown field"]
    {
        assert!(err.contains(want), "{want}: {err}");
    }
}
