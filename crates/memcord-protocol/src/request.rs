//! Requests: one variant per memcache command word.
//!
//! The enum is shaped after the wire words; the meta commands (`mg`, `ms`, `md`, `ma`, `mn`,
//! `me`) carry their parsed flags in the structs of [`super::meta`].

use super::admin::Admin;
use super::meta::{MetaArith, MetaDelete, MetaGet, MetaSet};
use bytes::Bytes;

/// The storage command words that carry a data block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoreOp {
    /// `set`: store unconditionally.
    Set,
    /// `add`: store only if the key is absent.
    Add,
    /// `replace`: store only if the key is present.
    Replace,
    /// `append`: add data after the existing value.
    Append,
    /// `prepend`: add data before the existing value.
    Prepend,
    /// `cas`: store only if the item's cas id still matches.
    Cas,
}

impl StoreOp {
    /// The command word on the wire.
    pub fn word(self) -> &'static str {
        match self {
            StoreOp::Set => "set",
            StoreOp::Add => "add",
            StoreOp::Replace => "replace",
            StoreOp::Append => "append",
            StoreOp::Prepend => "prepend",
            StoreOp::Cas => "cas",
        }
    }
}

/// `incr` or `decr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArithOp {
    /// `incr`: add, wrapping at 2^64.
    Incr,
    /// `decr`: subtract, stopping at 0.
    Decr,
}

impl ArithOp {
    /// The command word on the wire.
    pub fn word(self) -> &'static str {
        match self {
            ArithOp::Incr => "incr",
            ArithOp::Decr => "decr",
        }
    }
}

/// A consistency level of the eventual (Dynamo) mode: how many of a key's replicas must
/// answer before the coordinator does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Level {
    /// One replica.
    #[default]
    One,
    /// A majority of the key's replicas (`R / 2 + 1`).
    Quorum,
    /// Every replica of the key.
    All,
}

impl Level {
    /// The level's word (`one`, `quorum`, `all`).
    pub fn name(self) -> &'static str {
        match self {
            Level::One => "one",
            Level::Quorum => "quorum",
            Level::All => "all",
        }
    }

    /// Parses a level's word, ignoring ASCII case.
    pub fn parse(word: &[u8]) -> Option<Level> {
        [Level::One, Level::Quorum, Level::All]
            .into_iter()
            .find(|l| word.eq_ignore_ascii_case(l.name().as_bytes()))
    }

    /// How many of `replicas` replicas satisfy this level (at least one).
    pub fn required(self, replicas: usize) -> usize {
        match self {
            Level::One => 1,
            Level::Quorum => replicas / 2 + 1,
            Level::All => replicas.max(1),
        }
    }
}

/// One parsed client request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// ```text
    /// get <key>*\r\n            gets <key>*\r\n
    /// ```
    Get {
        /// Keys in request order (at least one).
        keys: Vec<Bytes>,
        /// `gets`: include cas ids in the reply.
        with_cas: bool,
    },
    /// ```text
    /// gat <exptime> <key>*\r\n  gats <exptime> <key>*\r\n
    /// ```
    Gat {
        /// New expiration time, as the client sent it.
        exptime: i64,
        /// Keys in request order; may be empty (memcached answers `gat 10` with a bare `END`).
        keys: Vec<Bytes>,
        /// `gats`: include cas ids in the reply.
        with_cas: bool,
    },
    /// ```text
    /// <set|add|replace|append|prepend> <key> <flags> <exptime> <bytes> [noreply]\r\n<data>\r\n
    /// cas <key> <flags> <exptime> <bytes> <cas unique> [noreply]\r\n<data>\r\n
    /// ```
    Store {
        /// Which storage command.
        op: StoreOp,
        /// The key.
        key: Bytes,
        /// Opaque client flags.
        flags: u32,
        /// Expiration time, as the client sent it.
        exptime: i64,
        /// The data block.
        value: Bytes,
        /// The cas id to compare against (`cas` only; 0 otherwise).
        cas_unique: u64,
        /// Suppress the reply.
        noreply: bool,
    },
    /// ```text
    /// delete <key> [0] [noreply]\r\n
    /// ```
    Delete {
        /// The key.
        key: Bytes,
        /// Suppress the reply.
        noreply: bool,
    },
    /// ```text
    /// incr <key> <delta> [noreply]\r\n  decr <key> <delta> [noreply]\r\n
    /// ```
    Arith {
        /// `incr` or `decr`.
        op: ArithOp,
        /// The key.
        key: Bytes,
        /// Amount to add or subtract.
        delta: u64,
        /// Suppress the reply.
        noreply: bool,
    },
    /// ```text
    /// touch <key> <exptime> [noreply]\r\n
    /// ```
    Touch {
        /// The key.
        key: Bytes,
        /// New expiration time, as the client sent it.
        exptime: i64,
        /// Suppress the reply.
        noreply: bool,
    },
    /// ```text
    /// flush_all [delay] [noreply]\r\n
    /// ```
    FlushAll {
        /// Seconds until the flush takes effect (0 or absent: now).
        delay: i64,
        /// Suppress the reply.
        noreply: bool,
    },
    /// ```text
    /// version\r\n
    /// ```
    Version,
    /// ```text
    /// verbosity <level> [noreply]\r\n
    /// ```
    Verbosity {
        /// Requested log level.
        level: u32,
        /// Suppress the reply.
        noreply: bool,
    },
    /// ```text
    /// stats [group]\r\n
    /// ```
    Stats {
        /// Optional statistics group (`settings`, `cluster`, `reset`, ...).
        group: Option<String>,
    },
    /// ```text
    /// quit\r\n
    /// ```
    Quit,
    /// ```text
    /// fail\r\n
    /// ```
    /// memcord's fault simulation: the peer acts as if crashed or cut off until `recover`.
    Fail,
    /// ```text
    /// recover\r\n
    /// ```
    /// memcord's fault simulation: end `fail`, catch up, serve again.
    Recover,
    /// ```text
    /// consistency <one|quorum|all>\r\n
    /// ```
    /// memcord's own: this connection's consistency level in the eventual mode (`OK`).
    Consistency(Level),
    /// ```text
    /// mg <key> <flags>*\r\n
    /// ```
    /// (The meta commands are boxed: they are larger than every classic request.)
    MetaGet(Box<MetaGet>),
    /// ```text
    /// ms <key> <datalen> <flags>*\r\n<data>\r\n
    /// ```
    MetaSet(Box<MetaSet>),
    /// ```text
    /// md <key> <flags>*\r\n
    /// ```
    MetaDelete(Box<MetaDelete>),
    /// ```text
    /// ma <key> <flags>*\r\n
    /// ```
    MetaArith(Box<MetaArith>),
    /// ```text
    /// mn\r\n
    /// ```
    /// Answered `MN`: marks the end of a pipeline of quiet meta commands.
    MetaNoop,
    /// ```text
    /// me <key> [b]\r\n
    /// ```
    /// A human-readable dump of an item's metadata.
    MetaDebug {
        /// The key (decoded when `base64`).
        key: Bytes,
        /// The key was sent base64-encoded.
        base64: bool,
    },
    /// memcached's admin commands (`stats items`, `cache_memlimit`, `lru_crawler`,
    /// `shutdown`, …; see [`super::admin`]).
    Admin {
        /// Which command, with its arguments.
        command: Admin,
        /// Suppress the reply (the commands memcached looks for `noreply` on).
        noreply: bool,
    },
    /// ```text
    /// <storage command> <key> <flags> <exptime> <bytes above the limit> [noreply]\r\n
    /// ```
    /// A value above the item size limit: the server swallows the block as it arrives,
    /// answers `SERVER_ERROR object too large for cache`, and for `set` unlinks the key's old
    /// item (as memcached does) through the coordinator, so every replica drops it.
    Oversized {
        /// Which storage command.
        op: StoreOp,
        /// The key.
        key: Bytes,
        /// Bytes to discard after the command line: the block and its `\r\n`.
        swallow: usize,
        /// Suppress the reply.
        noreply: bool,
    },
}

impl Request {
    /// The key of a meta command.
    pub fn meta_key_mut(&mut self) -> Option<&mut Bytes> {
        match self {
            Request::MetaGet(get) => Some(&mut get.key),
            Request::MetaSet(set) => Some(&mut set.key),
            Request::MetaDelete(delete) => Some(&mut delete.key),
            Request::MetaArith(arith) => Some(&mut arith.key),
            _ => None,
        }
    }

    /// The flags of a meta command.
    pub fn meta_flags(&self) -> Option<&super::meta::MetaFlags> {
        match self {
            Request::MetaGet(get) => Some(&get.flags),
            Request::MetaSet(set) => Some(&set.flags),
            Request::MetaDelete(delete) => Some(&delete.flags),
            Request::MetaArith(arith) => Some(&arith.flags),
            _ => None,
        }
    }

    /// Whether the client asked for no reply.
    pub fn noreply(&self) -> bool {
        match self {
            Request::Store { noreply, .. }
            | Request::Delete { noreply, .. }
            | Request::Arith { noreply, .. }
            | Request::Touch { noreply, .. }
            | Request::FlushAll { noreply, .. }
            | Request::Verbosity { noreply, .. }
            | Request::Admin { noreply, .. }
            | Request::Oversized { noreply, .. } => *noreply,
            _ => false,
        }
    }
}
