//! How a catalog is cut into polynomial blocks, and which output coefficients carry
//! scores.
//!
//! * Column layout (b = 1): query ciphertext i carries coordinate u_i in its constant
//!   coefficient; a block holds N items and every output coefficient is a score.
//! * Grouped layout (b > 1): ciphertext g carries coordinates g*b .. g*b+b-1 in
//!   coefficients 0..b-1; each item's b-slice is packed reversed so its partial dot
//!   product lands on coefficient t*b + b - 1. A block holds N/b items.

use serde::{Deserialize, Serialize};

use crate::error::ProtocolError;

/// The packing of a catalog: b coordinates per query ciphertext.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Layout {
    /// b = 1: one query ciphertext per dimension, N scores per block.
    Column,
    /// b > 1 (a power of two): d/b query ciphertexts, N/b scores per block.
    Grouped(u32),
}

impl Layout {
    /// A layout from its group size b (1 is the column layout).
    pub fn from_group_size(b: u32) -> Self {
        if b <= 1 {
            Layout::Column
        } else {
            Layout::Grouped(b)
        }
    }

    /// The group size b.
    pub fn group_size(self) -> usize {
        match self {
            Layout::Column => 1,
            Layout::Grouped(b) => b as usize,
        }
    }
}

impl std::fmt::Display for Layout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Layout::Column => write!(f, "column"),
            Layout::Grouped(b) => write!(f, "grouped(b={b})"),
        }
    }
}

/// Sizes that follow from (N, layout, d, M): how many ciphertexts, blocks and scores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Polynomial size N.
    pub n: usize,
    /// Group size b.
    pub b: usize,
    /// Dimension d of the vectors.
    pub dimension: usize,
    /// Number of items M.
    pub items: usize,
}

impl Geometry {
    /// Check and build. b must be a power of two, at most N, and no larger than d
    /// rounded up to a power of two (beyond that it only wastes).
    pub fn new(
        n: usize,
        layout: Layout,
        dimension: usize,
        items: usize,
    ) -> Result<Self, ProtocolError> {
        let b = layout.group_size();
        if dimension == 0 {
            return Err(ProtocolError::OutOfRange {
                what: "dimension",
                value: 0,
                allowed: "at least 1".into(),
            });
        }
        if items == 0 {
            return Err(ProtocolError::OutOfRange {
                what: "item count",
                value: 0,
                allowed: "at least 1".into(),
            });
        }
        if !b.is_power_of_two() || b > n || b > dimension.next_power_of_two() {
            return Err(ProtocolError::OutOfRange {
                what: "group size b",
                value: b as u64,
                allowed: format!(
                    "a power of two <= min(N = {n}, {})",
                    dimension.next_power_of_two()
                ),
            });
        }
        Ok(Geometry {
            n,
            b,
            dimension,
            items,
        })
    }

    /// Number of query ciphertexts G = ceil(d / b).
    pub fn groups(&self) -> usize {
        self.dimension.div_ceil(self.b)
    }

    /// Items scored per output block, N / b.
    pub fn items_per_block(&self) -> usize {
        self.n / self.b
    }

    /// Number of output blocks, ceil(M / (N / b)).
    pub fn blocks(&self) -> usize {
        self.items.div_ceil(self.items_per_block())
    }

    /// Items in block `block` (the last block may be partial).
    pub fn items_in_block(&self, block: usize) -> usize {
        let ipb = self.items_per_block();
        (self.items - block * ipb).min(ipb)
    }

    /// The output coefficient that carries the score of the t-th item of a block.
    pub fn score_coefficient(&self, t: usize) -> usize {
        t * self.b + self.b - 1
    }

    /// Exponent of X at which coordinate `j` (0..b) of the t-th item's slice is placed in
    /// its group's catalog polynomial: reversed, so the partial dot product lands on
    /// [`Self::score_coefficient`].
    pub fn catalog_exponent(&self, t: usize, j: usize) -> usize {
        t * self.b + self.b - 1 - j
    }

    /// Number of coefficients sent per query: G ciphertext bodies of N coefficients.
    pub fn query_coefficients(&self) -> usize {
        self.groups() * self.n
    }

    /// Number of hint coefficients: N per block.
    pub fn hint_coefficients(&self) -> usize {
        self.blocks() * self.n
    }

    /// Items a shard's range is a multiple of: max(N/b, 8), so that every shard holds whole
    /// blocks (its hint is whole blocks of the catalog's hint) and its packed scores end on a
    /// byte boundary (the shards' payloads join byte for byte) whatever the score width.
    pub fn shard_unit(&self) -> usize {
        self.items_per_block().max(8)
    }

    /// Split the items into `shards` consecutive ranges, each a multiple of
    /// [`Self::shard_unit`] items but the last (which ends the catalog), as even as that
    /// allows. Fails when there are fewer units than shards.
    pub fn shard_ranges(
        &self,
        shards: usize,
    ) -> Result<Vec<std::ops::Range<usize>>, ProtocolError> {
        let unit = self.shard_unit();
        let units = self.items.div_ceil(unit);
        if shards == 0 || shards > units {
            return Err(ProtocolError::OutOfRange {
                what: "shard count",
                value: shards as u64,
                allowed: format!("1..={units} for {} items in units of {unit}", self.items),
            });
        }
        let mut ranges = Vec::with_capacity(shards);
        let mut start = 0;
        for s in 0..shards {
            let take = units / shards + usize::from(s < units % shards);
            let end = (start + take * unit).min(self.items);
            ranges.push(start..end);
            start = end;
        }
        Ok(ranges)
    }

    /// Check that every size that follows from this geometry and the wire widths (in bits:
    /// query, hint, response) fits in `max` (`isize::MAX` for this platform, the largest
    /// allocation): the counts of query, hint and score words, their packed bits, and the
    /// 24 bytes per coefficient that their transforms take at most. Computed in u128, so a server's numbers cannot wrap
    /// a product to a small value on a 32-bit target.
    pub fn check_sizes(&self, widths: [u32; 3], max: u128) -> Result<(), ProtocolError> {
        let n = self.n as u128;
        let groups = (self.dimension as u128).div_ceil(self.b as u128);
        let blocks = (self.items as u128).div_ceil((self.n / self.b) as u128);
        let [query_bits, hint_bits, response_bits] = widths.map(u128::from);
        for (what, value) in [
            ("query coefficients (x24 bytes)", groups * n * 24),
            ("hint coefficients (x24 bytes)", blocks * n * 24),
            ("query bits", groups * n * query_bits),
            ("hint bits", blocks * n * hint_bits),
            ("score bits", self.items as u128 * response_bits),
        ] {
            if value > max {
                return Err(ProtocolError::OutOfRange {
                    what,
                    value: u64::try_from(value).unwrap_or(u64::MAX),
                    allowed: format!("at most {max} on this platform"),
                });
            }
        }
        Ok(())
    }
}

/// Bytes needed to bit-pack `count` words of `bits` bits. For a geometry that passed
/// [`Geometry::check_sizes`], the product cannot overflow.
pub fn packed_len(count: usize, bits: u32) -> usize {
    (count * bits as usize).div_ceil(8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_that_wrap_a_32_bit_usize_are_refused() {
        // b = 2048 and 2^21 items: 2^21 blocks of 2048 hint coefficients, 2^32 in all,
        // which a 32-bit `blocks() * n` would wrap to 0.
        let g = Geometry {
            n: 2048,
            b: 2048,
            dimension: 2048,
            items: 1 << 21,
        };
        let max32 = u32::MAX as u128;
        assert!(matches!(
            g.check_sizes([40, 30, 24], max32),
            Err(ProtocolError::OutOfRange { what, .. }) if what.starts_with("hint")
        ));
        assert!(g.check_sizes([40, 30, 24], u64::MAX as u128).is_ok());
        // The demo catalog's geometry fits a 32-bit target.
        let demo = Geometry::new(2048, Layout::Grouped(128), 128, 12_000).unwrap();
        assert!(demo.check_sizes([45, 32, 24], max32).is_ok());
        // Packed bits count too: 2^26 scores of 64 bits is 2^32 bits.
        let many = Geometry::new(2048, Layout::Column, 1, 1 << 26).unwrap();
        assert!(many.check_sizes([40, 30, 64], max32).is_err());
        assert!(many.check_sizes([40, 30, 24], max32).is_ok());
    }

    #[test]
    fn shard_ranges_cover_the_items_in_whole_units() {
        for (layout, items, shards) in [
            (Layout::Column, 5000, 2),
            (Layout::Grouped(16), 12_000, 4),
            (Layout::Grouped(128), 12_000, 3),
            (Layout::Grouped(128), 40, 3),
            (Layout::Grouped(1024), 100, 7),
        ] {
            let g = Geometry::new(2048, layout, 1024, items).unwrap();
            let ranges = g.shard_ranges(shards).unwrap();
            assert_eq!(ranges.len(), shards);
            assert_eq!(ranges[0].start, 0);
            assert_eq!(ranges.last().unwrap().end, items);
            for pair in ranges.windows(2) {
                assert_eq!(pair[0].end, pair[1].start);
            }
            for r in &ranges[..shards - 1] {
                assert!(!r.is_empty());
                assert_eq!(r.len() % g.shard_unit(), 0, "{layout} {items} {shards}");
                assert_eq!(r.start % g.items_per_block(), 0);
            }
        }
        let g = Geometry::new(2048, Layout::Column, 8, 5000).unwrap();
        assert!(
            g.shard_ranges(4).is_err(),
            "only 3 blocks of 2048: at most 3 shards"
        );
        assert_eq!(g.shard_ranges(3).unwrap().len(), 3);
        assert!(g.shard_ranges(0).is_err());
    }

    #[test]
    fn column_geometry() {
        let g = Geometry::new(2048, Layout::Column, 128, 5000).unwrap();
        assert_eq!(g.groups(), 128);
        assert_eq!(g.items_per_block(), 2048);
        assert_eq!(g.blocks(), 3);
        assert_eq!(g.items_in_block(2), 5000 - 4096);
        assert_eq!(g.score_coefficient(7), 7);
    }

    #[test]
    fn grouped_geometry() {
        let g = Geometry::new(2048, Layout::Grouped(8), 100, 1000).unwrap();
        assert_eq!(g.groups(), 13);
        assert_eq!(g.items_per_block(), 256);
        assert_eq!(g.blocks(), 4);
        assert_eq!(g.score_coefficient(0), 7);
        assert_eq!(g.catalog_exponent(0, 0), 7);
        assert_eq!(g.catalog_exponent(1, 7), 8);
    }

    #[test]
    fn bad_group_sizes_are_refused() {
        assert!(Geometry::new(2048, Layout::Grouped(3), 128, 10).is_err());
        assert!(Geometry::new(2048, Layout::Grouped(256), 100, 10).is_err());
        assert!(Geometry::new(2048, Layout::Column, 0, 10).is_err());
        assert!(Geometry::new(2048, Layout::Column, 4, 0).is_err());
        assert!(Geometry::new(2048, Layout::Grouped(128), 100, 10).is_ok());
    }
}
