//! The one place the run meets the checkers: which checker judges which mode, and what its
//! report means for the summary and the exit code.

use super::history::History;
use super::{convergence, linearizable, sequential, timeline, Verdict};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What the checker concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judgement {
    /// The history keeps the mode's promise.
    Consistent,
    /// It does not.
    Violation {
        /// The key whose operations cannot be explained.
        key: String,
        /// The checker's account of the violation (its operations included).
        explanation: String,
        /// The timeline written for it (with `--out`).
        timeline: Option<PathBuf>,
    },
    /// The checker could not decide (budget exhausted, …).
    Unknown(String),
}

/// The checker's verdict with its figures.
#[derive(Debug, Clone)]
pub struct Verification {
    /// Which checker ran.
    pub checker: &'static str,
    /// Its conclusion.
    pub judgement: Judgement,
    /// Keys it checked.
    pub keys_checked: usize,
    /// Operations it looked at.
    pub operations: usize,
    /// How long it took.
    pub elapsed: Duration,
}

/// The checker for `mode`.
pub fn checker_for(mode: &str) -> &'static str {
    match mode {
        "linearizable" => "linearizable",
        "sequential" => "sequential",
        _ => "convergence",
    }
}

/// Judges `history` by `mode`'s guarantee. `finals` (eventual mode) holds every key as read
/// from each peer after the faults healed; `budget` bounds the search of the ordered modes'
/// checkers; a violation's timeline is written into `out` when given.
pub fn verify(
    mode: &str,
    history: &History,
    finals: &[BTreeMap<String, Option<Vec<u8>>>],
    budget: Duration,
    out: Option<&Path>,
) -> Verification {
    let checker = checker_for(mode);
    let report = match checker {
        "linearizable" => linearizable::check(history, budget),
        "sequential" => sequential::check(history, budget),
        _ => convergence::check(history, finals),
    };
    let judgement = match report.verdict {
        Verdict::Ok => Judgement::Consistent,
        Verdict::Unknown(why) => Judgement::Unknown(why),
        Verdict::Violation(violation) => {
            let timeline = out.and_then(|dir| match timeline::write_html(dir, &violation) {
                Ok(path) => Some(path),
                Err(err) => {
                    eprintln!("memcord check: warning: writing the timeline failed: {err}");
                    None
                }
            });
            Judgement::Violation {
                key: violation.key.clone(),
                explanation: violation.to_string(),
                timeline,
            }
        }
    };
    Verification {
        checker,
        judgement,
        keys_checked: report.keys_checked,
        operations: report.operations,
        elapsed: report.elapsed,
    }
}
