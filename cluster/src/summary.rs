//! The checker's report as Markdown: one row per fault, one per fault kind (all its faults
//! together), then the first violations of each check.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use crate::report::{Report, Row};

fn ms(v: Option<u64>) -> String {
    match v {
        None => "-".to_owned(),
        Some(u64::MAX) => "never".to_owned(),
        Some(v) => v.to_string(),
    }
}

fn joined<V: std::fmt::Display>(map: &BTreeMap<impl std::fmt::Display, V>) -> String {
    if map.is_empty() {
        return "-".to_owned();
    }
    let parts: Vec<String> = map.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    parts.join(", ")
}

/// The range `min–max` of `values`, `-` when there are none.
fn range(values: &[u64]) -> String {
    match (values.iter().min(), values.iter().max()) {
        (Some(a), Some(b)) if a == b => ms(Some(*a)),
        (Some(a), Some(b)) => format!("{}–{}", ms(Some(*a)), ms(Some(*b))),
        _ => "-".to_owned(),
    }
}

/// The report as Markdown tables.
pub fn table(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| fault | ops | ok | failed (by code) | sessions | mesh detect ms | client detect ms | follow ms | recover ms | violations |\n| --- | ---: | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: |"
    );
    for row in &report.rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            row.name,
            row.ops,
            row.ok,
            joined(&row.failed),
            joined(&row.sessions),
            ms(row.detect_ms),
            ms(row.client_detect_ms),
            ms(row.follow_ms),
            ms(row.recover_ms),
            row.violations
        );
    }
    let mut kinds: BTreeMap<&str, Vec<&Row>> = BTreeMap::new();
    for row in report.rows.iter().skip(1) {
        kinds.entry(row.kind.as_str()).or_default().push(row);
    }
    let _ = writeln!(
        out,
        "\n| fault kind | faults | ops | ok | failed | sessions | mesh detect ms | client detect ms | follow ms | recover ms | violations |\n| --- | ---: | ---: | ---: | ---: | --- | --- | --- | --- | --- | ---: |"
    );
    for (kind, rows) in &kinds {
        let mut sessions: BTreeMap<&str, u64> = BTreeMap::new();
        for row in rows {
            for (k, v) in &row.sessions {
                *sessions.entry(k).or_default() += v;
            }
        }
        let sum = |f: fn(&Row) -> u64| rows.iter().map(|r| f(r)).sum::<u64>();
        let detect: Vec<u64> = rows.iter().filter_map(|r| r.detect_ms).collect();
        let client: Vec<u64> = rows.iter().filter_map(|r| r.client_detect_ms).collect();
        let follow: Vec<u64> = rows.iter().filter_map(|r| r.follow_ms).collect();
        let recover: Vec<u64> = rows.iter().filter_map(|r| r.recover_ms).collect();
        let _ = writeln!(
            out,
            "| {kind} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            rows.len(),
            sum(|r| r.ops),
            sum(|r| r.ok),
            sum(|r| r.failed.values().sum()),
            joined(&sessions),
            range(&detect),
            range(&client),
            range(&follow),
            range(&recover),
            sum(|r| r.violations),
        );
    }
    let mut shown: HashMap<&str, usize> = HashMap::new();
    for v in &report.violations {
        let n = shown.entry(v.check).or_default();
        *n += 1;
        if *n <= 5 {
            let _ = writeln!(
                out,
                "VIOLATION [{}] in {}: {}",
                v.check, report.rows[v.segment].name, v.detail
            );
        }
    }
    let _ = writeln!(out, "\n{} violation(s)", report.violations.len());
    out
}
