//! The cluster under test: either started here as child processes (`memcord peer --config
//! <generated ini> --id N`, optionally in front of one `memcached` child each), in a temporary
//! folder, on free loopback ports; or an existing cluster the checker is attached to by its
//! peers' client addresses (then only `fail`/`recover` faults are possible).
//!
//! Every child is killed and reaped when the [`LocalCluster`] is dropped, and every wait is
//! bounded by a deadline.

use super::conn::{stat, stats_once};
use std::collections::HashSet;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// The environment variable that turns on the test-only unsafe linearizable reads in the
/// peers (read by `memcord-faulty` only, through memcord-proxy's `faults`, which `check` does
/// not import: it stays a black box).
pub const UNSAFE_LOCAL_READS_ENV: &str = "MEMCORD_UNSAFE_LOCAL_READS";

/// The lowest port [`free_port`] picks.
const LOWEST_PORT: u16 = 10_000;

/// A free loopback port (probed by binding it; never handed out twice by this process).
///
/// Ports come from below the kernel's ephemeral range (`ip_local_port_range`). A port the
/// kernel handed out for a bind to port 0 is in that range, and between releasing it here and
/// a server binding it, an outgoing connection (a peer dialing another, a client) may take it
/// as its local port: the server then fails with `EADDRINUSE`. `scripts/lib-bench.sh` picks
/// ports the same way, after a CI run lost a benchmark peer to that race.
pub fn free_port() -> std::io::Result<u16> {
    static TAKEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let below = ephemeral_low();
    let mut rng = rand::rng();
    for _ in 0..1000 {
        let port = rand::Rng::random_range(&mut rng, LOWEST_PORT..below);
        let mut taken = TAKEN.lock().unwrap_or_else(|e| e.into_inner());
        let taken = taken.get_or_insert_with(HashSet::new);
        if taken.contains(&port) || TcpListener::bind(("127.0.0.1", port)).is_err() {
            continue;
        }
        taken.insert(port);
        return Ok(port);
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AddrInUse,
        format!("no free loopback port in {LOWEST_PORT}..{below} after 1000 tries"),
    ))
}

/// The first port of the kernel's ephemeral range (32768 when it cannot be read, or when it
/// leaves too few ports below it).
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .filter(|&low| low > LOWEST_PORT + 2_000)
        .unwrap_or(32_768)
}

/// Which store the local peers use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded store.
    Memory,
    /// One `memcached` child per peer.
    Memcached,
}

/// What local cluster to start.
#[derive(Debug, Clone)]
pub struct LocalSpec {
    /// `linearizable`, `sequential` or `eventual`.
    pub mode: String,
    /// Number of peers.
    pub peers: usize,
    /// The peers' store.
    pub backend: Backend,
    /// The `memcord` binary.
    pub memcord_bin: PathBuf,
    /// The `memcached` binary (for [`Backend::Memcached`]).
    pub memcached_bin: PathBuf,
    /// Quorum timeout of the ordered modes, in milliseconds.
    pub quorum_timeout_ms: u64,
    /// Start the peers with the test-only unsafe linearizable reads.
    pub unsafe_local_reads: bool,
}

/// Why the cluster could not be started or reached.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// A process could not be spawned or a file written.
    #[error("{0}")]
    Io(String),
    /// The cluster did not come up within its deadline.
    #[error("{0}")]
    NotReady(String),
}

/// A cluster of child processes started by the checker.
pub struct LocalCluster {
    spec: LocalSpec,
    dir: tempfile::TempDir,
    config_path: PathBuf,
    /// Client addresses by peer id.
    pub client_addrs: Vec<SocketAddr>,
    peers: Vec<Option<Child>>,
    backend_ports: Vec<u16>,
    backends: Vec<Option<Child>>,
    stopped: Vec<bool>,
}

fn io(what: &str) -> impl Fn(std::io::Error) -> ClusterError + '_ {
    move |err| ClusterError::Io(format!("{what}: {err}"))
}

impl LocalCluster {
    /// Writes the config, starts the backends and peers; does not wait for them to serve (see
    /// [`wait_serving`]).
    pub fn start(spec: LocalSpec) -> Result<LocalCluster, ClusterError> {
        let dir = tempfile::Builder::new()
            .prefix("memcord-check-")
            .tempdir()
            .map_err(io("creating a temporary folder"))?;
        let mut cluster = LocalCluster {
            config_path: dir.path().join("config.ini"),
            dir,
            client_addrs: Vec::new(),
            peers: (0..spec.peers).map(|_| None).collect(),
            backend_ports: Vec::new(),
            backends: (0..spec.peers).map(|_| None).collect(),
            stopped: vec![false; spec.peers],
            spec,
        };
        let mut peer_addrs = Vec::new();
        for _ in 0..cluster.spec.peers {
            let port = free_port().map_err(io("finding a free port"))?;
            cluster
                .client_addrs
                .push(SocketAddr::from(([127, 0, 0, 1], port)));
            let port = free_port().map_err(io("finding a free port"))?;
            peer_addrs.push(SocketAddr::from(([127, 0, 0, 1], port)));
            if cluster.spec.backend == Backend::Memcached {
                cluster
                    .backend_ports
                    .push(free_port().map_err(io("finding a free port"))?);
            }
        }
        let ini = cluster.ini(&peer_addrs);
        std::fs::write(&cluster.config_path, ini).map_err(io("writing config.ini"))?;
        for id in 0..cluster.spec.peers {
            if cluster.spec.backend == Backend::Memcached {
                cluster.start_backend(id)?;
                cluster.wait_backend(id, Duration::from_secs(10))?;
            }
        }
        for id in 0..cluster.spec.peers {
            cluster.start_peer(id)?;
        }
        Ok(cluster)
    }

    fn ini(&self, peer_addrs: &[SocketAddr]) -> String {
        let timings = if self.spec.mode == "eventual" {
            "heartbeat_ms = 100\nfailure_timeout_ms = 1000\nsync_interval_ms = 200\n".to_string()
        } else {
            format!(
                "heartbeat_ms = 50\nfailure_timeout_ms = 400\nquorum_timeout_ms = {}\n",
                self.spec.quorum_timeout_ms
            )
        };
        let secret = format!("{:032x}", rand::random::<u128>());
        let mut ini = format!(
            "[cluster]\nconsistency = {}\nsecret = {secret}\ndata_dir = {}\nadmin_commands = true\n\
             {timings}[server]\nlog_level = info\n[kv]\ntype = {}\ntimeout_ms = 500\n",
            self.spec.mode,
            self.dir.path().join("data").display(),
            match self.spec.backend {
                Backend::Memory => "memory",
                Backend::Memcached => "memcached",
            }
        );
        for (id, client) in self.client_addrs.iter().enumerate() {
            ini += &format!(
                "[peer.{id}]\nclient_addr = {client}\npeer_addr = {}\n",
                peer_addrs[id]
            );
            if let Some(port) = self.backend_ports.get(id) {
                ini += &format!("kv_addr = 127.0.0.1:{port}\n");
            }
        }
        ini
    }

    /// The folder holding the config, the data and the logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Number of peers.
    pub fn len(&self) -> usize {
        self.spec.peers
    }

    /// Whether there are no peers.
    pub fn is_empty(&self) -> bool {
        self.spec.peers == 0
    }

    /// Whether the peers run in front of memcached children.
    pub fn has_backends(&self) -> bool {
        self.spec.backend == Backend::Memcached
    }

    fn log_file(&self, name: &str) -> Result<std::fs::File, ClusterError> {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(name))
            .map_err(io("opening a log file"))
    }

    /// Starts (or restarts, keeping its data folder) peer `id`.
    pub fn start_peer(&mut self, id: usize) -> Result<(), ClusterError> {
        let log = self.log_file(&format!("peer-{id}.log"))?;
        let mut cmd = Command::new(&self.spec.memcord_bin);
        cmd.arg("peer")
            .arg("--config")
            .arg(&self.config_path)
            .arg("--id")
            .arg(id.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        // The generated config alone decides: no stray MEMCORD_* setting of the caller's.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("MEMCORD_") {
                cmd.env_remove(key);
            }
        }
        if self.spec.unsafe_local_reads {
            cmd.env(UNSAFE_LOCAL_READS_ENV, "1");
        }
        let child = cmd.spawn().map_err(|err| {
            ClusterError::Io(format!(
                "starting {} peer: {err}",
                self.spec.memcord_bin.display()
            ))
        })?;
        self.peers[id] = Some(child);
        self.stopped[id] = false;
        Ok(())
    }

    /// SIGKILLs peer `id` and reaps it.
    pub fn kill_peer(&mut self, id: usize) {
        if let Some(child) = self.peers[id].take() {
            kill_and_reap(child);
        }
        self.stopped[id] = false;
    }

    /// Reaps peer `id` if it exited on its own, with how it ended.
    pub fn reap_exited(&mut self, id: usize) -> Option<std::process::ExitStatus> {
        let status = self.peers[id].as_mut()?.try_wait().ok()??;
        self.peers[id] = None;
        self.stopped[id] = false;
        Some(status)
    }

    /// Whether peer `id` is running.
    pub fn is_running(&self, id: usize) -> bool {
        self.peers[id].is_some()
    }

    /// Sends SIGSTOP (`true`) or SIGCONT (`false`) to peer `id`.
    pub fn pause_peer(&mut self, id: usize, pause: bool) {
        if let Some(child) = &self.peers[id] {
            signal(child, if pause { libc::SIGSTOP } else { libc::SIGCONT });
            self.stopped[id] = pause;
        }
    }

    /// Starts (or restarts on its port) the memcached of peer `id`.
    pub fn start_backend(&mut self, id: usize) -> Result<(), ClusterError> {
        let port = self.backend_ports[id];
        let log = self.log_file(&format!("memcached-{id}.log"))?;
        let mut cmd = Command::new(&self.spec.memcached_bin);
        cmd.args([
            "-l",
            "127.0.0.1",
            "-U",
            "0",
            "-m",
            "64",
            "-p",
            &port.to_string(),
        ]);
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } == 0 {
            cmd.args(["-u", "root"]);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|err| {
                ClusterError::Io(format!(
                    "starting {}: {err}",
                    self.spec.memcached_bin.display()
                ))
            })?;
        self.backends[id] = Some(child);
        Ok(())
    }

    /// Waits until peer `id`'s memcached accepts connections, up to `deadline`.
    pub fn wait_backend(&mut self, id: usize, deadline: Duration) -> Result<(), ClusterError> {
        let Some(addr) = self.backend_addr(id) else {
            return Ok(());
        };
        let until = std::time::Instant::now() + deadline;
        // Bounded by the deadline.
        loop {
            if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if let Some(child) = self.backends[id].as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(ClusterError::NotReady(format!(
                        "memcached of peer {id} exited ({status}) on {addr}"
                    )));
                }
            }
            if std::time::Instant::now() >= until {
                return Err(ClusterError::NotReady(format!(
                    "memcached of peer {id} not accepting on {addr} within {deadline:?}"
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILLs the memcached of peer `id` and reaps it.
    pub fn kill_backend(&mut self, id: usize) {
        if let Some(child) = self.backends[id].take() {
            kill_and_reap(child);
        }
    }

    /// The address of peer `id`'s memcached.
    pub fn backend_addr(&self, id: usize) -> Option<SocketAddr> {
        self.backend_ports
            .get(id)
            .map(|&port| SocketAddr::from(([127, 0, 0, 1], port)))
    }

    /// The last `lines` lines of peer `id`'s log, for error messages.
    pub fn log_tail(&self, id: usize, lines: usize) -> String {
        let text = std::fs::read_to_string(self.dir.path().join(format!("peer-{id}.log")))
            .unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Stops every process: SIGCONT to paused peers, SIGTERM, up to `grace`, then SIGKILL.
    pub fn shutdown(&mut self, grace: Duration) {
        for id in 0..self.peers.len() {
            if self.stopped[id] {
                self.pause_peer(id, false);
            }
            if let Some(child) = &self.peers[id] {
                signal(child, libc::SIGTERM);
            }
        }
        let until = std::time::Instant::now() + grace;
        for slot in self.peers.iter_mut() {
            if let Some(mut child) = slot.take() {
                // Bounded by `grace`.
                while std::time::Instant::now() < until {
                    if matches!(child.try_wait(), Ok(Some(_)) | Err(_)) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                kill_and_reap(child);
            }
        }
        for slot in self.backends.iter_mut() {
            if let Some(child) = slot.take() {
                kill_and_reap(child);
            }
        }
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        self.shutdown(Duration::from_secs(2));
    }
}

fn signal(child: &Child, signal: i32) {
    let Ok(pid) = i32::try_from(child.id()) else {
        return;
    };
    // SAFETY: kill(2) on our own (not yet reaped) child's pid has no memory effects.
    unsafe {
        libc::kill(pid, signal);
    }
}

fn kill_and_reap(mut child: Child) {
    // A SIGSTOPped child still dies of SIGKILL.
    let _ = child.kill();
    let _ = child.wait();
}

/// Waits until every peer in `peers` (by index into `addrs`) answers `stats cluster` with
/// `cluster_state serving`, sees every other peer of `addrs` up and (ordered modes) knows a
/// leader, up to `deadline`. A peer without `stats cluster` (a cluster of one) serves at once.
pub async fn wait_serving(addrs: &[SocketAddr], deadline: Duration) -> Result<(), ClusterError> {
    let until = Instant::now() + deadline;
    for (id, addr) in addrs.iter().enumerate() {
        let mut last;
        // Bounded by the deadline.
        loop {
            match stats_once(*addr, "cluster", Duration::from_secs(1)).await {
                Ok(stats) => {
                    let serving = stat(&stats, "cluster_state") == Some("serving");
                    let leader = stat(&stats, "cluster_leader") != Some("none");
                    let others_up = (0..addrs.len()).filter(|&o| o != id).all(|o| {
                        let status = stat(&stats, &format!("peer.{o}.status"));
                        status == Some("up")
                    });
                    if serving && leader && others_up {
                        break;
                    }
                    last = format!(
                        "state {:?}, leader {:?}",
                        stat(&stats, "cluster_state"),
                        stat(&stats, "cluster_leader")
                    );
                }
                Err(err) if err.contains("unexpected reply") => break,
                Err(err) => last = err,
            }
            if Instant::now() >= until {
                return Err(ClusterError::NotReady(format!(
                    "peer {id} at {addr} not serving with every peer up within {deadline:?} \
                     ({last})"
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(())
}

/// The peer that reports itself leader (ordered modes), if any answers.
pub async fn leader(addrs: &[SocketAddr]) -> Option<usize> {
    for addr in addrs {
        if let Ok(stats) = stats_once(*addr, "cluster", Duration::from_millis(500)).await {
            if stat(&stats, "cluster_role") == Some("leader") {
                return stat(&stats, "cluster_peer_id").and_then(|id| id.parse().ok());
            }
        }
    }
    None
}

/// Finds the memcached binary: `$MEMCACHED_BIN`, else `memcached` on the `PATH`, else
/// `/usr/bin/memcached`.
pub fn memcached_binary() -> Result<PathBuf, ClusterError> {
    if let Some(bin) = std::env::var_os("MEMCACHED_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("memcached"))
            .find(|candidate| candidate.is_file())
    });
    let fallback = PathBuf::from("/usr/bin/memcached");
    match on_path {
        Some(bin) => Ok(bin),
        None if fallback.is_file() => Ok(fallback),
        None => Err(ClusterError::Io(
            "--backend memcached needs the `memcached` binary (PATH, /usr/bin or \
             $MEMCACHED_BIN)"
                .into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_distinct_bindable_and_below_the_ephemeral_range() {
        let below = ephemeral_low();
        let ports: Vec<u16> = (0..50).map(|_| free_port().expect("a free port")).collect();
        let distinct: HashSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len(), "{ports:?}");
        for port in ports {
            assert!(
                (LOWEST_PORT..below).contains(&port),
                "{port} not in {LOWEST_PORT}..{below}"
            );
            TcpListener::bind(("127.0.0.1", port)).expect("the port is free");
        }
    }
}
