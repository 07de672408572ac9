//! A small async memcache text-protocol client for the checker: one request at a time, every
//! exchange bounded by a deadline, replies parsed with [`memcord_protocol::parse_response`]
//! (so a hostile or broken server cannot make it allocate more than the limits allow).

use bytes::{Buf, BytesMut};
use memcord_protocol::{parse_response, Limits, Request, Response, ResponseOutcome};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};

/// Largest value the checker accepts in a reply (its own values are far smaller).
pub const MAX_VALUE_LEN: usize = 256 * 1024;

/// One connection to a memcache server.
pub struct TextConn {
    stream: TcpStream,
    rbuf: BytesMut,
    wbuf: BytesMut,
    limits: Limits,
}

impl TextConn {
    /// Connects within `timeout`.
    pub async fn connect(addr: SocketAddr, timeout: Duration) -> Result<TextConn, String> {
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(err)) => return Err(format!("connect {addr}: {err}")),
            Err(_) => return Err(format!("connect {addr}: timed out after {timeout:?}")),
        };
        let _ = stream.set_nodelay(true);
        Ok(TextConn {
            stream,
            rbuf: BytesMut::with_capacity(16 * 1024),
            wbuf: BytesMut::with_capacity(1024),
            limits: Limits {
                max_value_len: MAX_VALUE_LEN,
                ..Limits::default()
            },
        })
    }

    /// Sends `request` and reads its one reply before `timeout` passes. An `Err` (timeout,
    /// broken or closed connection, invalid reply) leaves the connection unusable: the caller
    /// must drop it.
    pub async fn call(&mut self, request: &Request, timeout: Duration) -> Result<Response, String> {
        let deadline = Instant::now() + timeout;
        self.wbuf.clear();
        request.compose(&mut self.wbuf);
        match timeout_at(deadline, self.stream.write_all(&self.wbuf)).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => return Err(format!("write failed: {err}")),
            Err(_) => return Err(format!("write timed out after {timeout:?}")),
        }
        // Bounded: every turn returns or reads at least one byte before the deadline, and the
        // parser refuses lines and values beyond the limits.
        loop {
            match parse_response(&self.rbuf, &self.limits) {
                ResponseOutcome::Response { response, consumed } => {
                    self.rbuf.advance(consumed);
                    return Ok(response);
                }
                ResponseOutcome::Invalid(reason) => return Err(format!("invalid reply: {reason}")),
                ResponseOutcome::Incomplete => {}
            }
            self.rbuf.reserve(16 * 1024);
            match timeout_at(deadline, self.stream.read_buf(&mut self.rbuf)).await {
                Ok(Ok(0)) => return Err("connection closed".into()),
                Ok(Err(err)) => return Err(format!("read failed: {err}")),
                Ok(Ok(_)) => {}
                Err(_) => return Err(format!("no reply within {timeout:?}")),
            }
        }
    }

    /// `stats <group>` as name/value pairs.
    pub async fn stats(
        &mut self,
        group: &str,
        timeout: Duration,
    ) -> Result<Vec<(String, String)>, String> {
        let request = Request::Stats {
            group: (!group.is_empty()).then(|| group.to_string()),
        };
        match self.call(&request, timeout).await? {
            Response::Stats(stats) => Ok(stats),
            other => Err(format!("unexpected reply to stats {group}: {other:?}")),
        }
    }
}

/// One request on a fresh connection (for admin commands and probes).
pub async fn once(
    addr: SocketAddr,
    request: &Request,
    timeout: Duration,
) -> Result<Response, String> {
    let mut conn = TextConn::connect(addr, timeout).await?;
    conn.call(request, timeout).await
}

/// `stats <group>` on a fresh connection.
pub async fn stats_once(
    addr: SocketAddr,
    group: &str,
    timeout: Duration,
) -> Result<Vec<(String, String)>, String> {
    let mut conn = TextConn::connect(addr, timeout).await?;
    conn.stats(group, timeout).await
}

/// The value of `name` among `stats`.
pub fn stat<'a>(stats: &'a [(String, String)], name: &str) -> Option<&'a str> {
    stats
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}
