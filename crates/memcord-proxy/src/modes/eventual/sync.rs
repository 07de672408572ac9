//! Anti-entropy: the periodic sync with every live peer, catching up before serving, and the
//! `stats cluster` view.

use super::{PeerState, Shared, Watermark};
use crate::clock::{unix_ms, Timestamp};
use crate::cluster::{PeerId, PeerRequest, PeerResponse};
use crate::store::Store;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Pulls everything `peer` logged since our mark for it, page by page, merging each entry;
/// the mark advances only when the last page ("complete") has been applied.
pub(super) async fn sync_with<S: Store>(
    shared: &Shared<S>,
    peer: PeerId,
    progress: bool,
) -> Result<usize, String> {
    let mut since = shared
        .watermarks
        .lock()
        .get(&peer)
        .map(|w| w.mark)
        .unwrap_or(Timestamp::ZERO);
    let started = Instant::now();
    let mut last_report = Instant::now();
    let mut applied = 0usize;
    let mut received = 0usize;
    loop {
        // With partial replication, ask only for the ranges this peer holds.
        let request = if shared.placement.ring.is_full() {
            PeerRequest::SyncSince {
                since,
                max_entries: shared.config.page_size as u32,
            }
        } else {
            PeerRequest::SyncRanges {
                since,
                max_entries: shared.config.page_size as u32,
                ring: shared.placement.ring.spec().clone(),
            }
        };
        let answer = shared
            .transport
            .call(peer, request, shared.config.call_timeout)
            .await
            .map_err(|e| e.to_string())?;
        let (entries, next, complete) = match answer {
            PeerResponse::SyncPage {
                entries,
                next,
                complete,
            } => (entries, next, complete),
            PeerResponse::Error(reason) => return Err(reason),
            _ => return Err("unexpected answer to a sync request".into()),
        };
        received += entries.len();
        for entry in entries {
            if shared.merge(entry).await.map_err(|e| e.to_string())? {
                applied += 1;
            }
        }
        since = next;
        if progress && last_report.elapsed() >= Duration::from_secs(1) {
            tracing::info!(peer, received, "catching up: copying items");
            last_report = Instant::now();
        }
        if complete {
            break;
        }
        if shared.state() == PeerState::Failed {
            return Err("peer failed during sync".into());
        }
    }
    shared.watermarks.lock().insert(
        peer,
        Watermark {
            mark: since,
            synced_at: Instant::now(),
        },
    );
    shared
        .counters
        .syncs_completed
        .fetch_add(1, Ordering::Relaxed);
    if progress {
        let secs = started.elapsed().as_secs_f64().max(1e-6);
        tracing::info!(
            peer,
            received,
            applied,
            rate = (received as f64 / secs) as u64,
            "caught up (items/s)"
        );
    }
    Ok(applied)
}

/// Logs what a starting peer's store already holds (a memcached backend that outlived the
/// peer's process, or a store kept across a restart in process), so those items take part in
/// last-writer-wins and in the sync of the ranges this peer holds (after a ring change, the
/// keys that moved to a new peer are copied from here).
async fn index_store<S: Store>(shared: &Shared<S>) {
    if shared.replica.store.stats().await.curr_items == 0 {
        return;
    }
    match shared.replica.store.dump().await {
        Ok(items) => {
            let count = items.len();
            for (key, item) in items {
                shared.replica.clock.observe(item.version);
                shared.replica.log.record(key, item.version, false);
            }
            tracing::info!(items = count, "logged the items the store already held");
        }
        Err(err) => tracing::warn!(%err, "could not list the store's items at start"),
    }
}

/// Brings a starting (or recovering) peer up to date before it serves clients.
///
/// It waits up to the join window for a live peer that serves, then copies from it. When every
/// configured peer is reachable and none serves, the cluster is starting fresh and everyone
/// serves at once; when no serving peer shows up in the window, this peer serves alone.
pub(super) async fn catch_up<S: Store>(shared: Arc<Shared<S>>, starting: bool) {
    shared.set_state(PeerState::CatchingUp);
    if starting {
        index_store(&shared).await;
    }
    if !starting {
        let away = shared
            .status
            .failed_at
            .lock()
            .take()
            .map(|t| t.elapsed())
            .unwrap_or_default();
        if away >= shared.config.tombstone_ttl {
            // Deletes older than the tombstone horizon may be gone from the others' logs:
            // start over from a full copy rather than keep keys the cluster deleted.
            tracing::warn!(
                "away longer than the tombstone ttl: dropping local data for a full copy"
            );
            if let Err(err) = shared
                .replica
                .store
                .flush_all(shared.replica.clock.now())
                .await
            {
                tracing::error!(%err, "could not clear the local store");
            }
            shared.watermarks.lock().clear();
        }
    }
    let membership = shared.transport.membership().clone();
    let mut changes = membership.subscribe();
    let deadline = tokio::time::Instant::now() + shared.config.join_window;
    let total_peers = membership.statuses().len();
    loop {
        if shared.state() == PeerState::Failed {
            return;
        }
        let statuses = membership.statuses();
        let up: Vec<_> = statuses.iter().filter(|s| s.up).collect();
        let heard_all =
            up.len() == total_peers && up.iter().all(|s| s.report.clock != Timestamp::ZERO);
        if let Some(source) = up.iter().find(|s| s.report.serving) {
            if starting && source.report.items > 0 {
                tracing::info!(
                    peer = source.id,
                    items = source.report.items,
                    "copying state from a live peer before serving"
                );
            }
            match sync_with(&shared, source.id, true).await {
                Ok(_) => break,
                Err(err) => {
                    tracing::warn!(peer = source.id, %err, "catch-up sync failed; retrying")
                }
            }
        } else if heard_all || total_peers == 0 {
            tracing::info!("every peer is reachable and none serves yet: the cluster starts fresh");
            break;
        } else if tokio::time::Instant::now() >= deadline {
            if starting {
                tracing::warn!("no serving peer reachable within the join window: serving alone");
            }
            break;
        }
        tokio::select! {
            _ = changes.changed() => {}
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }
    // Quick incremental pass over the other live peers so writes they took while we were away
    // are in before the first client read.
    for peer in membership.up_peers() {
        if let Err(err) = sync_with(&shared, peer, false).await {
            tracing::debug!(peer, %err, "post-catch-up sync failed; the periodic sync retries");
        }
    }
    if shared.state() == PeerState::CatchingUp {
        shared.set_state(PeerState::Serving);
        tracing::info!("serving clients");
    }
}

/// The anti-entropy loop: every sync interval, sync with each live peer; also housekeeping.
pub(super) async fn periodic<S: Store>(shared: Arc<Shared<S>>) {
    let mut tick = tokio::time::interval(shared.config.sync_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if Arc::strong_count(&shared) == 1 {
            return; // the coordinator is gone
        }
        shared.status.items.store(
            shared.replica.store.stats().await.curr_items,
            Ordering::Relaxed,
        );
        if shared.state() != PeerState::Serving {
            continue;
        }
        for peer in shared.transport.membership().up_peers() {
            if let Err(err) = sync_with(&shared, peer, false).await {
                tracing::debug!(peer, %err, "sync failed; retrying next interval");
            }
        }
        let horizon = unix_ms().saturating_sub(shared.config.tombstone_ttl.as_millis() as u64);
        shared.replica.log.prune_tombstones(horizon);
        super::handoff::drop_foreign_keys(&shared).await;
    }
}

/// `stats cluster`: this peer's state and what it knows of every other peer.
pub(super) fn cluster_stats<S: Store>(shared: &Shared<S>) -> Vec<(String, String)> {
    let me = shared.transport.me();
    let c = &shared.counters;
    let count = |name: &str, counter: &std::sync::atomic::AtomicU64| {
        (
            format!("cluster_{name}"),
            counter.load(Ordering::Relaxed).to_string(),
        )
    };
    let mut lines: Vec<(String, String)> = vec![
        ("cluster_mode".into(), "eventual".into()),
        ("cluster_peer_id".into(), me.to_string()),
        ("cluster_state".into(), shared.state().name().into()),
        (
            "cluster_clock".into(),
            shared.replica.clock.peek().to_string(),
        ),
        (
            "cluster_log_keys".into(),
            shared.replica.log.len().to_string(),
        ),
        count("pushes_sent", &c.pushes_sent),
        count("pushes_dropped", &c.pushes_dropped),
        count("pushes_refused", &c.pushes_refused),
        count("entries_applied", &c.entries_applied),
        count("entries_stale", &c.entries_stale),
        count("syncs_completed", &c.syncs_completed),
    ];
    let ring = &shared.placement.ring;
    lines.extend([
        (
            "cluster_replication_factor".into(),
            ring.replication().to_string(),
        ),
        ("cluster_vnodes".into(), ring.spec().vnodes.to_string()),
        (
            "cluster_read_consistency".into(),
            shared.config.read_level.name().into(),
        ),
        (
            "cluster_write_consistency".into(),
            shared.config.write_level.name().into(),
        ),
        count("forwarded", &c.forwarded),
        count("level_failures", &c.level_failures),
        count("read_repairs", &c.read_repairs),
        (
            "cluster_hints_pending".into(),
            shared.outbox.hints.len().to_string(),
        ),
        count("hints_stored", &c.hints_stored),
        count("hints_dropped", &c.hints_dropped),
        count("hints_replayed", &c.hints_replayed),
        count("keys_moved_out", &c.keys_moved_out),
    ]);
    lines.extend(peer_lines(shared, me));
    lines
}

/// The `peer.N.*` lines: this peer's own, then each other peer's status and sync lag.
fn peer_lines<S: Store>(shared: &Shared<S>, me: PeerId) -> Vec<(String, String)> {
    let prefix = format!("peer.{me}");
    let mut lines = vec![
        (format!("{prefix}.status"), "self".into()),
        (
            format!("{prefix}.serving"),
            (shared.state() == PeerState::Serving).to_string(),
        ),
        (
            format!("{prefix}.items"),
            shared.status.items.load(Ordering::Relaxed).to_string(),
        ),
    ];
    let watermarks = shared.watermarks.lock().clone();
    for status in shared.transport.membership().statuses() {
        let p = format!("peer.{}", status.id);
        lines.extend(status.stat_lines());
        lines.push((
            format!("{p}.sync_lag_ms"),
            watermarks
                .get(&status.id)
                .map(|w| w.synced_at.elapsed().as_millis().to_string())
                .unwrap_or_else(|| "never".into()),
        ));
    }
    lines
}
