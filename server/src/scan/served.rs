//! One catalog version ready to serve: its description, its hint and its scan.

use bytes::Bytes;

use blindscore_common::digest::{catalog_version, sha256, VersionInput};
use blindscore_common::masks::Masks;
use blindscore_common::wire::{self, HEADER_ALLOWANCE, WIRE_VERSION};
use blindscore_common::{
    CatalogDescription, CatalogRef, CatalogShape, GlweParams, HintMessage, LayoutChoice,
    ProtocolError, QuantizedCatalog,
};

use super::{hint, CheckedQuery, Evaluator, FourierCatalog, Kernel, ResponseMessage, Tuning};

/// The encoded hint message of a catalog (or a shard's share) in `shape`.
fn hint_message(
    catalog_ref: &CatalogRef,
    shape: &CatalogShape,
    catalog: &QuantizedCatalog,
    masks: &Masks,
    progress: &(dyn Fn(&str, usize, usize) + Sync),
) -> Vec<u8> {
    wire::encode(&HintMessage {
        wire_version: WIRE_VERSION,
        catalog: catalog_ref.clone(),
        words: hint::packed_hint(shape, catalog, masks, &|d, t| progress("hint", d, t)),
    })
}

/// One catalog version (or one shard of it), ready to serve.
pub struct ServedCatalog {
    catalog_ref: CatalogRef,
    shape: CatalogShape,
    description: CatalogDescription,
    hint_message: Bytes,
    fourier: FourierCatalog,
    kernel: Kernel,
    tuning: Tuning,
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
        let hint_message = hint_message(&catalog_ref, &shape, catalog, &masks, progress);
        let description =
            CatalogDescription::new(catalog_ref.clone(), &shape, sha256(&hint_message));
        Ok(Self::assemble(
            description,
            shape,
            hint_message,
            catalog,
            progress,
        ))
    }

    /// Build one shard of a catalog version: `catalog` holds the shard's items (whole
    /// blocks of the catalog `description` describes), scanned under the catalog's version,
    /// masks and budget (see [`CatalogShape::share`]). Its hint message carries its share
    /// of the catalog's hint (its blocks); its description is the whole catalog's.
    pub fn build_share(
        description: &CatalogDescription,
        catalog: &QuantizedCatalog,
        progress: &(dyn Fn(&str, usize, usize) + Sync),
    ) -> Result<Self, ProtocolError> {
        let whole = description.shape()?;
        if catalog.dimension() != whole.geometry.dimension || catalog.bits() > whole.catalog_bits {
            return Err(ProtocolError::Malformed(format!(
                "a shard of {}-bit values in {} dimensions, for a catalog of {}-bit values in {}",
                catalog.bits(),
                catalog.dimension(),
                whole.catalog_bits,
                whole.geometry.dimension
            )));
        }
        let shape = whole.share(catalog.items())?;
        let catalog_ref = description.catalog.clone();
        let masks = Masks::derive(
            shape.params,
            &catalog_ref.catalog_id,
            &catalog_ref.version,
            shape.geometry.groups(),
        );
        let hint_message = hint_message(&catalog_ref, &shape, catalog, &masks, progress);
        Ok(Self::assemble(
            description.clone(),
            shape,
            hint_message,
            catalog,
            progress,
        ))
    }

    fn assemble(
        description: CatalogDescription,
        shape: CatalogShape,
        hint_message: Vec<u8>,
        catalog: &QuantizedCatalog,
        progress: &(dyn Fn(&str, usize, usize) + Sync),
    ) -> Self {
        let fourier = FourierCatalog::build(&shape, catalog, &|d, t| progress("fourier", d, t));
        ServedCatalog {
            catalog_ref: description.catalog.clone(),
            shape,
            description,
            hint_message: hint_message.into(),
            fourier,
            kernel: Kernel::detect(),
            tuning: Tuning::for_this_cpu(),
        }
    }

    /// Use a given kernel for scoring (the portable one, e.g., to compare).
    pub fn set_kernel(&mut self, kernel: Kernel) {
        self.kernel = if kernel.is_available() {
            kernel
        } else {
            Kernel::Portable
        };
    }

    /// Score with other tuning (the same bytes, at another speed; e.g., to compare).
    pub fn set_tuning(&mut self, tuning: Tuning) {
        self.tuning = tuning;
    }

    /// Which catalog version this is.
    pub fn catalog_ref(&self) -> &CatalogRef {
        &self.catalog_ref
    }

    /// Shape and budget, in which this process scans (a shard's: its share of the items).
    pub fn shape(&self) -> &CatalogShape {
        &self.shape
    }

    /// What clients fetch first.
    pub fn description(&self) -> &CatalogDescription {
        &self.description
    }

    /// The encoded hint message (its SHA-256 is in the description; a shard's carries its
    /// share of the hint).
    pub fn hint_message(&self) -> &[u8] {
        &self.hint_message
    }

    /// The encoded hint message, shared without a copy.
    pub fn hint_bytes(&self) -> Bytes {
        self.hint_message.clone()
    }

    /// The Fourier catalog.
    pub fn fourier(&self) -> &FourierCatalog {
        &self.fourier
    }

    /// An evaluator over this catalog.
    pub fn evaluator(&self) -> Evaluator<'_> {
        Evaluator::with_kernel(&self.shape, &self.fourier, self.kernel).with_tuning(self.tuning)
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
