//! Bit-packing of wire words: `count` words of `bits` bits, least significant bit first,
//! no padding but the last byte's unused high bits, which must be zero.

use crate::error::ProtocolError;
use crate::layout::packed_len;

/// Pack the low `bits` bits of each word.
pub fn pack(words: &[u64], bits: u32) -> Vec<u8> {
    assert!((1..=64).contains(&bits));
    let len = packed_len(words.len(), bits);
    let mut out = Vec::with_capacity(len + 8);
    let mask = low_mask(bits);
    let mut acc: u128 = 0;
    let mut filled = 0u32;
    for &w in words {
        acc |= ((w & mask) as u128) << filled;
        filled += bits;
        if filled >= 64 {
            out.extend_from_slice(&(acc as u64).to_le_bytes());
            acc >>= 64;
            filled -= 64;
        }
    }
    out.extend_from_slice(&(acc as u64).to_le_bytes()[..filled.div_ceil(8) as usize]);
    debug_assert_eq!(out.len(), len);
    out
}

/// Unpack exactly `count` words of `bits` bits; the byte length must be exact and the
/// padding bits zero.
pub fn unpack(
    bytes: &[u8],
    bits: u32,
    count: usize,
    what: &'static str,
) -> Result<Vec<u64>, ProtocolError> {
    let mut out = Vec::with_capacity(count);
    unpack_with(bytes, bits, count, what, |w| out.push(w))?;
    Ok(out)
}

/// Unpack into a callback, word by word, with the same checks as [`unpack`].
pub fn unpack_with(
    bytes: &[u8],
    bits: u32,
    count: usize,
    what: &'static str,
    mut sink: impl FnMut(u64),
) -> Result<(), ProtocolError> {
    if !(1..=64).contains(&bits) {
        return Err(ProtocolError::OutOfRange {
            what: "word width",
            value: bits as u64,
            allowed: "1..=64".into(),
        });
    }
    let expected = packed_len(count, bits);
    if bytes.len() != expected {
        return Err(ProtocolError::WrongLength {
            what,
            found: bytes.len(),
            expected,
        });
    }
    let mask = low_mask(bits);
    let mut acc: u128 = 0;
    let mut filled = 0u32;
    let mut pos = 0usize;
    for _ in 0..count {
        if filled < bits {
            // The length check guarantees the bytes are there; only the last refill may be
            // short.
            let take = (bytes.len() - pos).min(8);
            let mut buf = [0u8; 8];
            buf[..take].copy_from_slice(&bytes[pos..pos + take]);
            pos += take;
            acc |= (u64::from_le_bytes(buf) as u128) << filled;
            filled += 8 * take as u32;
        }
        sink((acc as u64) & mask);
        acc >>= bits;
        filled -= bits;
    }
    let used = count * bits as usize;
    if !used.is_multiple_of(8) && (bytes[used / 8] >> (used % 8)) != 0 {
        return Err(ProtocolError::Malformed(format!(
            "{what}: non-zero padding bits"
        )));
    }
    Ok(())
}

fn low_mask(bits: u32) -> u64 {
    if bits == 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_at_every_width() {
        for bits in 1..=64u32 {
            let words: Vec<u64> = (0..37u64)
                .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15) & low_mask(bits))
                .collect();
            let packed = pack(&words, bits);
            assert_eq!(packed.len(), packed_len(words.len(), bits));
            assert_eq!(unpack(&packed, bits, words.len(), "t").unwrap(), words);
        }
    }

    #[test]
    fn wrong_length_and_padding_are_errors() {
        let packed = pack(&[1, 2, 3], 5);
        assert!(unpack(&packed, 5, 4, "t").is_err());
        assert!(unpack(&packed[..1], 5, 3, "t").is_err());
        let mut bad = packed.clone();
        *bad.last_mut().unwrap() |= 0x80;
        assert!(unpack(&bad, 5, 3, "t").is_err());
    }
}
