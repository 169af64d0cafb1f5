//! The headroom a deployment reports on its answers: `x-ratelimit-remaining-requests` and
//! `x-ratelimit-remaining-tokens` (Azure OpenAI and OpenAI), with `x-ratelimit-reset-requests`
//! and `-tokens` when present (Go-style durations: `1s`, `6m0s`, `20ms`, `1h2m3.5s`).
//!
//! Bounded and total: garbage is "not reported", never a panic; counts saturate, durations are
//! clamped to an hour. One pass over the answer's header names, no lookups.

use std::time::Duration;

use http::{HeaderMap, HeaderValue};
use switchyard_core::state::Headroom;

/// The longest reset read; longer ones are clamped to it.
pub const MAX_RESET: Duration = Duration::from_secs(3600);

/// Longest value read; longer ones are garbage.
const MAX_LEN: usize = 32;

/// What an answer's headers say about the deployment's remaining allowance.
///
/// One pass over the headers comparing names (an answer has a handful): cheaper than four
/// hashed lookups of names that are mostly absent.
pub fn headroom(headers: &HeaderMap) -> Headroom {
    let mut raw: [Option<&HeaderValue>; 4] = [None; 4];
    for (name, value) in headers {
        let Some(rest) = name.as_str().strip_prefix("x-ratelimit-") else { continue };
        let slot = match rest {
            "remaining-requests" => 0,
            "remaining-tokens" => 1,
            "reset-requests" => 2,
            "reset-tokens" => 3,
            _ => continue,
        };
        raw[slot].get_or_insert(value);
    }
    let [remaining_requests, remaining_tokens, reset_requests, reset_tokens] = raw;
    let requests = remaining_requests.and_then(|v| count(v.as_bytes()));
    let tokens = remaining_tokens.and_then(|v| count(v.as_bytes()));
    let reset =
        |value: Option<&HeaderValue>, counted: Option<u64>| counted.and(value).and_then(|v| duration(v.as_bytes()));
    Headroom {
        requests,
        tokens,
        requests_reset: reset(reset_requests, requests),
        tokens_reset: reset(reset_tokens, tokens),
    }
}

/// A non-negative integer, saturating; `None` for anything else.
fn count(value: &[u8]) -> Option<u64> {
    let value = value.trim_ascii();
    if value.is_empty() || value.len() > MAX_LEN || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(value.iter().fold(0u64, |n, d| n.saturating_mul(10).saturating_add(u64::from(d - b'0'))))
}

/// A Go-style duration (`1s`, `6m0s`, `20ms`, `1.5s`, `1h2m`), or a bare number of seconds;
/// clamped to [`MAX_RESET`]. `None` for anything else.
pub fn duration(value: &[u8]) -> Option<Duration> {
    let value = value.trim_ascii();
    if value.is_empty() || value.len() > MAX_LEN {
        return None;
    }
    let mut rest = value;
    let mut seconds = 0.0f64;
    while !rest.is_empty() {
        let digits = rest.iter().take_while(|b| b.is_ascii_digit() || **b == b'.').count();
        if digits == 0 {
            return None;
        }
        let number: f64 = std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()?;
        rest = &rest[digits..];
        let letters = rest.iter().take_while(|b| b.is_ascii_alphabetic() || **b == 0xc2 || **b == 0xb5).count();
        let scale = match &rest[..letters] {
            b"h" => 3600.0,
            b"m" => 60.0,
            b"s" | b"" => 1.0,
            b"ms" => 1e-3,
            b"us" | b"\xc2\xb5s" => 1e-6,
            b"ns" => 1e-9,
            _ => return None,
        };
        rest = &rest[letters..];
        seconds += number * scale;
    }
    // Whole nanoseconds, rounded: `250us` is 250 µs exactly, not a float's 249.999.
    let nanos = (seconds.min(MAX_RESET.as_secs_f64()) * 1e9).round();
    nanos.is_finite().then(|| Duration::from_nanos(nanos as u64))
}

#[cfg(test)]
mod tests {
    use http::HeaderName;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (HeaderName::from_static(k), HeaderValue::from_static(v))).collect()
    }

    #[test]
    fn reads_remaining_counts_and_their_resets() {
        let h = headers(&[
            ("x-ratelimit-remaining-requests", "0"),
            ("x-ratelimit-remaining-tokens", "149984"),
            ("x-ratelimit-reset-requests", "20ms"),
            ("x-ratelimit-reset-tokens", "6m0s"),
        ]);
        let got = headroom(&h);
        assert_eq!(got.requests, Some(0));
        assert_eq!(got.tokens, Some(149_984));
        assert_eq!(got.requests_reset, Some(Duration::from_millis(20)));
        assert_eq!(got.tokens_reset, Some(Duration::from_secs(360)));
        // Azure sends the counts alone.
        let azure = headroom(&headers(&[("x-ratelimit-remaining-requests", "7")]));
        assert_eq!(azure, Headroom { requests: Some(7), ..Headroom::default() });
        // A reset without its count says nothing.
        assert_eq!(headroom(&headers(&[("x-ratelimit-reset-requests", "1s")])), Headroom::default());
        assert_eq!(headroom(&HeaderMap::new()), Headroom::default());
    }

    #[test]
    fn durations_in_go_syntax() {
        let d = |s: &str| duration(s.as_bytes());
        assert_eq!(d("1s"), Some(Duration::from_secs(1)));
        assert_eq!(d("6m0s"), Some(Duration::from_secs(360)));
        assert_eq!(d("2m3.5s"), Some(Duration::from_secs_f64(123.5)));
        assert_eq!(d("1h0m0s"), Some(MAX_RESET));
        assert_eq!(d("0.5s"), Some(Duration::from_millis(500)));
        assert_eq!(d("250us"), Some(Duration::from_micros(250)));
        assert_eq!(d("250µs"), Some(Duration::from_micros(250)));
        assert_eq!(d(" 2 "), Some(Duration::from_secs(2)), "bare seconds");
        assert_eq!(d("99999h"), Some(MAX_RESET), "clamped");
    }

    #[test]
    fn garbage_is_not_reported_and_never_panics() {
        for bad in ["", "-1", "1.5", "abc", "1e9", "١", "99999999999999999999999999999999999", " ", "0x10"] {
            assert_eq!(count(bad.as_bytes()), None, "{bad:?}");
        }
        assert_eq!(count(b"99999999999999999999999999"), Some(u64::MAX), "saturates");
        for bad in ["", "s", "1x", "1.2.3s", "ms", "-1s", "1s-", "NaN", "inf", "1ss", "1 s", "\u{b5}"] {
            assert_eq!(duration(bad.as_bytes()), None, "{bad:?}");
        }
        // Any bytes at all: no panic.
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 12) as usize;
            let alphabet = b"0123456789.hmsun x-\xc2\xb5";
            let bytes: Vec<u8> = (0..len).map(|i| alphabet[((seed >> (i * 5)) % 21) as usize]).collect();
            let _ = duration(&bytes);
            let _ = count(&bytes);
        }
    }
}
