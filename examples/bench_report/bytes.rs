//! Bytes per query of every layout the layout objective considers, and their plot.

use crate::format::{bytes, items_label, Report};
use crate::plot::{self, Line, Series};
use crate::records::ScoringRecord;

pub fn section(r: &mut Report, s: &ScoringRecord) {
    r.line("## Bytes per query");
    r.line("");
    r.line(
        "For every size and every layout the layout objective considers, at the budget's wire widths for",
    );
    r.line("the worst-case block norm of int8 values (payload bytes; a message adds a few dozen):");
    r.line(
        "up = the encrypted query, down = the encrypted scores, hint = once per catalog version.",
    );
    r.line("");
    r.line("| items x d | layout | Delta | up | down | down per score | hint | hint per item |");
    r.line("|---|---|---|---|---|---|---|---|");
    let mut up = Vec::new();
    let mut down = Vec::new();
    let mut hint = Vec::new();
    for x in s.shapes.iter().filter(|x| x.group_size == 1) {
        let items = x.items;
        for l in &x.layouts {
            r.line(format!(
                "| {} x {} | {} | 2^{} | {} | {} | {:.2} B | {} | {:.2} B |",
                items_label(items),
                x.dimension,
                l.layout,
                l.delta_log2,
                bytes(l.query_bytes as f64),
                bytes(l.response_bytes as f64),
                l.response_bytes as f64 / items as f64,
                bytes(l.hint_bytes as f64),
                l.hint_bytes as f64 / items as f64,
            ));
            if x.dimension == 128 && [1, 16].contains(&l.group_size) {
                let tag = l.layout.clone();
                up.push((tag.clone(), items as f64, l.query_bytes as f64));
                down.push((tag.clone(), items as f64, l.response_bytes as f64));
                hint.push((tag, items as f64, l.hint_bytes as f64));
            }
        }
    }
    r.line("");
    let mut series = Vec::new();
    for (what, list, style) in [
        ("up", &up, Line::Solid),
        ("down", &down, Line::Dashed),
        ("hint", &hint, Line::Dotted),
    ] {
        let mut tags: Vec<&String> = list.iter().map(|p| &p.0).collect();
        tags.sort();
        tags.dedup();
        for (colour, tag) in tags.into_iter().enumerate() {
            series.push(Series {
                name: format!("{what}, {tag}"),
                points: list
                    .iter()
                    .filter(|p| &p.0 == tag)
                    .map(|p| (p.1, p.2))
                    .collect(),
                colour,
                line: style,
            });
        }
    }
    r.plots.push((
        "bytes.svg".into(),
        plot::log_log(
            "Bytes per query, d = 128",
            "catalog items",
            "",
            "bytes",
            "B",
            &series,
        ),
    ));
    r.line("![bytes per query against catalog size](docs/benchmarks/bytes.svg)");
    r.line("");
}
