//! Readable one-line forms of values and operations, shared by reports and the timeline.

use super::history::{Input, Operation, Output};

/// The longest value shown in full; longer ones are cut with `…`.
const SHOWN_BYTES: usize = 40;

/// A value in double quotes, printable ASCII as is and other bytes as `\xNN`.
pub fn quote(bytes: &[u8]) -> String {
    let mut out = String::from("\"");
    for &b in bytes.iter().take(SHOWN_BYTES) {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    if bytes.len() > SHOWN_BYTES {
        out.push('…');
    }
    out.push('"');
    out
}

/// The request, e.g. `cas "v" 17`.
pub fn input(input: &Input) -> String {
    match input {
        Input::Get => "gets".to_string(),
        Input::Set(v) => format!("set {}", quote(v)),
        Input::Add(v) => format!("add {}", quote(v)),
        Input::Replace(v) => format!("replace {}", quote(v)),
        Input::Append(v) => format!("append {}", quote(v)),
        Input::Prepend(v) => format!("prepend {}", quote(v)),
        Input::Cas { value, unique } => format!("cas {} {unique}", quote(value)),
        Input::Incr(d) => format!("incr {d}"),
        Input::Decr(d) => format!("decr {d}"),
        Input::Delete => "delete".to_string(),
    }
}

/// The reply, e.g. `"v" cas 17` or `? (timeout)`.
pub fn output(output: &Output) -> String {
    match output {
        Output::Stored => "STORED".to_string(),
        Output::NotStored => "NOT_STORED".to_string(),
        Output::Exists => "EXISTS".to_string(),
        Output::NotFound => "NOT_FOUND".to_string(),
        Output::Deleted => "DELETED".to_string(),
        Output::Value { data, cas } => format!("{} cas {cas}", quote(data)),
        Output::Miss => "miss".to_string(),
        Output::Number(n) => n.to_string(),
        Output::Indeterminate(why) => format!("? ({why})"),
    }
}

/// Nanoseconds as milliseconds with three decimals.
pub fn millis(ns: u64) -> String {
    format!("{}.{:03}", ns / 1_000_000, (ns / 1_000) % 1_000)
}

/// The interval an operation was outstanding, e.g. `[12.345..13.002 ms]`.
pub fn interval(op: &Operation) -> String {
    if op.output.is_indeterminate() || op.returned_ns == u64::MAX {
        format!("[{}..∞ ms]", millis(op.invoked_ns))
    } else {
        format!("[{}..{} ms]", millis(op.invoked_ns), millis(op.returned_ns))
    }
}

/// `input → output`.
pub fn label(op: &Operation) -> String {
    format!("{} → {}", input(&op.input), output(&op.output))
}

/// One line per operation: id, client, peer, interval, `input → output`.
pub fn line(op: &Operation) -> String {
    format!(
        "#{} client {} peer {} {} {}",
        op.id,
        op.client,
        op.peer,
        interval(op),
        label(op)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_readable() {
        let op = Operation {
            id: 4,
            client: 2,
            peer: 1,
            key: "k".into(),
            input: Input::Cas {
                value: b"a\"\n".to_vec(),
                unique: 9,
            },
            output: Output::Exists,
            invoked_ns: 12_345_678,
            returned_ns: 13_002_000,
        };
        assert_eq!(
            line(&op),
            "#4 client 2 peer 1 [12.345..13.002 ms] cas \"a\\\"\\x0a\" 9 → EXISTS"
        );
        assert!(quote(&[b'x'; 50]).ends_with("…\""));
    }
}
