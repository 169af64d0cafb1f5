//! `switchyard spend`: what the ledger recorded, per cloud, tenant, key, alias or deployment, as
//! a table, JSON or CSV; with a config, each tenant's budget use and each commitment's burn-down.
//! The arithmetic is in `calc`; this file reads the ledger and prints.

mod calc;

use std::fmt::Write as _;
use std::process::ExitCode;

use switchyard_ledger::{Group, SpendRow};
use switchyard_placer::table::grid;
use switchyard_wire::display::for_log;

use self::calc::{BudgetUse, Burn, RATE_DAYS, Window};
use crate::ledger_args::{LedgerArgs, Opened, When, exit_code, now_ms, parse_when, show_time, usage};
use crate::out;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum By {
    Cloud,
    Tenant,
    Key,
    Alias,
    Deployment,
}

#[derive(clap::Args, Clone, Debug)]
pub(crate) struct SpendArgs {
    #[command(flatten)]
    ledger: LedgerArgs,
    /// One table grouped by this. Default: cloud, tenant and key tables.
    #[arg(long, value_enum)]
    by: Option<By>,
    /// From this UTC date (`2026-03-01`, `2026-03-01T12:00:00Z`), or this long ago (`7d`).
    /// Default: the first record.
    #[arg(long, value_parser = parse_when, value_name = "DATE|DURATION")]
    since: Option<When>,
    /// Up to this UTC date (excluded), or this long ago. Default: now and after.
    #[arg(long, value_parser = parse_when, value_name = "DATE|DURATION")]
    until: Option<When>,
    /// One JSON object: spend per group, and budgets and commitments when a config is given.
    #[arg(long, conflicts_with = "csv")]
    json: bool,
    /// The spend rows as CSV (RFC 4180), with a `group` column; no budgets or commitments.
    #[arg(long)]
    csv: bool,
}

/// Everything the report shows, read from the ledger.
struct Report {
    /// `i64::MIN` and `i64::MAX` stand for no bound.
    window: Window,
    groups: Vec<(By, Vec<SpendRow>)>,
    /// With a config only.
    budgets: Option<Vec<BudgetUse>>,
    burns: Option<Vec<Burn>>,
    config_name: String,
}

impl By {
    fn group(self) -> Group {
        match self {
            By::Cloud => Group::Cloud,
            By::Tenant => Group::Tenant,
            By::Key => Group::Key,
            By::Alias => Group::Alias,
            By::Deployment => Group::Deployment,
        }
    }

    fn name(self) -> &'static str {
        match self {
            By::Cloud => "cloud",
            By::Tenant => "tenant",
            By::Key => "key",
            By::Alias => "alias",
            By::Deployment => "deployment",
        }
    }
}

pub(crate) async fn run(args: &SpendArgs) -> anyhow::Result<ExitCode> {
    exit_code(report(args).await)
}

async fn report(args: &SpendArgs) -> anyhow::Result<ExitCode> {
    let now = now_ms();
    let window = Window {
        from_ms: args.since.map_or(i64::MIN, |w| w.back(now)),
        to_ms: args.until.map_or(i64::MAX, |w| w.back(now)),
    };
    if window.from_ms >= window.to_ms {
        return Err(usage(format!(
            "--since {} is not before --until {}",
            show_time(window.from_ms),
            show_time(window.to_ms)
        )));
    }
    let opened = args.ledger.open(false).await?;
    let report = gather(&opened, args.by, window, now).await;
    opened.store.close().await;
    let report = report?;
    let text = if args.json {
        json(&report)
    } else if args.csv {
        csv(&report)
    } else {
        table(&report)
    };
    out!("{text}")?;
    Ok(ExitCode::SUCCESS)
}

async fn gather(opened: &Opened, by: Option<By>, window: Window, now: i64) -> anyhow::Result<Report> {
    let store = &opened.store;
    let groups = match by {
        Some(by) => vec![by],
        None => vec![By::Cloud, By::Tenant, By::Key],
    };
    let config_name = opened.config_name();
    let mut report = Report { window, groups: Vec::new(), budgets: None, burns: None, config_name };
    for by in groups {
        report.groups.push((by, store.spend(by.group(), window.from_ms, window.to_ms).await?));
    }
    let Some(config) = &opened.config else { return Ok(report) };
    let (day, month) = (calc::day(now), calc::month(now));
    let today = store.spend(Group::Tenant, day.from_ms, day.to_ms).await?;
    let this_month = store.spend(Group::Tenant, month.from_ms, month.to_ms).await?;
    let tenants = config.tenants.iter().map(|t| (t.name.as_str(), t.budgets));
    report.budgets = Some(calc::budgets(tenants, &today, &this_month, now));
    let mut burns = Vec::new();
    for c in &config.commitments {
        let names: Vec<String> = c.deployments.iter().map(|d| config.deployment(*d).name.clone()).collect();
        let (term, rate) = (calc::term_window(c, now), calc::rate_window(now));
        let recorded = store.spend_for_deployments(&names, term.from_ms, term.to_ms).await?;
        let last_days = store.spend_for_deployments(&names, rate.from_ms, rate.to_ms).await?;
        let cloud = &config.clouds[usize::from(c.cloud.0)].name;
        burns.push(calc::burn(c, cloud, recorded, last_days, now));
    }
    report.burns = Some(burns);
    Ok(report)
}

/// `$1,234.56`; below a dollar, four decimals (`$0.0042`), as single requests cost fractions
/// of a cent.
fn money(v: f64) -> String {
    let decimals = if v != 0.0 && v.abs() < 1.0 { 4 } else { 2 };
    let text = format!("{:.decimals$}", v.abs());
    let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
    let mut grouped = String::new();
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let sign = if v < 0.0 && text.bytes().any(|b| b.is_ascii_digit() && b != b'0') { "-" } else { "" };
    format!("{sign}${grouped}.{fraction}")
}

fn range(w: Window) -> String {
    match (w.from_ms, w.to_ms) {
        (i64::MIN, i64::MAX) => "all records".to_owned(),
        (from, i64::MAX) => format!("since {} UTC", show_time(from)),
        (i64::MIN, to) => format!("before {} UTC", show_time(to)),
        (from, to) => format!("{} to {} UTC", show_time(from), show_time(to)),
    }
}

fn spend_cells(name: String, r: &SpendRow) -> Vec<String> {
    vec![name, r.requests.to_string(), r.input_tokens.to_string(), r.output_tokens.to_string(), money(r.cost_usd)]
}

fn table(report: &Report) -> String {
    let mut out = String::new();
    for (by, rows) in &report.groups {
        let _ = writeln!(out, "Spend by {}, {}:", by.name(), range(report.window));
        let mut cells: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                spend_cells(if r.key.is_empty() { "(none)".to_owned() } else { for_log(&r.key, 64).into_owned() }, r)
            })
            .collect();
        if rows.len() > 1 {
            cells.push(spend_cells("total".to_owned(), &calc::total(rows)));
        }
        out.push_str(&grid(&[by.name(), ">requests", ">input tokens", ">output tokens", ">cost"], &cells));
        out.push('\n');
    }
    if let Some(budgets) = &report.budgets {
        let _ = writeln!(out, "Budgets, this UTC day and month:");
        if budgets.is_empty() {
            let _ = writeln!(out, "no tenant in {} has a budget\n", report.config_name);
        } else {
            let cells: Vec<Vec<String>> = budgets
                .iter()
                .map(|b| {
                    vec![
                        b.tenant.clone(),
                        b.period.name().to_owned(),
                        money(b.budget_usd),
                        money(b.spent_usd),
                        money(b.left_usd),
                        format!("{:.0}%", 100.0 * b.spent_usd / b.budget_usd),
                        show_time(b.resets_ms),
                    ]
                })
                .collect();
            let headers = ["tenant", "period", ">budget", ">spent", ">left", ">used", "resets (UTC)"];
            let _ = writeln!(out, "{}", grid(&headers, &cells));
        }
    }
    if let Some(burns) = &report.burns {
        let _ = writeln!(out, "Commitments:");
        if burns.is_empty() {
            let _ = writeln!(out, "none in {}", report.config_name);
        } else {
            let cells: Vec<Vec<String>> = burns
                .iter()
                .map(|b| {
                    let vs = b.vs_pace_usd();
                    vec![
                        b.name.clone(),
                        b.cloud.clone(),
                        money(b.amount_usd),
                        money(b.spent_usd),
                        money(b.pace_usd),
                        format!("{}{}", if vs >= 0.0 { "+" } else { "" }, money(vs)),
                        money(b.per_day_usd),
                        show_time(b.term_end_ms)[..10].to_owned(),
                        money(b.projected_usd),
                        money(b.shortfall_usd),
                    ]
                })
                .collect();
            let headers = [
                "commitment",
                "cloud",
                ">amount",
                ">spent",
                ">pace now",
                ">vs pace",
                &format!(">$/day ({RATE_DAYS}d)"),
                "term ends",
                ">projected",
                ">shortfall",
            ];
            out.push_str(&grid(&headers, &cells));
            let _ = writeln!(
                out,
                "Each term is taken to start its elapsed_days before now (the config does not say when it was \
                 first used).\nspent: spent_usd plus the ledger's spend on the commitment's deployments since \
                 then. $/day: their last {RATE_DAYS} days over {RATE_DAYS}.\nprojected: spent plus $/day for the \
                 days left; shortfall: amount minus projected, what would go unspent."
            );
        }
    }
    out
}

fn json(report: &Report) -> String {
    use serde_json::{Value, json};
    let bound = |v: i64| if v == i64::MIN || v == i64::MAX { Value::Null } else { json!(v) };
    let spend: serde_json::Map<String, Value> = report
        .groups
        .iter()
        .map(|(by, rows)| {
            let rows = rows.iter().map(|r| {
                json!({
                    "name": r.key,
                    "requests": r.requests,
                    "input_tokens": r.input_tokens,
                    "output_tokens": r.output_tokens,
                    "cost_usd": r.cost_usd,
                })
            });
            (by.name().to_owned(), Value::Array(rows.collect()))
        })
        .collect();
    let budgets = report.budgets.as_ref().map(|budgets| {
        budgets
            .iter()
            .map(|b| {
                json!({
                    "tenant": b.tenant,
                    "period": b.period.name(),
                    "budget_usd": b.budget_usd,
                    "spent_usd": b.spent_usd,
                    "left_usd": b.left_usd,
                    "resets_ms": b.resets_ms,
                })
            })
            .collect::<Vec<_>>()
    });
    let commitments = report.burns.as_ref().map(|burns| {
        burns
            .iter()
            .map(|b| {
                json!({
                    "name": b.name,
                    "cloud": b.cloud,
                    "amount_usd": b.amount_usd,
                    "spent_usd": b.spent_usd,
                    "pace_usd": b.pace_usd,
                    "vs_pace_usd": b.vs_pace_usd(),
                    "per_day_usd": b.per_day_usd,
                    "term_end_ms": b.term_end_ms,
                    "projected_usd": b.projected_usd,
                    "shortfall_usd": b.shortfall_usd,
                })
            })
            .collect::<Vec<_>>()
    });
    let doc = json!({
        "from_ms": bound(report.window.from_ms),
        "to_ms": bound(report.window.to_ms),
        "spend": spend,
        "budgets": budgets,
        "commitments": commitments,
    });
    format!("{doc}\n")
}

/// A CSV field, quoted (quotes doubled) when it holds a comma, a quote or a line break.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\r', '\n']) { format!("\"{}\"", text.replace('"', "\"\"")) } else { text.to_owned() }
}

fn csv(report: &Report) -> String {
    let mut out = "group,name,requests,input_tokens,output_tokens,cost_usd\r\n".to_owned();
    for (by, rows) in &report.groups {
        for r in rows {
            let _ = write!(
                out,
                "{},{},{},{},{},{}\r\n",
                by.name(),
                csv_field(&r.key),
                r.requests,
                r.input_tokens,
                r.output_tokens,
                r.cost_usd
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_groups_thousands_and_keeps_small_amounts_readable() {
        assert_eq!(money(0.0), "$0.00");
        assert_eq!(money(0.00042), "$0.0004");
        assert_eq!(money(12.5), "$12.50");
        assert_eq!(money(3_000_000.0), "$3,000,000.00");
        assert_eq!(money(-2.5), "-$2.50");
        assert_eq!(money(-0.00001), "$0.0000");
    }

    #[test]
    fn csv_fields_are_quoted_as_rfc_4180_says() {
        assert_eq!(csv_field("aws"), "aws");
        assert_eq!(csv_field(""), "");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
    }

    #[test]
    fn ranges_say_which_bounds_are_open() {
        let w = |from_ms, to_ms| range(Window { from_ms, to_ms });
        assert_eq!(w(i64::MIN, i64::MAX), "all records");
        assert_eq!(w(0, i64::MAX), "since 1970-01-01 00:00 UTC");
        assert_eq!(w(i64::MIN, 86_400_000), "before 1970-01-02 00:00 UTC");
        assert_eq!(w(0, 86_400_000), "1970-01-01 00:00 to 1970-01-02 00:00 UTC");
    }
}
