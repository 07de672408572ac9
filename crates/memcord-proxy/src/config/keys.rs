//! Which sections and keys exist, and what a name that does not exist was probably meant to
//! be. The keys are read from the raw layer's structs themselves (serde hands a struct's
//! field names to the deserializer), so this list cannot drift from what is accepted.

use super::parse::{RawCluster, RawKv, RawPeer, RawServer};
use super::syntax::Entry;
use super::ConfigError;
use serde::de::{self, Deserialize, Visitor};
use std::path::Path;

/// The sections of the file, as they are written (`peer.N` stands for every `[peer.N]`).
pub const SECTIONS: [&str; 4] = ["cluster", "server", "kv", "peer.N"];

/// The keys `section` accepts (`cluster`, `server`, `kv`, or `peer.N` / any `peer.<id>`), in
/// the order the structs declare them; empty for a section that does not exist.
pub fn accepted_keys(section: &str) -> &'static [&'static str] {
    match section {
        "cluster" => field_names::<RawCluster>(),
        "server" => field_names::<RawServer>(),
        "kv" => field_names::<RawKv>(),
        peer if peer
            .strip_prefix("peer.")
            .is_some_and(|id| !id.is_empty() && !id.contains('.')) =>
        {
            field_names::<RawPeer>()
        }
        _ => &[],
    }
}

/// Refuses a section or key of the file that does not exist, naming its line.
pub(super) fn check_file(file: &Path, entries: &[Entry]) -> Result<(), ConfigError> {
    for entry in entries {
        let place = format!("{}, line {}", file.display(), entry.line);
        let Some(section) = &entry.section else {
            let key = entry.key.as_deref().unwrap_or_default();
            return Err(ConfigError::Invalid(format!(
                "{place}: `{key}` is above every section; keys go under [cluster], [server], \
                 [kv] or [peer.N]"
            )));
        };
        check_section(&place, section, &section_suggestion)?;
        if let Some(key) = &entry.key {
            check_key(&place, section, key, &|known| format!("`{known}`"))?;
        }
    }
    Ok(())
}

/// Refuses a structured variable (`MEMCORD_<SECTION>__<KEY>`, `MEMCORD_PEER__<N>__<KEY>`)
/// naming a section or key that does not exist; a suggestion is the variable to set instead.
pub(super) fn check_env(names: &[&str]) -> Result<(), ConfigError> {
    for name in names {
        let Some((section, key)) = env_path(name) else {
            return Err(ConfigError::Invalid(format!(
                "{name}: a settings variable is MEMCORD_<SECTION>__<KEY> or \
                 MEMCORD_PEER__<N>__<KEY>"
            )));
        };
        let variable = |section: &str, key: &str| {
            format!("`MEMCORD_{}__{key}`", section.replace('.', "__")).to_uppercase()
        };
        check_section(name, &section, &|s: &str| {
            let meant = section_suggestion(s)?;
            Some(variable(meant.trim_matches(['[', ']']), &key))
        })?;
        check_key(name, &section, &key, &|known| variable(&section, known))?;
    }
    Ok(())
}

/// The section and key a structured variable names (lower case, `peer.N` for a peer).
fn env_path(name: &str) -> Option<(String, String)> {
    let rest = name.strip_prefix("MEMCORD_")?.to_ascii_lowercase();
    let parts: Vec<&str> = rest.split("__").collect();
    match parts[..] {
        ["peer", id, key] if !id.is_empty() && !key.is_empty() => {
            Some((format!("peer.{id}"), key.to_string()))
        }
        [section, key] if !section.is_empty() && !key.is_empty() => {
            Some((section.to_string(), key.to_string()))
        }
        _ => None,
    }
}

/// Refuses a section that does not exist.
fn check_section(
    place: &str,
    section: &str,
    suggest: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    if !accepted_keys(section).is_empty() {
        return Ok(());
    }
    let hint = match (section, suggest(section)) {
        ("peer", _) => "; a peer's section names its id, like [peer.0]".to_string(),
        (_, Some(known)) => format!("; did you mean {known}?"),
        _ => "; the sections are [cluster], [server], [kv] and [peer.N]".to_string(),
    };
    Err(ConfigError::UnknownSection {
        place: place.to_string(),
        section: section.to_string(),
        hint,
    })
}

/// The section `section` was probably meant to be, as a header (`[cluster]`).
fn section_suggestion(section: &str) -> Option<String> {
    if let Some(id) = section.strip_prefix("peer") {
        // `[peer0]`, `[peer 0]`, `[peer_0]`
        let id = id.trim_start_matches([' ', '_', '-']);
        if !id.is_empty() && id.chars().all(|c| c.is_ascii_digit()) {
            return Some(format!("[peer.{id}]"));
        }
    }
    closest(section, &SECTIONS[..3]).map(|known| format!("[{known}]"))
}

/// Refuses a key `section` does not take, with the likeliest key meant (`name` spells a
/// suggestion as the file or the environment would).
fn check_key(
    place: &str,
    section: &str,
    key: &str,
    name: &dyn Fn(&str) -> String,
) -> Result<(), ConfigError> {
    let known = accepted_keys(section);
    if known.contains(&key) {
        return Ok(());
    }
    let elsewhere = SECTIONS
        .iter()
        .find(|other| accepted_keys(other).contains(&key));
    let hint = match (closest(key, known), elsewhere) {
        (Some(meant), _) => format!("; did you mean {}?", name(meant)),
        (None, Some(other)) => format!("; `{key}` is a key of [{other}]"),
        (None, None) => format!(
            "; it takes {}",
            known
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    Err(ConfigError::UnknownKey {
        place: place.to_string(),
        section: section.to_string(),
        key: key.to_string(),
        hint,
    })
}

/// The candidate `word` was most likely meant to be: within a third of its length in edits
/// (a swap of two letters counts as one), or the word with a unit or suffix left off
/// (`heartbeat` for `heartbeat_ms`).
fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let word = word.to_ascii_lowercase();
    let limit = word.len().max(3) / 3;
    candidates
        .iter()
        .map(|c| (edit_distance(&word, c), *c))
        .filter(|(distance, c)| *distance <= limit || c.starts_with(&format!("{word}_")))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, c)| c)
}

/// Edits (insert, delete, substitute, swap two neighbours) from `a` to `b`: the optimal
/// string alignment distance.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    // rows[i][j]: distance between a[..i] and b[..j]; only the last two rows are needed.
    let mut before: Vec<usize> = Vec::new();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut row = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let substitute = usize::from(a[i - 1] != b[j - 1]);
            row[j] = (previous[j] + 1)
                .min(row[j - 1] + 1)
                .min(previous[j - 1] + substitute);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                row[j] = row[j].min(before[j - 2] + 1);
            }
        }
        before = std::mem::replace(&mut previous, row);
    }
    previous[b.len()]
}

/// The field names of a struct, as serde deserializes them (renames applied).
fn field_names<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    let mut names: &'static [&'static str] = &[];
    let _ = T::deserialize(FieldNames(&mut names));
    names
}

/// A deserializer that only records the field list serde passes to `deserialize_struct`.
struct FieldNames<'a>(&'a mut &'static [&'static str]);

/// The error [`FieldNames`] ends every deserialization with.
#[derive(Debug)]
struct Listed;

impl std::fmt::Display for Listed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("field names listed")
    }
}

impl std::error::Error for Listed {}

impl de::Error for Listed {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        Listed
    }
}

impl<'de> de::Deserializer<'de> for FieldNames<'_> {
    type Error = Listed;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Listed> {
        Err(Listed)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Listed> {
        *self.0 = fields;
        Err(Listed)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_come_from_the_structs() {
        assert_eq!(accepted_keys("kv"), ["type", "timeout_ms", "connections"]);
        assert_eq!(accepted_keys("peer.7"), accepted_keys("peer.N"));
        assert!(accepted_keys("peer.1.2").is_empty() && accepted_keys("peer.").is_empty());
        assert!(accepted_keys("cluster").contains(&"heartbeat_ms"));
        assert!(accepted_keys("clusters").is_empty());
    }

    #[test]
    fn swaps_slips_and_missing_units_find_the_key() {
        let cluster = accepted_keys("cluster");
        assert_eq!(closest("heartbaet_ms", cluster), Some("heartbeat_ms"));
        assert_eq!(closest("heartbeat", cluster), Some("heartbeat_ms"));
        assert_eq!(closest("HEARTBEAT_MS", cluster), Some("heartbeat_ms"));
        assert_eq!(
            closest("sync_intervall_ms", cluster),
            Some("sync_interval_ms")
        );
        assert_eq!(closest("timeout", accepted_keys("kv")), Some("timeout_ms"));
        assert_eq!(closest("colour", cluster), None);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("ab", "ba"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn variables_name_their_section_and_key() {
        assert_eq!(
            env_path("MEMCORD_CLUSTER__HEARTBEAT_MS"),
            Some(("cluster".into(), "heartbeat_ms".into()))
        );
        assert_eq!(
            env_path("MEMCORD_PEER__1__CLIENT_ADDR"),
            Some(("peer.1".into(), "client_addr".into()))
        );
        assert_eq!(env_path("MEMCORD_CLUSTER__"), None);
        assert_eq!(env_path("MEMCORD_A__B__C"), None);
    }
}
