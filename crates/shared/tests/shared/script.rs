//! `window.lua`'s contract, called directly: a total sent again counts once, a missing field
//! counts a replica's whole total, a read writes nothing, and a floor counts once.

use crate::common::remote_used;

const WINDOW_LUA: &str = include_str!("../../src/window.lua");

/// One push of one window: (this replica's total, a floor) → the window's use.
fn push(con: &mut redis::Connection, key: &str, replica: &str, total: f64, floor: Option<f64>) -> anyhow::Result<f64> {
    let script = redis::Script::new(WINDOW_LUA);
    let mut call = script.prepare_invoke();
    call.arg(format!("replica:{replica}")).key(key).arg(172_800_000u64).arg(total);
    match floor {
        Some(floor) => call.arg(floor),
        None => call.arg(""),
    };
    let answers: Vec<String> = call.invoke(con)?;
    Ok(answers.first().map(|a| a.parse::<f64>()).transpose()?.unwrap_or(f64::NAN))
}

#[test]
fn the_window_script_counts_totals_once_and_floors_once() -> anyhow::Result<()> {
    let Some(redis) = switchyard_testkit::redis() else { return Ok(()) };
    let url = redis.url();
    let mut con = redis::Client::open(url.as_str())?.get_connection()?;
    let key = "script:budget:t/daily_usd:20000";

    // A read of a window nobody used writes nothing.
    assert_eq!(push(&mut con, key, "a", 0.0, None)?, 0.0);
    assert_eq!(remote_used(&url, key)?, None);
    // Replica a's total, sent twice (an answer lost): counted once.
    assert_eq!(push(&mut con, key, "a", 1.5, None)?, 1.5);
    assert_eq!(push(&mut con, key, "a", 1.5, None)?, 1.5);
    // Replica b's, then a gives some back.
    assert_eq!(push(&mut con, key, "b", 2.0, None)?, 3.5);
    assert_eq!(push(&mut con, key, "a", 1.0, None)?, 3.0);
    let ttl = remote_used(&url, key)?.map_or(0, |(_, ttl)| ttl);
    assert!(ttl > 172_700_000, "TTL {ttl}");

    // Floors: the ledger said $5 before c started; b's and then a's spend counts on top, and a
    // second replica bringing the same floor adds nothing.
    assert_eq!(push(&mut con, key, "c", 0.0, Some(5.0))?, 5.0);
    assert_eq!(push(&mut con, key, "b", 2.5, None)?, 5.5);
    assert_eq!(push(&mut con, key, "d", 0.0, Some(5.0))?, 5.5);
    assert_eq!(push(&mut con, key, "a", 1.25, Some(4.0))?, 5.75);
    assert_eq!(remote_used(&url, key)?.map(|(used, _)| used), Some(5.75));

    // The server forgets everything: each replica's next push brings its whole total back.
    redis::cmd("FLUSHALL").exec(&mut con)?;
    assert_eq!(push(&mut con, key, "a", 1.25, None)?, 1.25);
    assert_eq!(push(&mut con, key, "b", 2.5, None)?, 3.75);
    Ok(())
}
