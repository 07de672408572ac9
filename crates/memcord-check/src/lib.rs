//! Evidence that the modes keep their promises: `memcord check` records a [`history::History`]
//! of real client operations against a real cluster while faults are injected, and a checker
//! judges it against the mode's guarantee.
//!
//! ```text
//! cluster (started here, or attached) ─▶ workload (N clients, recorded) ─┬─▶ heal ─▶ verify
//!                                        nemesis (kill/stop/partition/backend) ─┘
//! ```
//!
//! Like `bench`, the run is a black box: it talks to the peers over TCP with the memcache
//! text protocol (and starts them as child processes), never through memcord's insides.
//!
//! - [`linearizable::check`]: Wing–Gong/Lowe search per key (Porcupine style);
//! - [`sequential::check`]: one legal order respecting each client's program order;
//! - [`convergence::check`]: all peers end with the same, explainable items;
//! - [`timeline::write_html`]: a picture of a violation.
//!
//! The checkers are pure functions of the history: no I/O, no panics, an empty history is
//! [`Verdict::Ok`].

mod args;
pub mod cluster;
pub mod conn;
pub mod convergence;
pub mod describe;
pub mod history;
pub mod linearizable;
pub mod model;
pub mod nemesis;
#[cfg(test)]
mod proptests;
mod run;
mod search;
pub mod sequential;
mod shrink;
pub mod summary;
#[cfg(test)]
mod testkit;
pub mod timeline;
pub mod verify;
pub mod workload;

pub use args::{CheckArgs, EXIT_CONSISTENT, EXIT_UNKNOWN, EXIT_VIOLATION};
pub use run::run;

use history::{History, Operation};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

/// A checker's judgement of a history.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Verdict {
    /// The history satisfies the guarantee.
    Ok,
    /// The history breaks the guarantee.
    Violation(Violation),
    /// The checker could not decide (time budget or memory exhausted); the text says why.
    Unknown(String),
}

/// A counterexample: the key and the operations that cannot be explained, with why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// The key whose history breaks the guarantee (`*` for a check over all keys at once).
    pub key: String,
    /// The offending sub-history: the longest explainable prefix, in the order found, then
    /// the operations that could not follow it.
    pub operations: Vec<Operation>,
    /// What went wrong, in words (lines starting with [`ORDER_LINE`] and [`STUCK_LINE`] list
    /// op ids, so tools such as the timeline can read them back).
    pub explanation: String,
}

/// How many operations of a long explainable prefix [`Violation`]'s `Display` shows.
pub const SHOWN_PREFIX: usize = 30;

/// The explanation line listing the explainable prefix's op ids in order.
pub const ORDER_LINE: &str = "order found (op ids):";
/// The explanation line listing the ids of operations that could not be placed.
pub const STUCK_LINE: &str = "could not place (op ids):";

impl Violation {
    /// The op ids of the explainable prefix, in the order found.
    pub fn order(&self) -> Vec<usize> {
        self.ids_on(ORDER_LINE)
    }

    /// The op ids that could not be placed after the prefix.
    pub fn stuck(&self) -> Vec<usize> {
        self.ids_on(STUCK_LINE)
    }

    fn ids_on(&self, prefix: &str) -> Vec<usize> {
        self.explanation
            .lines()
            .find_map(|line| line.strip_prefix(prefix))
            .map(|rest| {
                rest.split(|c: char| c == ',' || c.is_whitespace())
                    .filter_map(|id| id.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "violation on key {:?}", self.key)?;
        for line in self.explanation.lines() {
            match line.strip_prefix(ORDER_LINE) {
                Some(ids) if ids.matches(',').count() >= SHOWN_PREFIX => {
                    let ids: Vec<&str> = ids.split(", ").collect();
                    let skip = ids.len() - SHOWN_PREFIX;
                    let tail = ids[skip..].join(", ");
                    writeln!(f, "  {ORDER_LINE} … ({skip} more), {}", tail.trim())?;
                }
                _ => writeln!(f, "  {line}")?,
            }
        }
        writeln!(f, "  operations:")?;
        // A long explainable prefix is mostly context: show its end and what got stuck.
        let order = self.order();
        let skip = order.len().saturating_sub(SHOWN_PREFIX);
        let elided: BTreeSet<usize> = order[..skip].iter().copied().collect();
        if skip > 0 {
            writeln!(f, "    … {skip} earlier operations of the prefix not shown")?;
        }
        for op in self.operations.iter().filter(|op| !elided.contains(&op.id)) {
            writeln!(f, "    {}", describe::line(op))?;
        }
        Ok(())
    }
}

/// What a checker found, with how much it looked at.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// The verdict.
    pub verdict: Verdict,
    /// How many keys were judged.
    pub keys_checked: usize,
    /// How many operations the history held.
    pub operations: usize,
    /// How long the check took.
    pub elapsed: Duration,
}

impl Report {
    /// Whether the verdict is a violation.
    pub fn is_violation(&self) -> bool {
        matches!(self.verdict, Verdict::Violation(_))
    }

    /// Whether the verdict is [`Verdict::Ok`].
    pub fn is_ok(&self) -> bool {
        matches!(self.verdict, Verdict::Ok)
    }

    /// The violation, if any.
    pub fn violation(&self) -> Option<&Violation> {
        match &self.verdict {
            Verdict::Violation(v) => Some(v),
            _ => None,
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} operations on {} keys checked in {:.3} s: ",
            self.operations,
            self.keys_checked,
            self.elapsed.as_secs_f64()
        )?;
        match &self.verdict {
            Verdict::Ok => write!(f, "ok"),
            Verdict::Unknown(why) => write!(f, "unknown ({why})"),
            Verdict::Violation(v) => write!(f, "{v}"),
        }
    }
}

/// The history's operations grouped by key, each group in invocation order.
pub(crate) fn by_key(history: &History) -> BTreeMap<&str, Vec<&Operation>> {
    let mut keys: BTreeMap<&str, Vec<&Operation>> = BTreeMap::new();
    for op in &history.operations {
        keys.entry(op.key.as_str()).or_default().push(op);
    }
    for ops in keys.values_mut() {
        ops.sort_by_key(|op| (op.invoked_ns, op.id));
    }
    keys
}

/// Formats op ids as `1, 5, 3`.
pub(crate) fn id_list<'a>(ops: impl IntoIterator<Item = &'a Operation>) -> String {
    ops.into_iter()
        .map(|op| op.id.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
