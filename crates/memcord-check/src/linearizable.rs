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
//! Beyond Porcupine, three reductions keep busy keys cheap: a read the model accepts without
//! changing the state is linearized at once with no alternative tried; indeterminate
//! operations are tried after the definite candidates, and the memo treats a configuration
//! as explored when one with the same definite operations and state but *fewer*
//! indeterminate ones was (it could do everything this one can); and a read of a value that
//! no operation invoked before it returned writes is reported without a search.
//!
//! On a violation the report gives the longest linearizable prefix found (counted in definite
//! operations) and the operations that could not follow it (Porcupine's partial
//! linearization), each with the model's reason, then shrinks that sub-history while it stays
//! non-linearizable for the same reason (see `shrink`).
//!
//! # Guarantees
//!
//! `Ok` and `Violation` are exact with respect to the model in [`super::model`] (each key
//! starts absent; cas ids are unique per write). The search is exponential in the worst case
//! (NP-complete problem): the budget turns that into [`Verdict::Unknown`], as does the memo
//! reaching its memory limit. Proving a violation costs far more than finding a
//! linearization: the search must exhaust every configuration up to the failure.

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
    if let Some(read) = prepared.unwritten_read(true) {
        return Outcome::Violation(unwritten(
            key,
            &prepared,
            read,
            "invoked before it returned",
        ));
    }
    match search(&mut prepared, deadline) {
        Ok(None) => Outcome::Linearizable,
        Err(why) => Outcome::GaveUp(why),
        Ok(Some(partial)) => {
            let violation = explain(key, "linearization", &mut prepared, &partial);
            let reasons = shrink::reasons(&mut prepared, &partial);
            Outcome::Violation(shrink::shrunk(violation, reasons, &prepared.ops, deadline))
        }
    }
}

/// The violation of a read that returned a value nobody wrote (`when` says by when).
pub(crate) fn unwritten(key: &str, prepared: &Prepared, read: usize, when: &str) -> Violation {
    let op = prepared.ops[read];
    Violation {
        key: key.to_string(),
        operations: vec![op.clone()],
        explanation: format!(
            "a read returned a value that no operation {when} writes.\n{ORDER_LINE}\n\
             {STUCK_LINE} {}\n  {}: no write of this value\n",
            op.id,
            describe::line(op)
        ),
    }
}

/// The call/return entry list.
struct Entries {
    /// Per entry: the operation and whether it is the call.
    kind: Vec<(usize, bool)>,
    /// Per entry: its time.
    time: Vec<u64>,
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
            if !prepared.optional(i) {
                timed.push((op.invoked_ns, false, i));
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
        let time = timed.iter().map(|&(t, ..)| t).collect();
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
            time,
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

/// Where the search looks for its next candidate: an entry of the call/return list, or
/// (once the list's candidates are exhausted) the `k`-th indeterminate operation, which is a
/// candidate if invoked no later than `bound`, the first pending return's time.
#[derive(Debug, Clone, Copy)]
enum Cursor {
    List(usize),
    Optional { k: usize, bound: u64 },
}

/// A step of the search's path: the operation linearized, the state before it, and where to
/// look next if it is undone (`None`: it was forced, a read that changed nothing, so no
/// alternative needs trying).
struct Frame {
    op: usize,
    /// The list entry of its call (indeterminate operations are not in the list).
    call: Option<usize>,
    before: State,
    resume: Option<Cursor>,
}

/// The search: `Ok(None)` when linearizable, `Ok(Some(partial))` when not.
///
/// Indeterminate operations stay out of the call/return list (they have no return) and are
/// tried after the list's candidates at each configuration, so the branch where they have not
/// (yet) taken effect is explored first; the memo then prunes any configuration that only
/// differs from an explored one by having used more of them (see `Bits`).
///
/// One more reduction: at each new configuration, a pending read that the model accepts
/// *without changing the state* (a miss on an absent key, or a hit on an item whose cas id is
/// already known) is linearized at once with no alternative tried. Any linearization that
/// places it later stays legal with it moved here, since it changes nothing and everything
/// that had to precede it already has.
pub(crate) fn search(
    prepared: &mut Prepared,
    deadline: Instant,
) -> Result<Option<Partial>, GaveUp> {
    let mut list = Entries::new(prepared);
    let mut optional: Vec<usize> = (0..prepared.ops.len())
        .filter(|&i| prepared.optional(i))
        .collect();
    optional.sort_by_key(|&i| (prepared.ops[i].invoked_ns, i));
    let mut limits = Limits::new(deadline);
    let mut memo: Memo<State> = Memo::new();
    let mut done = Bits::new(prepared.ops.len(), |i| prepared.optional(i));
    let mut state: State = None;
    let mut stack: Vec<Frame> = Vec::new();
    let mut best: Option<Partial> = None;
    // Definite operations on the stack, and on the best partial's.
    let mut placed = 0usize;
    let mut best_placed: Option<usize> = None;
    let mut cursor = Cursor::List(list.next[list.head]);
    let mut arrived = true;
    loop {
        limits.tick(&memo)?;
        let mut dead_end = false;
        if arrived {
            arrived = false;
            if let Some(call) = pure_read(&list, prepared, state, &done) {
                let op = list.kind[call].0;
                done.insert(op);
                if memo.insert(&done, &state) {
                    stack.push(Frame {
                        op,
                        call: Some(call),
                        before: state,
                        resume: None,
                    });
                    placed += 1;
                    list.lift(call);
                    arrived = true;
                    continue;
                }
                done.remove(op);
                dead_end = true;
            }
            cursor = Cursor::List(list.next[list.head]);
        }
        if !dead_end {
            // The next candidate, and where to resume after it.
            let candidate = match cursor {
                Cursor::List(entry) if entry == list.tail => return Ok(None),
                Cursor::List(entry) => {
                    let (op, is_call) = list.kind[entry];
                    if is_call {
                        cursor = Cursor::List(list.next[entry]);
                        Some((op, Some(entry)))
                    } else {
                        cursor = Cursor::Optional {
                            k: 0,
                            bound: list.time[entry],
                        };
                        continue;
                    }
                }
                Cursor::Optional { k, bound } => optional[k..]
                    .iter()
                    .take_while(|&&op| prepared.ops[op].invoked_ns <= bound)
                    .position(|&op| !done.contains(op))
                    .map(|at| {
                        cursor = Cursor::Optional {
                            k: k + at + 1,
                            bound,
                        };
                        (optional[k + at], None)
                    }),
            };
            if let Some((op, call)) = candidate {
                if let Ok(next_state) = prepared.step(state, op, &done) {
                    done.insert(op);
                    if memo.insert(&done, &next_state) {
                        stack.push(Frame {
                            op,
                            call,
                            before: state,
                            resume: Some(cursor),
                        });
                        placed += usize::from(!prepared.optional(op));
                        state = next_state;
                        if let Some(entry) = call {
                            list.lift(entry);
                        }
                        arrived = true;
                    } else {
                        done.remove(op);
                    }
                }
                continue;
            }
            // The longest prefix counts definite operations only: indeterminate ones are
            // free to add and would make a worse story look longer.
            if !matches!(best_placed, Some(b) if b >= placed) {
                best = Some(snapshot(&list, &optional, prepared, &stack, state, &done));
                best_placed = Some(placed);
            }
        }
        loop {
            let Some(frame) = stack.pop() else {
                return Ok(best);
            };
            done.remove(frame.op);
            placed -= usize::from(!prepared.optional(frame.op));
            state = frame.before;
            if let Some(entry) = frame.call {
                list.unlift(entry);
            }
            if let Some(resume) = frame.resume {
                cursor = resume;
                break;
            }
        }
    }
}

/// The current path as a [`Partial`]: its order, its state, and the pending candidates (the
/// list's calls before its first return, and the indeterminate operations invoked by then).
fn snapshot(
    list: &Entries,
    optional: &[usize],
    prepared: &Prepared,
    stack: &[Frame],
    state: State,
    done: &Bits,
) -> Partial {
    let mut stuck = Vec::new();
    let mut e = list.next[list.head];
    while e != list.tail && list.kind[e].1 {
        stuck.push(list.kind[e].0);
        e = list.next[e];
    }
    let bound = if e == list.tail {
        u64::MAX
    } else {
        list.time[e]
    };
    if e != list.tail {
        stuck.push(list.kind[e].0);
    }
    stuck.extend(
        optional
            .iter()
            .filter(|&&op| !done.contains(op) && prepared.ops[op].invoked_ns <= bound),
    );
    stuck.sort_unstable();
    stuck.dedup();
    Partial {
        order: stack.iter().map(|f| f.op).collect(),
        state,
        stuck,
    }
}

/// A pending call, before the first pending return, of a read the model accepts in `state`
/// without changing it.
fn pure_read(list: &Entries, prepared: &mut Prepared, state: State, done: &Bits) -> Option<usize> {
    let mut e = list.next[list.head];
    while e != list.tail {
        let (op, is_call) = list.kind[e];
        if !is_call {
            return None;
        }
        if prepared.steps[op].is_read() && prepared.step(state, op, done) == Ok(state) {
            return Some(e);
        }
        e = list.next[e];
    }
    None
}

/// Why each stuck operation cannot follow the prefix (`None`: it can, but leads nowhere).
pub(crate) fn refusals(prepared: &mut Prepared, partial: &Partial) -> Vec<Option<String>> {
    let mut done = Bits::new(prepared.ops.len(), |_| false);
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
