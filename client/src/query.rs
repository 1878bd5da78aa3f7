//! Encryption of a query under a fresh key, and decryption of its response.
//!
//! A body is `b_g = a_g * s + e_g + Delta * u_g mod 2^64`, equal bit for bit to what tfhe's
//! `encrypt_seeded_glwe_ciphertext_list` gives for the same key, masks and noise. The
//! product `a_g * s` is computed exactly through the FFT on 22-bit limbs of a_g (their
//! transforms are cached per catalog), so each ciphertext costs three inverse transforms.
//! The body is then cut at both ends to the budget's query width.

use tfhe::core_crypto::commons::math::random::{RandomGenerator, Seed};
use tfhe::core_crypto::prelude::DefaultRandomGenerator;
use zeroize::Zeroizing;

use blindscore_common::encoding::{encode_message, round_signed, to_word, word_to_torus};
use blindscore_common::fourier::{c64, NegacyclicFft};
use blindscore_common::wire::{self, CatalogRef, ResponseView, WIRE_VERSION};
use blindscore_common::{bitpack, ProtocolError, QueryMessage};

use crate::error::ClientError;
use crate::key::SecretKey;
use crate::prepared::{PreparedCatalog, HEADER_ALLOWANCE, LIMBS, LIMB_BITS};

/// A query that was sent and awaits its response. It owns the transform of the query's
/// key (the key itself is zeroised once the bodies are computed), which
/// [`PendingQuery::decrypt`] consumes; dropping it zeroises that too.
pub struct PendingQuery {
    /// Transform of the key (as interleaved re/im f64, so it can be zeroised).
    key_fourier: Zeroizing<Vec<f64>>,
    catalog: CatalogRef,
}

impl std::fmt::Debug for PendingQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingQuery")
            .field("catalog", &self.catalog)
            .finish_non_exhaustive()
    }
}

/// An encrypted query, ready to send, and the state to decrypt its response.
pub struct EncryptedQuery {
    /// The encoded [`QueryMessage`].
    pub bytes: Vec<u8>,
    /// Keep this to decrypt the response.
    pub pending: PendingQuery,
}

impl PreparedCatalog {
    /// Encrypt quantized query values under a fresh key from the OS's CSPRNG, with noise
    /// from tfhe's CSPRNG seeded by the OS.
    pub fn encrypt(&self, query: &[i32]) -> Result<EncryptedQuery, ClientError> {
        self.check_query(query)?;
        let key = SecretKey::generate(self.shape.geometry.n)?;
        let mut seed = Zeroizing::new([0u8; 16]);
        getrandom::getrandom(seed.as_mut()).map_err(|e| ClientError::Randomness(e.to_string()))?;
        let mut noise =
            RandomGenerator::<DefaultRandomGenerator>::new(Seed(u128::from_le_bytes(*seed)));
        Ok(self.encrypt_with(key, &mut noise, query))
    }

    /// Encrypt with a given key and noise seed: for known-answer tests only.
    #[cfg(feature = "test-vectors")]
    pub fn encrypt_with_key(
        &self,
        key: SecretKey,
        noise_seed: u128,
        query: &[i32],
    ) -> Result<(Vec<u64>, EncryptedQuery), ClientError> {
        self.check_query(query)?;
        let mut noise = RandomGenerator::<DefaultRandomGenerator>::new(Seed(noise_seed));
        let key_fourier = self.key_transform(&key);
        let bodies = self.bodies(&key, &key_fourier, &mut noise, query);
        let encrypted = self.finish(key, key_fourier, &bodies);
        Ok((bodies.to_vec(), encrypted))
    }

    fn check_query(&self, query: &[i32]) -> Result<(), ClientError> {
        let d = self.shape.geometry.dimension;
        if query.len() != d {
            return Err(ClientError::WrongDimension {
                found: query.len(),
                expected: d,
            });
        }
        let max = self.shape.query_max_abs();
        if let Some((index, &value)) = query
            .iter()
            .enumerate()
            .find(|(_, v)| v.unsigned_abs() > max)
        {
            return Err(ClientError::QueryValueOutOfRange { index, value, max });
        }
        Ok(())
    }

    fn encrypt_with(
        &self,
        key: SecretKey,
        noise: &mut RandomGenerator<DefaultRandomGenerator>,
        query: &[i32],
    ) -> EncryptedQuery {
        let key_fourier = self.key_transform(&key);
        let bodies = self.bodies(&key, &key_fourier, noise, query);
        self.finish(key, key_fourier, &bodies)
    }

    fn key_transform(&self, key: &SecretKey) -> Zeroizing<Vec<f64>> {
        let n = self.shape.geometry.n;
        let mut fft = NegacyclicFft::new(n);
        let mut out = Zeroizing::new(vec![0.0f64; n]);
        fft.forward_integer(bytemuck::cast_slice_mut(out.as_mut_slice()), key.bits());
        fft.wipe_scratch();
        out
    }

    /// Full 64-bit bodies a_g * s + e_g + Delta * m_g.
    fn bodies(
        &self,
        key: &SecretKey,
        key_fourier: &[f64],
        noise: &mut RandomGenerator<DefaultRandomGenerator>,
        query: &[i32],
    ) -> Zeroizing<Vec<u64>> {
        let g = self.shape.geometry;
        let n = g.n;
        let half = n / 2;
        let s: &[c64] = bytemuck::cast_slice(key_fourier);
        debug_assert_eq!(key.len(), n);
        let mut bodies = Zeroizing::new(vec![0u64; g.groups() * n]);
        // The noise stream is drawn in tfhe's order: body after body, coefficient after
        // coefficient.
        noise.fill_slice_with_random_from_distribution(
            &mut bodies,
            self.shape.params.noise_distribution(),
        );
        let mut fft = NegacyclicFft::new(n);
        let mut product = Zeroizing::new(vec![0.0f64; n]);
        let mut limb_product = Zeroizing::new(vec![0u64; n]);
        let delta_log2 = self.shape.budget.delta_log2;
        for (gi, body) in bodies.chunks_exact_mut(n).enumerate() {
            // Coordinates g*b .. g*b+b-1 go to coefficients 0..b-1 (fewer in the last group).
            let coords = query.iter().skip(gi * g.b).take(g.b);
            for (coefficient, &u) in body.iter_mut().zip(coords) {
                *coefficient = coefficient.wrapping_add(encode_message(u as i64, delta_log2));
            }
            let limbs = &self.mask_limbs[gi * LIMBS * half..(gi + 1) * LIMBS * half];
            for (l, a) in limbs.chunks_exact(half).enumerate() {
                let p: &mut [c64] = bytemuck::cast_slice_mut(product.as_mut_slice());
                for ((p, a), s) in p.iter_mut().zip(a).zip(s) {
                    *p = a * s;
                }
                fft.backward_torus(&mut limb_product, p);
                let shift = LIMB_BITS * l as u32;
                for (b, x) in body.iter_mut().zip(limb_product.iter()) {
                    *b = b.wrapping_add(x.wrapping_shl(shift));
                }
            }
        }
        fft.wipe_scratch();
        bodies
    }

    fn finish(
        &self,
        key: SecretKey,
        key_fourier: Zeroizing<Vec<f64>>,
        bodies: &[u64],
    ) -> EncryptedQuery {
        let b = &self.shape.budget;
        let words: Vec<u64> = bodies
            .iter()
            .map(|&x| to_word(x, b.query_low, b.modulus_log2))
            .collect();
        let bytes = wire::encode(&QueryMessage {
            wire_version: WIRE_VERSION,
            catalog: self.catalog.clone(),
            bodies: bitpack::pack(&words, b.query_bits()),
        });
        drop(key);
        EncryptedQuery {
            bytes,
            pending: PendingQuery {
                key_fourier,
                catalog: self.catalog.clone(),
            },
        }
    }
}

impl PendingQuery {
    /// The catalog version the query was encrypted for.
    pub fn catalog(&self) -> &CatalogRef {
        &self.catalog
    }

    /// Decrypt a response into exact integer scores, one per item, in catalog order. The
    /// key is zeroised when this returns.
    pub fn decrypt(
        self,
        prepared: &PreparedCatalog,
        response: &[u8],
    ) -> Result<Vec<i64>, ClientError> {
        let mut scores = Vec::new();
        self.decrypt_into(prepared, response, &mut scores)?;
        Ok(scores)
    }

    /// [`PendingQuery::decrypt`] into a buffer the caller keeps from query to query (it is
    /// cleared first), which spares a large allocation per query.
    pub fn decrypt_into(
        self,
        prepared: &PreparedCatalog,
        response: &[u8],
        scores: &mut Vec<i64>,
    ) -> Result<(), ClientError> {
        self.decrypt_raw(prepared, response, scores, None)
    }

    /// Decrypt and also return each score's noise, in units of the 2^64 torus: for the
    /// budget's tests only.
    #[cfg(feature = "test-vectors")]
    pub fn decrypt_with_noise(
        self,
        prepared: &PreparedCatalog,
        response: &[u8],
    ) -> Result<(Vec<i64>, Vec<f64>), ClientError> {
        let (mut scores, mut noise) = (Vec::new(), Vec::new());
        self.decrypt_raw(prepared, response, &mut scores, Some(&mut noise))?;
        Ok((scores, noise))
    }

    fn decrypt_raw(
        self,
        prepared: &PreparedCatalog,
        response: &[u8],
        scores: &mut Vec<i64>,
        mut noise: Option<&mut Vec<f64>>,
    ) -> Result<(), ClientError> {
        self.catalog.expect(&prepared.catalog)?;
        let shape = &prepared.shape;
        let g = shape.geometry;
        let b = &shape.budget;
        let limit = shape.response_payload_bytes() as u64 + HEADER_ALLOWANCE;
        let message: ResponseView<'_> = wire::decode_view(response, limit)?;
        message.check(&prepared.catalog, shape)?;
        let width = b.response_bits();
        let n = g.n;
        let half = n / 2;
        let s: &[c64] = bytemuck::cast_slice(self.key_fourier.as_slice());
        let mut fft = NegacyclicFft::new(n);
        let mut product = Zeroizing::new(vec![0.0f64; n]);
        let mut hint_times_key = Zeroizing::new(vec![0u64; n]);
        let score_shift = 64 - (b.modulus_log2 - b.delta_log2);
        let unit = 2f64.powi(64 - b.modulus_log2 as i32);
        scores.clear();
        scores.reserve(g.items);
        let (mut block, mut t) = (0usize, 0usize);
        // Every block is full but the last, whose words simply run out.
        let per_block = g.items_per_block();
        // Words arrive in item order; a block's hint times key is computed when its first
        // word arrives.
        bitpack::unpack_with(message.scores, width, g.items, "scores", |word| {
            if t == 0 {
                let p: &mut [c64] = bytemuck::cast_slice_mut(product.as_mut_slice());
                let h = &prepared.hint[block * half..(block + 1) * half];
                for ((p, h), s) in p.iter_mut().zip(h).zip(s) {
                    *p = h * s;
                }
                fft.backward_torus(&mut hint_times_key, p);
            }
            let diff =
                word_to_torus(word, width).wrapping_sub(hint_times_key[g.score_coefficient(t)]);
            let score = round_signed(diff, score_shift);
            scores.push(score);
            if let Some(noise) = noise.as_mut() {
                let exact = (score as u64).wrapping_shl(score_shift);
                noise.push(diff.wrapping_sub(exact) as i64 as f64 / unit);
            }
            t += 1;
            if t == per_block {
                block += 1;
                t = 0;
            }
        })?;
        fft.wipe_scratch();
        if scores.len() != g.items {
            return Err(ProtocolError::WrongLength {
                what: "scores",
                found: scores.len(),
                expected: g.items,
            }
            .into());
        }
        Ok(())
    }
}
