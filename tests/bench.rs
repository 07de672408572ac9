//! `memcord bench` smoke tests: a second or so of load against a real `memcord peer` and a real
//! memcached; they check that the report is valid JSON with answered operations and no errors.
//! They never assert a speed: the benchmark is not a timed test.

mod common;

use common::memcached::MemcachedProcess;
use common::output_within;
use common::peer::{memcord_bin, PeerProcess};
use std::process::{Command, Output};
use std::time::Duration;

/// How long one bench run may take, preload and warm-up included.
const RUN_DEADLINE: Duration = Duration::from_secs(60);

/// Runs `memcord bench <args>` to completion within the deadline.
fn bench(args: &[&str]) -> Output {
    output_within(
        Command::new(memcord_bin()).arg("bench").args(args),
        RUN_DEADLINE,
        &format!("memcord bench {args:?}"),
    )
}

/// Runs a short JSON bench against `target` and checks its report.
fn smoke(target: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "--target",
        target,
        "--json",
        "--duration",
        "1",
        "--warmup",
        "0.2",
        "--connections",
        "4",
        "--keys",
        "500",
        "--value-size",
        "100",
    ];
    args.extend(extra);
    let out = bench(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "bench failed: {}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let ops = report["ops"].as_u64().expect("ops");
    let gets = report["gets"].as_u64().expect("gets");
    let sets = report["sets"].as_u64().expect("sets");
    assert!(ops > 0, "{report}");
    assert_eq!(ops, gets + sets, "{report}");
    assert_eq!(report["errors"].as_u64(), Some(0), "{report}");
    assert_eq!(report["preload_errors"].as_u64(), Some(0), "{report}");
    for field in [
        "ops_per_sec",
        "p50_us",
        "p99_us",
        "p999_us",
        "max_us",
        "hit_ratio",
    ] {
        assert!(
            report[field].as_f64().is_some(),
            "{field} missing: {report}"
        );
    }
    report
}

#[test]
fn bench_against_a_memory_peer() {
    let peer = PeerProcess::start(&["--kv-type", "memory"]);
    let report = smoke(&peer.addr.to_string(), &[]);
    // Every key was preloaded and nothing evicts them at this size.
    assert_eq!(report["hit_ratio"].as_f64(), Some(1.0), "{report}");
}

#[test]
fn bench_against_memcached_pipelined_zipfian_sets() {
    let memcached = MemcachedProcess::start();
    let report = smoke(
        &memcached.addr().to_string(),
        &[
            "--pipeline",
            "8",
            "--distribution",
            "zipfian",
            "--get-ratio",
            "0",
        ],
    );
    assert_eq!(report["gets"].as_u64(), Some(0), "{report}");
}

#[test]
fn bench_round_robin_over_two_targets_by_op_count() {
    let memcached = MemcachedProcess::start();
    let peer = PeerProcess::start(&[
        "--kv-type",
        "memcached",
        "--kv-port",
        &memcached.port().to_string(),
    ]);
    let targets = format!("{},{}", peer.addr, memcached.addr());
    let out = bench(&[
        "--target",
        &targets,
        "--ops",
        "2000",
        "--warmup",
        "0",
        "--connections",
        "2",
        "--keys",
        "100",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["ops"].as_u64(), Some(2000), "{report}");
    assert_eq!(
        report["targets"].as_array().map(Vec::len),
        Some(2),
        "{report}"
    );
    assert_eq!(report["errors"].as_u64(), Some(0), "{report}");
}

#[test]
fn bench_refuses_an_unreachable_target() {
    let port = common::cluster::free_port();
    let out = bench(&["--target", &format!("127.0.0.1:{port}"), "--duration", "1"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot connect"), "{stderr}");
}

/// `scripts/bench.sh`, shrunk to seconds, starts every target (memcached, one peer with each
/// store, the three 3-peer clusters), drives them and writes every section of its report.
#[test]
fn bench_script_writes_every_section_of_its_report() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("BENCH.md");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/bench.sh");
    let output = output_within(
        Command::new("bash")
            .arg(&script)
            .env("MEMCORD", memcord_bin())
            .env("MEMCACHED", common::memcached::memcached_binary())
            .env("OUT", &out)
            .env("DURATION", "1")
            .env("WARMUP", "0")
            .env("CONNS", "4")
            .env("KEYS", "200")
            .env("SWEEP", "1 4")
            .env("SWEEP_DURATION", "1")
            .env("IDLE_CONNS", "300")
            .env("NO_MEMCASLAP", "1"),
        Duration::from_secs(600),
        "scripts/bench.sh",
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "bench.sh failed:\n{stderr}");
    assert!(
        !stderr.contains(" failed: "),
        "a bench point failed:\n{stderr}"
    );
    let report = std::fs::read_to_string(&out).expect("the report");
    for section in [
        "## `memcord bench`: get100",
        "## `memcord bench`: set100",
        "## Throughput against connections (get90)",
        "## Added latency at one connection (get90)",
        "## The three protocols: text, meta, binary",
        "| meta | get100 |",
        "| binary | set100 |",
        "## 300 idle client connections",
        "| memcord peer → memcached |",
        "| 3-peer linearizable cluster (round-robin) |",
        "| 3-peer sequential cluster (round-robin) |",
    ] {
        assert!(report.contains(section), "no {section:?} in:\n{report}");
    }
    assert!(
        dir.path().join("docs/bench-throughput.svg").exists(),
        "the chart is written under docs/ beside the report"
    );
    assert!(report.contains("](docs/bench-throughput.svg)"), "{report}");
}
