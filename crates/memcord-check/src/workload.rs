//! The recorder: N concurrent clients, each on its own TCP connection with one operation at a
//! time, spread round-robin over the peers, issuing a seeded random mix of memcache commands on
//! a small key set and recording every invocation and completion into a [`History`].
//!
//! * **Register keys** (`<prefix>r<i>`) get `gets`, `set`, `add`, `replace`, `append`,
//!   `prepend`, `cas` (with the cas id of this client's last `gets` of the key) and `delete`.
//!   Every written value is unique (`c<client>-<n>`, `;`-terminated so appended pieces stay
//!   apart), so a read names the writes it saw.
//! * **Counter keys** (`<prefix>n<i>`) only ever hold numbers: `gets`, `set <number>`, `incr`,
//!   `decr`, `delete`, so `incr`/`decr` never meet a non-numeric value.
//! * An error reply (`ERROR`, `CLIENT_ERROR …`, `SERVER_ERROR …`), a timeout or a broken
//!   connection is recorded as [`Output::Indeterminate`] with `returned_ns = u64::MAX`; the
//!   client then reconnects before its next operation: to the same peer after an error reply
//!   (up to three in a row), to the next peer after a timeout or a broken connection.
//! * The history's `client` names a **connection**: a client that reconnects continues under a
//!   fresh id, since the sequential mode promises program order per connection.
//!
//! The run is bounded by a deadline, an operation count and a cancellation token.

use super::conn::TextConn;
use super::history::{History, Input, Operation, Output};
use bytes::Bytes;
use memcord_protocol::{ArithOp, Request, Response, StoreOp};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Longest register value a client keeps appending to; past it, it writes a fresh value.
const MAX_APPEND_BASE: usize = 2048;
/// Pause before retrying when no peer accepts a connection.
const CONNECT_PAUSE: Duration = Duration::from_millis(50);
/// Pause after an error reply, so a peer that refuses at once is not hammered.
const ERROR_PAUSE: Duration = Duration::from_millis(50);
/// Consecutive error replies from one peer after which a client moves to the next peer.
const ERRORS_BEFORE_MOVING: u32 = 3;

/// How one operation ended, for the client's reconnection policy.
enum Fate {
    /// A definite reply.
    Definite,
    /// An error reply (`SERVER_ERROR`, …): indeterminate, but the peer is alive.
    ErrorReply,
    /// A timeout or a broken connection: indeterminate, the peer may be gone.
    Lost,
}

/// What the recorder does.
#[derive(Debug, Clone)]
pub struct WorkloadSpec {
    /// The peers' client addresses (clients are spread over them round-robin).
    pub targets: Vec<SocketAddr>,
    /// Concurrent clients.
    pub clients: usize,
    /// Register keys (counter keys: a third as many, at least one).
    pub keys: usize,
    /// Seed of every client's random choices.
    pub seed: u64,
    /// How long to run.
    pub duration: Duration,
    /// Most operations in all.
    pub max_ops: usize,
    /// Target operations per second of all clients together (0: unpaced).
    pub rate: u64,
    /// Per-operation reply deadline (connect included).
    pub op_timeout: Duration,
    /// Key prefix (distinguishes runs against the same cluster).
    pub prefix: String,
}

impl WorkloadSpec {
    /// The register keys.
    pub fn register_keys(&self) -> Vec<String> {
        (0..self.keys.max(1))
            .map(|i| format!("{}r{i}", self.prefix))
            .collect()
    }

    /// The counter keys.
    pub fn counter_keys(&self) -> Vec<String> {
        (0..(self.keys / 3).max(1))
            .map(|i| format!("{}n{i}", self.prefix))
            .collect()
    }

    /// Every key the workload touches.
    pub fn all_keys(&self) -> Vec<String> {
        let mut keys = self.register_keys();
        keys.extend(self.counter_keys());
        keys
    }
}

/// Live counters for progress lines.
#[derive(Debug, Default)]
pub struct Progress {
    /// Operations completed (any outcome).
    pub done: AtomicUsize,
    /// Operations recorded as indeterminate.
    pub indeterminate: AtomicUsize,
}

/// Runs the workload; returns the history, operations sorted by invocation, ids assigned.
/// `base` is the run's time origin.
pub async fn record(
    spec: WorkloadSpec,
    base: Instant,
    stop: CancellationToken,
    progress: Arc<Progress>,
) -> History {
    let until = base + spec.duration;
    let claimed = Arc::new(AtomicUsize::new(0));
    // Client ids in the history name connections: the first ones are 0..clients, every
    // reconnection takes the next free id (sequential consistency is promised per connection).
    let connections = Arc::new(AtomicUsize::new(spec.clients));
    let spec = Arc::new(spec);
    let mut tasks = tokio::task::JoinSet::new();
    for client in 0..spec.clients {
        let spec = spec.clone();
        let stop = stop.clone();
        let claimed = claimed.clone();
        let progress = progress.clone();
        let connections = connections.clone();
        tasks.spawn(async move {
            let mut c = Client::new(client, &spec, base);
            c.run(&spec, until, &stop, &claimed, &progress, &connections)
                .await;
            c.ops
        });
    }
    let mut operations = Vec::new();
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(ops) => operations.extend(ops),
            Err(err) => tracing::error!(%err, "a checker client task failed"),
        }
    }
    operations.sort_by_key(|op| (op.invoked_ns, op.client));
    for (id, op) in operations.iter_mut().enumerate() {
        op.id = id;
    }
    History { operations }
}

/// One client: its connection, its random source and what it remembers.
struct Client {
    id: usize,
    /// The history's client id of the current connection.
    connection: usize,
    /// Whether the next connection is this client's first.
    first: bool,
    base: Instant,
    rng: StdRng,
    peer: usize,
    conn: Option<TextConn>,
    registers: Vec<String>,
    counters: Vec<String>,
    /// The cas id of this client's last `gets` hit per key.
    cas_ids: HashMap<String, u64>,
    /// Length of the value last read per register key.
    lengths: HashMap<String, usize>,
    writes: u64,
    /// Consecutive error replies from the current peer.
    failures: u32,
    ops: Vec<Operation>,
}

impl Client {
    fn new(id: usize, spec: &WorkloadSpec, base: Instant) -> Client {
        let seed = spec
            .seed
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .wrapping_add(id as u64);
        Client {
            id,
            connection: id,
            first: true,
            base,
            rng: StdRng::seed_from_u64(seed),
            peer: id % spec.targets.len().max(1),
            conn: None,
            registers: spec.register_keys(),
            counters: spec.counter_keys(),
            cas_ids: HashMap::new(),
            lengths: HashMap::new(),
            writes: 0,
            failures: 0,
            ops: Vec::new(),
        }
    }

    fn now_ns(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX - 1)
    }

    async fn run(
        &mut self,
        spec: &WorkloadSpec,
        until: Instant,
        stop: &CancellationToken,
        claimed: &AtomicUsize,
        progress: &Progress,
        connections: &AtomicUsize,
    ) {
        // Each client paces itself to its share of the rate.
        let interval = (spec.rate > 0)
            .then(|| Duration::from_secs_f64(spec.clients as f64 / spec.rate as f64));
        let mut next_at = Instant::now();
        while Instant::now() < until && !stop.is_cancelled() {
            if let Some(interval) = interval {
                let now = Instant::now();
                if next_at > now {
                    tokio::select! {
                        _ = tokio::time::sleep_until(next_at) => {}
                        _ = stop.cancelled() => return,
                    }
                } else {
                    // Behind (a slow reply): no burst to catch up.
                    next_at = now;
                }
                next_at += interval;
                if Instant::now() >= until {
                    return;
                }
            }
            if self.conn.is_none() {
                let addr = spec.targets[self.peer];
                match TextConn::connect(addr, spec.op_timeout).await {
                    Ok(conn) => {
                        self.conn = Some(conn);
                        if !std::mem::take(&mut self.first) {
                            self.connection = connections.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(err) => {
                        tracing::debug!(client = self.id, %err, "reconnect failed");
                        self.peer = (self.peer + 1) % spec.targets.len();
                        tokio::select! {
                            _ = tokio::time::sleep(CONNECT_PAUSE) => {}
                            _ = stop.cancelled() => {}
                        }
                        continue;
                    }
                }
            }
            if claimed.fetch_add(1, Ordering::Relaxed) >= spec.max_ops {
                return;
            }
            let (key, input) = self.choose();
            let fate = self.execute(key, input, spec.op_timeout).await;
            progress.done.fetch_add(1, Ordering::Relaxed);
            match fate {
                Fate::Definite => self.failures = 0,
                Fate::ErrorReply => {
                    // The peer answered, so it is alive: stay with it (as a real client
                    // would) on a fresh connection for a few errors, then try the next one.
                    progress.indeterminate.fetch_add(1, Ordering::Relaxed);
                    self.conn = None;
                    self.failures += 1;
                    if self.failures >= ERRORS_BEFORE_MOVING {
                        self.failures = 0;
                        self.peer = (self.peer + 1) % spec.targets.len();
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(ERROR_PAUSE) => {}
                        _ = stop.cancelled() => {}
                    }
                }
                Fate::Lost => {
                    progress.indeterminate.fetch_add(1, Ordering::Relaxed);
                    self.conn = None;
                    self.failures = 0;
                    self.peer = (self.peer + 1) % spec.targets.len();
                }
            }
        }
    }

    fn fresh_value(&mut self) -> Vec<u8> {
        self.writes += 1;
        format!("c{}-{};", self.id, self.writes).into_bytes()
    }

    /// The next operation: a key and what to do with it.
    fn choose(&mut self) -> (String, Input) {
        let counter = self.rng.random_bool(0.25);
        if counter {
            let key = self.counters[self.rng.random_range(0..self.counters.len())].clone();
            let input = match self.rng.random_range(0..100) {
                0..35 => Input::Get,
                35..47 => {
                    self.writes += 1;
                    let n = (self.id as u64 + 1) * 1_000_000 + self.writes;
                    Input::Set(n.to_string().into_bytes())
                }
                47..72 => Input::Incr(self.rng.random_range(1..10)),
                72..92 => Input::Decr(self.rng.random_range(1..10)),
                _ => Input::Delete,
            };
            return (key, input);
        }
        let key = self.registers[self.rng.random_range(0..self.registers.len())].clone();
        let long = self.lengths.get(&key).copied().unwrap_or(0) > MAX_APPEND_BASE;
        let input = match self.rng.random_range(0..100) {
            0..30 => Input::Get,
            30..45 => Input::Set(self.fresh_value()),
            45..53 => Input::Add(self.fresh_value()),
            53..61 => Input::Replace(self.fresh_value()),
            61..69 if !long => Input::Append(self.fresh_value()),
            69..75 if !long => Input::Prepend(self.fresh_value()),
            61..75 => Input::Set(self.fresh_value()),
            75..90 => match self.cas_ids.get(&key).copied() {
                Some(unique) => Input::Cas {
                    value: self.fresh_value(),
                    unique,
                },
                None => Input::Get,
            },
            _ => Input::Delete,
        };
        (key, input)
    }

    /// Sends one operation and records it.
    async fn execute(&mut self, key: String, input: Input, timeout: Duration) -> Fate {
        let request = request_for(&key, &input);
        let invoked_ns = self.now_ns();
        let reply = match self.conn.as_mut() {
            Some(conn) => conn.call(&request, timeout).await,
            None => Err("not connected".into()),
        };
        let returned_ns = self.now_ns();
        let (output, fate) = match reply {
            Ok(response) => {
                let output = output_for(&input, response);
                let fate = if output.is_indeterminate() {
                    Fate::ErrorReply
                } else {
                    Fate::Definite
                };
                (output, fate)
            }
            Err(err) => (Output::Indeterminate(err), Fate::Lost),
        };
        match &output {
            Output::Value { data, cas } => {
                self.cas_ids.insert(key.clone(), *cas);
                self.lengths.insert(key.clone(), data.len());
            }
            Output::Miss => {
                self.cas_ids.remove(&key);
                self.lengths.insert(key.clone(), 0);
            }
            _ => {}
        }
        let indeterminate = output.is_indeterminate();
        self.ops.push(Operation {
            id: 0,
            client: self.connection,
            peer: self.peer,
            key,
            input,
            output,
            invoked_ns,
            returned_ns: if indeterminate { u64::MAX } else { returned_ns },
        });
        fate
    }
}

/// The wire request of an operation.
pub fn request_for(key: &str, input: &Input) -> Request {
    let key = Bytes::copy_from_slice(key.as_bytes());
    let store = |op: StoreOp, value: &[u8], cas_unique: u64| Request::Store {
        op,
        key: key.clone(),
        flags: 0,
        exptime: 0,
        value: Bytes::copy_from_slice(value),
        cas_unique,
        noreply: false,
    };
    match input {
        Input::Get => Request::Get {
            keys: vec![key.clone()],
            with_cas: true,
        },
        Input::Set(v) => store(StoreOp::Set, v, 0),
        Input::Add(v) => store(StoreOp::Add, v, 0),
        Input::Replace(v) => store(StoreOp::Replace, v, 0),
        Input::Append(v) => store(StoreOp::Append, v, 0),
        Input::Prepend(v) => store(StoreOp::Prepend, v, 0),
        Input::Cas { value, unique } => store(StoreOp::Cas, value, *unique),
        Input::Incr(delta) | Input::Decr(delta) => Request::Arith {
            op: if matches!(input, Input::Incr(_)) {
                ArithOp::Incr
            } else {
                ArithOp::Decr
            },
            key: key.clone(),
            delta: *delta,
            noreply: false,
        },
        Input::Delete => Request::Delete {
            key: key.clone(),
            noreply: false,
        },
    }
}

/// The recorded output of a reply; an error reply, or one that does not fit the request, is
/// indeterminate, with the reply as its text.
pub fn output_for(input: &Input, response: Response) -> Output {
    let fits = match (input, &response) {
        (Input::Get, Response::Values(values)) => {
            return match values.as_slice() {
                [] => Output::Miss,
                [value] => match value.cas {
                    Some(cas) => Output::Value {
                        data: value.data.to_vec(),
                        cas,
                    },
                    None => Output::Indeterminate("gets reply without a cas id".into()),
                },
                _ => Output::Indeterminate(format!("{} values for one key", values.len())),
            }
        }
        (Input::Incr(_) | Input::Decr(_), Response::Number(n)) => return Output::Number(*n),
        (Input::Incr(_) | Input::Decr(_), Response::NotFound) => true,
        (Input::Delete, Response::Deleted | Response::NotFound) => true,
        (Input::Set(_), Response::Stored) => true,
        (
            Input::Add(_) | Input::Replace(_) | Input::Append(_) | Input::Prepend(_),
            Response::Stored | Response::NotStored,
        ) => true,
        (Input::Cas { .. }, Response::Stored | Response::Exists | Response::NotFound) => true,
        _ => false,
    };
    match response {
        Response::Stored if fits => Output::Stored,
        Response::NotStored if fits => Output::NotStored,
        Response::Exists if fits => Output::Exists,
        Response::NotFound if fits => Output::NotFound,
        Response::Deleted if fits => Output::Deleted,
        Response::ServerError(text) => Output::Indeterminate(format!("SERVER_ERROR {text}")),
        Response::ClientError(text) => Output::Indeterminate(format!("CLIENT_ERROR {text}")),
        Response::Error => Output::Indeterminate("ERROR".into()),
        other => Output::Indeterminate(format!("unexpected reply {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_map_to_outputs_and_misfits_are_indeterminate() {
        let v = || b"x".to_vec();
        assert_eq!(
            output_for(&Input::Set(v()), Response::Stored),
            Output::Stored
        );
        assert_eq!(
            output_for(&Input::Add(v()), Response::NotStored),
            Output::NotStored
        );
        assert_eq!(
            output_for(&Input::Incr(1), Response::Number(7)),
            Output::Number(7)
        );
        assert_eq!(
            output_for(&Input::Delete, Response::NotFound),
            Output::NotFound
        );
        assert_eq!(
            output_for(&Input::Get, Response::Values(vec![])),
            Output::Miss
        );
        assert!(output_for(&Input::Get, Response::Stored).is_indeterminate());
        assert!(output_for(&Input::Set(v()), Response::NotStored).is_indeterminate());
        assert_eq!(
            output_for(&Input::Set(v()), Response::ServerError("no quorum".into())),
            Output::Indeterminate("SERVER_ERROR no quorum".into())
        );
    }

    #[test]
    fn requests_are_the_wire_commands() {
        let mut out = bytes::BytesMut::new();
        request_for(
            "k",
            &Input::Cas {
                value: b"ab".to_vec(),
                unique: 9,
            },
        )
        .compose(&mut out);
        request_for("k", &Input::Decr(3)).compose(&mut out);
        request_for("k", &Input::Get).compose(&mut out);
        assert_eq!(&out[..], b"cas k 0 0 2 9\r\nab\r\ndecr k 3\r\ngets k\r\n");
    }
}
