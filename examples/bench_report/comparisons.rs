//! Against the naive tfhe-rs route (measured) and Tiptoe (published).

use crate::format::{time, Report};
use crate::published;
use crate::records::{NaiveRecord, ScoringRecord};

pub fn section(r: &mut Report, s: Option<&ScoringRecord>, naive: Option<&NaiveRecord>) {
    r.line("## Against the naive route and Tiptoe");
    r.line("");
    let ours = s.and_then(|s| s.shape(1_000_000, 128, 1)).and_then(|x| {
        Some((
            x.run(1, 1, "avx512")? / (1e6 * 128.0),
            x.run(16, 1, "avx512")? / (1e6 * 128.0),
        ))
    });
    match naive {
        Some(n) => {
            r.line(format!(
                "The naive route (labelled as such): tfhe-rs {}; the query as {} encrypted `FheInt32`, each item's score as the sum of clear multiplies, on {} threads. Measured at {} item(s) x {} dims: {} per item ({} per coordinate; the plaintext dot products of the same data took {}); keys {}.",
                n.tfhe,
                n.dimension,
                n.threads,
                n.items,
                n.dimension,
                time(n.seconds.map(|s| s / n.items.max(1) as f64)),
                time(n.seconds_per_coordinate),
                time(n.plaintext_seconds),
                time(n.key_generation_seconds),
            ));
            if let (Some((one, batch)), Some(per)) = (ours, n.seconds_per_coordinate) {
                r.line(format!(
                    "Extrapolated to 1M x 128 it would take {:.1} days per query; blindscore takes {} per query (one thread): **{:.1e} times faster** (batched: {:.1e}).",
                    per * 1e6 * 128.0 / 86400.0,
                    time(one * 1e6 * 128.0),
                    per / one,
                    per / batch
                ));
            }
        }
        None => r.line("(naive route not measured in this run: `benches/run` runs it)"),
    }
    r.line("");
    let tiptoe =
        published::TIPTOE_ITEMS * published::TIPTOE_DIMENSION / published::TIPTOE_CORE_SECONDS;
    r.line("| system | dot-product coordinates per core-second | source |");
    r.line("|---|---|---|");
    if let Some((one, batch)) = ours {
        r.line(format!(
            "| blindscore, 1 query, 1M x 128, one thread | {:.2e} | measured here |",
            1.0 / one
        ));
        r.line(format!(
            "| blindscore, 16 per pass, 1M x 128, one thread | {:.2e} | measured here |",
            1.0 / batch
        ));
    }
    r.line(format!(
        "| Tiptoe: 145 core-seconds per query over 360M x 192 | {tiptoe:.2e} | published (SOSP 2023), other hardware; a whole private search (ranking and URL retrieval), normalised to its dot-product coordinates |"
    ));
    r.line("");
}
