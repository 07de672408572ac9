//! Membership and failure detection: who is up, as seen from this peer.
//!
//! A peer is **up** while it has a live authenticated link to us and its last heartbeat is
//! younger than the failure timeout; otherwise it is **down**. Changes are logged and announced
//! on a watch channel so modes can react (e.g. sync with a peer that just came back).

use super::message::{PeerId, PeerReport};
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// What this peer knows about one other peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStatus {
    /// The peer's id.
    pub id: PeerId,
    /// Its peer-port address as configured.
    pub addr: String,
    /// Whether it is up (linked and heard from within the failure timeout).
    pub up: bool,
    /// Milliseconds since its last heartbeat, if it was ever heard.
    pub last_heartbeat_ms: Option<u64>,
    /// What it said about itself in its last heartbeat.
    pub report: PeerReport,
}

impl PeerStatus {
    /// The `stats cluster` lines every mode shows for this peer (`peer.N.addr`, `.status`,
    /// `.last_heartbeat_ms`, `.serving`, `.role`, `.items`); modes append their own after them.
    pub fn stat_lines(&self) -> Vec<(String, String)> {
        let p = format!("peer.{}", self.id);
        vec![
            (format!("{p}.addr"), self.addr.clone()),
            (
                format!("{p}.status"),
                if self.up { "up" } else { "down" }.into(),
            ),
            (
                format!("{p}.last_heartbeat_ms"),
                self.last_heartbeat_ms
                    .map(|ms| ms.to_string())
                    .unwrap_or_else(|| "never".into()),
            ),
            (format!("{p}.serving"), self.report.serving.to_string()),
            (format!("{p}.role"), self.report.role.clone()),
            (format!("{p}.items"), self.report.items.to_string()),
        ]
    }
}

#[derive(Debug)]
struct PeerState {
    addr: String,
    linked: bool,
    last_heard: Option<Instant>,
    report: PeerReport,
    up: bool,
}

/// The membership table and failure detector.
#[derive(Debug)]
pub struct Membership {
    failure_timeout: Duration,
    peers: Mutex<BTreeMap<PeerId, PeerState>>,
    changes: watch::Sender<u64>,
}

impl Membership {
    /// A table of the other peers (id, peer address), all down until heard from.
    pub fn new(
        peers: impl IntoIterator<Item = (PeerId, String)>,
        failure_timeout: Duration,
    ) -> Self {
        let peers = peers
            .into_iter()
            .map(|(id, addr)| {
                (
                    id,
                    PeerState {
                        addr,
                        linked: false,
                        last_heard: None,
                        report: PeerReport::default(),
                        up: false,
                    },
                )
            })
            .collect();
        Membership {
            failure_timeout,
            peers: Mutex::new(peers),
            changes: watch::channel(0).0,
        }
    }

    /// A receiver that changes whenever some peer goes up or down.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Records an authenticated link to `peer` (counts as hearing from it).
    pub fn link_up(&self, peer: PeerId) {
        self.update(peer, |state| {
            state.linked = true;
            state.last_heard = Some(Instant::now());
        });
    }

    /// Records that the link to `peer` closed: it is down at once.
    pub fn link_down(&self, peer: PeerId) {
        self.update(peer, |state| state.linked = false);
    }

    /// Records a heartbeat from `peer`.
    pub fn heard(&self, peer: PeerId, report: PeerReport) {
        self.update(peer, |state| {
            state.last_heard = Some(Instant::now());
            state.report = report;
        });
    }

    /// Re-evaluates timeouts (called on every heartbeat tick).
    pub fn tick(&self) {
        let ids: Vec<PeerId> = self.peers.lock().keys().copied().collect();
        for id in ids {
            self.update(id, |_| {});
        }
    }

    /// Whether `peer` is up.
    pub fn is_up(&self, peer: PeerId) -> bool {
        self.peers.lock().get(&peer).is_some_and(|s| s.up)
    }

    /// The ids of the peers that are up.
    pub fn up_peers(&self) -> Vec<PeerId> {
        self.peers
            .lock()
            .iter()
            .filter(|(_, s)| s.up)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Every other peer's status, by id.
    pub fn statuses(&self) -> Vec<PeerStatus> {
        let now = Instant::now();
        self.peers
            .lock()
            .iter()
            .map(|(id, s)| PeerStatus {
                id: *id,
                addr: s.addr.clone(),
                up: s.up,
                last_heartbeat_ms: s
                    .last_heard
                    .map(|t| now.saturating_duration_since(t).as_millis() as u64),
                report: s.report.clone(),
            })
            .collect()
    }

    fn update(&self, peer: PeerId, change: impl FnOnce(&mut PeerState)) {
        let mut peers = self.peers.lock();
        let Some(state) = peers.get_mut(&peer) else {
            return;
        };
        change(state);
        let fresh = state
            .last_heard
            .is_some_and(|t| t.elapsed() < self.failure_timeout);
        let up = state.linked && fresh;
        if up != state.up {
            state.up = up;
            drop(peers);
            if up {
                tracing::info!(peer, "peer is up");
            } else {
                tracing::warn!(peer, "peer is down");
            }
            self.changes.send_modify(|n| *n += 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_is_up_only_while_linked_and_heard_recently() {
        let m = Membership::new([(1, "a".to_string())], Duration::from_millis(50));
        let mut changes = m.subscribe();
        assert!(!m.is_up(1));
        m.link_up(1);
        assert!(m.is_up(1));
        assert!(changes.has_changed().unwrap());
        changes.mark_unchanged();
        m.heard(1, PeerReport::default());
        assert!(!changes.has_changed().unwrap());
        m.link_down(1);
        assert!(!m.is_up(1));
        m.link_up(1);
        assert!(m.is_up(1));
        let deadline = Instant::now() + Duration::from_secs(5);
        while m.is_up(1) {
            assert!(Instant::now() < deadline, "peer never timed out");
            std::thread::sleep(Duration::from_millis(10));
            m.tick();
        }
        assert_eq!(m.up_peers(), Vec::<PeerId>::new());
        let status = &m.statuses()[0];
        assert!(!status.up && status.last_heartbeat_ms.unwrap() >= 50);
    }

    #[test]
    fn unknown_peers_are_ignored() {
        let m = Membership::new([(1, "a".to_string())], Duration::from_secs(1));
        m.link_up(7);
        assert!(!m.is_up(7));
        assert_eq!(m.statuses().len(), 1);
    }
}
