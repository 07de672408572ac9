//! Serving a binary-protocol connection: each frame becomes the same coordinator request a
//! text or meta command would (a get is a meta get asking for flags, value and cas; an incr
//! with its initial value is a meta arithmetic command that vivifies), and the coordinator's
//! reply becomes memcached's frame.
//!
//! A connection speaks binary when its first byte is `0x80`, as memcached decides; it then
//! speaks nothing else. Quiet opcodes drop the replies memcached drops, so a pipeline of
//! `GetKQ`s ended by a `Noop` answers the hits and the `Noop` only.

use super::connection::{Flow, Handler};
use super::stats::Tally;
use crate::modes::Coordinator;
use crate::protocol::binary::{
    compose_response, parse_request, BinaryParse, BinaryRequest, BinaryResponse, Extras, Opcode,
    Status, ARITH_NO_CREATE,
};
use crate::protocol::meta::{
    MetaArith, MetaDelete, MetaFlags, MetaGet, MetaReply, MetaSet, MetaStatus, SetMode,
};
use crate::protocol::{AfterError, Request, Response, VERSION};
use bytes::Buf;
use std::io;

/// What a binary frame asks of the server.
enum Work {
    /// A data request for the coordinator.
    Data(Request),
    /// Answered by the connection itself.
    Local(Local),
}

enum Local {
    Noop,
    Version,
    Quit,
    Flush(i64),
    Stat(Option<String>),
}

/// memcached's exptime field: unsigned 32 bits, read with the text protocol's rules.
fn exptime(raw: u32) -> i64 {
    i64::from(raw)
}

fn flags(letters: &[u8]) -> MetaFlags {
    MetaFlags::with_letters(letters)
}

/// The request a frame stands for.
fn work(request: &BinaryRequest) -> Work {
    let key = request.key.clone();
    let cas = (request.cas != 0).then_some(request.cas);
    let extras = request.decode_extras().unwrap_or(Extras::None);
    let get = |touch: Option<i64>| {
        let mut get = MetaGet::asking(key.clone(), if touch.is_some() { b"vfcT" } else { b"vfc" });
        get.touch = touch;
        Work::Data(Request::MetaGet(Box::new(get)))
    };
    let set = |mode: SetMode, client_flags: u32, exptime: i64| {
        // A cas in the header makes set, add and replace a compare-and-swap (memcached's
        // NREAD_CAS), append and prepend a compared append.
        let mode = match (mode, cas) {
            (SetMode::Add | SetMode::Replace, Some(_)) => SetMode::Set,
            (mode, _) => mode,
        };
        Work::Data(Request::MetaSet(Box::new(MetaSet {
            key: key.clone(),
            value: request.value.clone(),
            mode,
            compare_cas: cas,
            invalidate: false,
            client_flags,
            exptime,
            flags: flags(b"c"),
        })))
    };
    match (request.opcode.loud(), extras) {
        (Opcode::Get | Opcode::GetK, _) => get(None),
        (Opcode::Touch | Opcode::Gat | Opcode::GatK, Extras::Touch { exptime: e }) => {
            get(Some(exptime(e)))
        }
        (Opcode::Set, Extras::Store { flags, exptime: e }) => set(SetMode::Set, flags, exptime(e)),
        (Opcode::Add, Extras::Store { flags, exptime: e }) => set(SetMode::Add, flags, exptime(e)),
        (Opcode::Replace, Extras::Store { flags, exptime: e }) => {
            set(SetMode::Replace, flags, exptime(e))
        }
        (Opcode::Append, _) => set(SetMode::Append, 0, 0),
        (Opcode::Prepend, _) => set(SetMode::Prepend, 0, 0),
        (Opcode::Delete, _) => Work::Data(Request::MetaDelete(Box::new(MetaDelete {
            key,
            compare_cas: cas,
            invalidate: false,
            touch: None,
            flags: flags(b""),
        }))),
        (
            op @ (Opcode::Increment | Opcode::Decrement),
            Extras::Arith {
                delta,
                initial,
                exptime: e,
            },
        ) => Work::Data(Request::MetaArith(Box::new(MetaArith {
            key,
            incr: op == Opcode::Increment,
            delta,
            initial,
            vivify: (e != ARITH_NO_CREATE).then(|| exptime(e)),
            compare_cas: cas,
            touch: None,
            value: true,
            flags: flags(if e != ARITH_NO_CREATE { b"vcNJ" } else { b"vc" }),
        }))),
        (Opcode::Flush, Extras::Flush { exptime: e }) => {
            Work::Local(Local::Flush(e.map_or(0, exptime)))
        }
        (Opcode::Flush, _) => Work::Local(Local::Flush(0)),
        (Opcode::Stat, _) => Work::Local(Local::Stat(
            (!request.key.is_empty()).then(|| String::from_utf8_lossy(&request.key).into_owned()),
        )),
        (Opcode::Version, _) => Work::Local(Local::Version),
        (Opcode::Quit, _) => Work::Local(Local::Quit),
        // The parser refuses every other opcode and every wrong extras length.
        _ => Work::Local(Local::Noop),
    }
}

/// The frame memcached sends for a coordinator's reply to `request`.
fn frame(request: &BinaryRequest, reply: &Response) -> BinaryResponse {
    let loud = request.opcode.loud();
    let meta = match reply {
        Response::Meta(meta) => meta,
        Response::ClientError(reason) if reason.contains("non-numeric") => {
            return BinaryResponse::error(request, Status::NonNumeric);
        }
        Response::ServerError(reason) if reason.contains("too large") => {
            return BinaryResponse::error(request, Status::TooLarge);
        }
        Response::ServerError(reason) if reason.contains("out of memory") => {
            return BinaryResponse::error(request, Status::OutOfMemory);
        }
        // memcord's own server errors (no quorum, catching up, a backend down) have no binary
        // status of their own: a temporary failure, with memcord's reason as the text.
        Response::ServerError(reason) => {
            return BinaryResponse::new(request.opcode, Status::Other(0x86), request.opaque)
                .with_value(bytes::Bytes::from(reason.clone()));
        }
        _ => return BinaryResponse::error(request, Status::UnknownCommand),
    };
    framed_meta(request, loud, meta)
}

fn framed_meta(request: &BinaryRequest, loud: Opcode, meta: &MetaReply) -> BinaryResponse {
    let item = meta.item.as_ref();
    match (loud, meta.status) {
        (
            Opcode::Get | Opcode::GetK | Opcode::Touch | Opcode::Gat | Opcode::GatK,
            MetaStatus::Found,
        ) => {
            let item = item.cloned().unwrap_or_default();
            BinaryResponse::hit(request, item.client_flags, item.value, item.cas)
        }
        (Opcode::Get | Opcode::GetK | Opcode::Touch | Opcode::Gat | Opcode::GatK, _) => {
            BinaryResponse::miss(request)
        }
        (Opcode::Increment | Opcode::Decrement, MetaStatus::Found) => {
            let item = item.cloned().unwrap_or_default();
            let value = std::str::from_utf8(&item.value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            BinaryResponse::counter(request, value, item.cas)
        }
        (Opcode::Delete, MetaStatus::Done) => BinaryResponse::success(request),
        (_, MetaStatus::Done) => BinaryResponse::stored(request, item.map_or(0, |i| i.cas)),
        (_, MetaStatus::Exists) => BinaryResponse::error(request, Status::KeyExists),
        (Opcode::Add, MetaStatus::NotStored) => BinaryResponse::error(request, Status::KeyExists),
        (Opcode::Replace, MetaStatus::NotStored) => {
            BinaryResponse::error(request, Status::KeyNotFound)
        }
        (_, MetaStatus::NotStored) => BinaryResponse::error(request, Status::NotStored),
        (_, MetaStatus::NotFound | MetaStatus::Miss | MetaStatus::Found) => {
            BinaryResponse::error(request, Status::KeyNotFound)
        }
    }
}

impl<C: Coordinator> Handler<C> {
    /// Answers every complete binary frame in the read buffer.
    pub(super) async fn process_binary(&mut self) -> io::Result<Flow> {
        loop {
            if !self.swallow_pending() {
                return Ok(Flow::Open);
            }
            if self.conn.input.is_empty() {
                return Ok(Flow::Open);
            }
            match parse_request(&self.conn.input, &self.shared.settings.limits) {
                BinaryParse::Incomplete => return Ok(Flow::Open),
                BinaryParse::Request { request, consumed } => {
                    self.conn.input.advance(consumed);
                    if self.serve_binary(request).await == Flow::Close {
                        return Ok(Flow::Close);
                    }
                }
                BinaryParse::TooLarge {
                    reply,
                    key,
                    consumed,
                    swallow,
                } => {
                    self.conn.input.advance(consumed);
                    self.swallow = swallow;
                    self.counters.store_too_large += 1;
                    // As memcached: a set too large to store must not leave the old value.
                    self.unlink(key).await;
                    self.write_binary(&reply);
                }
                BinaryParse::Invalid {
                    reply,
                    consumed,
                    after,
                } => {
                    if let Some(reply) = reply {
                        self.write_binary(&reply);
                    }
                    self.conn.input.advance(consumed);
                    match after {
                        AfterError::Continue => {}
                        AfterError::Swallow(n) => self.swallow = n,
                        AfterError::Close => return Ok(Flow::Close),
                    }
                }
            }
            self.flush_if_full().await?;
        }
    }

    fn write_binary(&mut self, reply: &BinaryResponse) {
        compose_response(reply, &mut self.conn.output);
    }

    /// Answers one binary request.
    async fn serve_binary(&mut self, request: BinaryRequest) -> Flow {
        let reply = match work(&request) {
            Work::Data(data) => {
                let tally = Tally::of(&data);
                let reply = self.coordinator.handle(&mut self.session, data).await;
                self.counters.record(tally, &reply);
                frame(&request, &reply)
            }
            Work::Local(Local::Noop) => BinaryResponse::success(&request),
            Work::Local(Local::Version) => BinaryResponse::version(&request, VERSION),
            Work::Local(Local::Quit) => {
                if request.opcode == Opcode::Quit {
                    self.write_binary(&BinaryResponse::success(&request));
                }
                return Flow::Close;
            }
            Work::Local(Local::Flush(delay)) => {
                let flush = Request::FlushAll {
                    delay,
                    noreply: false,
                };
                let tally = Tally::of(&flush);
                let reply = self.coordinator.handle(&mut self.session, flush).await;
                self.counters.record(tally, &reply);
                match reply {
                    Response::Ok => BinaryResponse::success(&request),
                    other => frame(&request, &other),
                }
            }
            Work::Local(Local::Stat(group)) => {
                self.stat_frames(&request, group).await;
                return Flow::Open;
            }
        };
        if !reply.is_suppressed() {
            self.write_binary(&reply);
        }
        Flow::Open
    }

    /// A `Stat` reply: one frame per stat, then the empty frame.
    async fn stat_frames(&mut self, request: &BinaryRequest, group: Option<String>) {
        match self.shared.stats_reply(&*self.coordinator, group).await {
            Response::Stats(lines) => {
                for (name, value) in &lines {
                    self.write_binary(&BinaryResponse::stat(request, name, value));
                }
                self.write_binary(&BinaryResponse::stats_end(request));
            }
            Response::Reset => self.write_binary(&BinaryResponse::stats_end(request)),
            _ => self.write_binary(&BinaryResponse::error(request, Status::KeyNotFound)),
        }
    }

    /// Removes `key`'s item through the coordinator (so every replica drops it).
    pub(super) async fn unlink(&mut self, key: bytes::Bytes) {
        let delete = Request::Delete { key, noreply: true };
        let _ = self.coordinator.handle(&mut self.session, delete).await;
    }
}
