//! A cluster of real `memcord peer` processes on free loopback ports, sharing one generated
//! config.ini; peers can be killed, restarted and inspected, every wait bounded by a deadline.

use super::memcached::MemcachedProcess;
use super::peer::{PeerProcess, RawClient};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A free loopback port (bound, read and released; not handed out twice by this process).
pub fn free_port() -> u16 {
    memcord_check::cluster::free_port().expect("binding an ephemeral port")
}

/// How a test cluster is set up.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    /// Number of peers.
    pub peers: usize,
    /// `[cluster] consistency`.
    pub consistency: &'static str,
    /// Extra `key = value` lines for `[cluster]`.
    pub cluster_lines: Vec<String>,
    /// Use one real memcached per peer instead of the embedded store.
    pub memcached: bool,
}

impl ClusterSpec {
    /// Three peers in eventual mode with the embedded store, fast heartbeats.
    pub fn eventual() -> ClusterSpec {
        ClusterSpec {
            peers: 3,
            consistency: "eventual",
            cluster_lines: vec![
                "heartbeat_ms = 100".into(),
                "failure_timeout_ms = 1000".into(),
                "sync_interval_ms = 200".into(),
            ],
            memcached: false,
        }
    }

    /// Three peers in an ordered mode (`linearizable` or `sequential`) with the embedded store,
    /// fast heartbeats and elections.
    pub fn ordered(consistency: &'static str) -> ClusterSpec {
        ClusterSpec {
            peers: 3,
            consistency,
            cluster_lines: vec![
                "heartbeat_ms = 50".into(),
                "failure_timeout_ms = 400".into(),
                "quorum_timeout_ms = 2000".into(),
            ],
            memcached: false,
        }
    }

    /// Adds a `[cluster]` line.
    pub fn with(mut self, line: &str) -> ClusterSpec {
        self.cluster_lines.push(line.to_string());
        self
    }
}

/// The running cluster.
pub struct Cluster {
    /// Where the config lives.
    pub config_path: PathBuf,
    /// Client addresses by peer id.
    pub client_addrs: Vec<SocketAddr>,
    /// Peer-port addresses by peer id.
    pub peer_addrs: Vec<SocketAddr>,
    peers: Vec<Option<PeerProcess>>,
    /// Backing memcached processes (when the spec asks for them).
    pub backends: Vec<MemcachedProcess>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Writes the config and starts every peer; returns once every peer serves.
    pub fn start(spec: ClusterSpec) -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let backends: Vec<MemcachedProcess> = if spec.memcached {
            (0..spec.peers).map(|_| MemcachedProcess::start()).collect()
        } else {
            Vec::new()
        };
        let mut ini = String::from("[cluster]\n");
        ini += &format!("consistency = {}\nsecret = test-secret\n", spec.consistency);
        ini += &format!("data_dir = {}\n", dir.path().join("data").display());
        for line in &spec.cluster_lines {
            ini += line;
            ini.push('\n');
        }
        ini += &format!(
            "[kv]\ntype = {}\ntimeout_ms = 500\n",
            if spec.memcached {
                "memcached"
            } else {
                "memory"
            }
        );
        let mut client_addrs = Vec::new();
        let mut peer_addrs = Vec::new();
        for id in 0..spec.peers {
            let client: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
            let peer: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
            ini += &format!("[peer.{id}]\nclient_addr = {client}\npeer_addr = {peer}\n");
            if let Some(backend) = backends.get(id) {
                ini += &format!("kv_addr = {}\n", backend.addr());
            }
            client_addrs.push(client);
            peer_addrs.push(peer);
        }
        let config_path = dir.path().join("config.ini");
        std::fs::write(&config_path, ini).expect("writing config");
        let mut cluster = Cluster {
            config_path,
            client_addrs,
            peer_addrs,
            peers: (0..spec.peers).map(|_| None).collect(),
            backends,
            _dir: dir,
        };
        for id in 0..spec.peers {
            cluster.start_peer(id);
        }
        for id in 0..spec.peers {
            cluster.wait_serving(id, Duration::from_secs(20));
        }
        cluster
    }

    /// Starts (or restarts) peer `id` from the shared config.
    pub fn start_peer(&mut self, id: usize) {
        let config = self.config_path.to_str().unwrap().to_string();
        let port = self.client_addrs[id].port().to_string();
        let id_arg = id.to_string();
        let peer = PeerProcess::start(&["--config", &config, "--id", &id_arg, "--port", &port]);
        self.peers[id] = Some(peer);
    }

    /// SIGKILLs peer `id` and reaps it.
    pub fn kill(&mut self, id: usize) {
        if let Some(mut peer) = self.peers[id].take() {
            peer.signal(libc::SIGKILL);
            peer.wait(Duration::from_secs(10));
        }
    }

    /// Waits (up to `deadline`) for peer `id` to exit on its own; its status and log.
    pub fn wait_exit(
        &mut self,
        id: usize,
        deadline: Duration,
    ) -> (std::process::ExitStatus, String) {
        let mut peer = self.peers[id].take().expect("peer is running");
        let status = peer.wait(deadline);
        (status, peer.log())
    }

    /// The peer that reports itself leader, waiting up to `deadline` for one.
    pub fn leader(&self, deadline: Duration) -> usize {
        let until = Instant::now() + deadline;
        loop {
            for id in 0..self.peers.len() {
                if self.peers[id].is_none() {
                    continue;
                }
                let stats = self.cluster_stats(id);
                if stats
                    .iter()
                    .any(|(k, v)| k == "cluster_role" && v == "leader")
                {
                    return id;
                }
            }
            assert!(
                Instant::now() < until,
                "no leader within {deadline:?}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The running process of peer `id`.
    pub fn peer(&self, id: usize) -> &PeerProcess {
        self.peers[id].as_ref().expect("peer is running")
    }

    /// A raw client to peer `id`.
    pub fn client(&self, id: usize) -> RawClient {
        RawClient::connect(self.client_addrs[id])
    }

    /// `stats cluster` of peer `id`.
    pub fn cluster_stats(&self, id: usize) -> Vec<(String, String)> {
        self.client(id).stats("cluster")
    }

    /// Waits until peer `id` reports `cluster_state serving` and sees every other peer up (and,
    /// in the ordered modes, knows a leader).
    pub fn wait_serving(&self, id: usize, deadline: Duration) {
        let until = Instant::now() + deadline;
        loop {
            let stats = self.cluster_stats(id);
            let value = |name: &str| {
                stats
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            let others_up = (0..self.client_addrs.len())
                .filter(|&other| other != id)
                .all(|other| value(&format!("peer.{other}.status")) == "up");
            let leader_known = value("cluster_leader") != "none";
            if value("cluster_state") == "serving" && others_up && leader_known {
                return;
            }
            assert!(
                Instant::now() < until,
                "peer {id} not serving with all peers up within {deadline:?}: {stats:?}\nlog:\n{}",
                self.peers[id].as_ref().map(|p| p.log()).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The logs of every running peer, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for (id, peer) in self.peers.iter().enumerate() {
            if let Some(peer) = peer {
                out += &format!("----- peer {id} -----\n{}\n", peer.log());
            }
        }
        out
    }
}

/// Reads `key` through a raw client: `Some((flags, value))` or `None` on a miss.
pub fn get(client: &mut RawClient, key: &str) -> Option<Vec<u8>> {
    client.send(format!("get {key}\r\n").as_bytes());
    let reply = client.read_until(b"END\r\n");
    if reply == b"END\r\n" {
        return None;
    }
    let header_end = reply
        .windows(2)
        .position(|w| w == b"\r\n")
        .expect("VALUE line");
    let data = &reply[header_end + 2..reply.len() - b"\r\nEND\r\n".len()];
    Some(data.to_vec())
}

/// Waits until `check` holds, up to `deadline`; returns how long it took.
pub fn wait_for(deadline: Duration, mut check: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if check() {
            return Some(start.elapsed());
        }
        if start.elapsed() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
