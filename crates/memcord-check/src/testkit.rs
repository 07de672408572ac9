//! Builders for hand-written histories in the checkers' tests.

use super::history::{History, Input, Operation, Output};

/// Collects operations; times are in milliseconds, `None` for an indeterminate return.
#[derive(Default)]
pub(crate) struct Builder {
    ops: Vec<Operation>,
}

impl Builder {
    pub(crate) fn new() -> Builder {
        Builder::default()
    }

    /// An operation on key `k`.
    pub(crate) fn op(
        self,
        client: usize,
        input: Input,
        output: Output,
        inv: u64,
        ret: u64,
    ) -> Self {
        self.on("k", client, input, output, inv, ret)
    }

    /// An operation on `key`; an indeterminate output returns at `u64::MAX`.
    pub(crate) fn on(
        mut self,
        key: &str,
        client: usize,
        input: Input,
        output: Output,
        inv: u64,
        ret: u64,
    ) -> Self {
        let returned_ns = if output.is_indeterminate() {
            u64::MAX
        } else {
            ret * 1_000_000
        };
        self.ops.push(Operation {
            id: self.ops.len(),
            client,
            peer: client % 3,
            key: key.to_string(),
            input,
            output,
            invoked_ns: inv * 1_000_000,
            returned_ns,
        });
        self
    }

    pub(crate) fn history(self) -> History {
        History {
            operations: self.ops,
        }
    }
}

pub(crate) fn set(v: &str) -> Input {
    Input::Set(v.as_bytes().to_vec())
}

pub(crate) fn add(v: &str) -> Input {
    Input::Add(v.as_bytes().to_vec())
}

pub(crate) fn append(v: &str) -> Input {
    Input::Append(v.as_bytes().to_vec())
}

pub(crate) fn cas(v: &str, unique: u64) -> Input {
    Input::Cas {
        value: v.as_bytes().to_vec(),
        unique,
    }
}

pub(crate) fn val(v: &str, cas: u64) -> Output {
    Output::Value {
        data: v.as_bytes().to_vec(),
        cas,
    }
}

pub(crate) fn ind() -> Output {
    Output::Indeterminate("timeout".to_string())
}

/// One planned operation of a simulated run: what to do and how its interval sits around
/// the instant it takes effect.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    /// Which command (see [`simulate`]).
    pub(crate) kind: u8,
    /// Its argument (value choice, delta, unique choice).
    pub(crate) arg: u8,
    /// How long before its effect it was invoked, in `spacing` units / 4.
    pub(crate) before: u8,
    /// How long after its effect it returned, in `spacing` units / 4.
    pub(crate) after: u8,
    /// 0: indeterminate and applied; 1: indeterminate and not applied; else definite.
    pub(crate) fate: u8,
}

/// A real memcache item with real cas ids, to produce histories that are linearizable by
/// construction.
#[derive(Default)]
struct Concrete {
    item: Option<(Vec<u8>, u64)>,
    next_cas: u64,
}

impl Concrete {
    fn write(&mut self, value: Vec<u8>) -> Output {
        self.next_cas += 1;
        self.item = Some((value, 1000 + self.next_cas));
        Output::Stored
    }

    fn apply(&mut self, input: &Input) -> Output {
        match (input, self.item.clone()) {
            (Input::Get, None) => Output::Miss,
            (Input::Get, Some((data, cas))) => Output::Value { data, cas },
            (Input::Set(v), _) => self.write(v.clone()),
            (Input::Add(v), None) | (Input::Replace(v), Some(_)) => self.write(v.clone()),
            (Input::Add(_), Some(_)) => Output::NotStored,
            (Input::Replace(_) | Input::Append(_) | Input::Prepend(_), None) => Output::NotStored,
            (Input::Append(v), Some((mut data, _))) => {
                data.extend_from_slice(v);
                self.write(data)
            }
            (Input::Prepend(v), Some((data, _))) => {
                let mut joined = v.clone();
                joined.extend_from_slice(&data);
                self.write(joined)
            }
            (Input::Cas { .. }, None) => Output::NotFound,
            (Input::Cas { value, unique }, Some((_, cas))) => {
                if *unique == cas {
                    self.write(value.clone())
                } else {
                    Output::Exists
                }
            }
            (Input::Incr(_) | Input::Decr(_), None) => Output::NotFound,
            (Input::Incr(d) | Input::Decr(d), Some((data, _))) => {
                let n: u64 = std::str::from_utf8(&data)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                let n = if matches!(input, Input::Incr(_)) {
                    n.wrapping_add(*d)
                } else {
                    n.saturating_sub(*d)
                };
                self.write(n.to_string().into_bytes());
                Output::Number(n)
            }
            (Input::Delete, None) => Output::NotFound,
            (Input::Delete, Some(_)) => {
                self.item = None;
                Output::Deleted
            }
        }
    }

    fn numeric(&self) -> bool {
        self.item
            .as_ref()
            .is_some_and(|(d, _)| !d.is_empty() && d.len() < 19 && d.iter().all(u8::is_ascii_digit))
    }
}

/// Runs `plan` against one real item on `key`, taking effect at `spacing`-ns steps, and
/// records it with intervals around those instants: linearizable by construction, and
/// sequentially consistent since each client's operations never overlap.
pub(crate) fn simulate(key: &str, plan: &[Plan], spacing: u64) -> History {
    const VALUES: [&str; 5] = ["a", "b", "1", "2", "10"];
    let mut store = Concrete::default();
    let mut observed: Vec<u64> = Vec::new();
    let mut busy: Vec<u64> = Vec::new();
    let mut ops = Vec::new();
    for (i, p) in plan.iter().enumerate() {
        let value = || VALUES[p.arg as usize % VALUES.len()].as_bytes().to_vec();
        let mut input = match p.kind % 11 {
            0 | 1 => Input::Get,
            2 => Input::Set(value()),
            3 => Input::Add(value()),
            4 => Input::Replace(value()),
            5 => Input::Append(if p.arg % 2 == 0 {
                b"x".to_vec()
            } else {
                b"7".to_vec()
            }),
            6 => Input::Prepend(b"y".to_vec()),
            7 => Input::Cas {
                value: value(),
                unique: observed
                    .len()
                    .checked_sub(1 + p.arg as usize % 3)
                    .map_or(99, |at| observed[at]),
            },
            8 => Input::Incr(p.arg as u64 % 4),
            9 => Input::Decr(p.arg as u64 % 4),
            _ => Input::Delete,
        };
        if matches!(input, Input::Incr(_) | Input::Decr(_))
            && store.item.is_some()
            && !store.numeric()
        {
            input = Input::Get;
        }
        let indeterminate = p.fate <= 1 && input != Input::Get;
        let output = if indeterminate && p.fate == 1 {
            Output::Indeterminate("not applied".into())
        } else {
            store.apply(&input)
        };
        if let Output::Value { cas, .. } = output {
            observed.push(cas);
        }
        let at = (i as u64 + 4) * spacing * 100;
        let invoked_ns = at.saturating_sub(p.before as u64 * spacing * 100 / 4);
        let (output, returned_ns) = if indeterminate {
            (Output::Indeterminate("timeout".into()), u64::MAX)
        } else {
            (output, at + p.after as u64 * spacing * 100 / 4)
        };
        let client = match busy.iter().position(|&b| b < invoked_ns) {
            Some(c) => c,
            None => {
                busy.push(0);
                busy.len() - 1
            }
        };
        busy[client] = returned_ns;
        ops.push(Operation {
            id: i,
            client,
            peer: client % 3,
            key: key.to_string(),
            input,
            output,
            invoked_ns,
            returned_ns,
        });
    }
    ops.sort_by_key(|op| (op.invoked_ns, op.id));
    History { operations: ops }
}

/// A read that nothing can produce, after 39 indeterminate appends: proving it is impossible
/// means trying every order of the appends, so a checker must give up within its budget.
pub(crate) fn unprovable_read_history() -> History {
    let mut b = Builder::new().op(0, set("x"), Output::Stored, 0, 1);
    for c in 1..40 {
        b = b.op(c, append(&format!("<{c}>")), ind(), 2, 0);
    }
    b.op(50, Input::Get, val("x!", 9), 3, 4).history()
}
