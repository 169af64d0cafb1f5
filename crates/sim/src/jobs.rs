//! The job-placement simulator: a month (or any span) of GPU jobs arriving over the catalog,
//! with capacity crunches on a cloud and spot preemptions, placed by the placer's own optimizer
//! under different policies side by side: ours, the cheapest list price, and a single cloud.
//! Reports wait time, cost and commitment burn. Same scenario and seed, same report.

pub mod engine;
pub mod report;
pub mod scenario;

pub use engine::{JobPolicy, simulate};
pub use report::{JobReport, table};
pub use scenario::JobScenario;

/// Whether a scenario file is a job-placement scenario (`kind: jobs` at the top).
pub fn is_job_scenario(text: &str) -> bool {
    serde_saphyr::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| v.get("kind").and_then(|k| k.as_str().map(|s| s == "jobs")))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests;
