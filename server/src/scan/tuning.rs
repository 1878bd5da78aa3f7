//! The scan's tuning: sizes and distances that change how fast a pass runs on a CPU, never
//! what it computes. Each CPU family gets the settings measured best on it, chosen at run
//! time from the CPU's vendor (see docs/tuning.md for the figures); a test scores the same
//! queries under every setting here and under extreme ones and compares the responses'
//! bytes.

use super::tile::CHUNK_BLOCKS;

/// How a pass is cut up and how far ahead it reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tuning {
    /// A span of blocks grows while its accumulators (`queries * blocks * N * 8` bytes)
    /// take at most this many bytes...
    pub span_cached_bytes: usize,
    /// ...and is at least this many chunks long: each span reads the batch's query vectors
    /// again and hops once more from tile to tile.
    pub span_min_chunks: usize,
    /// Blocks of one query transformed back together, so gathering their Fourier points
    /// reads one contiguous run per tile.
    pub gather_blocks: usize,
    /// Tiles ahead that a gather requests its reads (each tile's run sits a whole tile of
    /// accumulators after the last, too far apart for the hardware prefetchers).
    pub gather_ahead: usize,
    /// Whether the single-query kernel requests the catalog's lines ahead of its loads
    /// (the batch kernel's requests of its next slice help on every CPU measured).
    pub streaming_prefetch: bool,
}

impl Tuning {
    /// AMD (measured on Zen 5): the hardware prefetchers stream the catalog faster without
    /// the single-query kernel's requests.
    pub const AMD: Tuning = Tuning {
        span_cached_bytes: 8 << 20,
        span_min_chunks: 32,
        gather_blocks: 16,
        gather_ahead: 6,
        streaming_prefetch: false,
    };

    /// Intel (measured on Xeon) and every other CPU: one thread streams faster with the
    /// single-query kernel's requests.
    pub const INTEL: Tuning = Tuning {
        streaming_prefetch: true,
        ..Tuning::AMD
    };

    /// The settings for this CPU, chosen once from its vendor.
    pub fn for_this_cpu() -> Tuning {
        if super::cpu::is_amd() {
            Tuning::AMD
        } else {
            Tuning::INTEL
        }
    }

    /// Blocks scanned per span (whole chunks) for a batch of `queries` at polynomial size
    /// `n`.
    pub fn span_blocks(&self, queries: usize, n: usize) -> usize {
        let cached = self.span_cached_bytes / (queries.max(1) * n * 8) / CHUNK_BLOCKS;
        cached.max(self.span_min_chunks.max(1)) * CHUNK_BLOCKS
    }
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning::for_this_cpu()
    }
}
