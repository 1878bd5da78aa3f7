//! Blue/green catalog versions behind the router binary: a new artefact served by its own
//! shard processes, given to the router in its routes file while queries run. The router
//! keeps the current version until every shard of the new one answers ready for it, then
//! switches once; the old version stays answerable for the grace period and gets
//! `version_gone` after it; a version one of whose shards serves another version, or
//! answers as another shard, is never made current, nor is one from a routes file that
//! does not parse; once its shards are right, it is. Every query is checked
//! exact against the version it was encrypted for, over loopback with the real client.
//! Every loop is bounded in count and time.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use blindscore_client::{ClientError, Ranker};
use blindscore_common::QuantizedCatalog;
use common::processes::*;
use common::*;

const D: usize = 32;
/// Two column blocks of 2048: one per shard.
const ITEMS: usize = 4000;
const GRACE_SECONDS: u64 = 3;

/// A version's artefact and its shards' ports.
struct Colour {
    artefact: std::path::PathBuf,
    version: String,
    ports: [u16; 2],
}

impl Colour {
    fn build(dir: &Path, name: &str, seed: u64) -> Colour {
        let files = write_catalog_rows(
            &dir.join(format!("{name}-files")),
            &unit_rows(ITEMS, D, seed),
            D,
        );
        let artefact = dir.join(name);
        build_artefact("shop", (&files.0, &files.1), 2, &artefact);
        let version = blindscore_server::artefact::Artefact::open(&artefact)
            .unwrap()
            .manifest()
            .version
            .clone();
        Colour {
            artefact,
            version,
            ports: [free_port(), free_port()],
        }
    }

    fn route(&self) -> serde_json::Value {
        serde_json::json!({
            "artefact": self.artefact,
            "shard_urls": self.ports.map(|p| format!("http://127.0.0.1:{p}")),
        })
    }
}

/// Write the routes file as an operator's tool would: a new file renamed into place.
fn write_routes(path: &Path, text: &str) {
    let partial = path.with_extension("partial");
    std::fs::write(&partial, text).unwrap();
    std::fs::rename(&partial, path).unwrap();
}

fn routes_to(path: &Path, route: serde_json::Value) {
    write_routes(
        path,
        &serde_json::json!({ "catalogs": [route] }).to_string(),
    );
}

/// The router's count of version switches, from its metrics.
async fn switches(base: &str) -> u64 {
    metrics_text(base)
        .await
        .lines()
        .find_map(|l| l.strip_prefix("blindscore_catalog_swaps_total "))
        .expect("the swaps counter")
        .trim()
        .parse()
        .unwrap()
}

/// What the stream of queries saw.
#[derive(Default)]
struct Seen {
    /// The stream and the version each answered query was encrypted for, in order.
    versions: Vec<(u64, String)>,
    /// Queries retried after `version_gone` (the SDK's one retry).
    retried: usize,
}

/// One query as the SDK makes it: prepared on the current version, sent, retried once with
/// a fresh encryption on `version_gone`; every decrypted score checked against the
/// plaintext of the version it was encrypted for. Returns that version.
async fn exact_query(
    stream: u64,
    client: &Ranker,
    catalogs: &HashMap<String, QuantizedCatalog>,
    seed: u64,
    seen: &Mutex<Seen>,
) -> String {
    let q = random_query(D, 8, seed);
    for attempt in 0..2 {
        let prepared = client.prepare("shop").await.unwrap();
        let version = prepared.version().to_hex();
        let sealed = prepared.seal_quantized(&q).unwrap();
        match client.send(&prepared, sealed.bytes).await {
            Ok(response) => {
                let scores = sealed.pending.decrypt(&prepared, &response).unwrap();
                let catalog = &catalogs[&version];
                assert_eq!(scores.len(), ITEMS);
                assert_eq!(wrong_scores(catalog, &q, &scores), 0, "query {seed}");
                seen.lock()
                    .unwrap()
                    .versions
                    .push((stream, version.clone()));
                return version;
            }
            Err(ClientError::VersionGone) if attempt == 0 => seen.lock().unwrap().retried += 1,
            Err(e) => panic!("query {seed} on {version}: {e}"),
        }
    }
    panic!("query {seed}: version_gone twice")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_switch_under_queries_is_one_step_and_waits_for_every_shard() {
    let dir = std::env::temp_dir().join(format!("blindscore-bg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let blue = Colour::build(&dir, "blue", 5);
    let green = Colour::build(&dir, "green", 6);
    let red = Colour::build(&dir, "red", 7);
    assert_ne!(blue.version, green.version);
    assert_ne!(green.version, red.version);
    let catalogs: Arc<HashMap<String, QuantizedCatalog>> = Arc::new(
        [&blue, &green, &red]
            .iter()
            .map(|c| (c.version.clone(), artefact_catalog(&c.artefact)))
            .collect(),
    );

    let mut children = Children::default();
    for (s, &port) in blue.ports.iter().enumerate() {
        let i = children.push(spawn_shard(&blue.artefact, s, port, &logs));
        wait_ready(&format!("http://127.0.0.1:{port}"), &mut children.0[i]).await;
    }
    let routes = dir.join("routes.json");
    routes_to(&routes, blue.route());
    let base = spawn_router(
        &mut children,
        &[
            "--routes".into(),
            routes.display().to_string(),
            "--routes-poll-ms".into(),
            "100".into(),
            "--grace-seconds".into(),
            GRACE_SECONDS.to_string(),
        ],
        free_port(),
        &logs,
    )
    .await;
    assert_eq!(current_version(&base, "shop").await, blue.version);
    assert_eq!(switches(&base).await, 0);

    // Queries stream, two at a time, from here to the end.
    let client = Arc::new(Ranker::new(&base));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let streams: Vec<_> = (0..2u64)
        .map(|stream| {
            let (client, catalogs, seen, stop) =
                (client.clone(), catalogs.clone(), seen.clone(), stop.clone());
            tokio::spawn(async move {
                let started = Instant::now();
                let mut n = 0u64;
                while !stop.load(Ordering::SeqCst)
                    && n < 2000
                    && started.elapsed() < Duration::from_secs(120)
                {
                    exact_query(stream, &client, &catalogs, 1000 * stream + n, &seen).await;
                    n += 1;
                }
            })
        })
        .collect();
    let answered = || seen.lock().unwrap().versions.len();
    let wait_answers = |at_least: usize| async move {
        let started = Instant::now();
        while answered() < at_least {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "queries stalled"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    wait_answers(6).await;

    // Green's route, before any of its shards runs: nothing changes.
    let old = client.prepare("shop").await.unwrap();
    routes_to(&routes, green.route());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(current_version(&base, "shop").await, blue.version);
    // One of green's shards up: still not.
    let g0 = children.push(spawn_shard(&green.artefact, 0, green.ports[0], &logs));
    wait_ready(
        &format!("http://127.0.0.1:{}", green.ports[0]),
        &mut children.0[g0],
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(current_version(&base, "shop").await, blue.version);
    assert_eq!(switches(&base).await, 0);

    // Both up: the router switches, once.
    let g1 = children.push(spawn_shard(&green.artefact, 1, green.ports[1], &logs));
    let started = Instant::now();
    while current_version(&base, "shop").await != green.version {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the router never switched to green"
        );
        assert!(
            children.0[g1].try_wait().unwrap().is_none(),
            "green's shard 1 exited"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let switched = answered();
    assert_eq!(switches(&base).await, 1);
    // Blue is still answerable within the grace period ...
    let info = catalog_info(&base, "shop").await;
    assert_eq!(info.previous.map(|p| p.version), Some(blue.version.clone()));
    let q = random_query(D, 8, 77);
    let sealed = old.seal_quantized(&q).unwrap();
    let response = client.send(&old, sealed.bytes).await.unwrap();
    let scores = sealed.pending.decrypt(&old, &response).unwrap();
    assert_eq!(wrong_scores(&catalogs[&blue.version], &q, &scores), 0);
    wait_answers(switched + 6).await;
    // ... and gone after it.
    tokio::time::sleep(Duration::from_secs(GRACE_SECONDS + 1)).await;
    let sealed = old.seal_quantized(&q).unwrap();
    let gone = client.send(&old, sealed.bytes).await.unwrap_err();
    assert!(matches!(gone, ClientError::VersionGone), "{gone}");

    // A routes file that does not parse, then red's routes with one shard wrong while
    // red's shard 1 runs: shard 0 serving green's version, then red's shard 1 given as
    // shard 0 too (the wrong index). Neither is made current.
    write_routes(&routes, "{\"catalogs\": [");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r1 = children.push(spawn_shard(&red.artefact, 1, red.ports[1], &logs));
    wait_ready(
        &format!("http://127.0.0.1:{}", red.ports[1]),
        &mut children.0[r1],
    )
    .await;
    let red1 = format!("http://127.0.0.1:{}", red.ports[1]);
    for shard0 in [format!("http://127.0.0.1:{}", green.ports[0]), red1.clone()] {
        routes_to(
            &routes,
            serde_json::json!({ "artefact": red.artefact, "shard_urls": [shard0, red1] }),
        );
        let before = answered();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(current_version(&base, "shop").await, green.version);
        assert_eq!(switches(&base).await, 1);
        wait_answers(before + 4).await;
    }
    // Red's right route, and its shard 0 up: the router switches again, under the queries.
    let r0 = children.push(spawn_shard(&red.artefact, 0, red.ports[0], &logs));
    wait_ready(
        &format!("http://127.0.0.1:{}", red.ports[0]),
        &mut children.0[r0],
    )
    .await;
    routes_to(&routes, red.route());
    let started = Instant::now();
    while current_version(&base, "shop").await != red.version {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the router never switched to red"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(switches(&base).await, 2);
    let switched = answered();
    wait_answers(switched + 12).await;

    stop.store(true, Ordering::SeqCst);
    for s in streams {
        s.await.unwrap();
    }
    let seen = seen.lock().unwrap();
    // In each stream, blue's answers, then green's, then red's: each switch once, never
    // back.
    let order = [&blue.version, &green.version, &red.version];
    for stream in 0..2 {
        let ranks: Vec<usize> = seen
            .versions
            .iter()
            .filter(|(s, _)| *s == stream)
            .map(|(_, v)| order.iter().position(|o| *o == v).unwrap())
            .collect();
        assert!(
            ranks.windows(2).all(|w| w[0] <= w[1]),
            "stream {stream}: {ranks:?}"
        );
        for rank in 0..3 {
            assert!(
                ranks.contains(&rank),
                "stream {stream} never saw version {rank}"
            );
        }
    }
    let count = |version: &String| seen.versions.iter().filter(|(_, v)| v == version).count();
    println!(
        "{} queries exact: {} on blue, {} on green, {} on red; {} retried after version_gone; 2 switches",
        seen.versions.len(),
        count(&blue.version),
        count(&green.version),
        count(&red.version),
        seen.retried
    );
    drop(children);
    let _ = std::fs::remove_dir_all(&dir);
}
