//! Mutual authentication with a shared cluster secret (HMAC-SHA256 challenge-response).
//!
//! ```text
//! dialer                         acceptor
//!   Hello{from,to,mode,nonce_d} ->
//!                              <- Challenge::Continue{nonce_a, proof_a}
//!   Proof{proof_d}              ->
//! proof_a = HMAC(secret, "accept" | nonce_d | nonce_a | dialer id | acceptor id)
//! proof_d = HMAC(secret, "dial"   | nonce_d | nonce_a | dialer id | acceptor id)
//! ```
//! Both sides prove knowledge of the secret over fresh nonces, so a recorded handshake cannot be
//! replayed; the secret itself never crosses the wire.

use super::message::PeerId;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

/// Which side computes a proof (the two proofs differ so one cannot be reflected as the other).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The peer that opened the connection.
    Dialer,
    /// The peer that accepted it.
    Acceptor,
}

/// A fresh random nonce.
pub fn nonce() -> [u8; 32] {
    let mut n = [0u8; 32];
    rand::rng().fill_bytes(&mut n);
    n
}

/// The keyed MAC over one handshake's nonces and ids, for one side.
fn handshake_mac(
    secret: &[u8],
    side: Side,
    dialer_nonce: &[u8; 32],
    acceptor_nonce: &[u8; 32],
    dialer: PeerId,
    acceptor: PeerId,
) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(match side {
        Side::Dialer => b"memcord-dial",
        Side::Acceptor => b"memcord-accept",
    });
    mac.update(dialer_nonce);
    mac.update(acceptor_nonce);
    mac.update(&dialer.to_be_bytes());
    mac.update(&acceptor.to_be_bytes());
    mac
}

/// The proof one side sends for this handshake.
pub fn proof(
    secret: &[u8],
    side: Side,
    dialer_nonce: &[u8; 32],
    acceptor_nonce: &[u8; 32],
    dialer: PeerId,
    acceptor: PeerId,
) -> [u8; 32] {
    handshake_mac(secret, side, dialer_nonce, acceptor_nonce, dialer, acceptor)
        .finalize()
        .into_bytes()
        .into()
}

/// Checks a received proof in constant time.
pub fn verify(
    secret: &[u8],
    side: Side,
    dialer_nonce: &[u8; 32],
    acceptor_nonce: &[u8; 32],
    dialer: PeerId,
    acceptor: PeerId,
    received: &[u8; 32],
) -> bool {
    handshake_mac(secret, side, dialer_nonce, acceptor_nonce, dialer, acceptor)
        .verify_slice(received)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proofs_verify_only_with_the_same_secret_side_and_nonces() {
        let (d, a) = (nonce(), nonce());
        let p = proof(b"s3cret", Side::Dialer, &d, &a, 0, 1);
        assert!(verify(b"s3cret", Side::Dialer, &d, &a, 0, 1, &p));
        assert!(!verify(b"other", Side::Dialer, &d, &a, 0, 1, &p));
        assert!(!verify(b"s3cret", Side::Acceptor, &d, &a, 0, 1, &p));
        assert!(!verify(b"s3cret", Side::Dialer, &a, &d, 0, 1, &p));
        assert!(!verify(b"s3cret", Side::Dialer, &d, &a, 0, 2, &p));
    }

    #[test]
    fn nonces_differ() {
        assert_ne!(nonce(), nonce());
    }
}
