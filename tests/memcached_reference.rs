//! Proves the shared behaviour table (`tests/common/cases.rs`) against the real memcached: every
//! expected byte in it is memcached 1.6.18's own. memcord's server tests replay the same table.

mod common;

use common::cases::{cases, run_cases, Case};
use common::memcached::MemcachedProcess;
use std::collections::HashSet;

#[test]
fn the_table_is_memcacheds_own_behaviour() {
    let memcached = MemcachedProcess::start_with_args(&["-m", "64", "-I", "1m"]);
    run_cases(memcached.addr());
}

#[test]
fn the_table_runs_twice_against_one_server() {
    // Keys are prefixed per run, so a second run sees none of the first run's items.
    let memcached = MemcachedProcess::start();
    run_cases(memcached.addr());
    run_cases(memcached.addr());
}

#[test]
fn case_names_are_unique_and_every_case_has_steps() {
    let all: Vec<Case> = cases();
    let names: HashSet<&str> = all.iter().map(|c| c.name).collect();
    assert_eq!(names.len(), all.len(), "duplicate case names");
    assert!(all.iter().all(|c| !c.steps.is_empty()));
}

#[test]
fn memcached_process_is_reaped_on_drop() {
    let memcached = MemcachedProcess::start();
    let addr = memcached.addr();
    assert_eq!(memcached.port(), addr.port());
    std::net::TcpStream::connect(addr).expect("memcached accepts connections");
    drop(memcached);
    // Killed and waited for: the port no longer accepts.
    assert!(std::net::TcpStream::connect(addr).is_err());
}

#[test]
fn the_runner_reports_wrong_replies_and_stray_bytes() {
    use common::cases::{run_case, Step};
    let memcached = MemcachedProcess::start();
    let wrong = Case {
        name: "wrong_on_purpose",
        steps: vec![Step::new("get {p}k\r\n", "VALUE {p}k 0 1\r\n")],
    };
    let err = run_case(memcached.addr(), &wrong, "prefix_0001_").unwrap_err();
    assert!(err.contains("case `wrong_on_purpose` step 1"), "{err}");
    assert!(err.contains(r#"received "END\r\n""#), "{err}");

    // A reply where none is expected shows up at the closing sentinel.
    let stray = Case {
        name: "stray_reply",
        steps: vec![Step::new("set {p}k 0 0 1\r\nx\r\n", "")],
    };
    let err = run_case(memcached.addr(), &stray, "prefix_0002_").unwrap_err();
    assert!(err.contains("step 2"), "{err}");
    assert!(err.contains("STORED"), "{err}");

    // Captured cas ids are substituted into later requests.
    let cas = Case {
        name: "cas_capture",
        steps: vec![
            Step::new("set {p}k 0 0 1\r\nx\r\n", "STORED\r\n"),
            Step::new("gets {p}k\r\n", "VALUE {p}k 0 1 {cas:c}\r\nx\r\nEND\r\n"),
            Step::new("cas {p}k 0 0 1 {cas:c}\r\ny\r\n", "STORED\r\n"),
        ],
    };
    run_case(memcached.addr(), &cas, "prefix_0003_").unwrap();
}
