//! A fixed test world: a small catalog with round test prices (not market prices) and a config
//! over it, so that tests check relative decisions, never live figures.

use switchyard_core::Time;

use crate::config::PlacerConfig;
use crate::date::parse_time;
use crate::job::JobSpec;

pub(crate) const CATALOG: &str = r#"
as_of: 2026-12-01
regions:
  - { cloud: aws, region: us-east-1, jurisdiction: us }
  - { cloud: aws, region: eu-north-1, jurisdiction: eu }
  - { cloud: azure, region: eastus, jurisdiction: us }
  - { cloud: azure, region: swedencentral, jurisdiction: eu }
  - { cloud: oci, region: us-chicago-1, jurisdiction: us }
  - { cloud: oci, region: eu-frankfurt-1, jurisdiction: eu }
  - { cloud: gcp, region: asia-northeast1, jurisdiction: jp }
offerings:
  - { cloud: aws, region: us-east-1, instance: p5, accelerator: H100, gpus: 8, kind: on_demand, usd_per_hour: 80, source: "https://test", checked: 2026-12-01 }
  - { cloud: aws, region: us-east-1, instance: p5, accelerator: H100, gpus: 8, kind: spot, usd_per_hour: 30, source: "https://test", checked: 2026-12-01 }
  - { cloud: aws, region: eu-north-1, instance: p5, accelerator: H100, gpus: 8, kind: on_demand, usd_per_hour: 88, source: "https://test", checked: 2026-12-01 }
  - { cloud: azure, region: eastus, instance: nd-h100, accelerator: H100, gpus: 8, kind: on_demand, usd_per_hour: 96, source: "https://test", checked: 2026-12-01 }
  - { cloud: azure, region: swedencentral, instance: nd-h100, accelerator: H100, gpus: 8, kind: on_demand, usd_per_hour: 100, source: "https://test", checked: 2026-12-01 }
  - { cloud: oci, region: us-chicago-1, instance: bm-h100, accelerator: H100, gpus: 8, kind: on_demand, usd_per_hour: 80, source: "https://test", checked: 2026-12-01 }
  - { cloud: oci, region: eu-frankfurt-1, instance: bm-h100, accelerator: H100, gpus: 8, kind: on_demand, usd_per_hour: 80, source: "https://test", checked: 2026-12-01 }
  - { cloud: gcp, region: asia-northeast1, instance: a3, accelerator: H100, gpus: 8, kind: on_demand, usd_per_hour: 70, source: "https://test", checked: 2026-12-01 }
  - { cloud: azure, region: eastus, instance: nd-gb200, accelerator: GB200, gpus: 4, kind: contract, source: "https://test", checked: 2026-12-01 }
  - { cloud: aws, region: us-east-1, instance: p5, accelerator: H100, gpus: 8, kind: reserved, usd_per_hour: 50, source: "https://test", checked: 2026-12-01 }
"#;

pub(crate) const CONFIG: &str = r#"
catalog: test-catalog.yaml
workloads:
  training: { prefer: [azure] }
  research: { prefer: [oci], only: [oci, gcp] }
spot: { interruptions_per_hour: 0.1, restart: 10m }
pools:
  - { cloud: aws, region: us-east-1, accelerator: H100, capacity: 64, quota: 48 }
  - { cloud: aws, region: eu-north-1, accelerator: H100, capacity: 16 }
  - { cloud: azure, region: eastus, accelerator: H100, capacity: 32 }
  - { cloud: azure, region: swedencentral, accelerator: H100, capacity: 32 }
  - { cloud: oci, region: us-chicago-1, accelerator: H100, capacity: 32 }
  - { cloud: oci, region: eu-frankfurt-1, accelerator: H100, capacity: 16 }
  - { cloud: gcp, region: asia-northeast1, accelerator: H100, capacity: 16 }
"#;

pub(crate) fn read(path: &str) -> Result<String, String> {
    match path {
        "test-catalog.yaml" => Ok(CATALOG.to_owned()),
        other => Err(format!("cannot read {other}")),
    }
}

pub(crate) fn config() -> PlacerConfig {
    config_with("")
}

/// The test config with `extra` YAML sections appended.
pub(crate) fn config_with(extra: &str) -> PlacerConfig {
    PlacerConfig::from_yaml(&format!("{CONFIG}{extra}"), &read).unwrap_or_else(|e| panic!("{e}"))
}

pub(crate) fn now() -> Time {
    parse_time("2026-12-01T12:00:00Z").expect("a date")
}

pub(crate) fn job(extra: &str) -> JobSpec {
    let base = "name: test-job\naccelerators: H100:8\nduration: 10h\nrun: train\n";
    JobSpec::from_yaml(&format!("{base}{extra}")).unwrap_or_else(|e| panic!("{e}"))
}
