//! The placer's config: overlays, pools, commitments in the gateway's shape, every error at once.

use super::*;
use crate::testing::{CONFIG, read};

#[test]
fn the_test_config_loads_with_defaults() {
    let c = PlacerConfig::from_yaml(CONFIG, &read).unwrap();
    assert_eq!(c.pools.len(), 7);
    assert_eq!(c.engines[0], EngineSpec { name: "local".into(), kind: EngineKind::Local });
    assert_eq!(c.retries.max_replacements, 3);
    assert_eq!(c.blocks.no_capacity, Duration::from_secs(600));
    assert_eq!(c.rules[&Workload::Training].prefer, ["azure"]);
    assert_eq!(c.clouds, ["aws", "azure", "gcp", "oci"]);
}

#[test]
fn without_a_catalog_path_the_shipped_catalog_is_used() {
    let text = "pools:\n  - { cloud: oci, region: eu-frankfurt-1, accelerator: H100, capacity: 16 }\n";
    let c = PlacerConfig::from_yaml(text, &|p| Err(format!("no {p}"))).unwrap();
    assert!(c.offering("oci/eu-frankfurt-1/BM.GPU.H100.8/on_demand").is_some());
}

#[test]
fn negotiated_prices_override_and_discount() {
    let extra = "prices:\n  - { name: aws-edp, cloud: aws, discount: 0.25 }\n  - { name: azure-deal, cloud: azure, region: eastus, usd_per_hour: 60 }\n";
    let c = PlacerConfig::from_yaml(&format!("{CONFIG}{extra}"), &read).unwrap();
    let aws = c.offering("aws/us-east-1/p5/on_demand").unwrap();
    assert_eq!((aws.usd_per_hour, aws.negotiated.as_deref()), (Some(60.0), Some("aws-edp")));
    assert_eq!(aws.list_usd_per_hour, Some(80.0));
    assert_eq!(c.offering("azure/eastus/nd-h100/on_demand").unwrap().usd_per_hour, Some(60.0));
    assert_eq!(c.offering("azure/swedencentral/nd-h100/on_demand").unwrap().usd_per_hour, Some(100.0));
}

#[test]
fn every_error_is_reported_with_its_path() {
    let text = r#"
catalog: test-catalog.yaml
pools:
  - { cloud: aws, region: us-east-1, accelerator: H100, capacity: 64 }
  - { cloud: aws, region: eu-north-1, accelerator: H100, capacity: 8 }
  - { cloud: aws, region: us-east-1, accelerator: B200, capacity: 8 }
  - { cloud: aws, region: eu-north-1, accelerator: H100, engine: ray-9 }
prices:
  - { name: x, cloud: aws, discount: 1.5 }
  - { name: deal-2, cloud: nowhere, usd_per_hour: 5 }
reservations:
  - { name: r, cloud: aws, region: us-east-1, instance: p9, instances: 1, until: 2027-01-01 }
commitments:
  - { name: c, cloud: azure, amount_usd: -1, term_days: 365, deployments: [a] }
  - { name: d, cloud: ibm, amount_usd: 1, term_days: 1 }
workloads:
  training: { prefer: [ibm] }
  gaming: {}
spot: { interruptions_per_hour: 99 }
blocks: { quota: forever }
engines:
  - { name: ray-1, kind: ray, address: "127.0.0.1:8265", token: "s3cret" }
  - { name: k8s, kind: kubernetes, address: "http://x" }
colour: blue
"#;
    let errors = PlacerConfig::from_yaml(text, &read).unwrap_err().lines();
    let want = [
        "colour: unknown field `colour`",
        "prices[0].discount: must be at least 0 and below 1",
        "prices[1]: matches no catalog offering",
        "reservations[0]: the catalog has no p9 in aws/us-east-1",
        "pools[2]: the catalog has no B200 offering in aws/us-east-1",
        "pools[3]: duplicate pool aws/eu-north-1/H100",
        "pools[3].engine: unknown engine \"ray-9\"",
        "commitments_as_of: required with commitments",
        "commitments[0].amount_usd: must be > 0",
        "commitments[0].deployments: not used by the placer",
        "commitments[1].cloud: unknown cloud \"ibm\"",
        "workloads.training.prefer[0]: unknown cloud \"ibm\"",
        "workloads.gaming: unknown workload",
        "spot.interruptions_per_hour: must be between 0 and 10",
        "blocks.quota: \"forever\" is not a duration",
        "engines[0].address: must be an http:// or https:// URL",
        "engines[0].token: must be a reference",
        "engines[1].kind: unknown engine kind \"kubernetes\"",
    ];
    for w in want {
        assert!(errors.iter().any(|e| e.starts_with(w)), "missing {w:?} in {errors:#?}");
    }
}

#[test]
fn commitments_use_the_gateway_shape_and_pace() {
    let extra = "commitments_as_of: 2026-12-01\ncommitments:\n  - { name: azure-macc, cloud: azure, amount_usd: 365000, term_days: 365, elapsed_days: 100, spent_usd: 50000 }\n";
    let c = PlacerConfig::from_yaml(&format!("{CONFIG}{extra}"), &read).unwrap();
    let m = c.commitment_of("azure").unwrap();
    assert_eq!(c.clouds[usize::from(m.cloud.0)], "azure");
    assert!((m.pace(Duration::ZERO) - 100_000.0).abs() < 1e-6);
    assert!(c.commitment_of("aws").is_none());
}
