//! Shards and the router as processes of the server binary: the router's overhead, each
//! shard's memory against its share of the whole catalog's process, the bytes a client
//! pays (the same on every path).

use crate::format::{bytes, items_label, ratio, time, Report};
use crate::records::ShardingRecord;

pub fn section(r: &mut Report, s: &ShardingRecord) {
    r.line("## Shards and the router");
    r.line("");
    r.line(format!(
        "{} x {} unit rows, layout {} (the objective's pick), built with `blindscore-server build` whole and in {} shards; every process is the server binary on loopback (`cargo bench --bench sharding`), {} replica(s) per shard{}. Warm end to end (seal, send, score, decrypt, top-10) with the same client; {} queries per path had every score checked against the plaintext: {} wrong. CPU: {}.",
        items_label(s.items),
        s.dimension,
        s.layout,
        s.shards,
        s.replicas,
        if s.replicas > 1 { " behind HAProxy" } else { "" },
        s.checked_queries_per_path,
        s.wrong_scores,
        s.machine.cpu,
    ));
    r.line("");
    r.line("| path | median | against the whole process directly |");
    r.line("|---|---|---|");
    for (name, seconds) in [
        (
            "the whole catalog's process, directly",
            s.direct_whole_seconds,
        ),
        (
            "a router in front of that process (the router's overhead)",
            s.router_whole_seconds,
        ),
        (
            &format!("the router of {} shards", s.shards) as &str,
            s.router_sharded_seconds,
        ),
        (
            "plaintext int8 scan of the same shape (one thread)",
            s.plaintext_t1_seconds,
        ),
    ] {
        r.line(format!(
            "| {name} | {} | {} |",
            time(seconds),
            ratio(seconds, s.direct_whole_seconds)
        ));
    }
    r.line("");
    r.line(format!(
        "Per query, on every path: {} up (once, whatever the number of shards), {} down. The router forwards the one upload to each shard and joins their payloads.",
        bytes(s.bytes_up as f64),
        bytes(s.bytes_down as f64)
    ));
    r.line("");
    r.line(format!(
        "Resident memory after the same queries (VmRSS): the whole catalog's process {:.0} MiB.",
        s.whole_resident_mib
    ));
    r.line("");
    r.line("| shard | items | resident | against its share of the whole process |");
    r.line("|---|---|---|---|");
    for p in &s.shard_processes {
        r.line(format!(
            "| {} | {} | {:.0} MiB | {:.2}x |",
            p.shard, p.items, p.resident_mib, p.ratio_to_share_of_whole
        ));
    }
    r.line("");
}
