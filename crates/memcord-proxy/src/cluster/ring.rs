//! The consistent-hash ring of the eventual (Dynamo) mode: which peers hold a key.
//!
//! Every peer places `vnodes` points on a 64-bit ring; a key hashes to a point and its
//! replica set is the first `replication` *distinct* peers met clockwise from there (its
//! preference list, in that order). Adding a peer takes over about `1/N` of the ring from the
//! others and leaves every other key where it was, so only the keys that must move do.
//!
//! Every peer must compute the same ring from the same configuration, in every process and
//! every build, so the hash is spelled out here (FNV-1a 64 with murmur3's 64-bit finalizer
//! for avalanche) rather than taken from `std`, whose hasher may change between releases.

use super::message::PeerId;
use serde::{Deserialize, Serialize};

/// FNV-1a over `bytes` followed by murmur3's `fmix64`: stable, fast, and well spread.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    fmix64(h)
}

fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

/// What defines a ring; peers exchange it so a responder can filter by the asker's view.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RingSpec {
    /// Every peer of the cluster (order does not matter).
    pub peers: Vec<PeerId>,
    /// Points per peer.
    pub vnodes: u32,
    /// Replicas per key (clamped to the number of peers).
    pub replication: u32,
}

/// Largest `vnodes` accepted (bounds the ring's size when a spec comes from the network).
pub const MAX_VNODES: u32 = 4096;

/// A built ring: sorted points, each owned by a peer.
#[derive(Debug, Clone)]
pub struct Ring {
    spec: RingSpec,
    points: Vec<(u64, PeerId)>,
    distinct: usize,
}

impl Ring {
    /// Builds the ring of `spec` (peers deduplicated; `vnodes` and `replication` clamped to
    /// sane bounds so a bad spec cannot allocate without limit or ask for more replicas than
    /// peers).
    pub fn new(spec: &RingSpec) -> Ring {
        let mut peers = spec.peers.clone();
        // Peer ids fit in a byte (they are packed into clock timestamps): a spec from the
        // network naming more cannot make the ring large.
        peers.retain(|&p| p <= crate::clock::MAX_PEER_ID);
        peers.sort_unstable();
        peers.dedup();
        let vnodes = spec.vnodes.clamp(1, MAX_VNODES);
        let replication = (spec.replication.max(1) as usize).min(peers.len().max(1)) as u32;
        let mut points = Vec::with_capacity(peers.len() * vnodes as usize);
        for &peer in &peers {
            for v in 0..vnodes {
                let mut label = [0u8; 6];
                label[..2].copy_from_slice(&peer.to_be_bytes());
                label[2..].copy_from_slice(&v.to_be_bytes());
                points.push((stable_hash(&label), peer));
            }
        }
        // Ties (vanishingly rare) are broken by peer id, so every peer sorts alike.
        points.sort_unstable();
        Ring {
            spec: RingSpec {
                peers: peers.clone(),
                vnodes,
                replication,
            },
            points,
            distinct: peers.len(),
        }
    }

    /// The (normalized) spec this ring was built from.
    pub fn spec(&self) -> &RingSpec {
        &self.spec
    }

    /// Replicas per key.
    pub fn replication(&self) -> usize {
        self.spec.replication as usize
    }

    /// Whether every peer holds every key (replication factor = number of peers).
    pub fn is_full(&self) -> bool {
        self.replication() >= self.distinct
    }

    /// The key's preference list: its `replication` distinct peers, clockwise from its hash.
    pub fn replicas(&self, key: &[u8]) -> Vec<PeerId> {
        let want = self.replication();
        let mut out = Vec::with_capacity(want);
        if self.points.is_empty() {
            return out;
        }
        let h = stable_hash(key);
        let start = self.points.partition_point(|(p, _)| *p < h);
        for i in 0..self.points.len() {
            let peer = self.points[(start + i) % self.points.len()].1;
            if !out.contains(&peer) {
                out.push(peer);
                if out.len() == want {
                    break;
                }
            }
        }
        out
    }

    /// Whether `peer` is one of the key's replicas.
    pub fn holds(&self, peer: PeerId, key: &[u8]) -> bool {
        self.is_full() && self.spec.peers.contains(&peer) || self.replicas(key).contains(&peer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ring(peers: u16, r: u32) -> Ring {
        Ring::new(&RingSpec {
            peers: (0..peers).collect(),
            vnodes: 128,
            replication: r,
        })
    }

    #[test]
    fn the_hash_is_fixed_across_builds() {
        // Pinned values: a change here would split a cluster of mixed builds.
        assert_eq!(stable_hash(b""), fmix64(0xcbf2_9ce4_8422_2325));
        assert_eq!(stable_hash(b"key-1"), stable_hash(b"key-1"));
        assert_ne!(stable_hash(b"key-1"), stable_hash(b"key-2"));
        let r = ring(4, 3);
        assert_eq!(r.replicas(b"key-1"), ring(4, 3).replicas(b"key-1"));
    }

    #[test]
    fn full_replication_holds_everything() {
        let r = ring(3, 3);
        assert!(r.is_full());
        let mut got = r.replicas(b"x");
        got.sort();
        assert_eq!(got, vec![0, 1, 2]);
        assert!(r.holds(2, b"anything"));
        // A factor above the peer count is full replication too.
        assert_eq!(ring(3, 7).replication(), 3);
    }

    #[test]
    fn keys_spread_evenly_enough() {
        let r = ring(5, 3);
        let mut primary = [0usize; 5];
        let mut held = [0usize; 5];
        for i in 0..20_000 {
            let key = format!("key:{i}");
            let reps = r.replicas(key.as_bytes());
            primary[reps[0] as usize] += 1;
            for p in reps {
                held[p as usize] += 1;
            }
        }
        for p in 0..5 {
            // Ideal: 4000 primaries and 12000 copies per peer; 128 vnodes keep it within ~20%.
            assert!((3000..5000).contains(&primary[p]), "{primary:?}");
            assert!((10_000..14_000).contains(&held[p]), "{held:?}");
        }
    }

    #[test]
    fn a_fifth_peer_moves_about_a_fifth_of_the_keys() {
        let four = ring(4, 3);
        let five = ring(5, 3);
        let n = 20_000;
        let mut moved_keys = 0;
        let mut moved_copies = 0;
        let mut moved_primaries = 0;
        for i in 0..n {
            let key = format!("key:{i}");
            let before = four.replicas(key.as_bytes());
            let after = five.replicas(key.as_bytes());
            let new: Vec<_> = after.iter().filter(|p| !before.contains(p)).collect();
            if !new.is_empty() {
                moved_keys += 1;
            }
            moved_copies += new.len();
            if before[0] != after[0] {
                moved_primaries += 1;
            }
            // Only the new peer gains copies: nothing moves between the old peers.
            assert!(
                new.iter().all(|&&p| p == 4),
                "{key}: {before:?} -> {after:?}"
            );
        }
        // Each key gains at most one copy (on the new peer); the new peer ends up holding
        // R/N = 3/5 of the keys, i.e. 1/5 of all copies move.
        let copies = n * 3;
        let share = moved_copies as f64 / copies as f64;
        eprintln!(
            "4 -> 5 peers, R = 3, {n} keys: {moved_copies} of {copies} copies moved ({share:.4}); \
             {moved_keys} keys gained a copy on the new peer, {moved_primaries} changed primary"
        );
        let primaries = moved_primaries as f64 / n as f64;
        assert!(
            (0.16..0.24).contains(&primaries),
            "primaries moved: {primaries}"
        );
        assert!((0.16..0.24).contains(&share), "copies moved: {share}");
        assert_eq!(moved_keys, moved_copies);
    }

    proptest! {
        #[test]
        fn every_key_gets_r_distinct_peers(
            key in proptest::collection::vec(any::<u8>(), 0..64),
            peers in 3u16..9,
            r in 1u32..9,
        ) {
            let ring = ring(peers, r);
            let reps = ring.replicas(&key);
            let want = (r as usize).min(peers as usize);
            prop_assert_eq!(reps.len(), want);
            let mut dedup = reps.clone();
            dedup.sort();
            dedup.dedup();
            prop_assert_eq!(dedup.len(), want);
            prop_assert!(reps.iter().all(|p| *p < peers));
            for p in 0..peers {
                prop_assert_eq!(ring.holds(p, &key), reps.contains(&p));
            }
        }
    }
}
