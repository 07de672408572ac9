//! A `memcord peer` under test: a real child process on a free port (or the server in-process),
//! and a raw memcache text client that asserts on exact bytes, every wait bounded by a deadline.
//!
//! The child is started with `--port 0`; it prints
//! `memcord peer <id> listening on <ip:port> (kv: …, mode: …)` on stdout once it accepts
//! clients, and the address is read from that line. Its stderr (the log) goes to a temporary file
//! that is printed if the test panics.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a peer may take to start listening.
pub const START_DEADLINE: Duration = Duration::from_secs(20);
/// How long any single expected reply may take.
pub const REPLY_DEADLINE: Duration = Duration::from_secs(10);

/// The `memcord` binary built for these tests.
pub fn memcord_bin() -> &'static str {
    env!("CARGO_BIN_EXE_memcord")
}

/// A running `memcord peer` child process, killed on drop.
pub struct PeerProcess {
    child: Child,
    /// Where clients connect.
    pub addr: SocketAddr,
    /// The ready line the peer printed.
    pub ready_line: String,
    log_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl PeerProcess {
    /// Starts `memcord peer --port 0 <args>` with the embedded store unless `args` say otherwise.
    pub fn start(args: &[&str]) -> PeerProcess {
        Self::start_with_env(args, &[])
    }

    /// Starts `memcord peer <args>` with extra environment variables; adds `--port 0` unless a
    /// port is given in `args` (`--port` or memcached's `-p`).
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> PeerProcess {
        let dir = tempfile::tempdir().expect("temp dir");
        let log_path = dir.path().join("peer.log");
        let mut full: Vec<&str> = vec!["peer"];
        if !args.contains(&"--port") && !args.contains(&"-p") {
            full.extend(["--port", "0"]);
        }
        full.extend(args);
        let mut child = peer_command(&full, env, &log_path)
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawning memcord");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if line.contains(" listening on ") {
                    let _ = tx.send(line);
                }
            }
        });
        let ready_line = match rx.recv_timeout(START_DEADLINE) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let status = child.wait();
                panic!(
                    "memcord peer {full:?} did not report listening ({status:?}); log:\n{}",
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                );
            }
        };
        let addr: SocketAddr = ready_line
            .split(" listening on ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no address in ready line {ready_line:?}"));
        // The line is printed after bind, so connections queue in the backlog from here on.
        // No probe connection: it would show in the peer's connection counters.
        PeerProcess {
            child,
            addr,
            ready_line,
            log_path,
            _dir: dir,
        }
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// A raw client connected to this peer.
    pub fn client(&self) -> RawClient {
        RawClient::connect(self.addr)
    }

    /// The peer's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`) to the peer.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid has no memory effects.
        let rc = unsafe { libc::kill(self.child.id() as i32, signal) };
        assert_eq!(rc, 0, "kill({signal}) failed");
    }

    /// Waits for the peer to exit, up to `deadline`.
    pub fn wait(&mut self, deadline: Duration) -> ExitStatus {
        wait_deadline(&mut self.child, deadline).unwrap_or_else(|| {
            panic!(
                "peer did not exit within {deadline:?}; log:\n{}",
                self.log()
            )
        })
    }
}

impl Drop for PeerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- memcord peer log ({}) ----\n{}", self.addr, self.log());
        }
    }
}

fn peer_command(args: &[&str], env: &[(&str, &str)], log: &Path) -> Command {
    let mut cmd = Command::new(memcord_bin());
    cmd.args(args)
        .stdin(Stdio::null())
        .stderr(std::fs::File::create(log).expect("log file"));
    // Tests must not pick up a developer's MEMCORD_* settings.
    for (key, _) in std::env::vars() {
        if key.starts_with("MEMCORD_") {
            cmd.env_remove(key);
        }
    }
    if !env.iter().any(|(k, _)| *k == "MEMCORD_LOG") {
        cmd.env("MEMCORD_LOG", "memcord=debug");
    }
    for (key, value) in env {
        cmd.env(key, value);
    }
    cmd
}

fn wait_deadline(child: &mut Child, deadline: Duration) -> Option<ExitStatus> {
    let until = Instant::now() + deadline;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if Instant::now() >= until {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs `memcord <args>` expecting it to exit on its own (a configuration error, say) within
/// the start deadline; returns its status and stderr.
pub fn run_to_exit(args: &[&str], env: &[(&str, &str)]) -> (ExitStatus, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("stderr");
    let mut child = peer_command(args, env, &log)
        .stdout(Stdio::null())
        .spawn()
        .expect("spawning memcord");
    let status = wait_deadline(&mut child, START_DEADLINE);
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    let status =
        status.unwrap_or_else(|| panic!("memcord {args:?} kept running; stderr:\n{stderr}"));
    (status, stderr)
}

/// A memcache text-protocol client that works on raw bytes.
pub struct RawClient {
    stream: TcpStream,
}

impl RawClient {
    /// Connects with reply deadlines set.
    pub fn connect(addr: SocketAddr) -> RawClient {
        let stream = TcpStream::connect_timeout(&addr, REPLY_DEADLINE).expect("connect");
        stream.set_read_timeout(Some(REPLY_DEADLINE)).unwrap();
        stream.set_write_timeout(Some(REPLY_DEADLINE)).unwrap();
        stream.set_nodelay(true).unwrap();
        RawClient { stream }
    }

    /// The underlying socket.
    pub fn stream(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    /// Sends bytes as one write.
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// Reads exactly `expected.len()` bytes and asserts they are `expected`.
    pub fn expect(&mut self, expected: &[u8]) {
        let mut got = vec![0; expected.len()];
        let mut filled = 0;
        while filled < got.len() {
            match self.stream.read(&mut got[filled..]) {
                Ok(0) => panic!(
                    "connection closed after {:?}, expected {:?}",
                    show(&got[..filled]),
                    show(expected)
                ),
                Ok(n) => filled += n,
                Err(err) => panic!(
                    "{err} after {:?}, expected {:?}",
                    show(&got[..filled]),
                    show(expected)
                ),
            }
        }
        assert_eq!(show(&got), show(expected));
    }

    /// Sends `request` and asserts the reply is exactly `reply`.
    pub fn roundtrip(&mut self, request: &[u8], reply: &[u8]) {
        self.send(request);
        self.expect(reply);
    }

    /// Reads until the reply so far ends with `suffix`.
    pub fn read_until(&mut self, suffix: &[u8]) -> Vec<u8> {
        let mut got = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        while !got.ends_with(suffix) {
            match self.stream.read(&mut buf) {
                Ok(0) => panic!("connection closed after {:?}", show(&got)),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(err) => panic!("{err} after {:?}", show(&got)),
            }
        }
        got
    }

    /// Sends `stats [group]` and returns the `STAT` lines as pairs.
    pub fn stats(&mut self, group: &str) -> Vec<(String, String)> {
        let request = if group.is_empty() {
            "stats\r\n".to_string()
        } else {
            format!("stats {group}\r\n")
        };
        self.send(request.as_bytes());
        let reply = String::from_utf8(self.read_until(b"END\r\n")).expect("utf-8 stats");
        reply
            .lines()
            .filter_map(|line| line.strip_prefix("STAT "))
            .map(|rest| {
                let (name, value) = rest.split_once(' ').unwrap_or((rest, ""));
                (name.to_string(), value.to_string())
            })
            .collect()
    }

    /// Asserts the server closes the connection (after any bytes in `before`) within the
    /// deadline.
    pub fn expect_closed(&mut self, before: &[u8]) {
        self.expect(before);
        let mut buf = [0u8; 256];
        match self.stream.read(&mut buf) {
            Ok(0) => {}
            Ok(n) => panic!("expected close, got {:?}", show(&buf[..n])),
            Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(err) => panic!("expected close, got {err}"),
        }
    }
}

/// The value of stat `name`, parsed as a number.
pub fn stat(stats: &[(String, String)], name: &str) -> u64 {
    stats
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no STAT {name}"))
        .1
        .parse()
        .unwrap_or_else(|_| panic!("STAT {name} is not a number"))
}

/// Bytes shown with `\r\n` and non-printable bytes escaped, for readable assertion failures.
pub fn show(bytes: &[u8]) -> String {
    bytes.escape_ascii().to_string()
}
