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
    /// When the current ejection was made (here, or by another replica: see `adopt`).
    ejected_at: Time,
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

    /// Records a success. Returns whether it was the probe that ended an ejection (the
    /// deployment recovered).
    pub fn on_success(&mut self) -> bool {
        self.consecutive_failures = 0;
        let recovered = self.ejected_until.is_some() && self.probe_in_flight;
        if recovered {
            self.ejected_until = None;
            self.n_ejections = 0;
        }
        self.probe_in_flight = false;
        recovered
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
        self.ejected_at = now;
        true
    }

    /// When the ejection now set (running, or over and awaiting its probe) ends.
    pub fn ejected_until(&self) -> Option<Time> {
        self.ejected_until
    }

    /// Until when the deployment counts as ejected, as [`Health::is_ejected`] will say: its
    /// ejection's end, or for as long as its probe is in flight (`Time(u64::MAX)`); `None`
    /// when it is not ejected at all.
    pub fn ejected_through(&self) -> Option<Time> {
        match self.ejected_until {
            Some(_) if self.probe_in_flight => Some(Time(u64::MAX)),
            until => until,
        }
    }

    /// Takes on an ejection another replica made at `at`, lasting until `until` (the caller
    /// passes only one still running). Extends an ejection of this replica's that ends sooner;
    /// counts as an ejection for the next backoff; a probe in flight here stays the probe.
    pub fn adopt(&mut self, at: Time, until: Time) -> bool {
        if self.ejected_until.is_some_and(|mine| mine >= until) {
            return false;
        }
        self.ejected_at = match self.ejected_until {
            Some(_) => self.ejected_at.max(at),
            None => at,
        };
        self.ejected_until = Some(until);
        self.n_ejections = self.n_ejections.max(1);
        true
    }

    /// Another replica's probe succeeded at `at`: an ejection made no later than that is over
    /// (one made since stands). Returns whether this ended one here.
    pub fn recover(&mut self, at: Time) -> bool {
        if self.ejected_until.is_none() || self.ejected_at > at {
            return false;
        }
        self.ejected_until = None;
        self.n_ejections = 0;
        self.consecutive_failures = 0;
        self.probe_in_flight = false;
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
    fn an_ejection_from_elsewhere_is_adopted_and_a_recovery_ends_only_older_ones() {
        let s = settings();
        let mut h = Health::default();
        let t = |ms| Time::from_millis(ms);
        assert!(h.adopt(t(10), t(50)));
        assert_eq!(h.availability(t(20)), Availability::Ejected { until: t(50) });
        assert!(!h.adopt(t(12), t(40)), "one ending sooner changes nothing");
        assert!(!h.recover(t(5)), "a recovery before the ejection does not end it");
        assert!(h.recover(t(30)));
        assert_eq!(h.availability(t(30)), Availability::Healthy);
        // An ejection made here after a recovery heard from elsewhere stands.
        for _ in 0..3 {
            h.on_failure(t(40), &s, true);
        }
        assert!(!h.recover(t(35)) && h.is_ejected(t(41)));
        // A probe running here stays the probe when an ejection is adopted meanwhile.
        let later = t(40) + s.base_ejection;
        h.on_attempt(later);
        assert!(h.adopt(later, later + Duration::from_secs(3)));
        assert!(h.on_success(), "the probe's success recovers");
        assert_eq!(h.availability(later), Availability::Healthy);
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
