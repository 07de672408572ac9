//! Which memcached process the pool talks to, so that a backend that restarted (and so lost
//! every item) is noticed before a single request reaches it.
//!
//! A replica's store must not forget writes behind its peer's back: the ordered queue's state
//! machine and the eventual mode's log both assume the store still holds what they applied. A
//! memcached that restarts comes back empty on the same port, and the pool would reconnect to
//! it as if nothing happened. So, when [`MemcachedConfig::pin_instance`] is set, every new
//! connection first asks the backend `stats` and compares its process identity (`pid` and its
//! start time, `time - uptime`, which memcached derives from one fixed `process_started`) with
//! the identity the first connection saw. A different process is never admitted: the pool
//! stops, every request fails with [`StoreError::Replaced`], and [`InstanceGuard::replaced`]
//! fires so that the peer can stop (fail-stop) and be restarted, which rebuilds its store from
//! scratch (the ordered queue's snapshot and log, or a state transfer from a live peer).
//!
//! [`MemcachedConfig::pin_instance`]: super::MemcachedConfig::pin_instance
//! [`StoreError::Replaced`]: crate::store::StoreError::Replaced

use crate::protocol::{parse_response, Response, ResponseOutcome};
use bytes::BytesMut;
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Largest `stats` reply read while identifying a backend (memcached's is about 4 KiB).
const MAX_STATS_REPLY: usize = 64 * 1024;

/// One memcached process: its pid and the unix second it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    /// The backend's `pid`.
    pub pid: u64,
    /// `time - uptime`: constant for the life of one memcached process.
    pub started: i64,
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid {} started at {}", self.pid, self.started)
    }
}

/// The identity every connection of one store must match.
#[derive(Default)]
pub struct InstanceGuard {
    pinned: Mutex<Option<Identity>>,
    replaced: CancellationToken,
}

impl InstanceGuard {
    /// Whether a connection to `seen` may serve: the first identity seen is pinned, later ones
    /// must equal it. A mismatch marks the backend replaced for good.
    pub fn admit(&self, seen: Identity) -> bool {
        let mut pinned = self.pinned.lock();
        if self.replaced.is_cancelled() {
            return false;
        }
        match *pinned {
            None => {
                *pinned = Some(seen);
                true
            }
            Some(first) if first == seen => true,
            Some(first) => {
                tracing::error!(
                    pinned = %first, now = %seen,
                    "backing memcached restarted: it lost every item this store held"
                );
                self.replaced.cancel();
                false
            }
        }
    }

    /// Whether a different backend process was seen.
    pub fn is_replaced(&self) -> bool {
        self.replaced.is_cancelled()
    }

    /// Fires once a different backend process is seen.
    pub fn replaced(&self) -> CancellationToken {
        self.replaced.clone()
    }
}

/// Asks the backend on `stream` for its identity (`stats`), before the connection carries
/// anything else.
pub async fn identify(stream: &mut TcpStream, deadline: Instant) -> Result<Identity, String> {
    tokio::time::timeout_at(deadline, ask_stats(stream))
        .await
        .map_err(|_| "backend did not answer `stats` in time".to_string())?
}

async fn ask_stats(stream: &mut TcpStream) -> Result<Identity, String> {
    stream
        .write_all(b"stats\r\n")
        .await
        .map_err(|e| e.to_string())?;
    let limits = super::connection::backend_limits();
    let mut buf = BytesMut::with_capacity(8 * 1024);
    loop {
        match parse_response(&buf, &limits) {
            ResponseOutcome::Response {
                response: Response::Stats(stats),
                ..
            } => return identity_of(&stats),
            ResponseOutcome::Response { response, .. } => {
                return Err(format!("unexpected reply to `stats`: {response:?}"))
            }
            ResponseOutcome::Incomplete => {}
            ResponseOutcome::Invalid(reason) => return Err(reason.to_string()),
        }
        if buf.len() >= MAX_STATS_REPLY {
            return Err("`stats` reply too long".into());
        }
        if stream.read_buf(&mut buf).await.map_err(|e| e.to_string())? == 0 {
            return Err("backend closed the connection during `stats`".into());
        }
    }
}

/// The identity in a `stats` reply.
fn identity_of(stats: &[(String, String)]) -> Result<Identity, String> {
    let field = |name: &str| -> Result<i64, String> {
        stats
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.trim().parse().ok())
            .ok_or_else(|| format!("`stats` has no numeric `{name}`"))
    };
    Ok(Identity {
        pid: field("pid")? as u64,
        started: field("time")? - field("uptime")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(pid: &str, time: &str, uptime: &str) -> Vec<(String, String)> {
        vec![
            ("pid".into(), pid.into()),
            ("uptime".into(), uptime.into()),
            ("time".into(), time.into()),
            ("version".into(), "1.6.18".into()),
        ]
    }

    #[test]
    fn identity_is_pid_and_start_time() {
        let id = identity_of(&stats("42", "1000", "10")).unwrap();
        assert_eq!(
            id,
            Identity {
                pid: 42,
                started: 990
            }
        );
        // Later `stats` of the same process: same identity.
        assert_eq!(identity_of(&stats("42", "1005", "15")).unwrap(), id);
        assert!(identity_of(&stats("x", "1", "1")).is_err());
        assert!(identity_of(&[]).is_err());
    }

    #[test]
    fn the_first_identity_is_pinned_and_a_different_one_replaces_for_good() {
        let guard = InstanceGuard::default();
        let a = Identity { pid: 1, started: 5 };
        let b = Identity { pid: 2, started: 9 };
        assert!(guard.admit(a));
        assert!(guard.admit(a));
        assert!(!guard.is_replaced());
        assert!(!guard.admit(b));
        assert!(guard.is_replaced());
        assert!(guard.replaced().is_cancelled());
        // Even the old identity is not admitted once replaced: the store is gone.
        assert!(!guard.admit(a));
        assert!(guard.is_replaced());
    }
}
