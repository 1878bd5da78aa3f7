//! Quantization of float vectors to signed integers with a scale.

/// A vector quantized to `bits`-bit signed integers: `value ~ scale * q`.
#[derive(Clone, Debug, PartialEq)]
pub struct Quantized {
    /// The integers, |q| <= 2^(bits-1) - 1.
    pub values: Vec<i32>,
    /// The scale to multiply by.
    pub scale: f64,
}

/// Quantize with one scale so the largest |value| maps to the largest integer. A zero or
/// non-finite vector maps to zeros with scale 0 (non-finite entries count as zero).
pub fn quantize(vector: &[f32], bits: u32) -> Quantized {
    let max_int = ((1i64 << (bits - 1)) - 1) as f64;
    let max_abs = vector
        .iter()
        .filter(|v| v.is_finite())
        .fold(0.0f64, |m, v| m.max((*v as f64).abs()));
    if max_abs == 0.0 {
        return Quantized {
            values: vec![0; vector.len()],
            scale: 0.0,
        };
    }
    let scale = max_abs / max_int;
    let values = vector
        .iter()
        .map(|v| {
            if v.is_finite() {
                ((*v as f64) / scale).round().clamp(-max_int, max_int) as i32
            } else {
                0
            }
        })
        .collect();
    Quantized { values, scale }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn largest_value_maps_to_the_bound() {
        let q = quantize(&[0.5, -1.0, 0.25], 8);
        assert_eq!(q.values, vec![64, -127, 32]);
        assert!((q.scale - 1.0 / 127.0).abs() < 1e-12);
        assert_eq!(quantize(&[0.0, f32::NAN], 8).values, vec![0, 0]);
    }
}
