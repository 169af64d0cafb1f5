//! The emulator's per-deployment behaviour: timing distributions and typed fault plans.
//!
//! These live in the core because the emulator and the simulator share one timing model, and
//! because fault plans arrive both from YAML config and from the emulator's JSON admin API.

use std::time::Duration;

use super::raw::{RawDist, RawEmulation, RawFault};
use super::secret::{Secret, SecretSource, resolve};
use super::validate::{MAX_MS, bounded_ms};
use crate::rng::Rng;

/// The largest parameter a [`Dist`] may be given, and the largest value it ever samples.
pub const DIST_MAX: f64 = 1e9;
/// The longest answer the emulator may be configured to give, in tokens.
const MAX_ANSWER_TOKENS: u32 = 1_000_000;

/// How a deployment behaves in the emulator.
#[derive(Debug, Clone)]
pub struct Emulation {
    pub ttft_ms: Dist,
    pub tokens_per_s: Dist,
    /// Requests beyond this many at once get 429 with Retry-After.
    pub max_concurrency: Option<u32>,
    /// Requests beyond capacity wait in a queue of this length (as a vLLM server does) before
    /// 429 is answered; 0 answers 429 at once (as cloud APIs do).
    pub max_queue: u32,
    pub retry_after: Duration,
    /// Inclusive range of answer lengths in tokens (before `max_tokens` caps it).
    pub answer_tokens: (u32, u32),
    pub reject_prefill: bool,
    /// When set, requests must carry `Authorization: Bearer <key>`.
    pub api_key: Option<Secret>,
    pub faults: Vec<Fault>,
}

/// A distribution of non-negative values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Dist {
    Fixed(f64),
    Uniform {
        min: f64,
        max: f64,
    },
    /// Log-normal given by its median and 99th percentile.
    LogNormal {
        median: f64,
        p99: f64,
    },
}

/// One fault: what happens, when, and to what share of requests.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    pub window: FaultWindow,
    /// Share of requests in the window that the fault hits, in `[0, 1]`.
    pub rate: f64,
    pub kind: FaultKind,
}

/// Offsets from when the plan was installed; `until: None` means forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultWindow {
    pub from: Duration,
    pub until: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// The deployment is down: connections are reset before any response.
    Outage,
    /// Down for the first half of every period, up for the second.
    Flap { period: Duration },
    /// An HTTP error status, with an optional Retry-After.
    Error { status: u16, retry_after: Option<Duration> },
    /// The connection is reset after the request is read, before response headers.
    ResetBeforeHeaders,
    /// The request is read and never answered.
    NoResponse,
    /// The first token comes this much later than the timing model says.
    SlowFirstToken { delay: Duration },
    /// The stream stops after some tokens, for a while or (`None`) for good.
    Stall { after_tokens: u32, duration: Option<Duration> },
    /// The connection is cut after some tokens.
    Cut { after_tokens: u32 },
    /// One unparseable event is sent after some tokens; the stream then goes on.
    MalformedChunk { after_tokens: u32 },
    /// The stream ends after its finish reason without `data: [DONE]`.
    NoDone,
    /// 400 `context_length_exceeded`.
    ContextLength,
    /// 400 content filter.
    ContentFilter,
    /// 200 with a body that is not the protocol's (an HTML error page from a proxy, say).
    Garbage,
}

// === impl Dist ===

impl Dist {
    /// A sample in `[0, DIST_MAX]`: a log-normal's far tail (or any value that is not a finite
    /// number) is clamped, so that callers can turn it into a `Duration` without overflow.
    pub fn sample(&self, rng: &mut dyn Rng) -> f64 {
        let v = match *self {
            Dist::Fixed(v) => v,
            Dist::Uniform { min, max } => min + (max - min) * rng.next_f64(),
            Dist::LogNormal { median, p99 } => {
                // p99 = median * exp(2.326 * sigma).
                let sigma = (p99 / median).ln() / 2.326_347_874;
                median * (sigma * rng.next_normal()).exp()
            }
        };
        if v.is_nan() { 0.0 } else { v.clamp(0.0, DIST_MAX) }
    }

    /// The distribution's median, for estimates that need one number.
    pub fn median(&self) -> f64 {
        match *self {
            Dist::Fixed(v) => v,
            Dist::Uniform { min, max } => (min + max) / 2.0,
            Dist::LogNormal { median, .. } => median,
        }
    }
}

// === impl FaultWindow ===

impl FaultWindow {
    pub fn contains(&self, since_install: Duration) -> bool {
        since_install >= self.from && self.until.is_none_or(|u| since_install < u)
    }
}

// === impl Fault ===

impl Fault {
    /// Whether the fault is active at `since_install`; flaps are down half of each period.
    pub fn active(&self, since_install: Duration) -> bool {
        if !self.window.contains(since_install) {
            return false;
        }
        match self.kind {
            FaultKind::Flap { period } => {
                let period = period.as_micros().max(1);
                let phase = (since_install - self.window.from).as_micros() % period;
                phase < period / 2
            }
            _ => true,
        }
    }

    /// Validates one raw fault; `path` prefixes error messages.
    pub fn from_raw(raw: &RawFault, path: &str, errors: &mut Vec<String>) -> Option<Fault> {
        let n_errors = errors.len();
        for (field, v) in [
            ("from_ms", raw.from_ms),
            ("until_ms", raw.until_ms),
            ("retry_after_ms", raw.retry_after_ms),
            ("delay_ms", raw.delay_ms),
            ("duration_ms", raw.duration_ms),
            ("period_ms", raw.period_ms),
        ] {
            if v.is_some_and(|v| v > MAX_MS) {
                errors.push(format!("{path}.{field}: must be at most {MAX_MS} (365 days)"));
            }
        }
        let mut need = |field: &str, present: bool| {
            if !present {
                errors.push(format!("{path}.{field}: required for kind {}", raw.kind));
            }
        };
        let ms = |v: u64| Duration::from_millis(v.min(MAX_MS));
        let kind = match raw.kind.as_str() {
            "outage" => FaultKind::Outage,
            "flap" => {
                need("period_ms", raw.period_ms.is_some());
                FaultKind::Flap { period: ms(raw.period_ms.unwrap_or(1000)) }
            }
            "error" => {
                need("status", raw.status.is_some());
                let status = raw.status.unwrap_or(500);
                if raw.status.is_some() && !(400..=599).contains(&status) {
                    errors.push(format!("{path}.status: must be an HTTP error status (400-599)"));
                }
                FaultKind::Error { status, retry_after: raw.retry_after_ms.map(ms) }
            }
            "reset_before_headers" => FaultKind::ResetBeforeHeaders,
            "no_response" => FaultKind::NoResponse,
            "slow_first_token" => {
                need("delay_ms", raw.delay_ms.is_some());
                FaultKind::SlowFirstToken { delay: ms(raw.delay_ms.unwrap_or(0)) }
            }
            "stall" => {
                need("after_tokens", raw.after_tokens.is_some());
                FaultKind::Stall { after_tokens: raw.after_tokens.unwrap_or(0), duration: raw.duration_ms.map(ms) }
            }
            "cut" => {
                need("after_tokens", raw.after_tokens.is_some());
                FaultKind::Cut { after_tokens: raw.after_tokens.unwrap_or(0) }
            }
            "malformed_chunk" => {
                need("after_tokens", raw.after_tokens.is_some());
                FaultKind::MalformedChunk { after_tokens: raw.after_tokens.unwrap_or(0) }
            }
            "no_done" => FaultKind::NoDone,
            "context_length" => FaultKind::ContextLength,
            "content_filter" => FaultKind::ContentFilter,
            "garbage" => FaultKind::Garbage,
            other => {
                errors.push(format!(
                    "{path}.kind: unknown fault kind {other:?} (expected one of outage, flap, error, \
                     reset_before_headers, no_response, slow_first_token, stall, cut, \
                     malformed_chunk, no_done, context_length, content_filter, garbage)"
                ));
                return None;
            }
        };
        let rate = raw.rate.unwrap_or(1.0);
        if !(0.0..=1.0).contains(&rate) {
            errors.push(format!("{path}.rate: must be between 0 and 1"));
        }
        let window = FaultWindow { from: ms(raw.from_ms.unwrap_or(0)), until: raw.until_ms.map(ms) };
        if let Some(until) = window.until
            && until <= window.from
        {
            errors.push(format!("{path}.until_ms: must be after from_ms"));
        }
        (errors.len() == n_errors).then_some(Fault { window, rate, kind })
    }
}

/// Validates a list of raw faults (the admin API's entry point).
pub fn faults_from_raw(raw: &[RawFault], path: &str) -> Result<Vec<Fault>, Vec<String>> {
    let mut errors = Vec::new();
    let faults: Vec<Fault> =
        raw.iter().enumerate().filter_map(|(i, f)| Fault::from_raw(f, &format!("{path}[{i}]"), &mut errors)).collect();
    if errors.is_empty() { Ok(faults) } else { Err(errors) }
}

pub fn dist_from_raw(raw: &RawDist, path: &str, errors: &mut Vec<String>) -> Option<Dist> {
    let forms = [raw.fixed.is_some(), raw.uniform.is_some(), raw.lognormal.is_some()];
    if forms.iter().filter(|x| **x).count() != 1 {
        errors.push(format!("{path}: give exactly one of fixed, uniform, lognormal"));
        return None;
    }
    let dist = if let Some(v) = raw.fixed {
        Dist::Fixed(v)
    } else if let Some([min, max]) = raw.uniform {
        if max < min {
            errors.push(format!("{path}.uniform: max must be >= min"));
            return None;
        }
        Dist::Uniform { min, max }
    } else if let Some([median, p99]) = raw.lognormal {
        if median <= 0.0 || p99 < median {
            errors.push(format!("{path}.lognormal: need 0 < median <= p99"));
            return None;
        }
        Dist::LogNormal { median, p99 }
    } else {
        return None;
    };
    let (low, high) = match dist {
        Dist::Fixed(v) => (v, v),
        Dist::Uniform { min, max } => (min, max),
        Dist::LogNormal { median, p99 } => (median, p99),
    };
    if !(low >= 0.0 && low.is_finite()) {
        errors.push(format!("{path}: must be >= 0"));
        return None;
    }
    if high.is_nan() || high > DIST_MAX {
        errors.push(format!("{path}: must be at most {DIST_MAX:e}"));
        return None;
    }
    Some(dist)
}

pub(crate) fn emulation_from_raw(
    raw: &RawEmulation,
    path: &str,
    secrets: &dyn SecretSource,
    errors: &mut Vec<String>,
) -> Emulation {
    let ttft_ms = raw
        .ttft_ms
        .as_ref()
        .and_then(|d| dist_from_raw(d, &format!("{path}.ttft_ms"), errors))
        .unwrap_or(Dist::LogNormal { median: 250.0, p99: 800.0 });
    let tokens_per_s = raw
        .tokens_per_s
        .as_ref()
        .and_then(|d| dist_from_raw(d, &format!("{path}.tokens_per_s"), errors))
        .unwrap_or(Dist::Uniform { min: 40.0, max: 80.0 });
    if tokens_per_s.median() <= 0.0 {
        errors.push(format!("{path}.tokens_per_s: must be > 0"));
    }
    let answer_tokens = raw.answer_tokens.map_or((16, 96), |[a, b]| (a, b));
    if answer_tokens.0 == 0 || answer_tokens.1 < answer_tokens.0 {
        errors.push(format!("{path}.answer_tokens: need 0 < min <= max"));
    }
    if answer_tokens.1 > MAX_ANSWER_TOKENS {
        errors.push(format!("{path}.answer_tokens: must be at most {MAX_ANSWER_TOKENS}"));
    }
    if raw.max_concurrency == Some(0) {
        errors.push(format!("{path}.max_concurrency: must be > 0"));
    }
    let api_key = raw
        .api_key
        .as_deref()
        .and_then(|r| resolve(r, secrets).map_err(|e| errors.push(format!("{path}.api_key: {e}"))).ok());
    let faults = match faults_from_raw(&raw.faults, &format!("{path}.faults")) {
        Ok(f) => f,
        Err(mut e) => {
            errors.append(&mut e);
            Vec::new()
        }
    };
    Emulation {
        ttft_ms,
        tokens_per_s,
        max_concurrency: raw.max_concurrency,
        max_queue: raw.max_queue.unwrap_or(0),
        retry_after: bounded_ms(raw.retry_after_ms.unwrap_or(1000), &format!("{path}.retry_after_ms"), errors),
        answer_tokens,
        reject_prefill: raw.reject_prefill.unwrap_or(false),
        api_key,
        faults,
    }
}
