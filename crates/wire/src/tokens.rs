//! Token estimates without a tokenizer: about four bytes of English text per token.
//!
//! Used to route (context windows, rate limits) before a provider has counted, and to count
//! usage when a provider reports none. Provider counts always win when present.

/// Estimated tokens in `text`: one per four bytes, rounded up.
pub fn estimate_tokens(text: &str) -> u32 {
    u32::try_from(text.len().div_ceil(4)).unwrap_or(u32::MAX)
}

/// Per-message overhead providers add for role and framing.
pub const MESSAGE_OVERHEAD_TOKENS: u32 = 4;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_round_up() {
        assert_eq!(estimate_tokens(""), 0);
        assert_eq!(estimate_tokens("abc"), 1);
        assert_eq!(estimate_tokens("abcdefgh"), 2);
        assert_eq!(estimate_tokens("abcdefghi"), 3);
    }
}
