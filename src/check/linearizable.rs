//! Linearizability: the Wing–Gong search with Lowe's memo, in the style of Porcupine.
//!
//! Linearizability is compositional (P-compositionality): a history is linearizable iff each
//! key's sub-history is, so each key is checked alone. Per key, the history becomes a list of
//! call and return entries sorted by time (a call before a return at the same instant, so
//! touching operations count as concurrent). The search repeatedly linearizes a call whose
//! operation the model accepts next, lifting it and its return out of the list, and backtracks
//! when it meets the return of an operation it has not linearized. Each (linearized set,
//! model state) pair is explored once.
//!
//! Indeterminate operations have no return entry: they may take effect at any point after
//! their invocation, or never. The search succeeds once no return entry is left, whatever
//! indeterminate calls remain. Indeterminate reads are dropped up front.
//!
//! On a violation the report gives the longest linearizable prefix found and the operations
//! that could not follow it (Porcupine's partial linearization), each with the model's
//! reason, then shrinks that sub-history while it stays non-linearizable.

use super::history::{History, Operation};
use super::model::{self, State};
use super::search::{Bits, GaveUp, Limits, Memo, Prepared};
use super::{
    by_key, describe, id_list, shrink, Report, Verdict, Violation, ORDER_LINE, STUCK_LINE,
};
use std::time::{Duration, Instant};

/// Checks every key's sub-history for linearizability within `budget`.
///
/// Keys are checked smallest first; a violation on any key wins, else any key left
/// undecided makes the verdict [`Verdict::Unknown`].
pub fn check(history: &History, budget: Duration) -> Report {
    let start = Instant::now();
    let deadline = deadline_after(start, budget);
    let keys = by_key(history);
    let mut order: Vec<_> = keys.into_iter().collect();
    order.sort_by_key(|(key, ops)| (ops.len(), *key));
    let mut checked = 0;
    let mut undecided = Vec::new();
    for (key, ops) in &order {
        match check_key(key, ops, deadline) {
            Outcome::Linearizable => checked += 1,
            Outcome::Violation(v) => {
                return Report {
                    verdict: Verdict::Violation(v),
                    keys_checked: checked + 1,
                    operations: history.operations.len(),
                    elapsed: start.elapsed(),
                }
            }
            Outcome::GaveUp(why) => undecided.push((key.to_string(), why)),
        }
    }
    let verdict = match undecided.first() {
        None => Verdict::Ok,
        Some((key, why)) => Verdict::Unknown(format!(
            "{} of {} keys undecided ({}); first: {key:?}",
            undecided.len(),
            order.len(),
            gave_up_text(*why, budget)
        )),
    };
    Report {
        verdict,
        keys_checked: checked,
        operations: history.operations.len(),
        elapsed: start.elapsed(),
    }
}

/// `start + budget`, or far in the future when that overflows.
pub(crate) fn deadline_after(start: Instant, budget: Duration) -> Instant {
    start
        .checked_add(budget)
        .unwrap_or_else(|| start + Duration::from_secs(86_400 * 365))
}

/// Why a key was left undecided, in words.
pub(crate) fn gave_up_text(why: GaveUp, budget: Duration) -> String {
    match why {
        GaveUp::Time => format!("time budget of {:.3} s exhausted", budget.as_secs_f64()),
        GaveUp::Memory => "search memo reached its memory limit".to_string(),
    }
}

/// One key's verdict.
pub(crate) enum Outcome {
    Linearizable,
    Violation(Violation),
    GaveUp(GaveUp),
}

/// The longest explainable prefix a search found before it got stuck.
pub(crate) struct Partial<S = State> {
    /// Indices (into the prepared history) in the order found.
    pub(crate) order: Vec<usize>,
    /// The model state after them.
    pub(crate) state: S,
    /// Indices of the operations that were candidates to go next, none of which worked out.
    pub(crate) stuck: Vec<usize>,
}

fn check_key(key: &str, ops: &[&Operation], deadline: Instant) -> Outcome {
    let mut prepared = Prepared::new(ops);
    match search(&mut prepared, deadline) {
        Ok(None) => Outcome::Linearizable,
        Err(why) => Outcome::GaveUp(why),
        Ok(Some(partial)) => {
            let violation = explain(key, "linearization", &mut prepared, &partial);
            Outcome::Violation(shrink::shrunk(violation, &prepared.ops, deadline))
        }
    }
}

/// The call/return entry list.
struct Entries {
    /// Per entry: the operation and whether it is the call.
    kind: Vec<(usize, bool)>,
    /// Per operation: its return entry, if it has one.
    ret: Vec<Option<usize>>,
    next: Vec<usize>,
    prev: Vec<usize>,
    head: usize,
    tail: usize,
}

impl Entries {
    fn new(prepared: &Prepared) -> Entries {
        let mut timed: Vec<(u64, bool, usize)> = Vec::new();
        for (i, op) in prepared.ops.iter().enumerate() {
            timed.push((op.invoked_ns, false, i));
            if !prepared.optional(i) {
                timed.push((op.returned_ns.max(op.invoked_ns), true, i));
            }
        }
        // Calls sort before returns at the same instant (`false < true`).
        timed.sort_unstable();
        let n = timed.len();
        let mut ret = vec![None; prepared.ops.len()];
        let kind = timed
            .iter()
            .enumerate()
            .map(|(e, &(_, is_return, op))| {
                if is_return {
                    ret[op] = Some(e);
                }
                (op, !is_return)
            })
            .collect();
        let (head, tail) = (n, n + 1);
        let next = (0..n + 2)
            .map(|e| match e {
                _ if e + 1 < n => e + 1,
                _ if e == head && n > 0 => 0,
                _ => tail,
            })
            .collect();
        let prev = (0..n + 2)
            .map(|e| match e {
                0 if n > 0 => head,
                _ if e < n => e - 1,
                _ if e == tail && n > 0 => n - 1,
                _ => head,
            })
            .collect();
        Entries {
            kind,
            ret,
            next,
            prev,
            head,
            tail,
        }
    }

    fn unlink(&mut self, e: usize) {
        let (p, n) = (self.prev[e], self.next[e]);
        self.next[p] = n;
        self.prev[n] = p;
    }

    fn relink(&mut self, e: usize) {
        let (p, n) = (self.prev[e], self.next[e]);
        self.next[p] = e;
        self.prev[n] = e;
    }

    /// Removes a call entry and its return.
    fn lift(&mut self, call: usize) {
        self.unlink(call);
        if let Some(r) = self.ret[self.kind[call].0] {
            self.unlink(r);
        }
    }

    /// Undoes [`Entries::lift`] (in reverse order, as dancing links require).
    fn unlift(&mut self, call: usize) {
        if let Some(r) = self.ret[self.kind[call].0] {
            self.relink(r);
        }
        self.relink(call);
    }
}

/// The search: `Ok(None)` when linearizable, `Ok(Some(partial))` when not.
pub(crate) fn search(
    prepared: &mut Prepared,
    deadline: Instant,
) -> Result<Option<Partial>, GaveUp> {
    let mut list = Entries::new(prepared);
    let mut limits = Limits::new(deadline);
    let mut memo: Memo<State> = Memo::new();
    let mut done = Bits::new(prepared.ops.len());
    let mut state: State = None;
    let mut stack: Vec<(usize, State)> = Vec::new();
    let mut best: Option<Partial> = None;
    let mut entry = list.next[list.head];
    loop {
        limits.tick(&memo)?;
        if entry == list.tail {
            return Ok(None);
        }
        let (op, is_call) = list.kind[entry];
        if is_call {
            if let Ok(next_state) = prepared.step(state, op, &done) {
                done.insert(op);
                if memo.insert(&done, &next_state) {
                    stack.push((entry, state));
                    state = next_state;
                    list.lift(entry);
                    entry = list.next[list.head];
                    continue;
                }
                done.remove(op);
            }
            entry = list.next[entry];
            continue;
        }
        if !matches!(&best, Some(b) if b.order.len() >= stack.len()) {
            let mut stuck = Vec::new();
            let mut e = list.next[list.head];
            while e != entry {
                stuck.push(list.kind[e].0);
                e = list.next[e];
            }
            best = Some(Partial {
                order: stack.iter().map(|&(e, _)| list.kind[e].0).collect(),
                state,
                stuck,
            });
        }
        let Some((call, before)) = stack.pop() else {
            return Ok(best);
        };
        done.remove(list.kind[call].0);
        state = before;
        list.unlift(call);
        entry = list.next[call];
    }
}

/// Why each stuck operation cannot follow the prefix (`None`: it can, but leads nowhere).
pub(crate) fn refusals(prepared: &mut Prepared, partial: &Partial) -> Vec<Option<String>> {
    let mut done = Bits::new(prepared.ops.len());
    for &i in &partial.order {
        done.insert(i);
    }
    partial
        .stuck
        .iter()
        .map(|&i| match prepared.step(partial.state, i, &done) {
            Ok(_) => None,
            Err(refusal) => Some(model::describe_refusal(refusal, &prepared.values)),
        })
        .collect()
}

/// Turns a search's partial result into a [`Violation`].
pub(crate) fn explain(
    key: &str,
    what: &str,
    prepared: &mut Prepared,
    partial: &Partial,
) -> Violation {
    let mut reasons = String::new();
    for (i, reason) in partial.stuck.iter().zip(refusals(prepared, partial)) {
        let reason = reason.unwrap_or("could go next, but then the rest cannot be ordered".into());
        reasons.push_str(&format!(
            "  {}: {reason}\n",
            describe::line(prepared.ops[*i])
        ));
    }
    let ordered: Vec<&Operation> = partial.order.iter().map(|&i| prepared.ops[i]).collect();
    let mut stuck: Vec<&Operation> = partial.stuck.iter().map(|&i| prepared.ops[i]).collect();
    stuck.sort_by_key(|op| (op.invoked_ns, op.id));
    let indeterminate = prepared
        .ops
        .iter()
        .filter(|op| op.output.is_indeterminate())
        .count();
    let explanation = format!(
        "no {what} of the key's {} operations ({indeterminate} indeterminate) exists.\n\
         the longest explainable prefix orders {} of them and leaves the key {}.\n\
         {ORDER_LINE} {}\n{STUCK_LINE} {}\n{reasons}",
        prepared.ops.len(),
        ordered.len(),
        model::describe_state(partial.state, &prepared.values),
        id_list(ordered.iter().copied()),
        id_list(stuck.iter().copied()),
    );
    Violation {
        key: key.to_string(),
        operations: ordered.into_iter().chain(stuck).cloned().collect(),
        explanation,
    }
}

#[cfg(test)]
mod tests;
