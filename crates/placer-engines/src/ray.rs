//! The Ray engine: one Ray cluster (a cloud region) through its Jobs REST API. A pool's free
//! accelerators are read from `/api/cluster_status` (the custom resource named after the
//! accelerator); an attempt is a Ray job asking for that many GPUs and that resource.
//!
//! Ray keeps a job that can never fit `PENDING` until `RAY_JOB_START_TIMEOUT_SECONDS`, and a
//! stop request does not stop a pending job, so submit checks free capacity first and refuses
//! (no capacity) instead of queueing behind a full cluster. Error bodies are plain text.

use std::time::Duration;

use serde_json::{Value, json};
use switchyard_placer::catalog::PoolKey;
use switchyard_placer::{Failure, FailureClass};

use crate::engine::{Engine, EngineError, Launch, RunState};

pub struct RayEngine {
    name: String,
    base: String,
    token: Option<String>,
    client: reqwest::Client,
}

fn fail(class: FailureClass, detail: String) -> EngineError {
    EngineError(Failure::new(class, detail))
}

impl RayEngine {
    /// An engine for the Ray dashboard at `address` (`http://127.0.0.1:8265`), with its bearer
    /// token when the cluster has token auth on.
    pub fn new(name: &str, address: &str, token: Option<String>) -> Result<RayEngine, String> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(15))
            .build()
            .map_err(|e| format!("engine {name}: {e}"))?;
        Ok(RayEngine { name: name.to_owned(), base: address.trim_end_matches('/').to_owned(), token, client })
    }

    /// One request; `Ok((status, body))` for any HTTP answer, the failure class for none.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, String), EngineError> {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.header("content-type", "application/json").body(body.to_string());
        }
        let response = request
            .send()
            .await
            .map_err(|e| fail(FailureClass::Unreachable, format!("Ray cluster {} at {}: {e}", self.name, self.base)))?;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        match status {
            401 | 403 => {
                Err(fail(FailureClass::Auth, format!("Ray cluster {} refused our token ({status})", self.name)))
            }
            _ => Ok((status, text)),
        }
    }

    fn json(&self, status: u16, text: &str, what: &str) -> Result<Value, EngineError> {
        if !(200..300).contains(&status) {
            let first = text.lines().next_back().unwrap_or("").chars().take(200).collect::<String>();
            return Err(fail(
                FailureClass::Unreachable,
                format!("Ray cluster {}: {what}: HTTP {status}: {first}", self.name),
            ));
        }
        serde_json::from_str(text)
            .map_err(|e| fail(FailureClass::Unreachable, format!("Ray cluster {}: {what}: not JSON: {e}", self.name)))
    }

    /// Free units of `resource` on the cluster: the alive nodes' total, less what is in use.
    /// The autoscaler's usage report lags by seconds, so the accelerators that our own pending
    /// and running jobs asked for (in their metadata) count too, whichever is larger.
    async fn free_of(&self, resource: &str) -> Result<u32, EngineError> {
        let (status, text) = self.call(reqwest::Method::GET, "/api/v0/nodes", None).await?;
        let nodes = self.json(status, &text, "nodes")?;
        let total: f64 = nodes["data"]["result"]["result"]
            .as_array()
            .map(|nodes| {
                nodes
                    .iter()
                    .filter(|n| n["state"] == "ALIVE")
                    .map(|n| n["resources_total"][resource].as_f64().unwrap_or(0.0))
                    .sum()
            })
            .unwrap_or(0.0);
        let (status, text) = self.call(reqwest::Method::GET, "/api/cluster_status", None).await?;
        let report = self.json(status, &text, "cluster status")?;
        let reported =
            report["data"]["clusterStatus"]["loadMetricsReport"]["usage"][resource][0].as_f64().unwrap_or(0.0);
        let (status, text) = self.call(reqwest::Method::GET, "/api/jobs/", None).await?;
        let jobs = self.json(status, &text, "jobs")?;
        let ours: f64 = jobs
            .as_array()
            .map(|jobs| {
                jobs.iter()
                    .filter(|j| matches!(j["status"].as_str(), Some("PENDING" | "RUNNING")))
                    .filter(|j| j["metadata"]["switchyard_resource"].as_str() == Some(resource))
                    .filter_map(|j| j["metadata"]["switchyard_gpus"].as_str().and_then(|g| g.parse::<f64>().ok()))
                    .sum()
            })
            .unwrap_or(0.0);
        Ok((total - reported.max(ours)).max(0.0).floor() as u32)
    }
}

impl Engine for RayEngine {
    async fn free(&self, pool: &PoolKey) -> Result<Option<u32>, EngineError> {
        Ok(Some(self.free_of(&pool.accelerator).await?))
    }

    async fn submit(&self, launch: &Launch) -> Result<String, EngineError> {
        let resource = &launch.pool.accelerator;
        let free = self.free_of(resource).await?;
        if free < launch.gpus {
            return Err(fail(
                FailureClass::NoCapacity,
                format!("Ray cluster {}: {free} {resource} free, {} needed", self.name, launch.gpus),
            ));
        }
        let submission_id = format!("switchyard-{}-{}", launch.job_id, launch.attempt);
        let body = json!({
            "entrypoint": launch.command,
            "submission_id": submission_id,
            "entrypoint_num_gpus": launch.gpus,
            "entrypoint_resources": { resource.as_str(): launch.gpus },
            "runtime_env": { "env_vars": launch.env },
            "metadata": {
                "switchyard_job": launch.job_id,
                "switchyard_offering": launch.offering,
                "switchyard_resource": resource,
                "switchyard_gpus": launch.gpus.to_string(),
            },
        });
        let (status, text) = self.call(reqwest::Method::POST, "/api/jobs/", Some(&body)).await?;
        match status {
            200..=299 => Ok(submission_id),
            // A retried submission whose first answer was lost: the job is there.
            500 if text.contains("already exists") => Ok(submission_id),
            400 | 422 => Err(fail(
                FailureClass::InvalidJob,
                format!("Ray cluster {} refused the job: {}", self.name, text.trim()),
            )),
            _ => Err(fail(FailureClass::Unreachable, format!("Ray cluster {}: submit: HTTP {status}", self.name))),
        }
    }

    async fn status(&self, id: &str) -> Result<RunState, EngineError> {
        let (status, text) = self.call(reqwest::Method::GET, &format!("/api/jobs/{id}"), None).await?;
        if status == 404 {
            return Ok(RunState::Gone(format!("Ray cluster {} no longer knows job {id}", self.name)));
        }
        let v = self.json(status, &text, "job status")?;
        let message = v["message"].as_str().unwrap_or("").chars().take(300).collect::<String>();
        Ok(match v["status"].as_str().unwrap_or("") {
            "PENDING" => RunState::Pending,
            "RUNNING" => RunState::Running,
            "SUCCEEDED" => RunState::Succeeded,
            "STOPPED" => RunState::Stopped,
            "FAILED" if v["error_type"].as_str() == Some("JOB_ENTRYPOINT_COMMAND_ERROR") => RunState::Failed {
                exit_code: v["driver_exit_code"].as_i64().and_then(|c| i32::try_from(c).ok()),
                detail: message,
            },
            // The supervisor or its node died, or the job never started: the place failed.
            "FAILED" => RunState::Gone(format!("{}: {message}", v["error_type"].as_str().unwrap_or("FAILED"))),
            other => RunState::Gone(format!("unknown Ray job status {other:?}")),
        })
    }

    async fn logs(&self, id: &str) -> Result<String, EngineError> {
        let (status, text) = self.call(reqwest::Method::GET, &format!("/api/jobs/{id}/logs"), None).await?;
        let v = self.json(status, &text, "job logs")?;
        Ok(v["logs"].as_str().unwrap_or("").to_owned())
    }

    async fn stop(&self, id: &str) -> Result<(), EngineError> {
        let (status, text) = self.call(reqwest::Method::POST, &format!("/api/jobs/{id}/stop"), None).await?;
        self.json(status, &text, "stop").map(|_| ())
    }
}
