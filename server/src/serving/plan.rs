//! Planning a catalog version: everything that can fail on the operator's input, checked
//! before the costly build (widths and layout chosen, the noise budget met, the version
//! digest computed).

use std::time::Instant;

use blindscore_common::api::EmbeddingSpace;
use blindscore_common::params::DEFAULT_PARAMS;
use blindscore_common::{CatalogDescription, CatalogShape, Layout, LayoutChoice, QuantizedCatalog};

use super::config::{ServiceConfig, SpaceDeclaration};
use super::version::ShardOf;
use crate::load::{LoadError, LoadedItems};
use crate::scan::CatalogSource;

/// A catalog version checked and planned (its widths and layout chosen, the noise budget
/// met), ready for the costly build: everything that can fail on the operator's input has
/// been checked.
pub struct PlannedVersion {
    /// The version it will have.
    pub version: blindscore_common::CatalogVersion,
    pub(super) name: String,
    pub(super) started: Instant,
    pub(super) ids_json: Vec<u8>,
    pub(super) catalog: QuantizedCatalog,
    pub(super) scales: Vec<f32>,
    pub(super) space: EmbeddingSpace,
    pub(super) layout: LayoutChoice,
    /// The shape it will have.
    pub shape: CatalogShape,
}

impl PlannedVersion {
    /// The catalog's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The quantized items.
    pub fn catalog(&self) -> &QuantizedCatalog {
        &self.catalog
    }

    /// Per-item scales, then the dimension scales if any.
    pub fn scales(&self) -> &[f32] {
        &self.scales
    }

    /// The encoded ids.
    pub fn ids_json(&self) -> &[u8] {
        &self.ids_json
    }

    /// The embedding space as declared.
    pub fn space(&self) -> &EmbeddingSpace {
        &self.space
    }
}

/// One shard's share of a catalog version, read from an artefact: the catalog's description
/// (its version, widths and budget, computed over every item when the artefact was built),
/// the shard's items, ids and scales, and its blocks of the hint, which the build recomputes
/// and compares.
pub struct PlannedShare {
    pub description: CatalogDescription,
    pub shard: ShardOf,
    pub catalog: QuantizedCatalog,
    pub ids_json: Vec<u8>,
    pub scales: Vec<f32>,
    pub space: EmbeddingSpace,
    /// The shard's blocks of the catalog's packed hint.
    pub hint_blocks: Vec<u8>,
}

/// Check and plan a version: spread the dimensions if asked, narrow the values to the
/// widest the noise budget allows (or check the declared width against it).
pub fn plan_entry(
    name: &str,
    items: LoadedItems,
    declaration: &SpaceDeclaration,
    config: &ServiceConfig,
) -> Result<PlannedVersion, LoadError> {
    let started = Instant::now();
    let LoadedItems {
        ids,
        catalog,
        scales,
    } = items;
    // Only the encoded ids are kept (that is all the service sends), and they are encoded
    // before the build so that the strings are freed first.
    let ids_json = blindscore_common::artefacts::encode_ids(&ids);
    drop(ids);
    let (catalog, dimension_scales) = if declaration.dimension_scales {
        let (spread, t) = spread_dimensions(&catalog)?;
        (spread, Some(t))
    } else {
        (catalog, None)
    };
    // With no declared width, the width and the layout are chosen together (each layout at
    // its widest width); the build then keeps that layout.
    let mut chosen = None;
    let (catalog, mut scales) = if declaration.bits.is_none() {
        let (shape, narrow, factor) = blindscore_common::catalog::widest_catalog(
            DEFAULT_PARAMS,
            &catalog,
            config.query_bits,
            config.layout_choice(),
        )?;
        tracing::info!(
            catalog = name,
            bits = narrow.bits(),
            layout = %shape.layout,
            "widest catalog values the noise budget allows, in the layout the objective chose"
        );
        chosen = Some(LayoutChoice::Fixed(shape.layout));
        let scales = scales
            .iter()
            .map(|s| (*s as f64 * factor) as f32)
            .collect::<Vec<f32>>();
        (narrow, scales)
    } else {
        (catalog, scales)
    };
    if let Some(t) = &dimension_scales {
        scales.extend_from_slice(t);
    }
    let space = EmbeddingSpace {
        model: declaration.model.clone(),
        dimension: catalog.dimension(),
        normalisation: declaration.normalisation,
        metric: declaration.metric,
    };
    let layout = chosen.unwrap_or_else(|| config.layout_choice());
    // The shape the build will use must exist (a declared width may not fit the budget).
    planned(
        name, started, catalog, scales, ids_json, space, layout, config,
    )
}

/// Plan a version of items already quantized at their final width, in a fixed layout (as
/// an artefact holds them): nothing is narrowed or chosen again.
pub fn plan_quantized(
    name: &str,
    catalog: QuantizedCatalog,
    scales: Vec<f32>,
    ids_json: Vec<u8>,
    space: EmbeddingSpace,
    layout: Layout,
    config: &ServiceConfig,
) -> Result<PlannedVersion, LoadError> {
    let layout = LayoutChoice::Fixed(layout);
    planned(
        name,
        Instant::now(),
        catalog,
        scales,
        ids_json,
        space,
        layout,
        config,
    )
}

/// The planned version of a catalog at its final width: its shape (the budget met) and
/// version.
#[allow(clippy::too_many_arguments)]
fn planned(
    name: &str,
    started: Instant,
    catalog: QuantizedCatalog,
    scales: Vec<f32>,
    ids_json: Vec<u8>,
    space: EmbeddingSpace,
    layout: LayoutChoice,
    config: &ServiceConfig,
) -> Result<PlannedVersion, LoadError> {
    let shape = CatalogShape::for_catalog(DEFAULT_PARAMS, &catalog, config.query_bits, layout)?;
    let version = source(name, &catalog, &scales, &ids_json, layout, config).version(&shape);
    Ok(PlannedVersion {
        version,
        name: name.to_string(),
        started,
        ids_json,
        catalog,
        scales,
        space,
        layout,
        shape,
    })
}

/// What a version is built from: the same for its planned version digest and its build.
pub(super) fn source<'a>(
    name: &'a str,
    catalog: &'a QuantizedCatalog,
    scales: &'a [f32],
    ids_json: &'a [u8],
    layout: LayoutChoice,
    config: &ServiceConfig,
) -> CatalogSource<'a> {
    CatalogSource {
        catalog_id: name,
        params: DEFAULT_PARAMS,
        catalog,
        scales,
        query_bits: config.query_bits,
        layout,
        item_data: ids_json,
    }
}

/// Scale every dimension of a quantized catalog to the full range of its width: returns
/// the catalog with `q'_ij = round(q_ij / t_j)` and the scales `t_j = max_i |q_ij| / max`,
/// so that `c_ij ~ s_i * t_j * q'_ij` and a query folded as `u_j * t_j` scores the same.
pub fn spread_dimensions(
    catalog: &QuantizedCatalog,
) -> Result<(QuantizedCatalog, Vec<f32>), LoadError> {
    let d = catalog.dimension();
    let max = blindscore_common::budget::max_abs_for_bits(catalog.bits()) as f64;
    let mut column_max = vec![0i32; d];
    for row in catalog.values().chunks_exact(d) {
        for (m, &v) in column_max.iter_mut().zip(row) {
            *m = (*m).max((v as i32).abs());
        }
    }
    // An all-zero dimension keeps scale 1 (its values stay zero).
    let t: Vec<f64> = column_max
        .iter()
        .map(|&m| if m == 0 { 1.0 } else { m as f64 / max })
        .collect();
    let values = catalog
        .values()
        .chunks_exact(d)
        .flat_map(|row| {
            row.iter()
                .zip(&t)
                .map(|(&v, &tj)| (v as f64 / tj).round().clamp(-max, max) as i16)
                .collect::<Vec<_>>()
        })
        .collect();
    let spread = QuantizedCatalog::new(d, catalog.bits(), values)?;
    Ok((spread, t.iter().map(|&x| x as f32).collect()))
}
