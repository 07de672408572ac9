//! A self-contained HTML picture of a violation, after Porcupine's visualiser: one row per
//! client, one bar per operation from invocation to return (an indeterminate operation's bar
//! runs dashed to the right edge), labelled `input → output`. Operations of the explainable
//! prefix are green and numbered in the order found, joined by a thin line; operations that
//! could not be placed are red. Hovering a bar shows the full operation and its role. Inline
//! SVG and CSS only: no scripts, nothing fetched.

use super::history::Operation;
use super::{describe, Violation};
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

const LEFT: f64 = 110.0;
const CHART: f64 = 1100.0;
const TAIL: f64 = 60.0;
const ROW: f64 = 44.0;
const TOP: f64 = 30.0;

/// Writes `violation-<key>.html` into `dir` (created if needed) and returns its path.
pub fn write_html(dir: &Path, violation: &Violation) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("violation-{}.html", file_stem(&violation.key)));
    std::fs::write(&path, render(violation))?;
    Ok(path)
}

/// A file-name-safe form of a key.
fn file_stem(key: &str) -> String {
    let stem: String = key
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if stem.is_empty() {
        "key".to_string()
    } else {
        stem
    }
}

/// Escapes text for HTML and SVG.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

/// The whole page.
pub fn render(violation: &Violation) -> String {
    let ops = &violation.operations;
    let order = violation.order();
    let stuck: BTreeSet<usize> = violation.stuck().into_iter().collect();
    let clients: Vec<usize> = ops
        .iter()
        .map(|op| op.client)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let row_of = |client: usize| clients.iter().position(|&c| c == client).unwrap_or(0);
    let definite = |op: &Operation| !op.output.is_indeterminate() && op.returned_ns != u64::MAX;
    let t0 = ops.iter().map(|op| op.invoked_ns).min().unwrap_or(0);
    let t1 = ops
        .iter()
        .map(|op| {
            if definite(op) {
                op.returned_ns
            } else {
                op.invoked_ns
            }
        })
        .max()
        .unwrap_or(0)
        .max(t0.saturating_add(1));
    let x = |t: u64| LEFT + (t.saturating_sub(t0)) as f64 / (t1 - t0) as f64 * CHART;
    let width = LEFT + CHART + TAIL;
    let height = TOP + ROW * clients.len().max(1) as f64 + 20.0;

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="monospace" font-size="11">"#
    );
    let _ = writeln!(
        svg,
        r#"<text x="{LEFT}" y="16">{} ms</text><text x="{}" y="16" text-anchor="end">{} ms</text>"#,
        describe::millis(t0),
        LEFT + CHART,
        describe::millis(t1)
    );
    for (row, client) in clients.iter().enumerate() {
        let y = TOP + ROW * row as f64;
        let _ = writeln!(
            svg,
            r##"<line x1="0" x2="{width}" y1="{y}" y2="{y}" stroke="#ddd"/><text x="4" y="{}">client {client}</text>"##,
            y + ROW / 2.0 + 4.0
        );
    }
    let mut centres = Vec::new();
    for op in ops {
        let y = TOP + ROW * row_of(op.client) as f64 + 8.0;
        let x0 = x(op.invoked_ns);
        let x1 = if definite(op) {
            x(op.returned_ns).max(x0 + 2.0)
        } else {
            width - 4.0
        };
        let position = order.iter().position(|&id| id == op.id);
        let (fill, role) = match position {
            Some(p) => ("#b7e4b7", format!("position {} in the order found", p + 1)),
            None if stuck.contains(&op.id) => ("#f4b0b0", "could not be placed".to_string()),
            None => ("#e0e0e0", "not reached".to_string()),
        };
        let reason = reason_for(violation, op.id)
            .map(|r| format!("&#10;{}", escape(&r)))
            .unwrap_or_default();
        let dash = if definite(op) {
            ""
        } else {
            r#" stroke-dasharray="5,3""#
        };
        let _ = writeln!(
            svg,
            r##"<g class="op"><title>{}&#10;{}{}</title><rect x="{x0:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" rx="3" fill="{fill}" stroke="#555"{dash}/><text x="{:.1}" y="{:.1}">{}</text>"##,
            escape(&describe::line(op)),
            escape(&role),
            reason,
            x1 - x0,
            ROW - 16.0,
            x0 + 3.0,
            y + (ROW - 16.0) / 2.0 + 4.0,
            escape(&describe::label(op)),
        );
        if let Some(p) = position {
            let cx = (x0 + x1) / 2.0;
            let cy = y + ROW - 16.0;
            centres.push((p, cx, cy));
            let _ = writeln!(
                svg,
                r##"<circle cx="{cx:.1}" cy="{cy:.1}" r="7" fill="#2a7a2a"/><text x="{cx:.1}" y="{:.1}" fill="white" text-anchor="middle" font-size="9">{}</text>"##,
                cy + 3.0,
                p + 1
            );
        }
        let _ = writeln!(svg, "</g>");
    }
    centres.sort_by_key(|&(p, ..)| p);
    if centres.len() > 1 {
        let points: Vec<String> = centres
            .iter()
            .map(|(_, cx, cy)| format!("{cx:.1},{cy:.1}"))
            .collect();
        let _ = writeln!(
            svg,
            r##"<polyline points="{}" fill="none" stroke="#2a7a2a" stroke-width="1" stroke-dasharray="2,2" opacity="0.6"/>"##,
            points.join(" ")
        );
    }
    svg.push_str("</svg>\n");

    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>memcord violation: {key}</title>\n\
         <style>body{{font-family:sans-serif;margin:1em}}pre{{background:#f6f6f6;padding:.6em}}\
         g.op:hover rect{{stroke-width:2}}</style></head><body>\n\
         <h2>Violation on key <code>{key}</code></h2>\n\
         <p>Green: the longest explainable prefix, numbered in the order found. Red: operations \
         that could not be placed after it. Dashed: indeterminate (may take effect any time \
         after invocation, or never). Hover a bar for details.</p>\n{svg}<pre>{text}</pre>\n\
         </body></html>\n",
        key = escape(&violation.key),
        text = escape(&violation.to_string()),
    )
}

/// The explanation's reason line for an operation, if it has one.
fn reason_for(violation: &Violation, id: usize) -> Option<String> {
    let tag = format!("#{id} ");
    violation
        .explanation
        .lines()
        .find(|line| line.trim_start().starts_with(&tag))
        .and_then(|line| line.rsplit_once(": "))
        .map(|(_, reason)| reason.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Input, Output};
    use crate::linearizable;
    use crate::testkit::*;
    use std::time::Duration;

    #[test]
    fn writes_one_bar_per_operation() {
        let history = Builder::new()
            .op(0, set("a"), Output::Stored, 0, 1)
            .op(1, set("<b>"), ind(), 2, 0)
            .op(0, set("c"), Output::Stored, 3, 4)
            .op(2, Input::Get, val("a", 9), 5, 6)
            .history();
        let report = linearizable::check(&history, Duration::from_secs(5));
        let violation = report.violation().expect("violation");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write_html(&dir.path().join("out"), violation).expect("written");
        let html = std::fs::read_to_string(&path).expect("read back");
        assert_eq!(
            html.matches("<g class=\"op\">").count(),
            violation.operations.len()
        );
        assert!(html.contains("gets → &quot;a&quot; cas 9"), "{html}");
        assert!(html.contains("could not be placed"));
        assert!(!html.contains("<script"));
        assert!(path.file_name().is_some_and(|n| n == "violation-k.html"));
    }

    #[test]
    fn odd_keys_make_safe_file_names() {
        assert_eq!(file_stem("a/b c"), "a_b_c");
        assert_eq!(file_stem(""), "key");
        assert_eq!(file_stem("*"), "_");
    }
}
