//! startup.sh / stop.sh at the repository root, as a user runs them: three `memcord peer`
//! processes in front of three real memcached (started by the script) on free ports, writes and
//! reads through each peer, a second startup.sh that does nothing, stop.sh, and nothing left
//! running. The scripts get the test's binary (`MEMCORD_BIN`), a generated config
//! (`MEMCORD_CONFIG`) and a temporary run folder (`MEMCORD_RUN_DIR`).

mod common;

use common::cluster::{free_port, get, wait_for};
use common::memcached::memcached_binary;
use common::output_within;
use common::peer::{memcord_bin, RawClient};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// How long a script may run.
const SCRIPT_DEADLINE: Duration = Duration::from_secs(60);

/// A generated three-peer config and a run folder; stop.sh runs on drop whatever happened.
struct ScriptCluster {
    dir: tempfile::TempDir,
    clients: Vec<std::net::SocketAddr>,
    kv_ports: Vec<u16>,
}

impl ScriptCluster {
    fn new() -> ScriptCluster {
        let dir = tempfile::tempdir().unwrap();
        let mut ini = String::from(
            "[cluster]\nconsistency = eventual\nsecret = scripts-test\nheartbeat_ms = 50\n\
             failure_timeout_ms = 400\nsync_interval_ms = 200\n",
        );
        let mut clients = Vec::new();
        let mut kv_ports = Vec::new();
        for id in 0..3 {
            let (client, peer, kv) = (free_port(), free_port(), free_port());
            ini += &format!(
                "[peer.{id}]\nclient_addr = 127.0.0.1:{client}\npeer_addr = 127.0.0.1:{peer}\n\
                 kv_addr = 127.0.0.1:{kv}\n"
            );
            clients.push(format!("127.0.0.1:{client}").parse().unwrap());
            kv_ports.push(kv);
        }
        std::fs::write(dir.path().join("config.ini"), ini).unwrap();
        ScriptCluster {
            dir,
            clients,
            kv_ports,
        }
    }

    fn run_dir(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    /// Runs `<repo>/<script> <args>` with this cluster's environment, within the deadline.
    fn script(&self, script: &str, args: &[&str]) -> Output {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(script);
        let mut cmd = Command::new(&path);
        cmd.args(args);
        for (key, _) in std::env::vars() {
            if key.starts_with("MEMCORD_") || key == "CONSISTENCY" || key == "KV_TYPE" {
                cmd.env_remove(key);
            }
        }
        cmd.env("MEMCORD_BIN", memcord_bin())
            .env("MEMCORD_CONFIG", self.dir.path().join("config.ini"))
            .env("MEMCORD_RUN_DIR", self.run_dir())
            .env("MEMCACHED_BIN", memcached_binary());
        // The script's children write to files, so its pipes close when it exits.
        let out = output_within(&mut cmd, SCRIPT_DEADLINE, script);
        eprintln!(
            "---- {script} {args:?}: {:?}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// The pids recorded under run/pids, by file name.
    fn pids(&self) -> Vec<(String, i32)> {
        let mut pids: Vec<(String, i32)> = std::fs::read_dir(self.run_dir().join("pids"))
            .map(|dir| {
                dir.filter_map(Result::ok)
                    .map(|entry| {
                        let name = entry.file_name().to_string_lossy().into_owned();
                        let pid = std::fs::read_to_string(entry.path()).unwrap();
                        (name, pid.trim().parse().unwrap())
                    })
                    .collect()
            })
            .unwrap_or_default();
        pids.sort();
        pids
    }
}

impl Drop for ScriptCluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for name in ["peer-0", "peer-1", "peer-2"] {
                let log = self.run_dir().join("logs").join(format!("{name}.log"));
                eprintln!(
                    "---- {name} log\n{}",
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
            let _ = self.script("stop.sh", &[]);
        }
    }
}

/// Whether `pid` is a live process (a zombie waiting for its reaper counts as gone).
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .map(|(_, rest)| !rest.starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn startup_and_stop_scripts_run_a_memcached_backed_cluster() {
    let cluster = ScriptCluster::new();
    let out = cluster.script("startup.sh", &["-c", "eventual"]);
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(
        text.starts_with("startup.sh: 3 peers serving (kv: memcached, mode: eventual)\n"),
        "{text}"
    );
    let pids = cluster.pids();
    let names: Vec<&str> = pids.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "memcached-0.pid",
            "memcached-1.pid",
            "memcached-2.pid",
            "peer-0.pid",
            "peer-1.pid",
            "peer-2.pid"
        ]
    );
    assert!(pids.iter().all(|(_, pid)| alive(*pid)), "{pids:?}");

    // Every peer is in front of its own memcached.
    for (id, addr) in cluster.clients.iter().enumerate() {
        let settings = RawClient::connect(*addr).stats("settings");
        let kv_addr = format!("127.0.0.1:{}", cluster.kv_ports[id]);
        assert!(settings.contains(&("memcord_kv_type".into(), "memcached".into())));
        assert!(settings.contains(&("memcord_kv_addr".into(), kv_addr)));
    }
    // A write through each peer is read through every peer.
    for (id, addr) in cluster.clients.iter().enumerate() {
        let value = format!("v{id}");
        RawClient::connect(*addr).roundtrip(
            format!("set key{id} 0 0 {}\r\n{value}\r\n", value.len()).as_bytes(),
            b"STORED\r\n",
        );
    }
    for addr in &cluster.clients {
        let mut reader = RawClient::connect(*addr);
        for id in 0..3 {
            let want = format!("v{id}").into_bytes();
            let seen = wait_for(Duration::from_secs(10), || {
                get(&mut reader, &format!("key{id}")) == Some(want.clone())
            });
            assert!(seen.is_some(), "key{id} never reached {addr}");
        }
    }

    // A second startup.sh says so and changes nothing.
    let again = cluster.script("startup.sh", &[]);
    assert!(again.status.success());
    assert!(stdout(&again).starts_with("startup.sh: a cluster is already running: "));
    assert_eq!(cluster.pids(), pids);

    let stop = cluster.script("stop.sh", &[]);
    assert!(stop.status.success());
    assert!(
        stdout(&stop).ends_with("stop.sh: stopped 6 process(es)\n"),
        "{}",
        stdout(&stop)
    );
    let until = Instant::now() + Duration::from_secs(10);
    for (name, pid) in &pids {
        while alive(*pid) {
            assert!(Instant::now() < until, "{name} (pid {pid}) still running");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    assert!(
        cluster.pids().is_empty(),
        "pid files left: {:?}",
        cluster.pids()
    );
    for addr in &cluster.clients {
        assert!(
            std::net::TcpListener::bind(addr).is_ok(),
            "{addr} still bound"
        );
    }
    // stop.sh with nothing recorded is a no-op.
    let idle = cluster.script("stop.sh", &[]);
    assert!(idle.status.success());
    assert!(stdout(&idle).contains("no cluster started by startup.sh"));
}

#[test]
fn startup_script_that_fails_leaves_nothing_running() {
    let cluster = ScriptCluster::new();
    // An unknown mode: every peer refuses to start; the backends the script started go too.
    let out = cluster.script("startup.sh", &["-c", "causal"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("exited while starting"), "{stderr}");
    assert!(stderr.contains("causal"), "{stderr}");
    assert!(
        cluster.pids().is_empty(),
        "pid files left: {:?}",
        cluster.pids()
    );
    for port in &cluster.kv_ports {
        let freed = wait_for(Duration::from_secs(10), || {
            std::net::TcpListener::bind(("127.0.0.1", *port)).is_ok()
        });
        assert!(freed.is_some(), "memcached on {port} still running");
    }
}

/// scripts/failover.py, as the closing notes run it (one trial per mode instead of ten): it
/// kills a leader, measures until a write is acknowledged again, checks the last write
/// acknowledged before the kill, restarts the peer and waits for it to catch up.
#[test]
fn failover_script_measures_a_leader_kill_in_both_ordered_modes() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/failover.py");
    for mode in ["linearizable", "sequential"] {
        let out = output_within(
            Command::new("python3")
                .arg(&script)
                .args(["--mode", mode, "--trials", "1", "--memcord"])
                .arg(memcord_bin())
                .env_remove("MEMCORD_LOG"),
            Duration::from_secs(120),
            &format!("failover.py --mode {mode}"),
        );
        assert!(
            out.status.success(),
            "failover.py --mode {mode} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = stdout(&out);
        let summary: serde_json::Value =
            serde_json::from_str(text.lines().last().expect("a summary line"))
                .expect("the summary is JSON");
        assert_eq!(summary["mode"], mode);
        assert_eq!(summary["trials"], 1);
        let median = summary["median_s"].as_f64().expect("median_s");
        // Bounded, not timed: the bound is 3 s; a loaded CI machine gets slack.
        assert!(
            median > 0.0 && median < 10.0,
            "fail-over took {median} s: {text}"
        );
    }
}
