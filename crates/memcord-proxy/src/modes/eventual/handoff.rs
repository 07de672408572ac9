//! Moving keys to where the ring says they live: hinted writes handed to a replica that is
//! back, and keys this peer no longer holds dropped once their replicas have them.

use super::dynamo::version_of;
use super::{PeerState, Shared};
use crate::cluster::{PeerId, PeerRequest, PeerResponse};
use crate::store::Store;
use bytes::Bytes;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Hands hints off to their peers whenever membership shows them up (and every second, for
/// hints stored while the peer was already up).
pub(super) async fn hand_off<S: Store>(shared: std::sync::Weak<Shared<S>>) {
    let mut changes = match shared.upgrade() {
        Some(s) => s.transport.membership().subscribe(),
        None => return,
    };
    loop {
        tokio::select! {
            _ = changes.changed() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        let Some(shared) = shared.upgrade() else {
            return;
        };
        if shared.state() == PeerState::Failed {
            continue;
        }
        for peer in shared.outbox.hints.targets() {
            if !shared.transport.membership().is_up(peer) {
                continue;
            }
            let entries = shared.outbox.hints.take(peer);
            let mut left = entries.as_slice();
            while !left.is_empty() {
                let (batch, rest) = left.split_at(left.len().min(256));
                let answer = shared
                    .transport
                    .call(
                        peer,
                        PeerRequest::Replicate(batch.to_vec()),
                        shared.config.call_timeout,
                    )
                    .await;
                if !matches!(answer, Ok(PeerResponse::Applied(_))) {
                    tracing::debug!(peer, "hint hand-off interrupted; kept for later");
                    shared.outbox.hints.restore(peer, left.to_vec());
                    break;
                }
                shared
                    .counters
                    .hints_replayed
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                left = rest;
            }
            if left.is_empty() {
                tracing::info!(peer, hints = entries.len(), "hinted writes handed off");
            }
        }
    }
}

/// Keys examined per round of [`drop_foreign_keys`].
const FOREIGN_BATCH: usize = 1000;

/// After a ring change, drops the keys this peer no longer holds, once every replica of the
/// key has confirmed (by a replica read) a version at least as new as this peer's: a key
/// moves by being copied to its new replica (through that replica's sync of its ranges)
/// and only then leaves its old one. Returns how many keys were dropped.
pub(super) async fn drop_foreign_keys<S: Store>(shared: &Shared<S>) -> usize {
    if shared.placement.ring.is_full() {
        return 0;
    }
    let me = shared.transport.me();
    let foreign = shared
        .replica
        .log
        .keys_where(FOREIGN_BATCH, |k| !shared.placement.ring.holds(me, k));
    if foreign.is_empty() {
        return 0;
    }
    let membership = shared.transport.membership().clone();
    let mut asks: std::collections::BTreeMap<PeerId, Vec<usize>> = Default::default();
    let mut unconfirmed: Vec<usize> = Vec::with_capacity(foreign.len());
    for (i, (key, _)) in foreign.iter().enumerate() {
        let replicas = shared.placement.ring.replicas(key);
        if replicas.iter().any(|&p| !membership.is_up(p)) {
            unconfirmed.push(usize::MAX); // a replica is down: keep the key for now
            continue;
        }
        unconfirmed.push(replicas.len());
        for peer in replicas {
            asks.entry(peer).or_default().push(i);
        }
    }
    for (peer, indexes) in asks {
        let keys: Vec<Bytes> = indexes.iter().map(|&i| foreign[i].0.clone()).collect();
        let answer = shared
            .transport
            .call(
                peer,
                PeerRequest::ReadKeys(keys),
                shared.config.call_timeout,
            )
            .await;
        let Ok(PeerResponse::States(states)) = answer else {
            continue;
        };
        for (&i, state) in indexes.iter().zip(states) {
            if version_of(&state) >= foreign[i].1.version && unconfirmed[i] != usize::MAX {
                unconfirmed[i] -= 1;
            }
        }
    }
    let mut dropped = 0;
    for (i, (key, entry)) in foreign.into_iter().enumerate() {
        if unconfirmed[i] != 0 {
            continue;
        }
        let _guard = shared.stripe(&key).lock().await;
        // Only if nothing newer arrived meanwhile.
        if shared.replica.log.get(&key) != Some(entry) {
            continue;
        }
        if !entry.tombstone {
            if let Err(err) = shared
                .replica
                .store
                .delete(key.clone(), entry.version)
                .await
            {
                tracing::debug!(%err, "could not drop a moved key");
                continue;
            }
        }
        shared.replica.log.forget(&key, entry.mark);
        dropped += 1;
    }
    if dropped > 0 {
        tracing::info!(dropped, "dropped keys that moved to other peers");
        shared
            .counters
            .keys_moved_out
            .fetch_add(dropped as u64, Ordering::Relaxed);
    }
    dropped
}
