//! memcached's administrative commands: `stats <group>`, `cache_memlimit`, `lru_crawler`,
//! `shutdown`, `slabs`, `lru`, `watch`, `extstore`, `refresh_certs`, `misbehave`, `debugtime`,
//! and the HTTP request lines memcached closes the connection on.
//!
//! Each parser makes the syntax checks memcached 1.6.18 makes (`proto_text.c`), in its order,
//! and answers what it answers for a malformed line; checks that depend on the server's state
//! (the crawler disabled, `shutdown` not enabled) are the server's business.
//!
//! ```text
//! stats items | slabs | sizes | conns | detail on|off|dump | cachedump <class> <limit>
//! cache_memlimit <megabytes> [noreply]
//! lru_crawler crawl|metadump <all|hash|id,id,…>    lru_crawler tocrawl|sleep <n>
//! lru_crawler enable|disable                       shutdown [graceful]
//! slabs reassign <src> <dst>    slabs automove <0|1|2> | automove ratio <r>
//! lru tune <hot%> <warm%> <hot factor> <warm factor>   lru mode flat|segmented
//! lru temp_ttl <ttl>            watch [<event> …]   extstore …   refresh_certs
//! ```

use super::line::{parse_i64, parse_u32, Line, Words};
use super::parse::{AfterError, ParseOutcome, BAD_FORMAT};
use super::{Request, Response};

/// memcached's `MAX_NUMBER_OF_SLAB_CLASSES`: class ids are 1..=63.
pub const MAX_CLASSES: u32 = 64;

/// A floating-point argument (`slabs automove ratio`, `lru tune`), compared bit for bit so
/// requests stay `Eq`.
#[derive(Debug, Clone, Copy)]
pub struct Decimal(pub f64);

impl PartialEq for Decimal {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for Decimal {}

/// Which item classes a crawler command names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Classes {
    /// `all` (and `hash`, which walks the hash table instead of the LRUs: the same items).
    All,
    /// A comma-separated list of class ids, each 1..=63.
    Ids(Vec<u32>),
}

impl Classes {
    /// Whether class `id` is selected.
    pub fn contains(&self, id: u32) -> bool {
        match self {
            Classes::All => true,
            Classes::Ids(ids) => ids.contains(&id),
        }
    }

    /// The selection as memcached reads it (`all` or `1,2,3`).
    pub fn word(&self) -> String {
        match self {
            Classes::All => "all".into(),
            Classes::Ids(ids) => ids.iter().map(u32::to_string).collect::<Vec<_>>().join(","),
        }
    }

    /// memcached's `lru_crawler_crawl` argument parsing; `None` is `BADCLASS`.
    fn parse(word: &[u8]) -> Option<Classes> {
        if word == b"all" || word == b"hash" {
            return Some(Classes::All);
        }
        word.split(|&b| b == b',')
            .filter(|id| !id.is_empty())
            .map(|id| parse_u32(id).filter(|id| (1..MAX_CLASSES).contains(id)))
            .collect::<Option<Vec<u32>>>()
            .filter(|ids| !ids.is_empty())
            .map(Classes::Ids)
    }
}

/// The admin requests a store answers (its figures, its memory limit, its keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreAdmin {
    /// `stats items`: per-class item counters.
    Items,
    /// `stats slabs`: per-class memory.
    Slabs,
    /// `stats sizes`: a histogram of item sizes in 32-byte buckets.
    Sizes,
    /// `stats cachedump <class> <limit>`: keys of one class (`limit` 0 = all).
    Cachedump {
        /// The class id (0..=63; 0 lists nothing).
        class: u32,
        /// Most keys listed; 0 = no limit.
        limit: u32,
    },
    /// `cache_memlimit <megabytes>`: the new memory limit (8..=1,000,000,000 MiB).
    MemLimit {
        /// MiB.
        megabytes: u32,
    },
    /// `lru_crawler metadump <classes>`: one line per live item.
    Metadump(Classes),
}

/// `stats detail` subcommands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DetailOp {
    /// Start counting per key prefix.
    On,
    /// Stop counting (what was counted stays).
    Off,
    /// List the counts.
    Dump,
}

/// `lru tune`'s four settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LruTune {
    /// Percentage of memory for the hot segment.
    pub hot_pct: u32,
    /// Percentage of memory for the warm segment.
    pub warm_pct: u32,
    /// Age factor of the hot segment.
    pub hot_factor: Decimal,
    /// Age factor of the warm segment.
    pub warm_factor: Decimal,
}

/// One parsed admin command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admin {
    /// Answered by the store (see [`StoreAdmin`]).
    Store(StoreAdmin),
    /// `stats detail on|off|dump`.
    StatsDetail(DetailOp),
    /// `stats conns`: the open connections.
    StatsConns,
    /// `lru_crawler crawl <classes>`.
    CrawlerCrawl(Classes),
    /// `lru_crawler tocrawl <n>`.
    CrawlerTocrawl(u32),
    /// `lru_crawler sleep <µs>` (at most 1,000,000).
    CrawlerSleep(u32),
    /// `lru_crawler enable`.
    CrawlerEnable,
    /// `lru_crawler disable`.
    CrawlerDisable,
    /// `shutdown` (`graceful: false`) or `shutdown graceful`.
    Shutdown {
        /// `shutdown graceful` (memcached's SIGUSR1) rather than `shutdown` (SIGINT).
        graceful: bool,
    },
    /// `shutdown <anything else>`.
    ShutdownInvalid,
    /// `slabs reassign <src> <dst>`.
    SlabsReassign,
    /// `slabs automove <0|1|2>`.
    SlabsAutomove(u32),
    /// `slabs automove ratio <ratio>`.
    SlabsAutomoveRatio(Decimal),
    /// `lru tune …`, already checked as memcached checks it.
    LruTune(LruTune),
    /// `lru mode flat` (`false`) or `lru mode segmented` (`true`).
    LruMode(bool),
    /// `lru temp_ttl <ttl>` (negative turns the temporary LRU off).
    LruTempTtl(i64),
    /// `watch [events]`.
    Watch,
}

/// `Request::Admin` with its `noreply`.
fn admin(command: Admin, noreply: bool, consumed: usize) -> ParseOutcome {
    ParseOutcome::Request {
        request: Request::Admin { command, noreply },
        consumed,
    }
}

/// A reply of memcached's for a malformed admin line, silenced by `noreply` where memcached
/// looked for it.
fn reply(reply: Response, noreply: bool, consumed: usize) -> ParseOutcome {
    ParseOutcome::Invalid {
        reply: if noreply { Response::None } else { reply },
        consumed,
        after: AfterError::Continue,
    }
}

fn status(text: &str) -> Response {
    Response::Line(text.to_owned())
}

fn client_error(reason: &str) -> Response {
    Response::ClientError(reason.to_owned())
}

/// memcached's `ntokens`: the words plus its terminal empty token.
fn ntokens(words: &Words<'_>) -> usize {
    words.count() + 1
}

/// Parses an admin line whose first word is `command`; `None` when `command` is not an admin
/// word (the caller answers it as an unknown command).
pub(crate) fn parse_admin(
    command: &[u8],
    words: &Words<'_>,
    line: Line<'_>,
) -> Option<ParseOutcome> {
    let consumed = line.consumed;
    Some(match command {
        b"stats" => parse_stats(words, consumed),
        b"cache_memlimit" => parse_memlimit(words, consumed),
        b"lru_crawler" => parse_crawler(words, consumed),
        b"shutdown" => parse_shutdown(words, consumed),
        b"slabs" => parse_slabs(words, consumed),
        b"lru" => parse_lru(words, consumed),
        b"watch" => admin(Admin::Watch, words.noreply(), consumed),
        // memcord has no TLS: as a memcached with TLS off (which answers even `noreply`).
        // `extstore`, `misbehave` and `debugtime` fall through to `ERROR`, as in a memcached
        // built without external storage or debugging.
        b"refresh_certs" => reply(status("Error TLS not enabled"), false, consumed),
        _ => return None,
    })
}

/// `stats [group [args]]`.
fn parse_stats(words: &Words<'_>, consumed: usize) -> ParseOutcome {
    let w = words.as_slice();
    let group = match w.get(1) {
        None => return stats_group(None, consumed),
        Some(group) => *group,
    };
    match group {
        b"items" => admin(Admin::Store(StoreAdmin::Items), false, consumed),
        b"slabs" => admin(Admin::Store(StoreAdmin::Slabs), false, consumed),
        b"sizes" => admin(Admin::Store(StoreAdmin::Sizes), false, consumed),
        b"conns" => admin(Admin::StatsConns, false, consumed),
        b"detail" => {
            let op = match w.get(2).copied() {
                Some(b"on") => DetailOp::On,
                Some(b"off") => DetailOp::Off,
                Some(b"dump") => DetailOp::Dump,
                _ => {
                    return reply(
                        client_error("usage: stats detail on|off|dump"),
                        false,
                        consumed,
                    )
                }
            };
            admin(Admin::StatsDetail(op), false, consumed)
        }
        b"cachedump" => {
            if ntokens(words) < 5 {
                return reply(client_error("bad command line"), false, consumed);
            }
            let (Some(class), Some(limit)) = (parse_u32(w[2]), parse_u32(w[3])) else {
                return reply(client_error(BAD_FORMAT), false, consumed);
            };
            if class >= MAX_CLASSES {
                return reply(client_error("Illegal slab id"), false, consumed);
            }
            admin(
                Admin::Store(StoreAdmin::Cachedump { class, limit }),
                false,
                consumed,
            )
        }
        other => stats_group(Some(String::from_utf8_lossy(other).into_owned()), consumed),
    }
}

fn stats_group(group: Option<String>, consumed: usize) -> ParseOutcome {
    ParseOutcome::Request {
        request: Request::Stats { group },
        consumed,
    }
}

/// `cache_memlimit <megabytes> [noreply]` (2 or 3 words, else `ERROR`).
fn parse_memlimit(words: &Words<'_>, consumed: usize) -> ParseOutcome {
    if !(3..=4).contains(&ntokens(words)) {
        return reply(Response::Error, false, consumed);
    }
    let noreply = words.noreply();
    let Some(megabytes) = parse_u32(words.as_slice()[1]) else {
        return reply(Response::Error, noreply, consumed);
    };
    if megabytes < 8 {
        return reply(
            status("MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m"),
            noreply,
            consumed,
        );
    }
    if megabytes > 1_000_000_000 {
        return reply(
            status("MEMLIMIT_ADJUST_FAILED input value is megabytes not bytes"),
            noreply,
            consumed,
        );
    }
    admin(
        Admin::Store(StoreAdmin::MemLimit { megabytes }),
        noreply,
        consumed,
    )
}

/// `lru_crawler …`: no `noreply` (memcached never looks for it here).
fn parse_crawler(words: &Words<'_>, consumed: usize) -> ParseOutcome {
    let w = words.as_slice();
    let n = ntokens(words);
    let bad_class = || reply(status("BADCLASS invalid class id"), false, consumed);
    let number = |word: &[u8]| parse_u32(word);
    match (n, w.get(1).copied()) {
        (4, Some(b"crawl")) => match Classes::parse(w[2]) {
            Some(classes) => admin(Admin::CrawlerCrawl(classes), false, consumed),
            None => bad_class(),
        },
        (4, Some(b"metadump")) => match Classes::parse(w[2]) {
            Some(classes) => admin(Admin::Store(StoreAdmin::Metadump(classes)), false, consumed),
            None => bad_class(),
        },
        (4, Some(b"tocrawl")) => match number(w[2]) {
            Some(n) => admin(Admin::CrawlerTocrawl(n), false, consumed),
            None => reply(client_error(BAD_FORMAT), false, consumed),
        },
        (4, Some(b"sleep")) => match number(w[2]) {
            Some(n) if n > 1_000_000 => reply(
                client_error("sleep must be one second or less"),
                false,
                consumed,
            ),
            Some(n) => admin(Admin::CrawlerSleep(n), false, consumed),
            None => reply(client_error(BAD_FORMAT), false, consumed),
        },
        (3, Some(b"enable")) => admin(Admin::CrawlerEnable, false, consumed),
        (3, Some(b"disable")) => admin(Admin::CrawlerDisable, false, consumed),
        _ => reply(Response::Error, false, consumed),
    }
}

/// `shutdown [graceful]`; whether it is enabled is checked first, by the server.
fn parse_shutdown(words: &Words<'_>, consumed: usize) -> ParseOutcome {
    let command = match (ntokens(words), words.as_slice().get(1).copied()) {
        (2, _) => Admin::Shutdown { graceful: false },
        (3, Some(b"graceful")) => Admin::Shutdown { graceful: true },
        _ => Admin::ShutdownInvalid,
    };
    admin(command, false, consumed)
}

/// `slabs reassign <src> <dst>`, `slabs automove <level>|ratio <r> [noreply]`.
fn parse_slabs(words: &Words<'_>, consumed: usize) -> ParseOutcome {
    let w = words.as_slice();
    let n = ntokens(words);
    match w.get(1).copied() {
        Some(b"reassign") if n == 5 => admin(Admin::SlabsReassign, false, consumed),
        Some(b"automove") if n >= 4 => {
            let noreply = words.noreply();
            if w[2] == b"ratio" {
                match w.get(3).filter(|_| n >= 5).and_then(|r| parse_decimal(r)) {
                    Some(ratio) => admin(Admin::SlabsAutomoveRatio(ratio), noreply, consumed),
                    None => reply(Response::Error, noreply, consumed),
                }
            } else {
                match parse_u32(w[2]) {
                    None => reply(client_error(BAD_FORMAT), noreply, consumed),
                    Some(level) if level > 2 => reply(Response::Error, noreply, consumed),
                    Some(level) => admin(Admin::SlabsAutomove(level), noreply, consumed),
                }
            }
        }
        _ => reply(Response::Error, false, consumed),
    }
}

/// `lru tune|mode|temp_ttl … [noreply]`.
fn parse_lru(words: &Words<'_>, consumed: usize) -> ParseOutcome {
    let w = words.as_slice();
    let n = ntokens(words);
    if n < 3 {
        return reply(Response::Error, false, consumed);
    }
    let noreply = words.noreply();
    let error = |text: &str| reply(status(text), noreply, consumed);
    match w[1] {
        b"tune" if n >= 7 => {
            let parsed = (
                parse_u32(w[2]),
                parse_u32(w[3]),
                parse_decimal(w[4]),
                parse_decimal(w[5]),
            );
            let (Some(hot_pct), Some(warm_pct), Some(hot_factor), Some(warm_factor)) = parsed
            else {
                return reply(Response::Error, noreply, consumed);
            };
            if u64::from(hot_pct) + u64::from(warm_pct) > 80 {
                return error("ERROR hot and warm pcts must not exceed 80");
            }
            if warm_factor.0 <= 0.0 || hot_factor.0 <= 0.0 {
                return error("ERROR hot/warm age factors must be greater than 0");
            }
            let tune = LruTune {
                hot_pct,
                warm_pct,
                hot_factor,
                warm_factor,
            };
            admin(Admin::LruTune(tune), noreply, consumed)
        }
        b"mode" if n >= 4 => match w[2] {
            b"flat" => admin(Admin::LruMode(false), noreply, consumed),
            b"segmented" => admin(Admin::LruMode(true), noreply, consumed),
            _ => reply(Response::Error, noreply, consumed),
        },
        b"temp_ttl" if n >= 4 => match parse_i64(w[2]).filter(|t| i32::try_from(*t).is_ok()) {
            Some(ttl) => admin(Admin::LruTempTtl(ttl), noreply, consumed),
            None => reply(Response::Error, noreply, consumed),
        },
        _ => reply(Response::Error, noreply, consumed),
    }
}

/// Appends `command`'s wire form (without `noreply` and the line end) to `out`.
pub(crate) fn compose(command: &Admin, out: &mut bytes::BytesMut) {
    let text = match command {
        Admin::Store(StoreAdmin::Items) => "stats items".to_owned(),
        Admin::Store(StoreAdmin::Slabs) => "stats slabs".to_owned(),
        Admin::Store(StoreAdmin::Sizes) => "stats sizes".to_owned(),
        Admin::Store(StoreAdmin::Cachedump { class, limit }) => {
            format!("stats cachedump {class} {limit}")
        }
        Admin::Store(StoreAdmin::MemLimit { megabytes }) => format!("cache_memlimit {megabytes}"),
        Admin::Store(StoreAdmin::Metadump(classes)) => {
            format!("lru_crawler metadump {}", classes.word())
        }
        Admin::StatsDetail(op) => format!(
            "stats detail {}",
            match op {
                DetailOp::On => "on",
                DetailOp::Off => "off",
                DetailOp::Dump => "dump",
            }
        ),
        Admin::StatsConns => "stats conns".to_owned(),
        Admin::CrawlerCrawl(classes) => format!("lru_crawler crawl {}", classes.word()),
        Admin::CrawlerTocrawl(n) => format!("lru_crawler tocrawl {n}"),
        Admin::CrawlerSleep(n) => format!("lru_crawler sleep {n}"),
        Admin::CrawlerEnable => "lru_crawler enable".to_owned(),
        Admin::CrawlerDisable => "lru_crawler disable".to_owned(),
        Admin::Shutdown { graceful: false } => "shutdown".to_owned(),
        Admin::Shutdown { graceful: true } => "shutdown graceful".to_owned(),
        Admin::ShutdownInvalid => "shutdown invalid".to_owned(),
        Admin::SlabsReassign => "slabs reassign 0 0".to_owned(),
        Admin::SlabsAutomove(level) => format!("slabs automove {level}"),
        Admin::SlabsAutomoveRatio(ratio) => format!("slabs automove ratio {}", ratio.0),
        Admin::LruTune(t) => format!(
            "lru tune {} {} {} {}",
            t.hot_pct, t.warm_pct, t.hot_factor.0, t.warm_factor.0
        ),
        Admin::LruMode(segmented) => {
            format!("lru mode {}", if *segmented { "segmented" } else { "flat" })
        }
        Admin::LruTempTtl(ttl) => format!("lru temp_ttl {ttl}"),
        Admin::Watch => "watch".to_owned(),
    };
    out.extend_from_slice(text.as_bytes());
}

/// Whether a reply line from a server is one of the admin commands' status lines
/// (`MEMLIMIT_TOO_SMALL …`, `BADCLASS …`, `BUSY …`, `ERROR <reason>` …), which a client
/// reads as [`Response::Line`].
pub(crate) fn is_status_line(text: &[u8]) -> bool {
    const WORDS: [&[u8]; 9] = [
        b"MEMLIMIT_",
        b"BADCLASS ",
        b"BUSY ",
        b"NOTSTARTED ",
        b"NOSPARE ",
        b"SAME ",
        b"ERROR ",
        b"ERROR:",
        b"Error ",
    ];
    WORDS.iter().any(|word| text.starts_with(word))
}

/// memcached's `uriencode`, as `lru_crawler metadump` writes keys: letters, digits and
/// `-._~` as they are, every other byte as `%XX`.
pub fn uri_encode(key: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &byte in key {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte);
        } else {
            out.extend_from_slice(&[
                b'%',
                HEX[usize::from(byte >> 4)],
                HEX[usize::from(byte & 15)],
            ]);
        }
    }
}

/// One line of `lru_crawler metadump`, as memcached writes it (`\n`-terminated):
/// `key=<uri-encoded> exp=<unix s, -1 = never> la=<unix s> cas=<id> fetch=<yes|no>
/// cls=<class> size=<bytes>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadumpLine<'a> {
    /// The key (encoded on output).
    pub key: &'a [u8],
    /// When the item expires, unix seconds; `None` = never.
    pub exp: Option<u64>,
    /// Last access, unix seconds.
    pub last_access: u64,
    /// The cas id.
    pub cas: u64,
    /// Whether the item was read since it was written.
    pub fetched: bool,
    /// Its class.
    pub class: u32,
    /// Its size in bytes.
    pub size: u64,
}

impl MetadumpLine<'_> {
    /// Appends the line.
    pub fn write(&self, out: &mut Vec<u8>) {
        use std::io::Write;
        out.extend_from_slice(b"key=");
        uri_encode(self.key, out);
        let exp = self
            .exp
            .map_or(-1, |at| i64::try_from(at).unwrap_or(i64::MAX));
        let fetched = if self.fetched { "yes" } else { "no" };
        let _ = writeln!(
            out,
            " exp={exp} la={} cas={} fetch={fetched} cls={} size={}",
            self.last_access, self.cas, self.class, self.size
        );
    }
}

/// Whether a reply line starts one of the admin commands' listings (`stats cachedump`'s
/// `ITEM …`, `stats detail dump`'s `PREFIX …`, `lru_crawler metadump`'s `key=…`), which run
/// to an `END` line.
pub(crate) fn starts_block(text: &[u8]) -> bool {
    [&b"ITEM "[..], b"PREFIX ", b"key="]
        .iter()
        .any(|word| text.starts_with(word))
}

/// memcached's `safe_strtod`: a finite decimal number, nothing after it.
fn parse_decimal(word: &[u8]) -> Option<Decimal> {
    let text = std::str::from_utf8(word).ok()?;
    let value: f64 = text.parse().ok()?;
    value.is_finite().then_some(Decimal(value))
}

/// Whether an unknown command line is one memcached closes the connection on: an HTTP
/// request line (its last word starts with `HTTP/`: `GET / HTTP/1.1`). memcached looks only
/// in its last branch, so words that start like one of its commands (`g…`, `s…`, `a…`, `c…`,
/// `i…`, `d…`, `t…`, two-letter `m…`) and one-letter words get `ERROR` whatever follows.
pub(crate) fn closes_as_http(command: &[u8], line: &[u8]) -> bool {
    let branch_of_its_own = match command {
        [b'm', _] => true,
        [first, ..] => b"gsacidt".contains(first),
        [] => true,
    };
    if command.len() < 2 || branch_of_its_own {
        return false;
    }
    let last = line.rsplit(|&b| b == b' ').find(|w| !w.is_empty());
    last.is_some_and(|word| word.starts_with(b"HTTP/"))
}

/// The reply to an HTTP request line: none, and the connection closes.
pub(crate) fn close_http(consumed: usize) -> ParseOutcome {
    ParseOutcome::Invalid {
        reply: Response::None,
        consumed,
        after: AfterError::Close,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_lists_follow_memcached() {
        assert_eq!(Classes::parse(b"all"), Some(Classes::All));
        assert_eq!(Classes::parse(b"hash"), Some(Classes::All));
        assert_eq!(Classes::parse(b"1,7"), Some(Classes::Ids(vec![1, 7])));
        assert_eq!(Classes::parse(b"63"), Some(Classes::Ids(vec![63])));
        for bad in [&b"0"[..], b"64", b"1,x", b"x", b",", b"-1"] {
            assert_eq!(Classes::parse(bad), None, "{}", bad.escape_ascii());
        }
        assert_eq!(Classes::Ids(vec![1, 7]).word(), "1,7");
    }

    #[test]
    fn keys_are_uri_encoded_as_memcached_does() {
        let mut out = Vec::new();
        uri_encode(b"k%20x a/b:c-._~\xff", &mut out);
        assert_eq!(out, b"k%2520x%20a%2Fb%3Ac-._~%FF");
    }

    #[test]
    fn http_lines_are_recognised_by_their_last_word() {
        let closes = |line: &[u8]| closes_as_http(line.split(|&b| b == b' ').next().unwrap(), line);
        assert!(closes(b"GET / HTTP/1.0"));
        assert!(closes(b"DELETE HTTP/1.1"));
        assert!(closes(b"HTTP/1.0"));
        assert!(closes(b"foo HTTP/  "));
        assert!(!closes(b"foo HTTPx"));
        assert!(!closes(b"foo"));
        assert!(!closes(b"set a b HTTP/1.0"));
        assert!(!closes(b"H HTTP/1.0"));
        assert!(!closes(b"mx HTTP/1.0"));
    }
}
