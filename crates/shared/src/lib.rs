//! State shared by gateway replicas through Redis: [`RedisCounters`], the core's per-minute
//! allowances (`switchyard_core::counters::Counters`) held cluster-wide.
//!
//! # How it works
//!
//! Each allowance (a [`LimitSpec`](switchyard_core::counters::LimitSpec): a name and a size per
//! minute) is a token bucket in Redis, a hash under `{prefix}:limit:{name}` holding its level
//! and the server time of its last refill. One Lua script (`bucket.lua`, run with `EVALSHA`)
//! refills it by the Redis server's clock (`TIME`: replicas need no synchronised clocks),
//! applies a replica's push, clamps the level to `[-per_minute, per_minute]` as the core's
//! `Bucket` does, sets a TTL (3 minutes by default) and returns the new level; a push with
//! nothing new only reads. The size comes with every call, so a changed size takes effect at
//! the next push. A round reads every allowance (in calls of 128), so Redis does
//! `replicas × allowances / sync_interval` bucket reads a second, and writes only what changed.
//!
//! Every replica keeps, per allowance and under that allowance's own lock, a *view*: the level
//! Redis last answered, refilled by local time since, with every local adjustment applied at
//! once. [`Counters::has_room`](switchyard_core::counters::Counters::has_room) and `adjust`
//! answer from it and never wait on the network. The view also keeps the running total of
//! local adjustments; a push sends that total, and Redis applies the difference from the total
//! it last stored for this replica (`{prefix}:limit:{name}:replica:{id}`), so a push whose
//! answer was lost and is sent again is never counted twice.
//!
//! A thread of its own (`switchyard-redis-sync`, with a current-thread tokio runtime and one
//! auto-reconnecting `ConnectionManager`) runs a round every `sync_interval` (50 ms by
//! default): it pushes every allowance and installs the levels Redis answers. A round also
//! starts at once when an allowance's unconfirmed use (see below) passes `push_share` of it
//! (5%). The thread is not any worker's: syncing never competes with a worker's requests and
//! does not depend on any worker's runtime. Dropping the [`RedisCounters`] ends it after one
//! last push.
//!
//! # The overshoot bound
//!
//! A replica's *unconfirmed use* of an allowance is its net use since the push that Redis's
//! last answer reflects. While connected, `has_room` says no once it would pass
//! `S = unconfirmed_share · per_minute` (10% by default), unless it is zero (so a reservation
//! larger than `S` still passes, alone). After an admission it is thus at most
//! `U = max(S, A) + (W − 1)·A`, where `A` is the largest reservation (at most `per_minute` for
//! this purpose) and `W` the number of threads that may call `has_room` then `adjust` at the
//! same moment (a check and its reservation are two calls; one per worker thread).
//!
//! Take the replica whose last answer is the freshest: that answer counted everything every
//! other replica had pushed, so what it cannot see is each other replica's unconfirmed use,
//! at most `U` each, and its own admissions keep its view at or above zero, less its own
//! racing reservations. Hence, with `N` replicas, the allowance's true level (Redis's, had
//! every replica pushed everything) never goes below
//!
//! ```text
//! −[ (N − 1)·U + (W − 1)·A + E ]
//! ```
//!
//! where `E` is what settlements took beyond their estimates (a real figure larger than the
//! reservation is charged whatever the level, as with `LocalCounters`). Over any window of `t`
//! seconds, the cluster grants at most `per_minute · (1 + t/60)` plus that. With the defaults,
//! small requests (`A ≤ S`) and no races: **at most `(N − 1) · 10%` of one minute's allowance
//! over**. The bound does not depend on `sync_interval`: a longer interval makes views
//! staler (a replica may refuse while another has given back) and makes the cap bite sooner,
//! not the overshoot larger. Keeping the cap costs a burst: a replica refuses (the router then
//! treats the deployment as rate limited) once it used `S` within one push's round trip.
//!
//! Also counted as confirmed only when Redis answers: a view is stamped by the first call after
//! an answer, so the refill between Redis's reading and that call is lost (less room, not
//! more). If a replica's stored total has expired (away longer than the TTL), its last
//! acknowledged total stands in, and a push that Redis ran but whose answer was lost just
//! before is counted twice (more use, not less).
//!
//! # When Redis does not answer
//!
//! Each round has `call_timeout` (250 ms). A refused, dropped or timed-out round makes the
//! status [`Status::Disconnected`], logged once with `tracing::warn!`; the next answered round
//! makes it [`Status::Connected`] again, logged once with `info!`. The connection manager
//! reconnects by itself; nothing needs restarting. Meanwhile the [`Policy`] applies:
//!
//! - `FailOpen`: `has_room` answers from the view alone, which keeps refilling by local time
//!   and has no cap on unconfirmed use: each replica may use the whole allowance by itself,
//!   so the cluster may grant up to `N` times the allowance.
//! - `FailClosed`: `has_room` is false for every shared allowance.
//!
//! Adjustments made meanwhile (settlements of attempts in flight, and under `FailOpen`, new
//! reservations) are pushed when Redis answers again: nothing is lost, but one push moves an
//! allowance by at most one minute's worth, so a long outage cannot overdraw it further.
//! A Redis that restarted empty starts each allowance full and takes those pushes.
//!
//! # Startup
//!
//! [`RedisCounters::start`] connects and reads every allowance before returning; a URL that is
//! not a Redis URL, or a Redis that does not answer within `connect_timeout` (2 s), is a
//! [`SharedError`] naming the URL without its password. A replica that must come up without
//! Redis (sensible with `FailOpen` only) calls [`RedisCounters::start_detached`] instead, which
//! fails only on a bad URL and connects in the background.
//!
//! # Metrics
//!
//! [`RedisCounters::stats`] gives the [`Status`] (a bounded label, [`Status::as_str`]) and the
//! counts of answered and failed syncs, for e.g. `switchyard_shared_status{state}`,
//! `switchyard_shared_syncs_total` and `switchyard_shared_sync_failures_total`.

mod counters;
mod sync;
mod view;

use std::time::Duration;

pub use counters::{Policy, RedisCounters, Settings, Stats, Status};

/// Why shared counters could not start, or a flush did not reach Redis.
#[derive(Debug, thiserror::Error)]
pub enum SharedError {
    #[error("shared counters: {url} is not a usable Redis URL: {reason}")]
    Url { url: String, reason: String },
    #[error("shared counters: Redis at {url} did not answer within {within:?}: {reason}")]
    Unreachable { url: String, within: Duration, reason: String },
    #[error("shared counters: could not start the sync thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error("shared counters: Redis at {url} did not answer the sync")]
    Unavailable { url: String },
    #[error("shared counters: the sync thread has stopped")]
    Stopped,
}

// === impl SharedError ===

impl SharedError {
    /// A bounded label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            SharedError::Url { .. } => "bad_url",
            SharedError::Unreachable { .. } => "unreachable",
            SharedError::Thread(_) => "thread",
            SharedError::Unavailable { .. } => "unavailable",
            SharedError::Stopped => "stopped",
        }
    }
}

/// `url` with the password in its user info replaced by `***`, for errors and logs. Works on
/// text that does not parse as a URL too.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(i) => url.split_at(i + 3),
        None => ("", url),
    };
    let Some(at) = rest.rfind('@') else { return url.to_owned() };
    let (user_info, host) = rest.split_at(at);
    match user_info.split_once(':') {
        Some((user, _)) => format!("{scheme}{user}:***{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_are_removed_from_urls() {
        let cases = [
            ("redis://127.0.0.1:6379/", "redis://127.0.0.1:6379/"),
            ("redis://:hunter2@10.0.0.1:6379/0", "redis://:***@10.0.0.1:6379/0"),
            ("redis://app:hunter2@host/", "redis://app:***@host/"),
            ("redis://app@host/", "redis://app@host/"),
            ("redis//app:hunter2@host", "redis//app:***@host"),
            ("not a url", "not a url"),
        ];
        for (url, shown) in cases {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }
}
