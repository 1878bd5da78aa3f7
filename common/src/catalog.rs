//! The quantized catalog and the shape both sides derive from it.

use crate::budget::{max_abs_for_bits, BudgetInput, NoiseBudget, DEFAULT_FAILURE_LOG2};
use crate::error::ProtocolError;
use crate::layout::{packed_len, Geometry, Layout};
use crate::objective::{server_seconds, Candidate, Objective};
use crate::params::GlweParams;

/// Largest dimension a client accepts from a description.
pub const MAX_DIMENSION: usize = 4096;
/// Largest item count a client accepts from a description (bounds its memory).
pub const MAX_ITEMS: usize = 1 << 26;
/// Widths of catalog and query values, bits (signed, symmetric).
pub const VALUE_BITS: std::ops::RangeInclusive<u32> = 2..=16;
/// Failure probabilities a client accepts, log2 per query.
pub const FAILURE_LOG2: std::ops::RangeInclusive<i32> = -128..=-20;

/// Item vectors quantized to signed integers, row-major (item after item).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuantizedCatalog {
    dimension: usize,
    bits: u32,
    values: Vec<i16>,
}

impl QuantizedCatalog {
    /// Check and wrap: `values.len()` must be a non-zero multiple of `dimension` and every
    /// value must fit `bits` (|v| <= 2^(bits-1) - 1).
    pub fn new(dimension: usize, bits: u32, values: Vec<i16>) -> Result<Self, ProtocolError> {
        if !VALUE_BITS.contains(&bits) {
            return Err(ProtocolError::OutOfRange {
                what: "catalog value width",
                value: bits as u64,
                allowed: "2..=16 bits".into(),
            });
        }
        if dimension == 0
            || dimension > MAX_DIMENSION
            || values.is_empty()
            || !values.len().is_multiple_of(dimension)
        {
            return Err(ProtocolError::WrongLength {
                what: "catalog values",
                found: values.len(),
                expected: dimension.max(1) * (values.len() / dimension.max(1)).max(1),
            });
        }
        let max = max_abs_for_bits(bits) as i32;
        if let Some(v) = values.iter().find(|v| (**v as i32).abs() > max) {
            return Err(ProtocolError::OutOfRange {
                what: "catalog value",
                value: (*v as i32).unsigned_abs() as u64,
                allowed: format!("|v| <= {max} at {bits} bits"),
            });
        }
        Ok(QuantizedCatalog {
            dimension,
            bits,
            values,
        })
    }

    /// Dimension d.
    pub fn dimension(&self) -> usize {
        self.dimension
    }

    /// Value width in bits.
    pub fn bits(&self) -> u32 {
        self.bits
    }

    /// Number of items M.
    pub fn items(&self) -> usize {
        self.values.len() / self.dimension
    }

    /// Item i's vector.
    pub fn row(&self, i: usize) -> &[i16] {
        &self.values[i * self.dimension..(i + 1) * self.dimension]
    }

    /// All values, row-major.
    pub fn values(&self) -> &[i16] {
        &self.values
    }

    /// The largest squared Frobenius norm of any block of `items_per_block` items.
    pub fn block_norm_sq(&self, items_per_block: usize) -> u64 {
        block_norm_sq(&self.item_norms_sq(), items_per_block)
    }

    /// Each item's squared norm.
    pub fn item_norms_sq(&self) -> Vec<u64> {
        self.rows_in_parallel(|row| row.iter().map(|&v| (v as i64 * v as i64) as u64).sum())
    }

    /// `per_row` of every row, on every core for a large catalog.
    fn rows_in_parallel(&self, per_row: impl Fn(&[i16]) -> u64 + Sync) -> Vec<u64> {
        let items = self.items();
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        if threads == 1 || items < 1 << 14 {
            return self
                .values
                .chunks_exact(self.dimension)
                .map(&per_row)
                .collect();
        }
        let mut out = vec![0u64; items];
        let rows = items.div_ceil(threads);
        std::thread::scope(|scope| {
            for (out, values) in out
                .chunks_mut(rows)
                .zip(self.values.chunks(rows * self.dimension))
            {
                let per_row = &per_row;
                scope.spawn(move || {
                    for (o, row) in out.iter_mut().zip(values.chunks_exact(self.dimension)) {
                        *o = per_row(row);
                    }
                });
            }
        });
        out
    }

    /// Each item's squared norm once requantized to `bits` (as [`Self::requantize`] would
    /// round its values), without building the requantized catalog: one pass through a
    /// table of the squared rounded values.
    pub fn item_norms_sq_at(&self, bits: u32) -> Vec<u64> {
        let max = max_abs_for_bits(self.bits) as i32;
        let squares: Vec<u64> = self.rounded(bits).iter().map(|&r| (r * r) as u64).collect();
        self.rows_in_parallel(|row| {
            row.iter()
                .map(|&v| squares[(v as i32 + max) as usize])
                .sum()
        })
    }

    /// The same vectors at fewer bits: every value scaled by `max(bits) / max(self.bits)`
    /// and rounded. Returns the catalog and the factor by which scales must be multiplied.
    pub fn requantize(&self, bits: u32) -> Result<(Self, f64), ProtocolError> {
        let max = max_abs_for_bits(self.bits) as i32;
        let rounded = self.rounded(bits);
        let values = self
            .values
            .iter()
            .map(|&v| rounded[(v as i32 + max) as usize] as i16)
            .collect();
        Ok((
            QuantizedCatalog::new(self.dimension, bits, values)?,
            max_abs_for_bits(self.bits) as f64 / max_abs_for_bits(bits) as f64,
        ))
    }

    /// Every value this catalog's width allows, from `-max` up, scaled to `bits` and
    /// rounded: what [`Self::requantize`] turns each value into.
    fn rounded(&self, bits: u32) -> Vec<i64> {
        let from = max_abs_for_bits(self.bits) as f64;
        let to = max_abs_for_bits(bits) as f64;
        let max = max_abs_for_bits(self.bits) as i32;
        (-max..=max)
            .map(|v| (v as f64 * to / from).round() as i64)
            .collect()
    }

    /// Plaintext integer dot products with a quantized query: the reference every encrypted
    /// score must equal.
    pub fn plaintext_scores(&self, query: &[i32]) -> Vec<i64> {
        self.values
            .chunks_exact(self.dimension)
            .map(|row| {
                row.iter()
                    .zip(query)
                    .map(|(&c, &u)| c as i64 * u as i64)
                    .sum()
            })
            .collect()
    }
}

/// The largest sum of `items_per_block` consecutive item norms: a block's squared norm.
pub fn block_norm_sq(item_norms_sq: &[u64], items_per_block: usize) -> u64 {
    item_norms_sq
        .chunks(items_per_block.max(1))
        .map(|block| block.iter().sum::<u64>())
        .max()
        .unwrap_or(0)
}

/// How the layout is chosen for a catalog.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayoutChoice {
    /// The operator fixed it.
    Fixed(Layout),
    /// The objective picks b (see [`crate::objective`]).
    Auto(Objective),
}

/// Everything that follows from a catalog's parameters, sizes and widths: the geometry and
/// the noise budget. Server and client derive it alike; the client from a description it
/// has range-checked.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CatalogShape {
    /// The parameter set.
    pub params: &'static GlweParams,
    /// The layout.
    pub layout: Layout,
    /// Sizes.
    pub geometry: Geometry,
    /// Width of catalog values, bits.
    pub catalog_bits: u32,
    /// Width of query values, bits.
    pub query_bits: u32,
    /// Largest block norm^2 the budget was computed for.
    pub block_norm_sq: u64,
    /// Target failure probability per query, log2.
    pub failure_log2: i32,
    /// Delta, the roundings and the wire widths.
    pub budget: NoiseBudget,
}

impl CatalogShape {
    /// Compute the shape; fails when the widths or sizes are out of range or the budget
    /// cannot be met.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        params: &'static GlweParams,
        layout: Layout,
        dimension: usize,
        items: usize,
        catalog_bits: u32,
        query_bits: u32,
        block_norm_sq: u64,
        failure_log2: i32,
    ) -> Result<Self, ProtocolError> {
        for (what, bits) in [
            ("catalog value width", catalog_bits),
            ("query value width", query_bits),
        ] {
            if !VALUE_BITS.contains(&bits) {
                return Err(ProtocolError::OutOfRange {
                    what,
                    value: bits as u64,
                    allowed: "2..=16 bits".into(),
                });
            }
        }
        if dimension > MAX_DIMENSION {
            return Err(ProtocolError::OutOfRange {
                what: "dimension",
                value: dimension as u64,
                allowed: format!("at most {MAX_DIMENSION}"),
            });
        }
        if items > MAX_ITEMS {
            return Err(ProtocolError::OutOfRange {
                what: "item count",
                value: items as u64,
                allowed: format!("at most {MAX_ITEMS}"),
            });
        }
        if !FAILURE_LOG2.contains(&failure_log2) {
            return Err(ProtocolError::OutOfRange {
                what: "failure probability (log2)",
                value: failure_log2.unsigned_abs() as u64,
                allowed: "-128..=-20".into(),
            });
        }
        let geometry = Geometry::new(params.polynomial_size.0, layout, dimension, items)?;
        let budget = NoiseBudget::compute(&BudgetInput {
            params,
            geometry,
            catalog_max_abs: max_abs_for_bits(catalog_bits),
            query_max_abs: max_abs_for_bits(query_bits),
            block_norm_sq,
            failure_log2,
        })?;
        geometry.check_sizes(
            [
                budget.query_bits(),
                budget.hint_bits(),
                budget.response_bits(),
            ],
            isize::MAX as u128,
        )?;
        Ok(CatalogShape {
            params,
            layout,
            geometry,
            catalog_bits,
            query_bits,
            block_norm_sq,
            failure_log2,
            budget,
        })
    }

    /// The shape of a quantized catalog, with the layout fixed or picked by the objective.
    pub fn for_catalog(
        params: &'static GlweParams,
        catalog: &QuantizedCatalog,
        query_bits: u32,
        choice: LayoutChoice,
    ) -> Result<Self, ProtocolError> {
        CatalogShape::for_item_norms(
            params,
            catalog.dimension(),
            catalog.bits(),
            query_bits,
            &catalog.item_norms_sq(),
            choice,
        )
    }

    /// The shape of a catalog of `bits`-bit values whose items have these squared norms
    /// (all a shape needs of the values), with the layout fixed or picked by the objective.
    pub fn for_item_norms(
        params: &'static GlweParams,
        dimension: usize,
        bits: u32,
        query_bits: u32,
        item_norms_sq: &[u64],
        choice: LayoutChoice,
    ) -> Result<Self, ProtocolError> {
        let build = |layout: Layout| {
            let per_block = params.polynomial_size.0 / layout.group_size();
            CatalogShape::new(
                params,
                layout,
                dimension,
                item_norms_sq.len(),
                bits,
                query_bits,
                block_norm_sq(item_norms_sq, per_block),
                DEFAULT_FAILURE_LOG2,
            )
        };
        match choice {
            LayoutChoice::Fixed(layout) => build(layout),
            LayoutChoice::Auto(objective) => {
                let mut shapes = Vec::new();
                let mut last_err = None;
                for layout in candidate_layouts(params, dimension) {
                    match build(layout) {
                        Ok(shape) => shapes.push(shape),
                        Err(e) => last_err = Some(e),
                    }
                }
                let candidates: Vec<Candidate> = shapes.iter().map(|s| s.candidate()).collect();
                match objective.choose(&candidates) {
                    Some(i) => Ok(shapes[i]),
                    None => Err(last_err.unwrap_or_else(|| {
                        ProtocolError::BudgetInfeasible(
                            "no layout with a measured server time fits the noise budget".into(),
                        )
                    })),
                }
            }
        }
    }

    /// The shape in which a shard scans `items` of this catalog's items (whole blocks of
    /// it): the same layout, widths and budget, the budget computed for the whole catalog
    /// (its union bound counts every item); only the item count differs.
    pub fn share(&self, items: usize) -> Result<Self, ProtocolError> {
        if items > self.geometry.items {
            return Err(ProtocolError::OutOfRange {
                what: "shard item count",
                value: items as u64,
                allowed: format!("at most the catalog's {}", self.geometry.items),
            });
        }
        let geometry = Geometry::new(self.geometry.n, self.layout, self.geometry.dimension, items)?;
        Ok(CatalogShape { geometry, ..*self })
    }

    /// This shape as the layout objective sees it: its payload bytes and its server time.
    pub fn candidate(&self) -> Candidate {
        Candidate {
            layout: self.layout,
            query_bytes: self.query_payload_bytes(),
            response_bytes: self.response_payload_bytes(),
            hint_bytes: self.hint_payload_bytes(),
            server_seconds: server_seconds(
                self.layout,
                self.geometry.items,
                self.geometry.dimension,
            ),
        }
    }

    /// Bytes of the quantized catalog itself, packed at its width: what a client would
    /// download to rank on the device instead (the catalog is public to clients).
    pub fn plaintext_catalog_bytes(&self) -> usize {
        packed_len(
            self.geometry.items * self.geometry.dimension,
            self.catalog_bits,
        )
    }

    /// Largest |catalog value|.
    pub fn catalog_max_abs(&self) -> u32 {
        max_abs_for_bits(self.catalog_bits)
    }

    /// Largest |query value|.
    pub fn query_max_abs(&self) -> u32 {
        max_abs_for_bits(self.query_bits)
    }

    /// Bytes of the packed query bodies.
    pub fn query_payload_bytes(&self) -> usize {
        packed_len(self.geometry.query_coefficients(), self.budget.query_bits())
    }

    /// Bytes of the packed hint.
    pub fn hint_payload_bytes(&self) -> usize {
        packed_len(self.geometry.hint_coefficients(), self.budget.hint_bits())
    }

    /// Bytes of the packed scores.
    pub fn response_payload_bytes(&self) -> usize {
        packed_len(self.geometry.items, self.budget.response_bits())
    }
}

/// Narrowest catalog width the service considers useful.
pub const MIN_USEFUL_CATALOG_BITS: u32 = 6;

/// The widest catalog values the noise budget allows for this catalog's real block norms
/// and dimension, at the given query width, with the layout. For each layout considered
/// (the fixed one, or every candidate of the objective), its widest width: the first, from
/// the catalog's own (up to 16) down to [`MIN_USEFUL_CATALOG_BITS`], at which the
/// requantized catalog's shape in that layout fits. The objective then chooses among the
/// layouts at their widths. Returns the shape, the requantized catalog and the factor by
/// which per-item scales must be multiplied; refuses a catalog that does not fit at a useful
/// width, naming the limit.
///
/// Each item's norm is read once at the catalog's width. At a narrower width no item can
/// be smaller than `(s |v| - sqrt(d) / 2)^2` (s the width's scale; rounding moves each value
/// by at most 1/2), and every check of a shape that fails at smaller norms fails at larger
/// ones too: a width a layout fails at even with those bounds is passed over without a look
/// at the values. Otherwise the items' exact norms at that width come from one pass through
/// a table of squared rounded values, shared by every layout; only the chosen width is
/// requantized.
pub fn widest_catalog(
    params: &'static GlweParams,
    catalog: &QuantizedCatalog,
    query_bits: u32,
    choice: LayoutChoice,
) -> Result<(CatalogShape, QuantizedCatalog, f64), ProtocolError> {
    let d = catalog.dimension();
    let layouts = match choice {
        LayoutChoice::Fixed(layout) => vec![layout],
        LayoutChoice::Auto(_) => candidate_layouts(params, d),
    };
    let shape_at = |layout: Layout, bits: u32, norms: &[u64]| {
        CatalogShape::for_item_norms(
            params,
            d,
            bits,
            query_bits,
            norms,
            LayoutChoice::Fixed(layout),
        )
    };
    let source = catalog.item_norms_sq();
    let from = max_abs_for_bits(catalog.bits()) as f64;
    let half = (d as f64).sqrt() / 2.0;
    // Each layout's shape at its widest width, once found.
    let mut found: Vec<Option<CatalogShape>> = vec![None; layouts.len()];
    let mut last = None;
    for bits in (MIN_USEFUL_CATALOG_BITS..=catalog.bits()).rev() {
        if found.iter().all(Option::is_some) {
            break;
        }
        let scale = max_abs_for_bits(bits) as f64 / from;
        let floor: Vec<u64> = source
            .iter()
            .map(|&n| {
                let low = scale * (n as f64).sqrt() - half;
                // A little below the bound, so that float rounding cannot lift it above.
                (low.max(0.0).powi(2) * (1.0 - 1e-9)).floor() as u64
            })
            .collect();
        let mut exact: Option<Vec<u64>> = None;
        for (k, layout) in layouts.iter().enumerate() {
            if found[k].is_some() {
                continue;
            }
            if bits > MIN_USEFUL_CATALOG_BITS {
                if let Err(e) = shape_at(*layout, bits, &floor) {
                    last = Some(e);
                    continue;
                }
            }
            let norms = exact.get_or_insert_with(|| catalog.item_norms_sq_at(bits));
            match shape_at(*layout, bits, norms) {
                Ok(shape) => found[k] = Some(shape),
                Err(e) => last = Some(e),
            }
        }
    }
    let shapes: Vec<CatalogShape> = found.into_iter().flatten().collect();
    let chosen = match choice {
        LayoutChoice::Fixed(_) => shapes.first().copied(),
        LayoutChoice::Auto(objective) => {
            let candidates: Vec<Candidate> = shapes.iter().map(|s| s.candidate()).collect();
            objective.choose(&candidates).map(|i| shapes[i])
        }
    };
    match chosen {
        Some(shape) => {
            let (narrow, factor) = catalog.requantize(shape.catalog_bits)?;
            Ok((shape, narrow, factor))
        }
        None => Err(ProtocolError::BudgetInfeasible(format!(
            "this catalog (d = {}, {} items) does not fit the noise budget even at {MIN_USEFUL_CATALOG_BITS}-bit values with {query_bits}-bit queries ({}); use fewer dimensions or narrower queries",
            catalog.dimension(),
            catalog.items(),
            last.map_or_else(|| "no layout with a measured server time fits".into(), |e: ProtocolError| e.to_string())
        ))),
    }
}

/// The largest dimension whose worst case (every value at its bound, full blocks of
/// `items` items) the budget accepts at these widths, or `None` if not even d = 1 fits.
pub fn max_dimension(
    params: &'static GlweParams,
    layout: Layout,
    items: usize,
    catalog_bits: u32,
    query_bits: u32,
) -> Option<usize> {
    let fits = |d: usize| {
        let Ok(geometry) = Geometry::new(params.polynomial_size.0, layout, d, items) else {
            return false;
        };
        let norm = BudgetInput::worst_case_norm_sq(&geometry, max_abs_for_bits(catalog_bits));
        CatalogShape::new(
            params,
            layout,
            d,
            items,
            catalog_bits,
            query_bits,
            norm,
            DEFAULT_FAILURE_LOG2,
        )
        .is_ok()
    };
    let min_d = layout.group_size() / 2 + 1;
    if !fits(min_d) {
        return None;
    }
    let (mut lo, mut hi) = (min_d, MAX_DIMENSION + 1);
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if fits(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Some(lo)
}

/// The layouts worth pricing for dimension d: b = 1, 2, 4, ... up to d rounded up.
pub fn candidate_layouts(params: &GlweParams, dimension: usize) -> Vec<Layout> {
    let max_b = dimension.next_power_of_two().min(params.polynomial_size.0);
    std::iter::successors(Some(1usize), |b| Some(b * 2))
        .take_while(|b| *b <= max_b)
        .map(|b| Layout::from_group_size(b as u32))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::GLWE_2048_TUNIFORM17;

    #[test]
    fn catalog_values_are_checked() {
        assert!(QuantizedCatalog::new(2, 8, vec![1, 2, 3]).is_err());
        assert!(QuantizedCatalog::new(2, 8, vec![]).is_err());
        assert!(QuantizedCatalog::new(2, 8, vec![128, 0]).is_err());
        assert!(QuantizedCatalog::new(2, 8, vec![-128, 0]).is_err());
        let c = QuantizedCatalog::new(2, 8, vec![127, -127, 1, 2]).unwrap();
        assert_eq!(c.items(), 2);
        assert_eq!(c.plaintext_scores(&[1, 1]), vec![0, 3]);
        assert_eq!(c.block_norm_sq(1), 2 * 127 * 127);
    }

    #[test]
    fn the_objective_groups_small_catalogs() {
        let c = QuantizedCatalog::new(128, 8, vec![1; 128 * 4096]).unwrap();
        let shape = CatalogShape::for_catalog(
            &GLWE_2048_TUNIFORM17,
            &c,
            8,
            LayoutChoice::Auto(Objective::default()),
        )
        .unwrap();
        assert_ne!(shape.layout, Layout::Column);
    }

    /// The exhaustive search: for each layout, requantize at every width from the widest
    /// down and take the first whose shape (block norms read from the values) fits; then
    /// let the objective choose among the layouts at their widths.
    fn exhaustive(
        catalog: &QuantizedCatalog,
        query_bits: u32,
        choice: LayoutChoice,
    ) -> Option<(CatalogShape, QuantizedCatalog)> {
        let layouts = match choice {
            LayoutChoice::Fixed(layout) => vec![layout],
            LayoutChoice::Auto(_) => candidate_layouts(&GLWE_2048_TUNIFORM17, catalog.dimension()),
        };
        let widest = |layout: Layout| {
            (MIN_USEFUL_CATALOG_BITS..=catalog.bits())
                .rev()
                .find_map(|bits| {
                    let (narrow, _) = catalog.requantize(bits).unwrap();
                    let per_block = GLWE_2048_TUNIFORM17.polynomial_size.0 / layout.group_size();
                    let norm = narrow
                        .values()
                        .chunks(per_block * narrow.dimension())
                        .map(|b| b.iter().map(|&v| (v as i64 * v as i64) as u64).sum::<u64>())
                        .max()
                        .unwrap();
                    CatalogShape::new(
                        &GLWE_2048_TUNIFORM17,
                        layout,
                        narrow.dimension(),
                        narrow.items(),
                        bits,
                        query_bits,
                        norm,
                        DEFAULT_FAILURE_LOG2,
                    )
                    .ok()
                    .map(|shape| (shape, narrow))
                })
        };
        let found: Vec<(CatalogShape, QuantizedCatalog)> =
            layouts.into_iter().filter_map(widest).collect();
        let i = match choice {
            LayoutChoice::Fixed(_) => (!found.is_empty()).then_some(0)?,
            LayoutChoice::Auto(objective) => {
                let candidates: Vec<Candidate> = found.iter().map(|(s, _)| s.candidate()).collect();
                objective.choose(&candidates)?
            }
        };
        found.into_iter().nth(i)
    }

    #[test]
    fn the_width_search_finds_the_exhaustive_searchs_widths() {
        // Rows of several norms and spreads, loaded at 16 bits as the service loads floats.
        let mut state = 7u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as f64 / (1u64 << 31) as f64
        };
        for (items, d, query_bits) in [
            (3000, 64, 8),
            (20_000, 128, 8),
            (5000, 384, 6),
            (700, 16, 10),
        ] {
            let mut values = Vec::with_capacity(items * d);
            for i in 0..items {
                // Some rows spiky, some flat, some small.
                let spike = i % 7 == 0;
                let row: Vec<f64> = (0..d)
                    .map(|j| {
                        let x = next() * 2.0 - 1.0;
                        if spike && j == 0 {
                            8.0
                        } else {
                            x
                        }
                    })
                    .collect();
                let max = row.iter().fold(0f64, |m, x| m.max(x.abs()));
                let shrink = if i % 5 == 0 { 0.3 } else { 1.0 };
                values.extend(
                    row.iter()
                        .map(|x| (x / max * 32767.0 * shrink).round() as i16),
                );
            }
            let catalog = QuantizedCatalog::new(d, 16, values).unwrap();
            for choice in [
                LayoutChoice::Auto(Objective::default()),
                LayoutChoice::Fixed(Layout::Column),
                LayoutChoice::Fixed(Layout::Grouped(8)),
            ] {
                let fast = widest_catalog(&GLWE_2048_TUNIFORM17, &catalog, query_bits, choice).ok();
                let slow = exhaustive(&catalog, query_bits, choice);
                assert_eq!(
                    fast.as_ref().map(|(s, c, _)| (*s, c.clone())),
                    slow,
                    "{items} x {d}, {query_bits}-bit queries, {choice:?}"
                );
                assert!(fast.is_some(), "{items} x {d}: some width fits");
            }
        }
    }

    #[test]
    fn item_norms_at_a_width_are_those_of_the_requantized_values() {
        let values: Vec<i16> = (0..4000)
            .map(|i| ((i * 7919) % 65535 - 32767) as i16)
            .collect();
        let catalog = QuantizedCatalog::new(40, 16, values).unwrap();
        for bits in [16, 11, 8, 6, 2] {
            let (narrow, _) = catalog.requantize(bits).unwrap();
            assert_eq!(
                catalog.item_norms_sq_at(bits),
                narrow.item_norms_sq(),
                "{bits} bits"
            );
        }
    }
}
