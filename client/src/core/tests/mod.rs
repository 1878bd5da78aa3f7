//! Tests that need the crate's own hooks (a chosen key, injected noise, the noise of each
//! score, an unchecked preparation). The hooks are `cfg(test)`: no build of the published
//! crate has them, whatever features a dependency graph switches on.

mod known_answers;
mod noise;
mod wipe;

/// A small deterministic generator (SplitMix64), so that the tests are reproducible.
pub(super) struct SplitMix(pub u64);

impl SplitMix {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-max, max].
    pub fn value(&mut self, max: i32) -> i32 {
        (self.next() % (2 * max as u64 + 1)) as i32 - max
    }

    /// +max or -max.
    pub fn sign(&mut self, max: i32) -> i32 {
        if self.next() & 1 == 1 {
            max
        } else {
            -max
        }
    }
}
