//! Server time per query in a 16-query pass on one thread, for every group size b the
//! layout objective may choose, at two dimensions each: the figures of the committed table
//! `common::objective::SERVER_TIMES`. Writes the record `layouts.json` and, beside it,
//! `server_times.rs`: the table's lines as this machine measured them, for a commit to
//! adopt (`benches/run` says how). Nothing adopts them by itself: the layout is part of
//! every catalog's version.
//!
//! `cargo bench --bench layouts`; `BLINDSCORE_LAYOUT_ITEMS` sets the items (a power of two
//! at most the table's reference count; fewer for a quick look).

mod support;

use std::fmt::Write as _;

use blindscore_common::api::Normalisation;
use blindscore_common::catalog::{candidate_layouts, widest_catalog};
use blindscore_common::objective::{allowed_seconds, server_seconds, Objective, MEASURED_ITEMS};
use blindscore_common::params::DEFAULT_PARAMS;
use blindscore_common::CatalogShape;
use blindscore_common::{Layout, LayoutChoice, QuantizedCatalog};
use blindscore_server::load::quantize_rows;
use blindscore_server::{CatalogSource, CheckedQuery, ServedCatalog};
use support::records::{CandidateBytes, LayoutTime, LayoutsRecord, ObjectiveChoice};
use support::{Limits, SplitMix};

/// Group sizes measured: every one the objective may choose.
const GROUP_SIZES: [u32; 10] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512];

/// The two dimensions measured for group size b.
fn dimensions(b: u32) -> [u32; 2] {
    let low = b.max(64);
    [low, 2 * low]
}

/// Shapes whose layout choice the record shows: Apple PNNS's, the demo catalog's, a
/// sentence-embedding catalog's, and two large ones.
const CHOICE_SHAPES: [(usize, usize); 5] = [
    (4096, 128),
    (12_000, 128),
    (30_000, 384),
    (100_000, 128),
    (1_000_000, 128),
];

/// The layout objective on L2-normalised float rows loaded as the server loads them (16
/// bits, then the widest width the budget allows): every candidate at the chosen width,
/// its bytes and table time, and the choice; the width search timed.
fn choice(items: usize, d: usize) -> ObjectiveChoice {
    let rows = support::unit_rows(items, d, 5 + d as u64);
    let ids = (0..items).map(|i| format!("item-{i}")).collect();
    let loaded = quantize_rows(ids, &rows, d, 16, Normalisation::L2).expect("valid rows");
    let objective = Objective::default();
    let started = std::time::Instant::now();
    let (shape, narrow, _) = widest_catalog(
        DEFAULT_PARAMS,
        &loaded.catalog,
        8,
        LayoutChoice::Auto(objective),
    )
    .expect("a width fits");
    let search_seconds = started.elapsed().as_secs_f64();
    // Every layout at its own widest width, as the objective weighs them.
    let shapes: Vec<CatalogShape> = candidate_layouts(DEFAULT_PARAMS, d)
        .into_iter()
        .filter_map(|l| {
            widest_catalog(DEFAULT_PARAMS, &loaded.catalog, 8, LayoutChoice::Fixed(l))
                .ok()
                .map(|(shape, _, _)| shape)
        })
        .collect();
    let candidates: Vec<_> = shapes.iter().map(|s| s.candidate()).collect();
    let allowed = allowed_seconds(&candidates);
    let q = objective.queries_per_version;
    ObjectiveChoice {
        items,
        dimension: d,
        catalog_bits: narrow.bits(),
        queries_per_version: q,
        search_seconds,
        allowed_seconds: allowed,
        plaintext_catalog_bytes: shape.plaintext_catalog_bytes(),
        candidates: candidates
            .iter()
            .map(|c| CandidateBytes {
                layout: c.layout.to_string(),
                group_size: c.layout.group_size(),
                catalog_bits: shapes
                    .iter()
                    .find(|s| s.layout == c.layout)
                    .map_or(0, |s| s.catalog_bits),
                query_bytes: c.query_bytes,
                response_bytes: c.response_bytes,
                hint_bytes: c.hint_bytes,
                first_query_bytes: c.hint_bytes + c.query_bytes + c.response_bytes,
                bytes_over_queries: c.bytes_over(q) as usize,
                server_seconds: c.server_seconds,
                allowed: c.server_seconds.zip(allowed).is_some_and(|(t, a)| t <= a),
                chosen: c.layout == shape.layout,
            })
            .collect(),
    }
}

/// Seconds of one 16-query pass, on one thread, over a catalog of uniform values.
fn pass_seconds(
    c: &mut criterion::Criterion,
    one: &rayon::ThreadPool,
    items: usize,
    d: usize,
    layout: Layout,
) -> f64 {
    eprintln!("== {items} x {d}, {layout}: building ...");
    // Int8 values where the budget allows them, narrower where it does not (the time
    // hardly depends on the width).
    let served = [8u32, 7, 6]
        .into_iter()
        .find_map(|bits| {
            let data = catalog(items, d, bits, 11 + d as u64);
            ServedCatalog::build(
                &CatalogSource {
                    catalog_id: "bench",
                    params: DEFAULT_PARAMS,
                    catalog: &data,
                    scales: &[],
                    query_bits: 8,
                    layout: LayoutChoice::Fixed(layout),
                    item_data: &[],
                },
                &|_, _, _| {},
            )
            .ok()
        })
        .expect("a width the budget allows");
    let prepared = support::prepare(&served);
    let messages: Vec<axum::body::Bytes> = (0..16)
        .map(|i| {
            let q = support::random_query(d, 100 + i);
            prepared.seal_quantized(&q).expect("encrypt").bytes.into()
        })
        .collect();
    let group = format!("layouts_{}x{d}", support::items_label(items));
    let name = format!("b{}_pass16_t1", layout.group_size());
    let mut g = c.benchmark_group(&group);
    support::flat(&mut g);
    g.bench_function(&name, |bench| {
        bench.iter(|| {
            one.install(|| {
                let checked: Vec<CheckedQuery> = messages
                    .iter()
                    .map(|m| served.check_query(m.clone()).expect("a valid query"))
                    .collect();
                served.score(&checked)
            })
        })
    });
    g.finish();
    support::median(&group, &name).expect("measured")
}

/// Uniform values of `bits` bits.
fn catalog(items: usize, d: usize, bits: u32, seed: u64) -> QuantizedCatalog {
    let max = (1i32 << (bits - 1)) - 1;
    let mut rng = SplitMix(seed);
    let values = (0..items * d).map(|_| rng.value(max) as i16).collect();
    QuantizedCatalog::new(d, bits, values).expect("a valid catalog")
}

fn main() {
    let limits = Limits::measure();
    let choices: Vec<ObjectiveChoice> = CHOICE_SHAPES
        .iter()
        .map(|&(items, d)| {
            let c = choice(items, d);
            eprintln!(
                "{items} x {d}: the objective picks {} at {} bits (width search {:.0} ms)",
                c.candidates
                    .iter()
                    .find(|c| c.chosen)
                    .map_or("?", |c| &c.layout),
                c.catalog_bits,
                c.search_seconds * 1e3
            );
            c
        })
        .collect();
    // The table's item counts, or (BLINDSCORE_LAYOUT_ITEMS) smaller ones for a quick look.
    let measured: [usize; 2] = match std::env::var("BLINDSCORE_LAYOUT_ITEMS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        Some(items) => [items / 4, items],
        None => MEASURED_ITEMS,
    };
    let one = support::one_thread();
    let mut c = support::criterion(2);
    let mut rows = Vec::new();
    for b in GROUP_SIZES {
        let layout = Layout::from_group_size(b);
        let mut seconds = [[0.0; 2]; 2];
        for (k, d) in dimensions(b).into_iter().enumerate() {
            let d = d as usize;
            for (m, items) in measured.into_iter().enumerate() {
                seconds[k][m] = pass_seconds(&mut c, &one, items, d, layout) / 16.0;
            }
        }
        rows.push(LayoutTime {
            group_size: b,
            dimensions: dimensions(b),
            seconds,
            committed: dimensions(b)
                .map(|d| MEASURED_ITEMS.map(|m| server_seconds(layout, m, d as usize))),
        });
    }
    c.final_summary();
    let machine = support::machine();
    let mut table = format!(
        "    // Measured on {} by benches/layouts.rs at {measured:?} items.\n",
        machine.cpu
    );
    for r in &rows {
        let [[a, b], [c, d]] = r.seconds;
        let _ = writeln!(
            table,
            "    ServerTime {{ group_size: {}, dimensions: [{}, {}], seconds: [[{a:.3e}, {b:.3e}], [{c:.3e}, {d:.3e}]] }},",
            r.group_size, r.dimensions[0], r.dimensions[1]
        );
    }
    let path = support::record_path("server_times.rs");
    std::fs::write(&path, &table).expect("write the proposed table");
    eprintln!(
        "proposed SERVER_TIMES ({}, {measured:?} items) in {}",
        machine.cpu,
        path.display()
    );
    support::record(
        "layouts",
        &LayoutsRecord {
            machine,
            limits: limits.record(),
            items: measured,
            table_items: MEASURED_ITEMS,
            rows,
            choices,
        },
    );
}
