//! The encryption noise: TUniform(B), sampled exactly as tfhe samples it, from a ChaCha20
//! stream that this crate owns and wipes.
//!
//! Knowing the noise of a query, with its public masks and bodies, gives linear equations
//! in the key, so the generator's state and every byte it produced are as secret as the
//! key. tfhe's own generator keeps an AES key schedule and an output buffer it never wipes
//! (and runs in software, slowly, where AES has no hardware support, as in WebAssembly).
//! Here the generator is ChaCha20 (`chacha20`, whose state and output buffer are zeroised
//! on drop), seeded per query from the OS's CSPRNG; the bytes drawn from it are held in a
//! zeroised buffer until they are turned into noise.

use chacha20::rand_core::{Rng, SeedableRng};
use chacha20::ChaCha20Rng;
use zeroize::Zeroizing;

use crate::error::ClientError;

/// A noise generator for one query.
pub(super) struct NoiseSource {
    rng: Box<ChaCha20Rng>,
    bound_log2: u32,
}

impl NoiseSource {
    /// A generator seeded from the OS's CSPRNG, for TUniform(`bound_log2`).
    pub(super) fn fresh(bound_log2: u32) -> Result<Self, ClientError> {
        let mut seed = Zeroizing::new([0u8; 32]);
        getrandom::getrandom(seed.as_mut()).map_err(ClientError::Randomness)?;
        Ok(Self::from_seed(&seed, bound_log2))
    }

    /// A generator with a given seed (the tests' known answers).
    pub(super) fn from_seed(seed: &[u8; 32], bound_log2: u32) -> Self {
        NoiseSource {
            rng: Box::new(ChaCha20Rng::from_seed(*seed)),
            bound_log2,
        }
    }

    /// Fill `out` with TUniform samples (two's complement mod 2^64), one after another from
    /// the stream, each from the next `bytes_per_sample(bound_log2)` bytes.
    pub(super) fn fill(&mut self, out: &mut [u64]) {
        let per = bytes_per_sample(self.bound_log2);
        let mut bytes = Zeroizing::new(vec![0u8; out.len() * per]);
        self.rng.fill_bytes(&mut bytes);
        for (o, chunk) in out.iter_mut().zip(bytes.chunks_exact(per)) {
            *o = t_uniform(chunk, self.bound_log2);
        }
    }
}

/// Bytes of randomness one TUniform(b) sample takes: b + 2 bits, rounded up to bytes.
pub(super) fn bytes_per_sample(bound_log2: u32) -> usize {
    (bound_log2 + 2).div_ceil(8) as usize
}

/// One TUniform(b) sample from its random bytes (little-endian), as tfhe computes it: keep
/// b + 2 bits r, and return (r >> 1) + (r & 1) - 2^b. Every value of [-2^b, 2^b] has
/// probability 2^-(b+1), the two end points 2^-(b+2).
pub(super) fn t_uniform(bytes: &[u8], bound_log2: u32) -> u64 {
    let mut word = [0u8; 8];
    word[..bytes.len()].copy_from_slice(bytes);
    let r = u64::from_le_bytes(word) & (u64::MAX >> (64 - (bound_log2 + 2)));
    ((r >> 1) + (r & 1)).wrapping_sub(1 << bound_log2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tfhe::core_crypto::commons::math::random::{RandomGenerator, Seed, TUniform};
    use tfhe::core_crypto::prelude::DefaultRandomGenerator;

    #[test]
    fn the_sampler_equals_tfhes_on_the_same_bytes() {
        // Two tfhe generators with one seed give one byte stream: tfhe samples TUniform(17)
        // from the first, this module from the raw bytes of the second.
        for seed in [0u128, 1, 0x1234_5678_9abc_def0] {
            let mut theirs = RandomGenerator::<DefaultRandomGenerator>::new(Seed(seed));
            let mut expected = vec![0u64; 4096];
            theirs.fill_slice_with_random_from_distribution(&mut expected, TUniform::new(17));
            let mut raw = RandomGenerator::<DefaultRandomGenerator>::new(Seed(seed));
            let bytes: Vec<u8> = (0..expected.len() * 3)
                .map(|_| raw.generate_next())
                .collect();
            let ours: Vec<u64> = bytes.chunks_exact(3).map(|c| t_uniform(c, 17)).collect();
            assert_eq!(ours, expected, "seed {seed}");
        }
    }

    #[test]
    fn every_value_and_both_end_points_have_their_weight() {
        // All 2^19 inputs: each inner value twice, each end point once.
        let b = 17;
        let mut counts = std::collections::HashMap::new();
        for r in 0u32..1 << (b + 2) {
            *counts
                .entry(t_uniform(&r.to_le_bytes()[..3], b) as i64)
                .or_insert(0u32) += 1;
        }
        assert_eq!(counts.len(), (1 << (b + 1)) + 1);
        assert_eq!(counts[&-(1 << b)], 1);
        assert_eq!(counts[&(1 << b)], 1);
        assert!(counts
            .iter()
            .filter(|(v, _)| v.abs() < 1 << b)
            .all(|(_, &c)| c == 2));
    }

    #[test]
    fn a_seeded_source_is_a_stream_and_fresh_ones_differ() {
        let mut a = NoiseSource::from_seed(&[9; 32], 17);
        let mut b = NoiseSource::from_seed(&[9; 32], 17);
        let mut x = vec![0u64; 1000];
        let mut y = vec![0u64; 600];
        let mut z = vec![0u64; 400];
        a.fill(&mut x);
        b.fill(&mut y);
        b.fill(&mut z);
        assert_eq!(&x[..600], &y[..]);
        assert_eq!(&x[600..], &z[..]);
        assert!(x.iter().all(|&v| (v as i64).unsigned_abs() <= 1 << 17));
        let mut f = NoiseSource::fresh(17).unwrap();
        let mut g = NoiseSource::fresh(17).unwrap();
        let (mut u, mut v) = (vec![0u64; 64], vec![0u64; 64]);
        f.fill(&mut u);
        g.fill(&mut v);
        assert_ne!(u, v);
    }
}
