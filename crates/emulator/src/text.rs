//! Deterministic answers: the same conversation always gets the same words, so a continuation
//! with an assistant prefill can be checked to complete exactly the original answer.

use switchyard_core::rng::{Rng, SplitMix64, stable_hash};

const WORDS: &[&str] = &[
    "the",
    "cloud",
    "routes",
    "every",
    "request",
    "to",
    "a",
    "deployment",
    "with",
    "capacity",
    "and",
    "low",
    "latency",
    "while",
    "budgets",
    "hold",
    "across",
    "regions",
    "so",
    "failover",
    "stays",
    "invisible",
    "when",
    "one",
    "provider",
    "goes",
    "down",
    "tokens",
    "stream",
    "back",
    "quickly",
    "from",
    "reserved",
    "throughput",
    "before",
    "on-demand",
    "spend",
    "grows",
    "in",
    "every",
    "jurisdiction",
    "allowed",
    "by",
    "policy",
];

/// The full answer for a conversation: `n_tokens` tokens, each a word with its leading space.
pub fn answer_tokens(conversation_key: u64, range: (u32, u32)) -> Vec<String> {
    let mut rng = SplitMix64::new(conversation_key);
    let span = u64::from(range.1 - range.0) + 1;
    let n = range.0 + (rng.next_u64() % span) as u32;
    (0..n)
        .map(|i| {
            let word = WORDS[rng.below(WORDS.len())];
            if i == 0 {
                let mut w = word.to_owned();
                if let Some(first) = w.get_mut(0..1) {
                    first.make_ascii_uppercase();
                }
                w
            } else {
                format!(" {word}")
            }
        })
        .collect()
}

/// A key for the conversation: its messages, without a trailing assistant prefill.
pub fn conversation_key(messages: &[serde_json::Value]) -> u64 {
    let text: String = messages.iter().map(|m| m.to_string()).collect::<Vec<_>>().join("\n");
    stable_hash(text.as_bytes())
}

/// Where a prefill ends in the answer: the tokens still to send, with a leading partial token
/// when the prefill stops inside one. `None` when the prefill is not a prefix of the answer.
pub fn remainder_after(tokens: &[String], prefill: &str) -> Option<Vec<String>> {
    let mut offset = 0;
    for (i, token) in tokens.iter().enumerate() {
        if offset == prefill.len() {
            return Some(tokens[i..].to_vec());
        }
        let end = offset + token.len();
        if end > prefill.len() {
            let (head, tail) = token.split_at(prefill.len() - offset);
            if !prefill[offset..].starts_with(head) || head.len() != prefill.len() - offset {
                return None;
            }
            let mut rest = vec![tail.to_owned()];
            rest.extend_from_slice(&tokens[i + 1..]);
            return Some(rest);
        }
        if prefill.get(offset..end) != Some(token.as_str()) {
            return None;
        }
        offset = end;
    }
    (offset == prefill.len()).then(Vec::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_deterministic_and_prefills_continue_them() {
        let tokens = answer_tokens(42, (10, 20));
        assert_eq!(tokens, answer_tokens(42, (10, 20)));
        assert!((10..=20).contains(&tokens.len()));
        let full: String = tokens.concat();
        let prefix: String = tokens[..4].concat();
        let rest = remainder_after(&tokens, &prefix).unwrap();
        assert_eq!(format!("{prefix}{}", rest.concat()), full);
        let mid = &full[..prefix.len() + 2];
        let rest = remainder_after(&tokens, mid).unwrap();
        assert_eq!(format!("{mid}{}", rest.concat()), full);
        assert_eq!(remainder_after(&tokens, &full).unwrap(), Vec::<String>::new());
        assert!(remainder_after(&tokens, "Something else").is_none());
    }
}
