//! Meta requests ⇄ replicated commands, and meta outcomes → [`MetaReply`].

use super::ReadOrWrite;
use crate::clock::{unix_secs, HybridClock};
use crate::protocol::meta::{
    MetaArith, MetaDelete, MetaFlags, MetaGet, MetaItem, MetaKind, MetaReply, MetaSet, MetaStatus,
    SetMode,
};
use crate::protocol::{Request, Response};
use crate::replicated::meta::get_needs_write;
use crate::replicated::{ArithSpec, Command, MetaHit, MetaOutcome, Outcome, WriteRule};
use crate::store::{Access, ExpiresAt, Item, StoreError};
use bytes::Bytes;

/// The expiry an item created by `N` ends with: `N`'s, unless a `T` follows it in the flags
/// (memcached applies the two in flag order).
fn vivify_expiry(flags: &MetaFlags, vivify: Option<i64>, touch: Option<i64>) -> Option<ExpiresAt> {
    vivify?;
    let mut last = None;
    for &letter in flags.letters() {
        match letter {
            b'N' => last = vivify,
            b'T' => last = touch,
            _ => {}
        }
    }
    last.map(ExpiresAt::from_exptime_now)
}

fn expiry(exptime: Option<i64>) -> Option<ExpiresAt> {
    exptime.map(ExpiresAt::from_exptime_now)
}

/// `mg`: a write when it touches; otherwise a read that may turn into one.
pub(super) fn get_command(get: &MetaGet, clock: &HybridClock) -> ReadOrWrite {
    if get.touch.is_some() {
        ReadOrWrite::Write(get_write(get, clock))
    } else {
        ReadOrWrite::MetaRead {
            key: get.key.clone(),
            bump: !get.no_bump,
        }
    }
}

fn get_write(get: &MetaGet, clock: &HybridClock) -> Command {
    Command::MetaGet {
        key: get.key.clone(),
        touch: expiry(get.touch),
        vivify: vivify_expiry(&get.flags, get.vivify, get.touch),
        recache_before: expiry(get.recache),
        bump: !get.no_bump,
        version: clock.now(),
    }
}

pub(super) fn set_command(set: &MetaSet, clock: &HybridClock) -> Command {
    let rule = match (set.mode, set.compare_cas) {
        (SetMode::Set | SetMode::Replace, Some(cas)) => WriteRule::Cas(cas),
        (SetMode::Set, None) => WriteRule::Set,
        (SetMode::Replace, None) => WriteRule::Replace,
        (SetMode::Add, _) => WriteRule::Add,
        (SetMode::Append, _) => WriteRule::Append,
        (SetMode::Prepend, _) => WriteRule::Prepend,
    };
    Command::MetaSet {
        rule,
        key: set.key.clone(),
        value: set.value.clone(),
        flags: set.client_flags,
        expires_at: ExpiresAt::from_exptime_now(set.exptime),
        compare_cas: set.compare_cas,
        invalidate: set.invalidate,
        version: clock.now(),
    }
}

pub(super) fn delete_command(delete: &MetaDelete, clock: &HybridClock) -> Command {
    Command::MetaDelete {
        key: delete.key.clone(),
        compare_cas: delete.compare_cas,
        invalidate: delete.invalidate,
        touch: expiry(delete.touch),
        version: clock.now(),
    }
}

pub(super) fn arith_command(arith: &MetaArith, clock: &HybridClock) -> Command {
    Command::MetaArith {
        key: arith.key.clone(),
        spec: ArithSpec {
            incr: arith.incr,
            delta: arith.delta,
            initial: arith.initial,
            vivify: vivify_expiry(&arith.flags, arith.vivify, arith.touch),
            compare_cas: arith.compare_cas,
            touch: expiry(arith.touch),
        },
        version: clock.now(),
    }
}

/// What a mode does after reading a [`ReadOrWrite::MetaRead`]'s key.
#[derive(Debug)]
pub enum MetaRead {
    /// The reply.
    Answer(Response),
    /// Run this command as a write, then answer with [`escalated_response`] (the item must be
    /// created, or its recache token handed out, and that must be ordered like any write).
    Escalate(Command),
}

/// The answer to a meta read from what the replica holds (`found`, with its access record as
/// it was before this read).
pub fn meta_read(
    request: &Request,
    found: Option<(Item, Access)>,
    clock: &HybridClock,
) -> MetaRead {
    if let Request::MetaGet(get) = request {
        let recache_before = expiry(get.recache);
        if get_needs_write(
            found.as_ref().map(|f| &f.0),
            get.vivify.is_some(),
            recache_before,
        ) {
            return MetaRead::Escalate(get_write(get, clock));
        }
    }
    let outcome = match &found {
        Some((item, access)) => MetaOutcome::Hit(MetaHit::unchanged(item, *access)),
        None => MetaOutcome::Miss,
    };
    MetaRead::Answer(response(request, &outcome, None))
}

/// The reply to an escalated meta read: `seen` is the access record the first read found
/// (that read already counted itself).
pub fn escalated_response(
    request: &Request,
    outcome: Result<Outcome, StoreError>,
    seen: Option<Access>,
) -> Response {
    match outcome {
        Ok(Outcome::Meta(outcome)) => response(request, &outcome, seen),
        Ok(_) => Response::ServerError("unexpected outcome of a meta command".into()),
        Err(err) => Response::ServerError(err.to_string()),
    }
}

/// Seconds left before `expires_at` (-1: never).
fn ttl(expires_at: ExpiresAt, now: u64) -> i64 {
    if expires_at.is_never() {
        -1
    } else {
        i64::try_from(expires_at.0.saturating_sub(now)).unwrap_or(i64::MAX)
    }
}

/// The view a reply shows of a hit; `touch`/`vivify` are the request's `T`/`N`.
fn view(
    key: &Bytes,
    hit: &MetaHit,
    touch: Option<i64>,
    vivify: Option<i64>,
    seen: Option<Access>,
) -> MetaItem {
    let now = unix_secs();
    let access = seen.unwrap_or(hit.access);
    let ttl_of = |exptime: i64| ttl(ExpiresAt::from_exptime(exptime, now), now);
    MetaItem {
        value: hit.item.value.clone(),
        client_flags: hit.item.flags,
        cas: hit.item.cas,
        ttl: if hit.created {
            -1
        } else {
            ttl(hit.expires_before, now)
        },
        ttl_touched: touch.map(ttl_of),
        ttl_vivified: vivify.filter(|_| hit.created).map(ttl_of),
        hit_before: access.fetched,
        idle_secs: access.idle_secs,
        stale: hit.item.stale,
        token_sent: hit.token_sent_before,
        won: hit.won,
        footprint: hit.item.footprint(key.len()),
        class: crate::store::size_class(hit.item.footprint(key.len())),
    }
}

/// The reply to a meta request from its outcome.
pub(super) fn response(request: &Request, outcome: &MetaOutcome, seen: Option<Access>) -> Response {
    let (kind, key, flags, touch, vivify) = match request {
        Request::MetaGet(get) => (MetaKind::Get, &get.key, &get.flags, get.touch, get.vivify),
        Request::MetaSet(set) => (MetaKind::Set, &set.key, &set.flags, None, None),
        Request::MetaDelete(delete) => (MetaKind::Delete, &delete.key, &delete.flags, None, None),
        Request::MetaArith(arith) => (
            MetaKind::Arith,
            &arith.key,
            &arith.flags,
            arith.touch,
            arith.vivify,
        ),
        Request::MetaDebug { key, base64 } => {
            let mut flags = MetaFlags::new();
            flags.base64 = *base64;
            return reply(MetaKind::Debug, key, flags, outcome, |hit| {
                view(key, hit, None, None, seen)
            });
        }
        _ => return Response::ServerError("a meta outcome for a classic request".into()),
    };
    match outcome {
        MetaOutcome::NonNumeric => {
            Response::ClientError("cannot increment or decrement non-numeric value".into())
        }
        // An append past the item size limit: memcached cannot allocate it and says NS.
        MetaOutcome::TooLarge if kind == MetaKind::Set => {
            reply(kind, key, flags.clone(), &MetaOutcome::NotStored, |_| {
                MetaItem::default()
            })
        }
        MetaOutcome::TooLarge => Response::ServerError("object too large for cache".into()),
        _ => reply(kind, key, flags.clone(), outcome, |hit| {
            view(key, hit, touch, vivify, seen)
        }),
    }
}

fn reply(
    kind: MetaKind,
    key: &Bytes,
    flags: MetaFlags,
    outcome: &MetaOutcome,
    view: impl FnOnce(&MetaHit) -> MetaItem,
) -> Response {
    let (status, item) = match outcome {
        MetaOutcome::Hit(hit) => (MetaStatus::Found, Some(view(hit))),
        MetaOutcome::Miss => (MetaStatus::Miss, None),
        MetaOutcome::Stored { cas } => (
            MetaStatus::Done,
            Some(MetaItem {
                cas: *cas,
                ..MetaItem::default()
            }),
        ),
        MetaOutcome::Deleted => (MetaStatus::Done, None),
        MetaOutcome::NotStored => (MetaStatus::NotStored, None),
        MetaOutcome::Exists => (MetaStatus::Exists, None),
        MetaOutcome::NotFound => (MetaStatus::NotFound, None),
        MetaOutcome::NonNumeric | MetaOutcome::TooLarge => (MetaStatus::NotStored, None),
    };
    Response::Meta(Box::new(MetaReply {
        kind,
        status,
        key: key.clone(),
        flags,
        item,
    }))
}
