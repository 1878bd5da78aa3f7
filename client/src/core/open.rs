//! Opening: a response decrypted against the prepared hint, rescaled and ranked on the
//! device. `score_block = body_out - H_block * s`; the f64 FFT serves here, as its error
//! in one product is not multiplied by anything (the noise budget counts it).

use std::collections::HashSet;

use serde::Serialize;
use zeroize::Zeroizing;

use blindscore_common::encoding::{round_signed, word_to_torus};
use blindscore_common::fourier::{c64, NegacyclicFft};
use blindscore_common::wire::{self, ResponseView, HEADER_ALLOWANCE};
use blindscore_common::{bitpack, ProtocolError};

use super::catalog::PreparedCatalog;
use super::rank::top_k;
use super::seal::PendingQuery;
use crate::error::ClientError;

/// One ranked item.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RankedItem {
    /// The item's id.
    pub id: String,
    /// Its score in the catalog's metric (e.g. cosine similarity), from the exact integer
    /// score and the scales.
    pub score: f64,
}

impl PendingQuery {
    /// Decrypt a response, rescale, leave out excluded ids (on the device, so the server
    /// never learns them), and take the top `k`, best first. The key is zeroised when
    /// this returns.
    pub fn open(
        self,
        prepared: &PreparedCatalog,
        response: &[u8],
        k: usize,
        exclude: &HashSet<String>,
    ) -> Result<Vec<RankedItem>, ClientError> {
        let query_scale = self.query_scale;
        let scores = self.decrypt(prepared, response)?;
        let scaled: Vec<f64> = scores
            .iter()
            .zip(&prepared.scales)
            .zip(&prepared.ids)
            .map(|((&s, &scale), id)| {
                if exclude.contains(id) {
                    f64::NAN
                } else {
                    s as f64 * query_scale * scale as f64
                }
            })
            .collect();
        Ok(top_k(&scaled, k)
            .into_iter()
            .filter(|(_, s)| !s.is_nan())
            .map(|(i, score)| RankedItem {
                id: prepared.ids[i].clone(),
                score,
            })
            .collect())
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

    /// Decrypt and also return each score's noise, in units of the 2^64 torus (the noise
    /// tests' hook: an app must never see, let alone send, the noise, which is linear in
    /// the key).
    #[cfg(test)]
    pub(crate) fn decrypt_with_noise(
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
        let limit = (shape.response_payload_bytes() + HEADER_ALLOWANCE) as u64;
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
