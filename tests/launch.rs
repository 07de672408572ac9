//! `memcord cluster`: three peers in one process on free ports, a pymemcache client (Debian's
//! `/usr/bin/python3`) writing and reading through every port, and a clean stop on SIGINT.

mod common;

use common::peer::{memcord_bin, run_to_exit};
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long the cluster may take to print its ready lines, or to stop.
const DEADLINE: Duration = Duration::from_secs(30);

/// A base port P such that P, P+1, P+2 are free (the listeners are released at once, so
/// another process could take one in between: the test then fails to bind, loudly).
fn free_base_port() -> u16 {
    for _ in 0..200 {
        let base = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if base > 65000 {
            continue;
        }
        let all_free = (0..3).all(|i| TcpListener::bind(("127.0.0.1", base + i)).is_ok());
        if all_free {
            return base;
        }
    }
    panic!("no three consecutive free ports found");
}

/// The cluster process, killed on drop if the test fails.
struct ClusterProcess {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl ClusterProcess {
    fn start(args: &[&str]) -> ClusterProcess {
        let mut child = Command::new(memcord_bin())
            .arg("cluster")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawning memcord cluster");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        ClusterProcess {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Reads stdout lines until one starts with `prefix`; returns it.
    fn line_starting(&mut self, prefix: &str) -> String {
        let until = Instant::now() + DEADLINE;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.starts_with(prefix) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no line starting {prefix:?}; stdout so far: {:?}",
                    self.seen
                ),
            }
        }
    }
}

impl Drop for ClusterProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// pymemcache: a key written through each port, then every key read through every port (the
/// eventual mode converges within a bounded wait).
const PYMEMCACHE_SCRIPT: &str = r#"
import sys, time
from pymemcache.client.base import Client
ports = [int(p) for p in sys.argv[1:]]
clients = [Client(("127.0.0.1", p), connect_timeout=5, timeout=5) for p in ports]
for i, c in enumerate(clients):
    assert c.set("key%d" % i, b"value%d" % i, noreply=False), "set through %d" % ports[i]
    assert c.get("key%d" % i) == b"value%d" % i, "read-your-write through %d" % ports[i]
deadline = time.monotonic() + 10
for c in clients:
    for i in range(len(clients)):
        while c.get("key%d" % i) != b"value%d" % i:
            assert time.monotonic() < deadline, "key%d never reached a peer" % i
            time.sleep(0.02)
print("pymemcache cluster: ok")
"#;

#[test]
fn memcord_cluster_serves_pymemcache_on_three_ports_and_stops_on_sigint() {
    cluster_serves_pymemcache_and_stops("eventual");
}

#[test]
fn memcord_cluster_linearizable_serves_pymemcache_and_stops_on_sigint() {
    cluster_serves_pymemcache_and_stops("linearizable");
}

fn cluster_serves_pymemcache_and_stops(mode: &str) {
    let python = common::python_with_pymemcache();
    let base = free_base_port();
    let mut peer_base = free_base_port();
    for _ in 0..100 {
        if peer_base.abs_diff(base) >= 3 {
            break;
        }
        peer_base = free_base_port();
    }
    // README's `memcord cluster --peers 3 --consistency eventual --base-port …`, on free ports.
    let mut cluster = ClusterProcess::start(&[
        "--peers",
        "3",
        "--consistency",
        mode,
        "--base-port",
        &base.to_string(),
        "--peer-base-port",
        &peer_base.to_string(),
    ]);
    let ready = cluster.line_starting("memcord cluster ready:");
    assert_eq!(
        ready,
        format!("memcord cluster ready: 3 peer(s), mode {mode}, kv memory")
    );
    for i in 0..3u16 {
        assert_eq!(
            cluster.line_starting("  peer"),
            format!(
                "  peer {i}: clients 127.0.0.1:{}, peers 127.0.0.1:{}",
                base + i,
                peer_base + i
            )
        );
    }
    assert_eq!(
        cluster.line_starting("connect with:"),
        format!("connect with: memcord client --port {base}")
    );

    let ports: Vec<String> = (0..3).map(|i| (base + i).to_string()).collect();
    let out = Command::new(python)
        .args(["-c", PYMEMCACHE_SCRIPT])
        .args(&ports)
        .output()
        .expect("running pymemcache");
    assert!(
        out.status.success(),
        "pymemcache against memcord cluster failed:\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "pymemcache cluster: ok\n"
    );

    // SAFETY: kill(2) on our own child's pid has no memory effects.
    let rc = unsafe { libc::kill(cluster.child.id() as i32, libc::SIGINT) };
    assert_eq!(rc, 0);
    assert_eq!(
        cluster.line_starting("memcord cluster stopped"),
        "memcord cluster stopped"
    );
    let until = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(status) = cluster.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < until,
            "memcord cluster did not exit after SIGINT"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success(), "exit status after SIGINT: {status:?}");
    // Every port is released.
    for port in base..base + 3 {
        assert!(
            TcpListener::bind(("127.0.0.1", port)).is_ok(),
            "port {port} still bound"
        );
    }
}

#[test]
fn memcord_cluster_refuses_what_cannot_run() {
    let (status, stderr) = run_to_exit(&["cluster", "--consistency", "causal"], &[]);
    assert!(!status.success());
    assert!(stderr.contains("causal"), "{stderr}");
    let (status, stderr) = run_to_exit(&["cluster", "--base-port", "65534"], &[]);
    assert!(!status.success());
    assert!(stderr.contains("past 65535"), "{stderr}");
    let (status, stderr) = run_to_exit(&["cluster", "--peers", "0"], &[]);
    assert!(!status.success());
    assert!(stderr.contains("--peers must be 1 to 255"), "{stderr}");
}
