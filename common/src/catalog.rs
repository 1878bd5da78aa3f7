//! The quantized catalog and the shape both sides derive from it.

use crate::budget::{max_abs_for_bits, BudgetInput, NoiseBudget, DEFAULT_FAILURE_LOG2};
use crate::error::ProtocolError;
use crate::layout::{packed_len, CostModel, Geometry, Layout, LayoutCost};
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
        self.values
            .chunks(items_per_block * self.dimension)
            .map(|block| {
                block
                    .iter()
                    .map(|&v| (v as i64 * v as i64) as u64)
                    .sum::<u64>()
            })
            .max()
            .unwrap_or(0)
    }

    /// The same vectors at fewer bits: every value scaled by `max(bits) / max(self.bits)`
    /// and rounded. Returns the catalog and the factor by which scales must be multiplied.
    pub fn requantize(&self, bits: u32) -> Result<(Self, f64), ProtocolError> {
        let from = max_abs_for_bits(self.bits) as f64;
        let to = max_abs_for_bits(bits) as f64;
        let values = self
            .values
            .iter()
            .map(|&v| (v as f64 * to / from).round() as i16)
            .collect();
        Ok((
            QuantizedCatalog::new(self.dimension, bits, values)?,
            from / to,
        ))
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

/// How the layout is chosen for a catalog.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LayoutChoice {
    /// The operator fixed it.
    Fixed(Layout),
    /// The cost model picks b.
    Auto(CostModel),
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

    /// The shape of a quantized catalog, with the layout fixed or picked by the cost model.
    pub fn for_catalog(
        params: &'static GlweParams,
        catalog: &QuantizedCatalog,
        query_bits: u32,
        choice: LayoutChoice,
    ) -> Result<Self, ProtocolError> {
        let build = |layout: Layout| {
            let b = layout.group_size();
            let norm = catalog.block_norm_sq(params.polynomial_size.0 / b);
            CatalogShape::new(
                params,
                layout,
                catalog.dimension(),
                catalog.items(),
                catalog.bits(),
                query_bits,
                norm,
                DEFAULT_FAILURE_LOG2,
            )
        };
        match choice {
            LayoutChoice::Fixed(layout) => build(layout),
            LayoutChoice::Auto(model) => {
                let mut best: Option<(f64, CatalogShape)> = None;
                let mut last_err = None;
                for layout in candidate_layouts(params, catalog.dimension()) {
                    match build(layout) {
                        Ok(shape) => {
                            let cost = shape.cost(&model).total_seconds;
                            if best.as_ref().is_none_or(|(c, _)| cost < *c) {
                                best = Some((cost, shape));
                            }
                        }
                        Err(e) => last_err = Some(e),
                    }
                }
                match best {
                    Some((_, shape)) => Ok(shape),
                    None => Err(last_err
                        .unwrap_or(ProtocolError::BudgetInfeasible("no layout fits".into()))),
                }
            }
        }
    }

    /// Price this shape with a cost model.
    pub fn cost(&self, model: &CostModel) -> LayoutCost {
        model.price(
            &self.geometry,
            self.layout,
            self.budget.query_bits(),
            self.budget.hint_bits(),
            self.budget.response_bits(),
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
/// and dimension, at the given query width: tries widths from the catalog's own (up to 16)
/// down to [`MIN_USEFUL_CATALOG_BITS`]. Returns the shape, the requantized catalog and the
/// factor by which per-item scales must be multiplied; refuses a catalog that does not fit
/// at a useful width, naming the limit.
pub fn widest_catalog(
    params: &'static GlweParams,
    catalog: &QuantizedCatalog,
    query_bits: u32,
    choice: LayoutChoice,
) -> Result<(CatalogShape, QuantizedCatalog, f64), ProtocolError> {
    let mut last = None;
    for bits in (MIN_USEFUL_CATALOG_BITS..=catalog.bits()).rev() {
        let (narrow, factor) = catalog.requantize(bits)?;
        match CatalogShape::for_catalog(params, &narrow, query_bits, choice) {
            Ok(shape) => return Ok((shape, narrow, factor)),
            Err(e) => last = Some(e),
        }
    }
    Err(ProtocolError::BudgetInfeasible(format!(
        "this catalog (d = {}, {} items) does not fit the noise budget even at {MIN_USEFUL_CATALOG_BITS}-bit values with {query_bits}-bit queries ({}); use fewer dimensions or narrower queries",
        catalog.dimension(),
        catalog.items(),
        last.map_or_else(String::new, |e| e.to_string())
    )))
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
    fn cost_model_prefers_grouping_for_small_catalogs() {
        let c = QuantizedCatalog::new(128, 8, vec![1; 128 * 4096]).unwrap();
        let shape = CatalogShape::for_catalog(
            &GLWE_2048_TUNIFORM17,
            &c,
            8,
            LayoutChoice::Auto(CostModel::default()),
        )
        .unwrap();
        assert_ne!(shape.layout, Layout::Column);
    }
}
