//! Catalog input as ML pipelines write it, quantized as it streams in.
//!
//! * A float32 or float64 `.npy` matrix (items x dims, C or Fortran order) with a text file
//!   of item ids, one per line.
//! * JSON Lines: one `{"id": "...", "vector": [...]}` object per line.
//!
//! Rows are quantized one at a time (each with its own scale, so the float matrix is never
//! held in memory), optionally L2-normalised first. Bad input is an error naming the line
//! or item, never a panic.

use std::io::{BufRead, Read};

use serde::Deserialize;

use blindscore_common::api::Normalisation;
use blindscore_common::artefacts::MAX_ID_LEN;
use blindscore_common::budget::max_abs_for_bits;
use blindscore_common::catalog::MAX_DIMENSION;
use blindscore_common::{ProtocolError, QuantizedCatalog};

/// Why a catalog could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("reading the input failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("not a usable .npy matrix: {0}")]
    Npy(String),
    #[error("ids: {0}")]
    Ids(String),
    #[error("JSON Lines, line {line}: {message}")]
    Jsonl { line: usize, message: String },
    #[error("item {item}: {message}")]
    Item { item: usize, message: String },
    #[error("the catalog has no items")]
    Empty,
    #[error("another version of catalog {0:?} is being built")]
    Busy(String),
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
}

/// The embedded demo catalog as the server loads it: rows quantized at 16 bits with
/// per-item scales, to be narrowed to the widest width the noise budget allows.
pub fn demo_items(demo: &blindscore_demo::DemoCatalog) -> Result<LoadedItems, LoadError> {
    quantize_rows(
        demo.ids.clone(),
        &demo.embeddings,
        blindscore_demo::DEMO_DIMENSION,
        16,
        Normalisation::L2,
    )
}

/// Loaded items: ids, quantized vectors and per-item scales (float ~ scale * integer).
pub struct LoadedItems {
    pub ids: Vec<String>,
    pub catalog: QuantizedCatalog,
    pub scales: Vec<f32>,
}

/// Quantizes rows as they arrive.
struct RowQuantizer {
    dimension: usize,
    bits: u32,
    normalisation: Normalisation,
    values: Vec<i16>,
    scales: Vec<f32>,
}

impl RowQuantizer {
    fn new(
        dimension: usize,
        bits: u32,
        normalisation: Normalisation,
        capacity: usize,
    ) -> Result<Self, LoadError> {
        if dimension == 0 || dimension > MAX_DIMENSION {
            return Err(LoadError::Npy(format!(
                "dimension {dimension} is outside 1..={MAX_DIMENSION}"
            )));
        }
        Ok(RowQuantizer {
            dimension,
            bits,
            normalisation,
            values: Vec::with_capacity(capacity.saturating_mul(dimension).min(1 << 28)),
            scales: Vec::with_capacity(capacity.min(1 << 26)),
        })
    }

    fn push(&mut self, row: &mut [f64]) -> Result<(), LoadError> {
        let item = self.scales.len();
        if row.len() != self.dimension {
            return Err(LoadError::Item {
                item,
                message: format!("{} values, expected {}", row.len(), self.dimension),
            });
        }
        if let Some(j) = row.iter().position(|v| !v.is_finite()) {
            return Err(LoadError::Item {
                item,
                message: format!("value {j} is not a finite number"),
            });
        }
        if self.normalisation == Normalisation::L2 {
            let norm = row.iter().map(|v| v * v).sum::<f64>().sqrt();
            if norm == 0.0 {
                return Err(LoadError::Item {
                    item,
                    message: "a zero vector cannot be normalised".into(),
                });
            }
            row.iter_mut().for_each(|v| *v /= norm);
        }
        let max_int = max_abs_for_bits(self.bits) as f64;
        let max_abs = row.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let scale = if max_abs == 0.0 {
            0.0
        } else {
            max_abs / max_int
        };
        self.values.extend(row.iter().map(|v| {
            if scale == 0.0 {
                0
            } else {
                (v / scale).round().clamp(-max_int, max_int) as i16
            }
        }));
        self.scales.push(scale as f32);
        Ok(())
    }

    fn finish(self, ids: Vec<String>) -> Result<LoadedItems, LoadError> {
        if self.scales.is_empty() {
            return Err(LoadError::Empty);
        }
        if ids.len() != self.scales.len() {
            return Err(LoadError::Ids(format!(
                "{} ids for {} items",
                ids.len(),
                self.scales.len()
            )));
        }
        let catalog = QuantizedCatalog::new(self.dimension, self.bits, self.values)?;
        Ok(LoadedItems {
            ids,
            catalog,
            scales: self.scales,
        })
    }
}

/// Quantize in-memory float rows (row-major) with their ids.
pub fn quantize_rows(
    ids: Vec<String>,
    vectors: &[f32],
    dimension: usize,
    bits: u32,
    normalisation: Normalisation,
) -> Result<LoadedItems, LoadError> {
    let mut q = RowQuantizer::new(dimension, bits, normalisation, ids.len())?;
    let mut row = Vec::with_capacity(dimension);
    for chunk in vectors.chunks(dimension) {
        row.clear();
        row.extend(chunk.iter().map(|&v| v as f64));
        q.push(&mut row)?;
    }
    q.finish(ids)
}

/// Read item ids, one per line (trailing whitespace trimmed, blank lines refused).
pub fn read_ids(reader: impl BufRead) -> Result<Vec<String>, LoadError> {
    let mut ids = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, line) in reader.lines().enumerate() {
        let id = line?.trim_end().to_string();
        check_id(&id).map_err(|m| LoadError::Ids(format!("line {}: {m}", i + 1)))?;
        if !seen.insert(id.clone()) {
            return Err(LoadError::Ids(format!(
                "line {}: duplicate id {id:?}",
                i + 1
            )));
        }
        ids.push(id);
    }
    Ok(ids)
}

fn check_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("empty id".into());
    }
    if id.len() > MAX_ID_LEN {
        return Err(format!("id longer than {MAX_ID_LEN} bytes"));
    }
    if id.chars().any(char::is_control) {
        return Err("id contains control characters".into());
    }
    Ok(())
}

/// Longest .npy header accepted (numpy writes a few hundred bytes at most).
const MAX_NPY_HEADER: usize = 64 * 1024;

/// Check the .npy preamble before the parser sees it: the header length is read from the
/// file, and a damaged or hostile one must not make the server allocate gigabytes.
fn checked_npy_header(mut reader: impl Read) -> Result<impl Read, LoadError> {
    let mut preamble = [0u8; 12];
    reader
        .read_exact(&mut preamble[..10])
        .map_err(|e| LoadError::Npy(format!("reading the .npy preamble: {e}")))?;
    if &preamble[..6] != b"\x93NUMPY" {
        return Err(LoadError::Npy("not a .npy file (bad magic bytes)".into()));
    }
    let (used, header_len) = match preamble[6] {
        1 => (10, u16::from_le_bytes([preamble[8], preamble[9]]) as usize),
        2 | 3 => {
            reader
                .read_exact(&mut preamble[10..12])
                .map_err(|e| LoadError::Npy(format!("reading the .npy preamble: {e}")))?;
            let len = u32::from_le_bytes([preamble[8], preamble[9], preamble[10], preamble[11]]);
            (12, len as usize)
        }
        v => return Err(LoadError::Npy(format!("unsupported .npy version {v}"))),
    };
    if header_len > MAX_NPY_HEADER {
        return Err(LoadError::Npy(format!(
            "the .npy header claims {header_len} bytes (at most {MAX_NPY_HEADER})"
        )));
    }
    let mut header = vec![0u8; header_len];
    reader
        .read_exact(&mut header)
        .map_err(|e| LoadError::Npy(format!("reading the .npy header: {e}")))?;
    // A float matrix's header is one flat dict; nested brackets (structured dtypes, or a
    // crafted header that sends the parser into exponential backtracking) are refused.
    let count = |c: u8| header.iter().filter(|&&b| b == c).count();
    if count(b'{') != 1 || count(b'}') != 1 || count(b'[') != 0 || count(b'(') > 1 {
        return Err(LoadError::Npy(
            "the .npy header is not a plain matrix header ({'descr', 'fortran_order', 'shape'})"
                .into(),
        ));
    }
    let mut prefix = preamble[..used].to_vec();
    prefix.extend_from_slice(&header);
    Ok(std::io::Cursor::new(prefix).chain(reader))
}

/// Read a float32/float64 `.npy` matrix and quantize it with the given ids.
pub fn read_npy(
    reader: impl Read,
    ids: Vec<String>,
    bits: u32,
    normalisation: Normalisation,
) -> Result<LoadedItems, LoadError> {
    let reader = checked_npy_header(reader)?;
    let npy = npyz::NpyFile::new(reader).map_err(|e| LoadError::Npy(e.to_string()))?;
    let shape = npy.shape().to_vec();
    if shape.len() != 2 {
        return Err(LoadError::Npy(format!(
            "expected a 2-D matrix (items x dims), found shape {shape:?}"
        )));
    }
    let (rows, cols) = (shape[0] as usize, shape[1] as usize);
    if rows == 0 {
        return Err(LoadError::Empty);
    }
    if rows != ids.len() {
        return Err(LoadError::Ids(format!("{} ids for {rows} rows", ids.len())));
    }
    let fortran = npy.order() == npyz::Order::Fortran;
    let mut q = RowQuantizer::new(cols, bits, normalisation, rows)?;
    let values: Box<dyn Iterator<Item = std::io::Result<f64>>> = match npy.try_data::<f32>() {
        Ok(reader) => Box::new(reader.map(|r| r.map(|v| v as f64))),
        Err(npy) => match npy.data::<f64>() {
            Ok(reader) => Box::new(reader),
            Err(e) => {
                return Err(LoadError::Npy(format!(
                    "expected float32 or float64 values: {e}"
                )))
            }
        },
    };
    if fortran {
        // Column-major: gather the whole matrix first (rare in ML pipelines).
        let all: Vec<f64> = values.collect::<Result<_, _>>()?;
        for r in 0..rows {
            let mut row: Vec<f64> = (0..cols).map(|c| all[c * rows + r]).collect();
            q.push(&mut row)?;
        }
    } else {
        let mut row = Vec::with_capacity(cols);
        for v in values {
            row.push(v?);
            if row.len() == cols {
                q.push(&mut row)?;
                row.clear();
            }
        }
    }
    q.finish(ids)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonItem {
    id: serde_json::Value,
    vector: Vec<f64>,
}

/// Read JSON Lines items (`{"id": ..., "vector": [...]}`; a numeric id is taken as its
/// decimal text) and quantize them.
pub fn read_jsonl(
    reader: impl BufRead,
    bits: u32,
    normalisation: Normalisation,
) -> Result<LoadedItems, LoadError> {
    let mut q: Option<RowQuantizer> = None;
    let mut ids = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, line) in reader.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let err = |message: String| LoadError::Jsonl {
            line: i + 1,
            message,
        };
        let item: JsonItem = serde_json::from_str(&line).map_err(|e| err(e.to_string()))?;
        let id = match item.id {
            serde_json::Value::String(s) => s,
            serde_json::Value::Number(n) => n.to_string(),
            other => {
                return Err(err(format!(
                    "id must be a string or a number, found {other}"
                )))
            }
        };
        check_id(&id).map_err(err)?;
        if !seen.insert(id.clone()) {
            return Err(err(format!("duplicate id {id:?}")));
        }
        let mut vector = item.vector;
        let quantizer = match q.as_mut() {
            Some(q) => q,
            None => q.insert(RowQuantizer::new(vector.len(), bits, normalisation, 1024)?),
        };
        quantizer
            .push(&mut vector)
            .map_err(|e| err(e.to_string()))?;
        ids.push(id);
    }
    q.ok_or(LoadError::Empty)?.finish(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy_bytes(rows: usize, cols: usize, f: impl Fn(usize, usize) -> f32) -> Vec<u8> {
        let mut out = Vec::new();
        use npyz::WriterBuilder;
        let mut w = npyz::WriteOptions::<f32>::new()
            .default_dtype()
            .shape(&[rows as u64, cols as u64])
            .writer(&mut out)
            .begin_nd()
            .unwrap();
        for r in 0..rows {
            for c in 0..cols {
                w.push(&f(r, c)).unwrap();
            }
        }
        w.finish().unwrap();
        out
    }

    #[test]
    fn npy_rows_are_quantized_per_item() {
        let bytes = npy_bytes(3, 4, |r, c| (r as f32 + 1.0) * (c as f32 - 1.5));
        let ids = vec!["a".to_string(), "b".into(), "c".into()];
        let items = read_npy(&bytes[..], ids, 8, Normalisation::None).unwrap();
        assert_eq!(items.catalog.items(), 3);
        assert_eq!(items.catalog.row(0), &[-127, -42, 42, 127]);
        assert!((items.scales[2] - 4.5 / 127.0).abs() < 1e-6);
    }

    #[test]
    fn bad_npy_input_is_an_error() {
        let bytes = npy_bytes(2, 3, |_, _| 1.0);
        assert!(matches!(
            read_npy(&bytes[..], vec!["a".into()], 8, Normalisation::None),
            Err(LoadError::Ids(_))
        ));
        assert!(read_npy(
            &bytes[..10],
            vec!["a".into(), "b".into()],
            8,
            Normalisation::None
        )
        .is_err());
        assert!(read_npy(&b"garbage"[..], vec![], 8, Normalisation::None).is_err());
        let nan = npy_bytes(1, 2, |_, _| f32::NAN);
        assert!(matches!(
            read_npy(&nan[..], vec!["a".into()], 8, Normalisation::None),
            Err(LoadError::Item { .. })
        ));
    }

    #[test]
    fn a_huge_npy_header_length_is_refused_before_any_allocation() {
        // Version 2 carries a u32 header length: 2 GiB claimed, a few bytes present.
        let mut bytes = b"\x93NUMPY\x02\x00".to_vec();
        bytes.extend_from_slice(&0x7fff_ffffu32.to_le_bytes());
        bytes.extend_from_slice(b"{'descr'");
        match read_npy(&bytes[..], vec![], 8, Normalisation::None) {
            Err(LoadError::Npy(message)) => assert!(message.contains("header claims"), "{message}"),
            other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
        }
        // A header of nested braces (it could send the parser into exponential backtracking).
        let mut nested = b"\x93NUMPY\x01\x00".to_vec();
        let text = format!("{{'descr': '<f4', {} 'shape': (1, 1), }}\n", "{".repeat(90));
        nested.extend_from_slice(&(text.len() as u16).to_le_bytes());
        nested.extend_from_slice(text.as_bytes());
        nested.extend_from_slice(&1.0f32.to_le_bytes());
        assert!(matches!(
            read_npy(&nested[..], vec!["a".into()], 8, Normalisation::None),
            Err(LoadError::Npy(_))
        ));
        // A well-formed version 1 file still loads through the check.
        let ok = npy_bytes(2, 3, |i, j| (i * 3 + j) as f32 + 1.0);
        assert!(read_npy(
            &ok[..],
            vec!["a".into(), "b".into()],
            8,
            Normalisation::None
        )
        .is_ok());
    }

    #[test]
    fn jsonl_items_and_errors() {
        let ok = "{\"id\": \"x\", \"vector\": [3.0, 4.0]}\n{\"id\": 7, \"vector\": [0.0, -1.0]}\n";
        let items = read_jsonl(ok.as_bytes(), 8, Normalisation::L2).unwrap();
        assert_eq!(items.ids, vec!["x", "7"]);
        assert_eq!(items.catalog.row(0), &[95, 127]);
        for bad in [
            "{\"id\": \"x\", \"vector\": [1.0]}\n{\"id\": \"y\", \"vector\": [1.0, 2.0]}",
            "{\"id\": \"x\", \"vector\": [1.0]}\n{\"id\": \"x\", \"vector\": [2.0]}",
            "{\"id\": \"x\"}",
            "not json",
            "{\"id\": [1], \"vector\": [1.0]}",
            "",
        ] {
            assert!(
                read_jsonl(bad.as_bytes(), 8, Normalisation::None).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn ids_are_checked() {
        assert_eq!(read_ids("a\nb \n".as_bytes()).unwrap(), vec!["a", "b"]);
        assert!(read_ids("a\n\nb\n".as_bytes()).is_err());
        assert!(read_ids("a\na\n".as_bytes()).is_err());
    }
}
