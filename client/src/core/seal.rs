//! Sealing: a preference vector quantized and encrypted under a key drawn fresh for this
//! one query.
//!
//! A body is `b_g = a_g * s + e_g + Delta * u_g mod 2^64`, equal bit for bit to what tfhe's
//! `encrypt_seeded_glwe_ciphertext_list` gives for the same key, masks and noise. The
//! product `a_g * s` is computed exactly through the FFT on 22-bit limbs of a_g (their
//! transforms are prepared once per catalog), so each ciphertext costs three inverse
//! transforms. The body is then cut at both ends to the budget's query width.

use zeroize::Zeroizing;

use blindscore_common::encoding::{encode_message, to_word};
use blindscore_common::fourier::{c64, NegacyclicFft};
use blindscore_common::quant::quantize;
use blindscore_common::wire::{self, CatalogRef, WIRE_VERSION};
use blindscore_common::{bitpack, QueryMessage};

use super::catalog::{PreparedCatalog, LIMBS, LIMB_BITS};
use super::key::SecretKey;
use super::noise::NoiseSource;
use crate::error::ClientError;

/// A query that was sent and awaits its response. It owns the transform of the query's
/// key (the key itself is zeroised once the bodies are computed), which opening the
/// response consumes; dropping it zeroises that too. It cannot be cloned.
pub struct PendingQuery {
    /// Transform of the key (as interleaved re/im f64, so it can be zeroised).
    pub(super) key_fourier: Zeroizing<Vec<f64>>,
    pub(super) catalog: CatalogRef,
    /// The quantization scale of the query (1 for a query sealed from integers).
    pub(super) query_scale: f64,
}

impl std::fmt::Debug for PendingQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingQuery")
            .field("catalog", &self.catalog)
            .finish_non_exhaustive()
    }
}

/// An encrypted query: the bytes to send and the state to open its response with.
#[derive(Debug)]
pub struct SealedQuery {
    /// The encoded query message, ciphertext bodies only.
    pub bytes: Vec<u8>,
    /// Keep this to open the response.
    pub pending: PendingQuery,
}

impl PendingQuery {
    /// The catalog version the query was sealed for.
    pub fn catalog(&self) -> &CatalogRef {
        &self.catalog
    }
}

impl PreparedCatalog {
    /// Check a float preference vector against the declared space (see
    /// [`PreparedCatalog::check_vector`]), fold in the dimension scales, quantize it and
    /// encrypt it under a fresh key from the OS's CSPRNG.
    pub fn seal(
        &self,
        preferences: &[f32],
        model: Option<&str>,
    ) -> Result<SealedQuery, ClientError> {
        self.check_vector(preferences, model)?;
        // The preferences in the clear are wiped as soon as they are encrypted.
        let folded = Zeroizing::new(match &self.dimension_scales {
            Some(t) => preferences.iter().zip(t).map(|(u, t)| u * t).collect(),
            None => preferences.to_vec(),
        });
        let q = quantize(&folded, self.shape.query_bits);
        let values = Zeroizing::new(q.values);
        let mut sealed = self.seal_quantized(&values)?;
        sealed.pending.query_scale = q.scale;
        Ok(sealed)
    }

    /// Encrypt quantized query values (|v| within the catalog's query width) under a
    /// fresh key from the OS's CSPRNG, with noise from a ChaCha20 stream seeded by the OS
    /// for this query (see the `noise` module). Opened, the response gives the exact
    /// integer dot products with the catalog's rows.
    pub fn seal_quantized(&self, query: &[i32]) -> Result<SealedQuery, ClientError> {
        self.check_query(query)?;
        let key = SecretKey::generate(self.shape.geometry.n)?;
        let mut noise = NoiseSource::fresh(self.shape.params.noise_bound_log2)?;
        Ok(self.seal_with(key, |out| noise.fill(out), query))
    }

    /// Seal with a given key and noise (the known-answer tests' hook; not in any build of
    /// the published crate).
    #[cfg(test)]
    pub(crate) fn seal_with_key(
        &self,
        key: SecretKey,
        noise: impl FnOnce(&mut [u64]),
        query: &[i32],
    ) -> Result<(Vec<u64>, SealedQuery), ClientError> {
        self.check_query(query)?;
        let key_fourier = self.key_transform(&key);
        let bodies = self.bodies(&key_fourier, noise, query);
        let sealed = self.finish(key, key_fourier, &bodies);
        Ok((bodies.to_vec(), sealed))
    }

    fn seal_with(
        &self,
        key: SecretKey,
        noise: impl FnOnce(&mut [u64]),
        query: &[i32],
    ) -> SealedQuery {
        let key_fourier = self.key_transform(&key);
        let bodies = self.bodies(&key_fourier, noise, query);
        self.finish(key, key_fourier, &bodies)
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

    fn key_transform(&self, key: &SecretKey) -> Zeroizing<Vec<f64>> {
        let n = self.shape.geometry.n;
        let mut fft = NegacyclicFft::new(n);
        let mut out = Zeroizing::new(vec![0.0f64; n]);
        fft.forward_integer(bytemuck::cast_slice_mut(out.as_mut_slice()), key.bits());
        fft.wipe_scratch();
        out
    }

    /// Full 64-bit bodies a_g * s + e_g + Delta * m_g, the noise filled in by `noise`.
    fn bodies(
        &self,
        key_fourier: &[f64],
        noise: impl FnOnce(&mut [u64]),
        query: &[i32],
    ) -> Zeroizing<Vec<u64>> {
        let g = self.shape.geometry;
        let n = g.n;
        let half = n / 2;
        let s: &[c64] = bytemuck::cast_slice(key_fourier);
        let mut bodies = Zeroizing::new(vec![0u64; g.groups() * n]);
        // The noise is drawn in tfhe's order: body after body, coefficient after
        // coefficient.
        noise(&mut bodies);
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
    ) -> SealedQuery {
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
        SealedQuery {
            bytes,
            pending: PendingQuery {
                key_fourier,
                catalog: self.catalog.clone(),
                query_scale: 1.0,
            },
        }
    }
}
