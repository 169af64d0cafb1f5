//! Records as JSON, written by hand: a record's `attempts` column and the pending log's lines,
//! the same JSON serde writes for them (and reads back), at a fraction of its cost.
//!
//! Text is written as stored: NUL becomes U+FFFD, as the store's binding does, and a cost that
//! is not finite is 0 (JSON has no NaN), so a record read back is the record the store holds.

use crate::record::{AttemptRecord, RequestRecord};
use crate::store::stored_cost;

/// `r` as one JSON object, the fields in declaration order.
pub(crate) fn write_record(out: &mut String, r: &RequestRecord) {
    out.push_str("{\"request_id\":");
    json_str(out, &r.request_id);
    out.push_str(",\"at_ms\":");
    out.push_str(itoa::Buffer::new().format(r.at_ms));
    out.push_str(",\"tenant\":");
    json_str(out, &r.tenant);
    out.push_str(",\"key_id\":");
    json_str(out, &r.key_id);
    out.push_str(",\"alias\":");
    json_str(out, &r.alias);
    for (name, v) in [
        (",\"deployment\":", &r.deployment),
        (",\"cloud\":", &r.cloud),
        (",\"region\":", &r.region),
        (",\"jurisdiction\":", &r.jurisdiction),
    ] {
        out.push_str(name);
        match v {
            Some(v) => json_str(out, v),
            None => out.push_str("null"),
        }
    }
    out.push_str(",\"protocol\":");
    json_str(out, &r.protocol);
    out.push_str(if r.stream { ",\"stream\":true,\"status\":" } else { ",\"stream\":false,\"status\":" });
    json_uint(out, u64::from(r.status));
    out.push_str(",\"outcome\":");
    json_str(out, &r.outcome);
    out.push_str(",\"input_tokens\":");
    json_uint(out, r.input_tokens);
    out.push_str(",\"output_tokens\":");
    json_uint(out, r.output_tokens);
    out.push_str(",\"cached_tokens\":");
    json_uint(out, r.cached_tokens);
    out.push_str(",\"cost_usd\":");
    out.push_str(ryu::Buffer::new().format_finite(stored_cost(r.cost_usd)));
    out.push_str(",\"latency_ms\":");
    json_uint(out, r.latency_ms);
    out.push_str(",\"ttft_ms\":");
    match r.ttft_ms {
        Some(v) => json_uint(out, v),
        None => out.push_str("null"),
    }
    out.push_str(",\"attempts\":");
    write_attempts(out, &r.attempts);
    out.push('}');
}

/// A record's `attempts` as stored: the JSON that serde writes for `Vec<AttemptRecord>` (and
/// reads back), written by hand.
pub(crate) fn write_attempts(out: &mut String, attempts: &[AttemptRecord]) {
    out.push('[');
    for (i, a) in attempts.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"deployment\":");
        json_str(out, &a.deployment);
        out.push_str(",\"outcome\":");
        json_str(out, &a.outcome);
        out.push_str(",\"started_ms\":");
        json_uint(out, a.started_ms);
        out.push_str(",\"duration_ms\":");
        json_uint(out, a.duration_ms);
        out.push_str(",\"output_tokens\":");
        json_uint(out, a.output_tokens);
        out.push('}');
    }
    out.push(']');
}

/// A JSON string of `s` as stored: NUL becomes U+FFFD, as [`text`] does.
fn json_str(out: &mut String, s: &str) {
    out.push('"');
    // Most text needs no escape: one pass without early exit (it vectorizes), then one copy.
    let special = s.bytes().fold(false, |any, b| any | (b < 0x20) | (b == b'"') | (b == b'\\'));
    if !special {
        out.push_str(s);
        out.push('"');
        return;
    }
    let mut plain = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            0 => "\\ufffd",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x01..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[plain..i]);
        plain = i + 1;
        if escape.is_empty() {
            out.push_str("\\u00");
            out.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
            out.push(char::from(b"0123456789abcdef"[usize::from(b & 0xf)]));
        } else {
            out.push_str(escape);
        }
    }
    out.push_str(&s[plain..]);
    out.push('"');
}

fn json_uint(out: &mut String, n: u64) {
    out.push_str(itoa::Buffer::new().format(n));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Text;

    fn record() -> RequestRecord {
        let mut r = RequestRecord::new("req_0123", 1_700_000_000_123, "tenant-a", "key_01");
        (r.alias, r.deployment, r.cloud, r.region) =
            ("chat".into(), Some("aws-d0".into()), Some(Text::from_static("aws")), Some("us-east-1".into()));
        (r.input_tokens, r.output_tokens, r.cached_tokens, r.cost_usd) = (1200, 34, 5, 0.000_25);
        (r.latency_ms, r.ttft_ms, r.status, r.stream) = (812, Some(90), 200, true);
        r.attempts.push(AttemptRecord {
            deployment: "azure-d1".into(),
            outcome: Text::from_static("rate_limited"),
            started_ms: 0,
            duration_ms: 12,
            output_tokens: 0,
        });
        r.attempts.push(AttemptRecord {
            deployment: "aws-d0".into(),
            outcome: Text::from_static("ok"),
            started_ms: 13,
            duration_ms: 799,
            output_tokens: 34,
        });
        r
    }

    fn written(r: &RequestRecord) -> String {
        let mut out = String::new();
        write_record(&mut out, r);
        out
    }

    #[test]
    fn a_plain_record_is_what_serde_writes() {
        let mut r = record();
        assert_eq!(written(&r), serde_json::to_string(&r).unwrap());
        (r.deployment, r.jurisdiction, r.ttft_ms, r.stream, r.cost_usd) = (None, None, None, false, 1e-9);
        r.attempts.clear();
        assert_eq!(written(&r), serde_json::to_string(&r).unwrap());
        (r.input_tokens, r.cost_usd, r.at_ms) = (u64::MAX, 123_456.75, -5);
        assert_eq!(written(&r), serde_json::to_string(&r).unwrap());
    }

    #[test]
    fn costs_read_back_to_the_bit() {
        let mut r = record();
        // Seeded: products of token counts and per-token prices, and arbitrary bit patterns.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut costs = vec![1234.0 * 1.5e-5, 0.018_510_000_000_000_002, 0.002_436_000_000_000_000_2, f64::MAX, 5e-324];
        for _ in 0..5_000 {
            costs.push((next() % 100_000) as f64 * [1.5e-5, 3e-6, 2.5e-7, 1.1e-4][(next() % 4) as usize]);
            let bits = f64::from_bits(next());
            if bits.is_finite() {
                costs.push(bits);
            }
        }
        for cost in costs {
            r.cost_usd = cost;
            let back: RequestRecord = serde_json::from_str(&written(&r)).unwrap();
            assert_eq!(back.cost_usd.to_bits(), cost.to_bits(), "{cost:e}");
        }
    }

    #[test]
    fn odd_text_and_costs_read_back_as_stored() {
        let mut r = record();
        (r.tenant, r.alias, r.region) = ("nul\0here".into(), "quote\" back\\ \n\r\t \u{1} \u{7f} é 🚀".into(), None);
        r.attempts[0].outcome = "\u{8}\u{c}\u{1f}".into();
        r.cost_usd = f64::NAN;
        let back: RequestRecord = serde_json::from_str(&written(&r)).unwrap();
        let mut stored = r.clone();
        (stored.tenant, stored.cost_usd) = ("nul\u{FFFD}here".into(), 0.0);
        assert_eq!(back, stored);
        r.cost_usd = f64::INFINITY;
        let back: RequestRecord = serde_json::from_str(&written(&r)).unwrap();
        assert_eq!(back.cost_usd, 0.0);
    }
}
