//! The parameter table compiled into every client and server.
//!
//! A [`ParamId`] on the wire names a row of [`PARAMETER_TABLE`]; nothing else about the
//! encryption travels. A client refuses an id it does not know, so a server cannot
//! downgrade the encryption by sending different numbers.

use tfhe::core_crypto::prelude::{GlweDimension, PolynomialSize, TUniform};

use crate::error::ProtocolError;

/// The exact tfhe release whose mask expansion and FFT this protocol is bound to. It is
/// pinned with `=` in `Cargo.toml` and hashed into every mask seed, and a known-answer
/// test of the first mask coefficients guards it.
pub const TFHE_VERSION: &str = "1.8.2";

pub use crate::param_id::ParamId;

/// GLWE parameters: ring Z_q\[X\]/(X^N + 1) with q = 2^64, a binary secret key and
/// TUniform noise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GlweParams {
    /// The id that names this row on the wire.
    pub id: ParamId,
    /// Polynomial size N.
    pub polynomial_size: PolynomialSize,
    /// GLWE dimension k (1: RLWE).
    pub glwe_dimension: GlweDimension,
    /// Noise is TUniform(b): integers in \[-2^b, 2^b\].
    pub noise_bound_log2: u32,
    /// Revision of the noise budget the row's catalogs are described with: clients
    /// recompute the budget and refuse a description that differs, so a change in the
    /// budget that changes its outputs gets a new row (2 adds the Fourier-domain
    /// summation of a block's products to the FFT term).
    pub budget_revision: u32,
    /// Where the numbers come from.
    pub source: &'static str,
}

impl GlweParams {
    /// The noise distribution as tfhe samples it.
    pub fn noise_distribution(&self) -> TUniform<u64> {
        TUniform::new(self.noise_bound_log2)
    }

    /// Variance of one noise coefficient: (2^(2b+1) + 1) / 6, as tfhe states it.
    pub fn noise_variance(&self) -> f64 {
        (2f64.powi(2 * self.noise_bound_log2 as i32 + 1) + 1.0) / 6.0
    }

    /// log2 of N.
    pub fn log2_n(&self) -> u32 {
        self.polynomial_size.0.trailing_zeros()
    }
}

/// The parameter set new catalogs use: the GLWE half of tfhe-rs's 128-bit default
/// `V1_8_PARAM_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128` (an alias of the `V1_4_` set in
/// tfhe 1.8.2): glwe_dimension 1, polynomial_size 2048, glwe_noise_distribution
/// TUniform(17), binary key, native 2^64 modulus; noise budget revision 2.
pub const GLWE_2048_TUNIFORM17: GlweParams = GlweParams {
    id: ParamId(2),
    polynomial_size: PolynomialSize(2048),
    glwe_dimension: GlweDimension(1),
    noise_bound_log2: 17,
    budget_revision: 2,
    source: "tfhe 1.8.2 V1_8_PARAM_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128 (GLWE part): \
             k = 1, N = 2048, TUniform(17), binary key, q = 2^64",
};

/// The same encryption with the first noise budget, whose FFT term left out the growth of
/// the summation error with the number of products a block sums. Kept so that clients
/// still read catalogs of servers that have not moved to row 2; servers build new
/// catalogs with [`DEFAULT_PARAMS`].
pub const GLWE_2048_TUNIFORM17_BUDGET1: GlweParams = GlweParams {
    id: ParamId(1),
    budget_revision: 1,
    ..GLWE_2048_TUNIFORM17
};

/// Every parameter set this build understands.
pub const PARAMETER_TABLE: &[GlweParams] = &[GLWE_2048_TUNIFORM17_BUDGET1, GLWE_2048_TUNIFORM17];

/// The parameter set new catalogs use.
pub const DEFAULT_PARAMS: &GlweParams = &GLWE_2048_TUNIFORM17;

/// Look a parameter id up in the compiled-in table; an unknown id is an error, never a
/// fallback.
pub fn lookup(id: ParamId) -> Result<&'static GlweParams, ProtocolError> {
    PARAMETER_TABLE
        .iter()
        .find(|p| p.id == id)
        .ok_or(ProtocolError::UnknownParameters(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_id_is_refused() {
        assert!(lookup(ParamId(1)).is_ok());
        assert_eq!(lookup(ParamId(2)).unwrap(), DEFAULT_PARAMS);
        assert_eq!(DEFAULT_PARAMS.budget_revision, 2);
        assert!(matches!(
            lookup(ParamId(0)),
            Err(ProtocolError::UnknownParameters(ParamId(0)))
        ));
    }

    #[test]
    fn tuniform17_variance_matches_tfhe() {
        let p = GLWE_2048_TUNIFORM17;
        let tfhe_var = p.noise_distribution().variance(1.0).0;
        assert_eq!(p.noise_variance(), tfhe_var);
        // sigma_0 ~ 2^16.2
        assert!((p.noise_variance().log2() / 2.0 - 16.2).abs() < 0.01);
    }
}
