//! Catalog versions (content digests) and the derivation of the public mask seed.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::layout::Layout;
use crate::params::{ParamId, TFHE_VERSION};

/// A catalog version: SHA-256 over everything that decides the scores. The same content
/// always has the same version, so restarts keep every client cache valid.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CatalogVersion(pub [u8; 32]);

impl CatalogVersion {
    /// Lower-case hex, as used in URLs and logs.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    /// Parse 64 hex digits.
    pub fn from_hex(s: &str) -> Option<Self> {
        let bytes = s.as_bytes();
        if bytes.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            let hi = (pair[0] as char).to_digit(16)?;
            let lo = (pair[1] as char).to_digit(16)?;
            out[i] = (hi * 16 + lo) as u8;
        }
        Some(CatalogVersion(out))
    }
}

impl std::fmt::Display for CatalogVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl std::fmt::Debug for CatalogVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CatalogVersion({})", &self.to_hex()[..16])
    }
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 fed with length-prefixed fields, so no two field lists hash alike.
#[derive(Default)]
pub struct FieldHasher(Sha256);

impl FieldHasher {
    /// Start a hash under a domain tag.
    pub fn new(domain: &str) -> Self {
        let mut h = FieldHasher(Sha256::new());
        h.field(domain.as_bytes());
        h
    }

    /// Add one field: its length (u64, little endian) then its bytes.
    pub fn field(&mut self, bytes: &[u8]) -> &mut Self {
        self.0.update((bytes.len() as u64).to_le_bytes());
        self.0.update(bytes);
        self
    }

    /// Add a field of i16 values (little endian), streamed in chunks.
    pub fn field_i16s(&mut self, values: &[i16]) -> &mut Self {
        self.0.update(((values.len() * 2) as u64).to_le_bytes());
        let mut buf = Vec::with_capacity(1 << 16);
        for chunk in values.chunks(1 << 15) {
            buf.clear();
            buf.extend(chunk.iter().flat_map(|v| v.to_le_bytes()));
            self.0.update(&buf);
        }
        self
    }

    /// The digest.
    pub fn finish(self) -> [u8; 32] {
        self.0.finalize().into()
    }
}

/// SHA-256 of raw bytes (used for the hint digest).
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// What a catalog version is computed over.
pub struct VersionInput<'a> {
    pub params: ParamId,
    pub layout: Layout,
    pub catalog_bits: u32,
    pub query_bits: u32,
    pub delta_log2: u32,
    pub dimension: usize,
    /// Per-item scales (may be empty).
    pub scales: &'a [f32],
    /// The quantized catalog, row-major.
    pub values: &'a [i16],
    /// Other per-item data served under the version (the encoded item ids), so that a
    /// change there is a new version too; may be empty.
    pub item_data: &'a [u8],
}

/// The content digest of a catalog.
pub fn catalog_version(input: &VersionInput<'_>) -> CatalogVersion {
    let mut h = FieldHasher::new("blindscore/catalog-version/v1");
    h.field(&input.params.0.to_le_bytes())
        .field(&(input.layout.group_size() as u64).to_le_bytes())
        .field(&input.catalog_bits.to_le_bytes())
        .field(&input.query_bits.to_le_bytes())
        .field(&input.delta_log2.to_le_bytes())
        .field(&(input.dimension as u64).to_le_bytes());
    let scale_bytes: Vec<u8> = input.scales.iter().flat_map(|s| s.to_le_bytes()).collect();
    h.field(&scale_bytes);
    h.field(input.item_data);
    h.field_i16s(input.values);
    CatalogVersion(h.finish())
}

/// Domain tag of the mask seed; names the exact tfhe release whose expansion it feeds.
pub fn mask_seed_domain() -> String {
    format!("blindscore/mask-seed/v1/tfhe={TFHE_VERSION}")
}

/// The public mask seed: the first 128 bits of SHA-256 over length-prefixed (domain tag,
/// parameter id, catalog id, version), read little endian.
pub fn mask_seed(params: ParamId, catalog_id: &str, version: &CatalogVersion) -> u128 {
    let mut h = FieldHasher::new(&mask_seed_domain());
    h.field(&params.0.to_le_bytes())
        .field(catalog_id.as_bytes())
        .field(&version.0);
    let d = h.finish();
    let mut first = [0u8; 16];
    first.copy_from_slice(&d[..16]);
    u128::from_le_bytes(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_hex_round_trips() {
        let v = CatalogVersion([0xab; 32]);
        assert_eq!(CatalogVersion::from_hex(&v.to_hex()), Some(v));
        assert_eq!(CatalogVersion::from_hex("zz"), None);
        assert_eq!(CatalogVersion::from_hex(&"g".repeat(64)), None);
    }

    #[test]
    fn length_prefixes_separate_fields() {
        let a = mask_seed(ParamId(1), "ab", &CatalogVersion([0; 32]));
        let b = mask_seed(ParamId(1), "a", &CatalogVersion([0; 32]));
        assert_ne!(a, b);
    }

    #[test]
    fn version_depends_on_every_value() {
        let values = vec![1i16; 1000];
        let mut other = values.clone();
        other[999] = 2;
        let v = |values: &[i16]| {
            catalog_version(&VersionInput {
                params: ParamId(1),
                layout: Layout::Column,
                catalog_bits: 8,
                query_bits: 8,
                delta_log2: 38,
                dimension: 10,
                scales: &[],
                values,
                item_data: &[],
            })
        };
        assert_eq!(v(&values), v(&values));
        assert_ne!(v(&values), v(&other));
    }
}
