//! `memcord check` from flags to exit code: set the cluster up, run the workload and the
//! nemesis together, heal, wait for the cluster, read the final state (eventual mode), judge,
//! report, tear down.

use super::cluster::{self, Backend, LocalCluster, LocalSpec};
use super::conn::TextConn;
use super::history::History;
use super::nemesis::{parse_faults, FaultRecord, Nemesis, Timing};
use super::summary::Summary;
use super::verify::{self, Judgement, Verification};
use super::workload::{self, Progress, WorkloadSpec};
use super::{CheckArgs, EXIT_UNKNOWN};
use memcord_protocol::{Request, Response};
use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How long a started cluster gets to serve.
const START_DEADLINE: Duration = Duration::from_secs(60);
/// How long the cluster gets to serve again once every fault is healed.
const RECOVER_DEADLINE: Duration = Duration::from_secs(30);
/// How long the eventual-mode replicas get to agree once every fault is healed.
const CONVERGE_DEADLINE: Duration = Duration::from_secs(20);
/// Quorum timeout of a started ordered cluster (ms): short, so cut-off requests end soon.
const QUORUM_TIMEOUT_MS: u64 = 1000;

/// Every key as read from one peer (`None`: a miss).
type Finals = BTreeMap<String, Option<Vec<u8>>>;

/// Runs `memcord check`; returns the exit code (0 consistent, 1 violation, 2 unknown or
/// setup error). Progress goes to stderr, the summary to stdout.
pub fn run(args: CheckArgs) -> u8 {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("memcord check: error: starting the runtime: {err}");
            return EXIT_UNKNOWN;
        }
    };
    match runtime.block_on(campaign(args)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("memcord check: error: {err}");
            EXIT_UNKNOWN
        }
    }
}

/// Refuses a cluster to attach to whose peers do not all accept a connection: it is already
/// running, so an address that refuses is a mistake to say at once, not after the start
/// deadline.
async fn reachable(addrs: &[SocketAddr]) -> Result<(), String> {
    for (id, addr) in addrs.iter().enumerate() {
        TextConn::connect(*addr, Duration::from_secs(2))
            .await
            .map_err(|err| format!("cannot reach peer {id}: {err}"))?;
    }
    Ok(())
}

/// Refuses to call a run "the broken build" unless every peer says it is one
/// (`memcord_unsafe_local_reads yes` in `stats settings`): only `memcord-faulty`, built with
/// `--features fault-injection`, has the switch, and a run on peers without it would pass
/// for a harness that misses a broken build.
async fn broken_on_purpose(addrs: &[SocketAddr]) -> Result<(), String> {
    for (id, addr) in addrs.iter().enumerate() {
        let settings = super::conn::stats_once(*addr, "settings", Duration::from_secs(2)).await?;
        if super::conn::stat(&settings, "memcord_unsafe_local_reads") != Some("yes") {
            return Err(format!(
                "peer {id} at {addr} runs without the test-only fault switch: \
                 --unsafe-local-reads needs peers of the memcord-faulty binary (cargo build \
                 --features fault-injection), started by it or named with --memcord-bin"
            ));
        }
    }
    Ok(())
}

/// The validated plan.
struct Plan {
    mode: String,
    seed: u64,
    duration: Duration,
    backend: Backend,
    attach: Option<Vec<SocketAddr>>,
}

fn validate(args: &CheckArgs) -> Result<Plan, String> {
    if !["linearizable", "sequential", "eventual"].contains(&args.consistency.as_str()) {
        return Err(format!(
            "unknown consistency mode '{}' (expected linearizable, sequential or eventual)",
            args.consistency
        ));
    }
    let secs = |value: f64, name: &str, max: f64| {
        if value.is_finite() && value > 0.0 && value <= max {
            Ok(Duration::from_secs_f64(value))
        } else {
            Err(format!(
                "--{name} must be a number of seconds in (0, {max}]"
            ))
        }
    };
    let duration = secs(args.duration, "duration", 86_400.0)?;
    secs(args.checker_budget, "checker-budget", 86_400.0)?;
    secs(args.op_timeout, "op-timeout", 600.0)?;
    if !(1..=1000).contains(&args.clients) {
        return Err("--clients must be 1 to 1000".into());
    }
    if !(1..=1000).contains(&args.keys) {
        return Err("--keys must be 1 to 1000".into());
    }
    if !(1..=255).contains(&args.peers) {
        return Err("--peers must be 1 to 255".into());
    }
    if args.max_ops == 0 {
        return Err("--max-ops must be at least 1".into());
    }
    let backend = match args.backend.as_str() {
        "memory" => Backend::Memory,
        "memcached" => Backend::Memcached,
        other => {
            return Err(format!(
                "unknown backend '{other}' (expected memory or memcached)"
            ))
        }
    };
    let attach = match &args.attach {
        None => None,
        Some(list) => {
            let mut addrs = Vec::new();
            for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let addr = item
                    .to_socket_addrs()
                    .ok()
                    .and_then(|mut a| a.next())
                    .ok_or_else(|| format!("--attach: cannot resolve '{item}' (host:port)"))?;
                addrs.push(addr);
            }
            if addrs.is_empty() {
                return Err("--attach needs at least one host:port".into());
            }
            Some(addrs)
        }
    };
    Ok(Plan {
        mode: args.consistency.clone(),
        seed: args.seed.unwrap_or_else(rand::random),
        duration,
        backend,
        attach,
    })
}

async fn campaign(args: CheckArgs) -> Result<u8, String> {
    let plan = validate(&args)?;
    let local_run = plan.attach.is_none();
    let kinds = parse_faults(&args.faults, local_run, plan.backend == Backend::Memcached)?;
    eprintln!(
        "memcord check: mode {}, seed {}, {} clients, {:.1} s, faults {}",
        plan.mode,
        plan.seed,
        args.clients,
        plan.duration.as_secs_f64(),
        if kinds.is_empty() {
            "none".to_string()
        } else {
            kinds.iter().map(|k| k.name()).collect::<Vec<_>>().join(",")
        }
    );

    // Watch for Ctrl-C from the start, so an interrupted setup still stops its children.
    let stop = CancellationToken::new();
    let interrupted = CancellationToken::new();
    spawn_interrupt_watch(stop.clone(), interrupted.clone());

    let (addrs, local, cluster_text) = match &plan.attach {
        Some(addrs) => {
            reachable(addrs).await?;
            let text = format!("attached to {} peer(s)", addrs.len());
            (addrs.clone(), None, text)
        }
        None => {
            let memcord_bin = match &args.memcord_bin {
                Some(bin) => bin.clone(),
                None => std::env::current_exe()
                    .map_err(|e| format!("finding the memcord binary: {e}"))?,
            };
            let memcached_bin = match plan.backend {
                Backend::Memcached => cluster::memcached_binary().map_err(|e| e.to_string())?,
                Backend::Memory => Default::default(),
            };
            let spec = LocalSpec {
                mode: plan.mode.clone(),
                peers: args.peers,
                backend: plan.backend,
                memcord_bin,
                memcached_bin,
                quorum_timeout_ms: QUORUM_TIMEOUT_MS,
                unsafe_local_reads: args.unsafe_local_reads,
            };
            let local = LocalCluster::start(spec).map_err(|e| e.to_string())?;
            eprintln!(
                "memcord check: started {} peer(s) ({}, kv {}) in {}",
                local.len(),
                plan.mode,
                args.backend,
                local.dir().display()
            );
            if args.unsafe_local_reads {
                eprintln!("memcord check: peers run with MEMCORD_UNSAFE_LOCAL_READS=1 (broken on purpose)");
            }
            let text = format!("started {} peer(s), kv {}", local.len(), args.backend);
            (
                local.client_addrs.clone(),
                Some(Arc::new(Mutex::new(local))),
                text,
            )
        }
    };
    let ready = tokio::select! {
        ready = cluster::wait_serving(&addrs, START_DEADLINE) => ready,
        _ = interrupted.cancelled() => {
            shutdown(local).await;
            return Err("interrupted".into());
        }
    };
    if let Err(err) = ready {
        if let Some(local) = &local {
            let local = local.lock().unwrap_or_else(|e| e.into_inner());
            for id in 0..local.len() {
                eprintln!("---- peer {id} log (tail) ----\n{}", local.log_tail(id, 20));
            }
        }
        return Err(err.to_string());
    }
    if args.unsafe_local_reads {
        broken_on_purpose(&addrs).await?;
    }
    eprintln!("memcord check: every peer serves; workload starts");

    let spec = WorkloadSpec {
        targets: addrs.clone(),
        clients: args.clients,
        keys: args.keys,
        seed: plan.seed,
        duration: plan.duration,
        max_ops: args.max_ops,
        rate: args.rate,
        op_timeout: Duration::from_secs_f64(args.op_timeout),
        prefix: format!("chk{:08x}-", rand::random::<u32>()),
    };
    let keys = spec.all_keys();
    let base = Instant::now();
    let until = base + plan.duration;
    let progress = Arc::new(Progress::default());
    let workload = tokio::spawn(workload::record(spec, base, stop.clone(), progress.clone()));
    let printer = tokio::spawn(print_progress(base, progress.clone()));
    let timing = Timing {
        gap: (Duration::from_millis(200), Duration::from_millis(800)),
        hold: (
            Duration::from_millis(QUORUM_TIMEOUT_MS + 200),
            Duration::from_millis(QUORUM_TIMEOUT_MS + 1000),
        ),
    };
    let mut nemesis = Nemesis::new(kinds, plan.seed, addrs.clone(), local.clone(), timing, base);
    // The nemesis stops with the workload (which may end early, at --max-ops).
    let nemesis_stop = stop.child_token();
    let (_, history) = tokio::join!(nemesis.run(until, nemesis_stop.clone()), async {
        let history = workload.await;
        nemesis_stop.cancel();
        history
    });
    let history = history.map_err(|e| format!("the workload failed: {e}"))?;
    let workload_time = base.elapsed();
    printer.abort();
    nemesis.heal_all().await;
    eprintln!(
        "memcord check: workload done: {} operations in {:.1} s; faults healed",
        history.operations.len(),
        workload_time.as_secs_f64()
    );
    if interrupted.is_cancelled() {
        shutdown(local).await;
        return Err("interrupted".into());
    }

    let recovered = cluster::wait_serving(&addrs, RECOVER_DEADLINE)
        .await
        .map_err(|e| e.to_string());
    let finals = if plan.mode == "eventual" {
        eprintln!("memcord check: reading every key from every peer");
        read_finals(&addrs, &keys, CONVERGE_DEADLINE).await
    } else {
        Ok(Vec::new())
    };
    let budget = Duration::from_secs_f64(args.checker_budget);
    eprintln!(
        "memcord check: checking {} operations with the {} checker",
        history.operations.len(),
        verify::checker_for(&plan.mode)
    );
    let verification = judge(&plan.mode, &history, finals, budget, args.out.clone()).await;
    shutdown(local).await;

    let (ok, error_replies, lost) = Summary::count(&history);
    let summary = Summary {
        mode: plan.mode.clone(),
        seed: plan.seed,
        cluster: cluster_text,
        clients: args.clients,
        workload: workload_time,
        operations: history.operations.len(),
        ok,
        error_replies,
        lost,
        faults: nemesis.counts(),
        recovered,
        verification,
    };
    let text = summary.render();
    if let Some(dir) = &args.out {
        write_out(dir, &history, &text, &nemesis.records)?;
    }
    print!("{text}");
    Ok(summary.exit_code())
}

/// Runs the checker off the runtime's worker threads (it is CPU-bound).
async fn judge(
    mode: &str,
    history: &History,
    finals: Result<Vec<Finals>, String>,
    budget: Duration,
    out: Option<std::path::PathBuf>,
) -> Verification {
    let finals = match finals {
        Ok(finals) => finals,
        Err(why) => {
            return Verification {
                checker: verify::checker_for(mode),
                judgement: Judgement::Unknown(format!("no final state to compare: {why}")),
                keys_checked: 0,
                operations: history.operations.len(),
                elapsed: Duration::ZERO,
            }
        }
    };
    if let Some(dir) = &out {
        // The timeline goes there; a failure to create it shows up when the files are written.
        let _ = std::fs::create_dir_all(dir);
    }
    let mode = mode.to_string();
    let history = history.clone();
    let joined = tokio::task::spawn_blocking(move || {
        verify::verify(&mode, &history, &finals, budget, out.as_deref())
    })
    .await;
    joined.unwrap_or_else(|err| Verification {
        checker: "none",
        judgement: Judgement::Unknown(format!("the checker failed: {err}")),
        keys_checked: 0,
        operations: 0,
        elapsed: Duration::ZERO,
    })
}

fn write_out(
    dir: &std::path::Path,
    history: &History,
    summary: &str,
    faults: &[FaultRecord],
) -> Result<(), String> {
    let fail = |what: &str, err: &dyn std::fmt::Display| {
        format!("writing {what} in {}: {err}", dir.display())
    };
    std::fs::create_dir_all(dir).map_err(|e| fail("the folder", &e))?;
    let json = serde_json::to_vec(history).map_err(|e| fail("history.json", &e))?;
    std::fs::write(dir.join("history.json"), json).map_err(|e| fail("history.json", &e))?;
    std::fs::write(dir.join("summary.txt"), summary).map_err(|e| fail("summary.txt", &e))?;
    let mut lines = String::from("# kind peer injected_s healed_s\n");
    for f in faults {
        lines += &format!(
            "{} {} {:.3} {}\n",
            f.kind.name(),
            f.peer,
            f.injected.as_secs_f64(),
            f.healed
                .map(|h| format!("{:.3}", h.as_secs_f64()))
                .unwrap_or_else(|| "-".into())
        );
    }
    std::fs::write(dir.join("faults.txt"), lines).map_err(|e| fail("faults.txt", &e))?;
    Ok(())
}

async fn shutdown(local: Option<Arc<Mutex<LocalCluster>>>) {
    if let Some(local) = local {
        let _ = tokio::task::spawn_blocking(move || {
            local
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .shutdown(Duration::from_secs(5));
        })
        .await;
    }
}

/// Cancels `stop` (and marks `interrupted`) on SIGINT or SIGTERM.
fn spawn_interrupt_watch(stop: CancellationToken, interrupted: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    let (Ok(mut term), Ok(mut int)) = (term, int) else {
        eprintln!("memcord check: warning: cannot watch for Ctrl-C");
        return;
    };
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
            _ = stop.cancelled() => return,
        }
        eprintln!("memcord check: interrupted; healing faults and stopping the cluster");
        interrupted.cancel();
        stop.cancel();
    });
}

async fn print_progress(base: Instant, progress: Arc<Progress>) {
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        eprintln!(
            "[{:>7.3}s] workload: {} operations, {} indeterminate",
            base.elapsed().as_secs_f64(),
            progress.done.load(Ordering::Relaxed),
            progress.indeterminate.load(Ordering::Relaxed)
        );
    }
}

/// Reads every key from every peer until all peers agree or `deadline` passes; returns the
/// last reading (one map per peer), or why a peer could not be read at all.
async fn read_finals(
    addrs: &[SocketAddr],
    keys: &[String],
    deadline: Duration,
) -> Result<Vec<Finals>, String> {
    let until = Instant::now() + deadline;
    // Bounded by the deadline.
    loop {
        let mut reading = Vec::new();
        let mut failure = None;
        for addr in addrs {
            match read_all(*addr, keys).await {
                Ok(map) => reading.push(map),
                Err(err) => {
                    failure = Some(format!("{addr}: {err}"));
                    break;
                }
            }
        }
        let agreed = failure.is_none() && reading.windows(2).all(|w| w[0] == w[1]);
        if agreed {
            return Ok(reading);
        }
        if Instant::now() >= until {
            return match failure {
                Some(err) => Err(err),
                None => {
                    eprintln!("memcord check: the peers still disagree after {deadline:?}");
                    Ok(reading)
                }
            };
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn read_all(addr: SocketAddr, keys: &[String]) -> Result<Finals, String> {
    let timeout = Duration::from_secs(2);
    let mut conn = TextConn::connect(addr, timeout).await?;
    let mut map = BTreeMap::new();
    for key in keys {
        let request = Request::Get {
            keys: vec![bytes::Bytes::copy_from_slice(key.as_bytes())],
            with_cas: false,
        };
        let value = match conn.call(&request, timeout).await? {
            Response::Values(values) => values.into_iter().next().map(|v| v.data.to_vec()),
            other => return Err(format!("get {key}: {other:?}")),
        };
        map.insert(key.clone(), value);
    }
    Ok(map)
}
