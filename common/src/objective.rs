//! Choosing a catalog's layout by what its clients pay.
//!
//! A layout trades the one-time hint (it grows with b) against each query's upload (it
//! shrinks with b), and the server's time per query grows with b (one inverse transform per
//! block, and a catalog holds b times more blocks in layout b). The choice is: the layout
//! that minimises a client's bytes over the first [`Objective::queries_per_version`]
//! queries of a catalog version (the hint once, then each query's upload and download),
//! among the layouts whose server time per query is at most 1.1 times the fastest layout's
//! or at most 1 ms more than it, whichever allows more. Small catalogs cost the server
//! little in absolute terms, so their clients get small hints and uploads; large catalogs
//! keep their throughput.
//!
//! Server times come from [`SERVER_TIMES`], a committed table of figures the scoring
//! benchmark measured (`benches/run` proposes a refreshed one). The layout is part of the
//! catalog's version digest, so the choice is a pure function of the catalog, the
//! operator's settings and that table: every replica and every artefact built from the
//! same catalog gets the same version, whatever machine it runs on.

use crate::layout::Layout;

/// Item counts of the catalogs the table's times were measured on.
pub const MEASURED_ITEMS: [usize; 2] = [1 << 15, 1 << 17];

/// The measured server time of one layout: seconds per query in a 16-query pass on one
/// thread, at two dimensions and the two item counts of [`MEASURED_ITEMS`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ServerTime {
    /// The layout's group size b.
    pub group_size: u32,
    /// The two dimensions measured.
    pub dimensions: [u32; 2],
    /// Seconds per query: `seconds[k][m]` at dimension `dimensions[k]` and
    /// `MEASURED_ITEMS[m]` items.
    pub seconds: [[f64; 2]; 2],
}

impl ServerTime {
    /// Seconds per query at `items` x `dimension`: at each measured dimension, a part per
    /// query (transforming its bodies) and a part per item (the scan streams the catalog,
    /// the inverse side transforms every block), through the two item counts; then linear
    /// in the dimension through the two dimensions.
    pub fn seconds(&self, items: usize, dimension: usize) -> f64 {
        let [m1, m2] = MEASURED_ITEMS.map(|m| m as f64);
        let at = |k: usize| {
            let [t1, t2] = self.seconds[k];
            let per_item = (t2 - t1) / (m2 - m1);
            (t1 + per_item * (items as f64 - m1)).max(0.0)
        };
        let [d1, d2] = self.dimensions.map(f64::from);
        let (t1, t2) = (at(0), at(1));
        (t1 + (t2 - t1) * (dimension as f64 - d1) / (d2 - d1)).max(0.0)
    }
}

/// Server seconds per query in a 16-query pass, one thread, by group size; layouts with
/// no row are not chosen automatically (an operator can still fix them).
pub const SERVER_TIMES: &[ServerTime] = &[
    // BEGIN SERVER_TIMES (benches/run proposes a replacement for these lines)
    // Measured on AMD EPYC by benches/layouts.rs at [32768, 131072] items.
    ServerTime {
        group_size: 1,
        dimensions: [64, 128],
        seconds: [[4.825e-4, 8.361e-4], [8.076e-4, 1.396e-3]],
    },
    ServerTime {
        group_size: 2,
        dimensions: [64, 128],
        seconds: [[3.543e-4, 8.632e-4], [5.738e-4, 1.358e-3]],
    },
    ServerTime {
        group_size: 4,
        dimensions: [64, 128],
        seconds: [[3.879e-4, 1.154e-3], [4.768e-4, 1.489e-3]],
    },
    ServerTime {
        group_size: 8,
        dimensions: [64, 128],
        seconds: [[4.747e-4, 1.717e-3], [5.810e-4, 2.080e-3]],
    },
    ServerTime {
        group_size: 16,
        dimensions: [64, 128],
        seconds: [[8.419e-4, 3.054e-3], [8.732e-4, 3.277e-3]],
    },
    ServerTime {
        group_size: 32,
        dimensions: [64, 128],
        seconds: [[1.456e-3, 5.477e-3], [1.551e-3, 5.913e-3]],
    },
    ServerTime {
        group_size: 64,
        dimensions: [64, 128],
        seconds: [[2.825e-3, 1.093e-2], [2.889e-3, 1.157e-2]],
    },
    ServerTime {
        group_size: 128,
        dimensions: [128, 256],
        seconds: [[5.490e-3, 2.116e-2], [5.553e-3, 2.383e-2]],
    },
    ServerTime {
        group_size: 256,
        dimensions: [256, 512],
        seconds: [[1.197e-2, 4.597e-2], [1.148e-2, 4.538e-2]],
    },
    ServerTime {
        group_size: 512,
        dimensions: [512, 1024],
        seconds: [[2.237e-2, 8.916e-2], [2.132e-2, 8.428e-2]],
    },
    // END SERVER_TIMES
];

/// Server seconds per query (16-query pass, one thread) of a layout for a catalog shape,
/// from [`SERVER_TIMES`]; `None` for a layout the table has no row for.
pub fn server_seconds(layout: Layout, items: usize, dimension: usize) -> Option<f64> {
    SERVER_TIMES
        .iter()
        .find(|t| t.group_size as usize == layout.group_size())
        .map(|t| t.seconds(items, dimension))
}

/// How many rankings a user makes of one catalog version, by default, before the catalog
/// changes: the Q of the objective. A catalog rebuilt daily and an app opened a few times
/// a day, each opening ranking once or twice, makes about eight.
pub const DEFAULT_QUERIES_PER_VERSION: u32 = 8;

/// A layout's server time may exceed the fastest's by this factor...
pub const SERVER_TIME_FACTOR: f64 = 1.1;
/// ...or by this many seconds, whichever allows more.
pub const SERVER_TIME_SLACK_SECONDS: f64 = 1e-3;

/// What the automatic layout choice minimises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Objective {
    /// Q: the client's bytes are counted over the first Q queries of a version.
    pub queries_per_version: u32,
}

impl Default for Objective {
    fn default() -> Self {
        Objective {
            queries_per_version: DEFAULT_QUERIES_PER_VERSION,
        }
    }
}

/// One candidate layout as the objective sees it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Candidate {
    pub layout: Layout,
    /// Payload bytes of one query's upload.
    pub query_bytes: usize,
    /// Payload bytes of one query's download.
    pub response_bytes: usize,
    /// Payload bytes of the hint, once per version.
    pub hint_bytes: usize,
    /// Server seconds per query, from the table.
    pub server_seconds: Option<f64>,
}

impl Candidate {
    /// A client's bytes over its first `queries` queries of a version.
    pub fn bytes_over(&self, queries: u32) -> u128 {
        self.hint_bytes as u128 + queries as u128 * (self.query_bytes + self.response_bytes) as u128
    }
}

/// The most server seconds per query a candidate may take: 1.1 times the fastest's, or 1 ms
/// more than it, whichever is more; `None` when no candidate has a server time.
pub fn allowed_seconds(candidates: &[Candidate]) -> Option<f64> {
    let fastest = candidates
        .iter()
        .filter_map(|c| c.server_seconds)
        .min_by(f64::total_cmp)?;
    Some((fastest * SERVER_TIME_FACTOR).max(fastest + SERVER_TIME_SLACK_SECONDS))
}

impl Objective {
    /// The index of the chosen candidate: the fewest bytes over Q queries among those
    /// within the server-time allowance of the fastest (ties to the faster, then the
    /// smaller b). Candidates without a server time are left out; `None` when none has one.
    pub fn choose(&self, candidates: &[Candidate]) -> Option<usize> {
        let allowed = allowed_seconds(candidates)?;
        (0..candidates.len())
            .filter(|&i| candidates[i].server_seconds.is_some_and(|t| t <= allowed))
            .min_by(|&a, &b| {
                let (ca, cb) = (&candidates[a], &candidates[b]);
                ca.bytes_over(self.queries_per_version)
                    .cmp(&cb.bytes_over(self.queries_per_version))
                    .then(
                        ca.server_seconds
                            .unwrap_or(f64::MAX)
                            .total_cmp(&cb.server_seconds.unwrap_or(f64::MAX)),
                    )
                    .then(ca.layout.group_size().cmp(&cb.layout.group_size()))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(b: u32, query: usize, hint: usize, seconds: f64) -> Candidate {
        Candidate {
            layout: Layout::from_group_size(b),
            query_bytes: query,
            response_bytes: 100,
            hint_bytes: hint,
            server_seconds: Some(seconds),
        }
    }

    #[test]
    fn the_fewest_bytes_within_the_time_allowance() {
        let q = Objective {
            queries_per_version: 4,
        };
        // Large catalog: b = 2 saves bytes but is 20% slower (and more than 1 ms): refused.
        let large = [candidate(1, 1000, 0, 0.100), candidate(2, 500, 100, 0.120)];
        assert_eq!(q.choose(&large), Some(0));
        // Within 10%: taken.
        let close = [candidate(1, 1000, 0, 0.100), candidate(2, 500, 100, 0.109)];
        assert_eq!(q.choose(&close), Some(1));
        // Small catalog: 5x slower, but only 0.8 ms more: taken for its bytes.
        let small = [
            candidate(1, 1000, 0, 0.0002),
            candidate(8, 100, 900, 0.0010),
        ];
        assert_eq!(q.choose(&small), Some(1));
        // Over more queries the upload weighs more.
        let hint_heavy = [
            candidate(4, 400, 1000, 0.001),
            candidate(8, 200, 2000, 0.001),
        ];
        assert_eq!(q.choose(&hint_heavy), Some(0));
        let many = Objective {
            queries_per_version: 100,
        };
        assert_eq!(many.choose(&hint_heavy), Some(1));
    }

    #[test]
    fn a_layout_without_a_measured_time_is_not_chosen() {
        let mut c = [candidate(1, 1000, 0, 0.1), candidate(2, 10, 10, 0.1)];
        c[1].server_seconds = None;
        assert_eq!(Objective::default().choose(&c), Some(0));
        c[0].server_seconds = None;
        assert_eq!(Objective::default().choose(&c), None);
    }

    #[test]
    fn times_follow_the_measured_points_in_items_and_dimension() {
        let [m1, m2] = MEASURED_ITEMS;
        // 0.5 s per query plus 1 us per item at d = 64; twice that at d = 128.
        let t = |m: usize, scale: f64| scale * (0.5 + 1e-6 * m as f64);
        let time = ServerTime {
            group_size: 1,
            dimensions: [64, 128],
            seconds: [[t(m1, 1.0), t(m2, 1.0)], [t(m1, 2.0), t(m2, 2.0)]],
        };
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9 * b.max(1.0);
        assert!(close(time.seconds(m1, 64), t(m1, 1.0)));
        assert!(close(time.seconds(1 << 20, 64), t(1 << 20, 1.0)));
        assert!(close(time.seconds(1 << 20, 96), t(1 << 20, 1.5)));
        assert!(close(time.seconds(1 << 20, 256), t(1 << 20, 4.0)));
    }
}
