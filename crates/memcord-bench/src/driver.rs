//! The connections: one task per connection sends pipelined batches and reads their replies.

use super::report::{Report, Tally};
use super::workload::{Chooser, Op, Workload, MAX_VALUE_SIZE};
use super::Protocol;
use super::{BenchError, Plan};
use bytes::{Buf, BytesMut};
use memcord_protocol::binary::{
    self, compose_request as compose_binary, BinaryRequest, BinaryResponseParse, Opcode,
};
use memcord_protocol::meta::{MetaFlags, MetaGet, MetaSet, SetMode};
use memcord_protocol::{parse_response, Limits, Request, Response, ResponseOutcome, StoreOp};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::{timeout_at, Instant};

/// Pause after a failed reconnect, so a dead target is not hammered.
const RECONNECT_PAUSE: Duration = Duration::from_millis(100);
/// Bytes one preload batch may carry at most.
const PRELOAD_BATCH_BYTES: usize = 256 * 1024;
/// Most sets in one preload batch.
const PRELOAD_BATCH_MAX: usize = 64;
/// Free room kept in the read buffer before each read.
const READ_RESERVE: usize = 64 * 1024;

/// One client connection, reopened after a timeout or a broken stream.
struct Conn {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    rbuf: BytesMut,
    wbuf: BytesMut,
    limits: Limits,
    timeout: Duration,
    protocol: Protocol,
}

/// A reply, whatever protocol carried it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reply {
    /// A get found its key.
    Hit,
    /// A get missed.
    Miss,
    /// A set stored.
    Stored,
    /// `SERVER_ERROR` (or a binary server-side failure).
    ServerError,
    /// `CLIENT_ERROR` (or a binary refusal of the request).
    ClientError,
    /// `ERROR` (or a binary unknown command).
    Error,
    /// Anything else.
    Unexpected,
}

/// How a request's reply turned out.
enum Fate {
    /// The reply came; it is classified and its latency recorded.
    Answered(Reply),
    /// No reply within the timeout.
    TimedOut,
    /// The connection broke, or could not be (re)opened.
    Lost,
}

impl Conn {
    async fn open(
        addr: SocketAddr,
        timeout: Duration,
        protocol: Protocol,
    ) -> std::io::Result<Conn> {
        let mut conn = Conn {
            addr,
            stream: None,
            rbuf: BytesMut::with_capacity(READ_RESERVE),
            wbuf: BytesMut::with_capacity(READ_RESERVE),
            limits: Limits {
                max_value_len: MAX_VALUE_SIZE,
                ..Limits::default()
            },
            timeout,
            protocol,
        };
        conn.connect().await?;
        Ok(conn)
    }

    async fn connect(&mut self) -> std::io::Result<()> {
        let stream = tokio::time::timeout(self.timeout, TcpStream::connect(self.addr))
            .await
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out")
            })??;
        stream.set_nodelay(true)?;
        self.rbuf.clear();
        self.stream = Some(stream);
        Ok(())
    }

    /// Sends `batch` in one write and reads the replies in order, counting each into `tally`.
    async fn exchange(&mut self, batch: &[(Op, usize)], workload: &Workload, tally: &mut Tally) {
        if self.stream.is_none() && self.connect().await.is_err() {
            tally.errors.connection += batch.len() as u64;
            tokio::time::sleep(RECONNECT_PAUSE).await;
            return;
        }
        self.wbuf.clear();
        for &(op, key) in batch {
            compose(self.protocol, op, key, workload, &mut self.wbuf);
        }
        let sent = Instant::now();
        let deadline = sent + self.timeout;
        let mut fate = self.write(deadline).await;
        for &(op, _) in batch {
            if fate.is_none() {
                fate = match self.read_reply(deadline).await {
                    Fate::Answered(reply) => {
                        count(op, reply, sent.elapsed(), tally);
                        continue;
                    }
                    other => Some(other),
                };
            }
            match fate {
                Some(Fate::TimedOut) => tally.errors.timeout += 1,
                _ => tally.errors.connection += 1,
            }
        }
        if fate.is_some() {
            // Replies still on the way would be read as answers to the next batch.
            self.stream = None;
        }
    }

    /// Writes the composed batch; `None` when it went out.
    async fn write(&mut self, deadline: Instant) -> Option<Fate> {
        let stream = self.stream.as_mut()?;
        match timeout_at(deadline, stream.write_all(&self.wbuf)).await {
            Ok(Ok(())) => None,
            Ok(Err(_)) => Some(Fate::Lost),
            Err(_) => Some(Fate::TimedOut),
        }
    }

    async fn read_reply(&mut self, deadline: Instant) -> Fate {
        let Some(stream) = self.stream.as_mut() else {
            return Fate::Lost;
        };
        // Bounded: every turn either returns or reads at least one byte before the deadline.
        loop {
            match parse_reply(self.protocol, &self.rbuf, &self.limits) {
                Parsed::Reply(reply, consumed) => {
                    self.rbuf.advance(consumed);
                    return Fate::Answered(reply);
                }
                Parsed::Invalid => return Fate::Lost,
                Parsed::Incomplete => {}
            }
            if self.rbuf.capacity() - self.rbuf.len() < READ_RESERVE / 4 {
                self.rbuf.reserve(READ_RESERVE);
            }
            match timeout_at(deadline, stream.read_buf(&mut self.rbuf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return Fate::Lost,
                Ok(Ok(_)) => {}
                Err(_) => return Fate::TimedOut,
            }
        }
    }
}

/// Appends the request for `op` on key number `key` in `protocol`.
fn compose(protocol: Protocol, op: Op, key: usize, workload: &Workload, out: &mut BytesMut) {
    let key = workload.key(key);
    match (protocol, op) {
        (Protocol::Text, Op::Get) => Request::Get {
            keys: vec![key],
            with_cas: false,
        }
        .compose(out),
        (Protocol::Text, Op::Set) => Request::Store {
            op: StoreOp::Set,
            key,
            flags: 0,
            exptime: 0,
            value: workload.value(),
            cas_unique: 0,
            noreply: false,
        }
        .compose(out),
        (Protocol::Meta, Op::Get) => {
            Request::MetaGet(Box::new(MetaGet::asking(key, b"fv"))).compose(out)
        }
        (Protocol::Meta, Op::Set) => Request::MetaSet(Box::new(MetaSet {
            key,
            value: workload.value(),
            mode: SetMode::Set,
            compare_cas: None,
            invalidate: false,
            client_flags: 0,
            exptime: 0,
            flags: MetaFlags::new(),
        }))
        .compose(out),
        (Protocol::Binary, Op::Get) => compose_binary(&BinaryRequest::keyed(Opcode::Get, key), out),
        (Protocol::Binary, Op::Set) => compose_binary(
            &BinaryRequest::store(Opcode::Set, key, 0, 0, workload.value()),
            out,
        ),
    }
}

/// A reply read from the front of the buffer, or why not.
enum Parsed {
    Reply(Reply, usize),
    Incomplete,
    Invalid,
}

fn parse_reply(protocol: Protocol, buf: &[u8], limits: &Limits) -> Parsed {
    if protocol == Protocol::Binary {
        return match binary::parse_response(buf, limits) {
            BinaryResponseParse::Response { response, consumed } => {
                let reply = match (response.opcode, response.status) {
                    (Opcode::Get, binary::Status::Success) => Reply::Hit,
                    (Opcode::Get, binary::Status::KeyNotFound) => Reply::Miss,
                    (Opcode::Set, binary::Status::Success) => Reply::Stored,
                    (_, binary::Status::UnknownCommand) => Reply::Error,
                    (_, binary::Status::InvalidArguments) => Reply::ClientError,
                    (_, binary::Status::OutOfMemory | binary::Status::Other(_)) => {
                        Reply::ServerError
                    }
                    _ => Reply::Unexpected,
                };
                Parsed::Reply(reply, consumed)
            }
            BinaryResponseParse::Incomplete => Parsed::Incomplete,
            BinaryResponseParse::Invalid(_) => Parsed::Invalid,
        };
    }
    match parse_response(buf, limits) {
        ResponseOutcome::Response { response, consumed } => {
            let reply = match response {
                Response::Values(values) if values.is_empty() => Reply::Miss,
                Response::Values(_) => Reply::Hit,
                Response::Stored => Reply::Stored,
                Response::MetaLine(line) => match &line.code {
                    b"VA" => Reply::Hit,
                    b"EN" => Reply::Miss,
                    b"HD" => Reply::Stored,
                    _ => Reply::Unexpected,
                },
                Response::ServerError(_) => Reply::ServerError,
                Response::ClientError(_) => Reply::ClientError,
                Response::Error => Reply::Error,
                _ => Reply::Unexpected,
            };
            Parsed::Reply(reply, consumed)
        }
        ResponseOutcome::Incomplete => Parsed::Incomplete,
        ResponseOutcome::Invalid(_) => Parsed::Invalid,
    }
}

/// Counts one reply; only the expected ones (a hit or a miss to a get, stored to a set) have
/// their latency recorded.
fn count(op: Op, reply: Reply, latency: Duration, tally: &mut Tally) {
    match (op, reply) {
        (Op::Get, Reply::Hit | Reply::Miss) => {
            tally.gets += 1;
            tally.hits += u64::from(matches!(reply, Reply::Hit));
            tally.record(latency);
        }
        (Op::Set, Reply::Stored) => {
            tally.sets += 1;
            tally.record(latency);
        }
        (_, Reply::ServerError) => tally.errors.server_error += 1,
        (_, Reply::ClientError) => tally.errors.client_error += 1,
        (_, Reply::Error) => tally.errors.error += 1,
        _ => tally.errors.unexpected += 1,
    }
}

/// What the connection tasks share.
struct Shared {
    plan: Plan,
    /// Operations claimed in the measured phase (`--ops` runs).
    claimed: AtomicU64,
    /// Operations finished in the measured phase (for the progress bar).
    finished: AtomicU64,
    measure_from: Instant,
    /// End of the measured phase (`--duration` runs).
    until: Option<Instant>,
}

/// Opens the connections, preloads, warms up, measures; returns the merged report.
pub async fn run(plan: Plan, progress: bool) -> Result<Report, BenchError> {
    let mut conns = Vec::with_capacity(plan.connections);
    for i in 0..plan.connections {
        let addr = plan.targets[i % plan.targets.len()];
        let conn = Conn::open(addr, plan.timeout, plan.protocol)
            .await
            .map_err(|error| BenchError::Connect { addr, error })?;
        conns.push(conn);
    }
    let bar = progress.then(|| progress_bar(&plan));
    let preload_errors = if plan.preload {
        if let Some(bar) = &bar {
            bar.set_message("preloading");
        }
        preload(&plan, &mut conns).await
    } else {
        0
    };
    let start = Instant::now();
    let measure_from = start + plan.warmup;
    let shared = Arc::new(Shared {
        until: plan.ops.is_none().then(|| measure_from + plan.duration),
        plan,
        claimed: AtomicU64::new(0),
        finished: AtomicU64::new(0),
        measure_from,
    });
    let mut tasks = JoinSet::new();
    for (index, conn) in conns.into_iter().enumerate() {
        tasks.spawn(drive(conn, index, shared.clone()));
    }
    let ticker = bar
        .clone()
        .map(|bar| tokio::spawn(tick(bar, shared.clone())));
    let mut total = Tally::default();
    let mut last = measure_from;
    while let Some(joined) = tasks.join_next().await {
        // A connection task that panicked loses its own counts only.
        if let Ok((tally, finished)) = joined {
            total.merge(&tally);
            last = last.max(finished);
        }
    }
    if let Some(ticker) = ticker {
        ticker.abort();
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let elapsed = last.saturating_duration_since(measure_from);
    Ok(Report::new(&shared.plan, &total, elapsed, preload_errors))
}

/// Sets every key once, the keys split over the connections; returns the errors.
async fn preload(plan: &Plan, conns: &mut Vec<Conn>) -> u64 {
    let per_set = plan.workload.key_size() + plan.workload.value_size() + 64;
    let batch = (PRELOAD_BATCH_BYTES / per_set).clamp(1, PRELOAD_BATCH_MAX);
    let stride = conns.len();
    let mut tasks = JoinSet::new();
    for (index, mut conn) in conns.drain(..).enumerate() {
        let workload = plan.workload.clone();
        tasks.spawn(async move {
            let mut tally = Tally::default();
            let keys: Vec<(Op, usize)> = (index..workload.key_count())
                .step_by(stride)
                .map(|key| (Op::Set, key))
                .collect();
            for chunk in keys.chunks(batch) {
                conn.exchange(chunk, &workload, &mut tally).await;
            }
            (index, conn, tally.errors.total())
        });
    }
    let mut back: Vec<Option<Conn>> = (0..stride).map(|_| None).collect();
    let mut errors = 0;
    while let Some(joined) = tasks.join_next().await {
        if let Ok((index, conn, errs)) = joined {
            back[index] = Some(conn);
            errors += errs;
        }
    }
    // A preload task can only vanish by panicking; its connection is then left out.
    conns.extend(back.into_iter().flatten());
    errors
}

/// One connection's loop: warm-up, then measured batches until the time or the ops run out.
/// Returns its tally and when its last measured batch finished.
async fn drive(mut conn: Conn, index: usize, shared: Arc<Shared>) -> (Tally, Instant) {
    let plan = &shared.plan;
    let mut chooser = Chooser::new(&plan.workload, plan.seed, index);
    let mut tally = Tally::default();
    let mut scratch = Tally::default();
    let mut finished = shared.measure_from;
    let mut batch = Vec::with_capacity(plan.pipeline);
    // Bounded: a duration run stops at `until`; an ops run claims ops on every measured turn
    // (each batch ends by its timeout at the latest) and warms up for a bounded time.
    loop {
        let now = Instant::now();
        if shared.until.is_some_and(|until| now >= until) {
            break;
        }
        let measuring = now >= shared.measure_from;
        let mut size = plan.pipeline;
        if let (Some(ops), true) = (plan.ops, measuring) {
            let first = shared.claimed.fetch_add(size as u64, Ordering::Relaxed);
            if first >= ops {
                break;
            }
            size = size.min((ops - first) as usize);
        }
        batch.clear();
        batch.extend((0..size).map(|_| (chooser.op(), chooser.key())));
        if measuring {
            conn.exchange(&batch, &plan.workload, &mut tally).await;
            shared.finished.fetch_add(size as u64, Ordering::Relaxed);
            finished = Instant::now();
        } else {
            conn.exchange(&batch, &plan.workload, &mut scratch).await;
        }
    }
    (tally, finished)
}

fn progress_bar(plan: &Plan) -> indicatif::ProgressBar {
    let (len, unit) = match plan.ops {
        Some(ops) => (ops, "ops"),
        None => (plan.duration.as_millis() as u64, "ms"),
    };
    let bar = indicatif::ProgressBar::new(len);
    let template = format!("{{msg:>10}} [{{bar:40}}] {{pos}}/{{len}} {unit} ({{elapsed}})");
    if let Ok(style) = indicatif::ProgressStyle::with_template(&template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Moves the bar until aborted.
async fn tick(bar: indicatif::ProgressBar, shared: Arc<Shared>) {
    let mut interval = tokio::time::interval(Duration::from_millis(200));
    // Bounded by the abort in `run`, which comes once every connection task has ended.
    loop {
        interval.tick().await;
        let now = Instant::now();
        if now < shared.measure_from {
            bar.set_message("warm-up");
            continue;
        }
        bar.set_message("measuring");
        match shared.plan.ops {
            Some(_) => bar.set_position(shared.finished.load(Ordering::Relaxed)),
            None => bar.set_position((now - shared.measure_from).as_millis() as u64),
        }
    }
}
