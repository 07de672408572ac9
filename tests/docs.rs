//! The documentation and deployment files cannot rot quietly:
//!
//! * every command in README's `sh` blocks is listed in [`EXERCISED`] with the test (or the
//!   script) that runs it, and that test exists; a command added to the README without a test,
//!   or a listed command gone from the README, fails here;
//! * docker-compose.yml parses, and its services and ports are config.ini's peers and
//!   memcached backends (there is no Docker engine here to start it);
//! * deploy/compose-config.ini loads with memcord's own config loader and names the same peers
//!   and ports by service name;
//! * the Dockerfile is the documented two-stage build.

use memcord_proxy::config::{self, load, KvType, Overrides, PeerConfig};
use std::path::{Path, PathBuf};
use yaml_rust2::{Yaml, YamlLoader};

/// README commands and where each is run: `tests/<file>.rs::<test fn>` for a test, or a file
/// that runs it (`scripts/test.sh` is the test command itself; `startup.sh` builds the release
/// binary). Tests start processes on free ports rather than the README's fixed ones.
const EXERCISED: &[(&str, &str)] = &[
    // Quick start.
    (
        "cargo run --release -- cluster",
        "tests/launch.rs::memcord_cluster_serves_pymemcache_on_three_ports_and_stops_on_sigint",
    ),
    (
        "cargo run --release -- client --port 8000",
        "tests/console.rs::console_drives_a_three_peer_cluster",
    ),
    ("scripts/test.sh", "scripts/test.sh"),
    // One peer, alone or in front of memcached.
    (
        "cargo run --release -- peer --port 11311 --kv-type memory",
        "tests/server.rs::storage_commands_answer_exactly",
    ),
    (
        "memcached -p 11201 -u nobody &",
        "tests/clients.rs::rust_memcache_crate_memcached_backed",
    ),
    (
        "cargo run --release -- peer --port 11311 --kv-type memcached --kv-host 127.0.0.1 --kv-port 11201",
        "tests/clients.rs::rust_memcache_crate_memcached_backed",
    ),
    // A cluster by hand.
    ("cargo build --release", "startup.sh"),
    (
        "for id in 0 1 2; do target/release/memcord peer --config config.ini --id $id & done",
        "tests/eventual.rs::writes_through_different_peers_converge_by_the_periodic_sync_alone",
    ),
    // The console.
    (
        "printf 'set greeting hello\\nget greeting\\nshow\\n' | memcord client --port 8000",
        "tests/console.rs::console_drives_a_three_peer_cluster",
    ),
    (
        "memcord cluster --peers 3 --consistency eventual --base-port 8000",
        "tests/launch.rs::memcord_cluster_serves_pymemcache_on_three_ports_and_stops_on_sigint",
    ),
    // The consistency campaign.
    (
        "memcord check --consistency linearizable --faults mix --duration 5 --seed 1 --out check-out",
        "tests/check.rs::linearizable_mode_passes_under_mixed_faults",
    ),
    // The scripts.
    (
        "./startup.sh -c eventual",
        "tests/scripts.rs::startup_and_stop_scripts_run_a_memcached_backed_cluster",
    ),
    (
        "./stop.sh",
        "tests/scripts.rs::startup_and_stop_scripts_run_a_memcached_backed_cluster",
    ),
    // Docker: no engine here, so the files are checked below instead of run.
    (
        "docker compose up --build -d",
        "tests/docs.rs::compose_file_matches_config_ini",
    ),
    (
        "docker compose down",
        "tests/docs.rs::compose_file_matches_config_ini",
    ),
];

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|err| panic!("reading {path}: {err}"))
}

/// The commands in the README's ```sh blocks: comments dropped, `\` continuations joined,
/// spaces collapsed.
fn readme_commands() -> Vec<String> {
    let mut commands = Vec::new();
    let mut in_sh = false;
    let mut pending = String::new();
    for line in read("README.md").lines() {
        let trimmed = line.trim();
        if !in_sh {
            in_sh = trimmed == "```sh";
            continue;
        }
        if trimmed == "```" {
            in_sh = false;
            continue;
        }
        let code = match trimmed.find(" #") {
            Some(at) => &trimmed[..at],
            None if trimmed.starts_with('#') => "",
            None => trimmed,
        };
        pending += code;
        if let Some(stripped) = pending.strip_suffix('\\') {
            pending = stripped.to_string();
            continue;
        }
        let command = pending.split_whitespace().collect::<Vec<_>>().join(" ");
        if !command.is_empty() {
            commands.push(command);
        }
        pending.clear();
    }
    commands
}

#[test]
fn every_readme_command_is_run_by_a_test() {
    let commands = readme_commands();
    assert!(
        commands.len() >= 5,
        "README has few sh commands: {commands:?}"
    );
    for command in &commands {
        assert!(
            EXERCISED.iter().any(|(c, _)| c == command),
            "README command {command:?} is not run by any test: add a test and list it in \
             tests/docs.rs EXERCISED"
        );
    }
    for (command, place) in EXERCISED {
        assert!(
            commands.contains(&command.to_string()),
            "{command:?} is listed in EXERCISED but no longer in the README"
        );
        match place.split_once("::") {
            Some((file, test)) => {
                let source = read(file);
                assert!(
                    source.contains(&format!("fn {test}()")),
                    "{file} has no test fn {test} (listed for {command:?})"
                );
            }
            None => assert!(repo(place).is_file(), "{place} is missing"),
        }
    }
    // The one place that builds the release binary does so with the README's command.
    assert!(read("startup.sh").contains("cargo build --release"));
}

/// config.ini's peers, each as `memcord peer --config config.ini --id N` would see them.
fn peers_of(path: &str) -> Vec<PeerConfig> {
    let first = load(
        &Overrides {
            config: Some(repo(path)),
            id: Some(0),
            ..Overrides::default()
        },
        std::iter::empty(),
    )
    .unwrap_or_else(|err| panic!("{path}: {err}"));
    first
        .peers
        .keys()
        .map(|id| {
            load(
                &Overrides {
                    config: Some(repo(path)),
                    id: Some(*id),
                    ..Overrides::default()
                },
                std::iter::empty(),
            )
            .unwrap()
        })
        .collect()
}

fn strings(yaml: &Yaml) -> Vec<String> {
    yaml.as_vec()
        .map(|items| {
            items
                .iter()
                .map(|item| match item {
                    Yaml::String(s) => s.clone(),
                    Yaml::Integer(n) => n.to_string(),
                    other => panic!("expected a string, got {other:?}"),
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn compose_file_matches_config_ini() {
    let docs = YamlLoader::load_from_str(&read("docker-compose.yml")).expect("compose parses");
    let compose = &docs[0];
    let services = compose["services"].as_hash().expect("a services map");
    let names: Vec<&str> = services.keys().filter_map(Yaml::as_str).collect();
    let peers = peers_of("config.ini");
    assert_eq!(peers.len(), 3, "config.ini names three peers");
    assert_eq!(names.len(), 2 * peers.len(), "services: {names:?}");
    // docker-compose.yml's header shows the README's commands.
    let header = read("docker-compose.yml");
    assert!(
        header.contains("docker compose up --build -d") && header.contains("docker compose down")
    );

    for peer in &peers {
        let id = peer.id;
        let me = peer.me();
        let (client, kv) = (me.client_addr.port, me.kv_addr.port);

        let backend = &compose["services"][format!("memcached-{id}").as_str()];
        assert!(!backend.is_badvalue(), "no service memcached-{id}");
        assert!(backend["image"].as_str().unwrap().starts_with("memcached:"));
        let command = strings(&backend["command"]);
        let port_flag = command
            .iter()
            .position(|w| w == "-p")
            .expect("memcached -p");
        assert_eq!(
            command[port_flag + 1],
            kv.to_string(),
            "memcached-{id} port"
        );
        assert_eq!(strings(&backend["ports"]), [format!("{kv}:{kv}")]);

        let service = &compose["services"][format!("memcord-{id}").as_str()];
        assert!(!service.is_badvalue(), "no service memcord-{id}");
        assert_eq!(service["build"].as_str(), Some("."));
        assert_eq!(
            strings(&service["command"]),
            [
                "peer",
                "--config",
                "/etc/memcord/config.ini",
                "--id",
                &id.to_string()
            ]
        );
        assert_eq!(
            strings(&service["volumes"]),
            ["./deploy/compose-config.ini:/etc/memcord/config.ini:ro"]
        );
        assert_eq!(strings(&service["ports"]), [format!("{client}:{client}")]);
        assert_eq!(strings(&service["depends_on"]), [format!("memcached-{id}")]);
    }

    // The compose config: the same peers and ports, by service name, over memcached.
    let composed = peers_of("deploy/compose-config.ini");
    assert_eq!(composed.len(), peers.len());
    for (peer, inside) in peers.iter().zip(&composed) {
        let (id, a, b) = (peer.id, peer.me(), inside.me());
        assert_eq!(inside.id, id);
        assert_eq!(
            b.client_addr.to_string(),
            format!("memcord-{id}:{}", a.client_addr.port)
        );
        assert_eq!(
            b.peer_addr.to_string(),
            format!("memcord-{id}:{}", a.peer_addr.port)
        );
        assert_eq!(
            b.kv_addr.to_string(),
            format!("memcached-{id}:{}", a.kv_addr.port)
        );
        assert_eq!(inside.kv.kv_type, KvType::Memcached);
        assert!(!inside.cluster.secret.is_empty());
    }
}

#[test]
fn dockerfile_is_a_two_stage_release_build() {
    let dockerfile = read("Dockerfile");
    let stages: Vec<&str> = dockerfile
        .lines()
        .filter(|l| l.starts_with("FROM "))
        .collect();
    assert_eq!(
        stages,
        ["FROM rust:1-bookworm AS build", "FROM debian:bookworm-slim"]
    );
    assert!(dockerfile.contains("cargo build --release --locked --bin memcord"));
    assert!(dockerfile.contains("COPY --from=build /src/target/release/memcord "));
    assert!(dockerfile.contains("ENTRYPOINT [\"memcord\"]"));
    // The build context leaves out build output and run folders.
    let ignore = read(".dockerignore");
    for entry in ["target", "run"] {
        assert!(
            ignore.lines().any(|l| l == entry),
            ".dockerignore lacks {entry}"
        );
    }
}

/// README's configuration reference: `(section, key, default)` rows between its markers.
fn documented_settings() -> Vec<(String, String, String)> {
    let readme = read("README.md");
    let start = readme
        .find("<!-- config-reference:start -->")
        .expect("README has the configuration reference");
    let end = readme
        .find("<!-- config-reference:end -->")
        .expect("the reference ends");
    let cell = |text: &str| text.trim().trim_matches('`').to_string();
    readme[start..end]
        .lines()
        .filter(|line| line.starts_with("| `["))
        .map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split('|').collect();
            assert!(cells.len() >= 4, "malformed reference row: {line}");
            let section = cell(cells[0]).trim_matches(['[', ']']).to_string();
            (section, cell(cells[1]), cells[2].trim().to_string())
        })
        .collect()
}

/// Writes `text` as an ini file and loads it as memcord does.
fn load_ini(dir: &Path, text: &str) -> Result<PeerConfig, String> {
    let path = dir.join("probe.ini");
    std::fs::write(&path, text).unwrap();
    let overrides = Overrides {
        config: Some(path),
        ..Overrides::default()
    };
    load(&overrides, Vec::new()).map_err(|e| e.to_string())
}

#[test]
fn readme_configuration_reference_matches_the_config_structs() {
    let rows = documented_settings();
    let dir = tempfile::tempdir().unwrap();
    for section in config::SECTIONS {
        let header = match section {
            "peer.N" => "[peer.0]".to_string(),
            other => format!("[{other}]"),
        };
        let mut documented: Vec<String> = rows
            .iter()
            .filter(|(s, _, _)| s == section)
            .map(|(_, k, _)| k.clone())
            .collect();
        documented.sort();
        let mut accepted = config::accepted_keys(section).to_vec();
        accepted.sort();
        assert_eq!(
            documented, accepted,
            "README's [{section}] keys against the config struct"
        );
        // And the loader refuses a key that is not among them.
        let err = load_ini(dir.path(), &format!("{header}\nzz_not_a_key = 1\n"))
            .expect_err("an unknown key is refused");
        assert!(err.contains("has no key `zz_not_a_key`"), "{err}");
    }
    // A documented default, written out, changes nothing: README's defaults are
    // `PeerConfig::default()`'s, which `peer::settings`' tests hold every module config to.
    let baseline = load_ini(dir.path(), "").expect("an empty file loads");
    assert_eq!(baseline, PeerConfig::default());
    for (section, key, default) in &rows {
        if section == "peer.N" || !default.starts_with('`') {
            continue;
        }
        let value = default.trim_matches('`');
        let loaded = load_ini(dir.path(), &format!("[{section}]\n{key} = {value}\n"))
            .unwrap_or_else(|e| panic!("[{section}] {key} = {value}: {e}"));
        assert_eq!(
            loaded, baseline,
            "[{section}] {key}: README's default {value} is not the default"
        );
    }
}

#[test]
fn the_test_script_builds_the_broken_build() {
    // Without the fault-injection feature `tests/check.rs` leaves out the test that proves
    // `memcord check` catches a broken linearizable build (it needs `memcord-faulty`).
    let script = read("scripts/test.sh");
    assert!(
        script
            .lines()
            .any(|line| line.trim() == "cargo test --workspace --all-targets --all-features"),
        "scripts/test.sh no longer tests with --all-features"
    );
}
