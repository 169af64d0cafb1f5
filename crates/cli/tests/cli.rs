//! The binary's commands that need no network: check-config and hash-key.

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
    for name in ["quickstart.yaml", "demo.yaml"] {
        let (ok, stdout, stderr) = switchyard(&["check-config", &example(name)]);
        assert!(ok, "{name}: {stderr}");
        assert!(stdout.starts_with("config ok:"), "{stdout}");
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
