//! The app's limits on what a server may make this device fetch, hold and send. Every size
//! a description implies is checked against them before anything is allocated, so a
//! hostile server cannot exhaust the device: the compiled-in protocol caps (2^26 items,
//! d up to 4096) are far beyond what a phone should accept.

use blindscore_common::api::EmbeddingSpace;
use blindscore_common::artefacts::MAX_ENCODED_ID_BYTES;
use blindscore_common::wire::HEADER_ALLOWANCE;
use blindscore_common::CatalogShape;

use crate::error::ClientError;

const MIB: u64 = 1 << 20;

/// Limits on one catalog version and its queries. The defaults admit the demo catalog,
/// 1M x 128 in the column layout (a 4.2 MiB hint, 1.3 MiB up and 2.9 MiB down) or in the
/// grouped layout the server's layout objective picks for it, and 4M x 128 in the column layout
/// (a 16.7 MiB hint, 11.4 MiB down), and not much more: preparing the largest catalog they
/// admit takes at most `max_preparation_bytes`, 768 MiB by the estimate
/// [`preparation_bytes`]. (4M x 128 in the layout the layout objective picks, b = 4 with a
/// 67 MiB hint, is over `max_hint_bytes`: serve a catalog that large in the column layout.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Items in a catalog (default 4,194,304).
    pub max_items: u64,
    /// Dimension of its vectors (default 2,048).
    pub max_dimension: u64,
    /// Bytes of the description (default 64 KiB).
    pub max_description_bytes: u64,
    /// Bytes of the hint (default 64 MiB).
    pub max_hint_bytes: u64,
    /// Bytes of the ids (default 128 MiB: 32 bytes an id at 4M items).
    pub max_ids_bytes: u64,
    /// Bytes of the scales (default 32 MiB).
    pub max_scales_bytes: u64,
    /// Bytes of one encrypted query, up (default 8 MiB).
    pub max_query_bytes: u64,
    /// Bytes of one response, down (default 16 MiB).
    pub max_response_bytes: u64,
    /// Memory that checking and preparing a catalog version may take: the artefacts, the
    /// mask and hint transforms, the parsed ids and scales (default 768 MiB).
    pub max_preparation_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_items: 1 << 22,
            max_dimension: 2048,
            max_description_bytes: 64 * 1024,
            max_hint_bytes: 64 * MIB,
            max_ids_bytes: 128 * MIB,
            max_scales_bytes: 32 * MIB,
            max_query_bytes: 8 * MIB,
            max_response_bytes: 16 * MIB,
            max_preparation_bytes: 768 * MIB,
        }
    }
}

/// The most bytes a transport reads for each artefact of a version, and for a response to
/// one of its queries, once its description is checked: what the description implies, or
/// the app's limit where that is smaller (then a larger body is over the limit, named).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadLimits {
    pub hint: ReadLimit,
    pub ids: ReadLimit,
    pub scales: ReadLimit,
    pub response: ReadLimit,
}

/// The most bytes of one body, and the app's limit that sets it, if one does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadLimit {
    pub bytes: u64,
    pub limit: Option<&'static str>,
}

impl ReadLimit {
    /// A limit the protocol sets (no app limit named when it is passed).
    pub fn protocol(bytes: u64) -> Self {
        ReadLimit { bytes, limit: None }
    }

    fn of(implied: u64, name: &'static str, allowed: u64) -> Self {
        if allowed < implied {
            ReadLimit {
                bytes: allowed,
                limit: Some(name),
            }
        } else {
            ReadLimit {
                bytes: implied,
                limit: None,
            }
        }
    }

    /// The error for a body that has grown to `value` bytes, past this limit.
    pub fn exceeded(&self, value: u64) -> ClientError {
        match self.limit {
            Some(limit) => ClientError::OverLimit {
                limit,
                value,
                allowed: self.bytes,
            },
            None => blindscore_common::ProtocolError::OutOfRange {
                what: "body size",
                value,
                allowed: format!("at most {} bytes", self.bytes),
            }
            .into(),
        }
    }
}

impl ReadLimits {
    /// The read limits of a version of this (checked) shape.
    pub fn new(shape: &CatalogShape, limits: &Limits) -> Self {
        let g = shape.geometry;
        let allowance = HEADER_ALLOWANCE as u64;
        let items = g.items as u64;
        ReadLimits {
            hint: ReadLimit::of(
                (shape.hint_payload_bytes() as u64).saturating_add(allowance),
                "max_hint_bytes",
                limits.max_hint_bytes.saturating_add(allowance),
            ),
            ids: ReadLimit::of(
                items
                    .saturating_mul(MAX_ENCODED_ID_BYTES as u64)
                    .saturating_add(allowance),
                "max_ids_bytes",
                limits.max_ids_bytes,
            ),
            scales: ReadLimit::of(
                items.saturating_add(g.dimension as u64).saturating_mul(4),
                "max_scales_bytes",
                limits.max_scales_bytes,
            ),
            response: ReadLimit::of(
                (shape.response_payload_bytes() as u64).saturating_add(allowance),
                "max_response_bytes",
                limits.max_response_bytes.saturating_add(allowance),
            ),
        }
    }
}

/// Bytes a parsed id may take beyond its text: its `String` twice over (the list grows by
/// doubling while it is parsed) and the smallest heap block for its text.
const ID_OVERHEAD: u64 = 2 * 24 + 32;

impl Limits {
    /// No limits at all: only for a server trusted entirely, such as a benchmark's or a
    /// test's own, never for one an app reaches over a network.
    pub fn none() -> Self {
        Limits {
            max_items: u64::MAX,
            max_dimension: u64::MAX,
            max_description_bytes: u64::MAX,
            max_hint_bytes: u64::MAX,
            max_ids_bytes: u64::MAX,
            max_scales_bytes: u64::MAX,
            max_query_bytes: u64::MAX,
            max_response_bytes: u64::MAX,
            max_preparation_bytes: u64::MAX,
        }
    }

    /// Check one figure.
    pub(crate) fn check(limit: &'static str, value: u64, allowed: u64) -> Result<(), ClientError> {
        if value > allowed {
            return Err(ClientError::OverLimit {
                limit,
                value,
                allowed,
            });
        }
        Ok(())
    }

    /// Check a declared embedding space (from the catalog info, before anything else is
    /// fetched) against these limits and against what the app expects: its model, and each
    /// dimension it names (its setting, the vector in hand).
    pub fn check_space(
        &self,
        space: &EmbeddingSpace,
        model: Option<&str>,
        dimensions: impl IntoIterator<Item = usize>,
    ) -> Result<(), ClientError> {
        if let Some(model) = model {
            if model != space.model {
                return Err(ClientError::SpaceMismatch(format!(
                    "the catalog's model is {:?}, not {model:?}",
                    space.model
                )));
            }
        }
        for expected in dimensions {
            if expected != space.dimension {
                return Err(ClientError::WrongDimension {
                    found: expected,
                    expected: space.dimension,
                });
            }
        }
        Self::check("max_dimension", space.dimension as u64, self.max_dimension)
    }

    /// Check everything a checked description implies, before its hint, ids or scales are
    /// fetched or parsed.
    pub fn check_shape(&self, shape: &CatalogShape) -> Result<(), ClientError> {
        let g = shape.geometry;
        Self::check("max_items", g.items as u64, self.max_items)?;
        Self::check("max_dimension", g.dimension as u64, self.max_dimension)?;
        Self::check(
            "max_hint_bytes",
            shape.hint_payload_bytes() as u64,
            self.max_hint_bytes,
        )?;
        Self::check(
            "max_query_bytes",
            shape.query_payload_bytes() as u64,
            self.max_query_bytes,
        )?;
        Self::check(
            "max_response_bytes",
            shape.response_payload_bytes() as u64,
            self.max_response_bytes,
        )?;
        Self::check(
            "max_scales_bytes",
            (g.items as u64 + g.dimension as u64) * 4,
            self.max_scales_bytes,
        )?;
        Self::check(
            "max_preparation_bytes",
            preparation_bytes(shape, self.max_ids_bytes),
            self.max_preparation_bytes,
        )
    }

    /// Check the preparation's memory once the ids' size is known.
    pub(crate) fn check_preparation(
        &self,
        shape: &CatalogShape,
        ids_bytes: u64,
    ) -> Result<(), ClientError> {
        Self::check("max_ids_bytes", ids_bytes, self.max_ids_bytes)?;
        Self::check(
            "max_preparation_bytes",
            preparation_bytes(shape, ids_bytes),
            self.max_preparation_bytes,
        )
    }
}

/// Memory that checking and preparing a version takes at its peak, bytes (saturating): the
/// hint's bytes, its unpacked words and its transform; the masks while they are expanded
/// (a full GLWE list and the masks, 24 bytes a coefficient) and their limb transforms (24
/// more); the ids' bytes and their parsed strings; the scales' bytes and values.
pub fn preparation_bytes(shape: &CatalogShape, ids_bytes: u64) -> u64 {
    let g = shape.geometry;
    let (n, items) = (g.n as u64, g.items as u64);
    let hint_coefficients = (g.blocks() as u64).saturating_mul(n);
    let hint =
        (shape.hint_payload_bytes() as u64).saturating_add(hint_coefficients.saturating_mul(16));
    let masks = (g.groups() as u64).saturating_mul(n).saturating_mul(48);
    let ids = ids_bytes
        .saturating_mul(2)
        .saturating_add(items.saturating_mul(ID_OVERHEAD));
    let scales = items.saturating_add(g.dimension as u64).saturating_mul(8);
    hint.saturating_add(masks)
        .saturating_add(ids)
        .saturating_add(scales)
}

#[cfg(test)]
mod tests {
    use super::*;
    use blindscore_common::params::DEFAULT_PARAMS;
    use blindscore_common::Layout;

    fn shape(layout: Layout, d: usize, items: usize, bits: u32) -> CatalogShape {
        let max = blindscore_common::budget::max_abs_for_bits(bits) as u64;
        let norm = (items.min(2048 / layout.group_size()) * d) as u64 * max * max;
        CatalogShape::new(DEFAULT_PARAMS, layout, d, items, bits, 8, norm, -40).unwrap()
    }

    #[test]
    fn the_estimate_saturates_instead_of_wrapping() {
        let s = shape(Layout::Column, 128, 1 << 20, 8);
        assert_eq!(preparation_bytes(&s, u64::MAX), u64::MAX);
    }

    #[test]
    fn the_defaults_admit_the_layouts_the_server_picks() {
        use blindscore_common::catalog::widest_catalog;
        use blindscore_common::objective::Objective;
        use blindscore_common::{LayoutChoice, QuantizedCatalog};
        // The demo catalog's and 1M x 128's shapes as the server's layout objective and width
        // search choose them for 16-bit rows.
        for (items, d) in [(12_000, 128), (1 << 20, 128)] {
            let values: Vec<i16> = (0..items * d)
                .map(|i| ((i * 7919 % 4001) as i32 - 2000) as i16)
                .collect();
            let catalog = QuantizedCatalog::new(d, 16, values).unwrap();
            let (shape, _, _) = widest_catalog(
                DEFAULT_PARAMS,
                &catalog,
                8,
                LayoutChoice::Auto(Objective::default()),
            )
            .unwrap();
            let limits = Limits::default();
            limits.check_shape(&shape).unwrap();
            limits.check_preparation(&shape, 20 * items as u64).unwrap();
        }
    }

    #[test]
    fn the_defaults_admit_real_catalogs() {
        let limits = Limits::default();
        // The demo catalog, 1M x 128 and 4M x 128 in the column layout.
        for s in [
            shape(Layout::Grouped(128), 128, 12_000, 8),
            shape(Layout::Column, 128, 1 << 20, 8),
            shape(Layout::Column, 128, 4 << 20, 8),
        ] {
            limits.check_shape(&s).unwrap();
            // 20 bytes an id.
            limits
                .check_preparation(&s, 20 * s.geometry.items as u64)
                .unwrap();
        }
    }

    #[test]
    fn the_defaults_refuse_what_a_hostile_server_could_ask() {
        let limits = Limits::default();
        // d = 4096 and one item: 22 MiB up per query and ~200 MiB of mask transforms.
        let wide = shape(Layout::Column, 4096, 1, 2);
        assert!(matches!(
            limits.check_shape(&wide),
            Err(ClientError::OverLimit {
                limit: "max_dimension",
                value: 4096,
                ..
            })
        ));
        // Just under the dimension limit, the upload is over its limit.
        let d2048 = shape(Layout::Column, 2048, 1, 2);
        assert!(matches!(
            limits.check_shape(&d2048),
            Err(ClientError::OverLimit {
                limit: "max_query_bytes",
                ..
            })
        ));
        // 2^26 items, the protocol's cap.
        let huge = shape(Layout::Column, 128, 1 << 26, 2);
        assert!(matches!(
            limits.check_shape(&huge),
            Err(ClientError::OverLimit {
                limit: "max_items",
                ..
            })
        ));
        // Ids past their limit.
        let ok = shape(Layout::Column, 128, 1 << 20, 8);
        assert!(matches!(
            limits.check_preparation(&ok, 1 << 30),
            Err(ClientError::OverLimit {
                limit: "max_ids_bytes",
                ..
            })
        ));
    }

    #[test]
    fn the_space_is_checked_against_the_app_first() {
        let limits = Limits::default();
        let space = EmbeddingSpace {
            model: "m".into(),
            dimension: 384,
            normalisation: blindscore_common::api::Normalisation::L2,
            metric: blindscore_common::api::Metric::Cosine,
        };
        limits.check_space(&space, Some("m"), [384, 384]).unwrap();
        // The app's setting and the vector in hand are both checked.
        assert!(matches!(
            limits.check_space(&space, None, [384, 128]),
            Err(ClientError::WrongDimension { found: 128, .. })
        ));
        assert!(matches!(
            limits.check_space(&space, Some("other"), None),
            Err(ClientError::SpaceMismatch(_))
        ));
        assert!(matches!(
            limits.check_space(&space, None, Some(128)),
            Err(ClientError::WrongDimension {
                found: 128,
                expected: 384
            })
        ));
        let wide = EmbeddingSpace {
            dimension: 4096,
            ..space
        };
        assert!(matches!(
            limits.check_space(&wide, None, None),
            Err(ClientError::OverLimit {
                limit: "max_dimension",
                ..
            })
        ));
    }
}
