//! Replicas behind a real load balancer: the server binary builds a two-shard artefact,
//! two replicas of each shard serve it, HAProxy (Debian's package) balances each shard's
//! replicas with health checks on /readyz, and the router binary fans every query out to
//! the two HAProxy frontends. The real client, over loopback, shows that every score of
//! every query is exact through the router; that a replica killed with SIGKILL during a
//! stream of queries loses none of them; that with every replica of one shard stopped the
//! answer is 503 `shard_unavailable`, never a partial ranking; and that service returns
//! when one replica comes back. Every loop is bounded in count and time.
//!
//! HAProxy must be installed (`apt-get install haproxy`; `scripts/test` installs it).

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use blindscore_client::core::PreparedCatalog;
use blindscore_client::{ClientError, Ranker};
use blindscore_common::QuantizedCatalog;
use common::processes::*;
use common::*;

const D: usize = 32;
/// Two column blocks of 2048: one per shard.
const ITEMS: usize = 4000;

/// One query through the router: its decrypted scores, checked exact, or the error.
async fn query(
    client: &Ranker,
    prepared: &Arc<PreparedCatalog>,
    catalog: &QuantizedCatalog,
    seed: u64,
) -> Result<(), ClientError> {
    let q = random_query(D, 8, seed);
    let sealed = prepared.seal_quantized(&q).unwrap();
    let response = client.send(prepared, sealed.bytes).await?;
    let scores = sealed.pending.decrypt(prepared, &response).unwrap();
    assert_eq!(scores.len(), ITEMS, "a partial response");
    assert_eq!(wrong_scores(catalog, &q, &scores), 0, "query {seed}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_behind_haproxy_lose_no_query_and_never_answer_partly() {
    // Before anything starts: without HAProxy the test cannot run.
    haproxy();
    let dir = std::env::temp_dir().join(format!("blindscore-lb-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let (npy, ids) = write_catalog(&dir, ITEMS, D);
    let artefact = dir.join("artefact");
    build_artefact("shop", (&npy, &ids), 2, &artefact);
    let catalog = artefact_catalog(&artefact);

    let mut children = Children::default();
    let replica_ports: Vec<Vec<u16>> = (0..2).map(|_| vec![free_port(), free_port()]).collect();
    let mut replicas = vec![vec![0usize; 2]; 2];
    for (s, ports) in replica_ports.iter().enumerate() {
        for (r, &port) in ports.iter().enumerate() {
            replicas[s][r] = children.push(spawn_shard(&artefact, s, port, &logs));
        }
    }
    for (s, ports) in replica_ports.iter().enumerate() {
        for (r, &port) in ports.iter().enumerate() {
            wait_ready(
                &format!("http://127.0.0.1:{port}"),
                &mut children.0[replicas[s][r]],
            )
            .await;
        }
    }
    let frontends = [free_port(), free_port()];
    children.push(spawn_haproxy(
        &logs,
        &haproxy_config(&frontends, &replica_ports),
    ));
    let router_base = spawn_router(
        &mut children,
        &[
            "--artefact".into(),
            artefact.display().to_string(),
            "--shard-url".into(),
            format!("0=http://127.0.0.1:{}", frontends[0]),
            "--shard-url".into(),
            format!("1=http://127.0.0.1:{}", frontends[1]),
        ],
        free_port(),
        &logs,
    )
    .await;

    // Every score exact through the router.
    let client = Ranker::new(&router_base);
    let prepared = client.prepare("shop").await.unwrap();
    for seed in 0..6 {
        query(&client, &prepared, &catalog, seed).await.unwrap();
    }

    // A replica killed with SIGKILL while queries stream, two at a time: none is lost.
    let answered = Arc::new(AtomicUsize::new(0));
    let victim = children.0[replicas[0][0]].id();
    let killer = {
        let answered = answered.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            while answered.load(Ordering::SeqCst) < 8 && started.elapsed() < Duration::from_secs(60)
            {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            // SIGKILL: no graceful shutdown, its connections die with it.
            let killed = Command::new("kill")
                .args(["-KILL", &victim.to_string()])
                .status()
                .unwrap();
            assert!(killed.success());
        })
    };
    let started = Instant::now();
    for round in 0..16u64 {
        let (a, b) = tokio::join!(
            query(&client, &prepared, &catalog, 100 + 2 * round),
            query(&client, &prepared, &catalog, 101 + 2 * round),
        );
        a.unwrap_or_else(|e| panic!("round {round}: a query was lost: {e}"));
        b.unwrap_or_else(|e| panic!("round {round}: a query was lost: {e}"));
        answered.fetch_add(2, Ordering::SeqCst);
        assert!(started.elapsed() < Duration::from_secs(120));
    }
    killer.await.unwrap();
    assert!(
        children.0[replicas[0][0]].try_wait().unwrap().is_some(),
        "the replica was killed during the stream"
    );
    assert_eq!(answered.load(Ordering::SeqCst), 32);

    // Every replica of shard 1 stopped: 503 shard_unavailable, never a partial ranking.
    children.kill(replicas[1][0]);
    children.kill(replicas[1][1]);
    let err = query(&client, &prepared, &catalog, 500).await.unwrap_err();
    assert!(
        matches!(err, ClientError::ShardUnavailable { .. }),
        "expected shard_unavailable, got {err}"
    );
    let ranked = client.rank("shop", &unit_rows(1, D, 3), 10).await;
    assert!(
        matches!(ranked, Err(ClientError::ShardUnavailable { .. })),
        "a ranking with a shard missing: {ranked:?}"
    );

    // One replica back: service returns (HAProxy's health checks see it within a second
    // or so).
    let back = children.push(spawn_shard(&artefact, 1, replica_ports[1][0], &logs));
    wait_ready(
        &format!("http://127.0.0.1:{}", replica_ports[1][0]),
        &mut children.0[back],
    )
    .await;
    let started = Instant::now();
    let mut tries = 0;
    loop {
        tries += 1;
        match query(&client, &prepared, &catalog, 600 + tries).await {
            Ok(()) => break,
            Err(ClientError::ShardUnavailable { .. })
                if tries < 50 && started.elapsed() < Duration::from_secs(20) =>
            {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("service did not return after {tries} tries: {e}"),
        }
    }
    for seed in 700..703 {
        query(&client, &prepared, &catalog, seed).await.unwrap();
    }
    drop(children);
    let _ = std::fs::remove_dir_all(&dir);
}
