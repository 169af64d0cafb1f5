//! The job scenario file: the placer's config inline, the job mix and arrival rate, and cloud
//! events (capacity crunches). Validated with paths, every error at once.

use std::time::Duration;

use serde::Deserialize;
use switchyard_core::Time;
use switchyard_placer::date::{parse_duration, parse_time};
use switchyard_placer::job::{Workload, parse_accelerators};
use switchyard_placer::{LoadError, PlacerConfig};

/// One kind of job in the mix.
#[derive(Clone, Debug)]
pub struct JobKind {
    pub name: String,
    pub share: f64,
    pub workload: Workload,
    pub accelerator: String,
    pub per_node: u32,
    pub nodes: (u32, u32),
    pub hours: (f64, f64),
    pub jurisdictions: Vec<String>,
    pub spot: bool,
    pub checkpoint_every: Option<Duration>,
}

/// A cloud's capacity cut to `share` of its pools' capacity for a window.
#[derive(Clone, Debug)]
pub struct Crunch {
    pub cloud: String,
    pub from: Time,
    pub until: Time,
    pub share: f64,
}

#[derive(Clone, Debug)]
pub struct JobScenario {
    pub name: String,
    pub start: Time,
    pub days: f64,
    pub placer: PlacerConfig,
    pub arrivals_per_day: f64,
    pub mix: Vec<JobKind>,
    pub crunches: Vec<Crunch>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    kind: String,
    name: String,
    start: String,
    days: f64,
    placer: serde_json::Value,
    arrivals_per_day: f64,
    mix: Vec<RawKind>,
    #[serde(default)]
    events: Vec<RawEvent>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKind {
    name: String,
    share: f64,
    workload: String,
    accelerators: String,
    nodes: [u32; 2],
    hours: [f64; 2],
    #[serde(default)]
    jurisdictions: Vec<String>,
    #[serde(default)]
    spot: bool,
    checkpoint_every: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvent {
    kind: String,
    cloud: String,
    from_day: f64,
    until_day: f64,
    share: f64,
}

impl JobScenario {
    pub fn from_yaml(text: &str) -> Result<JobScenario, LoadError> {
        let value: serde_json::Value = serde_saphyr::from_str(text).map_err(|e| LoadError::Parse(e.to_string()))?;
        let raw: Raw = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            LoadError::Invalid(vec![format!("{path}: {}", e.into_inner())])
        })?;
        let mut errors = Vec::new();
        if raw.kind != "jobs" {
            errors.push("kind: must be `jobs` for a job scenario".to_owned());
        }
        let start = parse_time(&raw.start).map_err(|e| errors.push(format!("start: {e}"))).unwrap_or_default();
        if !(raw.days > 0.0 && raw.days <= 400.0) {
            errors.push("days: must be > 0 and at most 400".to_owned());
        }
        if !(raw.arrivals_per_day > 0.0 && raw.arrivals_per_day <= 10_000.0) {
            errors.push("arrivals_per_day: must be > 0 and at most 10000".to_owned());
        }
        let placer_text = serde_json::to_string(&raw.placer).unwrap_or_default();
        let placer =
            PlacerConfig::from_yaml(&placer_text, &|p| Err(format!("a scenario's placer reads no files ({p})")))
                .map_err(|e| errors.extend(e.lines().into_iter().map(|l| format!("placer.{l}"))))
                .ok();
        let mut mix = Vec::new();
        for (i, k) in raw.mix.into_iter().enumerate() {
            let path = format!("mix[{i}]");
            let (accelerator, per_node) = parse_accelerators(&k.accelerators).unwrap_or_else(|e| {
                errors.push(format!("{path}.accelerators: {e}"));
                (String::new(), 1)
            });
            let workload = Workload::parse(&k.workload).unwrap_or_else(|| {
                errors.push(format!("{path}.workload: unknown workload {:?}", k.workload));
                Workload::Batch
            });
            if !(k.share > 0.0 && k.share.is_finite()) {
                errors.push(format!("{path}.share: must be > 0"));
            }
            if k.nodes[0] == 0 || k.nodes[0] > k.nodes[1] || k.nodes[1] > 1_000 {
                errors.push(format!("{path}.nodes: must be [min, max] with 1 <= min <= max <= 1000"));
            }
            if !(k.hours[0] > 0.0 && k.hours[0] <= k.hours[1] && k.hours[1] <= 24.0 * 365.0) {
                errors.push(format!("{path}.hours: must be [min, max] with 0 < min <= max <= a year"));
            }
            let checkpoint_every = k.checkpoint_every.and_then(|c| {
                parse_duration(&c).map_err(|e| errors.push(format!("{path}.checkpoint_every: {e}"))).ok()
            });
            mix.push(JobKind {
                name: k.name,
                share: k.share,
                workload,
                accelerator,
                per_node,
                nodes: (k.nodes[0], k.nodes[1]),
                hours: (k.hours[0], k.hours[1]),
                jurisdictions: k.jurisdictions,
                spot: k.spot,
                checkpoint_every,
            });
        }
        if mix.is_empty() {
            errors.push("mix: at least one kind of job is required".to_owned());
        }
        let day = |d: f64| start + Duration::from_secs_f64(d.clamp(0.0, 400.0) * 86_400.0);
        let mut crunches = Vec::new();
        for (i, e) in raw.events.into_iter().enumerate() {
            let path = format!("events[{i}]");
            if e.kind != "capacity" {
                errors.push(format!("{path}.kind: unknown event {:?} (expected capacity)", e.kind));
            }
            if placer.as_ref().is_some_and(|p| !p.clouds.contains(&e.cloud)) {
                errors.push(format!("{path}.cloud: unknown cloud {:?}", e.cloud));
            }
            if !(0.0..=1.0).contains(&e.share) {
                errors.push(format!("{path}.share: must be between 0 and 1"));
            }
            if !(e.from_day >= 0.0 && e.from_day < e.until_day) {
                errors.push(format!("{path}: from_day must be >= 0 and before until_day"));
            }
            crunches.push(Crunch { cloud: e.cloud, from: day(e.from_day), until: day(e.until_day), share: e.share });
        }
        match placer {
            Some(placer) if errors.is_empty() => Ok(JobScenario {
                name: raw.name,
                start,
                days: raw.days,
                placer,
                arrivals_per_day: raw.arrivals_per_day,
                mix,
                crunches,
            }),
            _ => Err(LoadError::Invalid(errors)),
        }
    }

    pub fn end(&self) -> Time {
        self.start + Duration::from_secs_f64(self.days * 86_400.0)
    }
}
