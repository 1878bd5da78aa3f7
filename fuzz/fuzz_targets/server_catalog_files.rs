//! What the server reads from operators and admin requests: catalog replacements (JSON
//! Lines), .npy matrices with their id files, and the API keys file.
#![no_main]

use std::io::Cursor;

use blindscore_fuzz::{join, split};
use blindscore_server::access::ApiKeys;
use blindscore_common::api::Normalisation;
use blindscore_server::load::{read_ids, read_jsonl, read_npy};
use libfuzzer_sys::fuzz_target;

/// A minimal .npy file of little-endian f32 rows.
fn npy(rows: usize, cols: usize) -> Vec<u8> {
    let mut header =
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for i in 0..rows * cols {
        out.extend_from_slice(&(i as f32 - 2.5).to_le_bytes());
    }
    out
}

fuzz_target!(
    init: {
        blindscore_fuzz::write_seeds_if_asked(|| {
            let jsonl = b"{\"id\": \"a\", \"vector\": [1.0, 0.5, -2]}\n{\"id\": \"b\", \"vector\": [0.0, 2.0, 1e-3]}\n";
            let keys = br#"{"keys": [{"app": "shop", "key_sha256": "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b", "queries_per_minute": 60}]}"#;
            vec![
                join(&[jsonl, &npy(2, 3), keys, b"sku-1\nsku-2\n"]),
                join(&[b"", &npy(1, 1), b"{}", b"x\n"]),
            ]
        });
    },
    |data: &[u8]| {
        let [jsonl, matrix, keys, ids] = split::<4>(data);
        for (bits, normalisation) in [(16, Normalisation::L2), (8, Normalisation::None)] {
            let _ = read_jsonl(Cursor::new(jsonl), bits, normalisation);
        }
        let ids = read_ids(Cursor::new(ids)).unwrap_or_default();
        let _ = read_npy(Cursor::new(matrix), ids, 16, Normalisation::L2);
        if let Ok(text) = std::str::from_utf8(keys) {
            let _ = ApiKeys::from_json(text);
        }
    }
);
