//! Passive outlier detection for one deployment: consecutive failures eject it with a growing,
//! capped backoff; when the ejection expires one probe request is let through (half-open).
//!
//! 429 is not a failure here: it is a capacity signal, handled as a cool-down in `state`.

use std::time::Duration;

use crate::config::OutlierSettings;
use crate::time::Time;

#[derive(Clone, Copy, Debug, Default)]
pub struct Health {
    consecutive_failures: u32,
    /// Ejections since the last successful probe; sets the next backoff.
    n_ejections: u32,
    ejected_until: Option<Time>,
    probe_in_flight: bool,
}

/// Where a deployment stands, for routing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Availability {
    Healthy,
    /// Ejection over, no probe running: the next request may probe it.
    HalfOpen,
    /// Ejected until then, or probing with a probe already in flight.
    Ejected {
        until: Time,
    },
}

impl Health {
    pub fn availability(&self, now: Time) -> Availability {
        match self.ejected_until {
            None => Availability::Healthy,
            Some(until) if now < until => Availability::Ejected { until },
            Some(_) if self.probe_in_flight => Availability::Ejected { until: now },
            Some(_) => Availability::HalfOpen,
        }
    }

    /// Failures in a row since the last success (0 for a deployment not yet tried).
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    pub fn is_ejected(&self, now: Time) -> bool {
        matches!(self.availability(now), Availability::Ejected { .. })
    }

    /// An attempt starts; if the deployment was half-open this attempt is its probe.
    pub fn on_attempt(&mut self, now: Time) {
        if self.availability(now) == Availability::HalfOpen {
            self.probe_in_flight = true;
        }
    }

    pub fn on_success(&mut self) {
        self.consecutive_failures = 0;
        if self.ejected_until.is_some() && self.probe_in_flight {
            self.ejected_until = None;
            self.n_ejections = 0;
        }
        self.probe_in_flight = false;
    }

    /// Records a failure; `may_eject` is false when the ejected share is at its cap.
    /// Returns whether this failure ejected the deployment.
    pub fn on_failure(&mut self, now: Time, settings: &OutlierSettings, may_eject: bool) -> bool {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        let probing = self.probe_in_flight;
        self.probe_in_flight = false;
        let should_eject =
            probing || (self.ejected_until.is_none() && self.consecutive_failures >= settings.consecutive_failures);
        if !should_eject || !(may_eject || probing) {
            return false;
        }
        let until = now + ejection_time(self.n_ejections, settings);
        self.n_ejections = self.n_ejections.saturating_add(1);
        self.ejected_until = Some(until);
        true
    }

    /// A neutral outcome (the caller's fault): ends a probe without judging the deployment.
    pub fn on_neutral(&mut self) {
        self.probe_in_flight = false;
    }
}

/// `base * 2^n`, capped at `max`.
pub fn ejection_time(n_ejections: u32, settings: &OutlierSettings) -> Duration {
    let factor = 1u32.checked_shl(n_ejections.min(20)).unwrap_or(u32::MAX);
    settings.base_ejection.saturating_mul(factor).min(settings.max_ejection)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> OutlierSettings {
        OutlierSettings {
            consecutive_failures: 3,
            base_ejection: Duration::from_secs(1),
            max_ejection: Duration::from_secs(5),
            max_ejected_share: 0.5,
        }
    }

    #[test]
    fn ejects_after_consecutive_failures_then_probes_and_recovers() {
        let s = settings();
        let mut h = Health::default();
        let t = Time::ZERO;
        assert!(!h.on_failure(t, &s, true));
        assert!(!h.on_failure(t, &s, true));
        assert!(h.on_failure(t, &s, true));
        assert_eq!(h.availability(t), Availability::Ejected { until: t + Duration::from_secs(1) });
        let later = t + Duration::from_secs(1);
        assert_eq!(h.availability(later), Availability::HalfOpen);
        h.on_attempt(later);
        assert!(h.is_ejected(later), "only one probe at a time");
        // The probe fails: ejected again for twice as long.
        assert!(h.on_failure(later, &s, true));
        assert_eq!(h.availability(later), Availability::Ejected { until: later + Duration::from_secs(2) });
        let later = later + Duration::from_secs(2);
        h.on_attempt(later);
        h.on_success();
        assert_eq!(h.availability(later), Availability::Healthy);
    }

    #[test]
    fn backoff_is_capped_so_recovery_is_seen_within_seconds() {
        let s = settings();
        for n in 0..40 {
            let d = ejection_time(n, &s);
            assert!(d >= s.base_ejection && d <= s.max_ejection);
        }
    }

    #[test]
    fn share_cap_stops_ejection_but_not_counting() {
        let s = settings();
        let mut h = Health::default();
        for _ in 0..5 {
            assert!(!h.on_failure(Time::ZERO, &s, false));
        }
        assert_eq!(h.availability(Time::ZERO), Availability::Healthy);
        assert!(h.on_failure(Time::ZERO, &s, true));
    }
}
