//! Starting against a bad URL, a closed port or a server that never answers fails quickly and
//! names the URL without its password; a detached start comes up anyway and follows its policy.

use std::net::{Ipv4Addr, TcpListener};
use std::time::{Duration, Instant};

use switchyard_core::counters::{Counters, LimitId};
use switchyard_shared::{Policy, RedisCounters, Settings, SharedError, Status};

use crate::common::{Clock, spec, wait_for};

fn settings(policy: Policy) -> Settings {
    Settings { policy, connect_timeout: Duration::from_millis(500), ..Settings::default() }
}

/// Starts against `url` and expects an error of `kind` within `within`, whose message names
/// `shown` and not the password.
fn check(url: &str, kind: &str, shown: &str, within: Duration) {
    let started = Instant::now();
    let result = RedisCounters::start(url, "startup", &[spec("d/tpm", 60.0)], settings(Policy::FailOpen));
    let took = started.elapsed();
    let error: SharedError = match result {
        Ok(c) => panic!("{url}: started: {c:?}"),
        Err(e) => e,
    };
    let message = error.to_string();
    eprintln!("{url}: {message} ({took:?})");
    assert_eq!(error.kind(), kind, "{message}");
    assert!(message.contains(shown), "{message} does not name {shown}");
    assert!(!message.contains("hunter2"), "{message} shows the password");
    assert!(took < within, "{url}: took {took:?}");
}

#[test]
fn bad_urls_and_unreachable_servers_fail_quickly_and_clearly() -> anyhow::Result<()> {
    let second = Duration::from_secs(1);
    check("definitely not a url", "bad_url", "definitely not a url", second);
    check("redis://app:hunter2@127.0.0.1:notaport/", "bad_url", "redis://app:***@127.0.0.1:notaport/", second);
    let port = switchyard_testkit::free_port();
    let refused = format!("redis://app:hunter2@127.0.0.1:{port}/");
    check(&refused, "unreachable", &format!("redis://app:***@127.0.0.1:{port}/"), 2 * second);
    // With no allowance to read, a start still asks Redis.
    let empty = RedisCounters::start(&refused, "startup", &[], settings(Policy::FailOpen));
    assert!(matches!(empty, Err(SharedError::Unreachable { .. })), "{empty:?}");
    // Accepts connections (the kernel's backlog) and never answers.
    let silent = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let url = format!("redis://127.0.0.1:{}/", silent.local_addr()?.port());
    check(&url, "unreachable", &url, 2 * second);
    Ok(())
}

#[test]
fn a_detached_start_comes_up_without_redis_and_follows_its_policy() -> anyhow::Result<()> {
    let port = switchyard_testkit::free_port();
    let url = format!("redis://127.0.0.1:{port}/");
    let clock = Clock::new();
    let specs = [spec("d/rpm", 60.0)];
    let open = RedisCounters::start_detached(&url, "startup", &specs, settings(Policy::FailOpen))?;
    let closed = RedisCounters::start_detached(&url, "startup", &specs, settings(Policy::FailClosed))?;
    let down = wait_for(Duration::from_secs(3), || {
        open.status() == Status::Disconnected && closed.status() == Status::Disconnected
    });
    assert!(down, "{open:?} {closed:?}");
    assert!(open.stats().sync_failures > 0 && open.stats().syncs == 0);
    let id = LimitId(0);
    // Fail-open: the local bucket alone, starting full.
    for _ in 0..60 {
        assert!(open.has_room(id, 1.0, clock.now()));
        open.adjust(id, -1.0, clock.now());
    }
    assert!(!open.has_room(id, 1.0, clock.now()), "the local bucket still limits");
    // Fail-closed: nothing.
    assert!(!closed.has_room(id, 1.0, clock.now()));
    // A bad URL still fails a detached start.
    let bad = RedisCounters::start_detached("nope", "startup", &specs, Settings::default());
    assert!(matches!(bad, Err(SharedError::Url { .. })), "{bad:?}");
    Ok(())
}
