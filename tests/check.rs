//! The consistency campaign: the real `memcord check` binary starts real three-peer clusters
//! (child processes on free ports), records a workload under injected faults and checks it.
//!
//! * every mode, two seeds each, `--faults mix` (sequential at a slower rate its checker can
//!   decide): exit 0 and a complete summary;
//! * runs in front of real memcached backends, with every fault kind including `backend` (a
//!   peer's memcached SIGKILLed and restarted empty: the peer must stop rather than serve from
//!   it, and is restarted by the harness as a supervisor would);
//! * the broken build (`--unsafe-local-reads`: linearizable reads from the local store without
//!   a read index) must be caught: exit 1, a violation and its timeline HTML;
//! * `--attach` to a running cluster (started by the test), with `partition` faults;
//! * Ctrl-C (SIGINT) mid-run: faults healed, every child stopped, exit 2;
//! * bad flags and impossible fault requests exit 2 with a message, before starting anything.
//!
//! The runs are serialized (one cluster at a time on a small machine, so fault timings are
//! not distorted by a neighbouring cluster); the whole file stays under three minutes.

mod common;

use common::cluster::{Cluster, ClusterSpec};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One `memcord check` run at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// A `memcord check` run that must finish within this.
const RUN_DEADLINE: Duration = Duration::from_secs(90);

fn memcord_check(args: &[&str], out: &Path) -> (Output, BTreeMap<String, String>) {
    check_with(env!("CARGO_BIN_EXE_memcord"), args, out)
}

/// `check` run by the binary `bin` (whose peers are then that binary too).
fn check_with(bin: &str, args: &[&str], out: &Path) -> (Output, BTreeMap<String, String>) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut cmd = Command::new(bin);
    cmd.arg("check").args(args).arg("--out").arg(out);
    for (key, _) in std::env::vars() {
        if key.starts_with("MEMCORD_") {
            cmd.env_remove(key);
        }
    }
    let started = Instant::now();
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning memcord check");
    let pid = child.id();
    // A watchdog, so a hung run fails the test instead of hanging it.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watched = done.clone();
    std::thread::spawn(move || {
        let until = Instant::now() + RUN_DEADLINE;
        while Instant::now() < until {
            if watched.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // SAFETY: kill(2) on our own child's pid; it is not reaped before `done` is set.
        unsafe {
            libc::kill(pid as i32, libc::SIGKILL);
        }
    });
    let output = child.wait_with_output().expect("waiting for memcord check");
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    eprintln!(
        "memcord check {args:?}: {:?} in {:.1} s\n--- stdout ---\n{stdout}--- stderr ---\n{stderr}",
        output.status,
        started.elapsed().as_secs_f64()
    );
    let summary = stdout
        .lines()
        .filter_map(|line| line.split_once(": "))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    (output, summary)
}

fn number(summary: &BTreeMap<String, String>, name: &str) -> u64 {
    summary
        .get(name)
        .unwrap_or_else(|| panic!("summary has no {name}: {summary:?}"))
        .parse()
        .unwrap_or_else(|_| panic!("summary {name} is not a number: {summary:?}"))
}

/// Asserts a complete, consistent summary for `mode`, and the files written with `--out`.
fn assert_consistent(output: &Output, summary: &BTreeMap<String, String>, mode: &str, out: &Path) {
    assert_eq!(output.status.code(), Some(0), "{summary:?}");
    assert_eq!(summary["mode"], mode);
    assert_eq!(summary["verdict"], "consistent");
    assert_eq!(summary["recovered"], "yes");
    let checker = match mode {
        "eventual" => "convergence",
        other => other,
    };
    assert_eq!(summary["checker"], checker);
    let operations = number(summary, "operations");
    assert!(operations >= 100, "only {operations} operations");
    assert_eq!(
        number(summary, "ok") + number(summary, "indeterminate"),
        operations
    );
    assert_eq!(
        number(summary, "indeterminate_error_replies") + number(summary, "indeterminate_timeouts"),
        number(summary, "indeterminate")
    );
    let faults = &summary["faults"];
    let words: Vec<&str> = faults.split(' ').collect();
    assert_eq!(words.len(), 4, "{faults}");
    for (word, kind) in words.iter().zip(["kill", "stop", "partition", "backend"]) {
        let count = word
            .strip_prefix(&format!("{kind}="))
            .unwrap_or_else(|| panic!("faults line {faults:?}"));
        count.parse::<u64>().expect("a fault count");
    }
    let history: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("history.json")).expect("history.json"))
            .expect("history.json parses");
    assert_eq!(
        history["operations"].as_array().expect("operations").len() as u64,
        operations
    );
    let written = std::fs::read_to_string(out.join("summary.txt")).expect("summary.txt");
    assert!(written.contains(&format!("operations: {operations}\n")));
    let faults_txt = std::fs::read_to_string(out.join("faults.txt")).expect("faults.txt");
    let injected = faults_txt.lines().filter(|l| !l.starts_with('#')).count() as u64;
    assert_eq!(injected, total_faults(summary), "{faults_txt}");
}

fn total_faults(summary: &BTreeMap<String, String>) -> u64 {
    summary["faults"]
        .split(' ')
        .filter_map(|w| w.split_once('=')?.1.parse::<u64>().ok())
        .sum()
}

fn campaign(mode: &str, seed: &str, faults: &str, extra: &[&str]) -> BTreeMap<String, String> {
    let out = tempfile::tempdir().expect("temp dir");
    let mut args = vec!["--consistency", mode, "--faults", faults, "--seed", seed];
    if !extra.contains(&"--duration") {
        args.extend(["--duration", "5"]);
    }
    args.extend(extra);
    let (output, summary) = memcord_check(&args, out.path());
    assert_consistent(&output, &summary, mode, out.path());
    assert!(
        total_faults(&summary) >= 1,
        "no fault injected: {summary:?}"
    );
    summary
}

/// Fails (never skips) when the memcached binary is missing.
fn require_memcached() {
    memcord_check::cluster::memcached_binary()
        .expect("memcached is not installed: run scripts/test.sh, which installs it");
}

#[test]
fn linearizable_mode_passes_under_mixed_faults() {
    // Seed 1 is the README's example command (with the output folder in a temporary
    // directory).
    campaign("linearizable", "1", "mix", &[]);
    campaign("linearizable", "2", "mix", &[]);
}

#[test]
fn sequential_mode_passes_under_mixed_faults() {
    // The sequential checker searches for one order per key without real-time bounds, which
    // grows fast with the history: a slower workload with fewer clients keeps it decidable
    // well within its budget (at the default 1000 ops/s it answers unknown).
    campaign(
        "sequential",
        "3",
        "mix",
        &["--rate", "60", "--clients", "4"],
    );
    campaign(
        "sequential",
        "4",
        "mix",
        &["--rate", "60", "--clients", "4"],
    );
}

#[test]
fn eventual_mode_converges_under_mixed_faults() {
    campaign("eventual", "5", "mix", &[]);
    campaign("eventual", "6", "mix", &[]);
}

#[test]
fn linearizable_mode_passes_in_front_of_memcached() {
    require_memcached();
    // `mix` with memcached backends includes `backend` faults.
    let summary = campaign(
        "linearizable",
        "8",
        "mix",
        &["--backend", "memcached", "--duration", "8"],
    );
    assert_eq!(summary["cluster"], "started 3 peer(s), kv memcached");
    let summary = campaign(
        "linearizable",
        "11",
        "backend",
        &["--backend", "memcached", "--duration", "6"],
    );
    let backend_faults: u64 = summary["faults"]
        .rsplit_once("backend=")
        .and_then(|(_, n)| n.parse().ok())
        .expect("a backend fault count");
    assert!(backend_faults >= 1, "{summary:?}");
}

#[test]
fn sequential_and_eventual_modes_pass_when_a_memcached_restarts_empty() {
    require_memcached();
    campaign(
        "sequential",
        "10",
        "backend",
        &[
            "--backend",
            "memcached",
            "--duration",
            "8",
            "--rate",
            "60",
            "--clients",
            "4",
        ],
    );
    campaign(
        "eventual",
        "9",
        "backend",
        &["--backend", "memcached", "--duration", "6"],
    );
}

/// The broken build's flags.
const BROKEN_BUILD_RUN: [&str; 9] = [
    "--consistency",
    "linearizable",
    "--duration",
    "5",
    "--seed",
    "11",
    "--faults",
    "partition",
    "--unsafe-local-reads",
];

/// Only a `fault-injection` build has `memcord-faulty` (scripts/test.sh builds it with
/// `--all-features`); a plain `cargo test` leaves this test out.
#[cfg(feature = "fault-injection")]
#[test]
fn a_broken_linearizable_build_is_caught() {
    let out = tempfile::tempdir().expect("temp dir");
    let started = Instant::now();
    let (output, summary) = check_with(
        env!("CARGO_BIN_EXE_memcord-faulty"),
        &BROKEN_BUILD_RUN,
        out.path(),
    );
    assert_eq!(output.status.code(), Some(1), "{summary:?}");
    assert_eq!(summary["verdict"], "violation");
    assert!(summary["faults"].contains("partition="), "{summary:?}");
    assert!(
        total_faults(&summary) >= 1,
        "no partition injected: {summary:?}"
    );
    let timeline = Path::new(summary.get("timeline").expect("a timeline path"));
    assert!(timeline.starts_with(out.path()), "{timeline:?}");
    let html = std::fs::read_to_string(timeline).expect("timeline written");
    assert!(
        html.contains(&summary["violation_key"]),
        "timeline names the key"
    );
    assert!(started.elapsed() < RUN_DEADLINE);
}

#[test]
fn memcord_itself_has_no_fault_switch() {
    // In every build `memcord` ignores MEMCORD_UNSAFE_LOCAL_READS, and the harness will not
    // pass its peers off as the broken build.
    let out = tempfile::tempdir().expect("temp dir");
    let (output, _) = memcord_check(&BROKEN_BUILD_RUN, out.path());
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("memcord check: error: peer 0 at 127.0.0.1:")
            && stderr.contains(
                "runs without the test-only fault switch: --unsafe-local-reads needs peers of the \
             memcord-faulty binary (cargo build --features fault-injection), started by it or \
             named with --memcord-bin"
            ),
        "{stderr}"
    );
}

#[test]
fn bad_flags_and_impossible_faults_exit_2_before_starting_anything() {
    let out = tempfile::tempdir().expect("temp dir");
    let cases: [(&[&str], &str); 5] = [
        (
            &["--consistency", "strong"],
            "unknown consistency mode 'strong'",
        ),
        (&["--faults", "flood"], "unknown fault 'flood'"),
        (
            &["--faults", "backend"],
            "fault 'backend' needs --backend memcached",
        ),
        (
            &["--attach", "127.0.0.1:1", "--faults", "kill"],
            "only `partition` (fail/recover) is possible",
        ),
        // Refused at once, and said once.
        (
            &[
                "--attach",
                "127.0.0.1:1,127.0.0.1:2",
                "--faults",
                "partition",
            ],
            "memcord check: error: cannot reach peer 0: connect 127.0.0.1:1: Connection \
             refused (os error 111)\n",
        ),
    ];
    for (args, message) in cases {
        let (output, _) = memcord_check(args, out.path());
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        assert!(!out.path().join("history.json").exists());
    }
}

#[test]
fn attached_to_a_running_cluster_with_partitions() {
    let cluster = Cluster::start(ClusterSpec::ordered("linearizable"));
    let addrs: Vec<String> = cluster.client_addrs.iter().map(|a| a.to_string()).collect();
    let list = addrs.join(",");
    let out = tempfile::tempdir().expect("temp dir");
    let args = [
        "--consistency",
        "linearizable",
        "--attach",
        &list,
        "--faults",
        "mix",
        "--duration",
        "5",
        "--seed",
        "21",
    ];
    let (output, summary) = memcord_check(&args, out.path());
    assert_consistent(&output, &summary, "linearizable", out.path());
    assert_eq!(summary["cluster"], "attached to 3 peer(s)");
    // Attached, `mix` means partitions only.
    assert!(
        summary["faults"].starts_with("kill=0 stop=0 partition="),
        "{summary:?}"
    );
    assert!(total_faults(&summary) >= 1, "{summary:?}");
    // Every peer was recovered: it serves and sees the others.
    for id in 0..3 {
        cluster.wait_serving(id, Duration::from_secs(10));
    }
}

#[test]
fn ctrl_c_stops_the_run_and_every_child() {
    use std::io::{BufRead, BufReader};
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut child = Command::new(env!("CARGO_BIN_EXE_memcord"))
        .args(["check", "--consistency", "linearizable", "--duration", "60"])
        .args(["--faults", "stop", "--seed", "31"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning memcord check");
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { return };
            let _ = tx.send(line);
        }
    });
    let until = Instant::now() + Duration::from_secs(60);
    let mut dir = None;
    let mut seen = Vec::new();
    loop {
        let line = rx
            .recv_timeout(until.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("no `workload starts` line: {seen:?}"));
        if let Some(at) = line.find(" in /") {
            dir = Some(line[at + 4..].to_string());
        }
        let started = line.contains("workload starts");
        seen.push(line);
        if started {
            break;
        }
    }
    let dir = dir.unwrap_or_else(|| panic!("no cluster folder named: {seen:?}"));
    // Let a fault be active (SIGSTOPped peer) for a fair share of interrupts.
    std::thread::sleep(Duration::from_millis(700));
    // SAFETY: kill(2) on our own, not yet reaped, child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let until = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        assert!(Instant::now() < until, "memcord check ignored SIGINT");
        std::thread::sleep(Duration::from_millis(20));
    };
    let rest: Vec<String> = rx.try_iter().collect();
    assert_eq!(status.code(), Some(2), "{rest:?}");
    assert!(rest.iter().any(|l| l.contains("interrupted")), "{rest:?}");
    // The cluster's folder is gone and no process still runs from its config.
    assert!(!Path::new(&dir).exists(), "{dir} left behind");
    let survivors: Vec<String> = std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(&dir))
        .collect();
    assert!(survivors.is_empty(), "still running: {survivors:?}");
}
