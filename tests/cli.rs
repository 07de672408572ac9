//! `memcord peer` from the command line: configuration errors are clear and exit non-zero,
//! flags and environment variables take effect.

mod common;

use common::peer::{run_to_exit, stat, PeerProcess};
use std::io::Write;

fn config_file(text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::Builder::new().suffix(".ini").tempfile().unwrap();
    file.write_all(text.as_bytes()).unwrap();
    file
}

fn fails_with(args: &[&str], env: &[(&str, &str)], message: &str) {
    let (status, stderr) = run_to_exit(args, env);
    assert!(!status.success(), "memcord {args:?} succeeded");
    assert!(
        stderr.contains(message),
        "memcord {args:?}: expected {message:?} in stderr:\n{stderr}"
    );
}

#[test]
fn missing_config_file() {
    fails_with(
        &["peer", "--config", "/nonexistent/memcord.ini"],
        &[],
        "config file /nonexistent/memcord.ini not found",
    );
}

#[test]
fn unknown_consistency_mode() {
    fails_with(
        &["peer", "--port", "0", "--consistency", "strong"],
        &[],
        "unknown consistency mode 'strong'",
    );
    let file = config_file("[cluster]\nconsistency = causal\n");
    fails_with(
        &[
            "peer",
            "--port",
            "0",
            "--config",
            file.path().to_str().unwrap(),
        ],
        &[],
        "unknown consistency mode 'causal'",
    );
}

#[test]
fn unknown_kv_type() {
    fails_with(
        &["peer", "--port", "0", "--kv-type", "redis"],
        &[],
        "unknown kv type 'redis'",
    );
}

#[test]
fn bad_addresses() {
    let file = config_file("[peer.0]\nclient_addr = 127.0.0.1:99999\n");
    fails_with(
        &["peer", "--config", file.path().to_str().unwrap()],
        &[],
        "peer.0.client_addr: invalid address '127.0.0.1:99999'",
    );
    fails_with(&["peer", "--port", "99999"], &[], "99999");
}

#[test]
fn unknown_peer_id() {
    fails_with(
        &["peer", "--config", "config.ini", "--id", "7"],
        &[],
        "unknown peer id 7 (the configuration defines peers 0, 1, 2)",
    );
}

#[test]
fn several_peers_without_a_secret_are_refused() {
    let file = config_file(
        "[cluster]\nconsistency = eventual\nsecret =\n\
         [peer.0]\nclient_addr = 127.0.0.1:0\n[peer.1]\nclient_addr = 127.0.0.1:0\n",
    );
    fails_with(
        &[
            "peer",
            "--config",
            file.path().to_str().unwrap(),
            "--id",
            "0",
        ],
        &[],
        "secret is empty",
    );
}

#[test]
fn a_config_with_one_peer_serves_it() {
    let file = config_file(
        "[cluster]\nconsistency = eventual\n[server]\nmax_connections = 33\n\
         [peer.4]\nclient_addr = 127.0.0.1:0\n",
    );
    let peer = PeerProcess::start(&["--config", file.path().to_str().unwrap(), "--port", "0"]);
    assert!(peer
        .ready_line
        .starts_with("memcord peer 4 listening on 127.0.0.1:"));
    let settings = peer.client().stats("settings");
    assert_eq!(stat(&settings, "maxconns"), 33);
    assert_eq!(stat(&settings, "memcord_peer_id"), 4);
    assert!(settings
        .iter()
        .any(|(n, v)| n == "memcord_consistency" && v == "eventual"));
}

#[test]
fn flags_beat_environment_beats_file() {
    let file =
        config_file("[server]\nmax_connections = 10\nmax_item_size = 5000\nidle_timeout = 7\n");
    let path = file.path().to_str().unwrap();
    let peer = PeerProcess::start_with_env(
        &["--config", path, "--max-connections", "30"],
        &[
            ("MEMCORD_MAX_CONNECTIONS", "20"),
            ("MEMCORD_MAX_ITEM_SIZE", "6000"),
            ("MEMCORD_SERVER__IDLE_TIMEOUT", "9"),
        ],
    );
    let settings = peer.client().stats("settings");
    assert_eq!(stat(&settings, "maxconns"), 30);
    assert_eq!(stat(&settings, "item_size_max"), 6000);
    assert_eq!(stat(&settings, "idle_timeout"), 9);
}

#[test]
fn ready_line_names_peer_kv_and_mode() {
    let peer = PeerProcess::start(&["--kv-type", "memory"]);
    let expected = format!(
        "memcord peer 0 listening on {} (kv: memory, mode: standalone)",
        peer.addr
    );
    assert_eq!(peer.ready_line, expected);
}

#[test]
fn memcacheds_short_flags_have_memcacheds_meaning() {
    // As a systemd unit for memcached would start it.
    let udp = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .unwrap()
        .port()
        .to_string();
    let peer = PeerProcess::start(&[
        "-p",
        "0",
        "-l",
        "127.0.0.1",
        "-m",
        "48",
        "-c",
        "77",
        "-I",
        "2m",
        "-t",
        "2",
        "-U",
        &udp,
        "-A",
        "-vv",
    ]);
    assert!(peer.ready_line.contains(&format!("udp: 127.0.0.1:{udp})")));
    let settings = peer.client().stats("settings");
    assert_eq!(stat(&settings, "maxbytes"), 48 << 20);
    assert_eq!(stat(&settings, "maxconns"), 77);
    assert_eq!(stat(&settings, "item_size_max"), 2 << 20);
    assert_eq!(stat(&settings, "num_threads"), 2);
    assert_eq!(stat(&settings, "udpport"), udp.parse::<u64>().unwrap());
    assert_eq!(stat(&settings, "verbosity"), 2);
    let find = |name: &str| settings.iter().find(|(n, _)| n == name).unwrap().1.clone();
    assert_eq!(find("shutdown_command"), "yes");
    assert_eq!(find("inter"), "127.0.0.1");

    // memcached's long names, and -I's k suffix.
    let peer = PeerProcess::start(&[
        "--listen",
        "127.0.0.1",
        "--memory-limit",
        "9",
        "--conn-limit",
        "5",
        "--max-item-size",
        "512k",
    ]);
    let settings = peer.client().stats("settings");
    assert_eq!(stat(&settings, "maxbytes"), 9 << 20);
    assert_eq!(stat(&settings, "maxconns"), 5);
    assert_eq!(stat(&settings, "item_size_max"), 512 << 10);
    let find = |name: &str| settings.iter().find(|(n, _)| n == name).unwrap().1.clone();
    assert_eq!(find("shutdown_command"), "no");
    assert_eq!(find("udpport"), "0");
}

#[test]
fn item_sizes_take_memcacheds_suffixes_everywhere() {
    let file = config_file("[server]\nmax_item_size = 3k\n");
    let path = file.path().to_str().unwrap();
    let peer = PeerProcess::start(&["--config", path]);
    assert_eq!(
        stat(&peer.client().stats("settings"), "item_size_max"),
        3072
    );
    let peer = PeerProcess::start_with_env(&[], &[("MEMCORD_MAX_ITEM_SIZE", "1M")]);
    assert_eq!(
        stat(&peer.client().stats("settings"), "item_size_max"),
        1 << 20
    );
    fails_with(&["peer", "-p", "0", "-I", "2g"], &[], "'2g' is not a size");
    fails_with(&["peer", "-p", "0", "-I", "2048m"], &[], "out of range");
    fails_with(
        &["peer", "-p", "0", "--config", path, "-U", "x"],
        &[],
        "invalid value 'x'",
    );
}

#[test]
fn a_misspelt_key_is_reported_once_with_the_key_meant() {
    let file = config_file("[cluster]\nconsistency = eventual\nheartbaet_ms = 100\n");
    let path = file.path().to_str().unwrap();
    let (status, stderr) = run_to_exit(&["peer", "--port", "0", "--config", path], &[]);
    assert_eq!(status.code(), Some(1));
    assert_eq!(
        stderr,
        format!(
            "memcord: error: {path}, line 3: [cluster] has no key `heartbaet_ms`; did you mean \
             `heartbeat_ms`?\n"
        )
    );
    let (status, stderr) =
        run_to_exit(&["peer", "--port", "0"], &[("MEMCORD_KV__CONECTIONS", "2")]);
    assert_eq!(status.code(), Some(1));
    assert_eq!(
        stderr,
        "memcord: error: MEMCORD_KV__CONECTIONS: [kv] has no key `conections`; did you mean \
         `MEMCORD_KV__CONNECTIONS`?\n"
    );
}

#[test]
fn an_ini_syntax_error_names_the_file_and_line() {
    let file =
        config_file("[cluster]\nconsistency = eventual\n[peer.0\nclient_addr = 127.0.0.1:0\n");
    let path = file.path().to_str().unwrap();
    let (status, stderr) = run_to_exit(&["peer", "--config", path], &[]);
    assert_eq!(status.code(), Some(1));
    assert_eq!(
        stderr,
        format!("memcord: error: {path}, line 3: `[peer.0` has no closing `]`\n")
    );
}

#[test]
fn a_refused_connection_is_said_once() {
    let port = common::cluster::free_port().to_string();
    let target = format!("127.0.0.1:{port}");
    for args in [
        &["client", "--port", &port][..],
        &["bench", "--target", &target, "--duration", "1"][..],
    ] {
        let (status, stderr) = run_to_exit(args, &[]);
        assert_eq!(status.code(), Some(1), "{args:?}");
        assert_eq!(
            stderr,
            format!(
                "memcord: error: cannot connect to {target}: Connection refused (os error 111)\n"
            ),
            "{args:?}"
        );
    }
}
