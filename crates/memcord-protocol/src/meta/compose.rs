//! Composing meta replies (server side) and meta requests (client side).

use super::{encode_key, MetaFlags, MetaItem, MetaKind, MetaReply, MetaStatus, SetMode};
use crate::line::{put_i64, put_u64};
use crate::Request;
use bytes::BytesMut;

impl MetaReply {
    /// Appends the reply's wire form (nothing when `q` hides it).
    pub fn compose(&self, out: &mut BytesMut) {
        match self.kind {
            MetaKind::Get => self.compose_get(out),
            MetaKind::Set | MetaKind::Delete => self.compose_code_only(out),
            MetaKind::Arith => self.compose_arith(out),
            MetaKind::Debug => self.compose_debug(out),
        }
    }

    fn code(&self) -> &'static [u8] {
        match self.status {
            MetaStatus::Found | MetaStatus::Done => b"HD",
            MetaStatus::Miss => b"EN",
            MetaStatus::NotStored => b"NS",
            MetaStatus::Exists => b"EX",
            MetaStatus::NotFound => b"NF",
        }
    }

    /// ` k<key>` (base64 and ` b` for a `b` request).
    fn put_key(&self, out: &mut BytesMut) {
        out.extend_from_slice(b" k");
        if self.flags.base64 {
            out.extend_from_slice(encode_key(&self.key).as_bytes());
            out.extend_from_slice(b" b");
        } else {
            out.extend_from_slice(&self.key);
        }
    }

    fn put_opaque(&self, out: &mut BytesMut) {
        out.extend_from_slice(b" O");
        if let Some(opaque) = &self.flags.opaque {
            out.extend_from_slice(opaque);
        }
    }

    /// The `O` and `k` flags, in request order: all a reply without an item echoes.
    fn put_echoes(&self, out: &mut BytesMut) {
        for &letter in self.flags.letters() {
            match letter {
                b'O' => self.put_opaque(out),
                b'k' => self.put_key(out),
                _ => {}
            }
        }
    }

    /// `VA <size>` when the value is asked for, else `HD`.
    fn put_hit_code(&self, out: &mut BytesMut, item: &MetaItem, with_value: bool) {
        if with_value {
            out.extend_from_slice(b"VA ");
            put_u64(out, item.value.len() as u64);
        } else {
            out.extend_from_slice(b"HD");
        }
    }

    fn put_value(out: &mut BytesMut, item: &MetaItem) {
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&item.value);
    }

    /// The requested flags an item shows, in request order, among `shown` (`mg` and `ma` show
    /// different ones). A `t` shows the TTL as it is at its place in the list: after a `T` the
    /// touched one, after an `N` that created the item the vivified one.
    fn put_item_flags(&self, out: &mut BytesMut, item: &MetaItem, shown: &[u8]) {
        let mut ttl = item.ttl;
        for &letter in self.flags.letters() {
            match letter {
                b'T' => ttl = item.ttl_touched.unwrap_or(ttl),
                b'N' => ttl = item.ttl_vivified.unwrap_or(ttl),
                _ if !shown.contains(&letter) => {}
                b's' => put_flag(out, b's', item.value.len() as i64),
                b't' => put_flag(out, b't', ttl),
                b'c' => put_flag_u64(out, b'c', item.cas),
                b'f' => put_flag(out, b'f', i64::from(item.client_flags)),
                b'l' => put_flag_u64(out, b'l', item.idle_secs),
                b'h' => put_flag(out, b'h', i64::from(item.hit_before)),
                b'O' => self.put_opaque(out),
                b'k' => self.put_key(out),
                _ => {}
            }
        }
    }

    fn compose_get(&self, out: &mut BytesMut) {
        let Some(item) = self
            .item
            .as_ref()
            .filter(|_| self.status == MetaStatus::Found)
        else {
            if self.flags.quiet {
                return;
            }
            out.extend_from_slice(b"EN");
            self.put_echoes(out);
            out.extend_from_slice(b"\r\n");
            return;
        };
        let with_value = self.flags.has(b'v');
        out.reserve(item.value.len() + 64);
        self.put_hit_code(out, item, with_value);
        self.put_item_flags(out, item, b"stcflhOk");
        if item.token_sent {
            out.extend_from_slice(b" Z");
        }
        if item.stale {
            out.extend_from_slice(b" X");
        }
        if item.won {
            out.extend_from_slice(b" W");
        }
        if with_value {
            Self::put_value(out, item);
        }
        out.extend_from_slice(b"\r\n");
    }

    /// `ms` and `md`: a code, then `O`, `k` (and `ms`'s `c`) in request order.
    fn compose_code_only(&self, out: &mut BytesMut) {
        if self.status == MetaStatus::Done && self.flags.quiet {
            return;
        }
        out.extend_from_slice(self.code());
        for &letter in self.flags.letters() {
            match letter {
                b'O' => self.put_opaque(out),
                b'k' => self.put_key(out),
                b'c' if self.kind == MetaKind::Set => {
                    let cas = match (&self.item, self.status) {
                        (Some(item), MetaStatus::Done) => item.cas,
                        _ => 0,
                    };
                    put_flag_u64(out, b'c', cas);
                }
                _ => {}
            }
        }
        out.extend_from_slice(b"\r\n");
    }

    fn compose_arith(&self, out: &mut BytesMut) {
        let Some(item) = self
            .item
            .as_ref()
            .filter(|_| self.status == MetaStatus::Found)
        else {
            out.extend_from_slice(self.code());
            self.put_echoes(out);
            out.extend_from_slice(b"\r\n");
            return;
        };
        let created = item.ttl_vivified.is_some();
        // memcached hides a quiet success, but not the creation of an item.
        if self.flags.quiet && !created {
            return;
        }
        let with_value = self.flags.has(b'v');
        self.put_hit_code(out, item, with_value);
        self.put_item_flags(out, item, b"ctOk");
        if with_value {
            Self::put_value(out, item);
        }
        out.extend_from_slice(b"\r\n");
    }

    fn compose_debug(&self, out: &mut BytesMut) {
        let Some(item) = self
            .item
            .as_ref()
            .filter(|_| self.status == MetaStatus::Found)
        else {
            out.extend_from_slice(b"EN\r\n");
            return;
        };
        out.extend_from_slice(b"ME ");
        if self.flags.base64 {
            out.extend_from_slice(encode_key(&self.key).as_bytes());
        } else {
            out.extend_from_slice(&self.key);
        }
        out.extend_from_slice(b" exp=");
        // memcached prints `current_time - exptime`: the TTL left, negated.
        put_i64(out, if item.ttl < 0 { -1 } else { -item.ttl });
        out.extend_from_slice(b" la=");
        put_u64(out, item.idle_secs);
        out.extend_from_slice(b" cas=");
        put_u64(out, item.cas);
        out.extend_from_slice(if item.hit_before {
            b" fetch=yes cls="
        } else {
            b" fetch=no cls="
        });
        put_u64(out, u64::from(item.class));
        out.extend_from_slice(b" size=");
        put_u64(out, item.footprint as u64);
        out.extend_from_slice(b"\r\n");
    }
}

fn put_flag(out: &mut BytesMut, letter: u8, value: i64) {
    out.extend_from_slice(&[b' ', letter]);
    put_i64(out, value);
}

fn put_flag_u64(out: &mut BytesMut, letter: u8, value: u64) {
    out.extend_from_slice(&[b' ', letter]);
    put_u64(out, value);
}

/// Appends a meta request's wire form (client side). The flags' letters decide what is
/// written, in their order; a letter that takes a token takes it from the request's fields
/// (`T` from `touch`, `O` from the opaque …). Non-meta requests append nothing.
pub fn compose_request(request: &Request, out: &mut BytesMut) {
    match request {
        Request::MetaNoop => out.extend_from_slice(b"mn\r\n"),
        Request::MetaDebug { key, base64 } => {
            out.extend_from_slice(b"me ");
            put_request_key(out, key, *base64);
            if *base64 {
                out.extend_from_slice(b" b");
            }
            out.extend_from_slice(b"\r\n");
        }
        Request::MetaGet(get) => put_request_line(
            out,
            b"mg ",
            &get.key,
            &get.flags,
            |letter, out| match letter {
                b'T' => put_opt(out, get.touch),
                b'N' => put_opt(out, get.vivify),
                b'R' => put_opt(out, get.recache),
                _ => {}
            },
        ),
        Request::MetaSet(set) => {
            out.extend_from_slice(b"ms ");
            put_request_key(out, &set.key, set.flags.base64);
            out.extend_from_slice(b" ");
            put_u64(out, set.value.len() as u64);
            put_request_flags(out, &set.flags, |letter, out| match letter {
                b'T' => put_i64(out, set.exptime),
                b'F' => put_u64(out, u64::from(set.client_flags)),
                b'C' => put_opt_u64(out, set.compare_cas),
                b'M' => out.extend_from_slice(&[mode_letter(set.mode)]),
                _ => {}
            });
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(&set.value);
            out.extend_from_slice(b"\r\n");
        }
        Request::MetaDelete(delete) => put_request_line(
            out,
            b"md ",
            &delete.key,
            &delete.flags,
            |letter, out| match letter {
                b'T' => put_opt(out, delete.touch),
                b'C' => put_opt_u64(out, delete.compare_cas),
                _ => {}
            },
        ),
        Request::MetaArith(arith) => put_request_line(
            out,
            b"ma ",
            &arith.key,
            &arith.flags,
            |letter, out| match letter {
                b'T' => put_opt(out, arith.touch),
                b'N' => put_opt(out, arith.vivify),
                b'C' => put_opt_u64(out, arith.compare_cas),
                b'J' => put_u64(out, arith.initial),
                b'D' => put_u64(out, arith.delta),
                b'M' => out.extend_from_slice(if arith.incr { b"I" } else { b"D" }),
                _ => {}
            },
        ),
        _ => {}
    }
}

fn mode_letter(mode: SetMode) -> u8 {
    mode.letter()
}

/// `<word><key> <flags>\r\n`: a meta request without a data block.
fn put_request_line(
    out: &mut BytesMut,
    word: &[u8],
    key: &[u8],
    flags: &MetaFlags,
    token: impl FnMut(u8, &mut BytesMut),
) {
    out.extend_from_slice(word);
    put_request_key(out, key, flags.base64);
    put_request_flags(out, flags, token);
    out.extend_from_slice(b"\r\n");
}

fn put_request_key(out: &mut BytesMut, key: &[u8], base64: bool) {
    if base64 {
        out.extend_from_slice(encode_key(key).as_bytes());
    } else {
        out.extend_from_slice(key);
    }
}

/// Writes ` <letter><token>` for every letter, the command's own tokens through `token`.
fn put_request_flags(
    out: &mut BytesMut,
    flags: &MetaFlags,
    mut token: impl FnMut(u8, &mut BytesMut),
) {
    for &letter in flags.letters() {
        out.extend_from_slice(&[b' ', letter]);
        match letter {
            b'O' => {
                if let Some(opaque) = &flags.opaque {
                    out.extend_from_slice(opaque);
                }
            }
            b'L' => {
                if let Some(level) = flags.level {
                    out.extend_from_slice(level.name().as_bytes());
                }
            }
            other => token(other, out),
        }
    }
}

fn put_opt(out: &mut BytesMut, value: Option<i64>) {
    if let Some(value) = value {
        put_i64(out, value);
    }
}

fn put_opt_u64(out: &mut BytesMut, value: Option<u64>) {
    if let Some(value) = value {
        put_u64(out, value);
    }
}
