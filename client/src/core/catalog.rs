//! A catalog version checked and prepared on the device: the shape recomputed from the
//! compiled-in parameter table, the transforms of its public masks and of its hint, its
//! ids, scales and declared embedding space. None of it depends on a key; all of it is
//! public and the same for every client.

use blindscore_common::api::{EmbeddingSpace, Normalisation};
use blindscore_common::artefacts::{parse_ids, parse_scales};
use blindscore_common::digest::sha256;
use blindscore_common::encoding::word_to_torus;
use blindscore_common::fourier::{c64, limb_count, mask_limb_transforms, NegacyclicFft};
use blindscore_common::masks::Masks;
use blindscore_common::wire::{self, CatalogRef, HEADER_ALLOWANCE};
use blindscore_common::{
    bitpack, CatalogDescription, CatalogShape, CatalogVersion, HintMessage, ProtocolError,
};
use serde::Serialize;

use super::limits::{Limits, ReadLimits};
use crate::error::ClientError;

/// Bits per limb of a mask coefficient for the exact product a_g * s: a limb times a
/// binary key sums to at most 2^22 * N = 2^33, far inside f64's exact range even after
/// the FFT's rounding, so the product is exact.
pub(super) const LIMB_BITS: u32 = 22;
/// Limbs a mask coefficient is split into.
pub(super) const LIMBS: usize = 3;

/// How far from 1 the norm of a vector for an L2-normalised catalog may be.
const NORM_TOLERANCE: f64 = 1e-3;

/// The public artefacts of one catalog version, as the server serves them
/// (`.../versions/{v}/description`, `hint`, `ids`, `scales`).
#[derive(Clone, Debug, Default)]
pub struct Artifacts {
    pub description: Vec<u8>,
    pub hint: Vec<u8>,
    pub ids: Vec<u8>,
    pub scales: Vec<u8>,
}

impl Artifacts {
    /// Their size in all, bytes.
    pub fn len(&self) -> usize {
        self.description.len() + self.hint.len() + self.ids.len() + self.scales.len()
    }

    /// Whether there are no bytes at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What a query costs on the wire, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct QueryCost {
    /// The encrypted query, up.
    pub up: usize,
    /// The encrypted scores, down.
    pub down: usize,
    /// The catalog's public data (description, hint, ids, scales), once per version.
    pub once_per_version: usize,
}

/// One catalog version, checked and ready to seal queries for and open responses from.
/// Its fields cannot be changed after the check.
pub struct PreparedCatalog {
    pub(super) catalog: CatalogRef,
    pub(super) shape: CatalogShape,
    /// For each group g and limb l, the transform of limb l of a_g (N/2 points each).
    pub(super) mask_limbs: Vec<c64>,
    /// For each block, the transform of the top-aligned hint (N/2 points each).
    pub(super) hint: Vec<c64>,
    pub(super) ids: Vec<String>,
    pub(super) scales: Vec<f32>,
    pub(super) dimension_scales: Option<Vec<f32>>,
    space: EmbeddingSpace,
    artifact_bytes: usize,
}

impl std::fmt::Debug for PreparedCatalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedCatalog")
            .field("catalog", &self.catalog)
            .field("items", &self.shape.geometry.items)
            .field("space", &self.space)
            .finish_non_exhaustive()
    }
}

impl PreparedCatalog {
    /// Check the artefacts of catalog `name` and prepare it. The description's parameter id
    /// must be in the table compiled into this crate and every number in it in range; the
    /// noise budget is recomputed and must agree; every size it implies must be within the
    /// app's `limits` before anything is allocated for it; the hint must match the
    /// description's digest, catalog and version; ids and scales must match the item
    /// count; the declared embedding space (from the catalog info) must have the catalog's
    /// dimension.
    pub fn check(
        name: &str,
        space: EmbeddingSpace,
        artifacts: &Artifacts,
        limits: &Limits,
    ) -> Result<Self, ClientError> {
        limits.check_space(&space, None, None)?;
        let description = Self::check_description(name, &artifacts.description, limits)?;
        let shape = description.shape()?;
        limits.check_shape(&shape)?;
        let g = shape.geometry;
        if space.dimension != g.dimension {
            return Err(ProtocolError::Malformed(
                "the declared embedding space's dimension differs from the catalog's".into(),
            )
            .into());
        }
        // The hint message: its payload within the limit, and a header.
        Limits::check(
            "max_hint_bytes",
            (artifacts.hint.len() as u64).saturating_sub(HEADER_ALLOWANCE as u64),
            limits.max_hint_bytes,
        )?;
        Limits::check(
            "max_scales_bytes",
            artifacts.scales.len() as u64,
            limits.max_scales_bytes,
        )?;
        limits.check_preparation(&shape, artifacts.ids.len() as u64)?;
        let hint_words = check_hint(&description, &shape, &artifacts.hint)?;
        let ids = parse_ids(&artifacts.ids, g.items)?;
        let scales = parse_scales(&artifacts.scales, g.items, g.dimension)?;
        let (mask_limbs, hint) = transforms(&description.catalog, &shape, &hint_words);
        Ok(PreparedCatalog {
            catalog: description.catalog,
            shape,
            mask_limbs,
            hint,
            ids,
            scales: scales.items,
            dimension_scales: scales.dimensions,
            space,
            artifact_bytes: artifacts.len(),
        })
    }

    /// Prepare from a shape and hint words the caller computed itself, without checks, with
    /// ids "0", "1", ... and unit scales (the known-answer and noise tests' hook).
    #[cfg(test)]
    pub(crate) fn from_parts(catalog: CatalogRef, shape: CatalogShape, hint_words: &[u64]) -> Self {
        let (mask_limbs, hint) = transforms(&catalog, &shape, hint_words);
        let items = shape.geometry.items;
        PreparedCatalog {
            catalog,
            shape,
            mask_limbs,
            hint,
            ids: (0..items).map(|i| i.to_string()).collect(),
            scales: vec![1.0; items],
            dimension_scales: None,
            space: EmbeddingSpace {
                model: "test".into(),
                dimension: shape.geometry.dimension,
                normalisation: Normalisation::None,
                metric: blindscore_common::api::Metric::Dot,
            },
            artifact_bytes: 0,
        }
    }

    /// Decode a description of catalog `name` under the app's limits, and check the shape it
    /// implies against them: the first check, before any other artefact is read
    /// ([`ReadLimits`] then gives the size each of them may have).
    pub fn check_description(
        name: &str,
        bytes: &[u8],
        limits: &Limits,
    ) -> Result<CatalogDescription, ClientError> {
        Limits::check(
            "max_description_bytes",
            bytes.len() as u64,
            limits.max_description_bytes,
        )?;
        let description: CatalogDescription = wire::decode(bytes, limits.max_description_bytes)?;
        if description.catalog.catalog_id != name {
            return Err(ProtocolError::CatalogMismatch {
                found: description.catalog.catalog_id,
                expected: name.into(),
            }
            .into());
        }
        limits.check_shape(&description.shape()?)?;
        Ok(description)
    }

    /// The most bytes to read for a response to a query for this version.
    pub fn read_limits(&self, limits: &Limits) -> ReadLimits {
        ReadLimits::new(&self.shape, limits)
    }

    /// The catalog's name.
    pub fn name(&self) -> &str {
        &self.catalog.catalog_id
    }

    /// The catalog version (its content digest).
    pub fn version(&self) -> CatalogVersion {
        self.catalog.version
    }

    /// Parameter id, name and version, as every message names them.
    pub fn catalog(&self) -> &CatalogRef {
        &self.catalog
    }

    /// Shape and noise budget, as recomputed on this device.
    pub fn shape(&self) -> &CatalogShape {
        &self.shape
    }

    /// Item ids in catalog order.
    pub fn ids(&self) -> &[String] {
        &self.ids
    }

    /// Per-item scales, in catalog order.
    pub fn item_scales(&self) -> &[f32] {
        &self.scales
    }

    /// The declared embedding space.
    pub fn space(&self) -> &EmbeddingSpace {
        &self.space
    }

    /// Bytes a query costs.
    pub fn cost(&self) -> QueryCost {
        QueryCost {
            up: self.shape.query_payload_bytes(),
            down: self.shape.response_payload_bytes(),
            once_per_version: self.artifact_bytes,
        }
    }

    /// Check a preference vector against the declared space (dimension, finiteness, unit
    /// norm for an L2-normalised catalog, and the model if the app names one) before
    /// anything is sent.
    pub fn check_vector(
        &self,
        preferences: &[f32],
        model: Option<&str>,
    ) -> Result<(), ClientError> {
        if let Some(model) = model {
            self.check_model(model)?;
        }
        if preferences.len() != self.space.dimension {
            return Err(ClientError::WrongDimension {
                found: preferences.len(),
                expected: self.space.dimension,
            });
        }
        if preferences.iter().any(|v| !v.is_finite()) {
            return Err(ClientError::SpaceMismatch(
                "the vector has a value that is not a finite number".into(),
            ));
        }
        if self.space.normalisation == Normalisation::L2 {
            let norm = preferences
                .iter()
                .map(|&v| (v as f64) * (v as f64))
                .sum::<f64>()
                .sqrt();
            if (norm - 1.0).abs() > NORM_TOLERANCE {
                return Err(ClientError::SpaceMismatch(format!(
                    "the catalog's vectors are L2-normalised but this one has norm {norm:.4}; normalise it first"
                )));
            }
        }
        Ok(())
    }

    /// Refuse a catalog whose declared model is not `model`.
    pub fn check_model(&self, model: &str) -> Result<(), ClientError> {
        if model != self.space.model {
            return Err(ClientError::SpaceMismatch(format!(
                "the catalog's model is {:?}, not {model:?}",
                self.space.model
            )));
        }
        Ok(())
    }
}

/// Check the hint against the description and unpack its words.
fn check_hint(
    description: &CatalogDescription,
    shape: &CatalogShape,
    hint_bytes: &[u8],
) -> Result<Vec<u64>, ClientError> {
    if sha256(hint_bytes) != description.hint_digest {
        return Err(ProtocolError::DigestMismatch(
            "the hint's SHA-256 differs from the description's",
        )
        .into());
    }
    let limit = shape.hint_payload_bytes() as u64 + HEADER_ALLOWANCE as u64;
    let hint: HintMessage = wire::decode(hint_bytes, limit)?;
    hint.check(&description.catalog, shape)?;
    Ok(bitpack::unpack(
        &hint.words,
        shape.budget.hint_bits(),
        shape.geometry.hint_coefficients(),
        "hint",
    )?)
}

/// The transforms of the masks' limbs and of the hint.
fn transforms(
    catalog: &CatalogRef,
    shape: &CatalogShape,
    hint_words: &[u64],
) -> (Vec<c64>, Vec<c64>) {
    debug_assert_eq!(limb_count(LIMB_BITS), LIMBS);
    let g = shape.geometry;
    let n = g.n;
    let half = n / 2;
    let mut fft = NegacyclicFft::new(n);
    let masks = Masks::derive(
        shape.params,
        &catalog.catalog_id,
        &catalog.version,
        g.groups(),
    );
    let mut mask_limbs = vec![c64::new(0.0, 0.0); g.groups() * LIMBS * half];
    let mut limb = vec![0u64; n];
    for (gi, out) in mask_limbs.chunks_exact_mut(LIMBS * half).enumerate() {
        mask_limb_transforms(&mut fft, masks.mask(gi), LIMB_BITS, &mut limb, out);
    }
    let width = shape.budget.hint_bits();
    let mut hint = vec![c64::new(0.0, 0.0); g.blocks() * half];
    let mut torus = vec![0u64; n];
    for (out, words) in hint.chunks_exact_mut(half).zip(hint_words.chunks_exact(n)) {
        for (t, w) in torus.iter_mut().zip(words) {
            *t = word_to_torus(*w, width);
        }
        fft.forward_torus(out, &torus);
    }
    (mask_limbs, hint)
}
