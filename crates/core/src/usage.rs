//! Token usage and what it costs.

use crate::config::{Price, Tier};

/// Tokens one request used. The counts may come from an upstream and cannot be trusted, so
/// sums saturate at `u64::MAX` rather than wrap (a wrapped total once read 4 while the spend
/// booked was absurd).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cached_prompt_tokens: u64,
}

impl Usage {
    pub fn total(&self) -> u64 {
        self.prompt_tokens.saturating_add(self.completion_tokens)
    }

    pub fn add(&mut self, other: Usage) {
        self.prompt_tokens = self.prompt_tokens.saturating_add(other.prompt_tokens);
        self.completion_tokens = self.completion_tokens.saturating_add(other.completion_tokens);
        self.cached_prompt_tokens = self.cached_prompt_tokens.saturating_add(other.cached_prompt_tokens);
    }
}

/// List-price cost in dollars of `usage` at `price` (what the provider's bill says).
pub fn list_cost(price: &Price, usage: &Usage) -> f64 {
    let cached = usage.cached_prompt_tokens.min(usage.prompt_tokens);
    let uncached = usage.prompt_tokens - cached;
    (uncached as f64 * price.input_per_mtok
        + cached as f64 * price.cached_input_per_mtok
        + usage.completion_tokens as f64 * price.output_per_mtok)
        / 1e6
}

/// Marginal cost in dollars of one more request: zero on prepaid (reserved) capacity.
pub fn marginal_cost(price: &Price, tier: Tier, input_tokens: u32, output_tokens: u32) -> f64 {
    match tier {
        Tier::Reserved => 0.0,
        Tier::OnDemand => {
            (f64::from(input_tokens) * price.input_per_mtok + f64::from(output_tokens) * price.output_per_mtok) / 1e6
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_add_up_per_million() {
        let price = Price { input_per_mtok: 3.0, output_per_mtok: 15.0, cached_input_per_mtok: 0.3 };
        let usage = Usage { prompt_tokens: 1_000_000, completion_tokens: 100_000, cached_prompt_tokens: 500_000 };
        let cost = list_cost(&price, &usage);
        assert!((cost - (1.5 + 0.15 + 1.5)).abs() < 1e-9, "{cost}");
        assert_eq!(marginal_cost(&price, Tier::Reserved, 1000, 1000), 0.0);
        assert!((marginal_cost(&price, Tier::OnDemand, 1_000_000, 0) - 3.0).abs() < 1e-9);
    }

    /// These wrapped (or panicked, in debug builds) on huge upstream counts.
    #[test]
    fn sums_saturate() {
        let huge = Usage { prompt_tokens: u64::MAX - 1, completion_tokens: 5, cached_prompt_tokens: u64::MAX };
        assert_eq!(huge.total(), u64::MAX);
        let mut sum = huge;
        sum.add(huge);
        assert_eq!(sum, Usage { prompt_tokens: u64::MAX, completion_tokens: 10, cached_prompt_tokens: u64::MAX });
        let price = Price { input_per_mtok: 3.0, output_per_mtok: 15.0, cached_input_per_mtok: 0.3 };
        assert!(list_cost(&price, &huge).is_finite());
    }
}
