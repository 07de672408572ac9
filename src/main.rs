//! The `memcord` binary: a thin clap front over the library.

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use memcord_proxy::config::{self, Overrides, PeerConfig};
use memcord_proxy::peer::BoundPeer;
use std::io::Write;
use std::path::PathBuf;

/// mimalloc instead of glibc's malloc: the request path allocates and frees small buffers
/// (keys, values, reply slots) on every request; glibc's bins and consolidation cost about 5%
/// of a proxying peer's CPU, mimalloc's thread-local free lists a fraction of that.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (its index in `mi_option_t`, the same in mimalloc 2 and
/// 3; libmimalloc-sys names the options around it but not this one).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keeps freed memory instead of handing it back to the kernel, as memcached keeps its slabs.
/// The ordered modes hold each log entry's values in memory until a snapshot purges them,
/// thousands of entries at once; returned to the kernel after mimalloc's purge delay, those
/// pages were faulted back in (and zeroed, 2 MiB at a time with transparent huge pages) as the
/// log grew again: 0.06–0.18 page faults per replicated write, none with purging off.
fn keep_freed_memory() {
    // SAFETY: setting an option is a plain store into mimalloc's option table.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
}

/// A memcache-protocol-compatible consistency proxy cluster.
#[derive(Debug, Parser)]
#[command(name = "memcord", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The subcommands (`cluster`, `client`, `check` and `bench` join `peer` as they are built).
#[derive(Debug, Subcommand)]
enum Command {
    /// Run one peer: serves memcache clients on its client address.
    Peer(PeerArgs),
    /// Load generator: drives a get/set mix at memcache servers and reports ops/s and latency.
    Bench(memcord_bench::BenchArgs),
    /// Start a whole local cluster in this process (three peers, embedded stores); Ctrl-C stops.
    Cluster(memcord_launch::ClusterArgs),
    /// Interactive console to one peer: memcache commands, `show`, `fail N`, `recover N`.
    Client(memcord_client::ClientArgs),
    /// Consistency campaign: record a workload under faults and check it (exit 0 consistent,
    /// 1 violation, 2 unknown or setup error).
    Check(memcord_check::CheckArgs),
}

/// `memcord peer`: every flag can also be given as the `MEMCORD_*` variable shown.
///
/// memcached's own short flags (and its long names) work with memcached's meaning, so a
/// systemd unit written for memcached runs memcord unchanged: `-p` port, `-l` listen address,
/// `-m` MiB, `-c` connections, `-I` item size (`k`/`m` suffixes), `-t` threads, `-U` UDP
/// port, `-A` enable `shutdown`, `-v`/`-vv` verbosity.
#[derive(Debug, Args)]
struct PeerArgs {
    /// Config file (ini) shared by the cluster's peers; none = a cluster of one.
    #[arg(long, env = "MEMCORD_CONFIG")]
    config: Option<PathBuf>,
    /// Which `[peer.N]` of the config this process is.
    #[arg(long, env = "MEMCORD_ID")]
    id: Option<u16>,
    /// Host to serve clients on (default 127.0.0.1; memcached's `-l`, one address).
    #[arg(long, short = 'l', visible_alias = "listen", env = "MEMCORD_HOST")]
    host: Option<String>,
    /// Port to serve clients on (default 11211 alone, the peer's client_addr with a config;
    /// 0 = any free port, printed on the ready line; memcached's `-p`).
    #[arg(long, short = 'p', env = "MEMCORD_PORT")]
    port: Option<u16>,
    /// Backing store: memory (embedded) or memcached.
    #[arg(long, env = "MEMCORD_KV_TYPE")]
    kv_type: Option<String>,
    /// Backing memcached's host.
    #[arg(long, env = "MEMCORD_KV_HOST")]
    kv_host: Option<String>,
    /// Backing memcached's port.
    #[arg(long, env = "MEMCORD_KV_PORT")]
    kv_port: Option<u16>,
    /// Consistency mode: linearizable, sequential or eventual.
    #[arg(long, env = "MEMCORD_CONSISTENCY")]
    consistency: Option<String>,
    /// Memory limit of the embedded store, in MiB (memcached's `-m`).
    #[arg(
        long,
        short = 'm',
        visible_alias = "memory-limit",
        env = "MEMCORD_MEMORY_LIMIT_MB"
    )]
    memory_limit_mb: Option<u64>,
    /// Largest value accepted: bytes, or with a k or m suffix (memcached's `-I`).
    #[arg(long, short = 'I', env = "MEMCORD_MAX_ITEM_SIZE", value_parser = config::parse_item_size)]
    max_item_size: Option<usize>,
    /// Most client connections served at once (memcached's `-c`).
    #[arg(
        long,
        short = 'c',
        visible_alias = "conn-limit",
        env = "MEMCORD_MAX_CONNECTIONS"
    )]
    max_connections: Option<usize>,
    /// Seconds of client silence before its connection is closed (0 = never).
    #[arg(long, env = "MEMCORD_IDLE_TIMEOUT")]
    idle_timeout: Option<u64>,
    /// Worker threads (memcached's `-t`); 0 = one per CPU this process may use.
    #[arg(long, short = 't', env = "MEMCORD_THREADS")]
    threads: Option<usize>,
    /// Log filter (`info`, `debug`, `memcord=trace`, …).
    #[arg(long, env = "MEMCORD_LOG")]
    log_level: Option<String>,
    /// Log to this file instead of stderr.
    #[arg(long, env = "MEMCORD_LOG_FILE")]
    log_file: Option<PathBuf>,
    /// Serve memcached's UDP protocol on this port (memcached's `-U`; 0 = off, the default).
    #[arg(long, short = 'U', env = "MEMCORD_UDP_PORT")]
    udp_port: Option<u16>,
    /// Let the `shutdown` command stop the peer (memcached's `-A`).
    #[arg(long, short = 'A', env = "MEMCORD_ENABLE_SHUTDOWN")]
    enable_shutdown: bool,
    /// Verbosity, as memcached's `-v` (`-vv`, `-vvv` also raise the default log level).
    #[arg(short = 'v', action = clap::ArgAction::Count)]
    verbose: u8,
}

impl PeerArgs {
    fn overrides(self) -> Overrides {
        Overrides {
            config: self.config,
            id: self.id,
            host: self.host,
            port: self.port,
            kv_type: self.kv_type,
            kv_host: self.kv_host,
            kv_port: self.kv_port,
            consistency: self.consistency,
            memory_limit_mb: self.memory_limit_mb,
            max_item_size: self.max_item_size,
            max_connections: self.max_connections,
            idle_timeout: self.idle_timeout,
            threads: self.threads,
            log_level: self.log_level,
            log_file: self.log_file,
            udp_port: self.udp_port,
            enable_shutdown: self.enable_shutdown.then_some(true),
            verbosity: (self.verbose > 0).then_some(u32::from(self.verbose)),
        }
    }
}

/// Runs the command line (`memcord-faulty` runs the same after arming its fault switches).
pub fn main() -> std::process::ExitCode {
    keep_freed_memory();
    let command = match Cli::parse().command {
        // `check` has its own exit codes (1 = violation, 2 = unknown or setup error).
        Command::Check(args) => return std::process::ExitCode::from(memcord_check::run(args)),
        other => other,
    };
    // Errors are printed as one line (with their causes), never with a backtrace: they are
    // configuration or environment problems for the operator, not bugs.
    match run(command) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("memcord: error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The peer's runtime: `threads` workers (0 = one per CPU this process may use). With one,
/// everything runs on the main thread: no cross-thread wakeups or work stealing, which is what
/// a peer pinned to one core (memcached `-t 1`'s budget) does best with.
fn peer_runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    let threads = match threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
}

fn run(command: Command) -> Result<()> {
    match command {
        Command::Peer(args) => {
            let config = config::load(&args.overrides(), std::env::vars())?;
            init_logging(&config)?;
            peer_runtime(config.server.threads)?.block_on(run_peer(config))
        }
        Command::Bench(args) => Ok(memcord_bench::run(args)?),
        Command::Cluster(args) => {
            let filter = tracing_subscriber::EnvFilter::try_new(&args.log_level)
                .with_context(|| format!("invalid log level '{}'", args.log_level))?;
            use std::io::IsTerminal;
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_ansi(std::io::stderr().is_terminal())
                .with_writer(std::io::stderr)
                .init();
            tokio::runtime::Runtime::new()?.block_on(async {
                memcord_launch::run(args, shutdown_signal()?).await?;
                Ok(())
            })
        }
        Command::Client(args) => Ok(memcord_client::run(args)?),
        Command::Check(args) => std::process::exit(i32::from(memcord_check::run(args))),
    }
}

/// File descriptors a peer needs beyond its client connections: peer links, backend
/// connections, the log, listeners.
const FD_HEADROOM: u64 = 256;

async fn run_peer(config: PeerConfig) -> Result<()> {
    let shutdown = shutdown_signal()?;
    // As memcached does for `-c`: raise the open-file limit to what max_connections needs (up
    // to the hard limit), so the connection cap, not EMFILE, is what turns clients away.
    let wanted = config.server.max_connections as u64 + FD_HEADROOM;
    match rlimit::increase_nofile_limit(wanted) {
        Ok(got) if got < wanted => tracing::warn!(
            max_connections = config.server.max_connections,
            open_files = got,
            "the open-file limit is below what max_connections needs; raise `ulimit -n`"
        ),
        Ok(_) => {}
        Err(err) => tracing::warn!(%err, "could not raise the open-file limit"),
    }
    let peer = BoundPeer::bind(config).await?;
    let line = peer.ready_line();
    tracing::info!("{line}");
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")?;
    stdout.flush()?;
    drop(stdout);
    peer.serve(shutdown).await?;
    Ok(())
}

/// A future that completes on SIGINT (Ctrl-C) or SIGTERM. The handlers are installed here, at
/// once, so a signal sent as soon as the ready line is out finds them (and never kills the
/// process with the default disposition).
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing a SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing a SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => tracing::info!("SIGINT received"),
            _ = term.recv() => tracing::info!("SIGTERM received"),
        }
    })
}

/// Logs to stderr (or the configured file) with the configured filter.
fn init_logging(config: &PeerConfig) -> Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.server.log_level)
        .with_context(|| format!("invalid log level '{}'", config.server.log_level))?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match &config.server.log_file {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening log file {}", path.display()))?;
            builder
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(file))
                .init();
        }
        None => {
            use std::io::IsTerminal;
            builder
                .with_ansi(std::io::stderr().is_terminal())
                .with_writer(std::io::stderr)
                .init()
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_option_set_to_keep_freed_memory_is_the_purge_delay() {
        // SAFETY: reading and setting options are plain loads and stores in mimalloc's table.
        let default = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        // The purge delay's default (ms): 1000 in mimalloc 3, 10 in mimalloc 2; no option
        // next to it defaults to either.
        assert!(
            default == 1000 || default == 10,
            "option {MI_OPTION_PURGE_DELAY} defaults to {default}: not the purge delay"
        );
        keep_freed_memory();
        let set = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert_eq!(set, -1);
    }
}
