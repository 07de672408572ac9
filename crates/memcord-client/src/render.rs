//! How the console prints replies: the server's own words, one per line, without `\r`, with
//! values shown as text (escaped when they are not printable); and `stats cluster` as a table.

use bytes::BytesMut;
use memcord_protocol::Response;

/// The reply as the lines a person reads (no trailing newline; empty for `Response::None`).
pub fn reply_text(response: &Response) -> String {
    match response {
        Response::Values(values) => {
            let mut out = String::new();
            for value in values {
                out += &format!(
                    "VALUE {} {} {}",
                    value.key.escape_ascii(),
                    value.flags,
                    value.data.len()
                );
                if let Some(cas) = value.cas {
                    out += &format!(" {cas}");
                }
                out.push('\n');
                out += &printable(&value.data);
                out.push('\n');
            }
            out + "END"
        }
        Response::Stats(lines) => {
            let mut out = String::new();
            for (name, value) in lines {
                out += &format!("STAT {name} {value}\n");
            }
            out + "END"
        }
        Response::MetaLine(line) => {
            let mut head = line.clone();
            let value = head.value.take();
            let mut bytes = BytesMut::new();
            if let Some(value) = &value {
                // The header as composed, with the size the value gives it.
                head.tokens
                    .insert(0, bytes::Bytes::from(value.len().to_string()));
            }
            head.compose(&mut bytes);
            let mut out = String::from_utf8_lossy(&bytes).trim_end().to_string();
            if let Some(value) = value {
                out.push('\n');
                out += &printable(&value);
            }
            out
        }
        Response::None => String::new(),
        other => {
            let mut bytes = BytesMut::new();
            other.compose(&mut bytes);
            String::from_utf8_lossy(&bytes).trim_end().to_string()
        }
    }
}

/// Whether a reply is an error (`ERROR`, `CLIENT_ERROR …`, `SERVER_ERROR …`).
pub fn is_error(response: &Response) -> bool {
    matches!(
        response,
        Response::Error | Response::ClientError(_) | Response::ServerError(_)
    )
}

/// A value as text: as it is when it is printable UTF-8 (tabs allowed), else escaped.
fn printable(data: &[u8]) -> String {
    match std::str::from_utf8(data) {
        Ok(text) if !text.chars().any(|c| c.is_control() && c != '\t') => text.to_string(),
        _ => data.escape_ascii().to_string(),
    }
}

/// The columns of the `show` table: heading and the `peer.N.<field>` it shows. The last one
/// (the ordered queue's applied index) is shown only when some peer reports it.
const COLUMNS: [(&str, &str); 10] = [
    ("peer", ""),
    ("client addr", "client_addr"),
    ("peer addr", "addr"),
    ("status", "status"),
    ("serving", "serving"),
    ("role", "role"),
    ("items", "items"),
    ("last heartbeat", "last_heartbeat_ms"),
    ("sync lag", "sync_lag_ms"),
    ("applied index", "applied_index"),
];

/// `stats cluster` (and the peers' client addresses from `stats settings`) as a summary line
/// and a table with one row per peer.
///
/// ```text
/// peer 0 at 127.0.0.1:8000: mode eventual, state serving
/// peer  client addr     peer addr       status  serving  role  items  last heartbeat  sync lag
/// 0     127.0.0.1:8000  -               self    true     -     2      -               -
/// 1     127.0.0.1:8001  127.0.0.1:9001  up      true     -     2      12 ms ago       180 ms
/// ```
///
/// Only the `cluster_mode`, `cluster_peer_id`, `cluster_state` (and, where a mode has them,
/// `cluster_role`, `cluster_leader`, `cluster_term`) lines and the `peer.N.*` fields are read,
/// so any mode's `stats cluster` renders; a missing field shows as `-`.
pub fn cluster_table(
    addr: &str,
    cluster: &[(String, String)],
    settings: &[(String, String)],
) -> String {
    let get = |name: &str| {
        cluster
            .iter()
            .chain(settings)
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let mut out = format!(
        "peer {} at {addr}: mode {}, state {}",
        get("cluster_peer_id").unwrap_or("?"),
        get("cluster_mode").unwrap_or("?"),
        get("cluster_state").unwrap_or("?"),
    );
    for (name, label) in [
        ("cluster_role", "role"),
        ("cluster_leader", "leader"),
        ("cluster_term", "term"),
    ] {
        if let Some(value) = get(name) {
            out += &format!(", {label} {value}");
        }
    }
    out.push('\n');
    let mut ids: Vec<u64> = cluster
        .iter()
        .filter_map(|(name, _)| name.strip_prefix("peer.")?.split('.').next()?.parse().ok())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let field = |id: u64, field: &str| {
        get(&format!("peer.{id}.{field}")).or_else(|| get(&format!("memcord_peer.{id}.{field}")))
    };
    let with_applied = ids.iter().any(|id| field(*id, "applied_index").is_some());
    let columns = &COLUMNS[..if with_applied { 10 } else { 9 }];
    let mut rows: Vec<Vec<String>> = vec![columns.iter().map(|(h, _)| h.to_string()).collect()];
    for id in ids {
        let row = columns
            .iter()
            .map(|(_, name)| {
                if name.is_empty() {
                    return id.to_string();
                }
                match (field(id, name), *name) {
                    (None | Some(""), _) => "-".to_string(),
                    (Some("never"), _) => "never".to_string(),
                    (Some(ms), "last_heartbeat_ms") => format!("{ms} ms ago"),
                    (Some(ms), "sync_lag_ms") => format!("{ms} ms"),
                    (Some(v), _) => v.to_string(),
                }
            })
            .collect();
        rows.push(row);
    }
    out += &table(&rows);
    out
}

/// Rows as left-aligned columns two spaces apart, without trailing spaces.
pub fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (cell, width) in row.iter().zip(&widths) {
            line += &format!("{cell:<width$}  ");
        }
        out += line.trim_end();
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use memcord_protocol::Value;

    #[test]
    fn replies_read_like_the_wire() {
        let values = Response::Values(vec![
            Value {
                key: Bytes::from_static(b"k"),
                flags: 3,
                cas: Some(9),
                data: Bytes::from_static(b"hello"),
            },
            Value {
                key: Bytes::from_static(b"bin"),
                flags: 0,
                cas: None,
                data: Bytes::from_static(b"\x00\r\n"),
            },
        ]);
        assert_eq!(
            reply_text(&values),
            "VALUE k 3 5 9\nhello\nVALUE bin 0 3\n\\x00\\r\\n\nEND"
        );
        assert_eq!(reply_text(&Response::Stored), "STORED");
        assert_eq!(reply_text(&Response::Number(7)), "7");
        assert_eq!(
            reply_text(&Response::ServerError("peer failed".into())),
            "SERVER_ERROR peer failed"
        );
        assert_eq!(reply_text(&Response::None), "");
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn ordered_modes_show_role_leader_and_applied_index() {
        let stats = pairs(&[
            ("cluster_mode", "linearizable"),
            ("cluster_peer_id", "1"),
            ("cluster_state", "serving"),
            ("cluster_role", "follower"),
            ("cluster_leader", "0"),
            ("cluster_term", "3"),
            ("peer.1.status", "self"),
            ("peer.1.role", "follower"),
            ("peer.1.applied_index", "7"),
            ("peer.0.addr", "h:9000"),
            ("peer.0.status", "up"),
            ("peer.0.role", "leader"),
            ("peer.0.applied_index", "8"),
        ]);
        assert_eq!(
            cluster_table("h:8001", &stats, &[]),
            "peer 1 at h:8001: mode linearizable, state serving, role follower, leader 0, term 3\n\
             peer  client addr  peer addr  status  serving  role      items  last heartbeat  sync lag  applied index\n\
             0     -            h:9000     up      -        leader    -      -               -         8\n\
             1     -            -          self    -        follower  -      -               -         7\n"
        );
    }

    #[test]
    fn cluster_table_has_a_row_per_peer() {
        let stats = pairs(&[
            ("cluster_mode", "eventual"),
            ("cluster_peer_id", "0"),
            ("cluster_state", "serving"),
            ("peer.0.status", "self"),
            ("peer.0.serving", "true"),
            ("peer.0.items", "2"),
            ("peer.1.addr", "127.0.0.1:9001"),
            ("peer.1.status", "down"),
            ("peer.1.last_heartbeat_ms", "never"),
            ("peer.1.serving", "false"),
            ("peer.1.items", "0"),
            ("peer.1.sync_lag_ms", "15"),
        ]);
        let settings = pairs(&[
            ("memcord_peer.0.client_addr", "127.0.0.1:8000"),
            ("memcord_peer.1.client_addr", "127.0.0.1:8001"),
        ]);
        assert_eq!(
            cluster_table("127.0.0.1:8000", &stats, &settings),
            "peer 0 at 127.0.0.1:8000: mode eventual, state serving\n\
             peer  client addr     peer addr       status  serving  role  items  last heartbeat  sync lag\n\
             0     127.0.0.1:8000  -               self    true     -     2      -               -\n\
             1     127.0.0.1:8001  127.0.0.1:9001  down    false    -     0      never           15 ms\n"
        );
    }
}
