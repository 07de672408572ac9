//! A line-by-line look at the ini file before the `config` crate reads it: every line must be
//! blank, a comment, a `[section]` or a `key = value`, and each key's line and section are
//! kept so that a misspelt key can be reported where it is.
//!
//! The `config` crate (through `rust-ini`) still reads the values: this pass only refuses what
//! that parser would misread. It reads a line without `=` as the start of a key that runs on
//! to the next `=`, and a `[section` without its `]` as a name that runs on to the next `]`,
//! so a slip on one line would come back as a garbled name lines later.

use super::ConfigError;
use std::path::Path;

/// A section header or a key, where the file has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Entry {
    /// The line, counted from 1.
    pub line: usize,
    /// The section it is in (`None`: above the first header).
    pub section: Option<String>,
    /// The key; `None` for the section header itself.
    pub key: Option<String>,
}

/// What a value line leaves open for the lines after it.
#[derive(Clone, Copy)]
enum Open {
    /// Nothing: the next line stands alone.
    Nothing,
    /// The value ended in `\`: the next line continues it.
    Continuation,
    /// A quoted value is still open; it ends at the next line holding this quote.
    Quote(char),
}

/// Checks `text` (the contents of `file`) line by line and lists its sections and keys.
pub(super) fn scan(file: &Path, text: &str) -> Result<Vec<Entry>, ConfigError> {
    let mut entries = Vec::new();
    let mut section: Option<String> = None;
    let mut open = Open::Nothing;
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let problem = |problem: String| ConfigError::Syntax {
            file: file.to_path_buf(),
            line,
            problem,
        };
        match open {
            Open::Continuation => {
                open = continues(raw);
                continue;
            }
            Open::Quote(quote) => {
                if raw.contains(quote) {
                    open = Open::Nothing;
                }
                continue;
            }
            Open::Nothing => {}
        }
        let text = raw.trim();
        if text.is_empty() {
            continue;
        }
        if text.starts_with([';', '#']) {
            if raw.starts_with(char::is_whitespace) {
                return Err(problem(format!(
                    "`{text}`: a comment must start at the beginning of its line"
                )));
            }
            continue;
        }
        if let Some(header) = text.strip_prefix('[') {
            let name = section_name(header).map_err(problem)?;
            entries.push(Entry {
                line,
                section: Some(name.clone()),
                key: None,
            });
            section = Some(name);
            continue;
        }
        let Some(at) = text.find(['=', ':']) else {
            return Err(problem(format!(
                "`{text}` is neither `key = value` nor a `[section]` header"
            )));
        };
        let key = text[..at].trim();
        if key.is_empty() {
            return Err(problem(format!(
                "`{text}` has no key before its `{}`",
                &text[at..=at]
            )));
        }
        open = value_opens(text[at + 1..].trim_start());
        entries.push(Entry {
            line,
            section: section.clone(),
            key: Some(key.to_string()),
        });
    }
    Ok(entries)
}

/// The name in a `[name]` header (given without its `[`).
fn section_name(header: &str) -> Result<String, String> {
    let Some(end) = header.find(']') else {
        return Err(format!("`[{header}` has no closing `]`"));
    };
    let rest = header[end + 1..].trim();
    if !rest.is_empty() {
        return Err(format!(
            "`{rest}` after the section header `[{}]`: a comment or key goes on a line of its own",
            &header[..end]
        ));
    }
    Ok(header[..end].trim().to_string())
}

/// What a value (the text after `=`) leaves open: a quote it does not close, or a `\` at its
/// end.
fn value_opens(value: &str) -> Open {
    if let Some(quote) = value.chars().next().filter(|c| matches!(c, '"' | '\'')) {
        if !value[1..].contains(quote) {
            return Open::Quote(quote);
        }
    }
    continues(value)
}

/// Whether a value line ends in `\` and so goes on on the next line.
fn continues(line: &str) -> Open {
    if line.ends_with('\\') {
        Open::Continuation
    } else {
        Open::Nothing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<Vec<Entry>, String> {
        scan(Path::new("f.ini"), text).map_err(|e| e.to_string())
    }

    fn key(line: usize, section: &str, key: &str) -> Entry {
        Entry {
            line,
            section: Some(section.to_string()),
            key: Some(key.to_string()),
        }
    }

    #[test]
    fn sections_and_keys_keep_their_lines() {
        let entries = check(
            "; top\n\n[cluster]\nheartbeat_ms = 200\n  push: true\n[peer.1]\nclient_addr = a:1\n",
        )
        .unwrap();
        assert_eq!(
            entries,
            vec![
                Entry {
                    line: 3,
                    section: Some("cluster".into()),
                    key: None
                },
                key(4, "cluster", "heartbeat_ms"),
                key(5, "cluster", "push"),
                Entry {
                    line: 6,
                    section: Some("peer.1".into()),
                    key: None
                },
                key(7, "peer.1", "client_addr"),
            ]
        );
    }

    #[test]
    fn continued_and_quoted_values_span_lines() {
        let entries = check("[c]\na = one \\\ntwo\nb = \"x\ny\" \nc = 'z'\n").unwrap();
        let keys: Vec<_> = entries.iter().filter_map(|e| e.key.clone()).collect();
        assert_eq!(keys, ["a", "b", "c"]);
    }

    #[test]
    fn a_line_that_is_not_ini_is_named_by_its_number() {
        assert_eq!(
            check("[cluster]\nheartbeat_ms 200\npush = true\n").unwrap_err(),
            "f.ini, line 2: `heartbeat_ms 200` is neither `key = value` nor a `[section]` header"
        );
        assert_eq!(
            check("[cluster\nheartbeat_ms = 1\n[peer.0]\n").unwrap_err(),
            "f.ini, line 1: `[cluster` has no closing `]`"
        );
        assert_eq!(
            check("[kv] ; store\n").unwrap_err(),
            "f.ini, line 1: `; store` after the section header `[kv]`: a comment or key goes \
             on a line of its own"
        );
        assert_eq!(
            check("[kv]\n= memory\n").unwrap_err(),
            "f.ini, line 2: `= memory` has no key before its `=`"
        );
        assert_eq!(
            check("[kv]\n  ; indented\ntype = memory\n").unwrap_err(),
            "f.ini, line 2: `; indented`: a comment must start at the beginning of its line"
        );
    }
}
