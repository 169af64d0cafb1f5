//! A fixed-size log-bucketed histogram for latencies: about 2% relative precision from 1 µs
//! to over an hour, constant memory, mergeable, deterministic.

const GROWTH: f64 = 1.02;
const BUCKETS: usize = 1200;

#[derive(Clone, Debug)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram { counts: vec![0; BUCKETS], total: 0 }
    }
}

impl Histogram {
    fn bucket(micros: f64) -> usize {
        if micros <= 1.0 {
            return 0;
        }
        ((micros.ln() / GROWTH.ln()) as usize + 1).min(BUCKETS - 1)
    }

    /// Records a value in microseconds.
    pub fn record(&mut self, micros: f64) {
        self.counts[Self::bucket(micros)] += 1;
        self.total += 1;
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    /// The `p` quantile (0..=1) in microseconds; 0 when empty.
    pub fn quantile(&self, p: f64) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        let rank = ((self.total as f64) * p).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                // The bucket's geometric middle.
                return if i == 0 { 1.0 } else { GROWTH.powf(i as f64 - 0.5) };
            }
        }
        GROWTH.powf(BUCKETS as f64)
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_two_percent() {
        let mut h = Histogram::default();
        for v in 1..=10_000 {
            h.record(f64::from(v) * 100.0);
        }
        for (p, want) in [(0.5, 500_000.0), (0.99, 990_000.0)] {
            let got = h.quantile(p);
            assert!((got - want).abs() / want < 0.02, "p{p}: {got} vs {want}");
        }
    }
}
