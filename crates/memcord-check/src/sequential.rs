//! Sequential consistency: some single order of all operations that the model accepts and that
//! keeps each client's operations in the order the client issued them (real time between
//! clients is ignored).
//!
//! # What this checks, and what it does not
//!
//! Unlike linearizability, sequential consistency is not a local property: every key's
//! sub-history can have its own legal order while no single order serves all keys at once.
//! So the per-key search here is a **necessary, not sufficient** condition: a violation it
//! reports is real, but `Ok` means only "each key is sequentially consistent on its own".
//! When the whole history is small (at most [`GLOBAL_LIMIT`] operations) the check also
//! searches for one order over all keys, which is exact.
//!
//! # Clients and sessions
//!
//! A client's program order is its operations sorted by invocation time. memcord's sequential
//! mode promises program order per *connection*, and an indeterminate reply usually means the
//! connection broke, so an indeterminate operation ends its client's session: it must follow
//! the client's earlier operations, may be left out, and the client's later operations start a
//! new session with no order relative to it or to the earlier ones.

use super::history::{History, Operation};
use super::linearizable::{deadline_after, explain, gave_up_text, unwritten, Partial};
use super::model::{Refusal, State};
use super::search::{Bits, GaveUp, Limits, Memo, Prepared};
use super::{by_key, describe, id_list, Report, Verdict, Violation, ORDER_LINE, STUCK_LINE};
use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Histories with at most this many operations (indeterminate reads aside) are also checked
/// as a whole, across keys.
pub const GLOBAL_LIMIT: usize = 12;

/// Checks each key's sub-history for sequential consistency within `budget`, and small
/// histories as a whole.
pub fn check(history: &History, budget: Duration) -> Report {
    let start = Instant::now();
    let deadline = deadline_after(start, budget);
    let sessions = sessions(history);
    let keys = by_key(history);
    let mut order: Vec<_> = keys.into_iter().collect();
    order.sort_by_key(|(key, ops)| (ops.len(), *key));
    let mut checked = 0;
    let mut undecided = Vec::new();
    let report = |verdict, keys_checked| Report {
        verdict,
        keys_checked,
        operations: history.operations.len(),
        elapsed: start.elapsed(),
    };
    let mut prepared_keys = Vec::new();
    for (key, ops) in &order {
        let mut prepared = Prepared::new(ops);
        if let Some(read) = prepared.unwritten_read(false) {
            let v = unwritten(key, &prepared, read, "in the history");
            return report(Verdict::Violation(v), checked + 1);
        }
        let chains = chains(&prepared.ops, &sessions, |i| i);
        let mut machine = OneKey(&mut prepared);
        match dfs(&mut machine, &chains, deadline) {
            Ok(None) => checked += 1,
            Ok(Some(partial)) => {
                let v = explain(
                    key,
                    "order respecting program order",
                    &mut prepared,
                    &partial,
                );
                return report(Verdict::Violation(v), checked + 1);
            }
            Err(why) => undecided.push((key.to_string(), why)),
        }
        prepared_keys.push(prepared);
    }
    if let Some((key, why)) = undecided.first() {
        let why = format!(
            "{} of {} keys undecided ({}); first: {key:?}",
            undecided.len(),
            order.len(),
            gave_up_text(*why, budget)
        );
        return report(Verdict::Unknown(why), checked);
    }
    let total: usize = prepared_keys.iter().map(|p| p.ops.len()).sum();
    if prepared_keys.len() > 1 && total <= GLOBAL_LIMIT {
        match check_global(prepared_keys, &sessions, deadline) {
            Ok(None) => {}
            Ok(Some(v)) => return report(Verdict::Violation(v), checked),
            Err(why) => return report(Verdict::Unknown(gave_up_text(why, budget)), checked),
        }
    }
    report(Verdict::Ok, checked)
}

/// Each operation's process (client and session), by op id.
fn sessions(history: &History) -> HashMap<usize, (usize, usize)> {
    let mut ops: Vec<&Operation> = history.operations.iter().collect();
    ops.sort_by_key(|op| (op.client, op.invoked_ns, op.id));
    let mut session: HashMap<usize, usize> = HashMap::new();
    let mut of = HashMap::new();
    for op in ops {
        let s = session.entry(op.client).or_insert(0);
        of.insert(op.id, (op.client, *s));
        if op.output.is_indeterminate() {
            *s += 1;
        }
    }
    of
}

/// The program-order chains over `ops` (in invocation order), with indices mapped by `index`.
fn chains(
    ops: &[&Operation],
    sessions: &HashMap<usize, (usize, usize)>,
    index: impl Fn(usize) -> usize,
) -> Vec<Vec<usize>> {
    let mut chain_of: HashMap<(usize, usize), usize> = HashMap::new();
    let mut chains: Vec<Vec<usize>> = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        let process = sessions.get(&op.id).copied().unwrap_or((op.client, 0));
        let c = *chain_of.entry(process).or_insert_with(|| {
            chains.push(Vec::new());
            chains.len() - 1
        });
        chains[c].push(index(i));
    }
    chains
}

/// A model the search can run: operations by index, states to memoize.
trait Machine {
    type State: Clone + Eq + Hash;
    fn initial(&self) -> Self::State;
    fn len(&self) -> usize;
    fn optional(&self, op: usize) -> bool;
    fn is_read(&self, op: usize) -> bool;
    fn step(&mut self, state: &Self::State, op: usize, done: &Bits)
        -> Result<Self::State, Refusal>;
}

/// One key's model.
struct OneKey<'p, 'a>(&'p mut Prepared<'a>);

impl Machine for OneKey<'_, '_> {
    type State = State;
    fn initial(&self) -> State {
        None
    }
    fn len(&self) -> usize {
        self.0.ops.len()
    }
    fn optional(&self, op: usize) -> bool {
        self.0.optional(op)
    }
    fn is_read(&self, op: usize) -> bool {
        self.0.steps[op].is_read()
    }
    fn step(&mut self, state: &State, op: usize, done: &Bits) -> Result<State, Refusal> {
        self.0.step(*state, op, done)
    }
}

/// All keys' models at once; operation `offsets[k] + i` is key `k`'s operation `i`.
struct AllKeys<'a> {
    keys: Vec<Prepared<'a>>,
    offsets: Vec<usize>,
    /// Per global index: (key, local index).
    place: Vec<(usize, usize)>,
}

impl Machine for AllKeys<'_> {
    type State = Vec<State>;
    fn initial(&self) -> Vec<State> {
        vec![None; self.keys.len()]
    }
    fn len(&self) -> usize {
        self.place.len()
    }
    fn optional(&self, op: usize) -> bool {
        let (k, i) = self.place[op];
        self.keys[k].optional(i)
    }
    fn is_read(&self, op: usize) -> bool {
        let (k, i) = self.place[op];
        self.keys[k].steps[i].is_read()
    }
    fn step(&mut self, state: &Vec<State>, op: usize, done: &Bits) -> Result<Vec<State>, Refusal> {
        let (k, i) = self.place[op];
        let offset = self.offsets[k];
        let next = self.keys[k].step_with(state[k], i, |j| done.contains(offset + j))?;
        let mut all = state.clone();
        all[k] = next;
        Ok(all)
    }
}

fn check_global(
    keys: Vec<Prepared>,
    sessions: &HashMap<usize, (usize, usize)>,
    deadline: Instant,
) -> Result<Option<Violation>, GaveUp> {
    let mut offsets = Vec::new();
    let mut place = Vec::new();
    let mut all: Vec<&Operation> = Vec::new();
    for (k, prepared) in keys.iter().enumerate() {
        offsets.push(place.len());
        for (i, &op) in prepared.ops.iter().enumerate() {
            place.push((k, i));
            all.push(op);
        }
    }
    // Chains need the operations in invocation order; map positions back to global indices.
    let mut by_time: Vec<usize> = (0..all.len()).collect();
    by_time.sort_by_key(|&g| (all[g].invoked_ns, all[g].id));
    let sorted: Vec<&Operation> = by_time.iter().map(|&g| all[g]).collect();
    let chains = chains(&sorted, sessions, |i| by_time[i]);
    let mut machine = AllKeys {
        keys,
        offsets,
        place,
    };
    let Some(partial) = dfs(&mut machine, &chains, deadline)? else {
        return Ok(None);
    };
    let ordered: Vec<&Operation> = partial.order.iter().map(|&g| all[g]).collect();
    let stuck: Vec<&Operation> = partial.stuck.iter().map(|&g| all[g]).collect();
    let mut explanation = format!(
        "each key alone has an order respecting program order, but no single order of all \
         {} operations does.\n{ORDER_LINE} {}\n{STUCK_LINE} {}\n",
        all.len(),
        id_list(ordered.iter().copied()),
        id_list(stuck.iter().copied()),
    );
    for op in &stuck {
        explanation.push_str(&format!("  {}\n", describe::line(op)));
    }
    let mut operations: Vec<Operation> = ordered.into_iter().cloned().collect();
    let mut rest: Vec<Operation> = all
        .iter()
        .filter(|op| !partial.order.iter().any(|&g| all[g].id == op.id))
        .map(|&op| op.clone())
        .collect();
    rest.sort_by_key(|op| (op.invoked_ns, op.id));
    operations.append(&mut rest);
    Ok(Some(Violation {
        key: "*".to_string(),
        operations,
        explanation,
    }))
}

/// Depth-first search for an order taking each chain's operations in turn; `Ok(None)` when
/// one exists.
///
/// As in the linearizability search, a chain head that is a read the model accepts without
/// changing the state is taken at once with no alternative tried: moving such a read earlier
/// in its own chain's turn keeps any legal order legal.
fn dfs<M: Machine>(
    machine: &mut M,
    chains: &[Vec<usize>],
    deadline: Instant,
) -> Result<Option<Partial<M::State>>, GaveUp> {
    let mut limits = Limits::new(deadline);
    let mut memo: Memo<M::State> = Memo::new();
    let mut done = Bits::new(machine.len(), |op| machine.optional(op));
    let mut pos = vec![0usize; chains.len()];
    let mut required = (0..machine.len())
        .filter(|&op| !machine.optional(op))
        .count();
    let mut state = machine.initial();
    // (slot: chain, plus the chain count for an indeterminate op; op; state before; forced)
    let mut stack: Vec<(usize, usize, M::State, bool)> = Vec::new();
    let mut best: Option<Partial<M::State>> = None;
    // Definite operations placed, now and in the best partial (indeterminate ones are free
    // to add and would make a worse story look longer).
    let total = required;
    let mut best_placed: Option<usize> = None;
    let mut from = 0;
    let mut arrived = true;
    loop {
        limits.tick(&memo)?;
        if required == 0 {
            return Ok(None);
        }
        let mut dead_end = false;
        let mut advanced = false;
        if arrived {
            arrived = false;
            let pure = chains
                .iter()
                .zip(&pos)
                .enumerate()
                .find_map(|(c, (chain, &p))| {
                    let op = *chain.get(p)?;
                    let same =
                        machine.is_read(op) && machine.step(&state, op, &done).ok()? == state;
                    same.then_some((c, op))
                });
            if let Some((c, op)) = pure {
                done.insert(op);
                if memo.insert(&done, &state) {
                    stack.push((c, op, state.clone(), true));
                    pos[c] += 1;
                    required -= usize::from(!machine.optional(op));
                    arrived = true;
                    continue;
                }
                done.remove(op);
                dead_end = true;
            }
        }
        if !dead_end {
            // Definite heads first, then indeterminate ones (slots C..2C), so the branch where
            // an indeterminate operation has not taken effect is explored first and the memo
            // can prune the others (see `Bits`).
            let n = chains.len();
            for slot in from..2 * n {
                let c = slot % n;
                let Some(&op) = chains[c].get(pos[c]) else {
                    continue;
                };
                if machine.optional(op) != (slot >= n) {
                    continue;
                }
                let Ok(next) = machine.step(&state, op, &done) else {
                    continue;
                };
                done.insert(op);
                if memo.insert(&done, &next) {
                    stack.push((slot, op, std::mem::replace(&mut state, next), false));
                    pos[c] += 1;
                    required -= usize::from(!machine.optional(op));
                    advanced = true;
                    break;
                }
                done.remove(op);
            }
            if advanced {
                from = 0;
                arrived = true;
                continue;
            }
            let placed = total - required;
            if !matches!(best_placed, Some(b) if b >= placed) {
                best_placed = Some(placed);
                best = Some(Partial {
                    order: stack.iter().map(|&(_, op, ..)| op).collect(),
                    state: state.clone(),
                    stuck: chains
                        .iter()
                        .zip(&pos)
                        .filter_map(|(chain, &p)| chain.get(p).copied())
                        .collect(),
                });
            }
        }
        loop {
            let Some((slot, op, before, forced)) = stack.pop() else {
                return Ok(best);
            };
            pos[slot % chains.len()] -= 1;
            done.remove(op);
            required += usize::from(!machine.optional(op));
            state = before;
            if !forced {
                from = slot + 1;
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests;
