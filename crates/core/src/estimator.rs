//! Peak-sensitive moving averages (PeakEWMA) of time to first token and time per output token.
//!
//! A sample above the current estimate replaces it at once (so a deployment that slows down is
//! avoided immediately); samples below decay into it with time constant `tau`. Time is passed in.

use std::time::Duration;

use crate::time::Time;

/// Default decay time constant.
pub const DEFAULT_TAU: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug)]
pub struct PeakEwma {
    value: f64,
    stamp: Time,
    tau_us: f64,
}

impl PeakEwma {
    pub fn new(initial: f64, now: Time, tau: Duration) -> PeakEwma {
        PeakEwma { value: initial, stamp: now, tau_us: tau.as_micros().max(1) as f64 }
    }

    pub fn observe(&mut self, sample: f64, now: Time) {
        if !sample.is_finite() || sample < 0.0 {
            return;
        }
        if sample > self.value {
            self.value = sample;
        } else {
            let elapsed = now.saturating_since(self.stamp).as_micros() as f64;
            let w = (-elapsed / self.tau_us).exp();
            self.value = self.value * w + sample * (1.0 - w);
        }
        self.stamp = self.stamp.max(now);
    }

    pub fn get(&self) -> f64 {
        self.value
    }
}

/// What the router believes about a deployment's speed.
#[derive(Clone, Copy, Debug)]
pub struct LatencyEstimate {
    /// Time to first token, in milliseconds.
    pub ttft_ms: PeakEwma,
    /// Milliseconds per output token after the first.
    pub ms_per_token: PeakEwma,
}

impl LatencyEstimate {
    /// Starts from neutral priors so unmeasured deployments neither win nor lose by default.
    pub fn new(now: Time) -> LatencyEstimate {
        LatencyEstimate {
            ttft_ms: PeakEwma::new(500.0, now, DEFAULT_TAU),
            ms_per_token: PeakEwma::new(20.0, now, DEFAULT_TAU),
        }
    }

    /// Records a completed attempt: its time to first token and its output rate.
    pub fn observe(&mut self, ttft: Duration, output_tokens: u32, total: Duration, now: Time) {
        self.ttft_ms.observe(ttft.as_secs_f64() * 1000.0, now);
        if output_tokens > 1 {
            let gen_ms = total.saturating_sub(ttft).as_secs_f64() * 1000.0;
            self.ms_per_token.observe(gen_ms / f64::from(output_tokens - 1), now);
        }
    }

    /// Records an answer that arrived whole: its time to first token is estimated as the total
    /// less the expected generation time, so non-streaming calls do not inflate the estimate.
    pub fn observe_whole(&mut self, output_tokens: u32, total: Duration, now: Time) {
        let gen_ms = self.ms_per_token.get() * f64::from(output_tokens.saturating_sub(1));
        let ttft_ms = (total.as_secs_f64() * 1000.0 - gen_ms).max(0.0);
        self.ttft_ms.observe(ttft_ms, now);
    }

    /// Expected time to produce `output_tokens`, in milliseconds.
    pub fn expected_ms(&self, output_tokens: u32) -> f64 {
        self.ttft_ms.get() + self.ms_per_token.get() * f64::from(output_tokens.saturating_sub(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peaks_are_taken_at_once_and_decay_back() {
        let t0 = Time::ZERO;
        let mut e = PeakEwma::new(100.0, t0, Duration::from_secs(10));
        e.observe(400.0, t0 + Duration::from_millis(1));
        assert_eq!(e.get(), 400.0);
        e.observe(100.0, t0 + Duration::from_secs(10));
        let v = e.get();
        assert!(v < 400.0 && v > 100.0, "{v}");
        for s in 11..200 {
            e.observe(100.0, t0 + Duration::from_secs(s));
        }
        assert!((e.get() - 100.0).abs() < 1.0);
    }
}
