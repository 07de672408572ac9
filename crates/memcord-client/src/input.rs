//! What one console line means: a console command (`help`, `show`, `fail N` …), a memcache
//! command to send as typed, or a storage command whose data line comes next.
//!
//! ```text
//! set k 0 0 5          classic form: the next input line is the 5-byte data block
//! hello
//! set k hello world    inline form: the rest of the line is the value, flags and exptime 0
//! cas k 42 hello       inline cas: cas id, then the value
//! get k                anything else is sent as typed
//! ```

/// The storage words that take a data block.
const STORAGE: [&str; 5] = ["set", "add", "replace", "append", "prepend"];

/// One parsed console line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsoleLine {
    /// Blank or a `#` comment: nothing to do.
    Nothing,
    /// `help`: list the commands.
    Help,
    /// `show`: the cluster's state as a table.
    Show,
    /// `exit`: leave the console (memcache's `quit` also does, after sending it).
    Exit,
    /// `fail N` / `recover N`: the fault-simulation word sent to peer N.
    Admin {
        /// `fail` or `recover`.
        word: &'static str,
        /// The peer's id.
        peer: u16,
    },
    /// Bytes to send as they are, with the line ending added.
    Send(Vec<u8>),
    /// `quit`: sent, then the console ends.
    Quit,
    /// A classic storage line; the next input line is its data block of `len` bytes.
    NeedsData {
        /// The command line as typed.
        header: String,
        /// The declared byte count.
        len: usize,
    },
    /// A mistake caught before anything is sent (e.g. `fail x`).
    Invalid(String),
}

/// Parses one console line.
pub fn parse_line(line: &str) -> ConsoleLine {
    let line = line.trim_end_matches(['\r', '\n']);
    let words: Vec<&str> = line.split_ascii_whitespace().collect();
    let Some(&first) = words.first() else {
        return ConsoleLine::Nothing;
    };
    if first.starts_with('#') {
        return ConsoleLine::Nothing;
    }
    match (first, words.len()) {
        ("help", 1) => return ConsoleLine::Help,
        ("show", 1) => return ConsoleLine::Show,
        ("exit", 1) => return ConsoleLine::Exit,
        ("quit", _) => return ConsoleLine::Quit,
        ("fail" | "recover", 2) => {
            let word = if first == "fail" { "fail" } else { "recover" };
            return match words[1].parse() {
                Ok(peer) => ConsoleLine::Admin { word, peer },
                Err(_) => {
                    ConsoleLine::Invalid(format!("{word} takes a peer id, not {:?}", words[1]))
                }
            };
        }
        _ => {}
    }
    if STORAGE.contains(&first) {
        return storage(line, &words, 3);
    }
    if first == "cas" {
        return storage(line, &words, 4);
    }
    // `ms <key> <datalen> <flags>*`: the data follows on the next line, as for `set`.
    if first == "ms" && words.len() >= 3 {
        if let Ok(len) = words[2].parse::<usize>() {
            return ConsoleLine::NeedsData {
                header: words.join(" "),
                len,
            };
        }
    }
    ConsoleLine::Send(with_crlf(line))
}

/// A storage line: classic when the `numbers` words after the key are all numbers (the last
/// one the byte count) and at most `noreply` follows, inline when a value follows the key (and,
/// for `cas`, the cas id), else sent as typed so the server answers the mistake.
fn storage(line: &str, words: &[&str], numbers: usize) -> ConsoleLine {
    let numeric = |w: &&str| w.parse::<i64>().is_ok() || w.parse::<u64>().is_ok();
    let classic_len = 2 + numbers;
    let classic = (words.len() == classic_len
        || (words.len() == classic_len + 1 && words[classic_len] == "noreply"))
        && words[2..classic_len].iter().all(numeric);
    if classic {
        // `set k f e n`: n is word 4; `cas k f e n id`: n is word 4 too.
        return match words[4].parse::<usize>() {
            Ok(len) => ConsoleLine::NeedsData {
                header: words.join(" "),
                len,
            },
            // A negative byte count: the server's own error says it best.
            Err(_) => ConsoleLine::Send(with_crlf(line)),
        };
    }
    let first = words[0];
    let value_at = if first == "cas" { 3 } else { 2 };
    if words.len() <= value_at || (first == "cas" && words[2].parse::<u64>().is_err()) {
        return ConsoleLine::Send(with_crlf(line));
    }
    let value = rest_after_words(line, value_at);
    let key = words[1];
    let header = if first == "cas" {
        format!("cas {key} 0 0 {} {}", value.len(), words[2])
    } else {
        format!("{first} {key} 0 0 {}", value.len())
    };
    let mut bytes = with_crlf(&header);
    bytes.extend_from_slice(&with_crlf(value));
    ConsoleLine::Send(bytes)
}

/// `line` after its first `n` words and the spaces after them (inner spaces of the value kept).
fn rest_after_words(line: &str, n: usize) -> &str {
    let mut rest = line.trim_start();
    for _ in 0..n {
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        rest = rest[end..].trim_start();
    }
    rest
}

/// The line as bytes with memcache's line ending.
pub fn with_crlf(line: &str) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(line.len() + 2);
    bytes.extend_from_slice(line.as_bytes());
    bytes.extend_from_slice(b"\r\n");
    bytes
}

/// A classic storage command with its data line, checked to be the declared length (a short
/// block would leave the server waiting for more bytes).
pub fn with_data(header: &str, len: usize, data: &str) -> Result<Vec<u8>, String> {
    let data = data.trim_end_matches(['\r', '\n']);
    if data.len() != len {
        return Err(format!(
            "the data line is {} bytes, the command said {len}; nothing sent",
            data.len()
        ));
    }
    let mut bytes = with_crlf(header);
    bytes.extend_from_slice(&with_crlf(data));
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(line: &str) -> String {
        match parse_line(line) {
            ConsoleLine::Send(bytes) => String::from_utf8(bytes).unwrap(),
            other => panic!("{line:?} parsed as {other:?}"),
        }
    }

    #[test]
    fn console_words() {
        assert_eq!(parse_line("  "), ConsoleLine::Nothing);
        assert_eq!(parse_line("# a comment"), ConsoleLine::Nothing);
        assert_eq!(parse_line("help"), ConsoleLine::Help);
        assert_eq!(parse_line("show"), ConsoleLine::Show);
        assert_eq!(parse_line("exit"), ConsoleLine::Exit);
        assert_eq!(parse_line("quit"), ConsoleLine::Quit);
        assert_eq!(
            parse_line("fail 2"),
            ConsoleLine::Admin {
                word: "fail",
                peer: 2
            }
        );
        assert!(matches!(parse_line("recover x"), ConsoleLine::Invalid(_)));
        // Without an id, `fail` goes to the connected peer as typed.
        assert_eq!(sent("fail"), "fail\r\n");
    }

    #[test]
    fn classic_storage_waits_for_data() {
        assert_eq!(
            parse_line("set k 0 0 5"),
            ConsoleLine::NeedsData {
                header: "set k 0 0 5".into(),
                len: 5
            }
        );
        assert_eq!(
            parse_line("cas k 1 0 2 99 noreply"),
            ConsoleLine::NeedsData {
                header: "cas k 1 0 2 99 noreply".into(),
                len: 2
            }
        );
        assert_eq!(
            with_data("set k 0 0 5", 5, "hello").unwrap(),
            b"set k 0 0 5\r\nhello\r\n"
        );
        assert!(with_data("set k 0 0 5", 5, "hi").is_err());
    }

    #[test]
    fn meta_set_waits_for_data() {
        assert_eq!(
            parse_line("ms k 5 T30 c"),
            ConsoleLine::NeedsData {
                header: "ms k 5 T30 c".into(),
                len: 5
            }
        );
        // Without a length the server's own error says what is wrong.
        assert_eq!(sent("ms k"), "ms k\r\n");
        assert_eq!(sent("mg k v"), "mg k v\r\n");
    }

    #[test]
    fn inline_storage() {
        assert_eq!(sent("set k hello"), "set k 0 0 5\r\nhello\r\n");
        assert_eq!(
            sent("append k  two words"),
            "append k 0 0 9\r\ntwo words\r\n"
        );
        assert_eq!(sent("cas k 42 v"), "cas k 0 0 1 42\r\nv\r\n");
        // Too few words: the server answers.
        assert_eq!(sent("set k"), "set k\r\n");
        assert_eq!(sent("cas k notanumber v"), "cas k notanumber v\r\n");
    }

    #[test]
    fn everything_else_as_typed() {
        assert_eq!(sent("get a b"), "get a b\r\n");
        assert_eq!(sent("stats cluster"), "stats cluster\r\n");
        assert_eq!(sent("GET a"), "GET a\r\n");
    }
}
