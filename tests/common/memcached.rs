//! A real memcached on a free port, killed and reaped on drop.
//!
//! ```ignore
//! let mc = MemcachedProcess::start();                    // -m 64 -I 1m
//! let mc = MemcachedProcess::start_with_args(&["-m", "16", "-I", "2m"]);
//! let stream = std::net::TcpStream::connect(mc.addr())?;
//! ```
//!
//! The binary is `$MEMCACHED_BIN`, else `memcached` on the `PATH`, else `/usr/bin/memcached`.
//! A missing binary is a failed test, never a skipped one: the README's test command
//! (`scripts/test.sh`) installs it.

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long memcached gets to accept its first connection.
const START_DEADLINE: Duration = Duration::from_secs(10);
/// How many free ports are tried (another process may grab the one we picked).
const PORT_ATTEMPTS: usize = 5;

/// A running `memcached` child process listening on 127.0.0.1.
pub struct MemcachedProcess {
    child: Child,
    addr: SocketAddr,
    /// The extra arguments it was started with (kept for a restart).
    args: Vec<String>,
    /// memcached's stderr, kept so a failure to start can say why.
    _log: tempfile::NamedTempFile,
}

/// Finds the memcached binary (as `memcord check` does) or panics with the way to install it.
pub fn memcached_binary() -> PathBuf {
    memcord_check::cluster::memcached_binary().unwrap_or_else(|_| {
        panic!(
            "the `memcached` binary was not found (PATH, /usr/bin, $MEMCACHED_BIN): these tests \
             compare memcord with the real memcached and are never skipped. Run the README's \
             test command, scripts/test.sh, which installs memcached, or set MEMCACHED_BIN."
        )
    })
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

impl MemcachedProcess {
    /// Starts memcached with `-m 64 -I 1m` (64 MiB of memory, 1 MiB item size max).
    pub fn start() -> Self {
        Self::start_with_args(&["-m", "64", "-I", "1m"])
    }

    /// Starts memcached with extra arguments (e.g. `["-m", "16", "-I", "2m"]`); the address,
    /// port and UDP settings are chosen here. Panics if it does not accept connections in time.
    pub fn start_with_args(args: &[&str]) -> Self {
        let binary = memcached_binary();
        let mut last_error = String::new();
        for _ in 0..PORT_ATTEMPTS {
            match Self::try_start(&binary, args, free_port()) {
                Ok(process) => return process,
                Err(error) => last_error = error,
            }
        }
        panic!(
            "memcached ({}) did not start: {last_error}",
            binary.display()
        );
    }

    fn try_start(binary: &PathBuf, args: &[&str], port: u16) -> Result<Self, String> {
        let log = tempfile::NamedTempFile::new().map_err(|e| e.to_string())?;
        let stderr = log.reopen().map_err(|e| e.to_string())?;
        let mut command = Command::new(binary);
        command.args(["-l", "127.0.0.1", "-U", "0", "-p", &port.to_string()]);
        // memcached refuses to run as root unless told which user to become.
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } == 0 {
            command.args(["-u", "root"]);
        }
        let mut child = command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", binary.display()))?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let mut output = String::new();
                let _ = log.reopen().and_then(|mut f| f.read_to_string(&mut output));
                return Err(format!("exited with {status} on port {port}: {output}"));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(MemcachedProcess {
                    child,
                    addr,
                    args: args.iter().map(|a| a.to_string()).collect(),
                    _log: log,
                });
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("not accepting on {addr} after {START_DEADLINE:?}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The address clients connect to (127.0.0.1:port).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// SIGKILLs this memcached and starts a new, empty one on the same port (as a crashed
    /// backend restarted by its supervisor). Panics if the new one does not serve in time.
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let restarted = Self::try_start(&memcached_binary(), &args, self.addr.port())
            .unwrap_or_else(|e| panic!("restarting memcached on {}: {e}", self.addr));
        *self = restarted;
    }
}

impl Drop for MemcachedProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
