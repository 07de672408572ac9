//! Composing: responses (server side) and requests (client side).

use super::{Request, Response};
use bytes::BytesMut;

impl Response {
    /// Appends this reply's wire form to `out` (nothing for [`Response::None`]).
    pub fn compose(&self, out: &mut BytesMut) {
        let _ = out;
        todo!("protocol helper")
    }
}

impl Request {
    /// Appends this request's wire form to `out`.
    pub fn compose(&self, out: &mut BytesMut) {
        let _ = out;
        todo!("protocol helper")
    }
}
