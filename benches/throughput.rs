//! The server binary under an external load generator: wrk (Debian's package) posting valid
//! recorded queries at 1, 16 and 32 connections, at `BLINDSCORE_THROUGHPUT_ITEMS` (100,000
//! and 1,000,000) x 128 unit rows, in the layout objective's pick and in the column layout
//! (one run when they are the same). Queries per second and wrk's p50/p99 latency; beside
//! them the server's own pass times by batch size (from `/metrics`) against the same pass
//! in process (the scoring benchmark's pass: the queries checked, then scored, on every
//! thread), measured in the same run before and after the load. `lscpu`'s model, vCPU and
//! cache lines are recorded with the figures.
//!
//! Each recorded query is first sent once with the real client and every score of it
//! checked against the plaintext; a run with any answer but 200 fails.
//! `cargo bench --bench throughput` (it needs the server binary, `cargo build --release -p
//! blindscore-server`, and wrk, `apt-get install wrk`); `BLINDSCORE_THROUGHPUT_SECONDS`
//! (15) per run. Figures go to `target/blindscore-bench/throughput.json`.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use blindscore_client::Ranker;
use blindscore_common::{Layout, LayoutChoice, QuantizedCatalog};
use blindscore_server::artefact::Artefact;
use support::processes::*;
use support::records::{CpuPerQuery, Lscpu, ThroughputCase, ThroughputRecord, ThroughputRun};

const D: usize = 128;
const CONNECTIONS: [usize; 3] = [1, 16, 32];
/// Distinct recorded queries the load generator cycles through.
const RECORDED: usize = 8;
/// Passes of the in-process reference, before and after the load runs each.
const REFERENCE_PASSES: usize = 5;
/// The batch whose pass is compared in service and in process (the default batch size).
const BATCH: usize = 16;

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.into())
}

/// The wrk binary, or a clear stop.
fn wrk() -> PathBuf {
    for dir in ["/usr/bin", "/usr/local/bin"] {
        let path = Path::new(dir).join("wrk");
        if path.exists() {
            return path;
        }
    }
    panic!("wrk is not installed: `apt-get install wrk` (benches/run installs it)");
}

/// `lscpu`'s model, vCPU, threads per core and cache lines.
fn lscpu() -> Lscpu {
    let text = Command::new("lscpu")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim_start_matches(':').trim().to_string())
    };
    Lscpu {
        model: field("Model name").unwrap_or_else(|| "unknown".into()),
        vcpus: field("CPU(s)").and_then(|v| v.parse().ok()).unwrap_or(0),
        threads_per_core: field("Thread(s) per core").and_then(|v| v.parse().ok()),
        caches: text
            .lines()
            .filter(|l| l.trim_start().starts_with('L') && l.contains("cache"))
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect(),
    }
}

/// The wrk script: cycle through the recorded bodies, print the summary as one JSON line.
fn wrk_script(bodies: &[PathBuf], path: &str) -> String {
    let files: Vec<String> = bodies
        .iter()
        .map(|p| format!("{:?}", p.display().to_string()))
        .collect();
    format!(
        r#"local files = {{{files}}}
local bodies = {{}}
for i, name in ipairs(files) do
  local f = assert(io.open(name, "rb"))
  bodies[i] = f:read("*a")
  f:close()
end
wrk.method = "POST"
wrk.path = "{path}"
wrk.headers["Content-Type"] = "application/octet-stream"
local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, nil, nil, bodies[(n % #bodies) + 1])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK {{\"requests\":%d,\"duration_us\":%d,\"non_2xx\":%d,\"socket_errors\":%d,\"p50_us\":%d,\"p99_us\":%d}}\n",
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50.0), latency:percentile(99.0)))
end
"#,
        files = files.join(", ")
    )
}

#[derive(serde::Deserialize)]
struct WrkSummary {
    requests: u64,
    duration_us: u64,
    non_2xx: u64,
    socket_errors: u64,
    p50_us: u64,
    p99_us: u64,
}

/// Clock ticks per second of /proc's CPU times (USER_HZ, 100 on Linux's x86-64).
const USER_HZ: f64 = 100.0;

/// The CPU time fields of a /proc `stat` line, after the command name: (comm, fields).
fn stat_fields(stat: &str) -> Option<(&str, Vec<&str>)> {
    let (open, close) = (stat.find('(')?, stat.rfind(')')?);
    Some((
        &stat[open + 1..close],
        stat.get(close + 2..)?.split_whitespace().collect(),
    ))
}

/// CPU seconds used so far by the server's scan threads (`scan-N`) and by its other
/// threads, from /proc.
fn server_cpu(pid: u32) -> (f64, f64) {
    let (mut scan, mut other) = (0.0, 0.0);
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return (0.0, 0.0);
    };
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ...: utime and stime are the 12th and 13th fields after comm.
        let Some((comm, fields)) = stat_fields(&stat) else {
            continue;
        };
        let ticks: f64 = fields
            .get(11..13)
            .map(|f| f.iter().filter_map(|v| v.parse::<f64>().ok()).sum())
            .unwrap_or(0.0);
        if comm.starts_with("scan-") {
            scan += ticks;
        } else {
            other += ticks;
        }
    }
    (scan / USER_HZ, other / USER_HZ)
}

/// Minor page faults of the process `pid` so far (the 8th field after comm).
fn minor_faults(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat_fields(&stat)
        .and_then(|(_, fields)| fields.get(7).and_then(|v| v.parse().ok()))
        .unwrap_or(0.0)
}

/// CPU seconds of this process's /proc/self/stat fields `range` (counted after comm).
fn own_cpu(range: std::ops::Range<usize>) -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    stat_fields(&stat)
        .and_then(|(_, fields)| {
            fields
                .get(range)
                .map(|f| f.iter().filter_map(|v| v.parse::<f64>().ok()).sum::<f64>())
        })
        .unwrap_or(0.0)
        / USER_HZ
}

/// CPU seconds used so far by this process's waited-for children (each wrk run): cutime
/// and cstime.
fn children_cpu() -> f64 {
    own_cpu(13..15)
}

/// CPU seconds used so far by this process: utime and stime.
fn self_cpu() -> f64 {
    own_cpu(11..13)
}

fn run_wrk(script: &Path, base: &str, connections: usize, seconds: u64) -> WrkSummary {
    let out = Command::new(wrk())
        .args(["-t1", &format!("-c{connections}"), &format!("-d{seconds}s")])
        .args(["--timeout", "60s", "-s"])
        .arg(script)
        .arg(base)
        .stderr(Stdio::inherit())
        .output()
        .expect("run wrk");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "wrk failed:\n{text}");
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("WRK "))
        .unwrap_or_else(|| panic!("no summary from wrk:\n{text}"));
    serde_json::from_str(line).expect("wrk's summary")
}

/// The server's passes by batch size: (passes, seconds) for each size, from `/metrics`.
async fn passes_by_size(base: &str) -> Vec<(usize, u64, f64)> {
    let text = metrics_text(base).await;
    let value = |metric: &str, size: usize| {
        let prefix = format!("{metric}{{queries=\"{size}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    (1..=64)
        .filter_map(|size| {
            let passes = value("blindscore_passes_total", size)? as u64;
            let seconds = value("blindscore_pass_seconds_total", size)?;
            Some((size, passes, seconds))
        })
        .collect()
}

/// What changed between two readings: passes of `BATCH`, their mean time, and the mean
/// queries per pass.
fn passes_between(
    before: &[(usize, u64, f64)],
    after: &[(usize, u64, f64)],
) -> (u64, Option<f64>, Option<f64>) {
    let delta = |size: usize| {
        let find = |r: &[(usize, u64, f64)]| {
            r.iter()
                .find(|(s, _, _)| *s == size)
                .map(|&(_, p, t)| (p, t))
                .unwrap_or((0, 0.0))
        };
        let (p0, t0) = find(before);
        let (p1, t1) = find(after);
        (p1 - p0, t1 - t0)
    };
    let (full, full_seconds) = delta(BATCH);
    let (mut passes, mut queries) = (0u64, 0u64);
    for &(size, _, _) in after {
        let (p, _) = delta(size);
        passes += p;
        queries += p * size as u64;
    }
    (
        full,
        (full > 0).then(|| full_seconds / full as f64),
        (passes > 0).then(|| queries as f64 / passes as f64),
    )
}

/// The scoring benchmark's pass of `BATCH` queries over a catalog built in process, on
/// every thread: `REFERENCE_PASSES` timed passes (check, then score), and the CPU seconds
/// they took in all.
fn reference_passes(
    served: &blindscore_server::ServedCatalog,
    bodies: &[axum::body::Bytes],
) -> (Vec<f64>, f64) {
    let cpu = self_cpu();
    let passes = (0..REFERENCE_PASSES)
        .map(|_| {
            let started = Instant::now();
            let responses = support::checked_pass(served, bodies);
            let took = started.elapsed().as_secs_f64();
            drop(responses);
            took
        })
        .collect();
    (passes, self_cpu() - cpu)
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

/// Every score of each recorded query, sent once with the real client, against the
/// plaintext: the number of wrong scores.
async fn check_recorded(
    client: &Ranker,
    prepared: &std::sync::Arc<blindscore_client::core::PreparedCatalog>,
    catalog: &QuantizedCatalog,
    dir: &Path,
) -> (Vec<PathBuf>, usize) {
    let mut files = Vec::new();
    let mut wrong = 0;
    for i in 0..RECORDED {
        let q = support::random_query(D, 500 + i as u64);
        let (bytes, wrong_here) = support::send_checked(client, prepared, catalog, &q).await;
        let path = dir.join(format!("query-{i}.bin"));
        std::fs::write(&path, &bytes).expect("record a query");
        files.push(path);
        wrong += wrong_here;
    }
    (files, wrong)
}

fn main() {
    let items_list: Vec<usize> = env_or("BLINDSCORE_THROUGHPUT_ITEMS", "100000,1000000")
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let seconds: u64 = env_or("BLINDSCORE_THROUGHPUT_SECONDS", "15")
        .parse()
        .expect("BLINDSCORE_THROUGHPUT_SECONDS: whole seconds");
    let wrk_version = Command::new(wrk())
        .arg("-v")
        .output()
        .map(|o| {
            let text = String::from_utf8_lossy(&o.stdout).into_owned()
                + &String::from_utf8_lossy(&o.stderr);
            let line = text.lines().next().unwrap_or_default();
            line.split(" Copyright")
                .next()
                .unwrap_or(line)
                .trim()
                .to_string()
        })
        .unwrap_or_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = std::env::temp_dir().join(format!("blindscore-throughput-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch directory");
    let mut cases = Vec::new();
    for &items in &items_list {
        let (npy, ids) = write_catalog_rows(&dir, &support::unit_rows(items, D, 11), D);
        let mut layouts_done: Vec<String> = Vec::new();
        for group_size in [None, Some(1u32)] {
            let out = dir.join(format!(
                "{items}-{}",
                group_size.map_or("default".into(), |b| format!("b{b}"))
            ));
            let mut build = Command::new(server_binary());
            build
                .args(["build", "--catalog"])
                .arg(format!("bench={}", npy.display()))
                .arg("--ids")
                .arg(&ids)
                .arg("--out")
                .arg(&out)
                .stdout(Stdio::null());
            if let Some(b) = group_size {
                build.args(["--group-size", &b.to_string()]);
            }
            assert!(
                build.status().expect("run the server binary").success(),
                "build failed"
            );
            let (catalog, layout) = {
                let artefact = Artefact::open(&out).expect("artefact");
                (artefact_catalog(&out), artefact.shape().layout)
            };
            let layout_name = layout.to_string();
            if layouts_done.contains(&layout_name) {
                // The objective picked the column layout: measured once.
                std::fs::remove_dir_all(&out).ok();
                continue;
            }
            layouts_done.push(layout_name.clone());
            eprintln!("== {items} x {D}, layout {layout_name}: starting the server ...");
            let port = free_port();
            let base = format!("http://127.0.0.1:{port}");
            let args: Vec<String> = [
                "serve",
                "--artefact",
                &out.display().to_string(),
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--rate-limit",
                "0",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            let mut children = Children::default();
            let server = children.push(spawn_server(&args, Some(&dir.join("server.log"))));
            rt.block_on(wait_ready(&base, &mut children.0[server]));
            let client = Ranker::new(&base);
            let prepared = rt.block_on(client.prepare("bench")).expect("prepare");
            let (bodies, wrong) = rt.block_on(check_recorded(&client, &prepared, &catalog, &dir));
            assert_eq!(wrong, 0, "wrong scores from the server");
            let path = format!(
                "/v1/catalogs/bench/versions/{}/score",
                prepared.version().to_hex()
            );
            let script = dir.join("post.lua");
            std::fs::write(&script, wrk_script(&bodies, &path)).expect("wrk script");
            let cost = prepared.cost();

            // The same pass in process, on the same machine in the same run.
            let (served, _) = support::serve_with(&catalog, LayoutChoice::Fixed(layout));
            let local = support::prepare(&served);
            let local_bodies: Vec<axum::body::Bytes> = (0..BATCH)
                .map(|i| {
                    let q = support::random_query(D, 700 + i as u64);
                    local.seal_quantized(&q).expect("seal").bytes.into()
                })
                .collect();
            let (mut reference, mut reference_cpu) = reference_passes(&served, &local_bodies);

            let mut runs = Vec::new();
            for connections in CONNECTIONS {
                eprintln!("== {items} x {D}, {layout_name}: wrk, {connections} connection(s), {seconds} s ...");
                let before = rt.block_on(passes_by_size(&base));
                let pid = children.0[server].id();
                let (scan0, other0) = server_cpu(pid);
                let wrk0 = children_cpu();
                let faults0 = minor_faults(pid);
                let summary = run_wrk(&script, &base, connections, seconds);
                let (scan1, other1) = server_cpu(pid);
                let wrk1 = children_cpu();
                let faults1 = minor_faults(pid);
                let after = rt.block_on(passes_by_size(&base));
                let per_query = |seconds: f64| seconds / summary.requests.max(1) as f64;
                let (full_passes, pass_seconds, mean_batch) = passes_between(&before, &after);
                assert_eq!(summary.non_2xx, 0, "answers other than 200 under load");
                assert_eq!(summary.socket_errors, 0, "socket errors under load");
                let run = ThroughputRun {
                    connections,
                    seconds: summary.duration_us as f64 * 1e-6,
                    requests: summary.requests,
                    queries_per_second: summary.requests as f64
                        / (summary.duration_us as f64 * 1e-6),
                    p50_seconds: summary.p50_us as f64 * 1e-6,
                    p99_seconds: summary.p99_us as f64 * 1e-6,
                    mean_queries_per_pass: mean_batch,
                    full_passes,
                    service_pass_seconds: pass_seconds,
                    cpu_per_query: CpuPerQuery {
                        scan_seconds: per_query(scan1 - scan0),
                        server_other_seconds: per_query(other1 - other0),
                        load_generator_seconds: per_query(wrk1 - wrk0),
                        server_minor_faults: per_query(faults1 - faults0),
                    },
                };
                eprintln!("{}", serde_json::to_string(&run).expect("json"));
                runs.push(run);
            }
            let (after, cpu) = reference_passes(&served, &local_bodies);
            reference.extend(after);
            reference_cpu += cpu;
            drop(served);
            // The recorded queries once more, after the load: still exact.
            let (_, wrong_after) = rt.block_on(check_recorded(&client, &prepared, &catalog, &dir));
            assert_eq!(wrong_after, 0, "wrong scores after the load");
            drop(children);
            std::fs::remove_dir_all(&out).ok();
            cases.push(ThroughputCase {
                items,
                dimension: D,
                layout: layout_name,
                objective_pick: group_size.is_none(),
                also_column: layout == Layout::Column,
                bytes_up: cost.up,
                bytes_down: cost.down,
                checked_queries: 2 * RECORDED,
                wrong_scores: wrong + wrong_after,
                bench_pass_seconds: median(reference),
                bench_cpu_per_query_seconds: reference_cpu / (2 * REFERENCE_PASSES * BATCH) as f64,
                runs,
            });
        }
        std::fs::remove_file(&npy).ok();
    }
    let record = ThroughputRecord {
        machine: support::machine(),
        lscpu: lscpu(),
        wrk: wrk_version,
        seconds_per_run: seconds,
        batch: BATCH,
        cases,
    };
    eprintln!("{}", serde_json::to_string_pretty(&record).expect("json"));
    support::record("throughput", &record);
    let _ = std::fs::remove_dir_all(&dir);
}
