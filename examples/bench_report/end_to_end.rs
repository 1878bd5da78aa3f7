//! The SDK against the real server over loopback HTTP: 100k x 128 step by step, and Apple
//! PNNS's shape in every layout beside its published figures.

use crate::format::{bytes, ratio, time, Report};
use crate::published;
use crate::records::{ClientBytes, EndToEndRecord};

fn client_bytes(b: &ClientBytes) -> [String; 3] {
    [
        bytes(b.bytes_up as f64),
        bytes(b.bytes_down as f64),
        bytes(b.bytes_once_per_version as f64),
    ]
}

pub fn section(r: &mut Report, e: &EndToEndRecord) {
    let c = &e.catalog_100k;
    r.line("## End to end over loopback HTTP");
    r.line("");
    r.line(format!(
        "100k x 128 float vectors with the operator's defaults: {}-bit catalog values (the widest the budget allows), {}-bit queries, layout {} (the layout objective's pick); the server's default batching window of 2 ms applies. `Ranker::rank` from a float vector to a ranked top-10.",
        c.served.catalog_bits, c.served.query_bits, c.served.layout
    ));
    r.line("");
    r.line("| figure | median |");
    r.line("|---|---|");
    for (name, seconds) in [
        (
            "cold: new client, fetch the catalog's public data, then the query",
            c.cold_seconds,
        ),
        (
            "warm: version check + the query (hint cached)",
            c.warm_seconds,
        ),
        ("  step: quantize + encrypt", c.warm_step_encrypt_seconds),
        (
            "  step: HTTP round trip incl. server scoring",
            c.warm_step_http_and_scoring_seconds,
        ),
        ("  step: decrypt + rank", c.warm_step_decrypt_rank_seconds),
        (
            "server scoring alone (one thread, best of 20)",
            Some(c.served.server_seconds_t1_best_of_20),
        ),
        (
            "plaintext int8 scan of a 100k x 128 catalog",
            c.plaintext_t1_seconds,
        ),
        (
            "catalog load (quantize, Fourier catalog, hint)",
            Some(c.served.load_seconds),
        ),
    ] {
        r.line(format!("| {name} | {} |", time(seconds)));
    }
    let [up, down, once] = client_bytes(&c.bytes);
    r.line(format!(
        "| bytes up / down per query; once per version | {up} / {down}; {once} |"
    ));
    r.line("");
    let p = &e.pnns_4096x128;
    r.line("## Apple PNNS's shape: 4,096 x 128");
    r.line("");
    r.line(
        "Every layout the layout objective considers, end to end warm over loopback HTTP, and the",
    );
    r.line("server's own scoring time on one thread (best of 20). Apple's row is its published");
    r.line(
        "figure (swift-homomorphic-encryption's PNNS example; hardware not stated): not measured",
    );
    r.line("here, not comparable beyond orders of magnitude. Its evaluation keys and our hint are both");
    r.line("one-time downloads; PNNS computes on its server with evaluation keys, blindscore needs none.");
    r.line("");
    r.line("| system | layout | catalog bits | end to end, warm | server time | up | down | one-time |");
    r.line("|---|---|---|---|---|---|---|---|");
    let mut best: Option<(f64, &str)> = None;
    for l in &p.layouts {
        let server = l.served.server_seconds_t1_best_of_20;
        if best.is_none_or(|(t, _)| server < t) {
            best = Some((server, &l.served.layout));
        }
        let [up, down, once] = client_bytes(&l.bytes);
        r.line(format!(
            "| blindscore (measured) | {} | {} | {} | {} | {up} | {down} | {once} |",
            l.served.layout,
            l.served.catalog_bits,
            time(l.warm_seconds),
            time(server),
        ));
    }
    r.line(format!(
        "| Apple PNNS (published, other hardware) | – | – | – | {}–{} ms | {} KB | {} KB | {} KB evaluation keys |",
        published::PNNS_SERVER_MS.0,
        published::PNNS_SERVER_MS.1,
        published::PNNS_QUERY_KB,
        published::PNNS_RESPONSE_KB,
        published::PNNS_EVALUATION_KEY_KB
    ));
    r.line(format!(
        "| plaintext int8 scan (measured) | – | 8 | – | {} | – | – | – |",
        time(p.plaintext_t1_seconds)
    ));
    r.line("");
    if let Some((t, name)) = best {
        r.line(format!(
            "Fastest server time here: {} with {name}; Apple's published lower figure is {} that.",
            time(t),
            ratio(published::PNNS_SERVER_MS.0 * 1e-3, t)
        ));
        r.line("");
    }
}
