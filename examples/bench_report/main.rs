//! Writes `BENCHMARKS.md` and its plots from the figures the benchmarks left in
//! `target/blindscore-bench/`. Run by `benches/run` after the benchmarks; on its own:
//! `cargo run --release --example bench_report`. They are written into the repository, or
//! into the directory `BLINDSCORE_REPORT_DIR` names (CI's quick run writes to a scratch
//! directory, leaving the committed report alone).

mod plot;

use std::path::PathBuf;

use plot::{Line, Series};
use serde_json::Value;

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

fn load(name: &str) -> Option<Value> {
    let path = target_dir()
        .join("blindscore-bench")
        .join(format!("{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

fn f(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or(f64::NAN)
}

fn u(v: &Value, key: &str) -> usize {
    v[key].as_u64().unwrap_or(0) as usize
}

/// A duration, in the unit that reads best.
fn time(s: f64) -> String {
    if !s.is_finite() {
        "–".into()
    } else if s >= 1.0 {
        format!("{s:.2} s")
    } else if s >= 1e-3 {
        format!("{:.2} ms", s * 1e3)
    } else if s >= 1e-6 {
        format!("{:.1} µs", s * 1e6)
    } else {
        format!("{:.0} ns", s * 1e9)
    }
}

fn bytes(b: f64) -> String {
    if !b.is_finite() {
        "–".into()
    } else if b >= (1 << 20) as f64 {
        format!("{:.2} MiB", b / (1 << 20) as f64)
    } else if b >= 1024.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else {
        format!("{b:.0} B")
    }
}

fn ratio(a: f64, b: f64) -> String {
    let r = a / b;
    if !r.is_finite() {
        "–".into()
    } else if r >= 100.0 {
        format!("{r:.0}x")
    } else {
        format!("{r:.2}x")
    }
}

fn items_label(items: usize) -> String {
    match items {
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n if n >= 1000 && n % 1000 == 0 => format!("{}k", n / 1000),
        n => n.to_string(),
    }
}

fn command(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// The run of one batch size and thread count.
fn run(shape: &Value, batch: u64, threads: u64, kernel: &str) -> Option<f64> {
    shape["encrypted"].as_array()?.iter().find_map(|r| {
        (r["batch"].as_u64() == Some(batch)
            && r["threads"].as_u64() == Some(threads)
            && r["kernel"].as_str() == Some(kernel))
        .then(|| r["seconds_per_query"].as_f64())
        .flatten()
    })
}

struct Report {
    md: String,
    plots: Vec<(String, String)>,
}

impl Report {
    fn line(&mut self, text: impl AsRef<str>) {
        self.md.push_str(text.as_ref());
        self.md.push('\n');
    }
}

fn main() -> std::io::Result<()> {
    let root = std::env::var_os("BLINDSCORE_REPORT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    let scoring = load("scoring");
    let clients: Vec<Value> = ["client_avx512", "client_portable"]
        .into_iter()
        .filter_map(load)
        .collect();
    let e2e = load("end_to_end");
    let naive = load("naive");
    let mut r = Report {
        md: String::new(),
        plots: Vec::new(),
    };
    let any = scoring.as_ref().or(e2e.as_ref()).or(clients.first());
    let Some(first) = any else {
        eprintln!(
            "no figures in {}: run benches/run first",
            target_dir().display()
        );
        std::process::exit(1);
    };
    let machine = &first["machine"];
    let limits = &first["limits"];
    let bandwidth = f(limits, "bandwidth_bytes_per_s");
    let fma_rate = f(limits, "fma_per_s");

    r.line("# Benchmarks");
    r.line("");
    r.line("Every figure here is a criterion median measured on the machine below, beside the");
    r.line(
        "plaintext int8 dot products of the same data in the same run and this machine's measured",
    );
    r.line("limits. Regenerate the whole file and its plots with one command:");
    r.line("");
    r.line("```sh");
    r.line("benches/run            # about 25 minutes on 2 cores; benches/run --quick: a few");
    r.line("```");
    r.line("");
    r.line(
        "It runs `cargo bench --bench scoring`, `--bench client` (with and without tfhe's AVX-512",
    );
    r.line("kernels), `--bench end_to_end`, the naive tfhe-rs route (`benches/naive`, its own");
    r.line(
        "workspace), then `cargo run --release --example bench_report`. Each benchmark checks what",
    );
    r.line("it times: decrypted scores must equal the plaintext integer dot products.");
    r.line("");
    r.line("## Machine");
    r.line("");
    r.line(format!(
        "- CPU: {} ({} hardware threads; {}), {:.0} GiB memory",
        machine["cpu"].as_str().unwrap_or("unknown"),
        machine["threads"],
        machine["simd"]
            .as_array()
            .map(|a| a
                .iter()
                .filter_map(|v| v.as_str())
                .collect::<Vec<_>>()
                .join(", "))
            .unwrap_or_default(),
        f(machine, "memory_gib")
    ));
    r.line(format!(
        "- Measured limits, one thread: memory read **{:.1} GB/s**, **{:.1} G f64 FMA/s** (AVX-512)",
        bandwidth / 1e9,
        fma_rate / 1e9
    ));
    r.line(format!(
        "- {}; blindscore commit {}; report written {}",
        command("rustc", &["--version"]),
        command("git", &["rev-parse", "--short", "HEAD"]),
        command("date", &["-u", "+%Y-%m-%d"])
    ));
    r.line("- A shared 2-core machine: run-to-run spread is ±10% or more; compare ratios measured");
    r.line("  in one run rather than absolute times across runs.");
    r.line("");

    if let Some(s) = &scoring {
        targets(&mut r, s, e2e.as_ref());
        server_section(&mut r, s);
    } else {
        r.line("(server scoring not measured in this run: `cargo bench --bench scoring`)");
    }
    client_section(&mut r, &clients);
    if let Some(e) = &e2e {
        e2e_section(&mut r, e);
    }
    comparisons(&mut r, scoring.as_ref(), naive.as_ref());
    if let Some(s) = &scoring {
        bytes_section(&mut r, s);
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

fn shape_of(s: &Value, items: usize, d: usize, b: usize) -> Option<&Value> {
    s["shapes"]
        .as_array()?
        .iter()
        .find(|x| u(x, "items") == items && u(x, "dimension") == d && u(x, "group_size") == b)
}

fn targets(r: &mut Report, s: &Value, e2e: Option<&Value>) {
    r.line("## Targets (one thread, 1M x 128)");
    r.line("");
    r.line("| target | measured | limit | result |");
    r.line("|---|---|---|---|");
    if let Some(x) = shape_of(s, 1_000_000, 128, 1) {
        let stream = f(x, "stream_floor_seconds");
        let fma = f(x, "fma_floor_seconds");
        if let Some(one) = run(x, 1, 1, "avx512") {
            r.line(format!(
                "| one query within 1.25x the time to stream the Fourier catalog once | {} | {} x 1.25 = {} | {} ({}) |",
                time(one),
                time(stream),
                time(1.25 * stream),
                if one <= 1.25 * stream { "met" } else { "**not met**" },
                ratio(one, stream)
            ));
        }
        if let Some(b16) = run(x, 16, 1, "avx512") {
            r.line(format!(
                "| 16 batched queries within 2x the FMA floor per query | {} per query | {} x 2 = {} | {} ({}) |",
                time(b16),
                time(fma),
                time(2.0 * fma),
                if b16 <= 2.0 * fma { "met" } else { "**not met**" },
                ratio(b16, fma)
            ));
        }
    }
    if let Some(warm) = e2e.map(|e| f(&e["catalog_100k"], "warm_seconds")) {
        r.line(format!(
            "| end to end at 100k x 128, warm, under 40 ms | {} | 40 ms | {} |",
            time(warm),
            if warm < 0.040 { "met" } else { "**not met**" }
        ));
    }
    r.line("");
    r.line(
        "The streaming floor is the Fourier catalog's size over the measured read bandwidth; the",
    );
    r.line(
        "FMA floor is 2 d real f64 FMAs per item and query (one complex multiply-add per Fourier",
    );
    r.line(
        "point of each of d products per block of N items, over N/2 points) at the measured rate.",
    );
    r.line("");
    if let Some(x) = shape_of(s, 1_000_000, 128, 1) {
        batch_story(r, s, x);
    }
}

/// Where the 16-query pass at 1M x 128 spends its time, beside the limits it meets.
fn batch_story(r: &mut Report, s: &Value, x: &Value) {
    let Some(b16) = run(x, 16, 1, "avx512") else {
        return;
    };
    let kernel = f(s, "kernel_fma_per_s_in_l1");
    let fma_rate = f(&s["limits"], "fma_per_s");
    let bandwidth = f(&s["limits"], "bandwidth_bytes_per_s");
    let catalog = f(x, "fourier_bytes");
    let phases = &x["pass_phases_b16_t1"];
    let mac = f(phases, "multiply_accumulate");
    let (prepare, inverse, total) = (
        f(phases, "prepare"),
        f(phases, "inverse"),
        f(phases, "total"),
    );
    r.line(format!(
        "Where a pass of 16 queries goes (1M x 128, one thread; {} per query in the table, {} \
         in {} passes timed phase by phase, medians per query): preparing the queries \
         (unpacking and transforming their bodies) {}; the multiply-accumulate against the \
         catalog {}, while the Fourier catalog ({}, read once per pass) streams in at {:.1} \
         GB/s, against {:.1} GB/s for a plain sequential read on one thread; the inverse side \
         (gathering each block's sums, the inverse transforms, rounding and packing the \
         scores) {}; the rest (taking buffers, and zeroing them as they are released) {}. The \
         multiply-accumulate kernel alone, on data held in L1, runs at {:.1} G FMA/s ({:.0}% \
         of the FMA rate), so the FMAs alone take {} per query at best.",
        time(b16),
        time(total),
        u(phases, "runs"),
        time(prepare),
        time(mac),
        bytes(catalog),
        catalog / (16.0 * mac) / 1e9,
        bandwidth / 1e9,
        time(inverse),
        time(total - prepare - mac - inverse),
        kernel / 1e9,
        100.0 * kernel / fma_rate,
        time(f(x, "fma_floor_seconds") * fma_rate / kernel),
    ));
    r.line("");
}

fn server_section(r: &mut Report, s: &Value) {
    let threads = s["threads"].as_u64().unwrap_or(2);
    r.line("## Server scoring");
    r.line("");
    r.line(
        "Uniform int8 catalog and query values, 8-bit queries; seconds per query (a batch of 4 or",
    );
    r.line(
        "16 is scored in one pass over the catalog, its time divided by its size). Ratios are to",
    );
    r.line(format!(
        "the plaintext int8 scan (AVX-512 VNNI) of the same data on as many threads. The column layout for every shape, and the layout the cost model picks where it differs (b > 1). \"all\" = {threads} threads."
    ));
    r.line("");
    r.line("| items x d | layout | plaintext, 1 thread | 1 query | 4 per pass | 16 per pass | 1 query, all | 16 per pass, all | floors: stream (1 query's ratio) / FMA (16 per pass's ratio) | build | server memory per item |");
    r.line("|---|---|---|---|---|---|---|---|---|---|---|");
    let empty = Vec::new();
    for x in s["shapes"].as_array().unwrap_or(&empty) {
        let p1 = f(x, "plaintext_seconds_t1");
        let pa = f(x, "plaintext_seconds_all");
        let cell = |q: Option<f64>, p: f64| match q {
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
            items_label(u(x, "items")),
            u(x, "dimension"),
            x["layout"].as_str().unwrap_or("?"),
            if x["cost_model_pick"].as_bool() == Some(true) {
                " (cost model)"
            } else {
                ""
            },
            time(p1),
            cell(run(x, 1, 1, "avx512"), p1),
            cell(run(x, 4, 1, "avx512"), p1),
            cell(run(x, 16, 1, "avx512"), p1),
            cell(run(x, 1, threads, "avx512"), pa),
            cell(run(x, 16, threads, "avx512"), pa),
            floor(f(x, "stream_floor_seconds"), run(x, 1, 1, "avx512")),
            floor(f(x, "fma_floor_seconds"), run(x, 16, 1, "avx512")),
            f(x, "build_seconds"),
            bytes(f(x, "server_bytes_per_item")),
        ));
    }
    r.line("");
    if let Some(x) = shape_of(s, 1_000_000, 128, 1) {
        if let (Some(a), Some(p)) = (run(x, 1, 1, "avx512"), run(x, 1, 1, "portable")) {
            r.line(format!(
                "Portable kernel (plain Rust, no intrinsics) at 1M x 128, one thread: 1 query {} ({} the AVX-512 kernel){}.",
                time(p),
                ratio(p, a),
                run(x, 16, 1, "portable")
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
    // Plot: time per query against catalog size, per dimension.
    let mut series = Vec::new();
    for (colour, d) in [64usize, 128, 256].into_iter().enumerate() {
        let points = |pick: &dyn Fn(&Value) -> Option<f64>| -> Vec<(f64, f64)> {
            s["shapes"]
                .as_array()
                .unwrap_or(&empty)
                .iter()
                .filter(|x| u(x, "dimension") == d && u(x, "group_size") == 1)
                .filter_map(|x| Some((u(x, "items") as f64, pick(x)?)))
                .collect()
        };
        series.push(Series {
            name: format!("encrypted, d={d}"),
            points: points(&|x| run(x, 1, 1, "avx512")),
            colour,
            line: Line::Solid,
        });
        series.push(Series {
            name: format!("16/pass, d={d}"),
            points: points(&|x| run(x, 16, 1, "avx512")),
            colour,
            line: Line::Dashed,
        });
        series.push(Series {
            name: format!("plaintext, d={d}"),
            points: points(&|x| Some(f(x, "plaintext_seconds_t1"))),
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

fn client_section(r: &mut Report, clients: &[Value]) {
    if clients.is_empty() {
        return;
    }
    r.line("## Client");
    r.line("");
    r.line(
        "Per query on one thread, d = 128: drawing the fresh secret key from the OS, encrypting",
    );
    r.line("(including the key's transform and tfhe's noise), and decrypting every score plus the");
    r.line(
        "top 10 (into the app's reused buffer; in brackets with a fresh one), beside the plaintext",
    );
    r.line("scan of the same catalog. \"portable\" is built without tfhe's AVX-512 FFT kernels.");
    r.line("");
    r.line("| build | layout | items | key | encrypt | decrypt + top-10 | plaintext scan | decrypt / plaintext | up / down / hint |");
    r.line("|---|---|---|---|---|---|---|---|---|");
    for c in clients {
        for l in c["layouts"].as_array().into_iter().flatten() {
            let dec = f(l, "decrypt_top10_seconds");
            let plain = f(l, "plaintext_seconds_t1");
            r.line(format!(
                "| {} | {} | {} | {} | {} | {} ({}) | {} | {} | {} / {} / {} |",
                c["build"].as_str().unwrap_or("?"),
                l["layout"].as_str().unwrap_or("?"),
                items_label(u(l, "items")),
                time(f(l, "key_generation_seconds")),
                time(f(l, "encrypt_seconds")),
                time(dec),
                time(f(l, "decrypt_top10_fresh_seconds")),
                time(plain),
                ratio(dec, plain),
                bytes(f(l, "query_message_bytes")),
                bytes(f(l, "response_message_bytes")),
                bytes(f(l, "hint_message_bytes")),
            ));
        }
    }
    r.line("");
}

fn e2e_section(r: &mut Report, e: &Value) {
    let c = &e["catalog_100k"];
    r.line("## End to end over loopback HTTP");
    r.line("");
    r.line(format!(
        "100k x 128 float vectors with the operator's defaults: {}-bit catalog values (the widest the budget allows), {}-bit queries, layout {} (the cost model's pick); the server's default batching window of 2 ms applies. `Ranker::rank` from a float vector to a ranked top-10.",
        u(c, "catalog_bits"),
        u(c, "query_bits"),
        c["layout"].as_str().unwrap_or("?")
    ));
    r.line("");
    r.line("| figure | median |");
    r.line("|---|---|");
    for (name, key) in [
        (
            "cold: new client, fetch the catalog's public data, then the query",
            "cold_seconds",
        ),
        (
            "warm: version check + the query (hint cached)",
            "warm_seconds",
        ),
        ("  step: quantize + encrypt", "warm_step_encrypt_seconds"),
        (
            "  step: HTTP round trip incl. server scoring",
            "warm_step_http_and_scoring_seconds",
        ),
        ("  step: decrypt + rank", "warm_step_decrypt_rank_seconds"),
        (
            "server scoring alone (one thread, best of 20)",
            "server_seconds_t1_best_of_20",
        ),
        (
            "plaintext int8 scan of a 100k x 128 catalog",
            "plaintext_t1_seconds",
        ),
        (
            "catalog load (quantize, Fourier catalog, hint)",
            "load_seconds",
        ),
    ] {
        r.line(format!("| {name} | {} |", time(f(c, key))));
    }
    r.line(format!(
        "| bytes up / down per query; once per version | {} / {}; {} |",
        bytes(f(c, "bytes_up")),
        bytes(f(c, "bytes_down")),
        bytes(f(c, "bytes_once_per_version"))
    ));
    r.line("");
    let p = &e["pnns_4096x128"];
    r.line("## Apple PNNS's shape: 4,096 x 128");
    r.line("");
    r.line("Every layout the cost model considers, end to end warm over loopback HTTP, and the");
    r.line("server's own scoring time on one thread (best of 20). Apple's row is its published");
    r.line(
        "figure (swift-homomorphic-encryption's PNNS example; hardware not stated): not measured",
    );
    r.line("here, not comparable beyond orders of magnitude. Its evaluation keys and our hint are both");
    r.line("one-time downloads; PNNS computes on its server with evaluation keys, blindscore needs none.");
    r.line("");
    r.line("| system | layout | catalog bits | end to end, warm | server time | up | down | one-time |");
    r.line("|---|---|---|---|---|---|---|---|");
    let mut best: Option<(f64, String)> = None;
    for l in p["layouts"].as_array().into_iter().flatten() {
        let server = f(l, "server_seconds_t1_best_of_20");
        let name = l["layout"].as_str().unwrap_or("?").to_string();
        if best.as_ref().is_none_or(|(t, _)| server < *t) {
            best = Some((server, name.clone()));
        }
        r.line(format!(
            "| blindscore (measured) | {name} | {} | {} | {} | {} | {} | {} |",
            u(l, "catalog_bits"),
            time(f(l, "warm_seconds")),
            time(server),
            bytes(f(l, "bytes_up")),
            bytes(f(l, "bytes_down")),
            bytes(f(l, "bytes_once_per_version")),
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
        time(f(p, "plaintext_t1_seconds"))
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

fn comparisons(r: &mut Report, s: Option<&Value>, naive: Option<&Value>) {
    r.line("## Against the naive route and Tiptoe");
    r.line("");
    let ours = s
        .and_then(|s| shape_of(s, 1_000_000, 128, 1))
        .and_then(|x| {
            Some((
                run(x, 1, 1, "avx512")? / (1e6 * 128.0),
                run(x, 16, 1, "avx512")? / (1e6 * 128.0),
            ))
        });
    match naive {
        Some(n) => {
            let per = f(n, "seconds_per_coordinate");
            r.line(format!(
                "The naive route (labelled as such): tfhe-rs {}; the query as {} encrypted `FheInt32`, each item's score as the sum of clear multiplies, on {} threads. Measured at {} item(s) x {} dims: {} per item ({} per coordinate; the plaintext dot products of the same data took {}); keys {}.",
                n["tfhe"].as_str().unwrap_or("?"),
                u(n, "dimension"),
                u(n, "threads"),
                u(n, "items"),
                u(n, "dimension"),
                time(f(n, "seconds") / u(n, "items").max(1) as f64),
                time(per),
                time(f(n, "plaintext_seconds")),
                time(f(n, "key_generation_seconds")),
            ));
            if let Some((one, batch)) = ours {
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

fn bytes_section(r: &mut Report, s: &Value) {
    r.line("## Bytes per query");
    r.line("");
    r.line(
        "For every size and every layout the cost model considers, at the budget's wire widths for",
    );
    r.line("the worst-case block norm of int8 values (payload bytes; a message adds a few dozen):");
    r.line(
        "up = the encrypted query, down = the encrypted scores, hint = once per catalog version.",
    );
    r.line("");
    r.line("| items x d | layout | Delta | up | down | down per score | hint | hint per item |");
    r.line("|---|---|---|---|---|---|---|---|");
    let empty = Vec::new();
    let mut up = Vec::new();
    let mut down = Vec::new();
    let mut hint = Vec::new();
    for x in s["shapes"].as_array().unwrap_or(&empty) {
        if u(x, "group_size") != 1 {
            continue;
        }
        let items = u(x, "items");
        for l in x["layouts"].as_array().unwrap_or(&empty) {
            r.line(format!(
                "| {} x {} | {} | 2^{} | {} | {} | {:.2} B | {} | {:.2} B |",
                items_label(items),
                u(x, "dimension"),
                l["layout"].as_str().unwrap_or("?"),
                l["delta_log2"],
                bytes(f(l, "query_bytes")),
                bytes(f(l, "response_bytes")),
                f(l, "response_bytes") / items as f64,
                bytes(f(l, "hint_bytes")),
                f(l, "hint_bytes") / items as f64,
            ));
            if u(x, "dimension") == 128 && [1, 16].contains(&u(l, "group_size")) {
                let tag = l["layout"].as_str().unwrap_or("?").to_string();
                up.push((tag.clone(), items as f64, f(l, "query_bytes")));
                down.push((tag.clone(), items as f64, f(l, "response_bytes")));
                hint.push((tag, items as f64, f(l, "hint_bytes")));
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
        tags.dedup();
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
