//! Thin, allocation-free wrappers over tfhe's 64-bit negacyclic FFT.
//!
//! `forward_integer` reads u64 coefficients as signed integers (catalog polynomials, the
//! key); `forward_torus` reads them as torus elements (bodies, hints). A product of a torus
//! and an integer transform, taken back with `backward_torus`, is the negacyclic product
//! mod 2^64 up to the f64 rounding that the noise budget accounts for.

use tfhe::core_crypto::fft_impl::fft64::math::fft::Fft;
use tfhe::core_crypto::fft_impl::fft64::math::polynomial::FourierPolynomial;
use tfhe::core_crypto::prelude::{ComputationBuffers, Polynomial, PolynomialSize};

pub use tfhe::core_crypto::fft_impl::fft64::c64;
use zeroize::Zeroize;

/// The FFT for one polynomial size, with its scratch space.
pub struct NegacyclicFft {
    fft: Fft,
    buffers: ComputationBuffers,
    scratch_bytes: usize,
    n: usize,
}

impl Clone for NegacyclicFft {
    fn clone(&self) -> Self {
        Self::new(self.n)
    }
}

impl NegacyclicFft {
    /// Plan (or fetch the cached plan for) size n.
    pub fn new(n: usize) -> Self {
        let fft = Fft::new(PolynomialSize(n));
        let view = fft.as_view();
        let req = view.forward_scratch().or(view.backward_scratch());
        let mut buffers = ComputationBuffers::new();
        let scratch_bytes = req.unaligned_bytes_required();
        buffers.resize(scratch_bytes);
        NegacyclicFft {
            fft,
            buffers,
            scratch_bytes,
            n,
        }
    }

    /// Overwrite the scratch space with zeros (it may hold transforms of secret data), with
    /// volatile writes that the optimiser cannot remove before the buffer is freed.
    pub fn wipe_scratch(&mut self) {
        let (scratch, _) = self
            .buffers
            .stack()
            .make_aligned_raw::<u8>(self.scratch_bytes, 1);
        scratch.zeroize();
    }

    /// Polynomial size N.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Forward transform of integer coefficients (read as signed 64-bit): N/2 points.
    pub fn forward_integer(&mut self, out: &mut [c64], poly: &[u64]) {
        self.fft.as_view().forward_as_integer(
            FourierPolynomial { data: out },
            Polynomial::from_container(poly),
            self.buffers.stack(),
        );
    }

    /// Forward transform of torus coefficients: N/2 points.
    pub fn forward_torus(&mut self, out: &mut [c64], poly: &[u64]) {
        self.fft.as_view().forward_as_torus(
            FourierPolynomial { data: out },
            Polynomial::from_container(poly),
            self.buffers.stack(),
        );
    }

    /// [`NegacyclicFft::backward_torus`] that transforms `fourier` in place (it is left
    /// holding intermediate values), sparing a copy of it.
    pub fn backward_torus_in_place(&mut self, out: &mut [u64], fourier: &mut [c64]) {
        out.fill(0);
        self.fft.as_view().add_backward_in_place_as_torus(
            Polynomial::from_container(out),
            FourierPolynomial { data: fourier },
            self.buffers.stack(),
        );
    }

    /// Inverse transform into torus coefficients, overwriting `out`.
    pub fn backward_torus(&mut self, out: &mut [u64], fourier: &[c64]) {
        out.fill(0);
        self.fft.as_view().add_backward_as_torus(
            Polynomial::from_container(out),
            FourierPolynomial { data: fourier },
            self.buffers.stack(),
        );
    }
}

impl Drop for NegacyclicFft {
    /// The scratch space is wiped on drop too, for callers that forget.
    fn drop(&mut self) {
        self.wipe_scratch();
    }
}

/// The transforms of the limbs of a mask a, for products with it that stay exact: a =
/// sum_l A_l 2^(bits * l) with 0 <= A_l < 2^bits, and `out` receives the torus transform of
/// each A_l in turn (N/2 points each, `ceil(64 / bits)` limbs). A product A_l * P whose
/// coefficients stay far below 2^53 comes back from the inverse transform exactly, and the
/// limb products shifted into place and summed mod 2^64 give a * P exactly.
pub fn mask_limb_transforms(
    fft: &mut NegacyclicFft,
    mask: &[u64],
    bits: u32,
    limb: &mut [u64],
    out: &mut [c64],
) {
    let half = fft.n() / 2;
    debug_assert_eq!(out.len(), limb_count(bits) * half);
    for (l, out) in out.chunks_exact_mut(half).enumerate() {
        for (x, a) in limb.iter_mut().zip(mask) {
            *x = (a >> (bits * l as u32)) & ((1u64 << bits) - 1);
        }
        fft.forward_torus(out, limb);
    }
}

/// Limbs of `bits` bits that make up a 64-bit word.
pub fn limb_count(bits: u32) -> usize {
    64u32.div_ceil(bits) as usize
}

/// Exact negacyclic product `out += a * b mod 2^64` (tfhe's wrapping polynomial product,
/// Karatsuba for large sizes).
pub fn exact_add_mul(out: &mut [u64], a: &[u64], b: &[u64]) {
    tfhe::core_crypto::algorithms::polynomial_algorithms::polynomial_wrapping_add_mul_assign(
        &mut Polynomial::from_container(out),
        &Polynomial::from_container(a),
        &Polynomial::from_container(b),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fft_product_matches_exact_product_within_rounding() {
        let n = 2048;
        let mut state = 0x1234_5678_u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            state
        };
        let a: Vec<u64> = (0..n).map(|_| next()).collect();
        let p: Vec<u64> = (0..n)
            .map(|_| ((next() % 255) as i64 - 127) as u64)
            .collect();
        let mut exact = vec![0u64; n];
        exact_add_mul(&mut exact, &a, &p);
        let mut fft = NegacyclicFft::new(n);
        let mut fa = vec![c64::new(0.0, 0.0); n / 2];
        let mut fp = vec![c64::new(0.0, 0.0); n / 2];
        fft.forward_torus(&mut fa, &a);
        fft.forward_integer(&mut fp, &p);
        for (x, y) in fa.iter_mut().zip(&fp) {
            *x *= *y;
        }
        let mut approx = vec![0u64; n];
        fft.backward_torus(&mut approx, &fa);
        let max_err = exact
            .iter()
            .zip(&approx)
            .map(|(e, a)| (a.wrapping_sub(*e) as i64).unsigned_abs())
            .max()
            .unwrap();
        assert!(
            max_err < 1 << 30,
            "max error 2^{:.1}",
            (max_err as f64).log2()
        );
    }
}
