//! Configuration: `config.ini`, `MEMCORD_*` environment variables and command-line flags, merged
//! into one typed [`PeerConfig`] for the peer being started.
//!
//! Precedence, highest first: flags (and their flat `MEMCORD_<FLAG>` variables, which clap reads
//! as the flag itself) > structured variables `MEMCORD_<SECTION>__<KEY>` (for example
//! `MEMCORD_CLUSTER__HEARTBEAT_MS`, `MEMCORD_PEER__1__CLIENT_ADDR`) > the file > defaults.
//!
//! ```text
//! [cluster]                 consistency, heartbeat_ms, failure_timeout_ms, sync_interval_ms,
//!                           secret, peers (a count "3" or ids "0,1,2"; optional),
//!                           replication_factor, vnodes, read_consistency, write_consistency,
//!                           max_hints, max_hint_bytes (eventual mode's ring and levels)
//! [server]                  max_connections, idle_timeout (s, 0 = none), max_item_size (bytes,
//!                           or with memcached's k/m suffix), threads (0 = one per usable CPU),
//!                           memory_limit_mb, udp_port (0 = no UDP), enable_shutdown,
//!                           log_level, log_file
//! [kv]                      type (memory | memcached), timeout_ms, connections
//! [peer.N]                  client_addr, peer_addr, kv_addr (host:port each)
//! ```
//!
//! A file is read only when one is named (`--config` / `MEMCORD_CONFIG`), so a bare
//! `memcord peer --port 11311` is always a cluster of one whatever the working directory holds.
//!
//! The parts, in the order a load runs them:
//!
//! ```text
//! parse     the layers as raw values: Overrides (flags), the structured variables, the file
//!   syntax    the file line by line: every line ini, each key's line and section kept
//!   keys      every section and key exists (else: where, and "did you mean …?")
//! validate  raw → typed, section by section, defaults from types; the peer table, this peer
//! types     the typed PeerConfig and the one Default of every setting
//! ```
//!
//! What each module of the peer makes of these settings is `crate::peer::settings`; the
//! configuration's lines of `stats settings` are `server::report`'s.

mod error;
mod keys;
mod parse;
mod syntax;
mod types;
mod validate;

pub use error::ConfigError;
pub use keys::{accepted_keys, SECTIONS};
pub use parse::{parse_item_size, Overrides};
pub use types::{
    ClusterSettings, Consistency, HostPort, KvSettings, KvType, PeerAddrs, PeerConfig,
    ServerSettings,
};

/// Loads the configuration of one peer from `overrides.config` (if any), the structured
/// `MEMCORD_<SECTION>__<KEY>` variables among `env`, and the overrides.
pub fn load(
    overrides: &Overrides,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<PeerConfig, ConfigError> {
    validate::resolve(parse::read_layers(overrides, env)?, overrides)
}
