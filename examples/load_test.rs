//! A bounded, self-stopping load test of the real `blindscore-server` binary on loopback.
//!
//! `cargo build --release -p blindscore-server && cargo run --release --example load_test`
//!
//! Writes a catalog of integer-valued vectors (100k x 128 by default) as .npy, starts the
//! server binary on it (8-bit values, so every score is an exact integer dot product),
//! then runs concurrent clients for a fixed time. Each client encrypts a fresh random query
//! under a fresh key, sends it, decrypts the response and checks every score against the
//! plaintext dot products; a busy server (503) is retried after its Retry-After. Reports
//! throughput, p50/p99 latency, the 503s, and the server's memory. Exits non-zero if any
//! score is wrong, a request fails otherwise, nothing succeeded, or the heap the server
//! holds when idle (its heap in use less its scan pool, from its metrics) grew more than 5%
//! from the end of the warm-up to the end of the load.

#[path = "../benches/support/plaintext.rs"]
mod plaintext;
use plaintext::PlaintextCatalog;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use blindscore_client::{ClientError, Ranker};
use clap::Parser;

#[derive(Parser)]
#[command(about = "Load-test the blindscore server binary on loopback")]
struct Args {
    /// Seconds of sustained load (after the warm-up).
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Seconds of warm-up before the memory baseline is taken.
    #[arg(long, default_value_t = 30)]
    warm_up: u64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Catalog items.
    #[arg(long, default_value_t = 100_000)]
    items: usize,
    /// Catalog dimension.
    #[arg(long, default_value_t = 128)]
    dimension: usize,
    /// The server's queue limit per catalog version (fewer than --clients shows 503s).
    #[arg(long, default_value_t = 8)]
    queue_depth: usize,
    /// Allowed growth over the run of the heap the server holds when idle (its heap in
    /// use less its scan pool), percent.
    #[arg(long, default_value_t = 5.0)]
    memory_tolerance: f64,
    /// The layout's group size b (1 = column); by default the server's layout objective picks.
    #[arg(long)]
    group_size: Option<u32>,
    /// Instead of the load: measure this (client) process's peak memory while it fetches,
    /// checks and prepares the catalog under the SDK's default limits, and exit.
    #[arg(long)]
    client_memory: bool,
    /// Pad every item id to this many bytes (ids are `item-N` otherwise).
    #[arg(long, default_value_t = 0)]
    id_bytes: usize,
}

struct Stats {
    latencies: Mutex<Vec<f64>>,
    busy: AtomicU64,
    wrong: AtomicU64,
    failed: AtomicU64,
}

fn server_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .context("locating the target directory")?;
    let bin = dir.join("blindscore-server");
    if !bin.exists() {
        bail!(
            "{} is missing: build it first with cargo build --release -p blindscore-server",
            bin.display()
        );
    }
    Ok(bin)
}

/// Integer rows in [-127, 127], each with a value of magnitude 127, so the server's
/// per-item scale is 1 and its 8-bit values are these integers.
fn write_catalog(
    dir: &Path,
    items: usize,
    d: usize,
    id_bytes: usize,
) -> anyhow::Result<(PathBuf, PathBuf, Vec<i8>, u64)> {
    use npyz::WriterBuilder;
    std::fs::create_dir_all(dir)?;
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut values = Vec::with_capacity(items * d);
    for i in 0..items {
        for j in 0..d {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let v = if j == i % d {
                if (state >> 40) & 1 == 0 {
                    127
                } else {
                    -127
                }
            } else {
                ((state >> 33) % 255) as i32 - 127
            };
            values.push(v as i8);
        }
    }
    let npy = dir.join("items.npy");
    let ids = dir.join("ids.txt");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&npy)?);
    let mut w = npyz::WriteOptions::<f32>::new()
        .default_dtype()
        .shape(&[items as u64, d as u64])
        .writer(&mut out)
        .begin_nd()?;
    w.extend(values.iter().map(|&v| v as f32))?;
    w.finish()?;
    let id = |i: usize| format!("item-{i:0>width$}", width = id_bytes.saturating_sub(5));
    std::fs::write(&ids, (0..items).map(|i| id(i) + "\n").collect::<String>())?;
    // The ids artefact as the server will serve it: a JSON array of the ids.
    let ids_json = (0..items).map(|i| id(i).len() as u64 + 3).sum::<u64>() + 1;
    Ok((npy, ids, values, ids_json))
}

/// The server's heap when idle, from its metrics.
struct Heap {
    in_use: u64,
    pool: u64,
}

impl Heap {
    /// What the server holds beyond the buffers its scan keeps for reuse (at most a fixed
    /// number, whose sizes follow the batches of the moment).
    fn held(&self) -> u64 {
        self.in_use.saturating_sub(self.pool)
    }
}

/// The server's heap in use and scan pool once it is idle: read from its metrics after a
/// pause, until two reads in a row agree within 1% (at most 10 reads; else the lowest).
async fn idle_heap(base: &str) -> anyhow::Result<Heap> {
    let http = reqwest::Client::new();
    let read = || async {
        let text = http
            .get(format!("{base}/metrics"))
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        let gauge = |name: &str| -> anyhow::Result<u64> {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
                .and_then(|v| v.trim().parse().ok())
                .with_context(|| format!("{name} missing from the server's metrics"))
        };
        anyhow::Ok(Heap {
            in_use: gauge("blindscore_process_heap_in_use_bytes")?,
            pool: gauge("blindscore_scan_pool_bytes")?,
        })
    };
    let mut last = None::<Heap>;
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = read().await?;
        if let Some(prev) = &last {
            if now.held().abs_diff(prev.held()) * 100 <= prev.held() {
                return Ok(now);
            }
        }
        last = Some(match last {
            Some(prev) if prev.held() < now.held() => prev,
            _ => now,
        });
    }
    Ok(last.expect("read at least once"))
}

fn resident_bytes(pid: u32) -> anyhow::Result<u64> {
    status_bytes(pid, "VmRSS:")
}

/// A size from /proc/PID/status, in bytes.
fn status_bytes(pid: u32, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .with_context(|| format!("{field} missing"))?;
    Ok(kb * 1024)
}

/// This process's peak memory above its resident level while a fresh ranker fetches,
/// checks and prepares the catalog: (peak increase, the estimate the limits check).
async fn client_preparation_peak(base: &str, ids_bytes: u64) -> anyhow::Result<(u64, u64)> {
    let me = std::process::id();
    // Writing 5 resets the peak resident size (VmHWM) to the current one.
    std::fs::write("/proc/self/clear_refs", "5")?;
    let before = resident_bytes(me)?;
    let prepared = Ranker::new(base).prepare("load").await?;
    let peak = status_bytes(me, "VmHWM:")?;
    let estimate = blindscore_client::core::preparation_bytes(prepared.shape(), ids_bytes);
    Ok((peak.saturating_sub(before), estimate))
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

async fn one_query(
    client: &Ranker,
    prepared: &blindscore_client::core::PreparedCatalog,
    plain: &PlaintextCatalog,
    seed: u64,
    stats: &Stats,
) {
    let d = prepared.shape().geometry.dimension;
    let mut state = seed;
    let query: Vec<i32> = (0..d)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 33) % 255) as i32 - 127
        })
        .collect();
    loop {
        let encrypted = match prepared.seal_quantized(&query) {
            Ok(e) => e,
            Err(_) => {
                stats.failed.fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        let started = Instant::now();
        match client.send(prepared, encrypted.bytes).await {
            Ok(response) => {
                let elapsed = started.elapsed().as_secs_f64();
                let scores = encrypted.pending.decrypt(prepared, &response);
                let q8: Vec<i8> = query.iter().map(|&v| v as i8).collect();
                let mut expected = vec![0i32; plain.items()];
                plain.scan(&q8, &mut expected);
                let exact = scores.is_ok_and(|s| {
                    s.len() == expected.len()
                        && s.iter().zip(&expected).all(|(a, b)| *a == *b as i64)
                });
                if !exact {
                    stats.wrong.fetch_add(1, Ordering::Relaxed);
                }
                stats
                    .latencies
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(elapsed);
                return;
            }
            Err(ClientError::Busy { retry_after }) => {
                stats.busy.fetch_add(1, Ordering::Relaxed);
                // Back off for a fraction of Retry-After: the queue drains within a pass.
                let wait = Duration::from_millis(20).min(Duration::from_secs(retry_after.into()));
                tokio::time::sleep(wait).await;
            }
            Err(e) => {
                eprintln!("request failed: {e}");
                stats.failed.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = std::env::temp_dir().join(format!("blindscore-load-{}", std::process::id()));
    eprintln!(
        "writing a {} x {} catalog to {} ...",
        args.items,
        args.dimension,
        dir.display()
    );
    let (npy, ids, values, ids_json_bytes) =
        write_catalog(&dir, args.items, args.dimension, args.id_bytes)?;
    let plain = Arc::new(PlaintextCatalog::new(&values, args.dimension));
    drop(values);
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let mut server = Server(
        Command::new(server_binary()?)
            .args([
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--catalog",
                &format!("load={}", npy.display()),
                "--ids",
                ids.to_str().context("temp path")?,
                "--normalisation",
                "none",
                "--metric",
                "dot",
                "--bits",
                "8",
                "--rate-limit",
                "0",
                "--queue-depth",
                &args.queue_depth.to_string(),
            ])
            .args(
                args.group_size
                    .map(|b| vec!["--group-size".to_string(), b.to_string()])
                    .unwrap_or_default(),
            )
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting the server")?,
    );
    let pid = server.0.id();
    let client = Arc::new(Ranker::new(&base));
    let started = Instant::now();
    let prepared = loop {
        match client.prepare("load").await {
            Ok(prepared) => break prepared,
            Err(_) if started.elapsed() < Duration::from_secs(120) => {
                if let Some(status) = server.0.try_wait()? {
                    bail!("the server exited: {status}");
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => bail!("the server did not come up: {e}"),
        }
    };
    if args.client_memory {
        let (peak, estimate) = client_preparation_peak(&base, ids_json_bytes).await?;
        let shape = prepared.shape();
        println!(
            "client: preparing {} x {} ({}, {:.1} MiB of artefacts) took {:.0} MiB at its peak; the limits' estimate is {:.0} MiB",
            args.items,
            args.dimension,
            shape.layout,
            prepared.cost().once_per_version as f64 / (1 << 20) as f64,
            peak as f64 / (1 << 20) as f64,
            estimate as f64 / (1 << 20) as f64,
        );
        drop(server);
        let _ = std::fs::remove_dir_all(&dir);
        return Ok(());
    }
    eprintln!(
        "server ready in {:.1} s ({:.0} MiB resident); {} clients for {} s after {} s of warm-up, queue limit {}",
        started.elapsed().as_secs_f64(),
        resident_bytes(pid)? as f64 / (1 << 20) as f64,
        args.clients,
        args.seconds,
        args.warm_up,
        args.queue_depth
    );

    let run = |seconds: u64, stats: Arc<Stats>| {
        let stop = Arc::new(AtomicBool::new(false));
        let seeds = Arc::new(AtomicU64::new(seconds * 1_000_003));
        let tasks: Vec<_> = (0..args.clients)
            .map(|_| {
                let (client, prepared, plain) = (client.clone(), prepared.clone(), plain.clone());
                let (stop, stats, seeds) = (stop.clone(), stats.clone(), seeds.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let seed = seeds.fetch_add(1, Ordering::Relaxed);
                        one_query(&client, &prepared, &plain, seed, &stats).await;
                    }
                })
            })
            .collect();
        async move {
            tokio::time::sleep(Duration::from_secs(seconds)).await;
            stop.store(true, Ordering::Relaxed);
            for t in tasks {
                let _ = t.await;
            }
        }
    };
    let new_stats = || {
        Arc::new(Stats {
            latencies: Mutex::new(Vec::new()),
            busy: AtomicU64::new(0),
            wrong: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        })
    };
    let warm = new_stats();
    run(args.warm_up, warm.clone()).await;
    // What the server holds when idle after the warm-up, and after the load: a leak is
    // memory still allocated once every query is answered. The resident size is no measure
    // of it: it also counts memory freed and kept by the allocator, which moves by tens of
    // MiB with the mix of queries in flight when the heap last peaked.
    let held_start = idle_heap(&base).await?;
    let rss_start = resident_bytes(pid)?;

    let stats = new_stats();
    let t = Instant::now();
    run(args.seconds, stats.clone()).await;
    let elapsed = t.elapsed().as_secs_f64();
    let rss_peak_end = status_bytes(pid, "VmHWM:")?;
    let held_end = idle_heap(&base).await?;
    let rss_end = resident_bytes(pid)?;

    let mut lat = stats
        .latencies
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    lat.sort_by(f64::total_cmp);
    let ok = lat.len();
    let wrong = stats.wrong.load(Ordering::Relaxed) + warm.wrong.load(Ordering::Relaxed);
    let failed = stats.failed.load(Ordering::Relaxed) + warm.failed.load(Ordering::Relaxed);
    let busy = stats.busy.load(Ordering::Relaxed);
    let growth = (held_end.held() as f64 / held_start.held() as f64 - 1.0) * 100.0;
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    println!(
        "== load test: {} x {}, {} clients, {:.0} s",
        args.items, args.dimension, args.clients, elapsed
    );
    println!(
        "answered:   {ok} queries, {:.1} per second; every score checked: {wrong} wrong",
        ok as f64 / elapsed
    );
    println!(
        "latency:    p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (send to response, on the client)",
        percentile(&lat, 0.50) * 1e3,
        percentile(&lat, 0.99) * 1e3,
        lat.last().copied().unwrap_or(f64::NAN) * 1e3
    );
    println!("busy (503): {busy} answers, each retried; other failures: {failed}");
    println!(
        "memory:     server heap held when idle {:.1} MiB after the warm-up, {:.1} MiB after the load ({growth:+.1}%; scan pool {:.1} and {:.1} MiB besides)",
        mib(held_start.held()),
        mib(held_end.held()),
        mib(held_start.pool),
        mib(held_end.pool)
    );
    println!(
        "            resident {:.0} MiB after the warm-up, {:.0} MiB at the peak, {:.0} MiB after the load",
        mib(rss_start),
        mib(rss_peak_end),
        mib(rss_end)
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    if wrong > 0 {
        bail!("{wrong} responses had wrong scores");
    }
    if failed > 0 {
        bail!("{failed} requests failed");
    }
    if ok == 0 {
        bail!("no query was answered");
    }
    if growth > args.memory_tolerance {
        bail!(
            "the heap the server holds when idle grew {growth:.1}% (limit {}%)",
            args.memory_tolerance
        );
    }
    println!("ok");
    Ok(())
}
