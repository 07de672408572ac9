//! `memcord client`: an interactive console to one peer.
//!
//! Every line is a memcache command sent as typed (storage commands in the classic two-line
//! form or inline, see [`input`]), plus the console's own words: `show` (the cluster's state as
//! a table), `fail N` / `recover N` (fault simulation on peer N, found through
//! `stats settings`' `memcord_peer.N.client_addr`), `help` and `exit`. Replies print in the server's
//! own words, one per line.
//!
//! On a terminal it edits lines and keeps a history (rustyline); with piped input it runs the
//! lines without prompts or colours, stops at the first reply that is an error (`ERROR`,
//! `CLIENT_ERROR`, `SERVER_ERROR`; `--keep-going` runs every line) and exits 0, or 1 when a
//! reply was an error or a connection failed, so it can be scripted:
//!
//! ```text
//! printf 'set greeting hello\nget greeting\nshow\n' | memcord client --port 8000
//! ```
//!
//! Like `check` and `bench`, the console knows memcord only through the wire protocol.

pub mod connection;
pub mod input;
pub mod render;

use connection::{Connection, ConnectionError};
use input::{parse_line, with_crlf, with_data, ConsoleLine};
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

/// `memcord client`: where to connect.
#[derive(Debug, Clone, clap::Args)]
pub struct ClientArgs {
    /// The peer's host.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// The peer's client port (8000 is the first peer of `memcord cluster` and config.ini).
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
    /// Seconds to wait for a connection or a reply.
    #[arg(long, default_value_t = 10)]
    pub timeout: u64,
    /// With piped input, run every line even after an error reply (and exit 0 unless a
    /// connection failed); by default the script stops at the first one and exits 1.
    #[arg(long)]
    pub keep_going: bool,
}

/// Why the console ended with an error.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The first connection failed.
    #[error(transparent)]
    Connect(#[from] ConnectionError),
    /// A connection failed while running piped input (the messages went to stderr).
    #[error("{0} command(s) failed on a broken connection")]
    Broken(usize),
    /// Piped input stopped at a line the server answered with an error.
    #[error("line {line} (`{command}`) was answered {reply}: stopped there (--keep-going runs every line)")]
    Stopped {
        /// The input line, counted from 1.
        line: usize,
        /// The line as given (shortened).
        command: String,
        /// The error reply.
        reply: String,
    },
    /// The terminal could not be driven.
    #[error("terminal: {0}")]
    Terminal(String),
}

/// What `help` prints.
pub const HELP: &str = "\
memcache commands are sent as typed, for example:
  get <key> [<key> ...]      gets / gat <exptime> <key> / gats
  set <key> <flags> <exptime> <bytes> [noreply]   then the data on the next line
  set <key> <value ...>      inline form: flags and exptime 0 (also add, replace, append, prepend)
  cas <key> <cas-id> <value ...>   inline cas (or the classic two-line form)
  delete <key>   incr <key> <n>   decr <key> <n>   touch <key> <exptime>
  flush_all [delay]   stats [cluster|settings|reset]   version   verbosity <n>
  mg <key> <flags>   md <key> <flags>   ma <key> <flags>   mn   me <key>   (meta commands)
  ms <key> <bytes> <flags>   then the data on the next line
console commands:
  show               the cluster's peers, status, items and lag (from `stats cluster`)
  fail <N>           make peer N act as failed (fault simulation); `fail` alone: this peer
  recover <N>        bring peer N back; `recover` alone: this peer
  help               this list
  exit / quit        leave (Ctrl-D too)";

/// Runs the console until the input ends, `exit` or `quit`.
pub fn run(args: ClientArgs) -> Result<(), ClientError> {
    let addr = format!("{}:{}", args.host, args.port);
    let timeout = Duration::from_secs(args.timeout.max(1));
    let interactive = std::io::stdin().is_terminal();
    let conn = Connection::connect(&addr, timeout)?;
    let mut console = Console {
        conn: Some(conn),
        addr,
        timeout,
        colour: interactive && std::io::stdout().is_terminal(),
        broken: 0,
        error_reply: None,
    };
    if interactive {
        console.interactive()?;
    } else if let Some(stopped) = console.piped(args.keep_going) {
        return Err(stopped);
    }
    match console.broken {
        0 => Ok(()),
        n => Err(ClientError::Broken(n)),
    }
}

/// Whether the console goes on after a line.
#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    Exit,
}

struct Console {
    /// The connection to the chosen peer; `None` after it broke (reopened on the next command).
    conn: Option<Connection>,
    addr: String,
    timeout: Duration,
    colour: bool,
    /// Commands that failed on a broken connection.
    broken: usize,
    /// The last error reply printed (what stops a script).
    error_reply: Option<String>,
}

impl Console {
    /// Piped input: every line in turn, the line after a classic storage line as its data.
    /// Unless `keep_going`, the first line answered with an error ends the script, and is
    /// returned.
    fn piped(&mut self, keep_going: bool) -> Option<ClientError> {
        let mut lines = std::io::stdin().lock().lines();
        let mut number = 0;
        // Bounded by the input: every pass consumes at least one line.
        while let Some(Ok(line)) = lines.next() {
            number += 1;
            let at = number;
            let flow = self.line(&line, || {
                number += 1;
                lines.next().and_then(Result::ok)
            });
            if let Some(reply) = self.error_reply.take().filter(|_| !keep_going) {
                return Some(ClientError::Stopped {
                    line: at,
                    command: shortened(line.trim()),
                    reply,
                });
            }
            if flow == Flow::Exit {
                return None;
            }
        }
        None
    }

    /// A terminal: rustyline with history; Ctrl-C drops the line, Ctrl-D leaves.
    fn interactive(&mut self) -> Result<(), ClientError> {
        use rustyline::error::ReadlineError;
        let mut editor =
            rustyline::DefaultEditor::new().map_err(|e| ClientError::Terminal(e.to_string()))?;
        let history = history_path();
        if let Some(path) = &history {
            let _ = editor.load_history(path);
        }
        println!(
            "connected to {} — `help` lists the commands, Ctrl-D leaves",
            self.addr
        );
        let prompt = format!("memcord {}> ", self.addr);
        // Bounded by the person at the keyboard: every pass waits for one line.
        loop {
            let line = match editor.readline(&prompt) {
                Ok(line) => line,
                Err(ReadlineError::Interrupted) => continue,
                Err(ReadlineError::Eof) => break,
                Err(err) => return Err(ClientError::Terminal(err.to_string())),
            };
            let _ = editor.add_history_entry(line.as_str());
            let flow = self.line(&line, || editor.readline("data> ").ok());
            if flow == Flow::Exit {
                break;
            }
        }
        if let Some(path) = &history {
            // The history is a convenience: a read-only home must not stop the console.
            let _ = editor.save_history(path);
        }
        Ok(())
    }

    /// Runs one console line; `next_line` supplies a storage command's data line.
    fn line(&mut self, line: &str, next_line: impl FnOnce() -> Option<String>) -> Flow {
        match parse_line(line) {
            ConsoleLine::Nothing => {}
            ConsoleLine::Help => println!("{HELP}"),
            ConsoleLine::Exit => return Flow::Exit,
            ConsoleLine::Quit => {
                if let Some(conn) = self.conn.as_mut() {
                    let _ = conn.send(b"quit\r\n");
                }
                return Flow::Exit;
            }
            ConsoleLine::Invalid(message) => self.note(&message),
            ConsoleLine::Show => self.show(),
            ConsoleLine::Admin { word, peer } => self.admin(word, peer),
            ConsoleLine::NeedsData { header, len } => {
                let Some(data) = next_line() else {
                    self.note("the input ended before the data line; nothing sent");
                    return Flow::Exit;
                };
                match with_data(&header, len, &data) {
                    Ok(bytes) => self.send(&bytes),
                    Err(message) => self.note(&message),
                }
            }
            ConsoleLine::Send(bytes) => self.send(&bytes),
        }
        Flow::Continue
    }

    /// Sends one command and prints its replies.
    fn send(&mut self, bytes: &[u8]) {
        // `version` is the fence itself: its one reply is read directly.
        let is_version = bytes.split(|b| b.is_ascii_whitespace()).next() == Some(b"version");
        let result = self.with_conn(|conn| {
            if is_version {
                conn.request_one(bytes).map(|r| vec![r])
            } else {
                conn.exchange(bytes)
            }
        });
        if let Some(replies) = result {
            for reply in &replies {
                self.print_reply(reply);
            }
            if replies.contains(&memcord_protocol::Response::Error) {
                let word = bytes.split(|b| b.is_ascii_whitespace()).next();
                self.note(&format!(
                    "the server does not know `{}`, or not with these arguments: `help` lists \
                     the commands",
                    String::from_utf8_lossy(word.unwrap_or_default())
                ));
            }
        }
    }

    /// `show`: `stats cluster` as a table.
    fn show(&mut self) {
        let addr = self.addr.clone();
        let both = self.with_conn(|conn| Ok((conn.stats("cluster")?, conn.stats("settings")?)));
        match both {
            Some((Some(cluster), settings)) => print!(
                "{}",
                render::cluster_table(&addr, &cluster, &settings.unwrap_or_default())
            ),
            Some((None, _)) => {
                println!("{addr} is a cluster of one (standalone): no peers to show")
            }
            None => {}
        }
    }

    /// `fail N` / `recover N`: the word sent to peer N's client address.
    fn admin(&mut self, word: &'static str, peer: u16) {
        // Every peer lists all the peers' client addresses in `stats settings`.
        let Some(settings) = self.with_conn(|conn| conn.stats("settings")) else {
            return;
        };
        let settings = settings.unwrap_or_default();
        let value = |name: String| settings.iter().find(|(n, _)| *n == name).map(|(_, v)| v);
        if value("memcord_peers".into()).map_or(true, |n| n == "1") {
            self.note(&format!(
                "{} is a cluster of one: send `{word}` without a peer id",
                self.addr
            ));
            return;
        }
        let request = with_crlf(word);
        let result = if value("memcord_peer_id".into()).map(String::as_str)
            == Some(&peer.to_string())
        {
            let addr = self.addr.clone();
            self.with_conn(|conn| conn.exchange(&request))
                .map(|replies| (addr, replies))
        } else if let Some(addr) = value(format!("memcord_peer.{peer}.client_addr")) {
            let addr = addr.clone();
            match Connection::connect(&addr, self.timeout).and_then(|mut c| c.exchange(&request)) {
                Ok(replies) => Some((addr, replies)),
                Err(err) => {
                    self.failed(&err);
                    None
                }
            }
        } else {
            self.note(&format!(
                "{} knows no peer {peer} (no memcord_peer.{peer}.client_addr in `stats settings`)",
                self.addr
            ));
            None
        };
        if let Some((addr, replies)) = result {
            for reply in &replies {
                let text = render::reply_text(reply);
                self.print_line(
                    &format!("peer {peer} ({addr}): {text}"),
                    render::is_error(reply),
                );
            }
        }
    }

    /// Runs `f` on the connection, reopening it first if it broke; a failure is reported and
    /// the connection dropped.
    fn with_conn<T>(
        &mut self,
        f: impl FnOnce(&mut Connection) -> Result<T, ConnectionError>,
    ) -> Option<T> {
        if self.conn.is_none() {
            match Connection::connect(&self.addr, self.timeout) {
                Ok(conn) => self.conn = Some(conn),
                Err(err) => {
                    self.failed(&err);
                    return None;
                }
            }
        }
        let conn = self.conn.as_mut()?;
        match f(conn) {
            Ok(value) => Some(value),
            Err(err) => {
                self.conn = None;
                self.failed(&err);
                None
            }
        }
    }

    fn failed(&mut self, err: &ConnectionError) {
        self.broken += 1;
        self.note(&err.to_string());
    }

    /// A message of the console's own (not a server reply), on stderr.
    fn note(&self, message: &str) {
        let _ = std::io::stdout().flush();
        if self.colour {
            eprintln!("\x1b[33mmemcord client: {message}\x1b[0m");
        } else {
            eprintln!("memcord client: {message}");
        }
    }

    fn print_reply(&mut self, reply: &memcord_protocol::Response) {
        let text = render::reply_text(reply);
        if !text.is_empty() {
            self.print_line(&text, render::is_error(reply));
        }
    }

    fn print_line(&mut self, text: &str, error: bool) {
        if error {
            self.error_reply = Some(text.lines().next().unwrap_or_default().to_string());
        }
        if self.colour && error {
            println!("\x1b[31m{text}\x1b[0m");
        } else {
            println!("{text}");
        }
    }
}

/// `line` cut to 60 characters, for a message.
fn shortened(line: &str) -> String {
    match line.char_indices().nth(60) {
        Some((at, _)) => format!("{}…", &line[..at]),
        None => line.to_string(),
    }
}

/// Where the history is kept: `$XDG_STATE_HOME/memcord/history`, else `~/.memcord_history`.
fn history_path() -> Option<PathBuf> {
    if let Some(state) = std::env::var_os("XDG_STATE_HOME").filter(|s| !s.is_empty()) {
        let dir = PathBuf::from(state).join("memcord");
        let _ = std::fs::create_dir_all(&dir);
        return Some(dir.join("history"));
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|home| PathBuf::from(home).join(".memcord_history"))
}
