//! An encoded query, decoded and checked once against a catalog version.

use std::ops::Range;

use bytes::Bytes;

use blindscore_common::wire::{self, QueryView};
use blindscore_common::{bitpack, CatalogRef, CatalogShape, CatalogVersion, ProtocolError};

/// A query message that passed every check a catalog version makes: its wire version, its
/// catalog reference, the exact payload length, the width and padding of its packed
/// bodies. It keeps the received bytes (shared, not copied) and where its bodies lie in
/// them. The HTTP handler makes it, the batcher carries it, and the evaluator takes it
/// without checking again.
#[derive(Clone)]
pub struct CheckedQuery {
    message: Bytes,
    bodies: Range<usize>,
    version: CatalogVersion,
}

impl CheckedQuery {
    /// Decode `message` (at most `max_bytes` long) and check it against `catalog` in
    /// `shape`.
    pub fn check(
        message: Bytes,
        max_bytes: u64,
        catalog: &CatalogRef,
        shape: &CatalogShape,
    ) -> Result<Self, ProtocolError> {
        let view: QueryView<'_> = wire::decode_view(&message, max_bytes)?;
        view.check(catalog, shape)?;
        bitpack::check_packed(
            view.bodies,
            shape.budget.query_bits(),
            shape.geometry.query_coefficients(),
            "query bodies",
        )?;
        // The bodies borrow from the message: their place in it, by address.
        let start = view.bodies.as_ptr() as usize - message.as_ptr() as usize;
        let bodies = start..start + view.bodies.len();
        Ok(CheckedQuery {
            message,
            bodies,
            version: catalog.version,
        })
    }

    /// The packed bodies, one polynomial per group.
    pub fn bodies(&self) -> &[u8] {
        &self.message[self.bodies.clone()]
    }

    /// The catalog version the query was checked against.
    pub fn version(&self) -> &CatalogVersion {
        &self.version
    }

    /// The message as received (what a router forwards to every shard).
    pub fn into_bytes(self) -> Bytes {
        self.message
    }
}

impl std::fmt::Debug for CheckedQuery {
    // A query is never logged: only its size and version.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "CheckedQuery({} bytes for version {})",
            self.message.len(),
            self.version
        )
    }
}
