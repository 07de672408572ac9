//! Length-prefixed frames: a big-endian `u32` length, then a `postcard` body.
//!
//! The length is checked against a bound before anything is allocated, so a peer (or anyone
//! who reaches the peer port) cannot make us reserve memory by announcing a huge frame.

use serde::{de::DeserializeOwned, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The connection failed or closed.
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    /// The announced length exceeds the bound.
    #[error("frame of {0} bytes exceeds the limit of {1}")]
    TooLarge(usize, usize),
    /// The body is not a valid message.
    #[error("malformed frame: {0}")]
    Malformed(#[from] postcard::Error),
}

/// Appends one frame carrying `message` to `out`.
pub fn encode<T: Serialize>(message: &T, out: &mut Vec<u8>) -> Result<(), postcard::Error> {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    let body = postcard::to_extend(message, std::mem::take(out))?;
    *out = body;
    let len = (out.len() - start - 4) as u32;
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

/// Reads one frame of at most `max_len` body bytes and decodes it.
pub async fn read<T, R>(
    reader: &mut R,
    max_len: usize,
    scratch: &mut Vec<u8>,
) -> Result<T, FrameError>
where
    T: DeserializeOwned,
    R: AsyncRead + Unpin,
{
    let len = reader.read_u32().await? as usize;
    if len > max_len {
        return Err(FrameError::TooLarge(len, max_len));
    }
    scratch.clear();
    scratch.resize(len, 0);
    reader.read_exact(scratch).await?;
    Ok(postcard::from_bytes(scratch)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_oversized_ones_are_refused_before_reading() {
        let mut wire = Vec::new();
        encode(&("hello".to_string(), 42u64), &mut wire).unwrap();
        encode(&vec![7u8; 100], &mut wire).unwrap();
        let mut reader = &wire[..];
        let mut scratch = Vec::new();
        let first: (String, u64) = read(&mut reader, 1024, &mut scratch).await.unwrap();
        assert_eq!(first, ("hello".to_string(), 42));
        let err = read::<Vec<u8>, _>(&mut reader, 10, &mut scratch)
            .await
            .unwrap_err();
        assert!(matches!(err, FrameError::TooLarge(_, 10)), "{err}");

        let huge = (u32::MAX).to_be_bytes();
        let err = read::<u8, _>(&mut &huge[..], 1 << 20, &mut scratch)
            .await
            .unwrap_err();
        assert!(matches!(err, FrameError::TooLarge(..)));
    }

    #[tokio::test]
    async fn garbage_is_malformed_not_a_panic() {
        let mut wire = 3u32.to_be_bytes().to_vec();
        wire.extend_from_slice(&[0xff, 0xff, 0xff]);
        let mut scratch = Vec::new();
        let err = read::<super::super::message::PeerMessage, _>(&mut &wire[..], 1024, &mut scratch)
            .await
            .unwrap_err();
        assert!(matches!(err, FrameError::Malformed(_)), "{err}");
    }
}
