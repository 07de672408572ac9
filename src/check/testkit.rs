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
