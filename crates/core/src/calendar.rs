//! The wall clock's calendar, for what runs by UTC days and months (tenants' budgets, the
//! placer's dates): proleptic Gregorian arithmetic on day numbers since 1970-01-01, and the
//! mapping of the core's [`Time`] to Unix time. No clock is read here.

use crate::time::Time;

/// A budget window's length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Period {
    /// A UTC calendar day.
    Day,
    /// A UTC calendar month.
    Month,
}

/// Maps the core's [`Time`] to the wall clock: the Unix time (ms) at `Time::ZERO`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Calendar {
    pub unix_ms_at_zero: i64,
}

// === impl Calendar ===

impl Calendar {
    pub fn unix_ms(&self, at: Time) -> i64 {
        self.unix_ms_at_zero.saturating_add(i64::try_from(at.as_micros() / 1_000).unwrap_or(i64::MAX))
    }

    /// The core time of a Unix time (ms); `Time::ZERO` for one before it.
    pub fn time_of(&self, unix_ms: i64) -> Time {
        Time::from_millis(u64::try_from(unix_ms.saturating_sub(self.unix_ms_at_zero)).unwrap_or(0))
    }
}

/// The window a Unix time falls in: days since 1970 for a day, months since 1970 for a month.
pub fn window_of(period: Period, unix_ms: i64) -> i64 {
    let day = unix_ms.div_euclid(86_400_000);
    match period {
        Period::Day => day,
        Period::Month => {
            let (y, m, _) = civil_from_days(day);
            (y - 1970) * 12 + i64::from(m) - 1
        }
    }
}

/// When the window containing `unix_ms` starts (that UTC midnight, or the month's first).
pub fn window_start(period: Period, unix_ms: i64) -> i64 {
    let day = unix_ms.div_euclid(86_400_000);
    match period {
        Period::Day => day * 86_400_000,
        Period::Month => {
            let (y, m, _) = civil_from_days(day);
            days_from_civil(y, m, 1) * 86_400_000
        }
    }
}

/// When the window containing `unix_ms` ends (the next UTC midnight, or the next month's first).
pub fn window_end(period: Period, unix_ms: i64) -> i64 {
    let day = unix_ms.div_euclid(86_400_000);
    match period {
        Period::Day => (day + 1) * 86_400_000,
        Period::Month => {
            let (y, m, _) = civil_from_days(day);
            let (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
            days_from_civil(y, m, 1) * 86_400_000
        }
    }
}

/// (year, month 1–12, day 1–31) of a day counted from 1970-01-01, proleptic Gregorian.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // Shift the epoch to 0000-03-01, so that leap days end each 400-year era's years.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * shifted_month + 2) / 5 + 1) as u32;
    let month = if shifted_month < 10 { shifted_month + 3 } else { shifted_month - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Days from 1970-01-01 to a date, the inverse of [`civil_from_days`].
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let shifted_month = i64::from(if month > 2 { month - 3 } else { month + 9 });
    let day_of_year = (153 * shifted_month + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// `YYYY-MM-DDTHH:MM:SSZ` for a Unix time in ms.
pub fn format_utc(unix_ms: i64) -> String {
    let (y, m, d) = civil_from_days(unix_ms.div_euclid(86_400_000));
    let s = unix_ms.div_euclid(1_000).rem_euclid(86_400);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", s / 3_600, s / 60 % 60, s % 60)
}
