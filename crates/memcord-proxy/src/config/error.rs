//! Why a configuration could not be loaded, in words an operator can act on: every message
//! names where the mistake is (the file and line, or the variable) and, for a misspelt name,
//! the nearest one that exists.

use std::path::PathBuf;

/// Why a configuration could not be loaded.
///
/// A message carries its cause in its own text and never also as [`std::error::Error::source`],
/// so a printer that walks the chain (anyhow's `{:#}`) says it once.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The named config file does not exist.
    #[error("config file {0} not found")]
    MissingFile(PathBuf),
    /// A line of the file is not ini (`[section]`, `key = value`, a comment or blank).
    #[error("{}, line {line}: {problem}", file.display())]
    Syntax {
        /// The file.
        file: PathBuf,
        /// The line, counted from 1.
        line: usize,
        /// What is wrong with it.
        problem: String,
    },
    /// A section the configuration does not have.
    #[error("{place}: there is no section [{section}]{hint}")]
    UnknownSection {
        /// Where: `FILE, line N` or the variable's name.
        place: String,
        /// The section as written.
        section: String,
        /// `; did you mean …?` or the sections there are.
        hint: String,
    },
    /// A key its section does not have.
    #[error("{place}: [{section}] has no key `{key}`{hint}")]
    UnknownKey {
        /// Where: `FILE, line N` or the variable's name.
        place: String,
        /// The section.
        section: String,
        /// The key as written.
        key: String,
        /// `; did you mean …?` or the keys the section takes.
        hint: String,
    },
    /// The file could not be read, or a value has the wrong type.
    #[error("reading configuration: {0}")]
    Read(String),
    /// `consistency` is not one of the three mode names.
    #[error("unknown consistency mode '{0}' (expected linearizable, sequential or eventual)")]
    UnknownConsistency(String),
    /// `kv.type` / `--kv-type` is not a known store.
    #[error("unknown kv type '{0}' (expected memory or memcached)")]
    UnknownKvType(String),
    /// An address is not `host:port` with a valid port.
    #[error("{key}: invalid address '{value}' ({reason})")]
    BadAddress {
        /// Which setting.
        key: String,
        /// What it said.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// `--id` names a peer the configuration does not define.
    #[error("unknown peer id {id} (the configuration defines peers {known})")]
    UnknownPeer {
        /// The requested id.
        id: u16,
        /// The ids that exist, comma-separated.
        known: String,
    },
    /// Any other inconsistency, described.
    #[error("{0}")]
    Invalid(String),
}
