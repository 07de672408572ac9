//! `memcord client` driven by piped input, against real peers: exact replies for the memcache
//! commands, the `show` table, `fail N` / `recover N` on a three-peer eventual cluster, the
//! console's own mistakes, and the exit status when a connection fails.

mod common;

use common::cluster::{free_port, get, wait_for, Cluster, ClusterSpec};
use common::peer::{memcord_bin, PeerProcess};
use std::io::Write;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long one console run may take.
const CONSOLE_DEADLINE: Duration = Duration::from_secs(30);

/// What a console run printed.
struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs `memcord client --port <port>` with `input` on its stdin, within the deadline.
fn console(port: u16, input: &str) -> Run {
    console_with(port, &[], input)
}

/// [`console`] with more flags.
fn console_with(port: u16, flags: &[&str], input: &str) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let (out_path, err_path) = (dir.path().join("out"), dir.path().join("err"));
    let mut child = Command::new(memcord_bin())
        .args(["client", "--port", &port.to_string()])
        .args(flags)
        .env("HOME", dir.path())
        .stdin(Stdio::piped())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .expect("spawning memcord client");
    // A console that cannot connect exits before reading its input: a broken pipe is fine.
    match child.stdin.take().unwrap().write_all(input.as_bytes()) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(err) => panic!("writing the console's input: {err}"),
    }
    let until = Instant::now() + CONSOLE_DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= until {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "memcord client did not finish within {CONSOLE_DEADLINE:?} on input {input:?}; \
                 stdout:\n{}",
                std::fs::read_to_string(&out_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Run {
        status,
        stdout: std::fs::read_to_string(&out_path).unwrap(),
        stderr: std::fs::read_to_string(&err_path).unwrap(),
    }
}

/// A console run that must succeed with exactly `expected` on stdout and nothing on stderr.
fn console_ok(port: u16, input: &str, expected: &str) {
    let run = console(port, input);
    assert!(
        run.status.success(),
        "{:?}; stderr:\n{}",
        run.status,
        run.stderr
    );
    assert_eq!(run.stdout, expected, "stdout for input {input:?}");
    assert_eq!(run.stderr, "", "stderr for input {input:?}");
}

/// What the console says on stderr when line `line` (`command`) was answered `reply`.
fn stopped_at(line: usize, command: &str, reply: &str) -> String {
    format!(
        "memcord: error: line {line} (`{command}`) was answered {reply}: stopped there \
         (--keep-going runs every line)\n"
    )
}

/// The hint for a command the server answered `ERROR`.
fn unknown_hint(word: &str) -> String {
    format!(
        "memcord client: the server does not know `{word}`, or not with these arguments: \
         `help` lists the commands\n"
    )
}

/// The `show` table's data rows, split into cells, by peer id.
fn show_rows(stdout: &str) -> Vec<Vec<String>> {
    stdout
        .lines()
        .skip(2)
        .map(|line| line.split_whitespace().map(str::to_string).collect())
        .collect()
}

/// The value of `peer.<id>.status` in peer `from`'s `stats cluster`.
fn status_seen(cluster: &Cluster, from: usize, id: usize) -> String {
    cluster
        .cluster_stats(from)
        .into_iter()
        .find(|(k, _)| *k == format!("peer.{id}.status"))
        .map(|(_, v)| v)
        .unwrap_or_default()
}

#[test]
fn console_drives_a_three_peer_cluster() {
    let cluster = Cluster::start(ClusterSpec::eventual());
    let port = |id: usize| cluster.client_addrs[id].port();
    let addr = |id: usize| cluster.client_addrs[id].to_string();

    // Storage in both forms, multi-get, delete, noreply (silent), numbers, errors (run on
    // past them with --keep-going).
    let run = console_with(
        port(0),
        &["--keep-going"],
        "set greeting hello world\n\
         set k 5 0 3\nabc\n\
         get greeting k\n\
         # a comment, then a blank line\n\n\
         incr k 1\n\
         set n 0 0 2 noreply\n41\n\
         incr n 1\n\
         delete k\n\
         get k\n\
         bogus\n",
    );
    assert!(run.status.success(), "{:?}: {}", run.status, run.stderr);
    assert_eq!(
        run.stdout,
        "STORED\n\
         STORED\n\
         VALUE greeting 0 11\nhello world\nVALUE k 5 3\nabc\nEND\n\
         CLIENT_ERROR cannot increment or decrement non-numeric value\n\
         42\n\
         DELETED\n\
         END\n\
         ERROR\n"
    );
    assert_eq!(run.stderr, unknown_hint("bogus"));
    // The write reached the other peers.
    let mut reader = cluster.client(2);
    let seen = wait_for(Duration::from_secs(5), || {
        get(&mut reader, "greeting").as_deref() == Some(&b"hello world"[..])
    });
    assert!(seen.is_some(), "greeting never reached peer 2");
    console_ok(
        port(2),
        "get greeting\n",
        "VALUE greeting 0 11\nhello world\nEND\n",
    );

    // `show`: a summary line, the header, one row per peer. Peer 0 learns that the others
    // serve from their heartbeats, so wait for that view before asserting on it.
    let everyone_serving = common::cluster::wait_for(Duration::from_secs(10), || {
        let stats = cluster.cluster_stats(0);
        (1..3).all(|id| {
            stats
                .iter()
                .any(|(k, v)| k == &format!("peer.{id}.serving") && v == "true")
        })
    });
    assert!(
        everyone_serving.is_some(),
        "peer 0 never saw the others serving"
    );
    let run = console(port(0), "show\n");
    assert!(run.status.success(), "{}", run.stderr);
    let mut lines = run.stdout.lines();
    assert_eq!(
        lines.next(),
        Some(format!("peer 0 at {}: mode eventual, state serving", addr(0)).as_str())
    );
    assert_eq!(
        lines.next().map(|l| l
            .split("  ")
            .filter(|c| !c.is_empty())
            .map(str::trim)
            .collect()),
        Some(vec![
            "peer",
            "client addr",
            "peer addr",
            "status",
            "serving",
            "role",
            "items",
            "last heartbeat",
            "sync lag"
        ])
    );
    let rows = show_rows(&run.stdout);
    assert_eq!(rows.len(), 3, "{}", run.stdout);
    assert_eq!(rows[0][..5], ["0", &addr(0), "-", "self", "true"]);
    for (id, row) in rows.iter().enumerate().skip(1) {
        let peer_addr = cluster.peer_addrs[id].to_string();
        assert_eq!(
            row[..5],
            [
                id.to_string(),
                addr(id),
                peer_addr,
                "up".into(),
                "true".into()
            ],
            "{}",
            run.stdout
        );
        assert!(row[7..].join(" ").contains("ms"), "{}", run.stdout);
    }

    // `fail 1` from peer 0's console goes to peer 1, which then refuses data commands.
    console_ok(port(0), "fail 1\n", &format!("peer 1 ({}): OK\n", addr(1)));
    let run = console(port(1), "get greeting\n");
    assert_eq!(run.status.code(), Some(1));
    assert_eq!(run.stdout, "SERVER_ERROR peer failed\n");
    assert_eq!(
        run.stderr,
        stopped_at(1, "get greeting", "SERVER_ERROR peer failed")
    );
    let down = wait_for(Duration::from_secs(10), || {
        status_seen(&cluster, 0, 1) == "down"
    });
    assert!(down.is_some(), "peer 0 never saw peer 1 down");
    let run = console(port(0), "show\n");
    let rows = show_rows(&run.stdout);
    // (`serving` is the last report heard from it.)
    assert_eq!(
        rows[1][..4],
        ["1", &addr(1), &cluster.peer_addrs[1].to_string(), "down"],
        "{}",
        run.stdout
    );
    // Writes go on through the live peers.
    console_ok(port(0), "set during fail\n", "STORED\n");

    // `recover 1`: it catches up and serves again, with the write made while it was away.
    console_ok(
        port(0),
        "recover 1\n",
        &format!("peer 1 ({}): OK\n", addr(1)),
    );
    cluster.wait_serving(1, Duration::from_secs(20));
    let mut reader = cluster.client(1);
    let caught_up = wait_for(Duration::from_secs(10), || {
        get(&mut reader, "during").as_deref() == Some(&b"fail"[..])
    });
    assert!(
        caught_up.is_some(),
        "peer 1 did not catch up:\n{}",
        cluster.logs()
    );
    console_ok(port(1), "get during\n", "VALUE during 0 4\nfail\nEND\n");

    // `fail` / `recover` without an id act on the connected peer.
    let run = console_with(port(2), &["--keep-going"], "fail\nget greeting\nrecover\n");
    assert!(run.status.success(), "{}", run.stderr);
    assert_eq!(run.stdout, "OK\nSERVER_ERROR peer failed\nOK\n");
    cluster.wait_serving(2, Duration::from_secs(20));

    // `quit` ends the script: nothing after it runs.
    console_ok(
        port(0),
        "version\nquit\nget greeting\n",
        &format!("VERSION {}\n", memcord_protocol::VERSION),
    );
}

#[test]
fn console_reports_its_own_mistakes_and_keeps_going() {
    let peer = PeerProcess::start(&["--kv-type", "memory"]);
    let run = console(
        peer.port(),
        "set k 0 0 5\nhi\n\
         fail x\n\
         fail 3\n\
         show\n\
         set k 0 0 2\nhi\n\
         help\n\
         get k\n",
    );
    assert!(run.status.success(), "{}", run.stderr);
    assert_eq!(
        run.stdout,
        format!(
            "{} is a cluster of one (standalone): no peers to show\nSTORED\n{}\n\
             VALUE k 0 2\nhi\nEND\n",
            peer.addr,
            memcord_client::HELP
        )
    );
    assert_eq!(
        run.stderr,
        format!(
            "memcord client: the data line is 2 bytes, the command said 5; nothing sent\n\
             memcord client: fail takes a peer id, not \"x\"\n\
             memcord client: {} is a cluster of one: send `fail` without a peer id\n",
            peer.addr
        )
    );
}

#[test]
fn console_exits_non_zero_when_the_connection_fails() {
    // Nothing listens on a port just released.
    let port = free_port();
    let run = console(port, "get k\n");
    assert_eq!(run.status.code(), Some(1), "{}", run.stderr);
    assert_eq!(
        run.stderr,
        format!(
            "memcord: error: cannot connect to 127.0.0.1:{port}: Connection refused (os error \
             111)\n"
        )
    );
    assert_eq!(run.stdout, "");

    // A connection the server closes mid-script (a line past the limit): the rest still runs
    // on a new connection, and the exit status says something failed.
    let peer = PeerProcess::start(&["--kv-type", "memory"]);
    let long_line = format!("get {}\n", "k".repeat(300 * 1024));
    let run = console(peer.port(), &format!("set a b\n{long_line}get a\n"));
    assert_eq!(run.status.code(), Some(1), "{}", run.stderr);
    assert!(run.stdout.starts_with("STORED\n"), "{}", run.stdout);
    assert!(
        run.stdout.ends_with("VALUE a 0 1\nb\nEND\n"),
        "{}",
        run.stdout
    );
    // Closed, or reset while the fence was still being written.
    assert!(
        run.stderr
            .starts_with(&format!("memcord client: {}", peer.addr))
            || run.stderr.contains(&format!("to {} failed", peer.addr)),
        "{}",
        run.stderr
    );
}

#[test]
fn console_shows_and_fails_peers_of_a_linearizable_cluster() {
    let cluster = Cluster::start(ClusterSpec::ordered("linearizable"));
    let leader = cluster.leader(Duration::from_secs(20));
    let follower = (leader + 1) % 3;
    let port = |id: usize| cluster.client_addrs[id].port();
    let addr = |id: usize| cluster.client_addrs[id].to_string();

    console_ok(
        port(follower),
        "set greeting hello\nget greeting\n",
        "STORED\nVALUE greeting 0 5\nhello\nEND\n",
    );
    // Linearizable: the write is visible through every peer at once.
    console_ok(
        port(leader),
        "get greeting\n",
        "VALUE greeting 0 5\nhello\nEND\n",
    );

    // Roles travel in heartbeats: wait until the leader has heard both followers as such.
    wait_for(Duration::from_secs(10), || {
        let stats = cluster.cluster_stats(leader);
        (0..3).filter(|&id| id != leader).all(|id| {
            stats
                .iter()
                .any(|(k, v)| *k == format!("peer.{id}.role") && v == "follower")
        })
    })
    .expect("the leader hears both followers");
    let run = console(port(leader), "show\n");
    assert!(run.status.success(), "{}", run.stderr);
    let summary = run.stdout.lines().next().unwrap();
    assert!(
        summary.starts_with(&format!(
            "peer {leader} at {}: mode linearizable, state serving, role leader, leader {leader}, term ",
            addr(leader)
        )),
        "{}",
        run.stdout
    );
    let header = run.stdout.lines().nth(1).unwrap();
    assert!(header.ends_with("sync lag  applied index"), "{header}");
    let rows = show_rows(&run.stdout);
    assert_eq!(rows.len(), 3, "{}", run.stdout);
    for (id, row) in rows.iter().enumerate() {
        let role = if id == leader { "leader" } else { "follower" };
        assert_eq!(row[0], id.to_string());
        assert_eq!(row[1], addr(id));
        assert_eq!(row[3], if id == leader { "self" } else { "up" });
        assert_eq!(row[5], role, "{}", run.stdout);
    }

    // fail / recover a follower through the leader's console.
    console_ok(
        port(leader),
        &format!("fail {follower}\n"),
        &format!("peer {follower} ({}): OK\n", addr(follower)),
    );
    // (An ordered mode's failed peer cannot reach the queue: `no quorum`.)
    let run = console(port(follower), "get greeting\n");
    assert!(run.stdout.starts_with("SERVER_ERROR "), "{}", run.stdout);
    // The majority goes on.
    console_ok(port(leader), "set during fail\n", "STORED\n");
    console_ok(
        port(leader),
        &format!("recover {follower}\n"),
        &format!("peer {follower} ({}): OK\n", addr(follower)),
    );
    cluster.wait_serving(follower, Duration::from_secs(20));
    let mut reader = cluster.client(follower);
    let back = wait_for(Duration::from_secs(20), || {
        get(&mut reader, "during").as_deref() == Some(&b"fail"[..])
    });
    assert!(
        back.is_some(),
        "follower never served again:\n{}",
        cluster.logs()
    );
}

#[test]
fn console_speaks_the_meta_protocol() {
    let peer = PeerProcess::start(&["--kv-type", "memory"]);
    // A quiet miss prints nothing (the console fences every command), `ms` takes its data on
    // the next line as `set` does.
    console_ok(
        peer.port(),
        "ms k 2 T30 F5\nhi\nmg k v f\nmg nope v q\nmg nope v k\nma n N0 J5 v\nmn\n",
        "HD\nVA 2 f5\nhi\nEN knope\nVA 1\n5\nMN\n",
    );
}

#[test]
fn a_script_stops_at_the_first_error_reply() {
    let peer = PeerProcess::start(&["--kv-type", "memory"]);
    // A bad argument: the reply is printed, the rest is not run, the exit status is 1.
    let script = "set a 1\nincr a x\nget a\n";
    let run = console(peer.port(), script);
    assert_eq!(run.status.code(), Some(1));
    assert_eq!(
        run.stdout,
        "STORED\nCLIENT_ERROR invalid numeric delta argument\n"
    );
    assert_eq!(
        run.stderr,
        stopped_at(2, "incr a x", "CLIENT_ERROR invalid numeric delta argument")
    );
    // --keep-going runs every line and exits 0.
    let run = console_with(peer.port(), &["--keep-going"], script);
    assert!(run.status.success(), "{}", run.stderr);
    assert_eq!(
        run.stdout,
        "STORED\nCLIENT_ERROR invalid numeric delta argument\nVALUE a 0 1\n1\nEND\n"
    );
    assert_eq!(run.stderr, "");
    // An unknown command gets a hint to `help`; a data line counts as a line.
    let run = console(peer.port(), "set b 0 0 2\nhi\nstatz\nget b\n");
    assert_eq!(run.status.code(), Some(1));
    assert_eq!(run.stdout, "STORED\nERROR\n");
    assert_eq!(
        run.stderr,
        format!(
            "{}{}",
            unknown_hint("statz"),
            stopped_at(3, "statz", "ERROR")
        )
    );
}
