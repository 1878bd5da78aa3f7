//! The layout objective: the server times it chooses with (measured against the committed
//! table), and its choice for a few shapes with every candidate's bytes beside ranking on
//! the device.

use crate::format::{bytes, items_label, ratio, time, Report};
use crate::records::LayoutsRecord;

pub fn section(r: &mut Report, l: &LayoutsRecord) {
    r.line("## Layouts by what a client pays");
    r.line("");
    r.line(
        "The layout of a catalog is chosen for the fewest client bytes over its first Q queries",
    );
    r.line(
        "(the hint once, then each query's upload and download), among the layouts whose server",
    );
    r.line(
        "time per query is at most 1.1x the fastest's or 1 ms more, whichever allows more. Server",
    );
    r.line("times come from a committed table (`common::objective::SERVER_TIMES`), never from the");
    r.line("machine a server runs on: the layout is part of the catalog's version.");
    r.line("");
    r.line(format!(
        "Server seconds per query, 16-query pass, one thread, measured in this run at {} and {} items, beside the committed table at {} and {} items:",
        items_label(l.items[0]),
        items_label(l.items[1]),
        items_label(l.table_items[0]),
        items_label(l.table_items[1]),
    ));
    r.line("");
    r.line("| b | d | measured | committed | measured / committed (larger) |");
    r.line("|---|---|---|---|---|");
    for row in &l.rows {
        for k in 0..2 {
            let [s1, s2] = row.seconds[k];
            let [c1, c2] = row.committed[k];
            r.line(format!(
                "| {} | {} | {} / {} | {} / {} | {} |",
                row.group_size,
                row.dimensions[k],
                time(s1),
                time(s2),
                time(c1),
                time(c2),
                ratio(s2, c2),
            ));
        }
    }
    r.line("");
    r.line("`benches/run` leaves this run's table in `target/blindscore-bench/server_times.rs`;");
    r.line("`benches/adopt-server-times` puts it in `common/src/objective.rs` for a commit.");
    r.line("");
    for c in &l.choices {
        r.line(format!(
            "**{} x {}** (L2-normalised rows; {}-bit values in the chosen layout, each layout at its widest width; Q = {}; width and layout search {}):",
            items_label(c.items),
            c.dimension,
            c.catalog_bits,
            c.queries_per_version,
            time(c.search_seconds)
        ));
        r.line("");
        r.line(
            "| layout | values | hint | up | down | first query | over Q queries | server time (table) | |",
        );
        r.line("|---|---|---|---|---|---|---|---|---|");
        for k in &c.candidates {
            r.line(format!(
                "| {} | {} bits | {} | {} | {} | {} | {} | {} | {} |",
                k.layout,
                k.catalog_bits,
                bytes(k.hint_bytes as f64),
                bytes(k.query_bytes as f64),
                bytes(k.response_bytes as f64),
                bytes(k.first_query_bytes as f64),
                bytes(k.bytes_over_queries as f64),
                time(k.server_seconds),
                if k.chosen {
                    "**chosen**"
                } else if k.allowed {
                    ""
                } else {
                    "too slow"
                }
            ));
        }
        if let Some(chosen) = c.candidates.iter().find(|k| k.chosen) {
            let encrypted = chosen.bytes_over_queries;
            let plaintext = c.plaintext_catalog_bytes;
            r.line("");
            r.line(format!(
                "Ranking on the device instead: download the quantized catalog once, {} (ids and scales, needed either way, aside). Over {} queries the encrypted route transfers {}: {}.",
                bytes(plaintext as f64),
                c.queries_per_version,
                bytes(encrypted as f64),
                if encrypted < plaintext {
                    format!("{} fewer bytes than the download", ratio(plaintext as f64, encrypted as f64))
                } else {
                    "**more than the download: by bytes alone, encryption is not worth it here**".to_string()
                }
            ));
        }
        r.line("");
    }
}
