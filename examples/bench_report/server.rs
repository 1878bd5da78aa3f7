//! The server's scan against the plaintext scan, shape by shape, and its plot.

use crate::format::{bytes, items_label, ratio, time, Report};
use crate::plot::{self, Line, Series};
use crate::records::{ScoringRecord, ScoringShape};

pub fn section(r: &mut Report, s: &ScoringRecord) {
    let threads = s.threads;
    r.line("## Server scoring");
    r.line("");
    r.line(
        "Uniform int8 catalog and query values, 8-bit queries; seconds per query (a batch of 4 or",
    );
    r.line(
        "16 is scored in one pass over the catalog, its time divided by its size). Ratios are to",
    );
    r.line(format!(
        "the plaintext int8 scan (AVX-512 VNNI) of the same data on as many threads. The column layout for every shape, and the layout the layout objective picks where it differs (b > 1). \"all\" = {threads} threads."
    ));
    r.line("");
    r.line("| items x d | layout | plaintext, 1 thread | 1 query | 4 per pass | 16 per pass | 1 query, all | 16 per pass, all | floors: stream (1 query's ratio) / FMA (16 per pass's ratio) | build | server memory per item |");
    r.line("|---|---|---|---|---|---|---|---|---|---|---|");
    for x in &s.shapes {
        let p1 = x.plaintext_seconds_t1;
        let pa = x.plaintext_seconds_all;
        let cell = |q: Option<f64>, p: Option<f64>| match q {
            Some(q) => format!("{} ({})", time(q), ratio(q, p)),
            None => "–".into(),
        };
        // A floor, and how far the given run is from it.
        let floor = |floor: f64, q: Option<f64>| match q {
            Some(q) => format!("{} ({})", time(floor), ratio(q, floor)),
            None => time(floor),
        };
        r.line(format!(
            "| {} x {} | {}{} | {} | {} | {} | {} | {} | {} | {} / {} | {:.2} s | {} |",
            items_label(x.items),
            x.dimension,
            x.layout,
            if x.cost_model_pick {
                " (objective)"
            } else {
                ""
            },
            time(p1),
            cell(x.run(1, 1, "avx512"), p1),
            cell(x.run(4, 1, "avx512"), p1),
            cell(x.run(16, 1, "avx512"), p1),
            cell(x.run(1, threads, "avx512"), pa),
            cell(x.run(16, threads, "avx512"), pa),
            floor(x.stream_floor_seconds, x.run(1, 1, "avx512")),
            floor(x.fma_floor_seconds, x.run(16, 1, "avx512")),
            x.build_seconds,
            bytes(x.server_bytes_per_item),
        ));
    }
    r.line("");
    if let Some(x) = s.shape(1_000_000, 128, 1) {
        if let (Some(a), Some(p)) = (x.run(1, 1, "avx512"), x.run(1, 1, "portable")) {
            r.line(format!(
                "Portable kernel (plain Rust, no intrinsics) at 1M x 128, one thread: 1 query {} ({} the AVX-512 kernel){}.",
                time(p),
                ratio(p, a),
                x.run(16, 1, "portable")
                    .map(|b| format!(", 16 per pass {} per query", time(b)))
                    .unwrap_or_default()
            ));
            r.line("");
        }
    }
    r.line(
        "\"build\" is the catalog load: the Fourier transform of every block and the exact hint.",
    );
    r.line("\"server memory per item\" is the Fourier catalog plus the hint message, per item.");
    r.line("");
    plot_time(r, s);
}

/// Time per query against catalog size, per dimension, column layout.
fn plot_time(r: &mut Report, s: &ScoringRecord) {
    let mut series = Vec::new();
    for (colour, d) in [64usize, 128, 256].into_iter().enumerate() {
        let points = |pick: &dyn Fn(&ScoringShape) -> Option<f64>| -> Vec<(f64, f64)> {
            s.shapes
                .iter()
                .filter(|x| x.dimension == d && x.group_size == 1)
                .filter_map(|x| Some((x.items as f64, pick(x)?)))
                .collect()
        };
        series.push(Series {
            name: format!("encrypted, d={d}"),
            points: points(&|x| x.run(1, 1, "avx512")),
            colour,
            line: Line::Solid,
        });
        series.push(Series {
            name: format!("16/pass, d={d}"),
            points: points(&|x| x.run(16, 1, "avx512")),
            colour,
            line: Line::Dashed,
        });
        series.push(Series {
            name: format!("plaintext, d={d}"),
            points: points(&|x| x.plaintext_seconds_t1),
            colour,
            line: Line::Dotted,
        });
    }
    r.plots.push((
        "time.svg".into(),
        plot::log_log(
            "Server time per query, one thread, column layout",
            "catalog items",
            "",
            "seconds per query",
            "s",
            &series,
        ),
    ));
    r.line("![time per query against catalog size](docs/benchmarks/time.svg)");
    r.line("");
}
