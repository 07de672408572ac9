//! memcached-style counters for `stats`.
//!
//! Each connection counts into a plain [`ConnCounters`] while it works through a batch of
//! pipelined requests and folds them into the shared [`ServerStats`] atomics once per batch, so
//! a busy connection touches the shared cache lines once per flush rather than once per request.

use crate::protocol::meta::MetaStatus;
use crate::protocol::{Request, Response};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

macro_rules! counters {
    ($($name:ident),* $(,)?) => {
        /// Counters of one connection's current batch (plain integers, no sharing).
        #[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
        pub struct ConnCounters {
            $(#[doc = concat!("`", stringify!($name), "`")] pub $name: u64,)*
        }

        /// The process-wide counters, named as memcached names them.
        #[derive(Debug, Default)]
        pub struct Counters {
            $(#[doc = concat!("`", stringify!($name), "`")] pub $name: AtomicU64,)*
        }

        impl Counters {
            /// Adds a connection's batch and zeroes it.
            pub fn fold(&self, local: &mut ConnCounters) {
                $(if local.$name != 0 { self.$name.fetch_add(local.$name, Relaxed); })*
                *local = ConnCounters::default();
            }

            /// Zeroes every counter (`stats reset`).
            pub fn reset(&self) {
                $(self.$name.store(0, Relaxed);)*
            }

            /// `(name, value)` for every counter, in declaration order.
            pub fn lines(&self) -> Vec<(String, String)> {
                vec![$((stringify!($name).to_string(), self.$name.load(Relaxed).to_string()),)*]
            }
        }
    };
}

// Declaration order is the order of the `stats` reply, following memcached's.
counters!(
    cmd_get,
    cmd_set,
    cmd_flush,
    cmd_touch,
    cmd_meta,
    get_hits,
    get_misses,
    delete_misses,
    delete_hits,
    incr_misses,
    incr_hits,
    decr_misses,
    decr_hits,
    cas_misses,
    cas_hits,
    cas_badval,
    touch_hits,
    touch_misses,
    store_too_large,
    store_no_memory,
    bytes_read,
    bytes_written,
    total_items,
);

/// What a data request contributes to the counters, taken before the request is handed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tally {
    /// `get`/`gets` of this many keys.
    Get(u64),
    /// `gat`/`gats` of this many keys.
    Gat(u64),
    /// A storage command; `true` for `cas`.
    Store(bool),
    /// `delete`.
    Delete,
    /// `incr` (`true`) or `decr`.
    Arith(bool),
    /// `touch`.
    Touch,
    /// `flush_all`.
    Flush,
    /// `mg`; `true` when it touches (`T`), counted as a touch as memcached does.
    MetaGet(bool),
    /// `ms`; `true` when it compares a cas id in set or replace mode.
    MetaSet(bool),
    /// `md`.
    MetaDelete,
    /// `ma`; `true` for an increment.
    MetaArith(bool),
    /// `me` (the one meta command memcached counts in `cmd_meta`).
    MetaDebug,
    /// Not counted (connection-level requests).
    None,
}

impl Tally {
    /// The tally of `request`.
    pub fn of(request: &Request) -> Tally {
        use crate::protocol::{ArithOp, StoreOp};
        match request {
            Request::Get { keys, .. } => Tally::Get(keys.len() as u64),
            Request::Gat { keys, .. } => Tally::Gat(keys.len() as u64),
            Request::Store { op, .. } => Tally::Store(*op == StoreOp::Cas),
            Request::Delete { .. } => Tally::Delete,
            Request::Arith { op, .. } => Tally::Arith(*op == ArithOp::Incr),
            Request::Touch { .. } => Tally::Touch,
            Request::FlushAll { .. } => Tally::Flush,
            Request::MetaGet(get) => Tally::MetaGet(get.touch.is_some()),
            Request::MetaSet(set) => Tally::MetaSet(
                set.compare_cas.is_some()
                    && matches!(
                        set.mode,
                        crate::protocol::meta::SetMode::Set
                            | crate::protocol::meta::SetMode::Replace
                    ),
            ),
            Request::MetaDelete(_) => Tally::MetaDelete,
            Request::MetaArith(arith) => Tally::MetaArith(arith.incr),
            Request::MetaDebug { .. } => Tally::MetaDebug,
            Request::MetaNoop => Tally::None,
            Request::Version
            | Request::Verbosity { .. }
            | Request::Stats { .. }
            | Request::Quit
            | Request::Fail
            | Request::Recover
            | Request::Consistency(_)
            | Request::Admin { .. }
            | Request::Oversized { .. } => Tally::None,
        }
    }
}

impl ConnCounters {
    /// Counts one data request and the reply it got (before `noreply` suppression).
    pub fn record(&mut self, tally: Tally, response: &Response) {
        match tally {
            Tally::Get(keys) => {
                let hits = hit_count(response);
                self.cmd_get += keys;
                self.get_hits += hits;
                self.get_misses += keys.saturating_sub(hits);
            }
            Tally::Gat(keys) => {
                // memcached counts a gat as a fetch and a touch per key.
                let hits = hit_count(response);
                let misses = keys.saturating_sub(hits);
                self.cmd_get += keys;
                self.cmd_touch += keys;
                self.get_hits += hits;
                self.touch_hits += hits;
                self.get_misses += misses;
                self.touch_misses += misses;
            }
            Tally::Store(is_cas) => {
                self.cmd_set += 1;
                match response {
                    Response::Stored => self.total_items += 1,
                    Response::ServerError(reason) if reason.starts_with("out of memory") => {
                        self.store_no_memory += 1
                    }
                    _ => {}
                }
                if is_cas {
                    match response {
                        Response::Stored => self.cas_hits += 1,
                        Response::Exists => self.cas_badval += 1,
                        Response::NotFound => self.cas_misses += 1,
                        _ => {}
                    }
                }
            }
            Tally::Delete => match response {
                Response::Deleted => self.delete_hits += 1,
                Response::NotFound => self.delete_misses += 1,
                _ => {}
            },
            Tally::Arith(incr) => {
                let (hits, misses) = if incr {
                    (&mut self.incr_hits, &mut self.incr_misses)
                } else {
                    (&mut self.decr_hits, &mut self.decr_misses)
                };
                match response {
                    Response::Number(_) => *hits += 1,
                    Response::NotFound => *misses += 1,
                    _ => {}
                }
            }
            Tally::Touch => {
                self.cmd_touch += 1;
                match response {
                    Response::Touched => self.touch_hits += 1,
                    Response::NotFound => self.touch_misses += 1,
                    _ => {}
                }
            }
            Tally::Flush => self.cmd_flush += 1,
            Tally::MetaGet(_) | Tally::MetaSet(_) | Tally::MetaDelete | Tally::MetaArith(_) => {
                self.record_meta(tally, meta_status(response))
            }
            Tally::MetaDebug => self.cmd_meta += 1,
            Tally::None => {}
        }
    }

    /// Counts one meta command by the status of its reply, as memcached counts each.
    fn record_meta(&mut self, tally: Tally, status: Option<MetaStatus>) {
        match tally {
            Tally::MetaGet(touch) => self.record_meta_get(touch, status),
            Tally::MetaSet(is_cas) => {
                self.cmd_set += 1;
                if status == Some(MetaStatus::Done) {
                    self.total_items += 1;
                }
                if is_cas {
                    match status {
                        Some(MetaStatus::Done) => self.cas_hits += 1,
                        Some(MetaStatus::Exists) => self.cas_badval += 1,
                        Some(MetaStatus::NotFound) => self.cas_misses += 1,
                        _ => {}
                    }
                }
            }
            Tally::MetaDelete => match status {
                Some(MetaStatus::Done) => self.delete_hits += 1,
                Some(_) => self.delete_misses += 1,
                None => {}
            },
            Tally::MetaArith(incr) => {
                let (hits, misses) = if incr {
                    (&mut self.incr_hits, &mut self.incr_misses)
                } else {
                    (&mut self.decr_hits, &mut self.decr_misses)
                };
                match status {
                    Some(MetaStatus::Found) => *hits += 1,
                    Some(MetaStatus::NotFound) => *misses += 1,
                    _ => {}
                }
            }
            _ => {}
        }
    }

    /// memcached counts an `mg` as a fetch, or as a touch when it carries `T`.
    fn record_meta_get(&mut self, touch: bool, status: Option<MetaStatus>) {
        let hit = match status {
            Some(MetaStatus::Found) => true,
            Some(MetaStatus::Miss) => false,
            _ => return,
        };
        if touch {
            self.cmd_touch += 1;
            if hit {
                self.touch_hits += 1;
            } else {
                self.touch_misses += 1;
            }
        } else {
            self.cmd_get += 1;
            if hit {
                self.get_hits += 1;
            } else {
                self.get_misses += 1;
            }
        }
    }
}

/// The status of a meta reply.
fn meta_status(response: &Response) -> Option<MetaStatus> {
    match response {
        Response::Meta(reply) => Some(reply.status),
        _ => None,
    }
}

fn hit_count(response: &Response) -> u64 {
    match response {
        Response::Values(values) => values.len() as u64,
        _ => 0,
    }
}

/// Everything the server counts, plus connection gauges.
#[derive(Debug)]
pub struct ServerStats {
    /// When the server started (for `uptime`).
    started: Instant,
    /// Request and byte counters.
    pub counters: Counters,
    /// Open client connections.
    pub curr_connections: AtomicU64,
    /// Connections accepted since start (or the last `stats reset`).
    pub total_connections: AtomicU64,
    /// Connections refused because `max_connections` were open.
    pub rejected_connections: AtomicU64,
}

impl Default for ServerStats {
    fn default() -> Self {
        ServerStats {
            started: Instant::now(),
            counters: Counters::default(),
            curr_connections: AtomicU64::new(0),
            total_connections: AtomicU64::new(0),
            rejected_connections: AtomicU64::new(0),
        }
    }
}

impl ServerStats {
    /// Zeroes the resettable counters, as memcached's `stats reset` does (gauges stay).
    pub fn reset(&self) {
        self.counters.reset();
        self.total_connections.store(0, Relaxed);
        self.rejected_connections.store(0, Relaxed);
    }

    /// Seconds since the server started.
    pub fn uptime_secs(&self) -> u64 {
        self.started.elapsed().as_secs()
    }
}

/// CPU time used by the process, formatted as memcached does (`seconds.micros`).
pub(super) fn rusage() -> (String, String) {
    // SAFETY: getrusage only writes into the zeroed struct we pass it.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut usage) != 0 {
            return ("0.000000".into(), "0.000000".into());
        }
        usage
    };
    let fmt = |tv: libc::timeval| format!("{}.{:06}", tv.tv_sec, tv.tv_usec);
    (fmt(usage.ru_utime), fmt(usage.ru_stime))
}
