//! Composing: responses (server side) and requests (client side).
//!
//! Numbers are written with a small digit loop rather than `fmt`, since a reply is composed for
//! every request.

use super::line::{put_i64, put_u64};
use super::{Request, Response};
use bytes::BytesMut;

impl Response {
    /// Appends this reply's wire form to `out` (nothing for [`Response::None`]).
    pub fn compose(&self, out: &mut BytesMut) {
        let word: &[u8] = match self {
            Response::Values(values) => {
                put_values(out, values);
                b"END\r\n"
            }
            Response::Stored => b"STORED\r\n",
            Response::NotStored => b"NOT_STORED\r\n",
            Response::Exists => b"EXISTS\r\n",
            Response::NotFound => b"NOT_FOUND\r\n",
            Response::Deleted => b"DELETED\r\n",
            Response::Touched => b"TOUCHED\r\n",
            Response::Ok => b"OK\r\n",
            Response::Reset => b"RESET\r\n",
            Response::Error => b"ERROR\r\n",
            Response::Number(n) => {
                put_u64(out, *n);
                b"\r\n"
            }
            Response::Version(version) => put_line(out, b"VERSION ", version),
            Response::Stats(stats) => {
                for (name, value) in stats {
                    put_line(out, b"STAT ", name);
                    out.extend_from_slice(b" ");
                    out.extend_from_slice(value.as_bytes());
                    out.extend_from_slice(b"\r\n");
                }
                b"END\r\n"
            }
            Response::ClientError(reason) => put_line(out, b"CLIENT_ERROR ", reason),
            Response::ServerError(reason) => put_line(out, b"SERVER_ERROR ", reason),
            Response::Meta(reply) => {
                reply.compose(out);
                b""
            }
            Response::MetaLine(line) => {
                line.compose(out);
                b""
            }
            Response::MetaNoop => b"MN\r\n",
            Response::None => b"",
            Response::Line(text) => put_line(out, b"", text),
            Response::Block(lines) => {
                out.extend_from_slice(lines);
                b"END\r\n"
            }
        };
        out.extend_from_slice(word);
    }
}

/// `VALUE <key> <flags> <bytes> [<cas>]\r\n<data>\r\n` for each value.
fn put_values(out: &mut BytesMut, values: &[super::Value]) {
    for value in values {
        out.reserve(value.key.len() + value.data.len() + 64);
        out.extend_from_slice(b"VALUE ");
        out.extend_from_slice(&value.key);
        out.extend_from_slice(b" ");
        put_u64(out, u64::from(value.flags));
        out.extend_from_slice(b" ");
        put_u64(out, value.data.len() as u64);
        if let Some(cas) = value.cas {
            out.extend_from_slice(b" ");
            put_u64(out, cas);
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&value.data);
        out.extend_from_slice(b"\r\n");
    }
}

/// Appends `<word><text>`; returns the line end for the caller to append after it.
fn put_line(out: &mut BytesMut, word: &[u8], text: &str) -> &'static [u8] {
    out.extend_from_slice(word);
    out.extend_from_slice(text.as_bytes());
    b"\r\n"
}

/// Appends ` noreply` when asked for.
fn put_noreply(out: &mut BytesMut, noreply: bool) {
    if noreply {
        out.extend_from_slice(b" noreply");
    }
}

impl Request {
    /// Appends this request's wire form to `out`.
    pub fn compose(&self, out: &mut BytesMut) {
        match self {
            Request::MetaGet(_)
            | Request::MetaSet(_)
            | Request::MetaDelete(_)
            | Request::MetaArith(_)
            | Request::MetaNoop
            | Request::MetaDebug { .. } => {
                // Meta requests end their own lines (an `ms` carries its data block).
                super::meta::compose_request(self, out);
                return;
            }
            Request::Get { keys, with_cas } => {
                out.extend_from_slice(if *with_cas { b"gets" } else { b"get" });
                for key in keys {
                    out.extend_from_slice(b" ");
                    out.extend_from_slice(key);
                }
            }
            Request::Gat {
                exptime,
                keys,
                with_cas,
            } => {
                out.extend_from_slice(if *with_cas { b"gats " } else { b"gat " });
                put_i64(out, *exptime);
                for key in keys {
                    out.extend_from_slice(b" ");
                    out.extend_from_slice(key);
                }
            }
            Request::Store {
                op,
                key,
                flags,
                exptime,
                value,
                cas_unique,
                noreply,
            } => {
                out.reserve(key.len() + value.len() + 64);
                out.extend_from_slice(op.word().as_bytes());
                out.extend_from_slice(b" ");
                out.extend_from_slice(key);
                out.extend_from_slice(b" ");
                put_u64(out, u64::from(*flags));
                out.extend_from_slice(b" ");
                put_i64(out, *exptime);
                out.extend_from_slice(b" ");
                put_u64(out, value.len() as u64);
                if *op == super::StoreOp::Cas {
                    out.extend_from_slice(b" ");
                    put_u64(out, *cas_unique);
                }
                put_noreply(out, *noreply);
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(value);
            }
            Request::Delete { key, noreply } => {
                out.extend_from_slice(b"delete ");
                out.extend_from_slice(key);
                put_noreply(out, *noreply);
            }
            Request::Arith {
                op,
                key,
                delta,
                noreply,
            } => {
                out.extend_from_slice(op.word().as_bytes());
                out.extend_from_slice(b" ");
                out.extend_from_slice(key);
                out.extend_from_slice(b" ");
                put_u64(out, *delta);
                put_noreply(out, *noreply);
            }
            Request::Touch {
                key,
                exptime,
                noreply,
            } => {
                out.extend_from_slice(b"touch ");
                out.extend_from_slice(key);
                out.extend_from_slice(b" ");
                put_i64(out, *exptime);
                put_noreply(out, *noreply);
            }
            Request::FlushAll { delay, noreply } => {
                out.extend_from_slice(b"flush_all");
                if *delay != 0 {
                    out.extend_from_slice(b" ");
                    put_i64(out, *delay);
                }
                put_noreply(out, *noreply);
            }
            Request::Version => out.extend_from_slice(b"version"),
            Request::Verbosity { level, noreply } => {
                out.extend_from_slice(b"verbosity ");
                put_u64(out, u64::from(*level));
                put_noreply(out, *noreply);
            }
            Request::Stats { group } => {
                out.extend_from_slice(b"stats");
                if let Some(group) = group {
                    out.extend_from_slice(b" ");
                    out.extend_from_slice(group.as_bytes());
                }
            }
            Request::Quit => out.extend_from_slice(b"quit"),
            Request::Fail => out.extend_from_slice(b"fail"),
            Request::Recover => out.extend_from_slice(b"recover"),
            Request::Consistency(level) => {
                out.extend_from_slice(b"consistency ");
                out.extend_from_slice(level.name().as_bytes());
            }
            Request::Admin { command, noreply } => {
                super::admin::compose(command, out);
                put_noreply(out, *noreply);
            }
            Request::Oversized {
                op,
                key,
                swallow,
                noreply,
            } => {
                // The command line only: the block was never kept.
                out.extend_from_slice(op.word().as_bytes());
                out.extend_from_slice(b" ");
                out.extend_from_slice(key);
                out.extend_from_slice(b" 0 0 ");
                put_u64(out, swallow.saturating_sub(2) as u64);
                put_noreply(out, *noreply);
            }
        }
        out.extend_from_slice(b"\r\n");
    }
}
