//! A job's life after each attempt: finished, failed by its own fault, re-placed elsewhere
//! (resuming from its checkpoint), or given up. "Cannot reach the job" is kept apart from "the
//! job failed": only an engine that stays unreachable past `lost_after` turns into a lost
//! cluster, and a lost cluster is re-placed, never reported as the job's failure.

use std::fmt;

use switchyard_core::Time;

use crate::block::{Failure, FailureClass};
use crate::config::Retries;

/// Where a job stands, as stored and shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    /// Accepted, not yet provisioned.
    Queued,
    Provisioning,
    Running,
    /// Running as far as we know, but its engine cannot be reached right now.
    Unreachable,
    Succeeded,
    /// The job itself failed (non-zero exit, refused spec).
    Failed,
    Cancelled,
    /// Nothing fits: every candidate was rejected.
    Unplaceable,
    /// Re-placed as often as allowed, and lost again.
    Lost,
}

impl Status {
    pub const ALL: [Status; 9] = [
        Status::Queued,
        Status::Provisioning,
        Status::Running,
        Status::Unreachable,
        Status::Succeeded,
        Status::Failed,
        Status::Cancelled,
        Status::Unplaceable,
        Status::Lost,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Provisioning => "provisioning",
            Status::Running => "running",
            Status::Unreachable => "unreachable",
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
            Status::Unplaceable => "unplaceable",
            Status::Lost => "lost",
        }
    }

    pub fn parse(text: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Whether nothing more will happen to the job.
    pub fn is_terminal(self) -> bool {
        match self {
            Status::Queued | Status::Provisioning | Status::Running | Status::Unreachable => false,
            Status::Succeeded | Status::Failed | Status::Cancelled | Status::Unplaceable | Status::Lost => true,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How one attempt of a job ended, as its engine tells it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttemptEnd {
    Succeeded,
    /// The job's own failure: its command exited non-zero, or the engine refused the spec.
    Failed {
        exit_code: Option<i32>,
        detail: String,
    },
    /// Its spot capacity was taken back.
    Preempted(String),
    /// The cluster or node under it went away (killed, or unreachable past `lost_after`).
    ClusterLost(String),
    /// Stopped at our request.
    Cancelled,
}

/// What to do after an attempt ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Next {
    /// Nothing more: the job is in this terminal status.
    Finish(Status, String),
    /// Block the failed place and place the job again; `resume` runs the checkpoint's resume
    /// command instead of `run`.
    Replace { failure: Failure, resume: bool },
}

/// Decides what follows `end`, given the re-placements made so far.
pub fn after_attempt(end: &AttemptEnd, replacements: u32, retries: &Retries, has_checkpoint: bool) -> Next {
    let failure = match end {
        AttemptEnd::Succeeded => return Next::Finish(Status::Succeeded, String::new()),
        AttemptEnd::Cancelled => return Next::Finish(Status::Cancelled, "cancelled".to_owned()),
        AttemptEnd::Failed { exit_code, detail } => {
            let why = match exit_code {
                Some(code) => format!("exited with {code}: {detail}"),
                None => detail.clone(),
            };
            return Next::Finish(Status::Failed, why);
        }
        AttemptEnd::Preempted(detail) => Failure::new(FailureClass::Preempted, detail.clone()),
        AttemptEnd::ClusterLost(detail) => Failure::new(FailureClass::ClusterLost, detail.clone()),
    };
    if replacements >= retries.max_replacements {
        return Next::Finish(Status::Lost, format!("given up after {replacements} re-placements; last: {failure}"));
    }
    Next::Replace { failure, resume: has_checkpoint }
}

/// Whether an engine unreachable since `since` has been gone long enough to count the cluster
/// as lost.
pub fn is_lost(since: Time, now: Time, retries: &Retries) -> bool {
    now.saturating_since(since) >= retries.lost_after
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn retries() -> Retries {
        Retries { max_replacements: 2, lost_after: Duration::from_secs(30), start_timeout: Duration::from_secs(60) }
    }

    #[test]
    fn the_job_failing_is_final_and_a_lost_cluster_is_replaced_within_bounds() {
        let r = retries();
        assert_eq!(after_attempt(&AttemptEnd::Succeeded, 0, &r, true), Next::Finish(Status::Succeeded, String::new()));
        let failed = AttemptEnd::Failed { exit_code: Some(3), detail: "boom".into() };
        assert!(
            matches!(after_attempt(&failed, 0, &r, true), Next::Finish(Status::Failed, why) if why.contains("exited with 3"))
        );
        let lost = AttemptEnd::ClusterLost("raylet gone".into());
        assert_eq!(
            after_attempt(&lost, 1, &r, true),
            Next::Replace { failure: Failure::new(FailureClass::ClusterLost, "raylet gone"), resume: true }
        );
        assert!(matches!(
            after_attempt(&AttemptEnd::Preempted("spot".into()), 0, &r, false),
            Next::Replace { resume: false, .. }
        ));
        assert!(
            matches!(after_attempt(&lost, 2, &r, true), Next::Finish(Status::Lost, why) if why.contains("after 2"))
        );
    }

    #[test]
    fn unreachable_turns_lost_only_after_the_grace_period() {
        let r = retries();
        let since = Time::from_millis(1_000);
        assert!(!is_lost(since, since + Duration::from_secs(29), &r));
        assert!(is_lost(since, since + Duration::from_secs(30), &r));
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
    }
}
