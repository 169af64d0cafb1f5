//! State shared by gateway replicas through Redis, behind the core's `Counters` seam
//! (`switchyard_core::counters::Counters`): [`RedisCounters`], per-minute allowances held
//! cluster-wide, and [`RedisWindows`], tenants' (and managed keys') daily and monthly dollar
//! budgets held cluster-wide (see [Budgets](#budgets) for what differs); and behind the core's
//! `Signals` seam (`switchyard_core::signals::Signals`), [`RedisSignals`]: deployments'
//! ejections, cool-downs and recoveries, and their concurrency limits held cluster-wide (see
//! [Deployment signals](#deployment-signals)).
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
//! Allowances made after start (a managed key's, `key/<id>/tpm`) are added by name
//! ([`Counters::add_limit`](switchyard_core::counters::Counters::add_limit)): appended to the
//! table callers and the sync thread share (an append-only list read with no lock, so adding
//! never blocks a request), found again by name when added again (with the new size), and
//! synced from the next round on; the replica asks for a round at once. Every replica derives the
//! same name, so they share the bucket. An allowance
//! [`retire`d](switchyard_core::counters::Counters::retire) (its key revoked) is skipped by
//! the rounds until it is added again; what was done with it meanwhile is pushed then.
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
//! An allowance added at run time changes nothing here: until Redis has answered for it, all of
//! a replica's use of it is unconfirmed and held to `S`, as for any allowance at start, so
//! another replica's view of it (full, or Redis's level) misses at most `U` of each replica.
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
//! [`RedisCounters::stats`] (and [`RedisWindows::stats`]) gives the [`Status`] (a bounded
//! label, [`Status::as_str`]) and the counts of answered and failed syncs, for e.g.
//! `switchyard_shared_status{state}` and `switchyard_shared_syncs_total{result="ok"|"failed"}`.
//! [`RedisSignals::stats`] likewise (`switchyard_shared_signals_status{state}`,
//! `switchyard_shared_signals_syncs_total{result}`).
//!
//! # Budgets
//!
//! [`RedisWindows`] keeps the core's budgets (a `BudgetSpec`: a name, a period, dollars) with
//! the same architecture: a view per budget answering at once, a sync thread of its own
//! (`switchyard-redis-budgets`, its own connection) pushing running totals idempotently and
//! reading back, the same [`Settings`], [`Policy`], [`Status`], startup and flush, and budgets
//! added at run time by name (`add_budget`, `retire`) as allowances are. What differs is that a
//! budget is a fixed window, not a refilling bucket:
//!
//! - **Keys.** Each budget and window is a hash under `{prefix}:budget:{name}:{window}`, the
//!   window numbered by the core's `window_of` (days or months since 1970, UTC): `used`, the
//!   dollars used there by every replica, and one field per replica holding that replica's
//!   running total there. One Lua script (`window.lua`) adds the difference between a
//!   replica's total and its field, in the same write, so a push sent again after a lost
//!   answer counts once, and a missing field (a new window, or a server that restarted empty)
//!   means none of that replica's use is in `used`: its whole total counts again. A window's
//!   key lives 2 days (a month's, 32) after its last change; `key_ttl` does not apply.
//! - **Time.** Calls get the core's `now`; the `Calendar` maps it to the wall clock, and a
//!   change counts in the window its time falls in: a settlement gives back its estimate in
//!   the window of the admission (the core's `Tenancy::settle` stamps it so), which may be
//!   yesterday's, and it does not credit today. The view keeps the current and the previous
//!   window of each budget (pushing the previous one until Redis has all of it) and drops
//!   older ones, whose budgets no longer matter. The sync thread reads the windows callers
//!   last moved into (by the system clock before any call, so that `start` reads today's);
//!   a caller moving a budget into a new window wakes it at once.
//! - **Room.** [`Counters::has_room`](switchyard_core::counters::Counters::has_room)`(id, usd,
//!   now)` is: used in `now`'s window as Redis last said, plus this replica's use there since
//!   the push that answer reflects, plus `usd`, within the budget; and while connected, that
//!   unconfirmed use within `S = unconfirmed_share · budget` as for allowances (unless it is
//!   zero). A window the view has no answer for yet counts as unused, under the same cap.
//! - **Floors.** Spend recorded before a replica started (the ledger's) must not be counted
//!   once per replica, as each replica adjusting by it would: [`RedisWindows::preload`] makes
//!   it a floor under the window's use instead (see `window.lua`).
//!
//! ## The overshoot bound for budgets
//!
//! With `U = max(S, A) + (W − 1)·A` as above (`A` the largest reservation, `W` the threads that
//! may check then reserve at once), each replica's unconfirmed use of a window is at most `U`
//! after an admission, and no window refills. Take the replica `f` whose last admission in the
//! window relied on the freshest answer from Redis. That answer counted every push Redis had
//! run, so for each other replica `q` at least what `q` had pushed when the (older) answer
//! `q`'s own last admission relied on came: what `f` could not see of `q` is at most `q`'s
//! unconfirmed use at that admission plus the admission, at most `U`. A replica with no answer
//! for the window yet counts it as unused, but all its use there is unconfirmed, so at most
//! `U` too. And `f`'s own check kept `remote + unconfirmed + usd ≤ budget`. Hence, with `N`
//! replicas, the dollars used in one window never pass
//!
//! ```text
//! budget + (N − 1)·U + (W − 1)·A + E
//! ```
//!
//! where `E` is what settlements charged beyond their estimates in that window, including the
//! whole cost of requests admitted in the previous window and settled in this one (their
//! estimates were reserved, and are given back, in the previous window), and a charge that a
//! push separated from its give-back (a settlement is two adjustments). With the defaults,
//! requests estimated below 10% of the budget and no races: **at most `(N − 1) · 10%` of the
//! budget over, per window**. As for allowances, it does not depend on `sync_interval`.
//!
//! When Redis does not answer, `FailOpen` answers from the view alone with no cap: each replica
//! may spend what it last saw left, so the cluster may spend up to `N` budgets' worth in the
//! worst case; `FailClosed` refuses every shared budget. Adjustments made meanwhile are pushed
//! when Redis answers again (there is no cap per push: a window's use is what was spent). A
//! Redis that restarted empty gets back, at the next push, every running replica's whole total
//! for the current window (and the previous one, while unacknowledged); what replicas no
//! longer running spent, and floors, went with it.
//!
//! # Deployment signals
//!
//! [`RedisSignals`] shares what one replica learns about a deployment with the others, with
//! the same architecture again (answers from memory, a sync thread of its own,
//! `switchyard-redis-signals`, the same [`Settings`], [`Policy`], [`Status`], startup and
//! flush). The core's `RouterState` publishes each transition as it happens and, whenever it
//! reads a deployment to plan or start an attempt, takes in what changed (one atomic load when
//! nothing did).
//!
//! - **Keys.** Per deployment, by its name: `{prefix}:signals:{name}`, a hash of the latest
//!   ejection's start and end, the latest recovery and the latest cool-down's end, in Unix ms
//!   (each process's core `Time` starts at its own zero; the wall clock is what replicas share,
//!   through the router's `Calendar`); and `{prefix}:inflight:{name}`, a field per replica
//!   holding its attempts in flight there and when that count's lease ends.
//! - **Signals.** One Lua script (`signals.lua`) per round and chunk of deployments merges
//!   this replica's unconfirmed signals into the hash as the core's `Heard::record` does (a
//!   recovery moves on; the latest ejection made after the latest recovery is kept; a
//!   cool-down keeps the later end), renews the key (it lives `key_ttl` past the latest
//!   instant it holds) and answers what the hash holds. Merging is idempotent, so a push sent
//!   again after a lost answer changes nothing; a replica keeps its signals until an answer
//!   confirms them. Publishing a signal asks for a round at once, so the others learn it
//!   within about one `sync_interval` (their next round). A replica takes in an ejection
//!   still running (it stops planning the deployment until the end the ejecting replica set,
//!   then probes it itself), a cool-down still running, and a recovery, which ends every
//!   ejection made until then (a probe that succeeded on one replica brings the deployment back
//!   on all of them). Instants are compared across machines, so clock skew between replicas
//!   moves ends by as much.
//! - **Concurrency.** A deployment's `limits.concurrency` is a cluster-wide cap. Each round
//!   writes this replica's attempts in flight there with a lease (`lease`, 2 s; a count of zero
//!   removes the field) and answers the sum of the other replicas' counts whose lease has not
//!   run out (dropping the rest): a replica that died, or lost Redis, stops counting within a
//!   lease. A replica's room check is then its own live count plus the others' last answered
//!   sum, against the limit. The limit learned from 429s (AIMD) stays each replica's own,
//!   against its own attempts; whichever is fuller binds.
//!
//! ## The overshoot bound for concurrency
//!
//! Others' counts are as stale as the last answer, so every replica may admit attempts the
//! others do not see yet. What bounds it: while connected, at most `S = max(1, ⌊unconfirmed_share ·
//! limit⌋)` attempts may begin on a replica since the count Redis last confirmed (then the
//! replica refuses until the next answer; reaching `S` asks for a round at once). A round reads
//! `begun` before the count it publishes, so every attempt is either in a published count or
//! among those `S`. And a check and its booking are one step under the deployment's lock, so no
//! threads race past the check.
//!
//! Take the moment the cluster's attempts in flight peak, and the replica `f` whose last
//! admission before it relied on the freshest answer. That answer summed every other replica's
//! count as of its last round before it; each of those replicas has since begun at most `S`
//! more (none of its admissions relied on a later answer), and ended some. And `f`'s own check
//! kept its count plus that sum within the limit. Hence, with `N` replicas, attempts in
//! flight on a deployment never pass
//!
//! ```text
//! limit + (N − 1)·S
//! ```
//!
//! With the defaults: a limit of 4 on two replicas admits at most 5; a limit of 100, at most 110.
//! It does not depend on `sync_interval`. Keeping the cap costs a burst: a replica starts at
//! most `S` attempts there per round trip to Redis.
//!
//! When Redis does not answer: `FailOpen` counts each replica's own attempts alone (so the
//! cluster may reach `N · limit`); `FailClosed` starts no attempt where a concurrency limit is
//! set. Either way, ejections and cool-downs heard so far still apply and each replica's own
//! outlier detection goes on; signals published meanwhile are pushed when Redis answers again
//! (by then most have ended, which is harmless). A replica cut off for longer than the lease is
//! no longer counted by the others.
//!
//! ## Tenants' and keys' concurrency: gauges
//!
//! A tenant's or managed key's `concurrency` limit is counted the same way, as a *gauge* named
//! `tenant/<name>/concurrency` or `key/<id>/concurrency` (added at run time, found again by
//! name, retired with its key), in `{prefix}:gauge:{name}`: a field per replica with its count
//! and lease, written and summed by `gauges.lua` in the same rounds as the deployments. The
//! same script keeps `{prefix}:replicas`, each replica's presence under its lease, and answers
//! how many are alive (`R`).
//!
//! Admission differs in one respect: a request refused is a caller's 429, not a deployment
//! skipped, so a burst far from the limit must not wait for Redis. A replica may begin, since
//! its count was last confirmed, as many requests as the larger of the fixed cap `S` and its
//! share of the room it then saw, `⌊(limit − others − its count) / R⌋` (the core's
//! `gauge_cap`); and never past the limit as it sees it (its count plus the others'). Reaching
//! `S` asks for a round at once. When the replicas' last answers saw the same counts, their
//! shares add up to the room, and the cluster stays within `limit + N·S`. When one replica's
//! answer is older than another's admissions, their shares of the same room overlap: the worst
//! case is every other replica bursting its whole share of a room it saw before the rest was
//! used, `limit + (N − 1)·max(S, ⌊limit / N⌋)`, under twice the limit. It takes simultaneous
//! bursts on every replica within one round trip; two replicas bursting at once from idle on a
//! limit of 10 admit exactly 10 (a test shows it).
//!
//! When Redis does not answer, the policies apply as for deployments: `FailOpen` counts each
//! replica's own requests alone; `FailClosed` refuses the requests of a tenant or key with a
//! concurrency limit (429).

mod budget;
mod counters;
mod flight;
mod gauges;
mod settings;
mod signals;
mod sync;
mod view;
mod windows;

use std::time::Duration;

pub use counters::RedisCounters;
pub use settings::{Policy, Settings, Stats, Status};
pub use signals::RedisSignals;
pub use windows::RedisWindows;

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
