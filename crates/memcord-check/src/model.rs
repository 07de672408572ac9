//! The sequential specification of one memcache key, as memcord (following memcached 1.6.18)
//! applies commands: the state is the item or its absence, and [`step`] says whether an
//! operation with a given reply may run next and what state it leaves.
//!
//! # Cas ids
//!
//! memcord stamps every value-changing write with a fresh cas id derived from its hybrid
//! clock, unique across the cluster, which a checker cannot predict. The model therefore
//! keeps the item's cas id as [`Cas::Known`] (a linearized `gets` observed it) or
//! [`Cas::Fresh`] (written and not yet observed). The rules:
//!
//! - a `gets` answering cas `C` is legal on `Known(C)`, or on `Fresh` (binding it to
//!   `Known(C)`) provided no *other* `gets` that answered `C` is already linearized: such a
//!   read observed an earlier version (had it observed this one, the state would be
//!   `Known(C)`), and one id never names two versions;
//! - `cas` with unique `U` stores only on `Known(U)`; on `Fresh` it must answer `EXISTS`,
//!   since the client's `U` came from a `gets` that saw an earlier version.
//!
//! `Fresh` carries no writer: two unobserved versions behave identically from here on (every
//! rule above asks only "observed or not"), so leaving the writer out lets the memo merge
//! more search paths.
//!
//! # What the model assumes
//!
//! Each key starts absent. Values are never too large (no `SERVER_ERROR object too large`).
//! An `incr`/`decr` of a value that is not a decimal number gets a `CLIENT_ERROR` from
//! memcord, which the history cannot express: here it is legal only with an indeterminate
//! reply, and has no effect (recorders avoid it by design).

use super::history::{Input, Operation, Output};
use std::collections::HashMap;

/// An interned value: equal ids mean equal bytes within one [`Values`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ValueId(usize);

/// The interner of every value a search meets, with each value's counter reading cached.
#[derive(Debug, Default, Clone)]
pub struct Values {
    index: HashMap<Box<[u8]>, ValueId>,
    bytes: Vec<Box<[u8]>>,
    counters: Vec<Option<u64>>,
}

impl Values {
    /// An empty interner.
    pub fn new() -> Values {
        Values::default()
    }

    /// The id of `bytes`, interning them on first sight.
    pub fn intern(&mut self, bytes: &[u8]) -> ValueId {
        if let Some(&id) = self.index.get(bytes) {
            return id;
        }
        let id = ValueId(self.bytes.len());
        self.bytes.push(bytes.into());
        self.counters.push(parse_counter(bytes));
        self.index.insert(bytes.into(), id);
        id
    }

    /// The bytes of an interned value.
    pub fn bytes(&self, id: ValueId) -> &[u8] {
        self.bytes.get(id.0).map_or(&[], |b| b)
    }

    /// The value read as an `incr`/`decr` counter, if it is one.
    pub fn counter(&self, id: ValueId) -> Option<u64> {
        self.counters.get(id.0).copied().flatten()
    }

    fn concat(&mut self, first: ValueId, second: ValueId) -> ValueId {
        let mut joined = self.bytes(first).to_vec();
        joined.extend_from_slice(self.bytes(second));
        self.intern(&joined)
    }
}

/// Parses a value as memcached's `incr`/`decr` do: decimal digits, optionally followed by
/// spaces, fitting 64 bits. (Written again here rather than imported from the store, so the
/// checker does not share a bug with what it checks.)
pub fn parse_counter(value: &[u8]) -> Option<u64> {
    let digits = value
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(value.len());
    if digits == 0 || digits > 20 || !value[digits..].iter().all(|&b| b == b' ') {
        return None;
    }
    std::str::from_utf8(&value[..digits]).ok()?.parse().ok()
}

/// An operation's request, with values interned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Call {
    /// `gets`.
    Get,
    /// `set`.
    Set(ValueId),
    /// `add`.
    Add(ValueId),
    /// `replace`.
    Replace(ValueId),
    /// `append`.
    Append(ValueId),
    /// `prepend`.
    Prepend(ValueId),
    /// `cas` with the client's unique.
    Cas(ValueId, u64),
    /// `incr`.
    Incr(u64),
    /// `decr`.
    Decr(u64),
    /// `delete`.
    Delete,
}

/// An operation's reply, with values interned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reply {
    /// `STORED`.
    Stored,
    /// `NOT_STORED`.
    NotStored,
    /// `EXISTS`.
    Exists,
    /// `NOT_FOUND`.
    NotFound,
    /// `DELETED`.
    Deleted,
    /// A `gets` hit: value and cas id.
    Value(ValueId, u64),
    /// A `gets` miss.
    Miss,
    /// The number `incr`/`decr` answered.
    Number(u64),
    /// No definite reply.
    Unknown,
}

/// One operation, compiled for the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Step {
    /// The request.
    pub call: Call,
    /// The reply.
    pub reply: Reply,
}

impl Step {
    /// Compiles a recorded operation, interning its values.
    pub fn compile(op: &Operation, values: &mut Values) -> Step {
        let call = match &op.input {
            Input::Get => Call::Get,
            Input::Set(v) => Call::Set(values.intern(v)),
            Input::Add(v) => Call::Add(values.intern(v)),
            Input::Replace(v) => Call::Replace(values.intern(v)),
            Input::Append(v) => Call::Append(values.intern(v)),
            Input::Prepend(v) => Call::Prepend(values.intern(v)),
            Input::Cas { value, unique } => Call::Cas(values.intern(value), *unique),
            Input::Incr(d) => Call::Incr(*d),
            Input::Decr(d) => Call::Decr(*d),
            Input::Delete => Call::Delete,
        };
        let reply = match &op.output {
            Output::Stored => Reply::Stored,
            Output::NotStored => Reply::NotStored,
            Output::Exists => Reply::Exists,
            Output::NotFound => Reply::NotFound,
            Output::Deleted => Reply::Deleted,
            Output::Value { data, cas } => Reply::Value(values.intern(data), *cas),
            Output::Miss => Reply::Miss,
            Output::Number(n) => Reply::Number(*n),
            Output::Indeterminate(_) => Reply::Unknown,
        };
        Step { call, reply }
    }

    /// Whether this operation can never change the state (a read, or an indeterminate read).
    pub fn is_read(&self) -> bool {
        self.call == Call::Get
    }

    /// The cas id a `gets` hit answered.
    pub fn observed_cas(&self) -> Option<u64> {
        match (self.call, self.reply) {
            (Call::Get, Reply::Value(_, cas)) => Some(cas),
            _ => None,
        }
    }
}

/// What the model knows of the item's cas id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cas {
    /// Observed by a linearized `gets`.
    Known(u64),
    /// Written by a linearized write and not yet observed.
    Fresh,
}

/// A present item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Item {
    /// Its value.
    pub value: ValueId,
    /// Its cas id.
    pub cas: Cas,
}

/// The key's state: its item, or `None` when absent.
pub type State = Option<Item>;

/// What the model would have answered, when the recorded reply differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The model's answer in this state.
    Answer(Answer),
    /// A `gets` answered a cas id that an earlier linearized `gets` saw on another version.
    CasReused(u64),
    /// `incr`/`decr` of a non-number got a definite reply (memcord answers `CLIENT_ERROR`).
    NonNumeric,
}

/// The model's answer to an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// `STORED`.
    Stored,
    /// `NOT_STORED`.
    NotStored,
    /// `EXISTS`.
    Exists,
    /// `NOT_FOUND`.
    NotFound,
    /// `DELETED`.
    Deleted,
    /// A hit on this item.
    Value(Item),
    /// A miss.
    Miss,
    /// A number.
    Number(u64),
}

/// Runs `op` on `state`: the next state if the recorded reply is one the model could give.
///
/// `cas_seen(C)` must say whether another `gets` that answered cas id `C` is already
/// linearized (see the module doc). An indeterminate operation takes effect with whatever
/// reply the model gives.
pub fn step(
    state: State,
    op: &Step,
    values: &mut Values,
    cas_seen: impl Fn(u64) -> bool,
) -> Result<State, Refusal> {
    let fresh = |value| {
        Some(Item {
            value,
            cas: Cas::Fresh,
        })
    };
    let (answer, next) = match (op.call, state) {
        (Call::Get, None) => (Answer::Miss, None),
        (Call::Get, Some(item)) => {
            if let Reply::Value(value, cas) = op.reply {
                if value == item.value {
                    match item.cas {
                        Cas::Known(known) if known == cas => return Ok(state),
                        Cas::Known(_) => {}
                        Cas::Fresh if cas_seen(cas) => return Err(Refusal::CasReused(cas)),
                        Cas::Fresh => {
                            return Ok(Some(Item {
                                value,
                                cas: Cas::Known(cas),
                            }))
                        }
                    }
                }
            }
            (Answer::Value(item), state)
        }
        (Call::Set(v), _) => (Answer::Stored, fresh(v)),
        (Call::Add(v), None) => (Answer::Stored, fresh(v)),
        (Call::Add(_), Some(_)) => (Answer::NotStored, state),
        (Call::Replace(_), None) => (Answer::NotStored, None),
        (Call::Replace(v), Some(_)) => (Answer::Stored, fresh(v)),
        (Call::Append(_) | Call::Prepend(_), None) => (Answer::NotStored, None),
        (Call::Append(v), Some(item)) => (Answer::Stored, fresh(values.concat(item.value, v))),
        (Call::Prepend(v), Some(item)) => (Answer::Stored, fresh(values.concat(v, item.value))),
        (Call::Cas(..), None) => (Answer::NotFound, None),
        (Call::Cas(v, unique), Some(item)) => {
            if item.cas == Cas::Known(unique) {
                (Answer::Stored, fresh(v))
            } else {
                (Answer::Exists, state)
            }
        }
        (Call::Incr(_) | Call::Decr(_), None) => (Answer::NotFound, None),
        (Call::Incr(delta) | Call::Decr(delta), Some(item)) => {
            let Some(current) = values.counter(item.value) else {
                return match op.reply {
                    Reply::Unknown => Ok(state),
                    _ => Err(Refusal::NonNumeric),
                };
            };
            let n = if matches!(op.call, Call::Incr(_)) {
                current.wrapping_add(delta)
            } else {
                current.saturating_sub(delta)
            };
            let value = values.intern(n.to_string().as_bytes());
            (Answer::Number(n), fresh(value))
        }
        (Call::Delete, None) => (Answer::NotFound, None),
        (Call::Delete, Some(_)) => (Answer::Deleted, None),
    };
    let agrees = match (op.reply, answer) {
        (Reply::Unknown, _) => return Ok(if op.is_read() { state } else { next }),
        (Reply::Stored, Answer::Stored)
        | (Reply::NotStored, Answer::NotStored)
        | (Reply::Exists, Answer::Exists)
        | (Reply::NotFound, Answer::NotFound)
        | (Reply::Deleted, Answer::Deleted)
        | (Reply::Miss, Answer::Miss) => true,
        (Reply::Number(got), Answer::Number(want)) => got == want,
        _ => false,
    };
    if agrees {
        Ok(next)
    } else {
        Err(Refusal::Answer(answer))
    }
}

/// A readable form of a state, e.g. `"abc" (cas unobserved)` or `absent`.
pub fn describe_state(state: State, values: &Values) -> String {
    match state {
        None => "absent".to_string(),
        Some(item) => format!(
            "{} ({})",
            super::describe::quote(values.bytes(item.value)),
            match item.cas {
                Cas::Known(c) => format!("cas {c}"),
                Cas::Fresh => "cas not yet observed".to_string(),
            }
        ),
    }
}

/// A readable form of a refusal.
pub fn describe_refusal(refusal: Refusal, values: &Values) -> String {
    use super::describe::quote;
    match refusal {
        Refusal::CasReused(c) => {
            format!("cas {c} was already observed on an earlier version of the key")
        }
        Refusal::NonNumeric => "incr/decr of a non-numeric value cannot answer that".to_string(),
        Refusal::Answer(answer) => {
            let text = match answer {
                Answer::Stored => "STORED".to_string(),
                Answer::NotStored => "NOT_STORED".to_string(),
                Answer::Exists => "EXISTS".to_string(),
                Answer::NotFound => "NOT_FOUND".to_string(),
                Answer::Deleted => "DELETED".to_string(),
                Answer::Miss => "a miss".to_string(),
                Answer::Number(n) => n.to_string(),
                Answer::Value(item) => match item.cas {
                    Cas::Known(c) => format!("{} cas {c}", quote(values.bytes(item.value))),
                    Cas::Fresh => format!(
                        "{} with a cas id not seen before",
                        quote(values.bytes(item.value))
                    ),
                },
            };
            format!("the key would answer {text}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(values: &mut Values, state: State, call: Call, reply: Reply) -> Result<State, Refusal> {
        step(state, &Step { call, reply }, values, |_| false)
    }

    #[test]
    fn counters_parse_like_memcached() {
        assert_eq!(parse_counter(b"42"), Some(42));
        assert_eq!(parse_counter(b"9 "), Some(9));
        assert_eq!(parse_counter(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_counter(b"18446744073709551616"), None);
        assert_eq!(parse_counter(b""), None);
        assert_eq!(parse_counter(b"1x"), None);
    }

    #[test]
    fn storage_commands_follow_memcached() {
        let mut v = Values::new();
        let a = v.intern(b"a");
        let b = v.intern(b"b");
        let s = run(&mut v, None, Call::Add(a), Reply::Stored).unwrap();
        assert_eq!(
            s,
            Some(Item {
                value: a,
                cas: Cas::Fresh
            })
        );
        assert!(run(&mut v, s, Call::Add(b), Reply::Stored).is_err());
        assert_eq!(run(&mut v, s, Call::Add(b), Reply::NotStored), Ok(s));
        assert_eq!(
            run(&mut v, None, Call::Replace(b), Reply::NotStored),
            Ok(None)
        );
        let s = run(&mut v, s, Call::Append(b), Reply::Stored).unwrap();
        assert_eq!(v.bytes(s.unwrap().value), b"ab");
        let s = run(&mut v, s, Call::Prepend(b), Reply::Stored).unwrap();
        assert_eq!(v.bytes(s.unwrap().value), b"bab");
        assert_eq!(
            run(&mut v, None, Call::Append(a), Reply::NotStored),
            Ok(None)
        );
        assert_eq!(run(&mut v, s, Call::Delete, Reply::Deleted), Ok(None));
        assert_eq!(run(&mut v, None, Call::Delete, Reply::NotFound), Ok(None));
    }

    #[test]
    fn cas_ids_bind_on_first_observation() {
        let mut v = Values::new();
        let a = v.intern(b"a");
        let b = v.intern(b"b");
        let s = run(&mut v, None, Call::Set(a), Reply::Stored).unwrap();
        // A cas before anyone observed the version must fail.
        assert_eq!(run(&mut v, s, Call::Cas(b, 7), Reply::Exists), Ok(s));
        assert!(run(&mut v, s, Call::Cas(b, 7), Reply::Stored).is_err());
        let s = run(&mut v, s, Call::Get, Reply::Value(a, 7)).unwrap();
        assert_eq!(run(&mut v, s, Call::Get, Reply::Value(a, 7)), Ok(s));
        assert!(run(&mut v, s, Call::Get, Reply::Value(a, 8)).is_err());
        assert_eq!(run(&mut v, s, Call::Cas(b, 8), Reply::Exists), Ok(s));
        let t = run(&mut v, s, Call::Cas(b, 7), Reply::Stored).unwrap();
        assert_eq!(
            t,
            Some(Item {
                value: b,
                cas: Cas::Fresh
            })
        );
        // Re-reading an id seen on another version is refused.
        let refused = step(
            t,
            &Step {
                call: Call::Get,
                reply: Reply::Value(b, 7),
            },
            &mut v,
            |c| c == 7,
        );
        assert_eq!(refused, Err(Refusal::CasReused(7)));
    }

    #[test]
    fn arithmetic_wraps_floors_and_needs_numbers() {
        let mut v = Values::new();
        let max = v.intern(u64::MAX.to_string().as_bytes());
        let five = v.intern(b"5");
        let word = v.intern(b"x");
        let s = Some(Item {
            value: max,
            cas: Cas::Fresh,
        });
        let s = run(&mut v, s, Call::Incr(2), Reply::Number(1)).unwrap();
        assert_eq!(v.bytes(s.unwrap().value), b"1");
        let s = Some(Item {
            value: five,
            cas: Cas::Known(3),
        });
        let t = run(&mut v, s, Call::Decr(9), Reply::Number(0)).unwrap();
        assert_eq!(t.unwrap().cas, Cas::Fresh);
        assert!(run(&mut v, s, Call::Decr(1), Reply::Number(5)).is_err());
        assert_eq!(run(&mut v, None, Call::Incr(1), Reply::NotFound), Ok(None));
        let w = Some(Item {
            value: word,
            cas: Cas::Fresh,
        });
        assert_eq!(run(&mut v, w, Call::Incr(1), Reply::Unknown), Ok(w));
        assert_eq!(
            run(&mut v, w, Call::Incr(1), Reply::NotFound),
            Err(Refusal::NonNumeric)
        );
    }

    #[test]
    fn indeterminate_operations_take_effect() {
        let mut v = Values::new();
        let a = v.intern(b"a");
        let s = run(&mut v, None, Call::Set(a), Reply::Unknown).unwrap();
        assert!(s.is_some());
        assert_eq!(run(&mut v, s, Call::Get, Reply::Unknown), Ok(s));
        assert_eq!(run(&mut v, s, Call::Delete, Reply::Unknown), Ok(None));
    }
}
