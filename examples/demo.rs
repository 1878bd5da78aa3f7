//! The whole loop on the embedded demo catalog: start a server on a loopback port, fetch
//! the catalog's description and hint over HTTP, encrypt a sample user's preferences
//! under a fresh key, score them on the server, decrypt and rank on the "device", and
//! print the encrypted top-10 beside the plaintext top-10, with the time and bytes of
//! each step.
//!
//! `cargo run --release --example demo`

use std::sync::Arc;
use std::time::Instant;

use blindscore_client::{rescale, top_k, Client};
use blindscore_common::layout::CostModel;
use blindscore_common::params::DEFAULT_PARAMS;
use blindscore_common::quant::quantize;
use blindscore_common::LayoutChoice;
use blindscore_server::demo::{demo_catalog, quantize_catalog, topic_centre, DEMO_DIMENSION};
use blindscore_server::http::{router, AppState};
use blindscore_server::{CatalogSource, ServedCatalog};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    println!("blindscore demo: private ranking of a SYNTHETIC catalog (generated items, not real data)\n");
    let t = Instant::now();
    let demo = demo_catalog();
    let (catalog, catalog_scale) = quantize_catalog(&demo.embeddings, DEMO_DIMENSION, 8);
    let build_catalog = catalog.clone();
    let served = tokio::task::spawn_blocking(move || {
        ServedCatalog::build(
            &CatalogSource {
                catalog_id: "demo",
                params: DEFAULT_PARAMS,
                catalog: &build_catalog,
                scales: &[],
                query_bits: 8,
                layout: LayoutChoice::Auto(CostModel::default()),
            },
            &|step, done, total| {
                if done == total {
                    eprintln!("  server: {step} transform of {total} blocks done");
                }
            },
        )
    })
    .await??;
    println!(
        "server: catalog 'demo' ready in {:.2} s: {} items x {} dims, {} layout, version {}…",
        t.elapsed().as_secs_f64(),
        catalog.items(),
        catalog.dimension(),
        served.shape().layout,
        &served.catalog_ref().version.to_hex()[..16]
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = router(Arc::new(AppState::new(vec![served])));
    tokio::spawn(async move { axum::serve(listener, app).await });
    println!("server: listening on http://{addr}\n");

    let client = Client::new(&format!("http://{addr}"));
    let t = Instant::now();
    let (prepared, fetched) = client.fetch_catalog("demo").await?;
    println!(
        "client: fetched and checked description + hint: {:.1} KiB in {:.1} ms (once per catalog version)",
        fetched.down as f64 / 1024.0,
        t.elapsed().as_secs_f64() * 1e3
    );

    // A sample user who likes topic 7, with a little of topic 21.
    let user: Vec<f32> = topic_centre(7)
        .iter()
        .zip(topic_centre(21))
        .map(|(a, b)| a + 0.3 * b)
        .collect();
    let query = quantize(&user, prepared.shape().query_bits);
    let t = Instant::now();
    let encrypted = prepared.encrypt(&query.values)?;
    let encrypt_ms = t.elapsed().as_secs_f64() * 1e3;
    println!("client: encrypted the preference vector under a fresh key in {encrypt_ms:.1} ms");
    let t = Instant::now();
    let (response, sent) = client.score("demo", encrypted.bytes).await?;
    println!(
        "server: scored every item without seeing the preferences: {:.1} KiB up, {:.1} KiB down, {:.1} ms round trip",
        sent.up as f64 / 1024.0,
        sent.down as f64 / 1024.0,
        t.elapsed().as_secs_f64() * 1e3
    );
    let t = Instant::now();
    let scores = encrypted.pending.decrypt(&prepared, &response)?;
    let ranked = top_k(&rescale(&scores, query.scale * catalog_scale, &[]), 10);
    println!(
        "client: decrypted and ranked {} scores in {:.1} ms\n",
        scores.len(),
        t.elapsed().as_secs_f64() * 1e3
    );

    let plain = top_k(&catalog.plaintext_scores(&query.values), 10);
    println!(
        "{:<4} {:<34} {:>8}   {:<34} {:>8}",
        "rank", "encrypted top-10", "score", "plaintext top-10", "score"
    );
    for (r, (e, p)) in ranked.iter().zip(&plain).enumerate() {
        println!(
            "{:<4} {:<34} {:>8.4}   {:<34} {:>8.4}",
            r + 1,
            demo.ids[e.0],
            e.1,
            demo.ids[p.0],
            p.1 as f64 * query.scale * catalog_scale
        );
    }
    let same = ranked.iter().zip(&plain).all(|(e, p)| e.0 == p.0);
    let exact = scores == catalog.plaintext_scores(&query.values);
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
