//! The job spec (`JOB.yaml`): what to run, on which accelerators, where it may run, and how to
//! resume it. Validated like the gateway's config: unknown fields are errors, and every error is
//! reported at once with its path.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use switchyard_core::Time;

use crate::LoadError;
use crate::date::{parse_duration, parse_time};
use crate::yaml::{self, Fields, check_jurisdiction, check_name};

/// A job's workload class; the placer's workload rules (`training → azure first`) key on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Workload {
    Training,
    Batch,
    Research,
    Inference,
}

impl Workload {
    pub const ALL: [Workload; 4] = [Workload::Training, Workload::Batch, Workload::Research, Workload::Inference];

    pub fn parse(text: &str) -> Option<Workload> {
        Workload::ALL.into_iter().find(|w| w.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Workload::Training => "training",
            Workload::Batch => "batch",
            Workload::Research => "research",
            Workload::Inference => "inference",
        }
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What ranks the candidates that pass every filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Objective {
    /// The lowest effective cost (the default).
    Cost,
    /// The earliest expected finish.
    Finish,
}

/// How a job resumes after it is re-placed: the command that picks up from its checkpoints,
/// which it writes itself under `$SWITCHYARD_CHECKPOINT_DIR`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    pub resume: String,
    /// How often the job writes a checkpoint: what a preemption loses, at most.
    pub every: Duration,
}

#[derive(Clone, Debug, PartialEq)]
pub struct JobSpec {
    pub name: String,
    /// Accelerator model, as the catalog names it (`H100`, `GB200`, `MI300X`).
    pub accelerator: String,
    /// Accelerators per node.
    pub per_node: u32,
    pub nodes: u32,
    /// The estimated run time on the requested accelerators.
    pub duration: Duration,
    pub deadline: Option<Time>,
    /// Allowed jurisdictions; empty means any.
    pub jurisdictions: Vec<String>,
    pub workload: Workload,
    pub spot: bool,
    pub objective: Objective,
    pub run: String,
    pub env: BTreeMap<String, String>,
    pub checkpoint: Option<Checkpoint>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheckpoint {
    resume: String,
    every: Option<String>,
}

const FIELDS: &[&str] = &[
    "name",
    "accelerators",
    "nodes",
    "duration",
    "deadline",
    "jurisdictions",
    "workload",
    "spot",
    "objective",
    "run",
    "env",
    "checkpoint",
];

/// The most accelerators one node or one job may ask for.
const MAX_PER_NODE: u32 = 1_024;
const MAX_NODES: u32 = 4_096;

impl JobSpec {
    /// Parses and validates a job spec.
    pub fn from_yaml(text: &str) -> Result<JobSpec, LoadError> {
        JobSpec::from_value(yaml::parse(text)?)
    }

    pub fn from_value(value: serde_json::Value) -> Result<JobSpec, LoadError> {
        let mut errors = Vec::new();
        let mut f = Fields::new(value, "", FIELDS, &mut errors);
        let name: Option<String> = f.required("name", &mut errors);
        let accelerators: Option<String> = f.required("accelerators", &mut errors);
        let nodes: Option<u32> = f.optional("nodes", &mut errors);
        let duration: Option<String> = f.required("duration", &mut errors);
        let deadline: Option<String> = f.optional("deadline", &mut errors);
        let jurisdictions: Option<Vec<String>> = f.optional("jurisdictions", &mut errors);
        let workload: Option<String> = f.optional("workload", &mut errors);
        let spot: Option<bool> = f.optional("spot", &mut errors);
        let objective: Option<String> = f.optional("objective", &mut errors);
        let run: Option<String> = f.required("run", &mut errors);
        let env: Option<BTreeMap<String, String>> = f.optional("env", &mut errors);
        let checkpoint: Option<RawCheckpoint> = f.optional("checkpoint", &mut errors);
        f.finish(&mut errors);

        if let Some(name) = &name {
            check_name(name, "name", &mut errors);
        }
        let (accelerator, per_node) = match accelerators.as_deref().map(parse_accelerators) {
            Some(Ok(pair)) => pair,
            Some(Err(e)) => {
                errors.push(format!("accelerators: {e}"));
                (String::new(), 0)
            }
            None => (String::new(), 0),
        };
        let nodes = nodes.unwrap_or(1);
        if !(1..=MAX_NODES).contains(&nodes) {
            errors.push(format!("nodes: must be between 1 and {MAX_NODES}"));
        }
        let duration = duration.map_or(Ok(Duration::ZERO), |d| parse_duration(&d)).unwrap_or_else(|e| {
            errors.push(format!("duration: {e}"));
            Duration::ZERO
        });
        let deadline = deadline.and_then(|d| parse_time(&d).map_err(|e| errors.push(format!("deadline: {e}"))).ok());
        let jurisdictions = jurisdictions.unwrap_or_default();
        for (i, j) in jurisdictions.iter().enumerate() {
            check_jurisdiction(j, &format!("jurisdictions[{i}]"), &mut errors);
        }
        let workload = match workload.as_deref() {
            None => Workload::Batch,
            Some(w) => Workload::parse(w).unwrap_or_else(|| {
                errors.push(format!(
                    "workload: unknown workload {w:?} (expected training, batch, research or inference)"
                ));
                Workload::Batch
            }),
        };
        let objective = match objective.as_deref() {
            None | Some("cost") => Objective::Cost,
            Some("finish") => Objective::Finish,
            Some(other) => {
                errors.push(format!("objective: unknown objective {other:?} (expected cost or finish)"));
                Objective::Cost
            }
        };
        if run.as_deref().is_some_and(|r| r.trim().is_empty()) {
            errors.push("run: must not be empty".to_owned());
        }
        let env = env.unwrap_or_default();
        for key in env.keys() {
            let ok = !key.is_empty()
                && !key.starts_with(|c: char| c.is_ascii_digit())
                && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ok {
                errors.push(format!("env.{key}: not a valid environment variable name"));
            } else if key.starts_with("SWITCHYARD_") || key == "CUDA_VISIBLE_DEVICES" {
                errors.push(format!("env.{key}: set by the placer, not by the job"));
            }
        }
        let checkpoint = checkpoint.map(|c| {
            if c.resume.trim().is_empty() {
                errors.push("checkpoint.resume: must not be empty".to_owned());
            }
            let every = c.every.map_or(Ok(Duration::from_secs(1_800)), |e| parse_duration(&e)).unwrap_or_else(|e| {
                errors.push(format!("checkpoint.every: {e}"));
                Duration::from_secs(1_800)
            });
            Checkpoint { resume: c.resume, every }
        });
        let spec = JobSpec {
            name: name.unwrap_or_default(),
            accelerator,
            per_node,
            nodes,
            duration,
            deadline,
            jurisdictions,
            workload,
            spot: spot.unwrap_or(false),
            objective,
            run: run.unwrap_or_default(),
            env,
            checkpoint,
        };
        yaml::done(spec, errors)
    }

    /// Accelerators the whole job holds: per node times nodes.
    pub fn gpus(&self) -> u32 {
        self.per_node.saturating_mul(self.nodes)
    }

    /// Whether `jurisdiction` is allowed for this job.
    pub fn allows(&self, jurisdiction: &str) -> bool {
        self.jurisdictions.is_empty() || self.jurisdictions.iter().any(|j| j == jurisdiction)
    }
}

/// `H100:8` → (`H100`, 8). The model is letters and digits; the count 1 to 1,024.
pub fn parse_accelerators(text: &str) -> Result<(String, u32), String> {
    let bad = || format!("{text:?} is not MODEL:COUNT, such as H100:8 or GB200:72");
    let (model, count) = text.split_once(':').ok_or_else(bad)?;
    let model_ok = !model.is_empty()
        && model.len() <= 32
        && model.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && model.starts_with(|c: char| c.is_ascii_alphabetic());
    let count: u32 = count.parse().map_err(|_| bad())?;
    if !model_ok {
        return Err(bad());
    }
    if !(1..=MAX_PER_NODE).contains(&count) {
        return Err(format!("{text:?}: the count must be between 1 and {MAX_PER_NODE}"));
    }
    Ok((model.to_ascii_uppercase(), count))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name: llama-70b-finetune
accelerators: H100:8
nodes: 2
duration: 36h
deadline: 2026-12-10T00:00:00Z
jurisdictions: [eu]
workload: training
spot: false
run: python train.py
env: { EPOCHS: "3" }
checkpoint: { resume: python train.py --resume, every: 20m }
"#;

    #[test]
    fn a_full_spec_parses() {
        let job = JobSpec::from_yaml(GOOD).unwrap();
        assert_eq!((job.accelerator.as_str(), job.per_node, job.nodes, job.gpus()), ("H100", 8, 2, 16));
        assert_eq!(job.duration, Duration::from_secs(36 * 3600));
        assert_eq!(job.workload, Workload::Training);
        assert!(job.allows("eu") && !job.allows("us"));
        assert_eq!(job.checkpoint.unwrap().every, Duration::from_secs(1200));
        assert_eq!(job.env["EPOCHS"], "3");
    }

    #[test]
    fn every_error_is_reported_with_its_path() {
        let text = r#"
name: "bad name!"
accelerators: H100x8
nodes: 0
duration: forever
deadline: tomorrow
jurisdictions: [EU]
workload: gaming
spot: "yes"
run: ""
env: { CUDA_VISIBLE_DEVICES: "0", "1X": a }
checkpoint: { resume: x, sometimes: true }
gpus: 8
"#;
        let errors = JobSpec::from_yaml(text).unwrap_err().lines();
        let want = [
            "name: must be",
            "accelerators: \"H100x8\" is not MODEL:COUNT",
            "nodes: must be between 1",
            "duration: \"forever\" is not a duration",
            "deadline: \"tomorrow\" is not a date",
            "jurisdictions[0]: must be a lower-case code",
            "workload: unknown workload \"gaming\"",
            "spot: invalid type",
            "run: must not be empty",
            "env.CUDA_VISIBLE_DEVICES: set by the placer",
            "env.1X: not a valid environment variable name",
            "checkpoint.sometimes: unknown field",
            "gpus: unknown field `gpus`",
        ];
        for w in want {
            assert!(errors.iter().any(|e| e.starts_with(w)), "missing {w:?} in {errors:#?}");
        }
    }

    #[test]
    fn missing_fields_are_named() {
        let errors = JobSpec::from_yaml("nodes: 1").unwrap_err().lines();
        for field in ["name", "accelerators", "duration", "run"] {
            assert!(errors.iter().any(|e| e == &format!("{field}: missing field `{field}`")), "{errors:?}");
        }
    }
}
