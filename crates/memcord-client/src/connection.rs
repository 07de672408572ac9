//! A blocking memcache text-protocol connection for the console (and for `memcord cluster`'s
//! readiness probe): send bytes, read whole replies with [`parse_response`], every read bounded
//! by a timeout.

use memcord_protocol::{parse_response, Limits, Response, ResponseOutcome};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Why talking to a peer failed. The I/O error is part of each message and not also its
/// `source`, so a printer that walks the chain says it once.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// The address did not resolve.
    #[error("cannot resolve {addr}: {error}")]
    Resolve {
        /// The address given.
        addr: String,
        /// Why.
        error: std::io::Error,
    },
    /// No address of the host accepted a connection.
    #[error("cannot connect to {addr}: {error}")]
    Connect {
        /// The address given.
        addr: String,
        /// Why (from the last address tried).
        error: std::io::Error,
    },
    /// Reading or writing failed (including a reply that did not come in time).
    #[error("connection to {addr} failed: {error}")]
    Io {
        /// The peer.
        addr: String,
        /// Why.
        error: std::io::Error,
    },
    /// The peer closed the connection.
    #[error("{addr} closed the connection")]
    Closed {
        /// The peer.
        addr: String,
    },
    /// The peer sent something that is not a memcache reply.
    #[error("{addr} sent an invalid reply: {reason}")]
    Invalid {
        /// The peer.
        addr: String,
        /// What was wrong.
        reason: String,
    },
}

/// One connection to a memcache server.
pub struct Connection {
    stream: TcpStream,
    addr: String,
    buf: Vec<u8>,
    limits: Limits,
}

/// The `version` request appended after a command as a fence: everything the server sends
/// before the `VERSION` line is the command's reply, however many replies (or none, with
/// `noreply`) that is.
const FENCE: &[u8] = b"version\r\n";

/// Most replies accepted for one console command (a line holds one command; memcached answers
/// a bad storage line and then its data line, so two is the most a well-behaved server sends).
const MAX_REPLIES: usize = 1024;

impl Connection {
    /// Connects to `addr` (`host:port`), bounding the connect and every read or write by
    /// `timeout`.
    pub fn connect(addr: &str, timeout: Duration) -> Result<Connection, ConnectionError> {
        let candidates: Vec<SocketAddr> = addr
            .to_socket_addrs()
            .map_err(|error| ConnectionError::Resolve {
                addr: addr.to_string(),
                error,
            })?
            .collect();
        let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
        for candidate in candidates {
            match TcpStream::connect_timeout(&candidate, timeout) {
                Ok(stream) => {
                    let io = |error| ConnectionError::Io {
                        addr: addr.to_string(),
                        error,
                    };
                    stream.set_read_timeout(Some(timeout)).map_err(io)?;
                    stream.set_write_timeout(Some(timeout)).map_err(io)?;
                    stream.set_nodelay(true).map_err(io)?;
                    return Ok(Connection {
                        stream,
                        addr: addr.to_string(),
                        buf: Vec::new(),
                        limits: Limits {
                            // Replies are bounded by what the server accepts; allow large ones.
                            max_value_len: 1 << 30,
                            ..Limits::default()
                        },
                    });
                }
                Err(err) => last = err,
            }
        }
        Err(ConnectionError::Connect {
            addr: addr.to_string(),
            error: last,
        })
    }

    /// The address this connection was opened to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends `request` (one or more complete command lines with their data blocks) followed by
    /// the fence, and returns every reply that came before the fence's `VERSION`.
    pub fn exchange(&mut self, request: &[u8]) -> Result<Vec<Response>, ConnectionError> {
        let mut out = Vec::with_capacity(request.len() + FENCE.len());
        out.extend_from_slice(request);
        out.extend_from_slice(FENCE);
        self.send(&out)?;
        let mut replies = Vec::new();
        // Bounded: each read waits at most the timeout, and a server that keeps answering
        // without reaching the fence is cut off.
        for _ in 0..MAX_REPLIES {
            match self.read_response()? {
                Response::Version(_) => return Ok(replies),
                other => replies.push(other),
            }
        }
        Err(ConnectionError::Invalid {
            addr: self.addr.clone(),
            reason: format!("more than {MAX_REPLIES} replies to one command"),
        })
    }

    /// Sends `request` and reads exactly one reply (for `version`, which cannot be fenced by
    /// itself).
    pub fn request_one(&mut self, request: &[u8]) -> Result<Response, ConnectionError> {
        self.send(request)?;
        self.read_response()
    }

    /// Sends `request` without waiting for anything (`quit`).
    pub fn send(&mut self, request: &[u8]) -> Result<(), ConnectionError> {
        self.stream
            .write_all(request)
            .and_then(|()| self.stream.flush())
            .map_err(|error| ConnectionError::Io {
                addr: self.addr.clone(),
                error,
            })
    }

    /// `stats <group>` as name/value pairs; `Ok(None)` when the server does not know the group
    /// (it answers `ERROR`, as a cluster of one does for `stats cluster`).
    pub fn stats(&mut self, group: &str) -> Result<Option<Vec<(String, String)>>, ConnectionError> {
        let request = if group.is_empty() {
            "stats\r\n".to_string()
        } else {
            format!("stats {group}\r\n")
        };
        let replies = self.exchange(request.as_bytes())?;
        Ok(match replies.into_iter().next() {
            Some(Response::Stats(lines)) => Some(lines),
            Some(Response::Values(values)) if values.is_empty() => Some(Vec::new()),
            _ => None,
        })
    }

    fn read_response(&mut self) -> Result<Response, ConnectionError> {
        let mut chunk = [0u8; 16 * 1024];
        // Bounded: each pass either returns or reads at least one byte within the timeout, and
        // the parser refuses a line or block past its limits.
        loop {
            match parse_response(&self.buf, &self.limits) {
                ResponseOutcome::Response { response, consumed } => {
                    self.buf.drain(..consumed);
                    return Ok(response);
                }
                ResponseOutcome::Invalid(reason) => {
                    return Err(ConnectionError::Invalid {
                        addr: self.addr.clone(),
                        reason,
                    })
                }
                ResponseOutcome::Incomplete => {}
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    return Err(ConnectionError::Closed {
                        addr: self.addr.clone(),
                    })
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                Err(error) => {
                    return Err(ConnectionError::Io {
                        addr: self.addr.clone(),
                        error,
                    })
                }
            }
        }
    }
}
