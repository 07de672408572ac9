//! The item envelope: how memcord keeps its own item metadata inside a plain memcached value.
//!
//! A backend memcached hands out its own cas ids and knows nothing of write versions, so the
//! backend value carries memcord's metadata in a fixed 32-byte header before the client's data:
//!
//! ```text
//!  0      2      3      4                12               20               28        32
//! +------+------+------+----------------+----------------+----------------+---------+------ -
//! | FE CD| fmt 1| marks| version (u64)  | cas id (u64)   | expires (u64)  | flags   | value
//! +------+------+------+----------------+----------------+----------------+---------+------ -
//!  magic  format  bits   HLC timestamp    memcord's cas    absolute unix s  client    client
//!                                                          (0 = never)      (u32)     bytes
//! ```
//!
//! The marks byte holds the meta protocol's item marks: bit 0 stale, bit 1 recache token sent
//! (0 for items that carry neither, so envelopes written before the marks read the same).
//!
//! All integers are big-endian. The expiry is kept in the header as well as handed to the
//! backend because the classic `gets` does not report an item's exptime, yet `append`,
//! `incr` and friends must write the item back with its expiry unchanged; it also lets memcord
//! decide expiry by its own clock, exactly as the embedded store does. The client flags are
//! also set as the backend item's flags, so a plain client reading the backend sees them.
//!
//! A backend value without the magic and format (written by someone else) reads as a plain
//! item: its bytes, the backend's flags, cas 0, version [`Timestamp::ZERO`], never expiring.

use crate::clock::Timestamp;
use crate::store::{ExpiresAt, Item};
use bytes::{BufMut, Bytes, BytesMut};

/// The envelope's leading bytes: two bytes that start no UTF-8 text, then the format.
pub const MAGIC: [u8; 2] = [0xFE, 0xCD];
/// The header layout this code writes.
pub const FORMAT: u8 = 1;
/// Bytes of header before the client's value.
pub const HEADER_LEN: usize = 32;

/// Serialises an item into its backend value.
pub fn encode(item: &Item) -> Bytes {
    let mut out = BytesMut::with_capacity(HEADER_LEN + item.value.len());
    out.put_slice(&MAGIC);
    out.put_u8(FORMAT);
    out.put_u8(u8::from(item.stale) | u8::from(item.token_sent) << 1);
    out.put_u64(item.version.as_u64());
    out.put_u64(item.cas);
    out.put_u64(item.expires_at.0);
    out.put_u32(item.flags);
    out.put_slice(&item.value);
    out.freeze()
}

/// A backend value read back: the item, and whether it was written by memcord.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// The item (a plain one for foreign values).
    pub item: Item,
    /// `false` when the value has no envelope (written by someone else).
    pub enveloped: bool,
}

/// Reads a backend value (zero-copy: the item's value is a slice of `data`).
pub fn decode(data: Bytes, backend_flags: u32) -> Decoded {
    if data.len() < HEADER_LEN || data[..2] != MAGIC || data[2] != FORMAT {
        return Decoded {
            item: Item {
                value: data,
                flags: backend_flags,
                expires_at: ExpiresAt::NEVER,
                cas: 0,
                version: Timestamp::ZERO,
                stale: false,
                token_sent: false,
            },
            enveloped: false,
        };
    }
    let u64_at = |at: usize| u64::from_be_bytes(data[at..at + 8].try_into().expect("8 bytes"));
    let flags = u32::from_be_bytes(data[28..32].try_into().expect("4 bytes"));
    Decoded {
        item: Item {
            version: Timestamp::from_u64(u64_at(4)),
            cas: u64_at(12),
            expires_at: ExpiresAt(u64_at(20)),
            flags,
            stale: data[3] & 1 != 0,
            token_sent: data[3] & 2 != 0,
            value: data.slice(HEADER_LEN..),
        },
        enveloped: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(value: &'static [u8]) -> Item {
        let mut item = Item::new(
            Bytes::from_static(value),
            0xDEAD_BEEF,
            ExpiresAt(1_900_000_000),
            Timestamp::new(1_700_000_000_123, 7, 3),
        );
        item.cas = 42; // a touched item: cas differs from version
        item.token_sent = true;
        item
    }

    #[test]
    fn round_trips_every_field() {
        for value in [&b""[..], b"hello", b"\r\nEND\r\n\0\xFE\xCD"] {
            let original = item(value);
            let encoded = encode(&original);
            assert_eq!(encoded.len(), HEADER_LEN + value.len());
            let decoded = decode(encoded, 0);
            assert!(decoded.enveloped);
            assert_eq!(decoded.item, original);
        }
    }

    #[test]
    fn header_layout_is_fixed() {
        let encoded = encode(&item(b"v"));
        assert_eq!(&encoded[..4], &[0xFE, 0xCD, 1, 2]);
        assert_eq!(&encoded[12..20], &42u64.to_be_bytes());
        assert_eq!(&encoded[28..32], &0xDEAD_BEEFu32.to_be_bytes());
        assert_eq!(&encoded[32..], b"v");
    }

    #[test]
    fn foreign_values_read_as_plain_items() {
        for raw in [
            &b""[..],
            b"plain",
            &[0xFE, 0xCD, 2, 0][..],
            &[0xFE, 0xCD, 1][..],
        ] {
            let decoded = decode(Bytes::from_static(raw), 9);
            assert!(!decoded.enveloped);
            assert_eq!(decoded.item.value, Bytes::from_static(raw));
            assert_eq!(decoded.item.flags, 9);
            assert_eq!(decoded.item.cas, 0);
            assert_eq!(decoded.item.version, Timestamp::ZERO);
            assert_eq!(decoded.item.expires_at, ExpiresAt::NEVER);
        }
    }
}
