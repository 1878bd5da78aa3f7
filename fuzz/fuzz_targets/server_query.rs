//! The server's query decoder and scan: any bytes posted to `/score`.
#![no_main]

use blindscore_fuzz::fixture;
use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: {
        blindscore_fuzz::write_seeds_if_asked(|| {
            let f = fixture();
            let mut seeds: Vec<Vec<u8>> = [[1, -2, 3, 127], [-127, 127, -127, 127], [0; 4]]
                .iter()
                .map(|q| f.prepared.seal_quantized(q).expect("encrypt").bytes)
                .collect();
            seeds.push(Vec::new());
            seeds
        });
    },
    |data: &[u8]| {
        let f = fixture();
        // As the handler does: the checks, once, then the scan. Errors are answers; a
        // panic or a runaway allocation is a bug.
        if let Ok(query) = f.served.check_query(data.to_vec().into()) {
            let responses = f.served.score(&[query]);
            assert!(responses.len() == 1 && !responses[0].is_empty());
        }
    }
);
