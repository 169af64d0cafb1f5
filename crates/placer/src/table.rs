//! Plain-text tables: the plan, the rejection table, and a grid helper the CLI shares.

use std::fmt::Write;

use crate::date::{format_duration, format_time};
use crate::optimize::Plan;

/// Columns padded to their widest cell, separated by two spaces; numbers are right-aligned
/// when their header starts with `>` (the `>` is dropped).
pub fn grid(headers: &[&str], rows: &[Vec<String>]) -> String {
    let right: Vec<bool> = headers.iter().map(|h| h.starts_with('>')).collect();
    let headers: Vec<&str> = headers.iter().map(|h| h.trim_start_matches('>')).collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: &mut dyn Iterator<Item = &str>, out: &mut String| {
        let mut text = String::new();
        for (i, cell) in cells.enumerate() {
            let w = widths[i];
            if i > 0 {
                text.push_str("  ");
            }
            if right[i] {
                let _ = write!(text, "{cell:>w$}");
            } else {
                let _ = write!(text, "{cell:<w$}");
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&mut headers.iter().copied(), &mut out);
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    line(&mut rule.iter().map(String::as_str), &mut out);
    for row in rows {
        line(&mut row.iter().map(String::as_str), &mut out);
    }
    out
}

/// `$1,234` or `$0.12` for small sums.
pub fn usd(v: f64) -> String {
    if v.abs() < 10.0 {
        return format!("${v:.2}");
    }
    let whole = v.round() as i64;
    let digits = whole.abs().to_string();
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("{}${grouped}", if whole < 0 { "-" } else { "" })
}

/// The ranked candidates, best first.
pub fn ranked(plan: &Plan) -> String {
    let rows: Vec<Vec<String>> = plan
        .ranked
        .iter()
        .enumerate()
        .map(|(i, c)| {
            vec![
                (i + 1).to_string(),
                c.offering.clone(),
                c.jurisdiction.clone(),
                format!("{}x{}", c.instances, c.gpus / c.instances.max(1)),
                format!("{:.2}", c.usd_per_hour),
                format_duration(c.expected),
                usd(c.cost_usd),
                usd(c.effective_usd),
                format_time(c.finish),
                c.notes.join("; "),
            ]
        })
        .collect();
    grid(&["#", "offering", "jur", "nodes", ">$/inst-h", ">expected", ">cost", ">effective", "finish", "notes"], &rows)
}

/// Every rejected offering and the first reason it failed.
pub fn rejected(plan: &Plan) -> String {
    let rows: Vec<Vec<String>> =
        plan.rejected.iter().map(|r| vec![r.offering.clone(), r.jurisdiction.clone(), r.reason.to_string()]).collect();
    grid(&["offering", "jur", "rejected because"], &rows)
}
