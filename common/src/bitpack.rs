//! Bit-packing of wire words: `count` words of `bits` bits, least significant bit first,
//! no padding but the last byte's unused high bits, which must be zero.

use crate::error::ProtocolError;
use crate::layout::packed_len;

/// Pack the low `bits` bits of each word.
pub fn pack(words: &[u64], bits: u32) -> Vec<u8> {
    let mut out = vec![0u8; packed_len(words.len(), bits)];
    pack_into(words.iter().copied(), bits, &mut out);
    out
}

/// Pack words into `out`, which must be exactly [`packed_len`] of their count long.
pub fn pack_into(words: impl Iterator<Item = u64>, bits: u32, out: &mut [u8]) {
    assert!((1..=64).contains(&bits));
    // One copy of the loop per width, so the shifts of each run of 8 words are constants.
    macro_rules! by_width {
        ($($w:literal)*) => {
            match bits {
                $($w => pack_eights::<$w>(words, out),)*
                _ => unreachable!("bits checked above"),
            }
        };
    }
    by_width!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29
        30 31 32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57
        58 59 60 61 62 63 64);
}

/// Runs of 8 words fill exactly `W` bytes: pack those with constant shifts, the last
/// partial run with the general loop.
fn pack_eights<const W: u32>(mut words: impl Iterator<Item = u64>, out: &mut [u8]) {
    let mut at = 0;
    let mut count = 0;
    loop {
        let mut run = [0u64; 8];
        let mut n = 0;
        for (slot, w) in run.iter_mut().zip(&mut words) {
            *slot = w;
            n += 1;
        }
        count += n;
        if n < 8 {
            let rest = at.min(out.len());
            pack_general(run[..n].iter().copied(), W, &mut out[rest..], count);
            return;
        }
        assert!(
            at + W as usize <= out.len(),
            "pack_into: the output length must match the words"
        );
        pack_eight::<W>(&run, &mut out[at..at + W as usize]);
        at += W as usize;
    }
}

/// 8 words of `W` bits into `W` bytes.
#[inline(always)]
fn pack_eight<const W: u32>(run: &[u64; 8], out: &mut [u8]) {
    let mask = low_mask(W);
    let mut acc = 0u128;
    let mut filled = 0u32;
    let mut at = 0;
    for &w in run {
        acc |= ((w & mask) as u128) << filled;
        filled += W;
        if filled >= 64 {
            out[at..at + 8].copy_from_slice(&(acc as u64).to_le_bytes());
            at += 8;
            acc >>= 64;
            filled -= 64;
        }
    }
    let tail = filled as usize / 8;
    out[at..at + tail].copy_from_slice(&(acc as u64).to_le_bytes()[..tail]);
}

/// The general loop: whole 64-bit words of output from a 64-bit accumulator, then the
/// tail's bytes. `out` must be exactly the packed length; `total` counts all the words
/// packed, for the message.
fn pack_general(words: impl Iterator<Item = u64>, bits: u32, out: &mut [u8], total: usize) {
    let mask = low_mask(bits);
    let mut at = 0usize;
    let mut acc = 0u64;
    let mut filled = 0u32;
    for w in words {
        let w = w & mask;
        acc |= w << filled;
        let sum = filled + bits;
        if sum >= 64 {
            out[at..at + 8].copy_from_slice(&acc.to_le_bytes());
            at += 8;
            // The bits of w that did not fit (none when it started a fresh word).
            acc = if filled == 0 { 0 } else { w >> (64 - filled) };
            filled = sum - 64;
        } else {
            filled = sum;
        }
    }
    let tail = filled.div_ceil(8) as usize;
    assert_eq!(
        at + tail,
        out.len(),
        "pack_into: the output length must match {total} words"
    );
    out[at..at + tail].copy_from_slice(&acc.to_le_bytes()[..tail]);
}

/// Widest word that always fits the 8-byte window starting at its first byte.
const WINDOW_BITS: u32 = 57;

/// The word of `bits` bits starting at bit `start`, from at most 9 bytes.
fn read_word(bytes: &[u8], start: usize, bits: u32) -> u64 {
    let first = start / 8;
    let end = (first + 9).min(bytes.len());
    let mut buf = [0u8; 16];
    buf[..end - first].copy_from_slice(&bytes[first..end]);
    ((u128::from_le_bytes(buf) >> (start % 8)) as u64) & low_mask(bits)
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

/// The checks of [`unpack`] without the unpacking: a width in 1..=64, the exact byte
/// length and zero padding bits.
pub fn check_packed(
    bytes: &[u8],
    bits: u32,
    count: usize,
    what: &'static str,
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
    let used = count * bits as usize;
    if !used.is_multiple_of(8) && (bytes[used / 8] >> (used % 8)) != 0 {
        return Err(ProtocolError::Malformed(format!(
            "{what}: non-zero padding bits"
        )));
    }
    Ok(())
}

/// Unpack into a callback, word by word, with the same checks as [`unpack`] (made
/// first: on error `sink` has seen nothing).
pub fn unpack_with(
    bytes: &[u8],
    bits: u32,
    count: usize,
    what: &'static str,
    sink: impl FnMut(u64),
) -> Result<(), ProtocolError> {
    check_packed(bytes, bits, count, what)?;
    unpack_checked_with(bytes, bits, count, sink);
    Ok(())
}

/// Unpack bytes that passed [`check_packed`] into a callback, word by word, without
/// checking them again.
///
/// # Panics
/// If the byte length is not that of `count` words of `bits` bits (an unchecked input).
pub fn unpack_checked_with(bytes: &[u8], bits: u32, count: usize, mut sink: impl FnMut(u64)) {
    assert!(
        (1..=64).contains(&bits) && bytes.len() == packed_len(count, bits),
        "unpack_checked_with: bytes that did not pass check_packed"
    );
    let step = bits as usize;
    // Words whose 8-byte window lies inside the buffer: one unaligned load each.
    let fast = if bits <= WINDOW_BITS && bytes.len() >= 8 {
        count.min(((bytes.len() - 8) * 8 + 7) / step + 1)
    } else {
        0
    };
    let mask = low_mask(bits);
    for i in 0..fast {
        let start = i * step;
        let window: [u8; 8] = bytes[start / 8..start / 8 + 8].try_into().expect("8 bytes");
        sink((u64::from_le_bytes(window) >> (start % 8)) & mask);
    }
    for i in fast..count {
        sink(read_word(bytes, i * step, bits));
    }
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
    fn long_runs_round_trip_through_the_fast_path_and_the_tail() {
        for bits in 1..=64u32 {
            for count in [1000usize, 1001, 1003] {
                let words: Vec<u64> = (0..count as u64)
                    .map(|i| (i ^ 0x5555).wrapping_mul(0x9E37_79B9_7F4A_7C15) & low_mask(bits))
                    .collect();
                let packed = pack(&words, bits);
                assert_eq!(packed.len(), packed_len(count, bits), "{bits} bits");
                assert_eq!(
                    unpack(&packed, bits, count, "t").unwrap(),
                    words,
                    "{bits} bits"
                );
            }
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
