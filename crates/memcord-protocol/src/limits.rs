//! Size limits applied before anything is allocated.

/// Bounds on what a peer accepts from one client, as memcached enforces them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest key in bytes (memcached: 250).
    pub max_key_len: usize,
    /// Largest value in bytes (memcached's item size max, default 1 MiB).
    pub max_value_len: usize,
    /// Longest command line (without data block) other than a multi-key get (memcached: 2048).
    pub max_line_len: usize,
    /// Longest `get`/`gets`/`gat`/`gats` line (many keys).
    pub max_get_line_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_key_len: 250,
            max_value_len: 1024 * 1024,
            max_line_len: 2048,
            max_get_line_len: 256 * 1024,
        }
    }
}
