//! The three layers as raw values: the flags ([`Overrides`]), the structured `MEMCORD_*`
//! variables and the ini file, merged by the `config` crate into a [`RawConfig`] in which
//! every value is optional. Names are checked here, before any value is read (see
//! [`super::keys`]); what the values mean is [`super::validate`]'s business.

use super::{keys, syntax, ConfigError};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Values given on the command line (or through their flat `MEMCORD_<FLAG>` variables); `None`
/// leaves the lower layers' value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// The config file to read.
    pub config: Option<PathBuf>,
    /// Which `[peer.N]` this process is.
    pub id: Option<u16>,
    /// Client listen host.
    pub host: Option<String>,
    /// Client listen port.
    pub port: Option<u16>,
    /// Store kind.
    pub kv_type: Option<String>,
    /// Backend memcached host.
    pub kv_host: Option<String>,
    /// Backend memcached port.
    pub kv_port: Option<u16>,
    /// Consistency mode name.
    pub consistency: Option<String>,
    /// Embedded store memory limit.
    pub memory_limit_mb: Option<u64>,
    /// Largest value.
    pub max_item_size: Option<usize>,
    /// Connection cap.
    pub max_connections: Option<usize>,
    /// Idle timeout in seconds.
    pub idle_timeout: Option<u64>,
    /// Worker threads.
    pub threads: Option<usize>,
    /// Log filter.
    pub log_level: Option<String>,
    /// Log file.
    pub log_file: Option<PathBuf>,
    /// UDP port.
    pub udp_port: Option<u16>,
    /// Enable the `shutdown` command.
    pub enable_shutdown: Option<bool>,
    /// `-v` count.
    pub verbosity: Option<u32>,
}

/// The file's and the variables' shape, every value optional so that defaults fill the gaps.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawConfig {
    pub cluster: RawCluster,
    pub server: RawServer,
    pub kv: RawKv,
    pub peer: BTreeMap<String, RawPeer>,
}

/// `[cluster]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawCluster {
    pub peers: Option<String>,
    pub consistency: Option<String>,
    pub heartbeat_ms: Option<u64>,
    pub failure_timeout_ms: Option<u64>,
    pub sync_interval_ms: Option<u64>,
    pub secret: Option<String>,
    pub tombstone_ttl_secs: Option<u64>,
    pub admin_commands: Option<bool>,
    pub push: Option<bool>,
    pub data_dir: Option<String>,
    pub fsync: Option<bool>,
    pub quorum_timeout_ms: Option<u64>,
    pub snapshot_logs: Option<u64>,
    pub log_memory_mb: Option<u64>,
    pub batch_linger_us: Option<u64>,
    pub lease_reads: Option<bool>,
    pub replication_factor: Option<u32>,
    pub vnodes: Option<u32>,
    pub read_consistency: Option<String>,
    pub write_consistency: Option<String>,
    pub max_hints: Option<usize>,
    pub max_hint_bytes: Option<u64>,
}

/// `[server]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawServer {
    pub max_connections: Option<usize>,
    pub idle_timeout: Option<u64>,
    pub threads: Option<usize>,
    pub max_item_size: Option<ItemSize>,
    pub memory_limit_mb: Option<u64>,
    pub log_level: Option<String>,
    pub log_file: Option<String>,
    pub udp_port: Option<u16>,
    pub enable_shutdown: Option<bool>,
}

/// `[kv]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawKv {
    #[serde(rename = "type")]
    pub kv_type: Option<String>,
    pub timeout_ms: Option<u64>,
    pub connections: Option<usize>,
}

/// `[peer.N]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawPeer {
    pub client_addr: Option<String>,
    pub peer_addr: Option<String>,
    pub kv_addr: Option<String>,
}

/// Reads the file named by `overrides.config` (if any) and the structured variables among
/// `env` into one raw configuration, variables over file.
pub(super) fn read_layers(
    overrides: &Overrides,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<RawConfig, ConfigError> {
    let mut builder = config::Config::builder();
    if let Some(path) = &overrides.config {
        check_file(path)?;
        builder = builder.add_source(
            config::File::from(path.as_path())
                .format(config::FileFormat::Ini)
                .required(true),
        );
    }
    // Only the double-underscore variables are structured settings; the flat ones
    // (MEMCORD_PORT, MEMCORD_LOG …) are flags, read by clap, and must not be taken for
    // unknown top-level keys here.
    let structured: config::Map<String, String> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with("MEMCORD_") && k.contains("__"))
        .collect();
    let mut names: Vec<&str> = structured.keys().map(String::as_str).collect();
    names.sort_unstable();
    keys::check_env(&names)?;
    builder = builder.add_source(
        config::Environment::with_prefix("MEMCORD")
            .prefix_separator("_")
            .separator("__")
            .source(Some(structured)),
    );
    let read = |err: config::ConfigError| read_error(overrides.config.as_deref(), err);
    builder
        .build()
        .map_err(read)?
        .try_deserialize()
        .map_err(read)
}

/// The file's lines and names, checked before the `config` crate reads its values.
fn check_file(path: &Path) -> Result<(), ConfigError> {
    if !path.is_file() {
        return Err(ConfigError::MissingFile(path.to_path_buf()));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|err| ConfigError::Read(format!("{}: {err}", path.display())))?;
    keys::check_file(path, &syntax::scan(path, &text)?)
}

/// The `config` crate's error in words: the ini parser's position as a line of the file.
fn read_error(file: Option<&Path>, err: config::ConfigError) -> ConfigError {
    if let (Some(file), config::ConfigError::FileParse { cause, .. }) = (file, &err) {
        if let Some(parse) = cause.downcast_ref::<::ini::ParseError>() {
            return ConfigError::Syntax {
                file: file.to_path_buf(),
                line: parse.line,
                problem: "this line cannot be read: a `\\` escape or a quote that is not closed"
                    .into(),
            };
        }
    }
    ConfigError::Read(err.to_string())
}

/// `[server] max_item_size`: a number of bytes, or a size with memcached's suffixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ItemSize(pub usize);

impl<'de> Deserialize<'de> for ItemSize {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // ini values arrive as text, environment values too.
        let text = String::deserialize(deserializer)?;
        parse_item_size(&text)
            .map(ItemSize)
            .map_err(serde::de::Error::custom)
    }
}

/// Item sizes accepted: 1 byte to memcached's `-I` maximum, 1 GiB (memcached's minimum,
/// 1 KiB, is not enforced: tests use smaller limits).
const ITEM_SIZE_RANGE: std::ops::RangeInclusive<usize> = 1..=1024 * 1024 * 1024;

/// Parses an item size as memcached's `-I` does: bytes, or a number with a `k`/`K` (KiB) or
/// `m`/`M` (MiB) suffix, at most 1 GiB.
pub fn parse_item_size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let (digits, unit) = match text.char_indices().last() {
        Some((at, 'k' | 'K')) => (&text[..at], 1024),
        Some((at, 'm' | 'M')) => (&text[..at], 1024 * 1024),
        _ => (text, 1),
    };
    let size = digits
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .ok_or_else(|| format!("'{text}' is not a size (bytes, or a number with k or m)"))?;
    if !ITEM_SIZE_RANGE.contains(&size) {
        return Err(format!(
            "item size {size} is out of range (at most 1024m, as memcached's -I)"
        ));
    }
    Ok(size)
}
