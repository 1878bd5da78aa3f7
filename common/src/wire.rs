//! Versioned wire messages (serde + bincode). Every message names the parameter id, the
//! catalog id and the catalog version it belongs to, so a mismatch is a typed error rather
//! than garbage scores.

use bincode::Options;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::catalog::CatalogShape;
use crate::digest::CatalogVersion;
use crate::error::ProtocolError;
use crate::layout::Layout;
use crate::params::{self, ParamId};

/// The wire format version this build speaks.
pub const WIRE_VERSION: u16 = 1;

/// Bytes a message may carry beyond its payload (its header: versions, catalog reference,
/// lengths). Every read limit is a payload size plus this.
pub const HEADER_ALLOWANCE: usize = 4096;

/// Longest catalog id.
pub const MAX_CATALOG_ID_LEN: usize = 64;

/// Which catalog version a message belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CatalogRef {
    /// Row of the parameter table.
    pub param_id: ParamId,
    /// Operator-chosen catalog name.
    pub catalog_id: String,
    /// Content digest of the catalog.
    pub version: CatalogVersion,
}

impl CatalogRef {
    /// Check the fields that need no context: a known parameter id and a sane catalog id.
    pub fn validate(&self) -> Result<(), ProtocolError> {
        params::lookup(self.param_id)?;
        validate_catalog_id(&self.catalog_id)
    }

    /// Check that this reference names `expected`, reporting which part differs.
    pub fn expect(&self, expected: &CatalogRef) -> Result<(), ProtocolError> {
        if self.param_id != expected.param_id {
            return Err(ProtocolError::ParameterMismatch {
                found: self.param_id,
                expected: expected.param_id,
            });
        }
        if self.catalog_id != expected.catalog_id {
            return Err(ProtocolError::CatalogMismatch {
                found: self.catalog_id.clone(),
                expected: expected.catalog_id.clone(),
            });
        }
        if self.version != expected.version {
            return Err(ProtocolError::StaleVersion {
                found: self.version.to_hex(),
                expected: expected.version.to_hex(),
            });
        }
        Ok(())
    }
}

/// Catalog ids are 1 to 64 characters of `[A-Za-z0-9._-]`.
pub fn validate_catalog_id(id: &str) -> Result<(), ProtocolError> {
    let ok = !id.is_empty()
        && id.len() <= MAX_CATALOG_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ProtocolError::Malformed(format!(
            "catalog id must be 1 to {MAX_CATALOG_ID_LEN} characters of [A-Za-z0-9._-]"
        )))
    }
}

/// What a client needs to know about a catalog version before it queries it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CatalogDescription {
    pub wire_version: u16,
    pub catalog: CatalogRef,
    pub item_count: u64,
    pub dimension: u32,
    pub layout: Layout,
    pub catalog_bits: u8,
    pub query_bits: u8,
    /// Largest block norm^2, the budget's input.
    pub block_norm_sq: u64,
    /// Target failure probability per query, log2.
    pub failure_log2: i32,
    /// The budget's outputs, which the client recomputes and compares.
    pub delta_log2: u8,
    pub modulus_log2: u8,
    pub query_low: u8,
    pub hint_low: u8,
    pub response_low: u8,
    /// SHA-256 of the encoded [`HintMessage`].
    pub hint_digest: [u8; 32],
}

impl CatalogDescription {
    /// Describe a catalog version of a given shape.
    pub fn new(catalog: CatalogRef, shape: &CatalogShape, hint_digest: [u8; 32]) -> Self {
        let b = &shape.budget;
        CatalogDescription {
            wire_version: WIRE_VERSION,
            catalog,
            item_count: shape.geometry.items as u64,
            dimension: shape.geometry.dimension as u32,
            layout: shape.layout,
            catalog_bits: shape.catalog_bits as u8,
            query_bits: shape.query_bits as u8,
            block_norm_sq: shape.block_norm_sq,
            failure_log2: shape.failure_log2,
            delta_log2: b.delta_log2 as u8,
            modulus_log2: b.modulus_log2 as u8,
            query_low: b.query_low as u8,
            hint_low: b.hint_low as u8,
            response_low: b.response_low as u8,
            hint_digest,
        }
    }

    /// Range-check everything and recompute the shape from the compiled-in parameter table;
    /// the advertised budget must equal the recomputed one. This is how a client trusts no
    /// number a server sends.
    pub fn shape(&self) -> Result<CatalogShape, ProtocolError> {
        check_wire_version(self.wire_version)?;
        self.catalog.validate()?;
        let params = params::lookup(self.catalog.param_id)?;
        let shape = CatalogShape::new(
            params,
            self.layout,
            self.dimension as usize,
            usize::try_from(self.item_count).map_err(|_| ProtocolError::OutOfRange {
                what: "item count",
                value: self.item_count,
                allowed: "fits this machine".into(),
            })?,
            self.catalog_bits as u32,
            self.query_bits as u32,
            self.block_norm_sq,
            self.failure_log2,
        )?;
        let b = &shape.budget;
        let advertised = [
            self.delta_log2,
            self.modulus_log2,
            self.query_low,
            self.hint_low,
            self.response_low,
        ];
        let computed = [
            b.delta_log2,
            b.modulus_log2,
            b.query_low,
            b.hint_low,
            b.response_low,
        ]
        .map(|x| x as u8);
        if advertised != computed {
            return Err(ProtocolError::Malformed(format!(
                "advertised budget (delta, modulus, query, hint, response bits) {advertised:?} differs from the \
                 budget computed from the catalog's parameters {computed:?}"
            )));
        }
        Ok(shape)
    }
}

/// The catalog hint, H_block = sum_g a_g * P_g for every block, bit-packed at the
/// budget's hint width.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HintMessage {
    pub wire_version: u16,
    pub catalog: CatalogRef,
    #[serde(with = "serde_bytes_vec")]
    pub words: Vec<u8>,
}

/// An encrypted query: G bodies of N coefficients, bit-packed at the budget's query width.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryMessage {
    pub wire_version: u16,
    pub catalog: CatalogRef,
    #[serde(with = "serde_bytes_vec")]
    pub bodies: Vec<u8>,
}

/// Encrypted scores: one score-bearing coefficient per item, bit-packed at the budget's
/// response width.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseMessage {
    pub wire_version: u16,
    pub catalog: CatalogRef,
    #[serde(with = "serde_bytes_vec")]
    pub scores: Vec<u8>,
}

/// A [`QueryMessage`] decoded without copying its payload (same bytes on the wire).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct QueryView<'a> {
    pub wire_version: u16,
    pub catalog: CatalogRef,
    #[serde(borrow)]
    pub bodies: &'a [u8],
}

/// A [`ResponseMessage`] decoded without copying its payload (same bytes on the wire).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct ResponseView<'a> {
    pub wire_version: u16,
    pub catalog: CatalogRef,
    #[serde(borrow)]
    pub scores: &'a [u8],
}

macro_rules! payload_check {
    ($ty:ty, $field:ident, $len:ident, $what:literal) => {
        impl $ty {
            /// Check version, catalog and exact payload length against what is expected.
            pub fn check(
                &self,
                expected: &CatalogRef,
                shape: &CatalogShape,
            ) -> Result<(), ProtocolError> {
                check_wire_version(self.wire_version)?;
                self.catalog.expect(expected)?;
                let want = shape.$len();
                if self.$field.len() != want {
                    return Err(ProtocolError::WrongLength {
                        what: $what,
                        found: self.$field.len(),
                        expected: want,
                    });
                }
                Ok(())
            }
        }
    };
}

payload_check!(HintMessage, words, hint_payload_bytes, "hint bytes");
payload_check!(QueryMessage, bodies, query_payload_bytes, "query bytes");
payload_check!(
    ResponseMessage,
    scores,
    response_payload_bytes,
    "response bytes"
);
payload_check!(QueryView<'_>, bodies, query_payload_bytes, "query bytes");
payload_check!(
    ResponseView<'_>,
    scores,
    response_payload_bytes,
    "response bytes"
);

fn check_wire_version(v: u16) -> Result<(), ProtocolError> {
    if v == WIRE_VERSION {
        Ok(())
    } else {
        Err(ProtocolError::WireVersion {
            found: v,
            expected: WIRE_VERSION,
        })
    }
}

fn options(limit: u64) -> impl Options {
    bincode::DefaultOptions::new()
        .with_limit(limit)
        .reject_trailing_bytes()
}

/// Encode a message.
pub fn encode<T: Serialize>(message: &T) -> Vec<u8> {
    // Serialising plain data into a Vec cannot fail without a size limit.
    options(u64::MAX).serialize(message).unwrap_or_default()
}

/// The encoding of a [`ResponseMessage`] up to its scores: the whole message is these bytes
/// followed by exactly `scores_len` bytes of scores, so a server can write the scores in
/// place instead of copying them into the message.
pub fn response_prefix(wire_version: u16, catalog: &CatalogRef, scores_len: usize) -> Vec<u8> {
    let mut prefix = encode(&ResponseMessage {
        wire_version,
        catalog: catalog.clone(),
        scores: Vec::new(),
    });
    // The empty scores end the message as their length, 0, in one byte; put the real
    // length in its place.
    prefix.pop();
    prefix.extend(encode(&(scores_len as u64)));
    prefix
}

/// Decode a message, reading at most `limit` bytes of allocations; trailing bytes are an
/// error.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], limit: u64) -> Result<T, ProtocolError> {
    options(limit)
        .deserialize(bytes)
        .map_err(|e| ProtocolError::Malformed(e.to_string()))
}

/// Decode a view that borrows its payload from `bytes`.
pub fn decode_view<'a, T: Deserialize<'a>>(
    bytes: &'a [u8],
    limit: u64,
) -> Result<T, ProtocolError> {
    options(limit)
        .deserialize(bytes)
        .map_err(|e| ProtocolError::Malformed(e.to_string()))
}

/// Byte vectors as one length-prefixed blob rather than a sequence of u8 (same bytes in
/// bincode, but deserialised in one copy).
mod serde_bytes_vec {
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
        }
        d.deserialize_byte_buf(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_prefix_and_scores_are_the_encoded_message() {
        let catalog = CatalogRef {
            param_id: ParamId(1),
            catalog_id: "films".into(),
            version: CatalogVersion([7; 32]),
        };
        // Lengths on each side of every change in the length's encoded size.
        for len in [0usize, 1, 250, 251, 65_535, 65_536, 3_000_000] {
            let scores: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let mut message = response_prefix(4, &catalog, len);
            message.extend(&scores);
            let expected = encode(&ResponseMessage {
                wire_version: 4,
                catalog: catalog.clone(),
                scores,
            });
            assert_eq!(message, expected, "{len} bytes of scores");
        }
    }
}
