//! Consistency levels named per request: a key prefix (`@quorum:key`) or a meta `L` flag.

use crate::protocol::{Level, Request};
use bytes::Bytes;

/// The per-request level prefixes, as written before a key.
const LEVEL_PREFIXES: [(&[u8], Level); 3] = [
    (b"@one:", Level::One),
    (b"@quorum:", Level::Quorum),
    (b"@all:", Level::All),
];

/// Whether any key of the request starts with `@` (the only requests worth stripping).
pub(super) fn may_carry_prefix(request: &Request) -> bool {
    match request {
        Request::Get { keys, .. } | Request::Gat { keys, .. } => {
            keys.iter().any(|k| k.first() == Some(&b'@'))
        }
        Request::Store { key, .. }
        | Request::Delete { key, .. }
        | Request::Arith { key, .. }
        | Request::Touch { key, .. } => key.first() == Some(&b'@'),
        Request::MetaGet(get) => get.key.first() == Some(&b'@'),
        Request::MetaSet(set) => set.key.first() == Some(&b'@'),
        Request::MetaDelete(delete) => delete.key.first() == Some(&b'@'),
        Request::MetaArith(arith) => arith.key.first() == Some(&b'@'),
        _ => false,
    }
}

/// The level a meta request names with its `L` flag.
pub(super) fn meta_level(request: &Request) -> Option<Level> {
    request.meta_flags().and_then(|flags| flags.level)
}

/// Strips a level prefix (`@one:`, `@quorum:`, `@all:`) from the request's keys; returns the
/// strongest level named. A key that would be empty after the prefix is left alone.
pub(super) fn strip_level_prefixes(request: &mut Request) -> Option<Level> {
    fn strip(key: &mut Bytes, found: &mut Option<Level>) {
        for (prefix, level) in LEVEL_PREFIXES {
            if key.len() > prefix.len() && key.starts_with(prefix) {
                *key = key.slice(prefix.len()..);
                let stronger = match (*found, level) {
                    (None, l) => l,
                    (Some(Level::All), _) | (_, Level::All) => Level::All,
                    (Some(Level::Quorum), _) | (_, Level::Quorum) => Level::Quorum,
                    _ => Level::One,
                };
                *found = Some(stronger);
                return;
            }
        }
    }
    let mut found = None;
    match request {
        Request::Get { keys, .. } | Request::Gat { keys, .. } => {
            for key in keys {
                strip(key, &mut found);
            }
        }
        Request::Store { key, .. }
        | Request::Delete { key, .. }
        | Request::Arith { key, .. }
        | Request::Touch { key, .. } => strip(key, &mut found),
        other => {
            if let Some(key) = other.meta_key_mut() {
                strip(key, &mut found);
            }
        }
    }
    found
}

#[cfg(test)]
mod prefix_tests {
    use super::*;

    #[test]
    fn prefixes_choose_the_level_and_leave_the_key() {
        let mut get = Request::Get {
            keys: vec![
                Bytes::from_static(b"@quorum:a"),
                Bytes::from_static(b"b"),
                Bytes::from_static(b"@one:c"),
            ],
            with_cas: false,
        };
        assert_eq!(strip_level_prefixes(&mut get), Some(Level::Quorum));
        let Request::Get { keys, .. } = &get else {
            unreachable!()
        };
        assert_eq!(keys, &[&b"a"[..], b"b", b"c"]);
        let mut del = Request::Delete {
            key: Bytes::from_static(b"@all:"),
            noreply: false,
        };
        assert_eq!(strip_level_prefixes(&mut del), None);
        let mut set = Request::Delete {
            key: Bytes::from_static(b"@ALL:x"),
            noreply: false,
        };
        assert_eq!(strip_level_prefixes(&mut set), None);
    }
}
