//! The spend report's arithmetic: UTC day and month windows, totals, budget use and commitment
//! burn-down. Pure: ledger rows, config values and `now_ms` in, numbers out; no IO, no clock.

use std::time::Duration;

use switchyard_core::Time;
use switchyard_core::config::{Commitment, TenantBudgets};
use switchyard_ledger::SpendRow;
use switchyard_placer::date::{format_date, parse_time};

pub(crate) const DAY_MS: i64 = 86_400_000;

/// How far back the daily rate of a commitment's spend is measured.
pub(crate) const RATE_DAYS: i64 = 7;

/// A half-open range of unix milliseconds, `[from_ms, to_ms)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Window {
    pub(crate) from_ms: i64,
    pub(crate) to_ms: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Period {
    Day,
    Month,
}

/// One tenant's spend in the current UTC day or month against its budget.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct BudgetUse {
    pub(crate) tenant: String,
    pub(crate) period: Period,
    pub(crate) budget_usd: f64,
    pub(crate) spent_usd: f64,
    /// Budget minus spend; negative when over.
    pub(crate) left_usd: f64,
    /// When the period ends and the budget starts afresh.
    pub(crate) resets_ms: i64,
}

/// A commitment's burn-down at `now_ms`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Burn {
    pub(crate) name: String,
    pub(crate) cloud: String,
    pub(crate) amount_usd: f64,
    /// `spent_at_start` plus what the ledger recorded on its deployments since the term began.
    pub(crate) spent_usd: f64,
    /// Where spend should be now on a straight-line pace.
    pub(crate) pace_usd: f64,
    /// The ledger's spend on its deployments over the last [`RATE_DAYS`] days, per day.
    pub(crate) per_day_usd: f64,
    pub(crate) term_end_ms: i64,
    /// Spend at term end if the daily rate holds.
    pub(crate) projected_usd: f64,
    /// What would be left unspent (and forfeited) at term end; zero when on track.
    pub(crate) shortfall_usd: f64,
}

impl Period {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Month => "month",
        }
    }
}

impl Burn {
    /// Spend ahead of (positive) or behind (negative) the pace.
    pub(crate) fn vs_pace_usd(&self) -> f64 {
        self.spent_usd - self.pace_usd
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The UTC day holding `now_ms`.
pub(crate) fn day(now_ms: i64) -> Window {
    let from_ms = now_ms.div_euclid(DAY_MS) * DAY_MS;
    Window { from_ms, to_ms: from_ms.saturating_add(DAY_MS) }
}

/// The UTC calendar month holding `now_ms` (the calendar comes from the placer's dates).
pub(crate) fn month(now_ms: i64) -> Window {
    let date = format_date(Time::from_millis(u64::try_from(now_ms).unwrap_or(0)));
    let (year, month) = (date[..4].parse::<u32>().unwrap_or(1970), date[5..7].parse::<u32>().unwrap_or(1));
    let first = |y: u32, m: u32| {
        parse_time(&format!("{y:04}-{m:02}-01")).map_or(i64::MAX, |t| i64::try_from(t.0 / 1_000).unwrap_or(i64::MAX))
    };
    let next = if month == 12 { first(year + 1, 1) } else { first(year, month + 1) };
    Window { from_ms: first(year, month), to_ms: next }
}

/// The last [`RATE_DAYS`] days before `now_ms`, and anything recorded after it.
pub(crate) fn rate_window(now_ms: i64) -> Window {
    Window { from_ms: now_ms.saturating_sub(RATE_DAYS * DAY_MS), to_ms: i64::MAX }
}

/// Since the commitment's term began, taken as `elapsed_at_start` before `now_ms`.
pub(crate) fn term_window(c: &Commitment, now_ms: i64) -> Window {
    Window { from_ms: now_ms.saturating_sub(millis(c.elapsed_at_start)), to_ms: i64::MAX }
}

/// The sum of `rows`, under the key `total`.
pub(crate) fn total(rows: &[SpendRow]) -> SpendRow {
    rows.iter().fold(
        SpendRow { key: "total".to_owned(), requests: 0, input_tokens: 0, output_tokens: 0, cost_usd: 0.0 },
        |mut sum, r| {
            sum.requests = sum.requests.saturating_add(r.requests);
            sum.input_tokens = sum.input_tokens.saturating_add(r.input_tokens);
            sum.output_tokens = sum.output_tokens.saturating_add(r.output_tokens);
            sum.cost_usd += r.cost_usd;
            sum
        },
    )
}

/// The cost of `key`'s rows; `0.0` for none (an empty `sum` of floats is `-0.0`).
fn cost_of(rows: &[SpendRow], key: &str) -> f64 {
    rows.iter().filter(|r| r.key == key).fold(0.0, |sum, r| sum + r.cost_usd)
}

/// Each budget of each tenant against its spend: `today` and `this_month` are per-tenant rows
/// for [`day`] and [`month`] of `now_ms`. Tenants without budgets are left out.
pub(crate) fn budgets<'a>(
    tenants: impl IntoIterator<Item = (&'a str, TenantBudgets)>,
    today: &[SpendRow],
    this_month: &[SpendRow],
    now_ms: i64,
) -> Vec<BudgetUse> {
    let mut out = Vec::new();
    for (tenant, b) in tenants {
        let periods =
            [(Period::Day, b.daily_usd, today, day(now_ms)), (Period::Month, b.monthly_usd, this_month, month(now_ms))];
        for (period, budget, rows, window) in periods {
            let Some(budget_usd) = budget else { continue };
            let spent_usd = cost_of(rows, tenant);
            out.push(BudgetUse {
                tenant: tenant.to_owned(),
                period,
                budget_usd,
                spent_usd,
                left_usd: budget_usd - spent_usd,
                resets_ms: window.to_ms,
            });
        }
    }
    out
}

/// The burn-down of commitment `c` (on `cloud`), with the term taken to start
/// `elapsed_at_start` before `now_ms`: `recorded_usd` is the ledger's spend on its deployments
/// over [`term_window`], `last_days_usd` over [`rate_window`].
pub(crate) fn burn(c: &Commitment, cloud: &str, recorded_usd: f64, last_days_usd: f64, now_ms: i64) -> Burn {
    // `+ 0.0` turns the `-0.0` of an empty sum into `0.0`.
    let spent_usd = c.spent_at_start + recorded_usd + 0.0;
    let left = c.term.saturating_sub(c.elapsed_at_start);
    let per_day_usd = last_days_usd / RATE_DAYS as f64 + 0.0;
    let projected_usd = spent_usd + per_day_usd * left.as_secs_f64() / 86_400.0;
    Burn {
        name: c.name.clone(),
        cloud: cloud.to_owned(),
        amount_usd: c.amount_usd,
        spent_usd,
        pace_usd: c.pace(Duration::ZERO),
        per_day_usd,
        term_end_ms: now_ms.saturating_add(millis(left)),
        projected_usd,
        shortfall_usd: (c.amount_usd - projected_usd).max(0.0),
    }
}

#[cfg(test)]
mod tests {
    use switchyard_core::config::{CloudId, CommitmentId};

    use super::*;

    /// 2026-03-15 12:00 UTC.
    const NOW: i64 = 1_773_576_000_000;

    fn row(key: &str, cost_usd: f64) -> SpendRow {
        SpendRow { key: key.to_owned(), requests: 2, input_tokens: 10, output_tokens: 5, cost_usd }
    }

    fn days(n: u64) -> Duration {
        Duration::from_secs(n * 86_400)
    }

    #[test]
    fn windows_are_utc_days_and_calendar_months() {
        assert_eq!(day(NOW), Window { from_ms: NOW - DAY_MS / 2, to_ms: NOW + DAY_MS / 2 });
        // March 2026: from the 1st to April 1st.
        assert_eq!(month(NOW), Window { from_ms: 1_772_323_200_000, to_ms: 1_775_001_600_000 });
        // December rolls over into the next year; a month's first millisecond is in it.
        let dec = 1_796_083_200_000; // 2026-12-01
        assert_eq!(month(dec), Window { from_ms: dec, to_ms: 1_798_761_600_000 });
        assert_eq!(month(dec - 1).to_ms, dec);
        assert_eq!(rate_window(NOW).from_ms, NOW - 7 * DAY_MS);
    }

    #[test]
    fn totals_add_up() {
        let t = total(&[row("a", 1.5), row("b", 0.25)]);
        assert_eq!((t.key.as_str(), t.requests, t.input_tokens, t.output_tokens), ("total", 4, 20, 10));
        assert!((t.cost_usd - 1.75).abs() < 1e-12);
    }

    #[test]
    fn budgets_compare_spend_to_each_period_and_skip_tenants_without() {
        let tenants = [
            ("acme", TenantBudgets { daily_usd: Some(5.0), monthly_usd: Some(100.0) }),
            ("free", TenantBudgets::default()),
            ("lab", TenantBudgets { daily_usd: None, monthly_usd: Some(10.0) }),
        ];
        let today = [row("acme", 2.0), row("lab", 1.0)];
        let this_month = [row("acme", 40.0), row("lab", 12.5), row("free", 9.0)];
        let quiet = budgets([tenants[0]], &[], &[], NOW);
        assert!(quiet.iter().all(|u| u.spent_usd.is_sign_positive()), "no spend is +0, not -0: {quiet:?}");
        let uses = budgets(tenants, &today, &this_month, NOW);
        let summary: Vec<_> = uses.iter().map(|u| (u.tenant.as_str(), u.period, u.spent_usd, u.left_usd)).collect();
        assert_eq!(
            summary,
            [("acme", Period::Day, 2.0, 3.0), ("acme", Period::Month, 40.0, 60.0), ("lab", Period::Month, 12.5, -2.5)]
        );
        assert_eq!(uses[0].resets_ms, day(NOW).to_ms);
        assert_eq!(uses[1].resets_ms, month(NOW).to_ms);
    }

    fn commitment() -> Commitment {
        Commitment {
            id: CommitmentId(0),
            name: "aws-1yr".to_owned(),
            cloud: CloudId(0),
            amount_usd: 3_650.0,
            term: days(365),
            elapsed_at_start: days(100),
            spent_at_start: 500.0,
            deployments: Vec::new(),
        }
    }

    #[test]
    fn burn_down_projects_the_last_weeks_rate_to_term_end() {
        let c = commitment();
        // 100 days in on 10 $/day of pace: 1000 $ due; 500 + 200 spent; 70 $ in the last week.
        let b = burn(&c, "aws", 200.0, 70.0, NOW);
        assert_eq!((b.spent_usd, b.pace_usd, b.per_day_usd), (700.0, 1_000.0, 10.0));
        assert_eq!(b.vs_pace_usd(), -300.0);
        assert_eq!(b.term_end_ms, NOW + 265 * DAY_MS);
        // 700 + 10 $/day for the 265 days left = 3350: 300 short of 3650.
        assert!((b.projected_usd - 3_350.0).abs() < 1e-9);
        assert!((b.shortfall_usd - 300.0).abs() < 1e-9);
        assert_eq!(term_window(&c, NOW).from_ms, NOW - 100 * DAY_MS);
    }

    #[test]
    fn burn_down_on_track_or_past_its_term_has_no_shortfall() {
        let c = commitment();
        assert_eq!(burn(&c, "aws", 0.0, 700.0, NOW).shortfall_usd, 0.0);
        let idle = burn(&Commitment { spent_at_start: -0.0, ..commitment() }, "aws", -0.0, -0.0, NOW);
        assert!(idle.spent_usd.is_sign_positive() && idle.per_day_usd.is_sign_positive(), "{idle:?}");
        let ended = Commitment { elapsed_at_start: days(400), ..commitment() };
        let b = burn(&ended, "aws", 0.0, 700.0, NOW);
        assert_eq!((b.pace_usd, b.projected_usd, b.term_end_ms), (3_650.0, 500.0, NOW));
        assert_eq!(b.shortfall_usd, 3_150.0);
    }
}
