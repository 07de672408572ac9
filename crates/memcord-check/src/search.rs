//! Pieces both searches share: a bitset of linearized operations with an incremental hash,
//! and the memo of (linearized set, model state) pairs already explored.
//!
//! The memo is what makes the Wing–Gong/Lowe search practical: two paths that linearized the
//! same set of operations and reached the same model state have the same future, so the
//! second is cut off. As in Porcupine, the memo is a map from a hash to the few full entries
//! sharing it, so a lookup clones nothing.

use super::history::Operation;
use super::model::{self, Refusal, Reply, State, Step, Values};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::time::Instant;

/// A fixed-size set of operation indices, with a Zobrist hash of its *required* members kept
/// up to date.
///
/// Some indices are optional (indeterminate operations): the memo compares them by inclusion
/// rather than equality, so they stay out of the hash, and they live in their own words after
/// the required ones. Required operations are numbered in invocation order, so a search's set
/// is "everything up to some point, plus a few in the window of concurrent operations": the
/// memo stores it compactly as the index of the first word not yet full and the words from
/// there to the last non-empty one (see [`Bits::compact`]).
#[derive(Debug, Clone)]
pub(crate) struct Bits {
    words: Vec<u64>,
    /// Per index: its bit position.
    pos: Vec<usize>,
    /// How many words hold required members.
    required_words: usize,
    hash: u64,
}

impl Bits {
    /// An empty set able to hold `0..len`, where `optional(i)` marks optional indices.
    pub(crate) fn new(len: usize, optional: impl Fn(usize) -> bool) -> Bits {
        let required = (0..len).filter(|&i| !optional(i)).count();
        let required_words = required.div_ceil(64);
        let (mut r, mut o) = (0, required_words * 64);
        let pos = (0..len)
            .map(|i| {
                let at = if optional(i) { &mut o } else { &mut r };
                *at += 1;
                *at - 1
            })
            .collect();
        Bits {
            words: vec![0; o.div_ceil(64)],
            pos,
            required_words,
            hash: 0,
        }
    }

    fn locate(&self, i: usize) -> Option<(usize, u64)> {
        let p = *self.pos.get(i)?;
        Some((p / 64, 1 << (p % 64)))
    }

    /// Whether `i` is in the set.
    pub(crate) fn contains(&self, i: usize) -> bool {
        self.locate(i)
            .is_some_and(|(w, bit)| self.words[w] & bit != 0)
    }

    fn toggle(&mut self, i: usize) {
        if let Some((w, bit)) = self.locate(i) {
            self.words[w] ^= bit;
            if w < self.required_words {
                self.hash ^= zobrist(i);
            }
        }
    }

    /// Adds `i`.
    pub(crate) fn insert(&mut self, i: usize) {
        if !self.contains(i) {
            self.toggle(i);
        }
    }

    /// Removes `i`.
    pub(crate) fn remove(&mut self, i: usize) {
        if self.contains(i) {
            self.toggle(i);
        }
    }

    /// The set as the memo stores it: `[first, words[first..=last]…, optional words…]`, where
    /// every required word before `first` is full and every one after `last` empty.
    fn compact(&self, out: &mut Vec<u64>) {
        out.clear();
        let required = &self.words[..self.required_words];
        let first = required
            .iter()
            .position(|&w| w != u64::MAX)
            .unwrap_or(required.len());
        let last = required
            .iter()
            .rposition(|&w| w != 0)
            .map_or(first, |l| (l + 1).max(first));
        out.push(first as u64);
        out.extend_from_slice(&required[first..last]);
        out.extend_from_slice(&self.words[self.required_words..]);
    }

    /// How many trailing words of a compact form are optional.
    fn optional_words(&self) -> usize {
        self.words.len() - self.required_words
    }
}

/// Whether a compact set `now` is pointless given an explored compact set `old` with the same
/// model state: the same required members, and a superset of its optional ones. A search with
/// fewer optional operations behind it can still do everything this one can (each may be
/// placed later or never), so if it failed, this one fails.
fn dominated(now: &[u64], old: &[u64], optional_words: usize) -> bool {
    if now.len() != old.len() {
        return false;
    }
    let split = now.len() - optional_words;
    now[..split] == old[..split]
        && now[split..]
            .iter()
            .zip(&old[split..])
            .all(|(&n, &o)| o & !n == 0)
}

/// A fixed pseudo-random word per index (splitmix64), so a set's hash is the xor of its
/// members' words and changes in O(1) per insertion or removal.
fn zobrist(i: usize) -> u64 {
    let mut z = (i as u64)
        .wrapping_add(1)
        .wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A small multiply-rotate hasher (FxHash) for model states: fast, and good enough once mixed
/// with the bitset's Zobrist hash.
#[derive(Default)]
pub(crate) struct FxHasher(u64);

impl Hasher for FxHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(b as u64);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(n as u64);
    }

    fn write_u8(&mut self, n: u8) {
        self.write_u64(n as u64);
    }
}

/// Passes a precomputed hash through.
#[derive(Default)]
pub(crate) struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | b as u64;
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Explored pairs sharing one hash.
type Bucket<S> = Vec<(Box<[u64]>, S)>;

/// The set of explored (linearized set, state) pairs.
pub(crate) struct Memo<S> {
    buckets: HashMap<u64, Bucket<S>, BuildHasherDefault<IdentityHasher>>,
    bytes: usize,
    scratch: Vec<u64>,
}

/// Memory the memo may use before a search gives up with an unknown verdict.
pub(crate) const MEMO_LIMIT_BYTES: usize = 1 << 30;

impl<S: Hash + Eq + Clone> Memo<S> {
    /// An empty memo.
    pub(crate) fn new() -> Memo<S> {
        Memo {
            buckets: HashMap::default(),
            bytes: 0,
            scratch: Vec::new(),
        }
    }

    /// Records `(bits, state)`; `false` if it, or a pair dominating it, was already there.
    pub(crate) fn insert(&mut self, bits: &Bits, state: &S) -> bool {
        let mut hasher = FxHasher::default();
        state.hash(&mut hasher);
        let key = hasher.finish() ^ bits.hash;
        bits.compact(&mut self.scratch);
        let optional = bits.optional_words();
        let bucket = self.buckets.entry(key).or_default();
        if bucket
            .iter()
            .any(|(old, s)| s == state && dominated(&self.scratch, old, optional))
        {
            return false;
        }
        self.bytes += self.scratch.len() * 8 + std::mem::size_of::<S>() + 48;
        bucket.push((self.scratch.as_slice().into(), state.clone()));
        true
    }

    /// Whether the memo has outgrown [`MEMO_LIMIT_BYTES`].
    pub(crate) fn is_full(&self) -> bool {
        self.bytes > MEMO_LIMIT_BYTES
    }
}

/// Why a search stopped without a verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GaveUp {
    /// The time budget ran out.
    Time,
    /// The memo reached its memory limit.
    Memory,
}

/// Checks the deadline and the memo's size every few thousand steps.
pub(crate) struct Limits {
    deadline: Instant,
    steps: u64,
}

impl Limits {
    /// Limits ending at `deadline`.
    pub(crate) fn new(deadline: Instant) -> Limits {
        Limits { deadline, steps: 0 }
    }

    /// Counts one step; `Err` when the search must stop.
    pub(crate) fn tick<S: Hash + Eq + Clone>(&mut self, memo: &Memo<S>) -> Result<(), GaveUp> {
        self.steps += 1;
        if self.steps % 1024 == 0 {
            if Instant::now() >= self.deadline {
                return Err(GaveUp::Time);
            }
            if memo.is_full() {
                return Err(GaveUp::Memory);
            }
        }
        Ok(())
    }
}

/// One key's operations ready for a search: indeterminate reads dropped (they constrain
/// nothing and change nothing), the rest compiled for the model.
pub(crate) struct Prepared<'a> {
    /// The operations kept, in invocation order; searches index them `0..len`.
    pub(crate) ops: Vec<&'a Operation>,
    /// Each operation compiled.
    pub(crate) steps: Vec<Step>,
    /// The values met so far.
    pub(crate) values: Values,
    /// For each `gets` hit, the group of `gets` hits that answered the same cas id.
    cas_group: Vec<Option<usize>>,
    groups: Vec<Vec<usize>>,
}

impl<'a> Prepared<'a> {
    /// Prepares `ops` (one key's, in invocation order).
    pub(crate) fn new(ops: &[&'a Operation]) -> Prepared<'a> {
        let mut values = Values::new();
        let mut kept = Vec::new();
        let mut steps = Vec::new();
        for &op in ops {
            let step = Step::compile(op, &mut values);
            if step.is_read() && step.reply == Reply::Unknown {
                continue;
            }
            kept.push(op);
            steps.push(step);
        }
        let mut by_cas: HashMap<u64, usize> = HashMap::new();
        let mut groups: Vec<Vec<usize>> = Vec::new();
        let cas_group = steps
            .iter()
            .enumerate()
            .map(|(i, step)| {
                let cas = step.observed_cas()?;
                let group = *by_cas.entry(cas).or_insert_with(|| {
                    groups.push(Vec::new());
                    groups.len() - 1
                });
                groups[group].push(i);
                Some(group)
            })
            .collect();
        Prepared {
            ops: kept,
            steps,
            values,
            cas_group,
            groups,
        }
    }

    /// Runs operation `i` on `state`, given the operations linearized so far.
    pub(crate) fn step(&mut self, state: State, i: usize, done: &Bits) -> Result<State, Refusal> {
        self.step_with(state, i, |j| done.contains(j))
    }

    /// [`Prepared::step`] with the linearized set given as a predicate on indices.
    pub(crate) fn step_with(
        &mut self,
        state: State,
        i: usize,
        done: impl Fn(usize) -> bool,
    ) -> Result<State, Refusal> {
        let group = self.cas_group[i].map_or(&[][..], |g| &self.groups[g][..]);
        let seen = |_| group.iter().any(|&j| j != i && done(j));
        model::step(state, &self.steps[i], &mut self.values, seen)
    }

    /// A read (definite, by index) that returned a value no operation could have written: no
    /// append, prepend, incr or decr touches the key, and no set, add, replace or cas of that
    /// value was invoked before the read returned (`real_time`) or at all (otherwise). A
    /// cheap proof of a violation that spares the search.
    pub(crate) fn unwritten_read(&self, real_time: bool) -> Option<usize> {
        use super::model::Call;
        let derived = self.steps.iter().any(|s| {
            matches!(
                s.call,
                Call::Append(_) | Call::Prepend(_) | Call::Incr(_) | Call::Decr(_)
            )
        });
        if derived {
            return None;
        }
        (0..self.steps.len()).find(|&i| {
            let Reply::Value(value, _) = self.steps[i].reply else {
                return false;
            };
            !self.steps.iter().zip(&self.ops).any(|(w, op)| {
                let writes = matches!(
                    w.call,
                    Call::Set(v) | Call::Add(v) | Call::Replace(v) | Call::Cas(v, _) if v == value
                );
                writes && (!real_time || op.invoked_ns <= self.ops[i].returned_ns)
            })
        })
    }

    /// Whether operation `i` may be left out (it is indeterminate).
    pub(crate) fn optional(&self, i: usize) -> bool {
        self.steps[i].reply == Reply::Unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_track_members_and_hash() {
        let mut bits = Bits::new(130, |i| i == 3);
        assert!(!bits.contains(129));
        bits.insert(129);
        bits.insert(3);
        assert!(bits.contains(129) && bits.contains(3) && !bits.contains(4));
        let h = bits.hash;
        bits.remove(129);
        assert!(!bits.contains(129));
        bits.insert(129);
        assert_eq!(bits.hash, h);
        assert!(!bits.contains(100_000));
    }

    #[test]
    fn compact_forms_skip_full_and_empty_words() {
        let mut bits = Bits::new(300, |i| i == 5);
        let mut out = Vec::new();
        bits.compact(&mut out);
        assert_eq!(out, vec![0, 0]);
        for i in (0..200).filter(|&i| i != 5) {
            bits.insert(i);
        }
        bits.compact(&mut out);
        // 199 required members: words 0..3 full, word 3 holds 7 bits; then the optional word.
        assert_eq!(out, vec![3, 0x7f, 0]);
        bits.insert(5);
        bits.compact(&mut out);
        assert_eq!(out, vec![3, 0x7f, 1]);
        assert!(dominated(&[3, 0x7f, 1], &[3, 0x7f, 0], 1));
        assert!(!dominated(&[3, 0x7f, 0], &[3, 0x7f, 1], 1));
        assert!(!dominated(&[3, 0x3f, 1], &[3, 0x7f, 0], 1));
    }

    #[test]
    fn memo_refuses_repeats() {
        let mut memo = Memo::new();
        let mut bits = Bits::new(10, |i| i == 7);
        assert!(memo.insert(&bits, &1u8));
        assert!(!memo.insert(&bits, &1u8));
        assert!(memo.insert(&bits, &2u8));
        bits.insert(4);
        assert!(memo.insert(&bits, &1u8));
        // More optional members than an explored pair: dominated.
        bits.insert(7);
        assert!(!memo.insert(&bits, &1u8));
        // Fewer: not.
        let mut other = Bits::new(10, |i| i == 7);
        other.insert(7);
        assert!(memo.insert(&other, &3u8));
        other.remove(7);
        assert!(memo.insert(&other, &3u8));
    }
}
