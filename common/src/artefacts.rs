//! The encodings of a catalog version's per-item artefacts, written by the server and
//! checked by clients: the item ids (a JSON array of strings) and the scales (little-endian
//! f32, one per item, then optionally one per dimension).

use crate::error::ProtocolError;

/// Longest item id a server accepts, bytes.
pub const MAX_ID_LEN: usize = 512;

/// Most bytes one id takes in the ids artefact: every byte escaped as `\u00XX`, quotes and
/// a comma.
pub const MAX_ENCODED_ID_BYTES: usize = MAX_ID_LEN * 6 + 3;

/// The ids artefact.
pub fn encode_ids(ids: &[String]) -> Vec<u8> {
    serde_json::to_vec(ids).expect("a list of strings always serialises to JSON")
}

/// Parse the ids artefact: a JSON array of exactly `items` strings.
pub fn parse_ids(bytes: &[u8], items: usize) -> Result<Vec<String>, ProtocolError> {
    let ids: Vec<String> =
        serde_json::from_slice(bytes).map_err(|e| ProtocolError::Malformed(format!("ids: {e}")))?;
    if ids.len() != items {
        return Err(ProtocolError::WrongLength {
            what: "ids",
            found: ids.len(),
            expected: items,
        });
    }
    Ok(ids)
}

/// The scales artefact: the item scales, then the dimension scales if there are any.
pub fn encode_scales(scales: &[f32]) -> Vec<u8> {
    scales.iter().flat_map(|s| s.to_le_bytes()).collect()
}

/// The scales of a catalog version: one per item, and optionally one per dimension, which
/// a client multiplies the query by before quantizing it.
#[derive(Clone, Debug, PartialEq)]
pub struct Scales {
    /// Per item: finite, non-negative.
    pub items: Vec<f32>,
    /// Per dimension: finite, positive.
    pub dimensions: Option<Vec<f32>>,
}

/// Parse and check the scales artefact for `items` items of `dimension` dimensions.
pub fn parse_scales(bytes: &[u8], items: usize, dimension: usize) -> Result<Scales, ProtocolError> {
    let with_dimensions = items.checked_add(dimension).and_then(|n| n.checked_mul(4));
    let items_only = items.checked_mul(4);
    if Some(bytes.len()) != items_only && Some(bytes.len()) != with_dimensions {
        return Err(ProtocolError::WrongLength {
            what: "scale bytes",
            found: bytes.len(),
            expected: items_only.unwrap_or(usize::MAX),
        });
    }
    let mut all: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    if all[..items].iter().any(|s| !s.is_finite() || *s < 0.0) {
        return Err(ProtocolError::Malformed(
            "an item scale is negative or not finite".into(),
        ));
    }
    let dimensions = if all.len() == items {
        None
    } else {
        let dims = all.split_off(items);
        if dims.iter().any(|s| !s.is_finite() || *s <= 0.0) {
            return Err(ProtocolError::Malformed(
                "a dimension scale is not a positive finite number".into(),
            ));
        }
        Some(dims)
    };
    Ok(Scales {
        items: all,
        dimensions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_counts_are_checked() {
        let ids = vec!["a".to_string(), "b\"c".to_string()];
        let bytes = encode_ids(&ids);
        assert_eq!(parse_ids(&bytes, 2).unwrap(), ids);
        assert!(matches!(
            parse_ids(&bytes, 3),
            Err(ProtocolError::WrongLength { found: 2, .. })
        ));
        assert!(parse_ids(b"[1, 2]", 2).is_err());
    }

    #[test]
    fn scales_split_and_are_range_checked() {
        let bytes = encode_scales(&[0.5, 0.0, 2.0, 3.0]);
        let s = parse_scales(&bytes, 2, 2).unwrap();
        assert_eq!(s.items, vec![0.5, 0.0]);
        assert_eq!(s.dimensions, Some(vec![2.0, 3.0]));
        assert_eq!(parse_scales(&bytes, 4, 2).unwrap().dimensions, None);
        assert!(parse_scales(&bytes, 3, 2).is_err());
        assert!(parse_scales(&encode_scales(&[-1.0]), 1, 1).is_err());
        assert!(parse_scales(&encode_scales(&[1.0, 0.0]), 1, 1).is_err());
        assert!(parse_scales(&encode_scales(&[f32::NAN]), 1, 1).is_err());
    }
}
