//! `memcord cluster`: a whole local cluster in one process — the one-command demo.
//!
//! N peers (three by default) are bound from a generated config.ini (in a temporary folder,
//! removed on exit, with a fresh random secret), each served on the same tokio runtime exactly
//! as `memcord peer` serves one:
//!
//! ```text
//! peer i: clients on HOST:(base_port + i), peer links on HOST:(peer_base_port + i),
//!         memcached backend (--kv-type memcached) on 127.0.0.1:(kv_base_port + i)
//! defaults: base_port 8000, peer_base_port = base_port + 1000, kv_base_port 11201
//! ```
//!
//! so the defaults are config.ini's addresses. It prints the addresses and a ready-to-paste
//! `memcord client` line once every peer serves, and stops cleanly (every peer finishes its
//! requests in flight) when the shutdown future completes (Ctrl-C or SIGTERM in the binary).

use memcord_client::connection::Connection;
use memcord_proxy::config::{load, ConfigError, Overrides};
use memcord_proxy::peer::{BoundPeer, PeerError};
use std::fmt::Write as _;
use std::future::Future;
use std::time::{Duration, Instant};

/// `memcord cluster`: what to start.
#[derive(Debug, Clone, clap::Args)]
pub struct ClusterArgs {
    /// Number of peers (1-255).
    #[arg(long, default_value_t = 3)]
    pub peers: u16,
    /// Consistency mode: linearizable, sequential or eventual.
    #[arg(long, default_value = "eventual")]
    pub consistency: String,
    /// Backing store: memory (embedded) or memcached (one already running per peer, on
    /// kv_base_port + i).
    #[arg(long, default_value = "memory")]
    pub kv_type: String,
    /// Host (address) every peer binds and prints.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Peer i serves clients on base_port + i.
    #[arg(long, default_value_t = 8000)]
    pub base_port: u16,
    /// Peer i listens for other peers on peer_base_port + i (default base_port + 1000).
    #[arg(long)]
    pub peer_base_port: Option<u16>,
    /// With --kv-type memcached, peer i's memcached listens on 127.0.0.1:(kv_base_port + i).
    #[arg(long, default_value_t = 11201)]
    pub kv_base_port: u16,
    /// Log filter for the peers' logs on stderr (`warn`, `info`, `memcord=debug` …); by
    /// default memcord's warnings, less the peers marking each other down as the cluster stops
    /// and the agreement engine's own chatter while the peers find each other.
    #[arg(
        long,
        default_value = "warn,memcord_proxy::cluster::membership=error,openraft=off"
    )]
    pub log_level: String,
}

/// Why the cluster could not start.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The flags do not describe a cluster that can exist.
    #[error("{0}")]
    Invalid(String),
    /// The generated configuration was refused (an unknown mode or kv type).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A peer could not start.
    #[error("peer {id}: {error}")]
    Peer {
        /// Which peer.
        id: u16,
        /// Why (in the message, not a `source`: printed once).
        error: PeerError,
    },
    /// The temporary folder or config file could not be written.
    #[error("writing the cluster's config: {0}")]
    Io(std::io::Error),
}

impl From<std::io::Error> for LaunchError {
    fn from(err: std::io::Error) -> Self {
        LaunchError::Io(err)
    }
}

/// How long the peers get to find each other and serve before the addresses are printed anyway
/// (with a warning).
const READY_DEADLINE: Duration = Duration::from_secs(30);

/// The client and peer addresses of peer `id`.
fn ports(args: &ClusterArgs, id: u16) -> Result<(u16, u16, u16), LaunchError> {
    let peer_base = args
        .peer_base_port
        .map(u32::from)
        .unwrap_or(u32::from(args.base_port) + 1000);
    let port = |base: u32, what: &str| {
        u16::try_from(base + u32::from(id)).map_err(|_| {
            LaunchError::Invalid(format!(
                "{what} port {} of peer {id} is past 65535: choose a lower base port",
                base + u32::from(id)
            ))
        })
    };
    Ok((
        port(u32::from(args.base_port), "client")?,
        port(peer_base, "peer")?,
        port(u32::from(args.kv_base_port), "memcached")?,
    ))
}

/// The config.ini of the cluster: every peer's addresses, a shared secret, the data folder.
pub fn cluster_ini(
    args: &ClusterArgs,
    secret: &str,
    data_dir: &std::path::Path,
) -> Result<String, LaunchError> {
    if args.peers == 0 || args.peers > 255 {
        return Err(LaunchError::Invalid(format!(
            "--peers must be 1 to 255, not {}",
            args.peers
        )));
    }
    let mut ini = String::new();
    let _ = writeln!(
        ini,
        "[cluster]\nconsistency = {}\nsecret = {secret}\ndata_dir = {}\n\
         [kv]\ntype = {}\n[server]\nlog_level = {}",
        args.consistency,
        data_dir.display(),
        args.kv_type,
        args.log_level
    );
    for id in 0..args.peers {
        let (client, peer, kv) = ports(args, id)?;
        let host = &args.host;
        let _ = writeln!(
            ini,
            "[peer.{id}]\nclient_addr = {host}:{client}\npeer_addr = {host}:{peer}\n\
             kv_addr = 127.0.0.1:{kv}"
        );
    }
    Ok(ini)
}

/// Starts the cluster, prints where to connect, serves until `shutdown` completes, then stops
/// every peer and waits for them.
pub async fn run(args: ClusterArgs, shutdown: impl Future) -> Result<(), LaunchError> {
    let dir = tempfile::Builder::new()
        .prefix("memcord-cluster-")
        .tempdir()?;
    let secret = format!("{:032x}", rand::random::<u128>());
    let ini = cluster_ini(&args, &secret, &dir.path().join("data"))?;
    let config_path = dir.path().join("config.ini");
    std::fs::write(&config_path, ini)?;

    let (stop_tx, _) = tokio::sync::broadcast::channel::<()>(1);
    let mut servers = Vec::new();
    let mut lines = Vec::new();
    let mut mode = String::new();
    for id in 0..args.peers {
        let overrides = Overrides {
            config: Some(config_path.clone()),
            id: Some(id),
            ..Overrides::default()
        };
        // No environment: a `memcord cluster` is the same wherever it is started.
        let config = load(&overrides, std::iter::empty())?;
        let peer_addr = config.me().peer_addr.to_string();
        let kv = config.kv.kv_type;
        let kv_addr = config.me().kv_addr.to_string();
        let peer = BoundPeer::bind(config)
            .await
            .map_err(|error| LaunchError::Peer { id, error })?;
        mode = peer.mode().to_string();
        let mut line = format!("  peer {id}: clients {}", peer.local_addr());
        if args.peers > 1 {
            line += &format!(", peers {peer_addr}");
        }
        if kv == memcord_proxy::config::KvType::Memcached {
            line += &format!(", memcached {kv_addr}");
        }
        lines.push((peer.local_addr(), line));
        let mut stop = stop_tx.subscribe();
        servers.push((
            id,
            tokio::spawn(peer.serve(async move {
                let _ = stop.recv().await;
            })),
        ));
    }

    tokio::pin!(shutdown);
    let addrs: Vec<String> = lines.iter().map(|(a, _)| a.to_string()).collect();
    let ready = tokio::task::spawn_blocking(move || wait_serving(&addrs, READY_DEADLINE));
    let interrupted = tokio::select! {
        waited = ready => {
            if let Ok(Err(message)) = waited {
                tracing::warn!("{message}");
                eprintln!("memcord cluster: warning: {message}");
            }
            false
        }
        _ = &mut shutdown => true,
    };
    if !interrupted {
        let first = lines[0].0;
        let mut out = format!(
            "memcord cluster ready: {} peer(s), mode {mode}, kv {}\n",
            args.peers, args.kv_type
        );
        for (_, line) in &lines {
            out += line;
            out.push('\n');
        }
        let host = if first.ip().is_loopback() {
            String::new()
        } else {
            format!(" --host {}", first.ip())
        };
        out += &format!(
            "connect with: memcord client{host} --port {}\nCtrl-C stops the cluster.\n",
            first.port()
        );
        print_flushed(&out);
        shutdown.await;
    }
    let _ = stop_tx.send(());
    let mut failure = None;
    for (id, server) in servers {
        // A peer that does not stop in time is left to the runtime's shutdown.
        match tokio::time::timeout(Duration::from_secs(10), server).await {
            Ok(Ok(Err(error))) => failure = Some(LaunchError::Peer { id, error }),
            Ok(Err(join)) => tracing::error!(id, %join, "peer task failed"),
            Err(_) => tracing::warn!(id, "peer did not stop within 10 s"),
            Ok(Ok(Ok(()))) => {}
        }
    }
    print_flushed("memcord cluster stopped\n");
    failure.map_or(Ok(()), Err)
}

fn print_flushed(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}

/// Waits until every peer's `stats cluster` says `cluster_state serving` and, in a mode with a
/// leader, names one (a cluster of one, which has no `stats cluster`, serves at once), up to
/// `deadline`.
fn wait_serving(addrs: &[String], deadline: Duration) -> Result<(), String> {
    let until = Instant::now() + deadline;
    for addr in addrs {
        let mut last;
        // Bounded by the deadline.
        loop {
            let state = Connection::connect(addr, Duration::from_secs(2))
                .and_then(|mut c| c.stats("cluster"))
                .map(|stats| {
                    stats.map(|lines| {
                        let get = |name: &str| {
                            lines
                                .iter()
                                .find(|(n, _)| n == name)
                                .map(|(_, v)| v.clone())
                        };
                        let leader = get("cluster_leader").unwrap_or_default();
                        (get("cluster_state").unwrap_or_default(), leader)
                    })
                });
            match state {
                Ok(None) => break,
                Ok(Some((state, leader))) if state == "serving" && leader != "none" => break,
                Ok(Some((state, leader))) => last = format!("state {state}, leader {leader}"),
                Err(err) => last = err.to_string(),
            }
            if Instant::now() >= until {
                return Err(format!(
                    "peer at {addr} is not serving after {deadline:?} ({last}); printing the \
                     addresses anyway"
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: ClusterArgs,
    }

    fn args(flags: &[&str]) -> ClusterArgs {
        let mut all = vec!["cluster"];
        all.extend(flags);
        Wrapper::parse_from(all).args
    }

    #[test]
    fn default_addresses_are_config_ini_s() {
        let ini = cluster_ini(&args(&[]), "s", std::path::Path::new("/d")).unwrap();
        assert!(ini.contains("consistency = eventual\nsecret = s\ndata_dir = /d\n"));
        assert!(ini.contains(
            "[peer.2]\nclient_addr = 127.0.0.1:8002\npeer_addr = 127.0.0.1:9002\n\
             kv_addr = 127.0.0.1:11203\n"
        ));
        assert!(!ini.contains("[peer.3]"));
    }

    #[test]
    fn ports_past_65535_and_bad_peer_counts_are_refused() {
        let too_high = cluster_ini(&args(&["--base-port", "65534"]), "s", "/d".as_ref());
        assert!(matches!(too_high, Err(LaunchError::Invalid(m)) if m.contains("past 65535")));
        let none = cluster_ini(&args(&["--peers", "0"]), "s", "/d".as_ref());
        assert!(matches!(none, Err(LaunchError::Invalid(_))));
        let ini = cluster_ini(
            &args(&[
                "--peers",
                "2",
                "--base-port",
                "7000",
                "--peer-base-port",
                "7100",
            ]),
            "s",
            "/d".as_ref(),
        )
        .unwrap();
        assert!(ini.contains("client_addr = 127.0.0.1:7001\npeer_addr = 127.0.0.1:7101\n"));
    }
}
