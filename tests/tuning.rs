//! The scan's tuning changes how fast a pass runs, never what it answers: the same queries
//! scored under every CPU family's settings and under extreme ones (spans of one chunk,
//! gathers of one block, no requests ahead or very far ahead) give
//! identical response bytes, with every kernel this CPU has, in both layouts, for a single
//! query, an odd batch and a full batch; and those responses decrypt to the exact scores.

mod common;

use blindscore_common::params::DEFAULT_PARAMS;
use blindscore_common::Layout;
use blindscore_server::scan::Tuning;
use blindscore_server::Kernel;
use common::*;

/// Every family's settings, and settings at the edges of each knob.
fn tunings() -> Vec<Tuning> {
    let base = Tuning::for_this_cpu();
    let mut all = vec![Tuning::AMD, Tuning::INTEL];
    all.push(Tuning {
        span_cached_bytes: 0,
        span_min_chunks: 1,
        ..base
    });
    all.push(Tuning {
        span_cached_bytes: 0,
        span_min_chunks: 3,
        gather_blocks: 1,
        gather_ahead: 0,
        streaming_prefetch: false,
    });
    all.push(Tuning {
        span_cached_bytes: 1 << 40,
        span_min_chunks: 1,
        gather_blocks: 3,
        gather_ahead: 1,
        streaming_prefetch: true,
    });
    all.push(Tuning {
        gather_blocks: 1000,
        gather_ahead: 1000,
        ..base
    });
    all
}

#[test]
fn every_tuning_gives_the_same_response_bytes() {
    let n = DEFAULT_PARAMS.polynomial_size.0;
    for (layout, d) in [(Layout::Column, 70), (Layout::Grouped(4), 150)] {
        // Several chunks of blocks, the last block short.
        let items = 20 * n / layout.group_size() - 3;
        let catalog = random_catalog(items, d, 8, 51);
        let mut served = serve(&catalog, layout, 8);
        let prepared = prepare(&served);
        for batch in [1usize, 3, 16] {
            let queries: Vec<Vec<i32>> = (0..batch)
                .map(|i| random_query(d, 8, 300 + i as u64))
                .collect();
            let (bodies, pending): (Vec<_>, Vec<_>) = queries
                .iter()
                .map(|q| {
                    let sealed = prepared.seal_quantized(q).unwrap();
                    (sealed.bytes, sealed.pending)
                })
                .unzip();
            let checked: Vec<_> = bodies
                .into_iter()
                .map(|b| served.check_query(b.into()).unwrap())
                .collect();
            let mut pending = Some(pending);
            for kernel in [Kernel::detect(), Kernel::Portable] {
                served.set_kernel(kernel);
                served.set_tuning(Tuning::for_this_cpu());
                let reference = served.score(&checked);
                // The first kernel's answers decrypt to the exact scores.
                for ((query, pending), response) in queries
                    .iter()
                    .zip(pending.take().unwrap_or_default())
                    .zip(&reference)
                {
                    let scores = pending.decrypt(&prepared, response).unwrap();
                    assert_eq!(
                        wrong_scores(&catalog, query, &scores),
                        0,
                        "{layout}, {kernel:?}"
                    );
                }
                for tuning in tunings() {
                    served.set_tuning(tuning);
                    let responses = served.score(&checked);
                    assert!(
                        responses == reference,
                        "{layout}, batch of {batch}, {kernel:?}: {tuning:?} changed the bytes"
                    );
                }
            }
        }
    }
}
