//! Calendar dates and durations as written in job specs and catalogs, and back to text.
//!
//! [`Time`] here counts microseconds since the Unix epoch (UTC); the edge reads the clock and
//! passes it in. Dates are `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM[:SS]Z`; durations are `90s`,
//! `30m`, `36h`, `2d` or combinations such as `1h30m`.

use std::time::Duration;

use switchyard_core::Time;
use switchyard_core::calendar::{civil_from_days, days_from_civil};

const MICROS_PER_DAY: i64 = 86_400 * 1_000_000;

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

fn number(text: &str, digits: usize) -> Option<u32> {
    (text.len() == digits && text.bytes().all(|b| b.is_ascii_digit())).then(|| text.parse().ok()).flatten()
}

/// Parses `YYYY-MM-DD` (midnight UTC) or `YYYY-MM-DDTHH:MM[:SS]Z`, from 1970 to 9999.
pub fn parse_time(text: &str) -> Result<Time, String> {
    let bad = || format!("{text:?} is not a date (YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ, UTC)");
    let (date, clock) = match text.split_once('T') {
        Some((d, c)) => (d, Some(c.strip_suffix('Z').ok_or_else(bad)?)),
        None => (text, None),
    };
    let mut parts = date.split('-');
    let (Some(y), Some(m), Some(d), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    let (year, month, day) =
        (number(y, 4).ok_or_else(bad)?, number(m, 2).ok_or_else(bad)?, number(d, 2).ok_or_else(bad)?);
    if year < 1970 || !(1..=12).contains(&month) || day == 0 || day > days_in_month(i64::from(year), month) {
        return Err(bad());
    }
    let mut seconds = 0i64;
    if let Some(clock) = clock {
        let fields: Vec<&str> = clock.split(':').collect();
        let values: Option<Vec<u32>> = fields.iter().map(|f| number(f, 2)).collect();
        match values.as_deref() {
            Some([h, mi]) if *h < 24 && *mi < 60 => seconds = i64::from(h * 3600 + mi * 60),
            Some([h, mi, s]) if *h < 24 && *mi < 60 && *s < 60 => seconds = i64::from(h * 3600 + mi * 60 + s),
            _ => return Err(bad()),
        }
    }
    let micros = days_from_civil(i64::from(year), month, day) * MICROS_PER_DAY + seconds * 1_000_000;
    Ok(Time(micros as u64))
}

/// `YYYY-MM-DD HH:MM` UTC.
pub fn format_time(t: Time) -> String {
    let micros = t.0 as i64;
    let (year, month, day) = civil_from_days(micros.div_euclid(MICROS_PER_DAY));
    let secs = micros.rem_euclid(MICROS_PER_DAY) / 1_000_000;
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}", secs / 3600, secs % 3600 / 60)
}

/// `YYYY-MM-DD` UTC.
pub fn format_date(t: Time) -> String {
    format_time(t)[..10].to_owned()
}

/// Parses `90s`, `30m`, `36h`, `2d`, or a sequence such as `1h30m`; at most 400 days.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not a duration such as 90s, 30m, 36h, 2d or 1h30m");
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3_600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
        let n: u64 = digits.parse().map_err(|_| bad())?;
        total = total.saturating_add(n.saturating_mul(unit));
        digits.clear();
    }
    if !digits.is_empty() || total == 0 {
        return Err(bad());
    }
    if total > 400 * 86_400 {
        return Err(format!("{text:?} is longer than 400 days"));
    }
    Ok(Duration::from_secs(total))
}

/// A duration for people: `45s`, `12m`, `3h05m`, `2d04h`.
pub fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3_600 => format!("{}m", s / 60),
        3_600..86_400 => format!("{}h{:02}m", s / 3_600, s % 3_600 / 60),
        _ => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3_600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip_and_bad_ones_are_refused() {
        let t = parse_time("2026-12-01").unwrap();
        assert_eq!(t.0, 1_796_083_200 * 1_000_000);
        assert_eq!(format_time(t), "2026-12-01 00:00");
        assert_eq!(format_time(parse_time("2024-02-29T23:59:30Z").unwrap()), "2024-02-29 23:59");
        assert_eq!(format_date(parse_time("1970-01-01").unwrap()), "1970-01-01");
        for bad in ["2026-02-29", "2026-13-01", "2026-1-01", "26-12-01", "2026-12-01T25:00Z", "2026-12-01T10:00", ""] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
        for day in (0..200_000).step_by(997) {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day);
        }
    }

    #[test]
    fn durations_parse_and_print() {
        assert_eq!(parse_duration("36h").unwrap(), Duration::from_secs(36 * 3600));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("2d").unwrap(), Duration::from_secs(172_800));
        for bad in ["", "h", "10", "5w", "0s", "401d", "1.5h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format_duration(Duration::from_secs(90_000)), "1d01h");
    }
}
