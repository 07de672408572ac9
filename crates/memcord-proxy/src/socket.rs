//! Socket reads shared by the client side and the memcached adapter.

use bytes::BytesMut;
use std::io;
use tokio::io::Interest;
use tokio::net::TcpStream;

/// Reads what `stream` holds into `buf`; `Err(WouldBlock)` when it holds nothing. A read that
/// leaves room in `buf` emptied the socket, so the socket's readiness is cleared then and
/// there, as a `WouldBlock` would: the next wait is for new bytes, instead of costing a `recv`
/// to learn that none are there (memcached likewise goes back to `epoll` after a short read).
/// Bytes that arrive meanwhile raise a new readiness event, which clearing the old one leaves
/// alone.
pub fn read_draining(stream: &TcpStream, buf: &mut BytesMut) -> io::Result<usize> {
    let room = buf.capacity() - buf.len();
    let mut read = None;
    let result = stream.try_io(Interest::READABLE, || {
        let n = stream.try_read_buf(buf)?;
        read = Some(n);
        if n > 0 && n < room {
            Err(io::ErrorKind::WouldBlock.into())
        } else {
            Ok(n)
        }
    });
    match read {
        Some(n) => Ok(n),
        None => result,
    }
}

/// Waits until `stream` is readable and reads what it holds (see [`read_draining`]);
/// `Ok(0)` is end of stream.
pub async fn read_available(stream: &TcpStream, buf: &mut BytesMut) -> io::Result<usize> {
    loop {
        stream.readable().await?;
        match read_draining(stream, buf) {
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
            read => return read,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (client, server)
    }

    #[tokio::test(flavor = "current_thread")]
    async fn bytes_sent_after_a_short_read_still_wake_the_reader() {
        let (mut client, server) = pair().await;
        let mut buf = BytesMut::with_capacity(4096);
        for part in [&b"get "[..], b"some", b"key\r\n"] {
            client.write_all(part).await.unwrap();
            let deadline = std::time::Duration::from_secs(5);
            let n = tokio::time::timeout(deadline, read_available(&server, &mut buf))
                .await
                .expect("the reader must wake for new bytes")
                .unwrap();
            assert_eq!(n, part.len());
        }
        assert_eq!(&buf[..], b"get somekey\r\n");
        // A short read cleared readiness: with nothing sent, the socket reads as empty.
        let err = read_draining(&server, &mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        drop(client);
        let eof = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            read_available(&server, &mut buf),
        )
        .await
        .expect("end of stream must wake the reader")
        .unwrap();
        assert_eq!(eof, 0);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_read_that_fills_the_buffer_leaves_the_rest_readable() {
        let (mut client, server) = pair().await;
        client.write_all(&[7u8; 3000]).await.unwrap();
        let mut buf = BytesMut::with_capacity(1024);
        let mut total = 0;
        while total < 3000 {
            let before = buf.len();
            buf.reserve(1024);
            total += tokio::time::timeout(
                std::time::Duration::from_secs(5),
                read_available(&server, &mut buf),
            )
            .await
            .expect("bytes left in the socket must stay readable")
            .unwrap();
            assert!(buf.len() > before);
        }
        assert_eq!(total, 3000);
    }
}
