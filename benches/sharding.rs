//! Shards and the router, as processes of the server binary on loopback: the router's
//! overhead and each shard's memory, with every checked score exact.
//!
//! A catalog of `BLINDSCORE_SHARD_ITEMS` (1,048,576) x 128 unit rows is built twice with
//! `blindscore-server build`: whole (one shard) and in `BLINDSCORE_SHARDS` (4) shards. The
//! whole artefact is served by one process, directly and through a router; the sharded one
//! by `BLINDSCORE_SHARD_REPLICAS` (1) replicas of each shard (behind HAProxy when more than
//! one) and a router. Measured, warm, with the same client: end to end through the router
//! against the same process directly (the router's overhead), and through the sharded
//! router; the plaintext int8 scan of a catalog of the same shape as the reference; each
//! process's resident memory after the same queries, each shard's against its share of the
//! whole process's. `cargo bench --bench sharding` (it needs the server binary:
//! `cargo build --release -p blindscore-server`); figures go to
//! `target/blindscore-bench/sharding.json`.

mod support;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use blindscore_client::core::PreparedCatalog;
use blindscore_client::Ranker;
use blindscore_common::QuantizedCatalog;
use blindscore_server::artefact::Artefact;
use support::processes::*;
use support::records::{ShardProcess, ShardingRecord};
use support::{unit_rows, Int8Catalog};

const D: usize = 128;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn build(
    dir: &std::path::Path,
    out: &str,
    npy: &std::path::Path,
    ids: &std::path::Path,
    shards: usize,
) {
    eprintln!("== building {out} ({shards} shards) ...");
    let status = Command::new(server_binary())
        .args(["build", "--catalog"])
        .arg(format!("bench={}", npy.display()))
        .arg("--ids")
        .arg(ids)
        .args(["--shards", &shards.to_string(), "--out"])
        .arg(dir.join(out))
        .stdout(Stdio::null())
        .status()
        .expect("run the server binary");
    assert!(status.success(), "build {out} failed");
}

fn serve_args(artefact: &std::path::Path, shard: Option<usize>, port: u16) -> Vec<String> {
    let mut args = vec![
        "serve".into(),
        "--artefact".into(),
        artefact.display().to_string(),
        "--listen".into(),
        format!("127.0.0.1:{port}"),
        "--rate-limit".into(),
        "0".into(),
    ];
    if let Some(s) = shard {
        args.extend(["--shard".into(), s.to_string()]);
    }
    args
}

fn route_args(artefact: &std::path::Path, urls: &[String], port: u16) -> Vec<String> {
    let mut args = vec![
        "route".into(),
        "--artefact".into(),
        artefact.display().to_string(),
        "--listen".into(),
        format!("127.0.0.1:{port}"),
        "--rate-limit".into(),
        "0".into(),
    ];
    for (i, url) in urls.iter().enumerate() {
        args.extend(["--shard-url".into(), format!("{i}={url}")]);
    }
    args
}

/// `queries` queries through `client`, every score checked against the plaintext: the
/// number of wrong scores.
async fn checked(
    client: &Ranker,
    prepared: &Arc<PreparedCatalog>,
    catalog: &QuantizedCatalog,
    queries: u64,
) -> usize {
    let mut wrong = 0;
    for seed in 0..queries {
        let q = support::random_query(D, 1000 + seed);
        wrong += support::send_checked(client, prepared, catalog, &q).await.1;
    }
    wrong
}

fn main() {
    let items = env_usize("BLINDSCORE_SHARD_ITEMS", 1 << 20);
    let shards = env_usize("BLINDSCORE_SHARDS", 4);
    let replicas = env_usize("BLINDSCORE_SHARD_REPLICAS", 1).max(1);
    let checked_queries = env_usize("BLINDSCORE_SHARD_CHECKED_QUERIES", 4) as u64;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = std::env::temp_dir().join(format!("blindscore-sharding-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch directory");
    let (npy, ids) = write_catalog_rows(&dir, &unit_rows(items, D, 5), D);
    build(&dir, "whole", &npy, &ids, 1);
    build(&dir, "sharded", &npy, &ids, shards);
    std::fs::remove_file(&npy).ok();
    let whole_dir = dir.join("whole");
    let sharded_dir = dir.join("sharded");
    let (catalog, layout, shard_items) = {
        let whole = Artefact::open(&whole_dir).expect("artefact");
        let sharded = Artefact::open(&sharded_dir).expect("artefact");
        let layout = whole.shape().layout.to_string();
        let shard_items: Vec<usize> = sharded
            .manifest()
            .shards
            .iter()
            .map(|s| s.items as usize)
            .collect();
        (whole.shard_items(0).expect("items"), layout, shard_items)
    };

    let mut children = Children::default();
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).expect("logs");
    let log = |name: &str| logs.join(format!("{name}.log"));
    let start = |children: &mut Children, args: Vec<String>, name: &str| {
        let port = args
            .iter()
            .find_map(|a| a.strip_prefix("127.0.0.1:"))
            .and_then(|p| p.parse::<u16>().ok())
            .expect("a port");
        let i = children.push(spawn_server(&args, Some(&log(name))));
        let base = format!("http://127.0.0.1:{port}");
        rt.block_on(wait_ready(&base, &mut children.0[i]));
        (i, base)
    };
    eprintln!("== starting the whole catalog's process and its router ...");
    let (whole, whole_base) = start(
        &mut children,
        serve_args(&whole_dir, None, free_port()),
        "whole",
    );
    let (_, router_whole) = start(
        &mut children,
        route_args(&whole_dir, std::slice::from_ref(&whole_base), free_port()),
        "router-whole",
    );
    eprintln!("== starting {shards} shards x {replicas} replicas and their router ...");
    let mut shard_processes = Vec::new();
    let mut shard_urls = Vec::new();
    let mut replica_ports = Vec::new();
    for s in 0..shards {
        let mut ports = Vec::new();
        for r in 0..replicas {
            let port = free_port();
            let (i, base) = start(
                &mut children,
                serve_args(&sharded_dir, Some(s), port),
                &format!("shard{s}-r{r}"),
            );
            shard_processes.push((s, i));
            ports.push(port);
            if replicas == 1 {
                shard_urls.push(base);
            }
        }
        replica_ports.push(ports);
    }
    if replicas > 1 {
        let frontends: Vec<u16> = (0..shards).map(|_| free_port()).collect();
        children.push(spawn_haproxy(
            &logs,
            &haproxy_config(&frontends, &replica_ports),
        ));
        shard_urls = frontends
            .iter()
            .map(|p| format!("http://127.0.0.1:{p}"))
            .collect();
        std::thread::sleep(Duration::from_secs(2));
    }
    let (_, router_sharded) = start(
        &mut children,
        route_args(&sharded_dir, &shard_urls, free_port()),
        "router-sharded",
    );

    // Warm clients, each with the catalog prepared; every score checked on every path.
    let preferences = unit_rows(1, D, 99);
    let paths = [
        ("direct_whole", whole_base.clone()),
        ("router_whole", router_whole.clone()),
        ("router_sharded", router_sharded.clone()),
    ];
    let mut clients = Vec::new();
    let mut wrong = 0;
    let mut bytes = Vec::new();
    for (name, base) in &paths {
        let client = Ranker::new(base);
        let prepared = rt.block_on(client.prepare("bench")).expect("prepare");
        eprintln!("== {name}: checking every score of {checked_queries} queries ...");
        wrong += rt.block_on(checked(&client, &prepared, &catalog, checked_queries));
        bytes.push(prepared.cost());
        clients.push((client, prepared));
    }
    assert_eq!(wrong, 0, "wrong scores");
    let cost = bytes[0];
    for other in &bytes[1..] {
        assert_eq!(other.up, cost.up, "the upload depends on the path");
        assert_eq!(other.down, cost.down);
    }

    // Memory, after the same queries on every process.
    let resident =
        |i: usize| resident_bytes(children.0[i].id()).unwrap_or(0) as f64 / (1 << 20) as f64;
    let whole_mib = resident(whole);
    let processes: Vec<ShardProcess> = shard_processes
        .iter()
        .map(|&(s, i)| {
            let mib = resident(i);
            let share = whole_mib * shard_items[s] as f64 / items as f64;
            ShardProcess {
                shard: s,
                items: shard_items[s],
                resident_mib: mib,
                ratio_to_share_of_whole: mib / share,
            }
        })
        .collect();

    let reference = Int8Catalog::new(items, D, 1);
    let q8 = support::random_query_i8(D, 2);
    let mut plain = vec![0i32; items];
    let group = "sharding";
    let mut c = support::criterion(8);
    let mut g = c.benchmark_group(group);
    support::flat(&mut g);
    g.bench_function("plaintext_t1", |b| {
        b.iter(|| reference.scan(std::hint::black_box(&q8), &mut plain))
    });
    for ((name, _), (client, _)) in paths.iter().zip(&clients) {
        g.bench_function(*name, |b| {
            b.iter(|| {
                rt.block_on(client.rank("bench", &preferences, 10))
                    .expect("rank")
            })
        });
    }
    g.finish();
    let m = |name: &str| support::median(group, name);
    let direct = m("direct_whole");
    let routed = m("router_whole");
    let record = ShardingRecord {
        machine: support::machine(),
        items,
        dimension: D,
        layout,
        shards,
        replicas,
        plaintext_t1_seconds: m("plaintext_t1"),
        direct_whole_seconds: direct,
        router_whole_seconds: routed,
        router_sharded_seconds: m("router_sharded"),
        router_overhead: direct.zip(routed).map(|(d, r)| r / d),
        whole_resident_mib: whole_mib,
        shard_processes: processes,
        bytes_up: cost.up,
        bytes_down: cost.down,
        checked_queries_per_path: checked_queries as usize,
        wrong_scores: wrong,
    };
    eprintln!("{}", serde_json::to_string_pretty(&record).expect("json"));
    support::record("sharding", &record);
    drop(children);
    let _ = std::fs::remove_dir_all(&dir);
}
