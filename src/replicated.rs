//! The replicated command: what a mutation (or an ordered read) means, independent of the wire.
//!
//! A coordinator turns a client request into a [`Command`] once: it picks the hybrid-clock
//! version and turns relative expiry times into absolute ones, so every replica that applies the
//! command reaches the same item, cas id included. [`apply`] is the one function every mode and
//! the ordered queue use to run a command against a store.

use crate::clock::Timestamp;
use crate::store::{ArithOutcome, ExpiresAt, Item, Store, StoreOutcome, StoreResult};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// Which storage rule a write follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WriteRule {
    /// Unconditional.
    Set,
    /// Only if absent.
    Add,
    /// Only if present.
    Replace,
    /// Append to a present value.
    Append,
    /// Prepend to a present value.
    Prepend,
    /// Only if the present item's cas id matches.
    Cas(u64),
}

/// One operation as replicas apply it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// A storage command.
    Write {
        /// Which rule.
        rule: WriteRule,
        /// The key.
        key: Bytes,
        /// The data (the whole value, or the part to append/prepend).
        value: Bytes,
        /// Client flags (ignored by append/prepend).
        flags: u32,
        /// Absolute expiry (ignored by append/prepend).
        expires_at: ExpiresAt,
        /// The write's version.
        version: Timestamp,
    },
    /// `delete`.
    Delete {
        /// The key.
        key: Bytes,
        /// The delete's version.
        version: Timestamp,
    },
    /// `incr` (`incr = true`) or `decr`.
    Arith {
        /// The key.
        key: Bytes,
        /// Amount.
        delta: u64,
        /// `incr` or `decr`.
        incr: bool,
        /// The write's version.
        version: Timestamp,
    },
    /// `touch`.
    Touch {
        /// The key.
        key: Bytes,
        /// New absolute expiry.
        expires_at: ExpiresAt,
        /// The touch's version.
        version: Timestamp,
    },
    /// `gat`/`gats`: read and touch.
    Gat {
        /// Keys in request order.
        keys: Vec<Bytes>,
        /// New absolute expiry.
        expires_at: ExpiresAt,
        /// The touch's version.
        version: Timestamp,
    },
    /// `get`/`gets` when a mode orders reads (linearizable).
    Get {
        /// Keys in request order.
        keys: Vec<Bytes>,
    },
    /// `flush_all`.
    FlushAll {
        /// Items with versions at or before this are invalid once wall time reaches it.
        cutoff: Timestamp,
        /// The flush's version.
        version: Timestamp,
    },
}

impl Command {
    /// Whether applying this command can change the store.
    pub fn is_mutation(&self) -> bool {
        !matches!(self, Command::Get { .. })
    }

    /// The command's version, if it is a mutation.
    pub fn version(&self) -> Option<Timestamp> {
        match self {
            Command::Write { version, .. }
            | Command::Delete { version, .. }
            | Command::Arith { version, .. }
            | Command::Touch { version, .. }
            | Command::Gat { version, .. }
            | Command::FlushAll { version, .. } => Some(*version),
            Command::Get { .. } => None,
        }
    }
}

impl Command {
    /// The same command at another version (a forwarded write re-stamped by the replica that
    /// coordinates it, so the versions of one key follow that replica's clock).
    pub fn with_version(mut self, new: Timestamp) -> Command {
        match &mut self {
            Command::Write { version, .. }
            | Command::Delete { version, .. }
            | Command::Arith { version, .. }
            | Command::Touch { version, .. }
            | Command::Gat { version, .. }
            | Command::FlushAll { version, .. } => *version = new,
            Command::Get { .. } => {}
        }
        self
    }

    /// The one key a single-key command names (`None` for multi-key and keyless ones).
    pub fn key(&self) -> Option<&Bytes> {
        match self {
            Command::Write { key, .. }
            | Command::Delete { key, .. }
            | Command::Arith { key, .. }
            | Command::Touch { key, .. } => Some(key),
            Command::Gat { keys, .. } | Command::Get { keys } if keys.len() == 1 => keys.first(),
            _ => None,
        }
    }
}

/// What applying a command produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Result of a storage command.
    Write(StoreOutcome),
    /// `delete`: whether the item was present.
    Delete(bool),
    /// `incr`/`decr`.
    Arith(ArithOutcome),
    /// `touch`: whether the item was present.
    Touch(bool),
    /// `get`/`gat`: the items in key order.
    Items(Vec<Option<Item>>),
    /// `flush_all` done.
    Flushed,
}

/// Applies one command to a store.
pub async fn apply<S: Store>(store: &S, command: Command) -> StoreResult<Outcome> {
    Ok(match command {
        Command::Write {
            rule,
            key,
            value,
            flags,
            expires_at,
            version,
        } => {
            let item = || Item::new(value.clone(), flags, expires_at, version);
            Outcome::Write(match rule {
                WriteRule::Set => store.set(key, item()).await?,
                WriteRule::Add => store.add(key, item()).await?,
                WriteRule::Replace => store.replace(key, item()).await?,
                WriteRule::Append => store.append(key, value, version).await?,
                WriteRule::Prepend => store.prepend(key, value, version).await?,
                WriteRule::Cas(expected) => store.cas(key, item(), expected).await?,
            })
        }
        Command::Delete { key, version } => Outcome::Delete(store.delete(key, version).await?),
        Command::Arith {
            key,
            delta,
            incr,
            version,
        } => Outcome::Arith(if incr {
            store.incr(key, delta, version).await?
        } else {
            store.decr(key, delta, version).await?
        }),
        Command::Touch {
            key,
            expires_at,
            version,
        } => Outcome::Touch(store.touch(key, expires_at, version).await?),
        Command::Gat {
            keys,
            expires_at,
            version,
        } => Outcome::Items(store.gat(&keys, expires_at, version).await?),
        Command::Get { keys } => Outcome::Items(store.get(&keys).await?),
        Command::FlushAll { cutoff, .. } => {
            store.flush_all(cutoff).await?;
            Outcome::Flushed
        }
    })
}
