//! What the meta commands do to an item: pure decisions over the live item, run by
//! [`Store::update`](crate::store::Store::update) atomically on every replica.
//!
//! Each function follows memcached 1.6.18's `process_m*_command` and `do_store_item`, with
//! memcord's item model: a value-changing write takes a new cas id (its version), a change in
//! place (touch, a stale mark, a claimed token) keeps the cas id but takes a new version, so the
//! eventual mode's last-writer-wins sees it.

use super::WriteRule;
use crate::clock::Timestamp;
use crate::store::{apply_arith, joined, parse_counter, Access, Change, ExpiresAt, Item};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// What a meta command found or did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetaOutcome {
    /// `mg` hit (possibly touched, created or handed the token), `ma` success.
    Hit(MetaHit),
    /// `mg` miss.
    Miss,
    /// `ms` stored an item with this cas id.
    Stored {
        /// The stored item's cas id.
        cas: u64,
    },
    /// `md` removed the item or marked it stale.
    Deleted,
    /// `ms`: a condition failed (`NS`).
    NotStored,
    /// The compared cas id did not match (`EX`).
    Exists,
    /// No such item (`NF`).
    NotFound,
    /// `ma` on a value that is not a number.
    NonNumeric,
    /// The new value is over the item size limit.
    TooLarge,
}

/// An item as a meta command left it, with what the reply reports of the moment before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaHit {
    /// The item after the command.
    pub item: Item,
    /// This replica's access record before the command.
    pub access: Access,
    /// The expiry before the command changed it (a created item had none).
    pub expires_before: ExpiresAt,
    /// The recache token had been handed out before this command (`Z`).
    pub token_sent_before: bool,
    /// This command won the recache token (`W`).
    pub won: bool,
    /// The item was created by this command (`N` on a miss).
    pub created: bool,
}

impl MetaHit {
    /// A hit that changed nothing.
    pub fn unchanged(item: &Item, access: Access) -> MetaHit {
        MetaHit {
            expires_before: item.expires_at,
            token_sent_before: item.token_sent,
            item: item.clone(),
            access,
            won: false,
            created: false,
        }
    }

    fn created(item: Item) -> MetaHit {
        MetaHit {
            item,
            access: Access::default(),
            expires_before: ExpiresAt::NEVER,
            token_sent_before: false,
            won: false,
            created: true,
        }
    }
}

/// Whether an `mg` that changes nothing by itself must still run as a write after reading
/// `found`: to create the item (`N` on a miss) or to hand out the recache token (a stale item,
/// or less TTL left than `R` asks for).
pub fn get_needs_write(
    found: Option<&Item>,
    vivify: bool,
    recache_before: Option<ExpiresAt>,
) -> bool {
    match found {
        None => vivify,
        Some(item) => wins_token(item, recache_before),
    }
}

fn wins_token(item: &Item, recache_before: Option<ExpiresAt>) -> bool {
    if item.token_sent {
        return false;
    }
    let recache = recache_before
        .is_some_and(|before| !item.expires_at.is_never() && item.expires_at < before);
    recache || item.stale
}

/// `mg` with `T` (`touch`), `N` (`vivify`: the expiry of an item created on a miss) and `R`
/// (`recache_before`: win the token when the item expires before then).
pub fn get(
    current: Option<(&Item, Access)>,
    touch: Option<ExpiresAt>,
    vivify: Option<ExpiresAt>,
    recache_before: Option<ExpiresAt>,
    version: Timestamp,
) -> Change<MetaOutcome> {
    let Some((old, access)) = current else {
        return match vivify {
            Some(expires_at) => {
                let mut item = Item::new(Bytes::new(), 0, expires_at, version);
                item.token_sent = true;
                let mut hit = MetaHit::created(item.clone());
                hit.won = true;
                Change::Replace(item, MetaOutcome::Hit(hit))
            }
            None => Change::Keep(MetaOutcome::Miss),
        };
    };
    let won = wins_token(old, recache_before);
    let mut hit = MetaHit::unchanged(old, access);
    if touch.is_none() && !won {
        return Change::Keep(MetaOutcome::Hit(hit));
    }
    let item = Item {
        expires_at: touch.unwrap_or(old.expires_at),
        token_sent: old.token_sent || won,
        version,
        ..old.clone()
    };
    hit.item = item.clone();
    hit.won = won;
    Change::Modify(item, MetaOutcome::Hit(hit))
}

/// `ms`: `rule` is the mode (`C` turns set and replace into [`WriteRule::Cas`]); `compare_cas`
/// is `C` for append and prepend; `invalidate` (`I`) lets a cas older than the item's store the
/// value marked stale. `fresh` is the item a storing mode writes.
pub fn set(
    current: Option<(&Item, Access)>,
    rule: WriteRule,
    fresh: Item,
    compare_cas: Option<u64>,
    invalidate: bool,
) -> Change<MetaOutcome> {
    let stored = |item: Item| {
        let cas = item.cas;
        Change::Replace(item, MetaOutcome::Stored { cas })
    };
    let Some((old, _)) = current else {
        return match rule {
            WriteRule::Set | WriteRule::Add => stored(fresh),
            WriteRule::Cas(_) => Change::Keep(MetaOutcome::NotFound),
            WriteRule::Replace | WriteRule::Append | WriteRule::Prepend => {
                Change::Keep(MetaOutcome::NotStored)
            }
        };
    };
    match rule {
        WriteRule::Set | WriteRule::Replace => stored(fresh),
        WriteRule::Add => Change::Keep(MetaOutcome::NotStored),
        WriteRule::Cas(expected) => {
            if expected != 0 && expected == old.cas {
                stored(fresh)
            } else if expected != 0 && invalidate && expected < old.cas {
                // An older writer's value, kept but marked stale: the item keeps its expiry
                // and whether its token was handed out.
                stored(Item {
                    expires_at: old.expires_at,
                    stale: true,
                    token_sent: old.token_sent,
                    ..fresh
                })
            } else {
                Change::Keep(MetaOutcome::Exists)
            }
        }
        WriteRule::Append | WriteRule::Prepend => {
            if compare_cas.is_some_and(|c| c != 0 && c != old.cas) {
                return Change::Keep(MetaOutcome::Exists);
            }
            let value = if rule == WriteRule::Append {
                joined(&old.value, &fresh.value)
            } else {
                joined(&fresh.value, &old.value)
            };
            stored(Item::new(value, old.flags, old.expires_at, fresh.version))
        }
    }
}

/// `md`: remove the item, or with `invalidate` (`I`) mark it stale under a new cas id, release
/// its token and (with `touch`) give it a new expiry; `compare_cas` (`C`) must match first.
pub fn delete(
    current: Option<(&Item, Access)>,
    compare_cas: Option<u64>,
    invalidate: bool,
    touch: Option<ExpiresAt>,
    version: Timestamp,
) -> Change<MetaOutcome> {
    let Some((old, _)) = current else {
        return Change::Keep(MetaOutcome::NotFound);
    };
    if compare_cas.is_some_and(|c| c != old.cas) {
        return Change::Keep(MetaOutcome::Exists);
    }
    if !invalidate {
        return Change::Remove(MetaOutcome::Deleted);
    }
    let item = Item {
        expires_at: touch.unwrap_or(old.expires_at),
        stale: true,
        token_sent: false,
        cas: version.as_u64(),
        version,
        ..old.clone()
    };
    Change::Modify(item, MetaOutcome::Deleted)
}

/// What an `ma` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArithSpec {
    /// Increment (else decrement, stopping at 0).
    pub incr: bool,
    /// Amount.
    pub delta: u64,
    /// Value of an item created on a miss.
    pub initial: u64,
    /// On a miss, create the item expiring then.
    pub vivify: Option<ExpiresAt>,
    /// Only if the item's cas id is this (0 compares nothing).
    pub compare_cas: Option<u64>,
    /// New expiry on success.
    pub touch: Option<ExpiresAt>,
}

/// `ma`: add or subtract, create on a miss with `vivify`, compare the cas id, touch.
pub fn arith(
    current: Option<(&Item, Access)>,
    spec: ArithSpec,
    version: Timestamp,
) -> Change<MetaOutcome> {
    let Some((old, access)) = current else {
        return match spec.vivify {
            Some(expires_at) => {
                let item = Item::new(decimal(spec.initial), 0, expires_at, version);
                Change::Replace(item.clone(), MetaOutcome::Hit(MetaHit::created(item)))
            }
            None => Change::Keep(MetaOutcome::NotFound),
        };
    };
    // memcached's order: an empty value, then the cas id, then the number.
    if old.value.is_empty() {
        return Change::Keep(MetaOutcome::NonNumeric);
    }
    if spec.compare_cas.is_some_and(|c| c != 0 && c != old.cas) {
        return Change::Keep(MetaOutcome::Exists);
    }
    let Some(current) = parse_counter(&old.value) else {
        return Change::Keep(MetaOutcome::NonNumeric);
    };
    let next = apply_arith(current, spec.delta, spec.incr);
    let item = Item {
        value: decimal(next),
        expires_at: spec.touch.unwrap_or(old.expires_at),
        cas: version.as_u64(),
        version,
        ..old.clone()
    };
    let mut hit = MetaHit::unchanged(old, access);
    hit.item = item.clone();
    Change::Modify(item, MetaOutcome::Hit(hit))
}

fn decimal(n: u64) -> Bytes {
    Bytes::from(n.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(ms: u64) -> Timestamp {
        Timestamp::new(ms, 0, 1)
    }

    fn item(value: &'static [u8], version: u64) -> Item {
        Item::new(Bytes::from_static(value), 0, ExpiresAt::NEVER, ts(version))
    }

    fn seen(item: &Item) -> Option<(&Item, Access)> {
        Some((item, Access::default()))
    }

    #[test]
    fn a_stale_item_hands_its_token_to_one_reader() {
        let stale = Item {
            stale: true,
            ..item(b"v", 1)
        };
        let Change::Modify(claimed, MetaOutcome::Hit(hit)) =
            get(seen(&stale), None, None, None, ts(2))
        else {
            panic!("the first reader of a stale item claims its token");
        };
        assert!(hit.won && !hit.token_sent_before && claimed.token_sent);
        assert_eq!(claimed.cas, stale.cas, "a claim keeps the cas id");
        let Change::Keep(MetaOutcome::Hit(second)) = get(seen(&claimed), None, None, None, ts(3))
        else {
            panic!("the second reader changes nothing");
        };
        assert!(!second.won && second.token_sent_before);
    }

    #[test]
    fn vivify_creates_an_empty_item_and_wins() {
        let Change::Replace(created, MetaOutcome::Hit(hit)) =
            get(None, None, Some(ExpiresAt(100)), None, ts(5))
        else {
            panic!("a miss with N creates");
        };
        assert!(hit.won && hit.created && created.value.is_empty());
        assert_eq!(created.expires_at, ExpiresAt(100));
        assert!(get_needs_write(None, true, None));
        assert!(!get_needs_write(Some(&created), true, None));
    }

    #[test]
    fn an_older_cas_with_invalidate_stores_stale() {
        let current = item(b"new", 10);
        let fresh = item(b"old", 11);
        let older = ts(5).as_u64();
        let Change::Replace(stored, MetaOutcome::Stored { .. }) = set(
            seen(&current),
            WriteRule::Cas(older),
            fresh.clone(),
            None,
            true,
        ) else {
            panic!("an older cas with I stores");
        };
        assert!(stored.stale);
        assert_eq!(
            set(seen(&current), WriteRule::Cas(older), fresh, None, false),
            Change::Keep(MetaOutcome::Exists)
        );
    }

    #[test]
    fn invalidating_delete_keeps_the_item_stale_under_a_new_cas() {
        let current = Item {
            token_sent: true,
            ..item(b"v", 1)
        };
        let Change::Modify(marked, MetaOutcome::Deleted) =
            delete(seen(&current), None, true, Some(ExpiresAt(50)), ts(9))
        else {
            panic!("md I marks");
        };
        assert!(marked.stale && !marked.token_sent);
        assert_eq!(marked.cas, ts(9).as_u64());
        assert_eq!(marked.expires_at, ExpiresAt(50));
        assert_eq!(
            delete(seen(&current), Some(1), false, None, ts(9)),
            Change::Keep(MetaOutcome::Exists)
        );
    }

    #[test]
    fn arith_checks_empty_values_before_cas() {
        let empty = item(b"", 1);
        let spec = ArithSpec {
            incr: true,
            delta: 1,
            initial: 0,
            vivify: None,
            compare_cas: Some(12345),
            touch: None,
        };
        assert_eq!(
            arith(seen(&empty), spec, ts(2)),
            Change::Keep(MetaOutcome::NonNumeric)
        );
        let text = item(b"abc", 1);
        assert_eq!(
            arith(seen(&text), spec, ts(2)),
            Change::Keep(MetaOutcome::Exists)
        );
    }
}
