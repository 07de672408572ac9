//! The replicated command: what a mutation (or an ordered read) means, independent of the wire.
//!
//! A coordinator turns a client request into a [`Command`] once: it picks the hybrid-clock
//! version and turns relative expiry times into absolute ones, so every replica that applies the
//! command reaches the same item, cas id included. [`apply`] is the one function every mode and
//! the ordered queue use to run a command against a store.

pub mod meta;

pub use meta::{ArithSpec, MetaHit, MetaOutcome};

use crate::clock::Timestamp;
use crate::store::{ArithOutcome, ExpiresAt, Item, Store, StoreOutcome, StoreResult};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// `Some(expr)` over the `version` field of every mutation, `None` for reads: one list of the
/// variants for [`Command::version`] and [`Command::version_mut`].
macro_rules! each_version {
    ($command:expr, $version:ident => $value:expr) => {
        match $command {
            Command::Write { $version, .. }
            | Command::Delete { $version, .. }
            | Command::Arith { $version, .. }
            | Command::Touch { $version, .. }
            | Command::Gat { $version, .. }
            | Command::FlushAll { $version, .. }
            | Command::MetaGet { $version, .. }
            | Command::MetaSet { $version, .. }
            | Command::MetaDelete { $version, .. }
            | Command::MetaArith { $version, .. } => Some($value),
            Command::Get { .. } => None,
        }
    };
}

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
    /// A meta get that may change the item: see [`meta::get`].
    MetaGet {
        /// The key.
        key: Bytes,
        /// `T`: the new expiry.
        touch: Option<ExpiresAt>,
        /// `N`: the expiry of an item created on a miss.
        vivify: Option<ExpiresAt>,
        /// `R`: win the token when the item expires before this.
        recache_before: Option<ExpiresAt>,
        /// Count the read in the item's access record (not `u`).
        bump: bool,
        /// The command's version.
        version: Timestamp,
    },
    /// A meta set: see [`meta::set`].
    MetaSet {
        /// The mode; `C` makes set and replace a [`WriteRule::Cas`].
        rule: WriteRule,
        /// The key.
        key: Bytes,
        /// The data.
        value: Bytes,
        /// Client flags.
        flags: u32,
        /// Absolute expiry.
        expires_at: ExpiresAt,
        /// `C` for append and prepend.
        compare_cas: Option<u64>,
        /// `I`: an older cas stores the value marked stale.
        invalidate: bool,
        /// The write's version.
        version: Timestamp,
    },
    /// A meta delete: see [`meta::delete`].
    MetaDelete {
        /// The key.
        key: Bytes,
        /// `C`.
        compare_cas: Option<u64>,
        /// `I`: mark stale instead of removing.
        invalidate: bool,
        /// `T` (with `I`): the stale item's new expiry.
        touch: Option<ExpiresAt>,
        /// The delete's version.
        version: Timestamp,
    },
    /// A meta arithmetic command: see [`meta::arith`].
    MetaArith {
        /// The key.
        key: Bytes,
        /// What to do.
        spec: ArithSpec,
        /// The write's version.
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
        each_version!(self, version => *version)
    }

    /// The command's version, to re-stamp it (`None` for reads).
    pub fn version_mut(&mut self) -> Option<&mut Timestamp> {
        each_version!(self, version => version)
    }
}

impl Command {
    /// The same command at another version (a forwarded write re-stamped by the replica that
    /// coordinates it, so the versions of one key follow that replica's clock).
    pub fn with_version(mut self, new: Timestamp) -> Command {
        if let Some(version) = self.version_mut() {
            *version = new;
        }
        self
    }

    /// The one key a single-key command names (`None` for multi-key and keyless ones).
    pub fn key(&self) -> Option<&Bytes> {
        match self {
            Command::Write { key, .. }
            | Command::Delete { key, .. }
            | Command::Arith { key, .. }
            | Command::Touch { key, .. }
            | Command::MetaGet { key, .. }
            | Command::MetaSet { key, .. }
            | Command::MetaDelete { key, .. }
            | Command::MetaArith { key, .. } => Some(key),
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
    /// A meta command's result.
    Meta(MetaOutcome),
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
        meta @ (Command::MetaGet { .. }
        | Command::MetaSet { .. }
        | Command::MetaDelete { .. }
        | Command::MetaArith { .. }) => apply_meta(store, meta).await?,
    })
}

/// Applies one meta command through the store's read-modify-write (see [`meta`]).
async fn apply_meta<S: Store>(store: &S, command: Command) -> StoreResult<Outcome> {
    Ok(match command {
        Command::MetaGet {
            key,
            touch,
            vivify,
            recache_before,
            bump,
            version,
        } => meta_outcome(
            store
                .update(&key, bump, |current| {
                    meta::get(current, touch, vivify, recache_before, version)
                })
                .await?,
        ),
        Command::MetaSet {
            rule,
            key,
            value,
            flags,
            expires_at,
            compare_cas,
            invalidate,
            version,
        } => {
            let fresh = Item::new(value, flags, expires_at, version);
            meta_outcome(
                store
                    .update(&key, false, |current| {
                        meta::set(current, rule, fresh.clone(), compare_cas, invalidate)
                    })
                    .await?,
            )
        }
        Command::MetaDelete {
            key,
            compare_cas,
            invalidate,
            touch,
            version,
        } => meta_outcome(
            store
                .update(&key, false, |current| {
                    meta::delete(current, compare_cas, invalidate, touch, version)
                })
                .await?,
        ),
        Command::MetaArith { key, spec, version } => meta_outcome(
            store
                .update(&key, false, |current| meta::arith(current, spec, version))
                .await?,
        ),
        // `apply` hands this function the meta commands only.
        other => {
            return Err(crate::store::StoreError::Unsupported(format!(
                "{other:?} is not a meta command"
            )))
        }
    })
}

/// A meta command's outcome; `None` from the store means the new item was too large.
fn meta_outcome(outcome: Option<MetaOutcome>) -> Outcome {
    Outcome::Meta(outcome.unwrap_or(MetaOutcome::TooLarge))
}

/// Whether `command` already took effect in `store`, and what it answered then: after an
/// attempt failed with a transient error (a backend timeout), its write may have landed with
/// only the answer lost, and applying `append`, `prepend` or `incr` again would apply it
/// twice. Every mutation stamps the item with its own version, which no other command shares,
/// so the key's item carrying `command`'s version means it was applied. `None`: apply it
/// (again). Commands whose repetition changes nothing (`set`, `touch`, `delete`, …) are not
/// looked up.
pub async fn already_applied<S: Store>(
    store: &S,
    command: &Command,
) -> StoreResult<Option<Outcome>> {
    let (key, version, arith) = match command {
        Command::Write {
            rule: WriteRule::Add | WriteRule::Append | WriteRule::Prepend | WriteRule::Cas(_),
            key,
            version,
            ..
        } => (key, *version, false),
        Command::Arith { key, version, .. } => (key, *version, true),
        Command::MetaSet {
            rule: WriteRule::Add | WriteRule::Append | WriteRule::Prepend | WriteRule::Cas(_),
            key,
            version,
            ..
        } => return already_applied_meta(store, key, *version, false).await,
        Command::MetaArith { key, version, .. } => {
            return already_applied_meta(store, key, *version, true).await;
        }
        _ => return Ok(None),
    };
    let found = store.peek_items(std::slice::from_ref(key)).await?;
    let Some(Some(item)) = found.into_iter().next() else {
        return Ok(None);
    };
    if item.version != version {
        return Ok(None);
    }
    if !arith {
        return Ok(Some(Outcome::Write(StoreOutcome::Stored)));
    }
    Ok(crate::store::parse_counter(&item.value).map(|n| Outcome::Arith(ArithOutcome::Value(n))))
}

/// [`already_applied`] for the meta commands whose repetition would change the item again.
async fn already_applied_meta<S: Store>(
    store: &S,
    key: &Bytes,
    version: Timestamp,
    arith: bool,
) -> StoreResult<Option<Outcome>> {
    let found = store.peek(key, false).await?;
    Ok(found
        .filter(|(item, _)| item.version == version)
        .map(|(item, access)| {
            Outcome::Meta(if arith {
                MetaOutcome::Hit(MetaHit::unchanged(&item, access))
            } else {
                MetaOutcome::Stored { cas: item.cas }
            })
        }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::{MemoryConfig, MemoryStore};

    fn ts(ms: u64) -> Timestamp {
        Timestamp::new(ms, 0, 1)
    }

    fn write(rule: WriteRule, value: &'static [u8], version: Timestamp) -> Command {
        Command::Write {
            rule,
            key: Bytes::from_static(b"k"),
            value: Bytes::from_static(value),
            flags: 0,
            expires_at: ExpiresAt::NEVER,
            version,
        }
    }

    #[tokio::test]
    async fn a_landed_append_or_incr_is_recognized_and_not_repeated() {
        let store = MemoryStore::new(MemoryConfig::default());
        apply(&store, write(WriteRule::Set, b"10", ts(1)))
            .await
            .unwrap();
        let append = write(WriteRule::Append, b"0", ts(2));
        assert_eq!(already_applied(&store, &append).await.unwrap(), None);
        apply(&store, append.clone()).await.unwrap();
        assert_eq!(
            already_applied(&store, &append).await.unwrap(),
            Some(Outcome::Write(StoreOutcome::Stored))
        );
        let incr = Command::Arith {
            key: Bytes::from_static(b"k"),
            delta: 5,
            incr: true,
            version: ts(3),
        };
        assert_eq!(already_applied(&store, &incr).await.unwrap(), None);
        assert_eq!(
            apply(&store, incr.clone()).await.unwrap(),
            Outcome::Arith(ArithOutcome::Value(105))
        );
        // The retry's check answers what the landed attempt answered, and writes nothing.
        assert_eq!(
            already_applied(&store, &incr).await.unwrap(),
            Some(Outcome::Arith(ArithOutcome::Value(105)))
        );
        let items = store.get(&[Bytes::from_static(b"k")]).await.unwrap();
        assert_eq!(items[0].as_ref().unwrap().value, Bytes::from_static(b"105"));
        // A command that did not land (another version on the item) is applied again.
        let lost = write(WriteRule::Append, b"1", ts(4));
        assert_eq!(already_applied(&store, &lost).await.unwrap(), None);
        // Idempotent commands are never looked up.
        let set = write(WriteRule::Set, b"x", ts(3));
        assert_eq!(already_applied(&store, &set).await.unwrap(), None);
    }
}
