//! What a run sends: the keys, the value, the get/set mix and how keys are picked.

use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution as _, Zipf};

/// Longest key memcached accepts.
const MAX_KEY_SIZE: usize = 250;
/// Largest value the generator sends (memcached's default item size limit).
pub const MAX_VALUE_SIZE: usize = 1024 * 1024;

/// How keys are picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Distribution {
    /// Every key equally likely.
    Uniform,
    /// A few keys are hot: key `i` (from 0) is picked with weight `1 / (i + 1)^s`.
    Zipfian,
}

impl Distribution {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Distribution::Uniform => "uniform",
            Distribution::Zipfian => "zipfian",
        }
    }
}

/// The shared, read-only description of a workload.
#[derive(Debug)]
pub struct Workload {
    keys: Vec<Bytes>,
    value: Bytes,
    /// Fraction of gets.
    pub get_ratio: f64,
    /// Key popularity.
    pub distribution: Distribution,
    /// Zipf exponent `s` (zipfian only).
    pub zipf_exponent: f64,
}

/// One operation of the mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `get <key>`.
    Get,
    /// `set <key> 0 0 <len>`.
    Set,
}

impl Workload {
    /// Builds `keys` keys of `key_size` bytes (`k000…0042`) and one value of `value_size` bytes.
    pub fn new(
        keys: u64,
        key_size: usize,
        value_size: usize,
        get_ratio: f64,
        distribution: Distribution,
        zipf_exponent: f64,
    ) -> Result<Workload, String> {
        let digits = (keys.max(1) - 1).to_string().len();
        if key_size > MAX_KEY_SIZE || key_size < digits + 1 {
            return Err(format!(
                "--key-size must be {}..={MAX_KEY_SIZE} for {keys} keys",
                digits + 1
            ));
        }
        if value_size > MAX_VALUE_SIZE {
            return Err(format!("--value-size must be at most {MAX_VALUE_SIZE}"));
        }
        if distribution == Distribution::Zipfian
            && !(zipf_exponent.is_finite() && zipf_exponent > 0.0)
        {
            return Err("--zipf-exponent must be > 0".into());
        }
        let width = key_size - 1;
        let keys = (0..keys)
            .map(|i| Bytes::from(format!("k{i:0width$}")))
            .collect();
        let value: Vec<u8> = (0..value_size).map(|i| b'a' + (i % 26) as u8).collect();
        Ok(Workload {
            keys,
            value: Bytes::from(value),
            get_ratio,
            distribution,
            zipf_exponent,
        })
    }

    /// Number of keys.
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// Key number `index`.
    pub fn key(&self, index: usize) -> Bytes {
        self.keys[index].clone()
    }

    /// The value every set sends.
    pub fn value(&self) -> Bytes {
        self.value.clone()
    }

    /// Length of the value every set sends.
    pub fn value_size(&self) -> usize {
        self.value.len()
    }

    /// Length of each key.
    pub fn key_size(&self) -> usize {
        self.keys.first().map_or(0, Bytes::len)
    }
}

/// One connection's seeded sequence of operations and keys.
#[derive(Debug)]
pub struct Chooser {
    rng: SmallRng,
    zipf: Option<Zipf<f64>>,
    keys: usize,
    get_ratio: f64,
}

impl Chooser {
    /// The chooser of connection `connection` for run seed `seed`.
    pub fn new(workload: &Workload, seed: u64, connection: usize) -> Chooser {
        let keys = workload.key_count();
        let zipf = match workload.distribution {
            Distribution::Uniform => None,
            // Checked in `Workload::new`: n ≥ 1 and s > 0, so this cannot fail.
            Distribution::Zipfian => Zipf::new(keys as f64, workload.zipf_exponent).ok(),
        };
        let stream = (connection as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        Chooser {
            rng: SmallRng::seed_from_u64(seed ^ stream),
            zipf,
            keys,
            get_ratio: workload.get_ratio,
        }
    }

    /// The next operation of the mix.
    pub fn op(&mut self) -> Op {
        if self.get_ratio >= 1.0 || self.rng.random::<f64>() < self.get_ratio {
            Op::Get
        } else {
            Op::Set
        }
    }

    /// The next key's index.
    pub fn key(&mut self) -> usize {
        match &self.zipf {
            // Zipf samples ranks 1..=n; rank 1 is the hottest key, index 0.
            Some(zipf) => (zipf.sample(&mut self.rng) as usize)
                .saturating_sub(1)
                .min(self.keys - 1),
            None => self.rng.random_range(0..self.keys),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_the_asked_size_and_are_distinct() {
        let w = Workload::new(1000, 16, 10, 0.9, Distribution::Uniform, 0.99).unwrap();
        assert_eq!(w.key(0), Bytes::from_static(b"k000000000000000"));
        assert_eq!(w.key(999).len(), 16);
        assert_ne!(w.key(1), w.key(2));
        assert_eq!(w.value_size(), 10);
    }

    #[test]
    fn too_short_keys_are_refused() {
        assert!(Workload::new(1000, 3, 10, 0.9, Distribution::Uniform, 0.99).is_err());
        assert!(Workload::new(1000, 4, 10, 0.9, Distribution::Uniform, 0.99).is_ok());
    }

    #[test]
    fn choices_are_seeded_and_in_range() {
        let w = Workload::new(100, 8, 1, 0.5, Distribution::Zipfian, 0.99).unwrap();
        let run = |seed| {
            let mut c = Chooser::new(&w, seed, 3);
            (0..1000).map(|_| (c.op(), c.key())).collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert!(run(7).iter().all(|&(_, k)| k < 100));
        let hot = run(7).iter().filter(|&&(_, k)| k == 0).count();
        assert!(hot > 50, "zipfian key 0 should be hot, got {hot}");
    }
}
