//! The server binary under an external load generator (wrk): queries per second and
//! latency by connections, and the server's own pass time against the same pass in process.

use crate::format::{bytes, items_label, ratio, time, Report};
use crate::records::ThroughputRecord;

pub fn section(r: &mut Report, t: &ThroughputRecord) {
    r.line("## Throughput under a load generator");
    r.line("");
    r.line(format!(
        "The server binary on loopback (`serve --artefact`, rate limits off, default batching: up to {} queries per pass), with {} posting valid recorded queries (`cargo bench --bench throughput`), {} s per run, one wrk thread on the same machine. Every recorded query was sent with the real client before and after the load and every score checked against the plaintext; every answer under load was 200.",
        t.batch, t.wrk, t.seconds_per_run
    ));
    r.line("");
    r.line(format!(
        "CPU (lscpu): {}; {} vCPUs{}; {}.",
        t.lscpu.model,
        t.lscpu.vcpus,
        t.lscpu
            .threads_per_core
            .map(|n| format!(", {n} thread(s) per core"))
            .unwrap_or_default(),
        t.lscpu.caches.join("; ")
    ));
    r.line("");
    r.line("| catalog | layout | up / down per query | connections | queries/s | p50 | p99 | queries per pass |");
    r.line("|---|---|---|---|---|---|---|---|");
    for c in &t.cases {
        let layout = if c.objective_pick {
            format!("{} (the objective's pick)", c.layout)
        } else {
            c.layout.clone()
        };
        for run in &c.runs {
            r.line(format!(
                "| {} x {} | {} | {} / {} | {} | {:.1} | {} | {} | {} |",
                items_label(c.items),
                c.dimension,
                layout,
                bytes(c.bytes_up as f64),
                bytes(c.bytes_down as f64),
                run.connections,
                run.queries_per_second,
                time(run.p50_seconds),
                time(run.p99_seconds),
                run.mean_queries_per_pass
                    .map(|m| format!("{m:.1}"))
                    .unwrap_or_else(|| "-".into()),
            ));
        }
    }
    r.line("");
    r.line(format!(
        "**A {b}-query pass in service against the same pass in process.** \"In service\" is the server's own mean time of its {b}-query passes during the run (`blindscore_pass_seconds_total` over `blindscore_passes_total` in `/metrics`); \"in process\" is the same pass over the same catalog in the benchmark's process when no load runs (the queries checked, then scored, on every thread: the scoring benchmark's pass), the median of passes before and after the load. CPU per query is read from /proc during the run: the server's scan threads (`scan-N`), its other threads (the async runtime: bodies read, queries checked, responses written) and wrk; in process, the whole process during its passes. On a machine whose every vCPU the scan uses, a pass in service runs beside the serving threads and the load generator: its time is about (scan + other CPU) / vCPUs.",
        b = t.batch
    ));
    r.line("");
    r.line("| catalog | layout | connections | pass in service | in process | service / process | scan CPU per query, service | in process | service / process | server's other threads | wrk |");
    r.line("|---|---|---|---|---|---|---|---|---|---|---|");
    for c in &t.cases {
        for run in c.runs.iter().filter(|run| run.full_passes > 0) {
            let cpu = &run.cpu_per_query;
            r.line(format!(
                "| {} x {} | {} | {} ({} passes) | {} | {} | {} | {} | {} | {} | {} | {} |",
                items_label(c.items),
                c.dimension,
                c.layout,
                run.connections,
                run.full_passes,
                time(run.service_pass_seconds),
                time(c.bench_pass_seconds),
                ratio(run.service_pass_seconds, c.bench_pass_seconds),
                time(cpu.scan_seconds),
                time(c.bench_cpu_per_query_seconds),
                ratio(cpu.scan_seconds, c.bench_cpu_per_query_seconds),
                time(cpu.server_other_seconds),
                time(cpu.load_generator_seconds),
            ));
        }
    }
    r.line("");
    let checked: usize = t.cases.iter().map(|c| c.checked_queries).sum();
    let wrong: usize = t.cases.iter().map(|c| c.wrong_scores).sum();
    r.line(format!(
        "Recorded queries checked score by score: {checked}, wrong scores: {wrong}. Where the objective picked the column layout, it is measured once."
    ));
    r.line("");
}
