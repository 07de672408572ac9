//! `config::load`: file, structured environment and overrides merged with the right precedence,
//! and clear errors.

use memcord_proxy::config::{load, ConfigError, Consistency, HostPort, KvType, Overrides};
use std::io::Write;
use std::path::PathBuf;

fn file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(".ini").tempfile().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

fn with_file(f: &tempfile::NamedTempFile, id: Option<u16>) -> Overrides {
    Overrides {
        config: Some(f.path().to_path_buf()),
        id,
        ..Overrides::default()
    }
}

fn no_env() -> Vec<(String, String)> {
    Vec::new()
}

#[test]
fn defaults_without_a_file_are_a_lone_memcached_lookalike() {
    let c = load(&Overrides::default(), no_env()).unwrap();
    assert_eq!(c.id, 0);
    assert_eq!(c.peers.len(), 1);
    assert_eq!(c.me().client_addr, HostPort::new("127.0.0.1", 11211));
    assert_eq!(c.kv.kv_type, KvType::Memory);
    assert_eq!(c.cluster.consistency, Consistency::Linearizable);
    assert_eq!(c.server.max_connections, 1024);
    assert_eq!(c.server.max_item_size, 1024 * 1024);
    assert_eq!(c.server.memory_limit_mb, 64);
    assert_eq!(c.server.idle_timeout_secs, 0);
}

#[test]
fn the_repository_config_describes_three_peers() {
    let overrides = Overrides {
        config: Some(PathBuf::from("config.ini")),
        id: Some(2),
        ..Overrides::default()
    };
    let c = load(&overrides, no_env()).unwrap();
    assert_eq!(c.peers.keys().copied().collect::<Vec<_>>(), vec![0, 1, 2]);
    assert_eq!(c.me().client_addr, HostPort::new("127.0.0.1", 8002));
    assert_eq!(c.me().peer_addr, HostPort::new("127.0.0.1", 9002));
    assert_eq!(c.me().kv_addr, HostPort::new("127.0.0.1", 11203));
    assert_eq!(c.peers[&0].client_addr.port, 8000);
}

#[test]
fn precedence_is_overrides_then_environment_then_file() {
    let f = file(
        "[cluster]\nconsistency = sequential\nheartbeat_ms = 50\n\
         [server]\nmax_connections = 10\nidle_timeout = 3\n[kv]\ntype = memcached\n\
         [peer.0]\nclient_addr = 10.0.0.1:7000\nkv_addr = db:11211\n",
    );
    let env = vec![
        (
            "MEMCORD_CLUSTER__HEARTBEAT_MS".to_string(),
            "75".to_string(),
        ),
        (
            "MEMCORD_SERVER__MAX_CONNECTIONS".to_string(),
            "20".to_string(),
        ),
        ("MEMCORD_PORT".to_string(), "1".to_string()), // a flag's variable: clap's business
        ("OTHER__THING".to_string(), "x".to_string()),
    ];
    let overrides = Overrides {
        max_connections: Some(30),
        port: Some(7100),
        kv_port: Some(11300),
        consistency: Some("eventual".into()),
        ..with_file(&f, None)
    };
    let c = load(&overrides, env).unwrap();
    assert_eq!(c.cluster.heartbeat_ms, 75);
    assert_eq!(c.server.max_connections, 30);
    assert_eq!(c.server.idle_timeout_secs, 3);
    assert_eq!(c.cluster.consistency, Consistency::Eventual);
    assert_eq!(c.kv.kv_type, KvType::Memcached);
    assert_eq!(c.me().client_addr, HostPort::new("10.0.0.1", 7100));
    assert_eq!(c.me().kv_addr, HostPort::new("db", 11300));
}

#[test]
fn peer_count_fills_in_conventional_addresses() {
    let f = file("[cluster]\npeers = 3\n[peer.1]\nclient_addr = 127.0.0.1:8501\n");
    let c = load(&with_file(&f, Some(2)), no_env()).unwrap();
    assert_eq!(c.peers.len(), 3);
    assert_eq!(c.peers[&1].client_addr.port, 8501);
    assert_eq!(c.me().client_addr.port, 8002);
}

#[test]
fn errors_say_what_is_wrong() {
    let missing = Overrides {
        config: Some(PathBuf::from("/nope/memcord.ini")),
        ..Overrides::default()
    };
    assert!(matches!(
        load(&missing, no_env()),
        Err(ConfigError::MissingFile(_))
    ));

    let f = file("[cluster]\nconsistency = strong\n");
    let err = load(&with_file(&f, None), no_env()).unwrap_err();
    assert!(matches!(err, ConfigError::UnknownConsistency(ref s) if s == "strong"));

    let f = file("[peer.0]\npeer_addr = localhost\n");
    let err = load(&with_file(&f, None), no_env())
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "peer.0.peer_addr: invalid address 'localhost' (expected host:port)"
    );

    let f = file("[peer.0]\n[peer.1]\n");
    let err = load(&with_file(&f, Some(5)), no_env())
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "unknown peer id 5 (the configuration defines peers 0, 1)"
    );
    let err = load(&with_file(&f, None), no_env())
        .unwrap_err()
        .to_string();
    assert!(err.contains("--id"), "{err}");

    let f = file("[peer.zero]\n");
    let err = load(&with_file(&f, None), no_env())
        .unwrap_err()
        .to_string();
    assert!(err.contains("[peer.zero]"), "{err}");

    let f = file("[server]\nmax_conections = 5\n");
    let err = load(&with_file(&f, None), no_env())
        .unwrap_err()
        .to_string();
    assert!(
        err.ends_with("[server] has no key `max_conections`; did you mean `max_connections`?"),
        "{err}"
    );

    // Zero is refused: snapshots are what compacts the log.
    let f = file("[cluster]\nsnapshot_logs = 0\n");
    let err = load(&with_file(&f, None), no_env())
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("cluster.snapshot_logs must be at least 1"),
        "{err}"
    );

    let f = file("[server]\nmax_connections = lots\n");
    let err = load(&with_file(&f, None), no_env())
        .unwrap_err()
        .to_string();
    assert!(err.contains("max_connections"), "{err}");
}

#[test]
fn ipv6_addresses_round_trip() {
    let hp = HostPort::parse("x", "[::1]:8000").unwrap();
    assert_eq!(hp, HostPort::new("::1", 8000));
    assert_eq!(hp.to_string(), "[::1]:8000");
}

#[test]
fn peer_ids_fit_the_clock() {
    let overrides = Overrides {
        id: Some(256),
        ..Overrides::default()
    };
    let err = load(&overrides, no_env()).unwrap_err().to_string();
    assert_eq!(err, "peer id 256 is too large (at most 255)");
}

#[test]
fn verbosity_raises_the_default_log_level_only() {
    let level = |verbosity, log_level: Option<&str>| {
        let overrides = Overrides {
            verbosity,
            log_level: log_level.map(str::to_string),
            ..Overrides::default()
        };
        let config = load(&overrides, no_env()).unwrap();
        (config.server.verbosity, config.server.log_level)
    };
    assert_eq!(level(None, None), (0, "info".to_string()));
    assert_eq!(level(Some(1), None), (1, "info".to_string()));
    assert_eq!(level(Some(2), None), (2, "debug".to_string()));
    assert_eq!(level(Some(3), None), (3, "trace".to_string()));
    assert_eq!(level(Some(2), Some("warn")), (2, "warn".to_string()));
}

#[test]
fn udp_and_shutdown_settings_from_the_file() {
    let f = file("[server]\nudp_port = 11311\nenable_shutdown = true\nmax_item_size = 2m\n");
    let c = load(&with_file(&f, None), no_env()).unwrap();
    assert_eq!(c.server.udp_port, 11311);
    assert!(c.server.enable_shutdown);
    assert_eq!(c.server.max_item_size, 2 << 20);
    let c = load(&Overrides::default(), no_env()).unwrap();
    assert_eq!(
        c.server.udp_port, 0,
        "UDP is off by default, as in memcached 1.6"
    );
    assert!(!c.server.enable_shutdown);
}

/// What loading `text` as the config file says, with the file's path as `FILE`.
fn refusal(text: &str) -> String {
    let f = file(text);
    let err = load(&with_file(&f, None), no_env())
        .unwrap_err()
        .to_string();
    err.replace(&f.path().display().to_string(), "FILE")
}

#[test]
fn a_misspelt_key_names_the_file_line_section_and_the_key_meant() {
    let cases = [
        (
            "[cluster]\nconsistency = eventual\nheartbaet_ms = 100\n",
            "FILE, line 3: [cluster] has no key `heartbaet_ms`; did you mean `heartbeat_ms`?",
        ),
        // A unit left off, a key of another section, a key like none.
        (
            "[kv]\ntimeout = 5\n",
            "FILE, line 2: [kv] has no key `timeout`; did you mean `timeout_ms`?",
        ),
        (
            "[cluster]\nmax_connections = 5\n",
            "FILE, line 2: [cluster] has no key `max_connections`; `max_connections` is a key \
             of [server]",
        ),
        (
            "[kv]\ncolour = blue\n",
            "FILE, line 2: [kv] has no key `colour`; it takes `type`, `timeout_ms`, \
             `connections`",
        ),
        // Sections too.
        (
            "[clustre]\nheartbeat_ms = 100\n",
            "FILE, line 1: there is no section [clustre]; did you mean [cluster]?",
        ),
        (
            "[peer1]\nclient_addr = 127.0.0.1:1\n",
            "FILE, line 1: there is no section [peer1]; did you mean [peer.1]?",
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(refusal(text), expected, "{text:?}");
    }
}

#[test]
fn a_misspelt_variable_names_the_variable_meant() {
    let env = vec![(
        "MEMCORD_CLUSTER__HEARTBAET_MS".to_string(),
        "100".to_string(),
    )];
    let err = load(&Overrides::default(), env).unwrap_err().to_string();
    assert_eq!(
        err,
        "MEMCORD_CLUSTER__HEARTBAET_MS: [cluster] has no key `heartbaet_ms`; did you mean \
         `MEMCORD_CLUSTER__HEARTBEAT_MS`?"
    );
    let env = vec![("MEMCORD_SEVRER__THREADS".to_string(), "1".to_string())];
    let err = load(&Overrides::default(), env).unwrap_err().to_string();
    assert_eq!(
        err,
        "MEMCORD_SEVRER__THREADS: there is no section [sevrer]; did you mean \
         `MEMCORD_SERVER__THREADS`?"
    );
}

#[test]
fn a_syntax_error_names_the_file_and_line_in_words() {
    let cases = [
        (
            "[cluster]\nheartbeat_ms 100\npush = true\n",
            "FILE, line 2: `heartbeat_ms 100` is neither `key = value` nor a `[section]` header",
        ),
        (
            "[cluster\nheartbeat_ms = 100\n[peer.0]\n",
            "FILE, line 1: `[cluster` has no closing `]`",
        ),
        (
            "[cluster]\nsecret = ab\\xZZZZ\n",
            "FILE, line 2: this line cannot be read: a `\\` escape or a quote that is not closed",
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(refusal(text), expected, "{text:?}");
    }
}

#[test]
fn no_file_no_variables_and_no_flags_are_the_documented_defaults() {
    let loaded = load(&Overrides::default(), no_env()).unwrap();
    assert_eq!(loaded, memcord_proxy::config::PeerConfig::default());
    assert_eq!(loaded.cluster.heartbeat_ms, 200);
    assert_eq!(loaded.cluster.failure_timeout_ms, 1000);
    assert_eq!(loaded.cluster.sync_interval_ms, 500);
}
