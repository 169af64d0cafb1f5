//! Synthetic configs for benchmarks and tests: `n` deployments spread over clouds, regions and
//! jurisdictions, one alias over all of them, and a tenant allowed everywhere.

use crate::config::{Config, NoSecrets, key_hash_text};

/// A config with `n` chat deployments across 3 clouds, 4 regions each, in `us` and `eu`.
pub fn synthetic_config(n: usize, policy: &str) -> Config {
    let clouds = ["aws", "azure", "oci"];
    let mut yaml = String::from("clouds:\n");
    for c in clouds {
        yaml.push_str(&format!("  - {{ name: {c}, protocol: openai }}\n"));
    }
    yaml.push_str("deployments:\n");
    let mut names = Vec::new();
    for i in 0..n {
        let cloud = clouds[i % 3];
        let region = format!("r{}", (i / 3) % 4);
        let jurisdiction = if (i / 3) % 2 == 0 { "us" } else { "eu" };
        let name = format!("d{i}");
        yaml.push_str(&format!(
            "  - {{ name: {name}, cloud: {cloud}, region: {region}, jurisdiction: {jurisdiction}, model: m{}, \
             endpoint: \"http://127.0.0.1:{}/v1\", price: {{ input_per_mtok: {}, output_per_mtok: {} }}, \
             limits: {{ concurrency: 64, rpm: 100000, tpm: 100000000 }}, capabilities: {{ context_window: 128000 }} }}\n",
            i % 5,
            10_000 + i,
            1.0 + (i % 7) as f64 * 0.1,
            2.0 + (i % 5) as f64 * 0.2,
        ));
        names.push(name);
    }
    yaml.push_str(&format!("aliases:\n  - {{ name: chat, policy: {policy}, deployments: [{}] }}\n", names.join(", ")));
    yaml.push_str(&format!(
        "tenants:\n  - {{ name: t, keys: [\"{}\"], jurisdictions: [us, eu], aliases: [\"*\"] }}\n",
        key_hash_text("bench")
    ));
    match Config::from_yaml(&yaml, &NoSecrets) {
        Ok(c) => c,
        Err(e) => panic!("synthetic config is invalid: {e}"),
    }
}

/// The request the benchmarks plan: 500 tokens in, up to 200 out, streaming, on `chat`.
pub fn bench_request(config: &Config) -> crate::plan::PlanRequest<'_> {
    crate::plan::PlanRequest {
        alias: config.aliases[0].id,
        tenant: &config.tenants[0],
        input_tokens: 500,
        context_tokens: None,
        max_output_tokens: Some(200),
        needs: crate::plan::Needs { streaming: true, ..crate::plan::Needs::default() },
        min_context_above: 0,
        avoid: None,
        unfit: &[],
    }
}

/// One attempt's life in the router, as the benchmarks measure it: a request arrives, an
/// attempt starts and succeeds.
pub fn attempt_cycle(state: &crate::RouterState, id: crate::DeploymentId, now: crate::Time) {
    state.on_request(crate::config::TenantId(0), now);
    state.begin_attempt(id, crate::config::TenantId(0), 700, now);
    let outcome = crate::state::Outcome::Success {
        ttft: Some(std::time::Duration::from_millis(120)),
        duration: std::time::Duration::from_millis(900),
        output_tokens: 150,
        total_tokens: 650,
    };
    state.end_attempt(id, crate::config::TenantId(0), 700, outcome, now);
}
