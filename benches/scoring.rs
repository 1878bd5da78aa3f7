//! Server scoring: encrypted queries against catalogs of 10k, 100k and 1M items at
//! d = 64, 128, 256 (and 384 at 100k), 1, 4 and 16 queries per pass, one thread and all
//! threads, each beside the plaintext int8 scan of the same data in the same run.
//!
//! `cargo bench --bench scoring`; `BLINDSCORE_BENCH_SHAPES=100000x128,1000000x128` picks
//! shapes. Also records, for every shape and every layout the layout objective considers, the
//! bytes up, down and of the one-time hint, and for the column layout the build time and
//! the server memory per item. Figures go to `target/blindscore-bench/scoring.json`.

mod support;

use blindscore_common::budget::{BudgetInput, DEFAULT_FAILURE_LOG2};
use blindscore_common::catalog::candidate_layouts;
use blindscore_common::objective::Objective;
use blindscore_common::params::DEFAULT_PARAMS;
use blindscore_common::{CatalogShape, Geometry, Layout, LayoutChoice};
use blindscore_server::scan::Tuning;
use blindscore_server::{CheckedQuery, Kernel};
use support::records::{
    EncryptedRun, InterleavedTargets, LayoutBytes, PassPhases, ScoringRecord, ScoringShape,
    TuningRun, WireWidths,
};
use support::{Int8Catalog, Limits};

const SHAPES: [(usize, usize); 10] = [
    (10_000, 64),
    (10_000, 128),
    (10_000, 256),
    (100_000, 64),
    (100_000, 128),
    (100_000, 256),
    (100_000, 384),
    (1_000_000, 64),
    (1_000_000, 128),
    (1_000_000, 256),
];
const BATCHES: [usize; 3] = [1, 4, 16];

fn shapes() -> Vec<(usize, usize)> {
    match std::env::var("BLINDSCORE_BENCH_SHAPES") {
        Ok(list) => list
            .split(',')
            .filter_map(|s| {
                let (m, d) = s.trim().split_once('x')?;
                Some((m.parse().ok()?, d.parse().ok()?))
            })
            .collect(),
        Err(_) => SHAPES.to_vec(),
    }
}

/// Bytes per query of every layout the layout objective considers, at the budget's widths for
/// the worst-case int8 block norm (what a catalog of this size could need at most).
fn layout_bytes(items: usize, d: usize) -> Vec<LayoutBytes> {
    let params = DEFAULT_PARAMS;
    candidate_layouts(params, d)
        .into_iter()
        .filter_map(|layout| {
            let geometry = Geometry::new(params.polynomial_size.0, layout, d, items).ok()?;
            let norm = BudgetInput::worst_case_norm_sq(&geometry, 127);
            let shape =
                CatalogShape::new(params, layout, d, items, 8, 8, norm, DEFAULT_FAILURE_LOG2)
                    .ok()?;
            Some(LayoutBytes {
                layout: layout.to_string(),
                group_size: layout.group_size(),
                query_bytes: shape.query_payload_bytes(),
                response_bytes: shape.response_payload_bytes(),
                hint_bytes: shape.hint_payload_bytes(),
                delta_log2: shape.budget.delta_log2,
            })
        })
        .collect()
}

/// Passes timed phase by phase for the breakdown of a 16-query pass.
const PHASE_RUNS: usize = 9;

/// Where a pass of the batch `views` goes, phase by phase, in seconds per query: the
/// median over [`PHASE_RUNS`] passes of preparing the queries, the multiply-accumulate, the
/// inverse side, and the whole pass, as the criterion figure times it (the rest is taking
/// and releasing buffers: released ones are zeroed).
fn pass_phases(
    evaluator: &blindscore_server::scan::Evaluator<'_>,
    queries: &[CheckedQuery],
) -> PassPhases {
    let per_query = |d: std::time::Duration| d.as_secs_f64() / queries.len() as f64;
    let mut runs: Vec<[f64; 4]> = (0..PHASE_RUNS)
        .map(|_| {
            let started = std::time::Instant::now();
            let batch = evaluator.prepare(queries);
            let prepared = started.elapsed();
            let (responses, timings) = evaluator.respond_timed(&batch, &[]);
            drop((batch, responses));
            let total = started.elapsed();
            [
                per_query(prepared),
                per_query(timings.multiply_accumulate),
                per_query(timings.inverse),
                per_query(total),
            ]
        })
        .collect();
    let mut median = |i: usize| {
        runs.sort_by(|a, b| a[i].total_cmp(&b[i]));
        runs[PHASE_RUNS / 2][i]
    };
    PassPhases {
        runs: PHASE_RUNS,
        prepare: median(0),
        multiply_accumulate: median(1),
        inverse: median(2),
        total: median(3),
    }
}

/// Rounds of [`interleaved_targets`].
const INTERLEAVED_ROUNDS: usize = 9;

/// The targets' ratios with each pass beside its own floor probe (see
/// [`InterleavedTargets`]): one query (`messages[0]`) and the 16 of `messages`, checked and
/// scored as the service does, on one thread.
fn interleaved_targets(
    served: &blindscore_server::ServedCatalog,
    messages: &[axum::body::Bytes],
    one: &rayon::ThreadPool,
) -> InterleavedTargets {
    let buffer = support::read_probe_buffer();
    let g = &served.shape().geometry;
    let fmas = 2.0 * g.dimension as f64 * g.items as f64;
    let bytes = served.fourier().memory_bytes() as f64;
    let timed = |messages: &[axum::body::Bytes]| {
        let started = std::time::Instant::now();
        drop(one.install(|| support::checked_pass(served, messages)));
        started.elapsed().as_secs_f64()
    };
    // A first pass of each size, untimed: it takes the pool's buffers.
    timed(&messages[..1]);
    timed(messages);
    let rounds: Vec<[f64; 4]> = (0..INTERLEAVED_ROUNDS)
        .map(|_| {
            let bandwidth = support::read_rate(&buffer, 2);
            let one_query = timed(&messages[..1]) / (bytes / bandwidth);
            let fma_rate = support::fma_rate(2);
            let batch = timed(messages) / messages.len() as f64 / (fmas / fma_rate);
            [one_query, batch, bandwidth, fma_rate]
        })
        .collect();
    let median = |i: usize| {
        let mut v: Vec<f64> = rounds.iter().map(|r| r[i]).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    InterleavedTargets {
        rounds: INTERLEAVED_ROUNDS,
        one_query_over_stream_floor: median(0),
        batch16_over_fma_floor: median(1),
        bandwidth_bytes_per_s: median(2),
        fma_per_s: median(3),
    }
}

fn main() {
    let limits = Limits::measure();
    let all = rayon::current_num_threads();
    let one = support::one_thread();
    let mut c = support::criterion(3);
    let mut rows = Vec::new();
    for (items, d) in shapes() {
        let label = format!("{}x{d}", support::items_label(items));
        eprintln!("== {label}: building the catalog ...");
        let data = Int8Catalog::new(items, d, 42 + d as u64);
        // The column layout everywhere, and the layout objective's pick where it differs.
        let picked = CatalogShape::for_catalog(
            DEFAULT_PARAMS,
            &data.quantized,
            8,
            LayoutChoice::Auto(Objective::default()),
        )
        .map(|shape| shape.layout)
        .unwrap_or(Layout::Column);
        let mut layouts = vec![Layout::Column];
        if picked != Layout::Column {
            layouts.push(picked);
        }
        for layout in layouts {
            let label = format!("{label}_b{}", layout.group_size());
            let (mut served, build_seconds) = support::serve(&data.quantized, layout);
            let queries: Vec<Vec<i32>> = (0..16)
                .map(|i| support::random_query(d, i as u64 + 7))
                .collect();
            let prepared = support::prepare(&served);
            let encrypted: Vec<axum::body::Bytes> = queries
                .iter()
                .map(|q| prepared.seal_quantized(q).expect("encrypt").bytes.into())
                .collect();

            // What is timed must be right: one query decrypted against the plaintext scan.
            let check = prepared.seal_quantized(&queries[0]).expect("encrypt");
            let response = served.score_encoded(&check.bytes).expect("score");
            let scores = check
                .pending
                .decrypt(&prepared, &response)
                .expect("decrypt");
            let query_i8: Vec<i8> = queries[0].iter().map(|&v| v as i8).collect();
            let mut plain = vec![0i32; items];
            data.scan(&query_i8, &mut plain);
            let wrong = scores
                .iter()
                .zip(&plain)
                .filter(|(a, b)| **a != **b as i64)
                .count();
            assert_eq!(wrong, 0, "{label}: {wrong} wrong scores");

            let group_name = format!("scoring_{label}");
            let mut g = c.benchmark_group(&group_name);
            support::flat(&mut g);
            g.bench_function("plaintext_t1", |b| {
                b.iter(|| data.scan(std::hint::black_box(&query_i8), &mut plain))
            });
            g.bench_function(format!("plaintext_t{all}"), |b| {
                b.iter(|| data.scan_all_threads(std::hint::black_box(&query_i8), &mut plain))
            });
            let mut runs = Vec::new();
            let mut phases = None;
            let mut interleaved = None;
            let portable = items == 1_000_000 && d == 128 && layout == Layout::Column;
            for kernel in [Kernel::Avx512, Kernel::Portable] {
                if kernel == Kernel::Portable && !portable {
                    continue;
                }
                served.set_kernel(kernel);
                let suffix = if kernel == Kernel::Portable {
                    "_portable"
                } else {
                    ""
                };
                for threads in [1, all] {
                    for batch in BATCHES {
                        if kernel == Kernel::Portable && batch == 4 {
                            continue;
                        }
                        let messages = &encrypted[..batch];
                        let name = format!("encrypted_b{batch}_t{threads}{suffix}");
                        // Each pass as the service runs it: the queries checked, then scored.
                        let pass = || support::checked_pass(&served, messages);
                        g.bench_function(&name, |b| {
                            b.iter(|| {
                                if threads == 1 {
                                    one.install(pass)
                                } else {
                                    pass()
                                }
                            })
                        });
                        runs.push((name, batch, threads, kernel));
                    }
                }
            }
            let mut tuning_runs = Vec::new();
            if portable {
                // Each CPU family's tuning on this CPU, one thread, in the same run: the
                // preset chosen at run time should be the faster one here.
                served.set_kernel(Kernel::detect());
                for batch in [1, 16] {
                    for (preset, tuning) in [("amd", Tuning::AMD), ("intel", Tuning::INTEL)] {
                        served.set_tuning(tuning);
                        let messages = &encrypted[..batch];
                        let name = format!("tuning_{preset}_b{batch}_t1");
                        let pass = || support::checked_pass(&served, messages);
                        g.bench_function(&name, |b| b.iter(|| one.install(pass)));
                        tuning_runs.push((name, preset, tuning, batch));
                    }
                }
                served.set_tuning(Tuning::for_this_cpu());
                // Where a pass goes, phase by phase.
                let evaluator = served.evaluator();
                let checked: Vec<_> = encrypted
                    .iter()
                    .map(|q| served.check_query(q.clone()).expect("a valid query"))
                    .collect();
                phases = Some(one.install(|| pass_phases(&evaluator, &checked)));
                interleaved = Some(interleaved_targets(&served, &encrypted, &one));
            }
            g.finish();
            served.set_kernel(Kernel::detect());

            let m = |name: &str| support::median(&group_name, name);
            let encrypted_runs: Vec<EncryptedRun> = runs
                .iter()
                .filter_map(|(name, batch, threads, kernel)| {
                    let pass = m(name)?;
                    Some(EncryptedRun {
                        batch: *batch,
                        threads: *threads,
                        kernel: format!("{kernel:?}").to_lowercase(),
                        seconds_per_pass: pass,
                        seconds_per_query: pass / *batch as f64,
                    })
                })
                .collect();
            let tunings = tuning_runs
                .iter()
                .filter_map(|(name, preset, tuning, batch)| {
                    Some(TuningRun {
                        preset: preset.to_string(),
                        this_cpu: *tuning == Tuning::for_this_cpu(),
                        batch: *batch,
                        seconds_per_query: m(name)? / *batch as f64,
                    })
                })
                .collect();
            let b = &served.shape().budget;
            let fourier_bytes = served.fourier().memory_bytes();
            let server_bytes = fourier_bytes + served.hint_message().len();
            rows.push(ScoringShape {
                items,
                dimension: d,
                layout: layout.to_string(),
                group_size: layout.group_size(),
                cost_model_pick: layout == picked,
                plaintext_seconds_t1: m("plaintext_t1"),
                plaintext_seconds_all: m(&format!("plaintext_t{all}")),
                encrypted: encrypted_runs,
                stream_floor_seconds: fourier_bytes as f64 / limits.bandwidth,
                pass_phases_b16_t1: phases,
                interleaved,
                tunings,
                fma_floor_seconds: 2.0 * d as f64 * items as f64 / limits.fma_rate,
                build_seconds,
                fourier_bytes,
                server_bytes_per_item: server_bytes as f64 / items as f64,
                query_message_bytes: encrypted[0].len(),
                response_message_bytes: response.len(),
                hint_message_bytes: served.hint_message().len(),
                bits: WireWidths {
                    query: b.query_bits(),
                    response: b.response_bits(),
                    hint: b.hint_bits(),
                },
                delta_log2: b.delta_log2,
                layouts: layout_bytes(items, d),
            });
            println!(
            "{label}: plaintext {:.3} ms; encrypted 1 query, 1 thread {:.3} ms; built in {:.1} s",
            m("plaintext_t1").unwrap_or(f64::NAN) * 1e3,
            m("encrypted_b1_t1").unwrap_or(f64::NAN) * 1e3,
            build_seconds
        );
        }
    }
    c.final_summary();
    support::record(
        "scoring",
        &ScoringRecord {
            machine: support::machine(),
            limits: limits.record(),
            kernel_fma_per_s_in_l1: support::batch_kernel_rate(),
            kernel_fma_per_s_on_a_tile: Some(support::batch_kernel_rate_on_a_tile()),
            threads: all,
            shapes: rows,
        },
    );
}
