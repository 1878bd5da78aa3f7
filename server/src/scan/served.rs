//! One catalog version ready to serve: its description, its hint and its scan.

use bytes::Bytes;

use blindscore_common::digest::{catalog_version, sha256, VersionInput};
use blindscore_common::masks::Masks;
use blindscore_common::wire::{self, HEADER_ALLOWANCE, WIRE_VERSION};
use blindscore_common::{
    bitpack, CatalogDescription, CatalogRef, CatalogShape, GlweParams, HintMessage, LayoutChoice,
    ProtocolError, QuantizedCatalog,
};

use super::{hint, CheckedQuery, Evaluator, FourierCatalog, Kernel, ResponseMessage};

/// One catalog version, ready to serve.
pub struct ServedCatalog {
    catalog_ref: CatalogRef,
    shape: CatalogShape,
    description: CatalogDescription,
    hint_message: Vec<u8>,
    fourier: FourierCatalog,
    kernel: Kernel,
}

/// What to build a served catalog from.
pub struct CatalogSource<'a> {
    /// Operator-chosen name.
    pub catalog_id: &'a str,
    /// Parameter set.
    pub params: &'static GlweParams,
    /// The quantized item vectors.
    pub catalog: &'a QuantizedCatalog,
    /// Per-item scales, optionally followed by one scale per dimension (folded into the
    /// query by the client), or empty; part of the version.
    pub scales: &'a [f32],
    /// Width of query values, bits.
    pub query_bits: u32,
    /// Layout fixed or chosen by the layout objective.
    pub layout: LayoutChoice,
    /// Other per-item data served under the version (the encoded ids); part of the version.
    pub item_data: &'a [u8],
}

impl CatalogSource<'_> {
    /// The version (content digest) of this source built in `shape`.
    pub fn version(&self, shape: &CatalogShape) -> blindscore_common::CatalogVersion {
        catalog_version(&VersionInput {
            params: self.params.id,
            layout: shape.layout,
            catalog_bits: shape.catalog_bits,
            query_bits: shape.query_bits,
            delta_log2: shape.budget.delta_log2,
            dimension: self.catalog.dimension(),
            scales: self.scales,
            values: self.catalog.values(),
            item_data: self.item_data,
        })
    }
}

impl ServedCatalog {
    /// Compute the shape and version, transform the catalog and compute the hint.
    /// `progress` is called with (step, blocks done, blocks in all), step being
    /// "fourier" or "hint".
    pub fn build(
        source: &CatalogSource<'_>,
        progress: &(dyn Fn(&str, usize, usize) + Sync),
    ) -> Result<Self, ProtocolError> {
        wire::validate_catalog_id(source.catalog_id)?;
        let catalog = source.catalog;
        let with_dims = catalog.items() + catalog.dimension();
        if !source.scales.is_empty()
            && source.scales.len() != catalog.items()
            && source.scales.len() != with_dims
        {
            return Err(ProtocolError::WrongLength {
                what: "item scales",
                found: source.scales.len(),
                expected: catalog.items(),
            });
        }
        let shape =
            CatalogShape::for_catalog(source.params, catalog, source.query_bits, source.layout)?;
        let version = source.version(&shape);
        let catalog_ref = CatalogRef {
            param_id: source.params.id,
            catalog_id: source.catalog_id.to_string(),
            version,
        };
        let masks = Masks::derive(
            source.params,
            source.catalog_id,
            &version,
            shape.geometry.groups(),
        );
        // The hint first: its temporaries are gone before the large Fourier catalog is
        // allocated, which lowers the peak of a build.
        let mut words = hint::exact_hint(&shape, catalog, &masks, &|d, t| progress("hint", d, t));
        hint::cut_to_words(&shape, &mut words);
        let hint_message = wire::encode(&HintMessage {
            wire_version: WIRE_VERSION,
            catalog: catalog_ref.clone(),
            words: bitpack::pack(&words, shape.budget.hint_bits()),
        });
        drop(words);
        let fourier = FourierCatalog::build(&shape, catalog, &|d, t| progress("fourier", d, t));
        let description =
            CatalogDescription::new(catalog_ref.clone(), &shape, sha256(&hint_message));
        Ok(ServedCatalog {
            catalog_ref,
            shape,
            description,
            hint_message,
            fourier,
            kernel: Kernel::detect(),
        })
    }

    /// Use a given kernel for scoring (the portable one, e.g., to compare).
    pub fn set_kernel(&mut self, kernel: Kernel) {
        self.kernel = if kernel.is_available() {
            kernel
        } else {
            Kernel::Portable
        };
    }

    /// Which catalog version this is.
    pub fn catalog_ref(&self) -> &CatalogRef {
        &self.catalog_ref
    }

    /// Shape and budget.
    pub fn shape(&self) -> &CatalogShape {
        &self.shape
    }

    /// What clients fetch first.
    pub fn description(&self) -> &CatalogDescription {
        &self.description
    }

    /// The encoded hint message (its SHA-256 is in the description).
    pub fn hint_message(&self) -> &[u8] {
        &self.hint_message
    }

    /// The Fourier catalog.
    pub fn fourier(&self) -> &FourierCatalog {
        &self.fourier
    }

    /// An evaluator over this catalog.
    pub fn evaluator(&self) -> Evaluator<'_> {
        Evaluator::with_kernel(&self.shape, &self.fourier, self.kernel)
    }

    /// Largest encoded query this catalog accepts.
    pub fn max_query_bytes(&self) -> u64 {
        (self.shape.query_payload_bytes() + HEADER_ALLOWANCE) as u64
    }

    /// Decode and check an encoded query against this version, once: what the scan then
    /// takes without checking again.
    pub fn check_query(&self, message: Bytes) -> Result<CheckedQuery, ProtocolError> {
        CheckedQuery::check(
            message,
            self.max_query_bytes(),
            &self.catalog_ref,
            &self.shape,
        )
    }

    /// Score checked queries in one pass: one encoded response per query, in order.
    pub fn score(&self, queries: &[CheckedQuery]) -> Vec<ResponseMessage> {
        for query in queries {
            assert_eq!(
                query.version(),
                &self.catalog_ref.version,
                "a query checked against another version"
            );
        }
        let evaluator = self.evaluator();
        let batch = evaluator.prepare(queries);
        let prefix = wire::response_prefix(
            WIRE_VERSION,
            &self.catalog_ref,
            self.shape.response_payload_bytes(),
        );
        evaluator.respond(&batch, &prefix)
    }

    /// Check and score one encoded query.
    pub fn score_encoded(&self, message: &[u8]) -> Result<ResponseMessage, ProtocolError> {
        let query = self.check_query(Bytes::copy_from_slice(message))?;
        Ok(self
            .score(std::slice::from_ref(&query))
            .pop()
            .expect("one response per query"))
    }
}
