//! The arithmetic of effective cost: expected run time on spot capacity, and the shadow price of
//! a commitment running behind its pace.

use std::time::Duration;

use switchyard_core::Time;
use switchyard_core::config::Commitment;

/// Expected wall time of a job of `work` on capacity interrupted `rate` times an hour (a Poisson
/// process), restarting after each interruption at a cost of `restart`.
///
/// Without checkpoints an interruption loses all progress: the expected time is
/// `(e^(λT) − 1) / λ`. With a checkpoint every `every`, each segment is such a run of length
/// `every`. Each interruption also costs `restart`. `None` when the expectation is beyond reason
/// (more than a hundred times the work), which makes spot useless for the job.
pub fn expected_run(work: Duration, rate: f64, every: Option<Duration>, restart: Duration) -> Option<Duration> {
    let t = work.as_secs_f64() / 3_600.0;
    if rate <= 0.0 || t <= 0.0 {
        return Some(work);
    }
    let segment = every.map_or(t, |e| (e.as_secs_f64() / 3_600.0).clamp(1e-6, t));
    let x = rate * segment;
    if x > 50.0 {
        return None;
    }
    let per_segment = x.exp_m1() / rate;
    let hours = (t / segment) * per_segment;
    let interruptions = rate * hours;
    let total = hours + interruptions * restart.as_secs_f64() / 3_600.0;
    (total <= 100.0 * t).then(|| Duration::from_secs_f64(total * 3_600.0))
}

/// What a dollar of spend on a commitment's cloud is worth in ranking: nearly nothing while the
/// commitment runs behind its straight-line pace (that money is forfeited if unspent), full price
/// once it is on pace. The same curve the gateway's `commitment` policy uses.
///
/// `spent` is what has counted against the commitment so far; `since_as_of` is how long ago the
/// commitment's figures (`elapsed_days`, `spent_usd`) were true.
pub fn shadow_factor(commitment: &Commitment, spent: f64, since_as_of: Duration) -> f64 {
    let behind = ((commitment.pace(since_as_of) - spent) / commitment.amount_usd).max(0.0);
    (1.0 - 10.0 * behind).max(0.02)
}

/// How far behind pace a commitment is, as a share of its amount (0 when on or ahead).
pub fn behind(commitment: &Commitment, spent: f64, since_as_of: Duration) -> f64 {
    ((commitment.pace(since_as_of) - spent) / commitment.amount_usd).max(0.0)
}

/// Hours between two times, zero when `to` is earlier.
pub fn hours(from: Time, to: Time) -> f64 {
    to.saturating_since(from).as_secs_f64() / 3_600.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_core::config::{CloudId, CommitmentId};

    #[test]
    fn spot_risk_lengthens_runs_and_checkpoints_shorten_the_penalty() {
        let work = Duration::from_secs(10 * 3_600);
        let restart = Duration::from_secs(600);
        assert_eq!(expected_run(work, 0.0, None, restart), Some(work));
        let bare = expected_run(work, 0.1, None, restart).unwrap();
        let saved = expected_run(work, 0.1, Some(Duration::from_secs(1_800)), restart).unwrap();
        assert!(bare > saved && saved > work, "{bare:?} {saved:?}");
        // (e^1 − 1) / 0.1 ≈ 17.18 h of running, plus restarts.
        assert!((bare.as_secs_f64() / 3_600.0 - 17.18).abs() < 0.5);
        assert_eq!(expected_run(Duration::from_secs(400 * 3_600), 1.0, None, restart), None);
    }

    #[test]
    fn a_lagging_commitment_makes_its_cloud_nearly_free() {
        let c = Commitment {
            id: CommitmentId(0),
            name: "macc".into(),
            cloud: CloudId(0),
            amount_usd: 1_000_000.0,
            term: Duration::from_secs(100 * 86_400),
            elapsed_at_start: Duration::from_secs(50 * 86_400),
            spent_at_start: 0.0,
            deployments: Vec::new(),
        };
        assert_eq!(shadow_factor(&c, 300_000.0, Duration::ZERO), 0.02);
        assert!((shadow_factor(&c, 495_000.0, Duration::ZERO) - 0.95).abs() < 1e-9);
        assert_eq!(shadow_factor(&c, 600_000.0, Duration::ZERO), 1.0);
    }
}
