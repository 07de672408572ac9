//! Shrinking a linearizability counterexample to the operations that matter.
//!
//! The longest linearizable prefix of a long history can hold thousands of operations, most
//! of them irrelevant. As delta debugging does, [`shrunk`] greedily drops operations (first in
//! large chunks, then one by one) while the rest still fails **for the same reason**: some
//! operation that could not be placed originally still cannot be placed, with the same words
//! from the model. Two further rules keep the story intact: a read keeps a write of the value
//! it returned (a stale read must not become a read of a value nobody wrote), and a `cas`
//! that stored keeps a `gets` that returned its unique. Shrinking stops at a time limit with
//! what it has.

use super::history::{Input, Operation, Output};
use super::linearizable::{explain, refusals, search, Partial};
use super::search::Prepared;
use super::Violation;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// How long shrinking a violation may take at most.
const SHRINK_TIME: Duration = Duration::from_secs(3);

/// The violation re-explained on a smaller sub-history, when shrinking finds one. `reasons`
/// are the (op id, reason) pairs of the original failure (see [`failure`]); `all` is the
/// key's whole history, used when the violation's own operations do not fail alone.
pub(crate) fn shrunk(
    violation: Violation,
    reasons: BTreeSet<(usize, String)>,
    all: &[&Operation],
    deadline: Instant,
) -> Violation {
    let deadline = deadline.min(Instant::now() + SHRINK_TIME);
    if reasons.is_empty() {
        return violation;
    }
    let start = match failure(&violation.operations, deadline) {
        Some(r) if !r.is_disjoint(&reasons) => violation.operations.clone(),
        _ if all.len() > violation.operations.len() => all.iter().map(|&op| op.clone()).collect(),
        _ => return violation,
    };
    let kept = shrink(start, &reasons, deadline);
    if kept.len() >= violation.operations.len() {
        return violation;
    }
    let refs: Vec<&Operation> = kept.iter().collect();
    let mut small = Prepared::new(&refs);
    match search(&mut small, deadline) {
        Ok(Some(partial)) => {
            let shrunk = explain(&violation.key, "linearization", &mut small, &partial);
            Violation {
                explanation: format!(
                    "{}(shrunk from {} operations of the key)\n",
                    shrunk.explanation,
                    all.len()
                ),
                ..shrunk
            }
        }
        _ => violation,
    }
}

/// The (op id, reason) pairs of a failed search's stuck operations that the model refuses.
pub(crate) fn reasons(prepared: &mut Prepared, partial: &Partial) -> BTreeSet<(usize, String)> {
    let reasons = refusals(prepared, partial);
    partial
        .stuck
        .iter()
        .zip(reasons)
        .filter_map(|(&i, reason)| Some((prepared.ops[i].id, reason?)))
        .collect()
}

/// The (op id, reason) pairs of the operations that cannot be placed, if `ops` are provably
/// (before `deadline`) not linearizable.
fn failure(ops: &[Operation], deadline: Instant) -> Option<BTreeSet<(usize, String)>> {
    let mut sorted: Vec<&Operation> = ops.iter().collect();
    sorted.sort_by_key(|op| (op.invoked_ns, op.id));
    let mut prepared = Prepared::new(&sorted);
    let partial = search(&mut prepared, deadline).ok()??;
    Some(reasons(&mut prepared, &partial))
}

fn shrink(
    ops: Vec<Operation>,
    reasons: &BTreeSet<(usize, String)>,
    deadline: Instant,
) -> Vec<Operation> {
    let mut kept = ops;
    kept.sort_by_key(|op| (op.invoked_ns, op.id));
    let mut chunk = kept.len().div_ceil(2);
    while chunk >= 1 && Instant::now() < deadline {
        let mut at = 0;
        while at < kept.len() && Instant::now() < deadline {
            let end = (at + chunk).min(kept.len());
            let candidate: Vec<Operation> =
                kept[..at].iter().chain(&kept[end..]).cloned().collect();
            let same = keeps_sources(&candidate)
                && failure(&candidate, deadline).is_some_and(|r| !r.is_disjoint(reasons));
            if same {
                kept = candidate;
            } else {
                at = end;
            }
        }
        if chunk == 1 {
            break;
        }
        chunk = chunk.div_ceil(2);
    }
    kept
}

/// Whether every value a read returned is still written by some operation (appends, prepends
/// and arithmetic count as possible writers of anything), and every `cas` that stored still
/// has a `gets` that returned its unique.
fn keeps_sources(ops: &[Operation]) -> bool {
    let derived = ops.iter().any(|op| {
        matches!(
            op.input,
            Input::Append(_) | Input::Prepend(_) | Input::Incr(_) | Input::Decr(_)
        )
    });
    let written = |data: &Vec<u8>| {
        derived
            || ops.iter().any(|w| match &w.input {
                Input::Set(v) | Input::Add(v) | Input::Replace(v) => v == data,
                Input::Cas { value, .. } => value == data,
                _ => false,
            })
    };
    let read = |unique: u64| {
        ops.iter()
            .any(|r| matches!(r.output, Output::Value { cas, .. } if cas == unique))
    };
    ops.iter().all(|op| match (&op.input, &op.output) {
        (_, Output::Value { data, .. }) => written(data),
        (Input::Cas { unique, .. }, Output::Stored) => read(*unique),
        _ => true,
    })
}
