//! Differential sessions: the same scripted requests sent to a real memcached and to memcord,
//! the replies compared after normalising what each server chooses for itself.
//!
//! A [`Session`] is a list of [`Step`]s over one fresh connection. Each step's bytes are sent
//! as they are (`{p}` is a per-session key prefix; `{cas:NAME}` a cas id this server answered
//! earlier in the session), then a sentinel that marks the end of the reply: for the text
//! protocols a meta get of a key no session uses, with the step's number as its opaque
//! (answered `EN k__sentinel__ O<step>`, so quiet replies and swallowed bytes are visible as
//! they are, and an `mn` in the step cannot be taken for the end), a binary `noop` with its own
//! opaque for the binary protocol. A step that closes the connection reads to the end of the
//! stream instead.
//!
//! What is normalised, and nothing else: cas ids (both sides must answer one where the other
//! does), TTLs left (within a second: the servers' clocks tick at different moments), seconds
//! since last access, `me`'s `cls` and `size` (memcord's own classes), the `VERSION` text and
//! binary stat values.

use bytes::{Bytes, BytesMut};
use memcord_protocol::binary::{
    compose_request, parse_response as parse_binary, BinaryRequest, BinaryResponse,
    BinaryResponseParse, Opcode,
};
use memcord_protocol::{parse_request, Limits, ParseOutcome};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// How long one step may wait for its reply.
const STEP_DEADLINE: Duration = Duration::from_secs(10);

/// Which protocol a session speaks (it decides the sentinel and how replies are compared).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// Classic text and meta commands.
    Text,
    /// The binary protocol.
    Binary,
}

/// One scripted connection.
pub struct Session {
    /// Reported on a difference.
    pub name: &'static str,
    /// The protocol.
    pub wire: Wire,
    /// In order.
    pub steps: Vec<Step>,
}

/// One exchange.
pub struct Step {
    /// Bytes to send, with `{p}` and `{cas:NAME}` holes (text), or binary frames whose keys
    /// may hold `{p}` and whose cas may be [`CAS_HOLE`].
    pub send: Vec<u8>,
    /// Binary frames, composed when the step runs (their lengths depend on the prefix).
    pub frames: Vec<BinaryRequest>,
    /// Capture the first cas id of the reply under this name.
    pub capture: Option<&'static str>,
    /// A frame's [`CAS_HOLE`] takes the cas id captured under this name.
    pub use_cas: Option<&'static str>,
    /// The server closes the connection after this step.
    pub closes: bool,
}

/// The cas of a binary frame that takes a captured cas id ([`Step::use_cas`]).
pub const CAS_HOLE: u64 = u64::MAX - 1;

impl Step {
    /// Sends `send`.
    pub fn new(send: impl AsRef<[u8]>) -> Step {
        Step {
            send: send.as_ref().to_vec(),
            frames: Vec::new(),
            capture: None,
            use_cas: None,
            closes: false,
        }
    }

    /// Sends binary `frames`.
    pub fn frames(frames: Vec<BinaryRequest>) -> Step {
        Step {
            frames,
            ..Step::new("")
        }
    }

    /// The same step, after which the server closes the connection.
    pub fn closes(mut self) -> Step {
        self.closes = true;
        self
    }

    /// The same step, keeping the reply's first cas id as `name`.
    pub fn keep_cas(mut self, name: &'static str) -> Step {
        self.capture = Some(name);
        self
    }

    /// The same step, its frames' [`CAS_HOLE`] filled with the cas id kept as `name`.
    pub fn with_cas(mut self, name: &'static str) -> Step {
        self.use_cas = Some(name);
        self
    }

    /// Sends `send` and keeps the reply's first cas id as `name`.
    pub fn capture(send: impl AsRef<[u8]>, name: &'static str) -> Step {
        Step::new(send).keep_cas(name)
    }

    /// Sends `send`, after which the server closes the connection.
    pub fn closing(send: impl AsRef<[u8]>) -> Step {
        Step {
            closes: true,
            ..Step::new(send)
        }
    }
}

/// What one server answered to one session: the reply bytes of each step.
pub type Transcript = Vec<Vec<u8>>;

/// Runs `session` against `addr`, with `prefix` for `{p}`.
pub fn run(addr: SocketAddr, session: &Session, prefix: &str) -> Transcript {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream.set_nodelay(true).ok();
    let mut captures: HashMap<&'static str, u64> = HashMap::new();
    let mut transcript = Vec::new();
    for (index, step) in session.steps.iter().enumerate() {
        let bytes = payload(step, prefix, &captures);
        stream.write_all(&bytes).expect("write");
        let reply = if step.closes {
            read_to_close(&mut stream)
        } else {
            stream
                .write_all(&sentinel(session.wire, index))
                .expect("write");
            read_to_sentinel(&mut stream, session.wire, index)
        }
        .unwrap_or_else(|why| {
            panic!(
                "session `{}` step {} against {addr}: {why}",
                session.name,
                index + 1
            )
        });
        if let Some(name) = step.capture {
            if let Some(cas) = first_cas(session.wire, &reply) {
                captures.insert(name, cas);
            }
        }
        transcript.push(reply);
    }
    transcript
}

/// The key of the text sentinel.
const SENTINEL_KEY: &str = "__sentinel__";

fn sentinel(wire: Wire, step: usize) -> Vec<u8> {
    match wire {
        Wire::Text => format!("mg {SENTINEL_KEY} k O{step}\r\n").into_bytes(),
        // magic 0x80, opcode noop (0x0a), everything else zero, opaque 0xfeedface.
        Wire::Binary => vec![
            0x80, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xfe, 0xed, 0xfa, 0xce, 0, 0, 0, 0, 0, 0, 0,
            0,
        ],
    }
}

fn read_to_sentinel(stream: &mut TcpStream, wire: Wire, step: usize) -> Result<Vec<u8>, String> {
    let deadline = Instant::now() + STEP_DEADLINE;
    let mut got = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        if let Some(end) = sentinel_end(wire, step, &got) {
            got.truncate(end);
            return Ok(got);
        }
        let left = deadline
            .checked_duration_since(Instant::now())
            .ok_or_else(|| format!("no sentinel after {}", show(&got)))?;
        stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .ok();
        match stream.read(&mut buf) {
            Ok(0) => return Err(format!("closed before the sentinel after {}", show(&got))),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(format!("read: {e}")),
        }
    }
}

/// Where the reply ends when `got` ends with the sentinel's answer.
fn sentinel_end(wire: Wire, step: usize, got: &[u8]) -> Option<usize> {
    match wire {
        Wire::Text => {
            let answer = format!("EN k{SENTINEL_KEY} O{step}\r\n");
            got.ends_with(answer.as_bytes())
                .then(|| got.len() - answer.len())
        }
        Wire::Binary => {
            // Walk whole frames: the sentinel's answer is a noop frame with its opaque.
            let mut at = 0;
            while at < got.len() {
                match parse_binary(&got[at..], &Limits::default()) {
                    BinaryResponseParse::Response { response, consumed } => {
                        if response.opaque == 0xfeed_face && response.opcode == Opcode::Noop {
                            return (at + consumed == got.len()).then_some(at);
                        }
                        at += consumed;
                    }
                    _ => return None,
                }
            }
            None
        }
    }
}

fn read_to_close(stream: &mut TcpStream) -> Result<Vec<u8>, String> {
    let deadline = Instant::now() + STEP_DEADLINE;
    let mut got = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        let left = deadline
            .checked_duration_since(Instant::now())
            .ok_or_else(|| format!("not closed after {}", show(&got)))?;
        stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .ok();
        match stream.read(&mut buf) {
            Ok(0) => return Ok(got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            // A reset is a close too.
            Err(_) => return Ok(got),
        }
    }
}

/// The bytes a step sends on this server.
fn payload(step: &Step, prefix: &str, captures: &HashMap<&'static str, u64>) -> Vec<u8> {
    let mut out = expand(&step.send, prefix, captures);
    let mut frames = BytesMut::new();
    for frame in &step.frames {
        let mut frame = frame.clone();
        frame.key = Bytes::from(replace(&frame.key, b"{p}", prefix.as_bytes()));
        if frame.cas == CAS_HOLE {
            frame.cas = step
                .use_cas
                .and_then(|name| captures.get(name).copied())
                .unwrap_or(0);
        }
        compose_request(&frame, &mut frames);
    }
    out.extend_from_slice(&frames);
    out
}

fn expand(bytes: &[u8], prefix: &str, captures: &HashMap<&'static str, u64>) -> Vec<u8> {
    let mut out = replace(bytes, b"{p}", prefix.as_bytes());
    while let Some(start) = find(&out, b"{cas:") {
        let end = start + find(&out[start..], b"}").expect("unterminated {cas:");
        let name = String::from_utf8_lossy(&out[start + 5..end]).into_owned();
        let value = captures.get(name.as_str()).copied().unwrap_or(0);
        out.splice(start..=end, value.to_string().into_bytes());
    }
    out
}

/// The first cas id in a reply: a meta `c<n>` token, a `gets` value's fifth word, or a binary
/// header's cas.
fn first_cas(wire: Wire, reply: &[u8]) -> Option<u64> {
    match wire {
        Wire::Text => {
            for line in reply.split(|&b| b == b'\n') {
                let words: Vec<&[u8]> = line.trim_ascii().split(|&b| b == b' ').collect();
                if words.first() == Some(&&b"VALUE"[..]) && words.len() == 5 {
                    return number(words[4]);
                }
                if words.first().is_some_and(|w| w.len() == 2) {
                    if let Some(cas) = words.iter().skip(1).find_map(|w| w.strip_prefix(b"c")) {
                        if let Some(cas) = number(cas) {
                            return Some(cas);
                        }
                    }
                }
            }
            None
        }
        Wire::Binary => binary_frames(reply)
            .ok()?
            .into_iter()
            .map(|f| f.cas)
            .find(|&cas| cas != 0),
    }
}

fn number(word: &[u8]) -> Option<u64> {
    std::str::from_utf8(word).ok()?.parse().ok()
}

fn signed(word: &[u8]) -> Option<i64> {
    std::str::from_utf8(word).ok()?.parse().ok()
}

/// How many requests the session sends (the sentinels not counted).
pub fn request_count(session: &Session) -> usize {
    let limits = Limits {
        max_value_len: 4 * 1024 * 1024,
        ..Limits::default()
    };
    let mut count = 0;
    for step in &session.steps {
        count += step.frames.len();
        let bytes = expand(&step.send, "p", &HashMap::new());
        let mut at = 0;
        while at < bytes.len() {
            let consumed = match session.wire {
                Wire::Text => match parse_request(&bytes[at..], &limits) {
                    ParseOutcome::Request { consumed, .. } => consumed,
                    ParseOutcome::Invalid {
                        consumed, after, ..
                    } => {
                        consumed
                            + match after {
                                memcord_protocol::AfterError::Swallow(n) => n,
                                _ => 0,
                            }
                    }
                    ParseOutcome::Incomplete => bytes.len() - at,
                },
                Wire::Binary => {
                    let total = bytes
                        .get(at + 8..at + 12)
                        .map(|b| u32::from_be_bytes(b.try_into().unwrap()) as usize)
                        .unwrap_or(bytes.len());
                    (24 + total).min(bytes.len() - at)
                }
            };
            count += 1;
            at += consumed.max(1);
        }
    }
    count
}

/// Compares memcord's transcript of `session` with memcached's; the differences, explained.
pub fn differences(session: &Session, memcached: &Transcript, memcord: &Transcript) -> Vec<String> {
    let mut out = Vec::new();
    for (index, (expected, got)) in memcached.iter().zip(memcord).enumerate() {
        let same = match session.wire {
            Wire::Text => same_text(expected, got),
            Wire::Binary => same_binary(expected, got),
        };
        if let Err(why) = same {
            out.push(format!(
                "session `{}` step {}: {why}\n  sent      {}\n  memcached {}\n  memcord   {}",
                session.name,
                index + 1,
                show(&session.steps[index].send),
                show(expected),
                show(got)
            ));
        }
    }
    out
}

/// Text replies match word for word, but for the normalised words.
fn same_text(expected: &[u8], got: &[u8]) -> Result<(), String> {
    let split = |bytes: &[u8]| -> Vec<Vec<u8>> {
        bytes
            .split(|&b| b == b'\n')
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l).to_vec())
            .collect()
    };
    let lines_a = split(expected);
    let lines_b = split(got);
    if lines_a.len() != lines_b.len() {
        return Err("a different number of lines".into());
    }
    for (a, b) in lines_a.iter().zip(&lines_b) {
        if a == b {
            continue;
        }
        if a.starts_with(b"VERSION ") && b.starts_with(b"VERSION ") {
            continue;
        }
        let words_a: Vec<&[u8]> = a.split(|&c| c == b' ').collect();
        let words_b: Vec<&[u8]> = b.split(|&c| c == b' ').collect();
        if words_a.len() != words_b.len() {
            return Err(format!("line {} differs in length", show(a)));
        }
        let value_line = words_a.first() == Some(&&b"VALUE"[..]);
        for (i, (wa, wb)) in words_a.iter().zip(&words_b).enumerate() {
            if wa == wb || (value_line && i == 4 && number(wa).is_some() && number(wb).is_some()) {
                continue;
            }
            if !same_word(wa, wb) {
                return Err(format!("`{}` against `{}`", show(wa), show(wb)));
            }
        }
    }
    Ok(())
}

/// Whether two words differ only where each server picks its own numbers.
fn same_word(a: &[u8], b: &[u8]) -> bool {
    let a = a.strip_suffix(b"\r").unwrap_or(a);
    let b = b.strip_suffix(b"\r").unwrap_or(b);
    let numeric_after = |prefix: &[u8]| match (a.strip_prefix(prefix), b.strip_prefix(prefix)) {
        (Some(x), Some(y)) => Some((signed(x)?, signed(y)?)),
        _ => None,
    };
    for any in [&b"c"[..], b"cas=", b"l", b"la=", b"cls=", b"size="] {
        if numeric_after(any).is_some() {
            return true;
        }
    }
    for close in [&b"t"[..], b"exp="] {
        if let Some((x, y)) = numeric_after(close) {
            return (x < 0) == (y < 0) && (x - y).abs() <= 1;
        }
    }
    false
}

/// Binary replies match frame for frame, the cas id normalised (both set or both zero) and
/// stat and version values free.
fn same_binary(expected: &[u8], got: &[u8]) -> Result<(), String> {
    let a = binary_frames(expected)?;
    let b = binary_frames(got)?;
    if a.len() != b.len() {
        return Err(format!("{} frames against {}", a.len(), b.len()));
    }
    for (x, y) in a.iter().zip(&b) {
        let free_value = matches!(x.opcode, Opcode::Stat | Opcode::Version);
        let same = x.opcode == y.opcode
            && x.status == y.status
            && x.opaque == y.opaque
            && (x.cas == 0) == (y.cas == 0)
            && x.extras == y.extras
            && (free_value || x.key == y.key)
            && (free_value || x.value == y.value);
        if !same {
            return Err(format!("frame {x:?} against {y:?}"));
        }
    }
    Ok(())
}

fn binary_frames(bytes: &[u8]) -> Result<Vec<BinaryResponse>, String> {
    let mut frames = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        match parse_binary(&bytes[at..], &Limits::default()) {
            BinaryResponseParse::Response { response, consumed } => {
                frames.push(response);
                at += consumed;
            }
            other => return Err(format!("not binary frames at {at}: {other:?}")),
        }
    }
    Ok(frames)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn replace(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut rest = bytes;
    while let Some(at) = find(rest, from) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(to);
        rest = &rest[at + from.len()..];
    }
    out.extend_from_slice(rest);
    out
}

fn show(bytes: &[u8]) -> String {
    super::cases::escape(bytes)
}
