//! Budget windows end at UTC midnight (and at the month's end): spend before the boundary does
//! not count after it, and a settlement gives back its estimate in the window of its admission,
//! never crediting the next one. Time moves by the core's `Time` arguments, not by sleeping.

use std::time::Duration;

use switchyard_core::Time;
use switchyard_core::counters::{Counters, LimitId};
use switchyard_core::tenancy::{Calendar, Period, window_of};
use switchyard_shared::{RedisWindows, Settings};

use crate::common::{budget, calendar_at, remote_used, runtime};

const DAILY: LimitId = LimitId(0);
const MONTHLY: LimitId = LimitId(1);

fn near(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn spend_before_midnight_does_not_count_after_it_nor_does_a_give_back_cross_it() -> anyhow::Result<()> {
    let Some(redis) = switchyard_testkit::redis() else { return Ok(()) };
    let url = redis.url();
    let specs =
        [budget("tenant/acme/daily_usd", Period::Day, 10.0), budget("tenant/acme/monthly_usd", Period::Month, 100.0)];
    // Time::ZERO is 2025-01-31 23:59:59.900 UTC: the last moments of a day and of a month.
    let calendar = calendar_at(2025, 1, 31, 86_400_000 - 100);
    let rt = runtime()?;
    let a = RedisWindows::start(&url, "edge", &specs, calendar, Settings::default())?;
    // b syncs only when asked (a flush, or a first look at a window): a periodic round of its
    // own could read the day's window (its clock starts on it too) before the check below.
    let quiet = Settings { sync_interval: Duration::from_secs(60), ..Settings::default() };
    let b = RedisWindows::start(&url, "edge", &specs, calendar, quiet)?;
    let before = Time::ZERO;
    let after = Time::from_millis(200);
    let key = |name: &str, period, at: Time| {
        format!("edge:budget:tenant/acme/{name}:{}", window_of(period, calendar.unix_ms(at)))
    };
    let stored = |name: &str, period, at: Time| -> anyhow::Result<f64> {
        Ok(remote_used(&url, &key(name, period, at))?.map_or(0.0, |(used, _)| used))
    };
    let take = |w: &RedisWindows, usd: f64, at: Time| {
        for id in [DAILY, MONTHLY] {
            w.adjust(id, -usd, at);
        }
    };

    // Before midnight: a spends $5.95 and holds a $4 reservation; b sees the day used up.
    assert!(a.has_room(DAILY, 9.95, before));
    take(&a, 5.95, before);
    take(&a, 4.0, before);
    rt.block_on(a.flush())?;
    // b's first call this day: it has no answer for the day yet (its start read the system
    // clock's), so it sees nothing used, and asks Redis at once.
    assert_eq!(b.used(DAILY, before), 0.0);
    rt.block_on(b.flush())?;
    assert!(near(b.used(DAILY, before), 9.95), "b sees {}", b.used(DAILY, before));
    assert!(!b.has_room(DAILY, 0.1, before));

    // After midnight (and in a new month): nothing used yet, on either replica.
    for w in [&a, &b] {
        assert_eq!(w.used(DAILY, after), 0.0);
        assert!(w.has_room(DAILY, 9.95, after) && w.has_room(MONTHLY, 99.0, after));
    }
    // b spends $9 today.
    take(&b, 9.0, after);
    rt.block_on(b.flush())?;
    rt.block_on(a.flush())?;
    assert!(near(a.used(DAILY, after), 9.0));

    // a's request admitted before midnight ends now and costs $3.50: its $4 estimate comes back
    // in yesterday's window (as `Tenancy::settle` stamps it), its cost is charged today.
    for id in [DAILY, MONTHLY] {
        a.adjust(id, 4.0, before);
        a.adjust(id, -3.5, after);
    }
    assert!(near(a.used(DAILY, after), 12.5), "today: {}", a.used(DAILY, after));
    assert!(near(a.used(DAILY, before), 5.95), "yesterday: {}", a.used(DAILY, before));
    assert!(!a.has_room(DAILY, 0.01, after), "the give-back did not credit today");
    rt.block_on(a.flush())?;
    rt.block_on(b.flush())?;
    assert!(near(b.used(DAILY, after), 12.5) && !b.has_room(DAILY, 0.01, after));
    assert!(near(b.used(MONTHLY, after), 12.5));
    for (name, period) in [("daily_usd", Period::Day), ("monthly_usd", Period::Month)] {
        assert!(near(stored(name, period, before)?, 5.95), "{name} before: {}", stored(name, period, before)?);
        assert!(near(stored(name, period, after)?, 12.5), "{name} after: {}", stored(name, period, after)?);
    }
    // A month's key lives about 32 days, a day's about 2.
    let ttl = |name, period| remote_used(&url, &key(name, period, after)).map(|r| r.map_or(0, |(_, ttl)| ttl));
    let day_ms = 86_400_000;
    assert!((2 * day_ms - 60_000..=2 * day_ms).contains(&ttl("daily_usd", Period::Day)?));
    assert!((32 * day_ms - 60_000..=32 * day_ms).contains(&ttl("monthly_usd", Period::Month)?));

    // A day on, the day before midnight is no longer kept: a change stamped in it is dropped;
    // the day after midnight, now yesterday, still takes its give-backs.
    let later = after + Duration::from_secs(86_400);
    assert!(a.has_room(DAILY, 10.0, later));
    a.adjust(DAILY, 5.95, before);
    a.adjust(DAILY, 1.0, after);
    rt.block_on(a.flush())?;
    assert!(near(stored("daily_usd", Period::Day, before)?, 5.95));
    assert!(near(stored("daily_usd", Period::Day, after)?, 11.5));
    assert_eq!(a.used(DAILY, later), 0.0);
    Ok(())
}

/// A replica whose calendar is far from the system clock: the sync thread's first guess (the
/// system clock's day) gives way to the callers' days.
#[test]
fn a_calendar_far_from_the_system_clock_is_followed() -> anyhow::Result<()> {
    let Some(redis) = switchyard_testkit::redis() else { return Ok(()) };
    let specs = [budget("t/daily_usd", Period::Day, 1.0)];
    let calendar = Calendar { unix_ms_at_zero: 86_400_000 * 3 + 1_000 };
    let rt = runtime()?;
    let a = RedisWindows::start(&redis.url(), "far", &specs, calendar, Settings::default())?;
    let b = RedisWindows::start(&redis.url(), "far", &specs, calendar, Settings::default())?;
    a.adjust(DAILY, -0.75, Time::ZERO);
    rt.block_on(a.flush())?;
    assert!(b.has_room(DAILY, 0.25, Time::ZERO), "b moves to day 3 and asks");
    rt.block_on(b.flush())?;
    assert!(near(b.used(DAILY, Time::ZERO), 0.75) && !b.has_room(DAILY, 0.3, Time::ZERO));
    let stored = remote_used(&redis.url(), "far:budget:t/daily_usd:3")?;
    assert!(stored.is_some_and(|(used, _)| near(used, 0.75)), "{stored:?}");
    Ok(())
}
