//! The noise budget: one function that owns Delta, the value widths and the bits of every
//! wire word, for a stated failure probability per query.
//!
//! A decrypted output coefficient is `Delta * score + Z` (mod 2^hi), and the score is
//! right whenever |Z| < Delta / 2. Z is the sum of
//!
//! * fresh noise: `sum_g e_g * P_g`, e TUniform(17) (variance sigma_0^2 ~ 2^32.4), so
//!   variance `sigma_0^2 * ||block||_F^2`;
//! * the query's rounding: the low `query_low` bits of every body are dropped, a uniform
//!   error that enters exactly like fresh noise;
//! * the hint's rounding times the key, `r_H * s`, split into a **fixed** part
//!   `r_H * (1/2)` (the same for every user, bounded per coefficient by `N 2^(lh-2)`) and
//!   a zero-mean random part `r_H * (s - 1/2)` with terms bounded by `2^(lh-2)`;
//! * the response's rounding, at most `2^(lr-1)`;
//! * the f64 FFT error of the server's product and of the client's hint product, bounded
//!   deterministically with a wide margin: the transforms' rounding (growing with log N) and
//!   the summation of the G = d / b products of a block in the Fourier domain (growing with
//!   sqrt(G)); a test measures the real error at the largest G against this bound.
//!
//! The random terms are independent, zero-mean and bounded, so Bernstein's inequality
//! bounds `P(|Z_random| > t)` by `2 exp(-t^2 / (2 (V + M t / 3)))` with V their variance and
//! M the largest single term; a union bound over the M items gives the per-query figure.
//! High bits are cut too: everything is computed mod 2^hi with
//! `hi = log2 Delta + score bits`, which is a ring homomorphism because key and catalog are
//! integers.

use crate::error::ProtocolError;
use crate::layout::Geometry;
use crate::params::GlweParams;

/// Failure probability per query the service is built for: 2^-40.
pub const DEFAULT_FAILURE_LOG2: i32 = -40;

/// What the budget needs to know about a catalog.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BudgetInput<'a> {
    /// The GLWE parameters.
    pub params: &'a GlweParams,
    /// Sizes and layout.
    pub geometry: Geometry,
    /// Largest |catalog value| allowed by the catalog width.
    pub catalog_max_abs: u32,
    /// Largest |query value| allowed by the query width.
    pub query_max_abs: u32,
    /// Largest squared Frobenius norm of any block's catalog polynomials. At most
    /// `items_per_block * d * catalog_max_abs^2` (the worst case).
    pub block_norm_sq: u64,
    /// Target failure probability per query, log2 (e.g. -40).
    pub failure_log2: i32,
}

impl BudgetInput<'_> {
    /// The worst-case block norm for these widths: every value at its bound, full blocks.
    pub fn worst_case_norm_sq(geometry: &Geometry, catalog_max_abs: u32) -> u64 {
        let per_block = geometry.items_per_block().min(geometry.items) as u64;
        per_block * geometry.dimension as u64 * (catalog_max_abs as u64).pow(2)
    }
}

/// Largest |value| of a signed width: a `bits`-bit value lies in
/// \[-(2^(bits-1) - 1), 2^(bits-1) - 1\] (symmetric, so negation never overflows).
pub fn max_abs_for_bits(bits: u32) -> u32 {
    (1u32 << (bits - 1)) - 1
}

/// Every choice the budget makes. Bit positions refer to the 64-bit torus word: a wire
/// word holds bits `low..hi` of the value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NoiseBudget {
    /// Delta = 2^delta_log2.
    pub delta_log2: u32,
    /// Everything is computed mod 2^hi.
    pub modulus_log2: u32,
    /// Low bits dropped from each query body coefficient.
    pub query_low: u32,
    /// Low bits dropped from each hint coefficient.
    pub hint_low: u32,
    /// Low bits dropped from each response coefficient.
    pub response_low: u32,
    /// Largest |score|: d * catalog_max_abs * query_max_abs.
    pub score_max: u64,
    /// Bound on the deterministic noise terms (response and hint rounding, FFT).
    pub deterministic_bound: f64,
    /// The FFT error's part of it.
    pub fft_bound: f64,
    /// Variance of the random noise terms (fresh, query rounding, hint times key).
    pub random_variance: f64,
    /// Largest single random term (for Bernstein's inequality).
    pub random_term_max: f64,
    /// Achieved failure probability per query, log2.
    pub failure_log2: f64,
}

impl NoiseBudget {
    /// Find the smallest Delta, and the widest rounding at each end, for which the failure
    /// probability per query is at most `2^input.failure_log2`.
    pub fn compute(input: &BudgetInput<'_>) -> Result<Self, ProtocolError> {
        let g = &input.geometry;
        if input.catalog_max_abs == 0 || input.query_max_abs == 0 {
            return Err(ProtocolError::BudgetInfeasible(
                "catalog and query widths must be at least 2 bits".into(),
            ));
        }
        let worst = BudgetInput::worst_case_norm_sq(g, input.catalog_max_abs);
        if input.block_norm_sq > worst {
            return Err(ProtocolError::OutOfRange {
                what: "block norm",
                value: input.block_norm_sq,
                allowed: format!("at most {worst} for these widths"),
            });
        }
        let score_max =
            g.dimension as u64 * input.catalog_max_abs as u64 * input.query_max_abs as u64;
        let score_bits = bit_length(score_max) + 1;
        if score_bits >= 64 {
            return Err(infeasible(input, score_bits));
        }
        let sigma2 = input.params.noise_variance();
        // Query rounding at most 1/8 of the fresh variance.
        let mut query_low = 0;
        while 2f64.powi(2 * (query_low as i32 + 1)) / 12.0 <= sigma2 / 8.0 {
            query_low += 1;
        }
        for gap in 2..=10u32 {
            for delta_log2 in gap..=(64 - score_bits) {
                if let Some(b) =
                    Self::try_widths(input, score_max, score_bits, delta_log2, gap, query_low)
                {
                    return Ok(b);
                }
            }
        }
        Err(infeasible(input, score_bits))
    }

    fn try_widths(
        input: &BudgetInput<'_>,
        score_max: u64,
        score_bits: u32,
        delta_log2: u32,
        gap: u32,
        query_low: u32,
    ) -> Option<Self> {
        let n = input.params.polynomial_size.0 as f64;
        let log2_n = input.params.log2_n();
        let hi = delta_log2 + score_bits;
        let query_low = query_low.min(delta_log2.saturating_sub(1));
        let response_low = delta_log2 - gap;
        // Fixed hint part N 2^(lh-2) at most Delta / 16.
        let hint_low = delta_log2.saturating_sub(2 + log2_n).min(delta_log2 - 1);
        let norm_sq = input.block_norm_sq as f64;

        let response_term = if response_low > 0 {
            2f64.powi(response_low as i32 - 1)
        } else {
            0.0
        };
        let hint_fixed = if hint_low > 0 {
            n * 2f64.powi(hint_low as i32 - 2)
        } else {
            0.0
        };
        let groups = if input.params.budget_revision >= 2 {
            input.geometry.groups()
        } else {
            0
        };
        let fft = fft_error_bound(hi, norm_sq, n, log2_n, groups);
        let deterministic_bound = response_term + hint_fixed + fft;
        let t = 2f64.powi(delta_log2 as i32 - 1) - deterministic_bound - 1.0;
        if t <= 0.0 {
            return None;
        }
        let query_rounding = if query_low > 0 {
            2f64.powi(2 * query_low as i32) / 12.0
        } else {
            0.0
        };
        let hint_random = if hint_low > 0 {
            n * 2f64.powi(2 * (hint_low as i32 - 2))
        } else {
            0.0
        };
        let random_variance =
            (input.params.noise_variance() + query_rounding) * norm_sq + hint_random;
        let e_max = 2f64.powi(input.params.noise_bound_log2 as i32)
            + if query_low > 0 {
                2f64.powi(query_low as i32 - 1)
            } else {
                0.0
            };
        let hint_term = if hint_low > 0 {
            2f64.powi(hint_low as i32 - 2)
        } else {
            0.0
        };
        let random_term_max = (e_max * input.catalog_max_abs as f64).max(hint_term);
        let ln_p_score =
            std::f64::consts::LN_2 - t * t / (2.0 * (random_variance + random_term_max * t / 3.0));
        let failure_log2 =
            ln_p_score / std::f64::consts::LN_2 + (input.geometry.items as f64).log2();
        if failure_log2 > input.failure_log2 as f64 {
            return None;
        }
        Some(NoiseBudget {
            delta_log2,
            modulus_log2: hi,
            query_low,
            hint_low,
            response_low,
            score_max,
            deterministic_bound,
            fft_bound: fft,
            random_variance,
            random_term_max,
            failure_log2,
        })
    }

    /// Bits per query body coefficient on the wire.
    pub fn query_bits(&self) -> u32 {
        self.modulus_log2 - self.query_low
    }

    /// Bits per hint coefficient on the wire.
    pub fn hint_bits(&self) -> u32 {
        self.modulus_log2 - self.hint_low
    }

    /// Bits per score on the wire.
    pub fn response_bits(&self) -> u32 {
        self.modulus_log2 - self.response_low
    }

    /// The bound |Z| must stay under: Delta / 2.
    pub fn noise_limit(&self) -> f64 {
        2f64.powi(self.delta_log2 as i32 - 1)
    }
}

/// A generous bound on the f64 FFT error of the server's product and the client's hint
/// product, in units of the original (unshifted) torus. The transforms work on torus values
/// scaled to 2^64, i.e. 2^(64-hi) times the values mod 2^hi, with 53-bit mantissas; their
/// rounding error relative to the output's rms grows with log N. The server also sums the
/// G products of a block in the Fourier domain before its inverse transform, whose rounding
/// errors (relative to each partial sum) add up to about sqrt(G / 2) ulps of the output's
/// rms: 2 sqrt(G) more (tests/fft_error.rs checks the real error at G = 4096 against the
/// whole bound). Budget revision 1 has no such term: `groups` is 0 for it.
fn fft_error_bound(hi: u32, norm_sq: f64, n: f64, log2_n: u32, groups: usize) -> f64 {
    let ulp = 2f64.powi(hi as i32 - 53);
    let server = (norm_sq / 12.0).sqrt();
    let client = (n / 12.0).sqrt();
    let transforms = 8.0 * log2_n as f64;
    let summation = 2.0 * (groups as f64).sqrt();
    ulp * ((transforms + summation) * server + transforms * client)
}

fn bit_length(x: u64) -> u32 {
    64 - x.leading_zeros()
}

fn infeasible(input: &BudgetInput<'_>, score_bits: u32) -> ProtocolError {
    ProtocolError::BudgetInfeasible(format!(
        "d = {} with catalog values up to {} and query values up to {} needs {} score bits \
         plus a Delta above the noise of blocks of norm^2 {}, more than the 64-bit modulus \
         holds at failure probability 2^{} per query; use narrower values or a smaller d",
        input.geometry.dimension,
        input.catalog_max_abs,
        input.query_max_abs,
        score_bits,
        input.block_norm_sq,
        input.failure_log2
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::Layout;
    use crate::params::GLWE_2048_TUNIFORM17;

    fn budget(
        d: usize,
        items: usize,
        layout: Layout,
        cbits: u32,
        qbits: u32,
    ) -> Result<NoiseBudget, ProtocolError> {
        let geometry = Geometry::new(2048, layout, d, items).unwrap();
        let cmax = max_abs_for_bits(cbits);
        NoiseBudget::compute(&BudgetInput {
            params: &GLWE_2048_TUNIFORM17,
            geometry,
            catalog_max_abs: cmax,
            query_max_abs: max_abs_for_bits(qbits),
            block_norm_sq: BudgetInput::worst_case_norm_sq(&geometry, cmax),
            failure_log2: DEFAULT_FAILURE_LOG2,
        })
    }

    #[test]
    fn int8_d128_matches_the_design_figures() {
        let b = budget(128, 1 << 20, Layout::Column, 8, 8).unwrap();
        // The design figures for int8 at 1M x 128: Delta about 2^38, one bit either way.
        assert!((37..=39).contains(&b.delta_log2), "{b:?}");
        assert!(b.failure_log2 <= -40.0);
        assert!((44..=47).contains(&b.query_bits()), "{b:?}");
        assert!(b.response_bits() <= 26, "{b:?}");
        assert!(b.modulus_log2 <= 64);
    }

    #[test]
    fn widths_shrink_as_d_grows() {
        let small = budget(64, 1 << 20, Layout::Column, 8, 8).unwrap();
        let large = budget(256, 1 << 20, Layout::Column, 8, 8).unwrap();
        assert!(large.delta_log2 > small.delta_log2);
        assert!(large.response_bits() > small.response_bits());
    }

    #[test]
    fn infeasible_catalogs_are_refused_with_the_limit_named() {
        let err = budget(4096, 1 << 20, Layout::Column, 16, 16).unwrap_err();
        assert!(matches!(err, ProtocolError::BudgetInfeasible(ref m) if m.contains("d = 4096")));
    }

    #[test]
    fn block_norm_above_the_worst_case_is_refused() {
        let geometry = Geometry::new(2048, Layout::Column, 4, 10).unwrap();
        let err = NoiseBudget::compute(&BudgetInput {
            params: &GLWE_2048_TUNIFORM17,
            geometry,
            catalog_max_abs: 127,
            query_max_abs: 127,
            block_norm_sq: 10 * 4 * 127 * 127 + 1,
            failure_log2: -40,
        });
        assert!(err.is_err());
    }

    fn outputs(
        params: &GlweParams,
        layout: Layout,
        d: usize,
        items: usize,
        bits: u32,
        frac: u64,
    ) -> (u32, u32, u32, u32, u32) {
        let geometry = Geometry::new(2048, layout, d, items).unwrap();
        let cmax = max_abs_for_bits(bits);
        let b = NoiseBudget::compute(&BudgetInput {
            params,
            geometry,
            catalog_max_abs: cmax,
            query_max_abs: 127,
            block_norm_sq: BudgetInput::worst_case_norm_sq(&geometry, cmax) / frac,
            failure_log2: DEFAULT_FAILURE_LOG2,
        })
        .unwrap();
        (
            b.delta_log2,
            b.modulus_log2,
            b.query_low,
            b.hint_low,
            b.response_low,
        )
    }

    #[test]
    fn the_summation_term_is_versioned_under_a_new_parameter_row() {
        use crate::params::{GLWE_2048_TUNIFORM17 as REV2, GLWE_2048_TUNIFORM17_BUDGET1 as REV1};
        // The demo catalog's and 1M x 128's shapes: the same outputs under both revisions,
        // the values revision 1 gives (clients read catalogs of row 1 too).
        for params in [&REV1, &REV2] {
            assert_eq!(
                outputs(params, Layout::Grouped(128), 128, 12_000, 8, 1),
                (34, 56, 16, 21, 32)
            );
            assert_eq!(
                outputs(params, Layout::Column, 128, 1 << 20, 8, 1),
                (38, 60, 16, 25, 36)
            );
        }
        // Some shapes' outputs differ under revision 2's term: hence a row of its own,
        // which a client without that row refuses cleanly as an unknown parameter id.
        assert_ne!(
            outputs(&REV1, Layout::Column, 100, 1 << 20, 10, 4),
            outputs(&REV2, Layout::Column, 100, 1 << 20, 10, 4)
        );
        // Revision 2's term grows with the groups a block sums; revision 1 has none.
        let fft = |params: &GlweParams, groups: usize| {
            let g = if params.budget_revision >= 2 {
                groups
            } else {
                0
            };
            fft_error_bound(60, 1e9, 2048.0, 11, g)
        };
        assert_eq!(fft(&REV1, 1), fft(&REV1, 4096));
        assert!(fft(&REV2, 1) < fft(&REV2, 128) && fft(&REV2, 128) < fft(&REV2, 4096));
        assert!(fft(&REV2, 4096) > 2.0 * fft(&REV1, 4096));
    }
}
