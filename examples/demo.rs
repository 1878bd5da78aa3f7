//! The whole loop on the embedded demo catalog: start the server on a loopback port, fetch
//! the catalog's description, hint, ids and scales over HTTP, encrypt a sample user's
//! preferences under a fresh key, score them on the server, decrypt and rank on the
//! "device", and print the encrypted top-10 beside the plaintext top-10, with the time and
//! bytes of each step.
//!
//! `cargo run --release --example demo`

use std::time::Instant;

use blindscore_client::{rescale, top_k, Client};
use blindscore_common::quant::quantize;
use blindscore_server::demo::{demo_catalog, topic_centre, DEMO_DIMENSION};
use blindscore_server::http::router;
use blindscore_server::load::{quantize_rows, Normalisation};
use blindscore_server::service::{AppState, ServiceConfig, SpaceDeclaration};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    println!("blindscore demo: private ranking of a SYNTHETIC catalog (generated items, not real data)\n");
    let t = Instant::now();
    let demo = demo_catalog();
    let items = quantize_rows(
        demo.ids.clone(),
        &demo.embeddings,
        DEMO_DIMENSION,
        8,
        Normalisation::L2,
    )?;
    let plain_catalog = items.catalog.clone();
    let plain_scales = items.scales.clone();
    let state = AppState::new(ServiceConfig::default());
    let builder = state.clone();
    let declaration = SpaceDeclaration {
        model: "synthetic-demo".into(),
        ..SpaceDeclaration::default()
    };
    let entry =
        tokio::task::spawn_blocking(move || builder.build_and_install("demo", items, &declaration))
            .await??;
    println!(
        "server: catalog 'demo' built in {:.2} s: {} items x {} dims, {} layout, version {}…",
        t.elapsed().as_secs_f64(),
        entry.served.shape().geometry.items,
        entry.served.shape().geometry.dimension,
        entry.served.shape().layout,
        &entry.version().to_hex()[..16]
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = router(state);
    tokio::spawn(async move { axum::serve(listener, app).await });
    println!("server: listening on http://{addr}\n");

    let client = Client::new(&format!("http://{addr}"));
    let t = Instant::now();
    let (prepared, fetched) = client.fetch_catalog("demo").await?;
    let ids = client.fetch_ids(&prepared).await?;
    let scales = client.fetch_scales(&prepared).await?;
    println!(
        "client: fetched and checked description + hint ({:.1} KiB), ids and scales in {:.1} ms (once per catalog version)",
        fetched.down as f64 / 1024.0,
        t.elapsed().as_secs_f64() * 1e3
    );

    // A sample user who likes topic 7, with a little of topic 21.
    let mut user: Vec<f32> = topic_centre(7)
        .iter()
        .zip(topic_centre(21))
        .map(|(a, b)| a + 0.3 * b)
        .collect();
    let norm = user.iter().map(|x| x * x).sum::<f32>().sqrt();
    user.iter_mut().for_each(|x| *x /= norm);
    let query = quantize(&user, prepared.shape().query_bits);
    let t = Instant::now();
    let encrypted = prepared.encrypt(&query.values)?;
    println!(
        "client: encrypted the preference vector under a fresh key in {:.1} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    let t = Instant::now();
    let (response, sent) = client.score(&prepared, encrypted.bytes).await?;
    println!(
        "server: scored every item without seeing the preferences: {:.1} KiB up, {:.1} KiB down, {:.1} ms round trip",
        sent.up as f64 / 1024.0,
        sent.down as f64 / 1024.0,
        t.elapsed().as_secs_f64() * 1e3
    );
    let t = Instant::now();
    let scores = encrypted.pending.decrypt(&prepared, &response)?;
    let ranked = top_k(&rescale(&scores, query.scale, &scales), 10);
    println!(
        "client: decrypted and ranked {} scores in {:.1} ms\n",
        scores.len(),
        t.elapsed().as_secs_f64() * 1e3
    );

    let plain_scores = plain_catalog.plaintext_scores(&query.values);
    let plain = top_k(&rescale(&plain_scores, query.scale, &plain_scales), 10);
    println!(
        "{:<4} {:<34} {:>7}   {:<34} {:>7}",
        "rank", "encrypted top-10", "cosine", "plaintext top-10", "cosine"
    );
    for (r, (e, p)) in ranked.iter().zip(&plain).enumerate() {
        println!(
            "{:<4} {:<34} {:>7.4}   {:<34} {:>7.4}",
            r + 1,
            ids[e.0],
            e.1,
            demo.ids[p.0],
            p.1
        );
    }
    let same = ranked.iter().zip(&plain).all(|(e, p)| e.0 == p.0);
    let exact = scores == plain_scores;
    println!(
        "\nencrypted ranking {} the plaintext ranking; all {} encrypted scores {} the plaintext integer dot products",
        if same { "equals" } else { "DIFFERS FROM" },
        scores.len(),
        if exact { "equal" } else { "DO NOT equal" }
    );
    if !(same && exact) {
        anyhow::bail!("encrypted and plaintext results differ");
    }
    Ok(())
}
