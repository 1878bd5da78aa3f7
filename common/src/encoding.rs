//! Wire words and rounding mod 2^hi.
//!
//! A value mod 2^hi travels as its bits `low..hi`, rounded to nearest. On the server the
//! same word is read back "top-aligned", shifted to the top of a u64, which is the value
//! times 2^(64-hi): the torus view tfhe's FFT expects. Because key and catalog are
//! integers, computing mod 2^hi this way is a ring homomorphism.

/// Mask of the low `bits` bits.
pub fn low_mask(bits: u32) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

/// Round `value` (mod 2^64) to its bits `low..hi`: a word of `hi - low` bits.
pub fn to_word(value: u64, low: u32, hi: u32) -> u64 {
    let rounded = if low == 0 {
        value
    } else {
        value.wrapping_add(1u64 << (low - 1)) >> low
    };
    rounded & low_mask(hi - low)
}

/// A word of `width` bits as a top-aligned torus element.
pub fn word_to_torus(word: u64, width: u32) -> u64 {
    if width == 0 {
        0
    } else {
        word << (64 - width)
    }
}

/// Round a top-aligned torus element to its top `width` bits.
pub fn torus_to_word(torus: u64, width: u32) -> u64 {
    if width >= 64 {
        return torus;
    }
    let shift = 64 - width;
    (torus.wrapping_add(1u64 << (shift - 1)) >> shift) & low_mask(width)
}

/// Centred rounding division by 2^shift of a top-aligned torus element, as a signed integer.
pub fn round_signed(torus: u64, shift: u32) -> i64 {
    (torus.wrapping_add(1u64 << (shift - 1)) as i64) >> shift
}

/// The top-aligned encoding of a message: m * Delta in the 64-bit domain.
pub fn encode_message(m: i64, delta_log2: u32) -> u64 {
    (m as u64).wrapping_shl(delta_log2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_to_nearest() {
        assert_eq!(to_word(0b1011_0111, 4, 8), 0b1011);
        assert_eq!(to_word(0b1011_1000, 4, 8), 0b1100);
        assert_eq!(to_word(u64::MAX, 4, 8), 0);
        assert_eq!(torus_to_word(word_to_torus(0x2a, 7), 7), 0x2a);
    }

    #[test]
    fn signed_rounding_is_centred() {
        let shift = 40;
        for m in [-5i64, -1, 0, 1, 1000] {
            let t = (m << shift) as u64;
            assert_eq!(round_signed(t.wrapping_add(1 << 30), shift), m);
            assert_eq!(round_signed(t.wrapping_sub(1 << 30), shift), m);
        }
    }
}
