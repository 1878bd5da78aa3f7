//! The client's decryption of a (possibly hostile) server's response to a fresh query.
#![no_main]

use blindscore_fuzz::fixture;
use libfuzzer_sys::fuzz_target;

const QUERY: [i32; 4] = [5, -9, 127, -127];

fuzz_target!(
    init: {
        blindscore_fuzz::write_seeds_if_asked(|| {
            let f = fixture();
            let query = f.prepared.seal_quantized(&QUERY).expect("encrypt");
            let response = f.served.score_encoded(&query.bytes).expect("score");
            vec![response.to_vec(), Vec::new()]
        });
    },
    |data: &[u8]| {
        let f = fixture();
        let pending = f.prepared.seal_quantized(&QUERY).expect("encrypt").pending;
        if let Ok(scores) = pending.decrypt(&f.prepared, data) {
            assert_eq!(scores.len(), f.prepared.shape().geometry.items);
        }
    }
);
