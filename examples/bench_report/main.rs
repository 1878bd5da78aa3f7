//! Writes `BENCHMARKS.md` and its plots from the figures the benchmarks left in
//! `target/blindscore-bench/` (typed records, `benches/support/records.rs`). Run by
//! `benches/run` after the benchmarks; on its own: `cargo run --release --example
//! bench_report`. They are written into the repository, or into the directory
//! `BLINDSCORE_REPORT_DIR` names (CI's quick run writes to a scratch directory, leaving the
//! committed report alone). One module per section of the report.

mod bytes;
mod client;
mod comparisons;
mod end_to_end;
mod format;
mod layouts;
mod machine;
mod plot;
mod server;
mod sharding;
mod targets;
mod throughput;

#[path = "../../benches/support/records.rs"]
#[allow(dead_code)]
mod records;

use std::path::PathBuf;

use format::Report;
use records::{
    ClientRecord, EndToEndRecord, LayoutsRecord, NaiveRecord, ScoringRecord, ShardingRecord,
    ThroughputRecord,
};

/// Published figures from other systems, on other hardware.
mod published {
    /// Apple swift-homomorphic-encryption, PNNS example log, 4,096 x 128.
    pub const PNNS_SERVER_MS: (f64, f64) = (10.4, 12.5);
    pub const PNNS_QUERY_KB: f64 = 28.2;
    pub const PNNS_EVALUATION_KEY_KB: f64 = 170.2;
    pub const PNNS_RESPONSE_KB: f64 = 52.1;
    /// Tiptoe (SOSP 2023): 145 core-seconds per query over 360M documents x 192 dims.
    pub const TIPTOE_CORE_SECONDS: f64 = 145.0;
    pub const TIPTOE_ITEMS: f64 = 360e6;
    pub const TIPTOE_DIMENSION: f64 = 192.0;
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// A benchmark's record: `None` when that benchmark did not run; a record that does not
/// parse as its type stops the report, naming the file.
fn load<T: serde::de::DeserializeOwned>(name: &str) -> Option<T> {
    let path = target_dir()
        .join("blindscore-bench")
        .join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).ok()?;
    match serde_json::from_str(&text) {
        Ok(record) => Some(record),
        Err(e) => {
            eprintln!(
                "{}: not a {name} record ({e}); rerun that benchmark",
                path.display()
            );
            std::process::exit(1);
        }
    }
}

fn main() -> std::io::Result<()> {
    let root = std::env::var_os("BLINDSCORE_REPORT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    let scoring: Option<ScoringRecord> = load("scoring");
    let clients: Vec<ClientRecord> = ["client_avx512", "client_portable"]
        .into_iter()
        .filter_map(load)
        .collect();
    let e2e: Option<EndToEndRecord> = load("end_to_end");
    let naive: Option<NaiveRecord> = load("naive");
    let layouts: Option<LayoutsRecord> = load("layouts");
    let sharding: Option<ShardingRecord> = load("sharding");
    let throughput: Option<ThroughputRecord> = load("throughput");
    let first = scoring
        .as_ref()
        .map(|s| (&s.machine, &s.limits))
        .or(e2e.as_ref().map(|e| (&e.machine, &e.limits)))
        .or(clients.first().map(|c| (&c.machine, &c.limits)));
    let Some((machine_record, limits)) = first else {
        eprintln!(
            "no figures in {}: run benches/run first",
            target_dir().display()
        );
        std::process::exit(1);
    };
    let mut r = Report {
        md: String::new(),
        plots: Vec::new(),
    };
    machine::section(&mut r, machine_record, limits);
    if let Some(s) = &scoring {
        targets::section(&mut r, s, e2e.as_ref());
        server::section(&mut r, s);
    } else {
        r.line("(server scoring not measured in this run: `cargo bench --bench scoring`)");
    }
    client::section(&mut r, &clients);
    if let Some(e) = &e2e {
        end_to_end::section(&mut r, e);
    }
    comparisons::section(&mut r, scoring.as_ref(), naive.as_ref());
    if let Some(l) = &layouts {
        layouts::section(&mut r, l);
    }
    if let Some(s) = &sharding {
        sharding::section(&mut r, s);
    }
    if let Some(t) = &throughput {
        throughput::section(&mut r, t);
    }
    if let Some(s) = &scoring {
        bytes::section(&mut r, s);
    }

    std::fs::write(root.join("BENCHMARKS.md"), &r.md)?;
    let dir = root.join("docs/benchmarks");
    std::fs::create_dir_all(&dir)?;
    for (name, svg) in &r.plots {
        std::fs::write(dir.join(name), svg)?;
    }
    eprintln!(
        "wrote {} and {} plots in {}",
        root.join("BENCHMARKS.md").display(),
        r.plots.len(),
        dir.display()
    );
    Ok(())
}
