//! Request ⇄ command translation shared by every mode.

mod meta;

pub use meta::{escalated_response, meta_read, MetaRead};

use crate::clock::{unix_ms, HybridClock, Timestamp};
use crate::protocol::{ArithOp, Request, Response, StoreOp, Value};
use crate::replicated::{Command, Outcome, WriteRule};
use crate::store::{ArithOutcome, ExpiresAt, StoreError, StoreOutcome};
use bytes::Bytes;

/// How a mode must treat a data request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadOrWrite {
    /// A plain read (`get`/`gets`): the keys and whether cas ids are wanted.
    Read {
        /// Keys in request order.
        keys: Vec<Bytes>,
        /// `gets`.
        with_cas: bool,
    },
    /// A meta get (or `me`) answered from one key's item as this replica holds it, unless
    /// what it finds asks for a write ([`meta_read`] says which).
    MetaRead {
        /// The key.
        key: Bytes,
        /// Count the read in the item's access record.
        bump: bool,
    },
    /// A command that must be applied (and replicated) in order.
    Write(Command),
    /// Not a data request (answered by the connection layer).
    NotData,
}

/// Turns a data request into what a mode applies, stamping mutations with the clock's next
/// version and turning relative expiry times into absolute ones, once, here.
pub fn command_for(request: &Request, clock: &HybridClock) -> ReadOrWrite {
    match request {
        Request::Get { keys, with_cas } => ReadOrWrite::Read {
            keys: keys.clone(),
            with_cas: *with_cas,
        },
        Request::Gat { exptime, keys, .. } => ReadOrWrite::Write(Command::Gat {
            keys: keys.clone(),
            expires_at: ExpiresAt::from_exptime_now(*exptime),
            version: clock.now(),
        }),
        Request::Store {
            op,
            key,
            flags,
            exptime,
            value,
            cas_unique,
            ..
        } => ReadOrWrite::Write(Command::Write {
            rule: match op {
                StoreOp::Set => WriteRule::Set,
                StoreOp::Add => WriteRule::Add,
                StoreOp::Replace => WriteRule::Replace,
                StoreOp::Append => WriteRule::Append,
                StoreOp::Prepend => WriteRule::Prepend,
                StoreOp::Cas => WriteRule::Cas(*cas_unique),
            },
            key: key.clone(),
            value: value.clone(),
            flags: *flags,
            expires_at: ExpiresAt::from_exptime_now(*exptime),
            version: clock.now(),
        }),
        Request::Delete { key, .. } => ReadOrWrite::Write(Command::Delete {
            key: key.clone(),
            version: clock.now(),
        }),
        Request::Arith { op, key, delta, .. } => ReadOrWrite::Write(Command::Arith {
            key: key.clone(),
            delta: *delta,
            incr: *op == ArithOp::Incr,
            version: clock.now(),
        }),
        Request::Touch { key, exptime, .. } => ReadOrWrite::Write(Command::Touch {
            key: key.clone(),
            expires_at: ExpiresAt::from_exptime_now(*exptime),
            version: clock.now(),
        }),
        Request::FlushAll { delay, .. } => {
            let version = clock.now();
            let cutoff = if *delay > 0 {
                let at = ExpiresAt::from_exptime_now(*delay);
                Timestamp::new(at.0.saturating_mul(1000).max(unix_ms()), 0, 0)
            } else {
                version
            };
            ReadOrWrite::Write(Command::FlushAll { cutoff, version })
        }
        Request::MetaGet(get) => meta::get_command(get, clock),
        Request::MetaSet(set) => ReadOrWrite::Write(meta::set_command(set, clock)),
        Request::MetaDelete(delete) => ReadOrWrite::Write(meta::delete_command(delete, clock)),
        Request::MetaArith(arith) => ReadOrWrite::Write(meta::arith_command(arith, clock)),
        Request::MetaDebug { key, .. } => ReadOrWrite::MetaRead {
            key: key.clone(),
            bump: false,
        },
        Request::MetaNoop
        | Request::Version
        | Request::Verbosity { .. }
        | Request::Stats { .. }
        | Request::Quit
        | Request::Fail
        | Request::Recover
        | Request::Consistency(_)
        | Request::Admin { .. }
        | Request::Oversized { .. } => ReadOrWrite::NotData,
    }
}

/// Turns a command's outcome (or a store failure) into the client's reply, as if `noreply` were
/// absent: the connection layer suppresses it (after counting hits and misses from it).
pub fn response_for(request: &Request, outcome: Result<Outcome, StoreError>) -> Response {
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(err) => return Response::ServerError(err.to_string()),
    };
    match outcome {
        Outcome::Write(result) => match result {
            StoreOutcome::Stored => Response::Stored,
            StoreOutcome::NotStored => Response::NotStored,
            StoreOutcome::Exists => Response::Exists,
            StoreOutcome::NotFound => Response::NotFound,
            StoreOutcome::TooLarge => {
                Response::ServerError("object too large for cache".to_string())
            }
        },
        Outcome::Delete(true) => Response::Deleted,
        Outcome::Delete(false) | Outcome::Touch(false) => Response::NotFound,
        Outcome::Touch(true) => Response::Touched,
        Outcome::Arith(ArithOutcome::Value(n)) => Response::Number(n),
        Outcome::Arith(ArithOutcome::NotFound) => Response::NotFound,
        Outcome::Arith(ArithOutcome::NonNumeric) => {
            Response::ClientError("cannot increment or decrement non-numeric value".to_string())
        }
        Outcome::Flushed => Response::Ok,
        Outcome::Meta(outcome) => meta::response(request, &outcome, None),
        Outcome::Items(items) => {
            let (keys, with_cas) = match request {
                Request::Get { keys, with_cas } | Request::Gat { keys, with_cas, .. } => {
                    (keys.as_slice(), *with_cas)
                }
                _ => (&[][..], false),
            };
            values_reply(keys, items, with_cas)
        }
    }
}

/// Builds a `VALUE … END` reply from looked-up items, skipping misses.
pub fn values_reply(
    keys: &[Bytes],
    items: Vec<Option<crate::store::Item>>,
    with_cas: bool,
) -> Response {
    Response::Values(
        keys.iter()
            .zip(items)
            .filter_map(|(key, item)| {
                item.map(|item| Value {
                    key: key.clone(),
                    flags: item.flags,
                    cas: with_cas.then_some(item.cas),
                    data: item.value,
                })
            })
            .collect(),
    )
}
