//! `memcord bench`: a load generator for the memcache protocols (`--protocol text|meta|binary`).
//!
//! Black-box like any client: it uses only [`memcord_protocol`] (to compose requests and parse
//! replies) and tokio sockets, so it measures memcached itself, one memcord peer, or every peer
//! of a cluster round-robin, the same way. A get is `get <key>`, `mg <key> f v` or a binary
//! `Get`; a set is `set`, `ms <key> <len>` or a binary `Set`.
//!
//! A run has three phases, all bounded in time:
//!
//! 1. **preload**: every key is `set` once (pipelined, split over the connections), so gets hit;
//! 2. **warm-up** (`--warmup` seconds): the workload runs but nothing is recorded;
//! 3. **measure** (`--duration` seconds, or until `--ops` operations were issued): each
//!    connection sends `--pipeline` requests in one write, reads the replies in order and
//!    records each one's latency (from the batch's write to its reply) in its own HDR histogram;
//!    the histograms are merged into one [`Report`] at the end.
//!
//! Errors (`SERVER_ERROR`, `CLIENT_ERROR`, `ERROR`, timeouts, broken connections) are counted,
//! never fatal: a broken or timed-out connection is reopened and the run goes on.

mod driver;
pub mod plot;
mod report;
mod workload;

pub use report::{ErrorCounts, Report};
pub use workload::{Distribution, Workload};

/// Which protocol the load speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// The classic text protocol (`get`, `set`).
    #[default]
    Text,
    /// The meta protocol (`mg`, `ms`).
    Meta,
    /// The binary protocol (`Get`, `Set`).
    Binary,
}

impl Protocol {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Text => "text",
            Protocol::Meta => "meta",
            Protocol::Binary => "binary",
        }
    }
}

use clap::Args;
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Most keys a run may use (each is kept in memory by the generator).
const MAX_KEYS: u64 = 10_000_000;
/// Most connections a run may open.
const MAX_CONNECTIONS: usize = 10_000;
/// Deepest pipeline accepted.
const MAX_PIPELINE: usize = 10_000;

/// `memcord bench`'s flags.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Server(s) to load, `host:port[,host:port…]`; connections are spread round-robin.
    #[arg(long, default_value = "127.0.0.1:11211", value_delimiter = ',')]
    pub target: Vec<String>,
    /// Client connections kept open.
    #[arg(long, short = 'c', default_value_t = 32)]
    pub connections: usize,
    /// Requests each connection sends in one write before reading their replies.
    #[arg(long, short = 'p', default_value_t = 1)]
    pub pipeline: usize,
    /// Seconds to measure (ignored when `--ops` is given).
    #[arg(long, short = 'd', default_value_t = 10.0)]
    pub duration: f64,
    /// Measure this many operations instead of a duration.
    #[arg(long)]
    pub ops: Option<u64>,
    /// Seconds of unrecorded load before measuring.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// Number of distinct keys (all preloaded).
    #[arg(long, default_value_t = 10_000)]
    pub keys: u64,
    /// Key length in bytes.
    #[arg(long, default_value_t = 64)]
    pub key_size: usize,
    /// Value length in bytes.
    #[arg(long, default_value_t = 1024)]
    pub value_size: usize,
    /// Fraction of operations that are gets (the rest are sets), 0.0 to 1.0.
    #[arg(long, default_value_t = 0.9)]
    pub get_ratio: f64,
    /// Key popularity: uniform or zipfian.
    #[arg(long, default_value = "uniform")]
    pub distribution: Distribution,
    /// The protocol the load speaks.
    #[arg(long, default_value = "text")]
    pub protocol: Protocol,
    /// Exponent of the zipfian distribution.
    #[arg(long, default_value_t = 0.99)]
    pub zipf_exponent: f64,
    /// Seed of the key and operation choices (each connection derives its own).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Milliseconds to wait for a batch's replies before counting them as timeouts.
    #[arg(long, default_value_t = 1000)]
    pub timeout_ms: u64,
    /// Skip the preload (keys may then miss).
    #[arg(long)]
    pub no_preload: bool,
    /// Worker threads of the generator's runtime (default: the CPUs it may run on).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Print the report as one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Measure nothing: draw throughput against connections from a sweep file (JSON lines
    /// `{"name", "connections", "ops_per_sec"}`, as `scripts/bench.sh` writes) as an SVG chart.
    #[arg(long, value_name = "SWEEP.jsonl")]
    pub plot: Option<std::path::PathBuf>,
    /// Where `--plot` writes its chart.
    #[arg(long, value_name = "FILE.svg", default_value = "bench-throughput.svg")]
    pub plot_out: std::path::PathBuf,
    /// The chart's title.
    #[arg(long, default_value = "memcord bench: throughput against connections")]
    pub plot_title: String,
}

/// Why a run could not be made.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A flag's value is out of range or inconsistent with another.
    #[error("invalid benchmark settings: {0}")]
    Invalid(String),
    /// A `--target` does not resolve to an address.
    #[error("cannot resolve target '{target}': {reason}")]
    Resolve {
        /// The target as given.
        target: String,
        /// What went wrong.
        reason: String,
    },
    /// No connection could be opened to a target at the start.
    #[error("cannot connect to {addr}: {error}")]
    Connect {
        /// The address tried.
        addr: SocketAddr,
        /// The socket error (in the message, not a `source`: printed once).
        error: std::io::Error,
    },
    /// The runtime or the output failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Everything a run needs, checked and resolved.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Resolved targets; connection `i` goes to `targets[i % len]`.
    pub targets: Vec<SocketAddr>,
    /// Connections.
    pub connections: usize,
    /// Pipeline depth.
    pub pipeline: usize,
    /// How long to measure (when `ops` is `None`).
    pub duration: Duration,
    /// Operations to measure instead of a duration.
    pub ops: Option<u64>,
    /// Unrecorded warm-up.
    pub warmup: Duration,
    /// Per-batch reply deadline.
    pub timeout: Duration,
    /// Whether to set every key before the warm-up.
    pub preload: bool,
    /// Keys, values and the operation mix.
    pub workload: Arc<Workload>,
    /// Seed of every connection's choices.
    pub seed: u64,
    /// The protocol the load speaks.
    pub protocol: Protocol,
}

impl BenchArgs {
    /// Checks the flags and resolves the targets.
    pub fn plan(&self) -> Result<Plan, BenchError> {
        let invalid = |msg: String| Err(BenchError::Invalid(msg));
        if self.connections == 0 || self.connections > MAX_CONNECTIONS {
            return invalid(format!("--connections must be 1..={MAX_CONNECTIONS}"));
        }
        if self.pipeline == 0 || self.pipeline > MAX_PIPELINE {
            return invalid(format!("--pipeline must be 1..={MAX_PIPELINE}"));
        }
        if self.keys == 0 || self.keys > MAX_KEYS {
            return invalid(format!("--keys must be 1..={MAX_KEYS}"));
        }
        if !(0.0..=1.0).contains(&self.get_ratio) {
            return invalid("--get-ratio must be between 0 and 1".into());
        }
        let seconds = |name: &str, v: f64| {
            if v.is_finite() && (0.0..=86_400.0).contains(&v) {
                Ok(Duration::from_secs_f64(v))
            } else {
                Err(BenchError::Invalid(format!(
                    "{name} must be 0..=86400 seconds"
                )))
            }
        };
        let duration = seconds("--duration", self.duration)?;
        let warmup = seconds("--warmup", self.warmup)?;
        if self.ops == Some(0) || (self.ops.is_none() && duration.is_zero()) {
            return invalid("nothing to measure: give --duration > 0 or --ops > 0".into());
        }
        if self.timeout_ms == 0 {
            return invalid("--timeout-ms must be > 0".into());
        }
        let workload = Workload::new(
            self.keys,
            self.key_size,
            self.value_size,
            self.get_ratio,
            self.distribution,
            self.zipf_exponent,
        )
        .map_err(BenchError::Invalid)?;
        let targets = resolve(&self.target)?;
        Ok(Plan {
            targets,
            connections: self.connections,
            pipeline: self.pipeline,
            duration,
            ops: self.ops,
            warmup,
            timeout: Duration::from_millis(self.timeout_ms),
            preload: !self.no_preload,
            workload: Arc::new(workload),
            seed: self.seed,
            protocol: self.protocol,
        })
    }
}

/// Resolves each `host:port` to its first address.
fn resolve(targets: &[String]) -> Result<Vec<SocketAddr>, BenchError> {
    use std::net::ToSocketAddrs;
    let mut out = Vec::new();
    for target in targets.iter().map(|t| t.trim()).filter(|t| !t.is_empty()) {
        let addr = target
            .to_socket_addrs()
            .map_err(|e| BenchError::Resolve {
                target: target.to_owned(),
                reason: e.to_string(),
            })?
            .next()
            .ok_or_else(|| BenchError::Resolve {
                target: target.to_owned(),
                reason: "no address".into(),
            })?;
        out.push(addr);
    }
    if out.is_empty() {
        return Err(BenchError::Invalid("--target names no server".into()));
    }
    Ok(out)
}

/// Runs `memcord bench` with `args` and prints the report (a table, or JSON with `--json`).
pub fn run(args: BenchArgs) -> Result<(), BenchError> {
    if let Some(sweep) = &args.plot {
        let points = plot::read_sweep(sweep).map_err(BenchError::Invalid)?;
        plot::draw(&plot::series(&points), &args.plot_title, &args.plot_out)
            .map_err(BenchError::Invalid)?;
        println!("bench: chart written to {}", args.plot_out.display());
        return Ok(());
    }
    let plan = args.plan()?;
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()?;
    let progress = std::io::stderr().is_terminal();
    let report = runtime.block_on(measure(plan, progress))?;
    let mut stdout = std::io::stdout().lock();
    if args.json {
        writeln!(stdout, "{}", report.to_json())?;
    } else {
        write!(stdout, "{}", report.table())?;
    }
    stdout.flush()?;
    Ok(())
}

/// Runs the plan's preload, warm-up and measurement and returns the merged report; with
/// `progress`, shows a progress bar on stderr.
pub async fn measure(plan: Plan, progress: bool) -> Result<Report, BenchError> {
    driver::run(plan, progress).await
}
