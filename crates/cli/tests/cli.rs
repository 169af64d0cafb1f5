//! The binary as a process: check-config, hash-key, sim, a closed stdout, emulate's admin address.

use std::process::Command;

fn switchyard(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard")).args(args).output().expect("the binary runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn example(name: &str) -> String {
    format!("{}/../../examples/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn shipped_examples_are_valid() {
    // The demo's made-up credentials, as its header says to export them.
    let demo_env = [
        ("DEMO_AWS_ACCESS_KEY_ID", "x"),
        ("DEMO_AWS_SECRET_ACCESS_KEY", "y"),
        ("DEMO_ONPREM_API_KEY", "z"),
        ("DEMO_AZURE_API_KEY", "a"),
        ("DEMO_GEMINI_API_KEY", "g"),
        // A key used only by tests: the demo makes its own at start.
        ("DEMO_OCI_PRIVATE_KEY", include_str!("../../../tests/oci/test_key.pem")),
    ];
    for name in ["quickstart.yaml", "demo.yaml"] {
        let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .args(["check-config", &example(name)])
            .envs(demo_env)
            .output()
            .expect("the binary runs");
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{name}: {stderr}");
        assert!(stdout.starts_with("config ok:"), "{stdout}");
    }
}

/// The protocols example takes its credentials from the environment; without them,
/// check-config names each missing one by its path.
#[test]
fn the_protocols_example_needs_its_credentials_and_says_which() {
    let check = |env: &[(&str, &str)]| {
        let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .args(["check-config", &example("protocols.yaml")])
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("ANTHROPIC_API_KEY")
            .env_remove("AZURE_OPENAI_API_KEY")
            .env_remove("OCI_PRIVATE_KEY")
            .env_remove("GEMINI_API_KEY")
            .envs(env.iter().copied())
            .output()
            .expect("the binary runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let oci_key = std::fs::read_to_string(format!("{}/../../tests/oci/test_key.pem", env!("CARGO_MANIFEST_DIR")))
        .expect("the test key");
    let (ok, stdout, stderr) = check(&[
        ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
        ("ANTHROPIC_API_KEY", "sk-ant-local"),
        ("AZURE_OPENAI_API_KEY", "azure-local"),
        ("OCI_PRIVATE_KEY", &oci_key),
        ("GEMINI_API_KEY", "gemini-local"),
    ]);
    assert!(ok && stdout.starts_with("config ok:"), "{stdout}{stderr}");
    let (ok, _, stderr) = check(&[("ANTHROPIC_API_KEY", "sk-ant-local")]);
    assert!(!ok);
    for missing in [
        "clouds[0].aws.access_key_id: environment variable AWS_ACCESS_KEY_ID is not set",
        "clouds[0].aws.secret_access_key: environment variable AWS_SECRET_ACCESS_KEY is not set",
        "clouds[3].oci.private_key: environment variable OCI_PRIVATE_KEY is not set",
        "clouds[4].oci.private_key: environment variable OCI_PRIVATE_KEY is not set",
        "clouds[5].api_key: environment variable AZURE_OPENAI_API_KEY is not set",
        "clouds[6].api_key: environment variable GEMINI_API_KEY is not set",
    ] {
        assert!(stderr.contains(missing), "{stderr}");
    }
}

#[test]
fn check_config_lists_every_error_with_its_path_and_fails() {
    let text = std::fs::read_to_string(example("quickstart.yaml"))
        .unwrap()
        .replace("input_per_mtok: 0.15", "input_per_mtok: -0.15")
        .replace("policy: balanced", "policy: cheapest");
    let path = std::env::temp_dir().join(format!("switchyard-bad-{}.yaml", std::process::id()));
    std::fs::write(&path, text).unwrap();
    let (ok, _, stderr) = switchyard(&["check-config", path.to_str().unwrap()]);
    let _ = std::fs::remove_file(&path);
    assert!(!ok);
    assert!(stderr.contains("deployments[0].price.input_per_mtok: must be >= 0"), "{stderr}");
    assert!(stderr.contains("aliases[0].policy: unknown policy \"cheapest\""), "{stderr}");
}

#[test]
fn hash_key_prints_the_stored_form() {
    let (ok, stdout, _) = switchyard(&["hash-key", "sk-local-dev"]);
    assert!(ok);
    assert_eq!(stdout.trim(), "sha256:39f9742666377d1b2d177efec3c73c95112c6c70f9ffe9b49abd1a2523295b86");
}

/// Runs the binary with its stdout a pipe whose read end is already closed, as after
/// `switchyard ... | head -1` once `head` has exited: every write fails with EPIPE.
fn switchyard_with_closed_stdout(args: &[&str]) -> (std::process::ExitStatus, String) {
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(args)
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("the binary runs");
    (out.status, String::from_utf8_lossy(&out.stderr).into_owned())
}

fn assert_clean_exit(args: &[&str]) {
    let (status, stderr) = switchyard_with_closed_stdout(args);
    assert!(!stderr.contains("panicked"), "{args:?} panicked:\n{stderr}");
    assert!(status.success(), "{args:?} exited with {status}:\n{stderr}");
    assert!(stderr.is_empty(), "{args:?} wrote to stderr:\n{stderr}");
}

#[test]
fn a_closed_stdout_is_a_clean_exit() {
    assert_clean_exit(&["check-config", &example("quickstart.yaml")]);
    assert_clean_exit(&["hash-key", "sk-local-dev"]);
    assert_clean_exit(&["--help"]);
    // The demo stops at its first line of output, before any traffic.
    let report = std::env::temp_dir().join(format!("switchyard-demo-closed-{}.md", std::process::id()));
    assert_clean_exit(&["demo", "--report", report.to_str().unwrap()]);
    assert!(!report.exists(), "the demo should have stopped before writing its report");
}

#[test]
fn sim_with_a_closed_stdout_is_a_clean_exit() {
    let scenario = std::fs::read_to_string(format!("{}/../../scenarios/brownout.yaml", env!("CARGO_MANIFEST_DIR")))
        .unwrap()
        .replace("duration_s: 3600", "duration_s: 20")
        .replace("step_s: 30", "step_s: 5")
        .replace("rate_per_s: 120", "rate_per_s: 5");
    let dir = std::env::temp_dir().join(format!("switchyard-sim-closed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("scenario.yaml");
    std::fs::write(&path, scenario).unwrap();
    let out = dir.join("out");
    let (status, stderr) = switchyard_with_closed_stdout(&[
        "sim",
        path.to_str().unwrap(),
        "--policy",
        "cost",
        "--out",
        out.to_str().unwrap(),
    ]);
    let wrote_reports = out.join("report.json").exists();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(status.success(), "{status}: {stderr}");
    assert!(wrote_reports);
}

#[test]
fn check_config_reports_shape_errors_from_every_section_at_once() {
    let text = std::fs::read_to_string(example("quickstart.yaml"))
        .unwrap()
        .replace("    region: eu-west\n", "    region: eu-west\n    zone: b\n")
        .replace("jurisdictions: [us, eu]", "jurisdictions: 7")
        .replace("clouds:\n", "cloud_defaults: {}\nclouds:\n");
    let path = std::env::temp_dir().join(format!("switchyard-shape-{}.yaml", std::process::id()));
    std::fs::write(&path, text).unwrap();
    let (ok, _, stderr) = switchyard(&["check-config", path.to_str().unwrap()]);
    let _ = std::fs::remove_file(&path);
    assert!(!ok);
    assert!(stderr.contains("cloud_defaults: unknown field `cloud_defaults`"), "{stderr}");
    assert!(stderr.contains("deployments[1].zone: unknown field `zone`"), "{stderr}");
    assert!(stderr.contains("tenants[0].jurisdictions: invalid type: integer `7`, expected a sequence"), "{stderr}");
}

#[test]
fn emulate_refuses_a_remote_admin_address() {
    let (ok, _, stderr) = switchyard(&["emulate", "--config", &example("quickstart.yaml"), "--admin", "0.0.0.0:9100"]);
    assert!(!ok);
    assert!(stderr.contains("the admin API may only listen on a loopback address"), "{stderr}");
    assert!(stderr.contains("--admin-allow-remote"), "{stderr}");
}
