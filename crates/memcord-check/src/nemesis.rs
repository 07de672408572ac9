//! Fault injection, seeded: one fault at a time (so a majority always stays up), each held
//! for a bounded time and undone before the next, at most [`MAX_FAULTS`] per run, and whatever
//! is active undone by [`Nemesis::heal_all`] at the end.
//!
//! | kind | inject | heal |
//! | --- | --- | --- |
//! | `kill` | SIGKILL a peer process | restart it on its data folder |
//! | `stop` | SIGSTOP a peer | SIGCONT |
//! | `partition` | `fail` to the peer's client port (cut off from the others) | `recover` |
//! | `backend` | SIGKILL the peer's memcached | restart it (empty) on its port |
//!
//! The schedule (gaps, kinds, targets, hold times) comes from the seed alone; what the
//! cluster does in between (who leads, how fast it recovers) does not. Each step is printed to
//! stderr with its time since the run's start.

use super::cluster::LocalCluster;
use super::conn;
use memcord_protocol::{Request, Response};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Most faults injected in one run.
pub const MAX_FAULTS: usize = 50;
/// Admin command deadline.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a peer gets to stop after its memcached came back empty.
const FAIL_STOP_WAIT: Duration = Duration::from_secs(10);

/// A kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    /// SIGKILL a peer, restart it later.
    Kill,
    /// SIGSTOP a peer, SIGCONT it later.
    Stop,
    /// `fail` a peer (cut off), `recover` it later.
    Partition,
    /// SIGKILL a peer's memcached, restart it later.
    Backend,
}

impl FaultKind {
    /// Every kind, in summary order.
    pub const ALL: [FaultKind; 4] = [
        FaultKind::Kill,
        FaultKind::Stop,
        FaultKind::Partition,
        FaultKind::Backend,
    ];

    /// The kind's name (as in `--faults`).
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::Stop => "stop",
            FaultKind::Partition => "partition",
            FaultKind::Backend => "backend",
        }
    }
}

/// Parses `--faults`: `none`, or a comma list of `kill`, `stop`, `partition`, `backend`,
/// `mix` (every kind the cluster allows: `backend` only with memcached backends, only
/// `partition` when attached).
pub fn parse_faults(text: &str, local: bool, backends: bool) -> Result<Vec<FaultKind>, String> {
    let mut kinds = Vec::new();
    for word in text.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        let add: Vec<FaultKind> = match word {
            "none" => Vec::new(),
            "mix" if !local => vec![FaultKind::Partition],
            "mix" => FaultKind::ALL
                .into_iter()
                .filter(|k| *k != FaultKind::Backend || backends)
                .collect(),
            other => match FaultKind::ALL.into_iter().find(|k| k.name() == other) {
                Some(kind) => vec![kind],
                None => {
                    return Err(format!(
                        "unknown fault '{other}' (expected none, kill, stop, partition, \
                         backend or mix)"
                    ))
                }
            },
        };
        kinds.extend(add);
    }
    kinds.sort();
    kinds.dedup();
    for kind in &kinds {
        match kind {
            FaultKind::Kill | FaultKind::Stop | FaultKind::Backend if !local => {
                return Err(format!(
                    "fault '{}' needs a cluster started by `memcord check`; attached to a \
                     running cluster only `partition` (fail/recover) is possible",
                    kind.name()
                ))
            }
            FaultKind::Backend if !backends => {
                return Err("fault 'backend' needs --backend memcached".into())
            }
            _ => {}
        }
    }
    Ok(kinds)
}

/// Hold times and gaps of the schedule.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Quiet time between faults (min, max).
    pub gap: (Duration, Duration),
    /// How long a fault is held (min, max).
    pub hold: (Duration, Duration),
}

/// One injected fault, for the summary.
#[derive(Debug, Clone)]
pub struct FaultRecord {
    /// Which kind.
    pub kind: FaultKind,
    /// Which peer.
    pub peer: usize,
    /// When it was injected, since the run's start.
    pub injected: Duration,
    /// When it was healed, since the run's start (`None`: healing failed).
    pub healed: Option<Duration>,
}

/// The fault injector of one run.
pub struct Nemesis {
    kinds: Vec<FaultKind>,
    rng: StdRng,
    addrs: Vec<SocketAddr>,
    local: Option<Arc<Mutex<LocalCluster>>>,
    timing: Timing,
    base: Instant,
    active: Option<(FaultKind, usize)>,
    /// Every fault injected so far.
    pub records: Vec<FaultRecord>,
}

fn lock(cluster: &Mutex<LocalCluster>) -> std::sync::MutexGuard<'_, LocalCluster> {
    cluster.lock().unwrap_or_else(|e| e.into_inner())
}

impl Nemesis {
    /// A nemesis over `addrs` (the peers' client addresses); `local` when the checker started
    /// the cluster.
    pub fn new(
        kinds: Vec<FaultKind>,
        seed: u64,
        addrs: Vec<SocketAddr>,
        local: Option<Arc<Mutex<LocalCluster>>>,
        timing: Timing,
        base: Instant,
    ) -> Nemesis {
        Nemesis {
            kinds,
            rng: StdRng::seed_from_u64(seed ^ 0x6e65_6d65_7369_7321),
            addrs,
            local,
            timing,
            base,
            active: None,
            records: Vec::new(),
        }
    }

    /// Faults injected per kind.
    pub fn counts(&self) -> BTreeMap<FaultKind, usize> {
        let mut counts = BTreeMap::new();
        for record in &self.records {
            *counts.entry(record.kind).or_insert(0) += 1;
        }
        counts
    }

    fn say(&self, text: &str) {
        eprintln!(
            "[{:>7.3}s] nemesis: {text}",
            self.base.elapsed().as_secs_f64()
        );
    }

    fn pick(&mut self, range: (Duration, Duration)) -> Duration {
        if range.1 <= range.0 {
            return range.0;
        }
        let ms = self
            .rng
            .random_range(range.0.as_millis() as u64..=range.1.as_millis() as u64);
        Duration::from_millis(ms)
    }

    /// Injects faults until `until` (or `stop`): gap, fault, hold, heal, and again. Whatever
    /// is active when it returns early is left to [`Nemesis::heal_all`].
    pub async fn run(&mut self, until: Instant, stop: CancellationToken) {
        if self.kinds.is_empty() || self.addrs.is_empty() {
            return;
        }
        while self.records.len() < MAX_FAULTS {
            let gap = self.pick(self.timing.gap);
            let kind = self.kinds[self.rng.random_range(0..self.kinds.len())];
            let peer = self.rng.random_range(0..self.addrs.len());
            let hold = self.pick(self.timing.hold);
            let start = Instant::now() + gap;
            // A fault must be held and healed before the workload ends.
            if start + hold >= until {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(start) => {}
                _ = stop.cancelled() => return,
            }
            self.inject(kind, peer).await;
            tokio::select! {
                _ = tokio::time::sleep(hold) => {}
                _ = stop.cancelled() => return,
            }
            self.heal().await;
        }
    }

    async fn inject(&mut self, kind: FaultKind, peer: usize) {
        let injected = self.base.elapsed();
        match kind {
            FaultKind::Kill => {
                if let Some(local) = &self.local {
                    lock(local).kill_peer(peer);
                }
                self.say(&format!("kill peer {peer} (SIGKILL)"));
            }
            FaultKind::Stop => {
                if let Some(local) = &self.local {
                    lock(local).pause_peer(peer, true);
                }
                self.say(&format!("stop peer {peer} (SIGSTOP)"));
            }
            FaultKind::Partition => {
                let answer = self.admin(peer, Request::Fail).await;
                self.say(&format!("partition peer {peer} (fail: {answer})"));
            }
            FaultKind::Backend => {
                if let Some(local) = &self.local {
                    lock(local).kill_backend(peer);
                }
                self.say(&format!("kill peer {peer}'s memcached (SIGKILL)"));
            }
        }
        self.active = Some((kind, peer));
        self.records.push(FaultRecord {
            kind,
            peer,
            injected,
            healed: None,
        });
    }

    async fn admin(&self, peer: usize, request: Request) -> String {
        match conn::once(self.addrs[peer], &request, ADMIN_TIMEOUT).await {
            Ok(Response::Ok) => "OK".into(),
            Ok(other) => format!("{other:?}"),
            Err(err) => err,
        }
    }

    /// Undoes the active fault, if any.
    pub async fn heal(&mut self) {
        let Some((kind, peer)) = self.active.take() else {
            return;
        };
        let outcome = match kind {
            FaultKind::Kill => match &self.local {
                Some(local) => lock(local)
                    .start_peer(peer)
                    .map(|()| format!("restart peer {peer}"))
                    .map_err(|e| format!("restarting peer {peer} failed: {e}")),
                None => Ok(String::new()),
            },
            FaultKind::Stop => {
                if let Some(local) = &self.local {
                    lock(local).pause_peer(peer, false);
                }
                Ok(format!("continue peer {peer} (SIGCONT)"))
            }
            FaultKind::Partition => {
                let answer = self.admin(peer, Request::Recover).await;
                if answer == "OK" {
                    Ok(format!("heal peer {peer} (recover: OK)"))
                } else {
                    Err(format!("recover peer {peer} failed: {answer}"))
                }
            }
            FaultKind::Backend => match &self.local {
                Some(local) => {
                    let started = lock(local).start_backend(peer);
                    match started {
                        Ok(()) => {
                            let addr = lock(local).backend_addr(peer);
                            if let Some(addr) = addr {
                                wait_accepting(addr, Duration::from_secs(10)).await;
                            }
                            supervise_fail_stop(local, peer).await
                        }
                        Err(e) => Err(format!("restarting peer {peer}'s memcached failed: {e}")),
                    }
                }
                None => Ok(String::new()),
            },
        };
        match outcome {
            Ok(text) => {
                if let Some(record) = self.records.last_mut() {
                    record.healed = Some(self.base.elapsed());
                }
                self.say(&text);
            }
            Err(text) => self.say(&text),
        }
    }

    /// Undoes whatever is still active and, when attached, sends `recover` to every peer
    /// (in case a previous run left one cut off).
    pub async fn heal_all(&mut self) {
        self.heal().await;
        if self.local.is_none() && self.kinds.contains(&FaultKind::Partition) {
            for peer in 0..self.addrs.len() {
                let _ = self.admin(peer, Request::Recover).await;
            }
        }
    }
}

/// What a supervisor (systemd, a container's restart policy) does after a peer's memcached
/// restarted empty: the replica notices the new backend process and stops (fail-stop), and is
/// started again, which rebuilds its store. Waits (bounded) for the stop; a peer that keeps
/// serving from the emptied backend is reported.
async fn supervise_fail_stop(
    local: &Arc<Mutex<LocalCluster>>,
    peer: usize,
) -> Result<String, String> {
    let until = Instant::now() + FAIL_STOP_WAIT;
    // Bounded by the deadline.
    while Instant::now() < until {
        let exited = lock(local).reap_exited(peer);
        if let Some(status) = exited {
            let restarted = lock(local).start_peer(peer);
            return match restarted {
                Ok(()) => Ok(format!(
                    "restart peer {peer}'s memcached (empty); peer {peer} stopped ({status}) \
                     and was restarted"
                )),
                Err(e) => Err(format!("restarting peer {peer} after its stop failed: {e}")),
            };
        }
        if !lock(local).is_running(peer) {
            // Killed by an earlier fault and not restarted: nothing to supervise.
            return Ok(format!("restart peer {peer}'s memcached (empty)"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(format!(
        "peer {peer} kept running for {FAIL_STOP_WAIT:?} on an emptied memcached"
    ))
}

/// Waits until `addr` accepts a TCP connection, up to `deadline`.
pub async fn wait_accepting(addr: SocketAddr, deadline: Duration) -> bool {
    let until = Instant::now() + deadline;
    // Bounded by the deadline.
    while Instant::now() < until {
        if let Ok(Ok(_)) = tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_lists_parse_and_refuse_what_the_cluster_cannot_do() {
        use FaultKind::*;
        assert_eq!(parse_faults("none", true, false), Ok(vec![]));
        assert_eq!(
            parse_faults("mix", true, false),
            Ok(vec![Kill, Stop, Partition])
        );
        assert_eq!(
            parse_faults("mix", true, true),
            Ok(vec![Kill, Stop, Partition, Backend])
        );
        assert_eq!(
            parse_faults("stop,kill,stop", true, false),
            Ok(vec![Kill, Stop])
        );
        assert_eq!(parse_faults("mix", false, false), Ok(vec![Partition]));
        assert!(parse_faults("kill", false, false)
            .unwrap_err()
            .contains("only `partition`"));
        assert!(parse_faults("backend", true, false)
            .unwrap_err()
            .contains("--backend memcached"));
        assert!(parse_faults("flood", true, false)
            .unwrap_err()
            .contains("unknown fault 'flood'"));
    }
}
