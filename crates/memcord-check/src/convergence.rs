//! Eventual convergence: once faults heal and writes stop, every peer holds the same items,
//! and each item is one that the recorded operations could have produced.
//!
//! # The rule for "could have produced"
//!
//! Per key, from every recorded operation whatever its reply (an operation that failed at its
//! coordinator cannot have taken effect, but counting it anyway keeps the rule simple and
//! never rejects a correct run):
//!
//! - **bases**: the values of `set`, `add`, `replace` and `cas`, and the decimal form of every
//!   number an `incr`/`decr` answered;
//! - **unknown counters**: if some `incr`/`decr` has an indeterminate reply, any decimal
//!   number up to the largest numeric base plus the sum of all `incr` deltas (any number at
//!   all when that overflows or when appends/prepends could have built other numbers);
//! - a final value is explained if it is `P·B·S`: a base or unknown counter `B`, preceded by
//!   a concatenation `P` of `prepend` data and followed by a concatenation `S` of `append`
//!   data (each piece usable any number of times, in any order);
//! - absence is explained if the key has a `delete`, or no operation on it definitely
//!   succeeded (no `STORED`, no number).
//!
//! The rule is sound (a correct run always passes) but not complete: it does not check that
//! pieces were used at most once, or in an order the operations allow. Values too large to
//! analyse cheaply are accepted. Expiry and eviction are outside the rule, so convergence
//! workloads should write with exptime 0 and stay below the memory limit.

use super::history::{History, Input, Operation, Output};
use super::model::parse_counter;
use super::{describe, Report, Verdict, Violation};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Instant;

/// Work (value length × pieces) above which a value is accepted without analysis.
const ANALYSIS_LIMIT: usize = 50_000_000;

/// Checks that all peers' final reads agree and are explained by the history.
///
/// `finals` holds one map per peer, key → final value (`None` = missing). The keys checked
/// are those any peer's map names; a key a peer's map lacks counts as missing on that peer.
pub fn check(history: &History, finals: &[BTreeMap<String, Option<Vec<u8>>>]) -> Report {
    let start = Instant::now();
    let keys: BTreeSet<&String> = finals.iter().flat_map(|m| m.keys()).collect();
    let mut checked = 0;
    for key in keys {
        let seen: Vec<Option<&Vec<u8>>> = finals
            .iter()
            .map(|m| m.get(key).and_then(|v| v.as_ref()))
            .collect();
        let ops: Vec<&Operation> = {
            let mut ops: Vec<&Operation> = history
                .operations
                .iter()
                .filter(|op| &op.key == key && op.input != Input::Get)
                .collect();
            ops.sort_by_key(|op| (op.invoked_ns, op.id));
            ops
        };
        checked += 1;
        let violation = if seen.windows(2).any(|w| w[0] != w[1]) {
            Some(diverged(key, &seen, &ops))
        } else {
            seen.first()
                .and_then(|&value| unexplained(key, value, &ops))
        };
        if let Some(v) = violation {
            return Report {
                verdict: Verdict::Violation(v),
                keys_checked: checked,
                operations: history.operations.len(),
                elapsed: start.elapsed(),
            };
        }
    }
    Report {
        verdict: Verdict::Ok,
        keys_checked: checked,
        operations: history.operations.len(),
        elapsed: start.elapsed(),
    }
}

fn show(value: Option<&Vec<u8>>) -> String {
    value.map_or("missing".to_string(), |v| describe::quote(v))
}

fn diverged(key: &str, seen: &[Option<&Vec<u8>>], ops: &[&Operation]) -> Violation {
    let mut explanation = String::from("the peers' final reads differ:\n");
    for (peer, value) in seen.iter().enumerate() {
        explanation.push_str(&format!("  peer {peer}: {}\n", show(*value)));
    }
    explanation.push_str(&format!("the key's {} writes follow.\n", ops.len()));
    Violation {
        key: key.to_string(),
        operations: ops.iter().map(|&op| op.clone()).collect(),
        explanation,
    }
}

fn unexplained(key: &str, value: Option<&Vec<u8>>, ops: &[&Operation]) -> Option<Violation> {
    let sources = Sources::new(ops);
    let why = match value {
        None if sources.absence_explained() => return None,
        None => "every peer lacks the key, but a write to it succeeded and nothing deleted it",
        Some(v) if sources.explains(v) => return None,
        Some(_) => "every peer holds a value that no sequence of the recorded writes could form",
    };
    Some(Violation {
        key: key.to_string(),
        operations: ops.iter().map(|&op| op.clone()).collect(),
        explanation: format!(
            "{why}: {}.\nthe key's {} writes follow.\n",
            show(value),
            ops.len()
        ),
    })
}

/// What the recorded operations on one key could have built.
struct Sources {
    bases: HashSet<Vec<u8>>,
    appends: Vec<Vec<u8>>,
    prepends: Vec<Vec<u8>>,
    /// `Some(None)`: any number; `Some(Some(n))`: numbers up to `n`; `None`: none unknown.
    unknown_counters: Option<Option<u64>>,
    deleted: bool,
    succeeded: bool,
}

impl Sources {
    fn new(ops: &[&Operation]) -> Sources {
        let mut s = Sources {
            bases: HashSet::new(),
            appends: Vec::new(),
            prepends: Vec::new(),
            unknown_counters: None,
            deleted: false,
            succeeded: false,
        };
        let mut incr_total: Option<u64> = Some(0);
        let mut arith_unknown = false;
        for op in ops {
            s.succeeded |= matches!(op.output, Output::Stored | Output::Number(_));
            match &op.input {
                Input::Set(v) | Input::Add(v) | Input::Replace(v) => {
                    s.bases.insert(v.clone());
                }
                Input::Cas { value, .. } => {
                    s.bases.insert(value.clone());
                }
                Input::Append(v) if !v.is_empty() => s.appends.push(v.clone()),
                Input::Prepend(v) if !v.is_empty() => s.prepends.push(v.clone()),
                Input::Incr(d) => incr_total = incr_total.and_then(|t| t.checked_add(*d)),
                Input::Delete => s.deleted = true,
                _ => {}
            }
            if let Output::Number(n) = op.output {
                s.bases.insert(n.to_string().into_bytes());
            }
            arith_unknown |=
                matches!(op.input, Input::Incr(_) | Input::Decr(_)) && op.output.is_indeterminate();
        }
        s.appends.sort();
        s.appends.dedup();
        s.prepends.sort();
        s.prepends.dedup();
        if arith_unknown {
            let concatenated = !s.appends.is_empty() || !s.prepends.is_empty();
            let largest = s.bases.iter().filter_map(|b| parse_counter(b)).max();
            let bound = incr_total.and_then(|t| t.checked_add(largest.unwrap_or(0)));
            s.unknown_counters = Some(if concatenated { None } else { bound });
        }
        s
    }

    fn absence_explained(&self) -> bool {
        self.deleted || !self.succeeded
    }

    fn is_unknown_counter(&self, digits: &[u8]) -> bool {
        let Some(bound) = self.unknown_counters else {
            return false;
        };
        let canonical = !digits.is_empty()
            && digits.iter().all(u8::is_ascii_digit)
            && (digits.len() == 1 || digits[0] != b'0');
        let within = |n| match bound {
            None => true,
            Some(b) => n <= b,
        };
        canonical && parse_counter(digits).is_some_and(within)
    }

    fn explains(&self, value: &[u8]) -> bool {
        if self.bases.contains(value) || self.is_unknown_counter(value) {
            return true;
        }
        let pieces = self.appends.len() + self.prepends.len();
        if pieces == 0 {
            return false;
        }
        if value.len().saturating_mul(pieces) > ANALYSIS_LIMIT {
            return true;
        }
        let before = built_from(value, &self.prepends, false);
        let after = built_from(value, &self.appends, true);
        let fits = |i: usize, j: usize| before[i] && after[j];
        for base in &self.bases {
            if base.is_empty() {
                if (0..=value.len()).any(|i| fits(i, i)) {
                    return true;
                }
                continue;
            }
            if memchr::memmem::find_iter(value, base).any(|i| fits(i, i + base.len())) {
                return true;
            }
        }
        if self.unknown_counters.is_some() {
            for i in 0..value.len() {
                for j in i + 1..=value.len().min(i + 20) {
                    if fits(i, j) && self.is_unknown_counter(&value[i..j]) {
                        return true;
                    }
                }
            }
        }
        false
    }
}

/// For a prefix (`suffix = false`): `out[i]` says whether `value[..i]` is a concatenation of
/// `pieces`; for a suffix: whether `value[i..]` is.
fn built_from(value: &[u8], pieces: &[Vec<u8>], suffix: bool) -> Vec<bool> {
    let n = value.len();
    let mut out = vec![false; n + 1];
    if suffix {
        out[n] = true;
        for i in (0..n).rev() {
            out[i] = pieces
                .iter()
                .any(|p| value[i..].starts_with(p) && out[i + p.len()]);
        }
    } else {
        out[0] = true;
        for i in 1..=n {
            out[i] = pieces
                .iter()
                .any(|p| value[..i].ends_with(p) && out[i - p.len()]);
        }
    }
    out
}

#[cfg(test)]
mod tests;
