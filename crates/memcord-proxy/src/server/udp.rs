//! memcached's UDP protocol (`-U <port>`, `[server] udp_port`; off by default, as in
//! memcached 1.6).
//!
//! Every datagram starts with an 8-byte frame header, big-endian:
//!
//! ```text
//! 0       2         4        6         8
//! +-------+---------+--------+---------+------------------ -
//! | req id| seq no. | total  | reserved| request(s), as over TCP
//! +-------+---------+--------+---------+------------------ -
//! ```
//!
//! A request must fit one datagram (`total` 1; memcached drops any other, and so does
//! memcord), which may hold several pipelined requests. Each datagram is parsed with the same
//! parser and served by the same [`serve_request`] as a TCP connection (so by the same
//! `Coordinator::handle`), as a connection of its own. Replies go back to the sender in
//! datagrams of at most 1400 bytes (the header and 1392 bytes of reply), one run of datagrams
//! per reply, each run numbered from 0 with its own total, as memcached 1.6.18 sends them: a
//! multi-get's values are separate replies there (the last one carrying `END`), so they are
//! here too.
//!
//! `quit` is answered with a bare header (total 0), as memcached answers it, and ends only the
//! datagram. Deliberate difference: a request cut short at the end of its datagram is dropped
//! (memcached joins it with whatever datagram comes next, from any sender).

use super::connection::{serve_request, Next};
use super::stats::ConnCounters;
use super::Shared;
use crate::modes::{Coordinator, Session};
use crate::protocol::{parse_request, AfterError, ParseOutcome, Response};
use bytes::{Bytes, BytesMut};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::UdpSocket;
use tokio::sync::Semaphore;

/// memcached's frame header length.
pub const HEADER_LEN: usize = 8;
/// memcached's largest datagram payload, header included.
pub const MAX_DATAGRAM: usize = 1400;
/// Reply bytes per datagram.
const DATA_PER_DATAGRAM: usize = MAX_DATAGRAM - HEADER_LEN;
/// The largest datagram read.
const READ_BUFFER: usize = 65536;
/// Datagrams served at once; more are dropped (UDP is allowed to lose them).
const IN_FLIGHT: usize = 1024;
/// UDP sessions are numbered apart from TCP connections.
const FIRST_SESSION: u64 = 1 << 48;

/// Serves datagrams from `socket` until the task is aborted.
pub(super) async fn serve<C: Coordinator>(
    socket: UdpSocket,
    coordinator: Arc<C>,
    shared: Arc<Shared>,
) {
    let socket = Arc::new(socket);
    let in_flight = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut buf = vec![0u8; READ_BUFFER];
    let mut next_session = FIRST_SESSION;
    loop {
        let (n, from) = match socket.recv_from(&mut buf).await {
            Ok(received) => received,
            Err(err) => {
                tracing::debug!(%err, "udp receive failed");
                continue;
            }
        };
        let Some(request_id) = request_id(&buf[..n]) else {
            continue;
        };
        let Ok(permit) = in_flight.clone().try_acquire_owned() else {
            tracing::debug!(%from, "udp: too many datagrams in flight; dropped one");
            continue;
        };
        let datagram = Datagram {
            from,
            request_id,
            body: Bytes::copy_from_slice(&buf[HEADER_LEN..n]),
            session: next_session,
        };
        next_session += 1;
        let (socket, coordinator, shared) = (socket.clone(), coordinator.clone(), shared.clone());
        tokio::spawn(async move {
            answer(&socket, &*coordinator, &shared, datagram).await;
            drop(permit);
        });
    }
}

/// The request id of a datagram memcached would serve: longer than its header and the only
/// datagram of its request.
fn request_id(datagram: &[u8]) -> Option<u16> {
    if datagram.len() <= HEADER_LEN || datagram[4..6] != [0, 1] {
        return None;
    }
    Some(u16::from_be_bytes([datagram[0], datagram[1]]))
}

/// One received datagram.
struct Datagram {
    from: SocketAddr,
    request_id: u16,
    body: Bytes,
    session: u64,
}

/// Serves every request in one datagram and sends each reply back.
async fn answer<C: Coordinator>(socket: &UdpSocket, coordinator: &C, shared: &Shared, d: Datagram) {
    let mut session = Session::new(d.session);
    let mut counters = ConnCounters {
        bytes_read: (d.body.len() + HEADER_LEN) as u64,
        ..ConnCounters::default()
    };
    let limits = &shared.settings.limits;
    let mut input = &d.body[..];
    while !input.is_empty() {
        let (reply, after) = match parse_request(input, limits) {
            // A request cut short by the datagram's end is dropped.
            ParseOutcome::Incomplete => break,
            ParseOutcome::Request { request, consumed } => {
                input = &input[consumed..];
                let quit = request == crate::protocol::Request::Quit;
                let answer =
                    serve_request(shared, coordinator, &mut session, &mut counters, request).await;
                if quit {
                    // memcached answers a UDP `quit` with a bare header (0 datagrams).
                    counters.bytes_written += send_header(socket, d.from, d.request_id).await;
                }
                let after = match answer.next {
                    Next::Continue => AfterError::Continue,
                    Next::Swallow(n) => AfterError::Swallow(n),
                    Next::Close => AfterError::Close,
                };
                (answer.reply, after)
            }
            ParseOutcome::Invalid {
                reply,
                consumed,
                after,
            } => {
                input = &input[consumed..];
                (reply, after)
            }
        };
        counters.bytes_written += send_reply(socket, d.from, d.request_id, &reply).await;
        match after {
            AfterError::Continue => {}
            AfterError::Swallow(n) => input = &input[n.min(input.len())..],
            AfterError::Close => break,
        }
    }
    shared.stats.counters.fold(&mut counters);
}

/// Sends a header alone (request id, sequence 0, total 0); returns the bytes sent.
async fn send_header(socket: &UdpSocket, to: SocketAddr, request_id: u16) -> u64 {
    let mut header = [0u8; HEADER_LEN];
    header[..2].copy_from_slice(&request_id.to_be_bytes());
    match socket.send_to(&header, to).await {
        Ok(n) => n as u64,
        Err(err) => {
            tracing::debug!(%to, %err, "udp send failed");
            0
        }
    }
}

/// Sends one reply as memcached does; returns the bytes sent.
async fn send_reply(socket: &UdpSocket, to: SocketAddr, request_id: u16, reply: &Response) -> u64 {
    let mut sent = 0;
    for part in reply_parts(reply) {
        for datagram in frame(request_id, &part) {
            match socket.send_to(&datagram, to).await {
                Ok(n) => sent += n as u64,
                Err(err) => tracing::debug!(%to, %err, "udp send failed"),
            }
        }
    }
    sent
}

/// A reply in the parts memcached sends as separate runs of datagrams: each value of a
/// multi-get on its own (the last with `END`), any other reply whole.
fn reply_parts(reply: &Response) -> Vec<BytesMut> {
    let compose = |response: &Response| {
        let mut out = BytesMut::new();
        response.compose(&mut out);
        out
    };
    match reply {
        Response::None => Vec::new(),
        Response::Values(values) if values.len() > 1 => {
            let last = values.len() - 1;
            values
                .iter()
                .enumerate()
                .map(|(i, value)| {
                    let mut part = compose(&Response::Values(vec![value.clone()]));
                    if i != last {
                        part.truncate(part.len() - b"END\r\n".len());
                    }
                    part
                })
                .collect()
        }
        other => vec![compose(other)],
    }
}

/// One reply's datagrams: each the header (request id, sequence number, total) and up to
/// 1392 bytes of the reply.
pub fn frame(request_id: u16, reply: &[u8]) -> Vec<Vec<u8>> {
    let chunks: Vec<&[u8]> = reply.chunks(DATA_PER_DATAGRAM).collect();
    let total = u16::try_from(chunks.len()).unwrap_or(u16::MAX);
    chunks
        .into_iter()
        .enumerate()
        .map(|(seq, chunk)| {
            let mut datagram = Vec::with_capacity(HEADER_LEN + chunk.len());
            datagram.extend_from_slice(&request_id.to_be_bytes());
            datagram.extend_from_slice(&(seq as u16).to_be_bytes());
            datagram.extend_from_slice(&total.to_be_bytes());
            datagram.extend_from_slice(&[0, 0]);
            datagram.extend_from_slice(chunk);
            datagram
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_single_datagram_requests_are_served() {
        assert_eq!(
            request_id(b"\x00\x07\x00\x00\x00\x01\x00\x00get k\r\n"),
            Some(7)
        );
        // memcached ignores the sequence number and the reserved bytes.
        assert_eq!(
            request_id(b"\x01\x00\x00\x03\x00\x01\x00\x07version\r\n"),
            Some(256)
        );
        assert_eq!(
            request_id(b"\x00\x07\x00\x00\x00\x02\x00\x00get k\r\n"),
            None
        );
        assert_eq!(
            request_id(b"\x00\x07\x00\x00\x00\x00\x00\x00get k\r\n"),
            None
        );
        assert_eq!(request_id(b"\x00\x07\x00\x00\x00\x01\x00\x00"), None);
    }

    #[test]
    fn replies_are_cut_into_1400_byte_datagrams() {
        let reply = vec![b'z'; 3000];
        let datagrams = frame(9, &reply);
        assert_eq!(datagrams.len(), 3);
        assert_eq!(&datagrams[0][..8], &[0, 9, 0, 0, 0, 3, 0, 0]);
        assert_eq!(&datagrams[2][..8], &[0, 9, 0, 2, 0, 3, 0, 0]);
        assert_eq!(datagrams[0].len(), MAX_DATAGRAM);
        assert_eq!(
            datagrams[2].len(),
            HEADER_LEN + 3000 - 2 * DATA_PER_DATAGRAM
        );
    }
}
