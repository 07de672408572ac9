//! The recorded history of a `memcord check` run: every operation a client invoked, with
//! its invocation and completion times on one monotonic clock, its input and its output.
//!
//! An operation whose reply was an error or never came is **indeterminate**: it may or may
//! not have taken effect. It is recorded with [`Output::Indeterminate`] and `returned_ns`
//! = [`u64::MAX`] (it may take effect at any time after its invocation), never dropped.

use serde::{Deserialize, Serialize};

/// What a client asked for (the key is in [`Operation::key`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Input {
    /// `gets key`: reads value and cas id.
    Get,
    /// `set key 0 0 n` + value.
    Set(Vec<u8>),
    /// `add key 0 0 n` + value.
    Add(Vec<u8>),
    /// `replace key 0 0 n` + value.
    Replace(Vec<u8>),
    /// `append key 0 0 n` + value.
    Append(Vec<u8>),
    /// `prepend key 0 0 n` + value.
    Prepend(Vec<u8>),
    /// `cas key 0 0 n unique` + value.
    Cas {
        /// The new value.
        value: Vec<u8>,
        /// The cas id the client read before (from a `gets`).
        unique: u64,
    },
    /// `incr key delta`.
    Incr(u64),
    /// `decr key delta`.
    Decr(u64),
    /// `delete key`.
    Delete,
}

/// What the server answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Output {
    /// `STORED`.
    Stored,
    /// `NOT_STORED`.
    NotStored,
    /// `EXISTS` (cas id mismatch).
    Exists,
    /// `NOT_FOUND` (cas, incr, decr, delete of a missing key).
    NotFound,
    /// `DELETED`.
    Deleted,
    /// A get hit: value and cas id.
    Value {
        /// The value's bytes.
        data: Vec<u8>,
        /// The item's cas id.
        cas: u64,
    },
    /// A get miss (`END` alone).
    Miss,
    /// The number after `incr`/`decr`.
    Number(u64),
    /// No definite answer (error reply, timeout, broken connection): the operation may or
    /// may not have taken effect. The text says what happened.
    Indeterminate(String),
}

impl Output {
    /// Whether the operation's effect is unknown.
    pub fn is_indeterminate(&self) -> bool {
        matches!(self, Output::Indeterminate(_))
    }
}

/// One operation of the history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    /// Position in the history (unique).
    pub id: usize,
    /// Which client (one connection, one operation at a time) issued it.
    pub client: usize,
    /// Which peer the client's connection went to.
    pub peer: usize,
    /// The key.
    pub key: String,
    /// What was asked.
    pub input: Input,
    /// What was answered.
    pub output: Output,
    /// Nanoseconds since the run's start when the request was sent.
    pub invoked_ns: u64,
    /// Nanoseconds since the run's start when the reply arrived; [`u64::MAX`] when
    /// indeterminate.
    pub returned_ns: u64,
}

/// A whole run's history, in invocation order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    /// The operations.
    pub operations: Vec<Operation>,
}
