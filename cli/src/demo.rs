//! `blindscore demo`: the whole loop on the embedded demo catalog, over loopback HTTP,
//! with the time and bytes of each step, beside the plaintext ranking.

use std::collections::HashSet;
use std::time::Instant;

use anyhow::{bail, Context};
use blindscore_client::core::top_k;
use blindscore_client::Ranker;
use blindscore_demo::{demo_interests, DemoCatalog, DEMO_DIMENSION, DEMO_MODEL};
use blindscore_server::load::demo_items;
use blindscore_server::serving::SpaceDeclaration;

use crate::local_server;

pub async fn run(k: usize) -> anyhow::Result<()> {
    println!("blindscore demo: private ranking of 12,000 real Debian packages (all-MiniLM-L6-v2 embeddings, 128 dims)\n");
    let t = Instant::now();
    eprintln!("  building the catalog (choosing its widths, transforming it to the Fourier domain, computing its hint) ...");
    let demo = DemoCatalog::load()?;
    let declaration = SpaceDeclaration {
        model: DEMO_MODEL.into(),
        ..SpaceDeclaration::default()
    };
    let server = local_server::start("demo", demo_items(&demo)?, declaration).await?;
    let shape = *server.entry.shape();
    println!(
        "server: catalog 'demo' ready in {:.2} s: {} items x {} dims, {}-bit values (the widest the noise budget allows), {} layout, version {}…",
        t.elapsed().as_secs_f64(),
        shape.geometry.items,
        shape.geometry.dimension,
        shape.catalog_bits,
        shape.layout,
        &server.entry.version().to_hex()[..16]
    );
    println!("server: listening on {}\n", server.url);

    let ranker = Ranker::new(&server.url);
    let t = Instant::now();
    let catalog = ranker.prepare("demo").await?;
    let cost = catalog.cost();
    println!(
        "client: fetched and checked the catalog's public data ({:.1} KiB: description, hint, ids, scales) in {:.1} ms, once per version",
        cost.once_per_version as f64 / 1024.0,
        t.elapsed().as_secs_f64() * 1e3
    );
    println!(
        "client: each query costs {:.1} KiB up and {:.1} KiB down",
        cost.up as f64 / 1024.0,
        cost.down as f64 / 1024.0
    );

    let interests = demo_interests()?;
    let user = interests.first().context("no sample interest")?;
    println!("\nsample user: \"{}\"", user.text);
    let t = Instant::now();
    let sealed = ranker.seal(&catalog, &user.vector).await?;
    println!(
        "client: encrypted the preferences under a fresh key in {:.1} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    let t = Instant::now();
    let up = sealed.bytes.len();
    let response = ranker.send(&catalog, sealed.bytes).await?;
    println!(
        "server: scored all {} items without seeing the preferences: {:.1} KiB up, {:.1} KiB down, {:.1} ms round trip",
        catalog.ids().len(),
        up as f64 / 1024.0,
        response.len() as f64 / 1024.0,
        t.elapsed().as_secs_f64() * 1e3
    );
    let t = Instant::now();
    let ranked = ranker
        .open(&catalog, sealed.pending, response, k, &HashSet::new())
        .await?;
    println!(
        "client: decrypted and ranked on this machine in {:.1} ms\n",
        t.elapsed().as_secs_f64() * 1e3
    );

    // The plaintext ranking of the same float vectors, for comparison.
    let floats: Vec<f64> = demo
        .embeddings
        .chunks_exact(DEMO_DIMENSION)
        .map(|row| {
            row.iter()
                .zip(&user.vector)
                .map(|(a, b)| (*a as f64) * (*b as f64))
                .sum()
        })
        .collect();
    let plain = top_k(&floats, k);
    println!(
        "{:<4} {:<58} {:>7}   {:<40} {:>7}",
        "rank", "encrypted top-k", "cosine", "plaintext (float) top-k", "cosine"
    );
    for (r, (e, p)) in ranked.iter().zip(&plain).enumerate() {
        let mut title = demo.title(&e.id).unwrap_or(&e.id).to_string();
        title.truncate(58);
        println!(
            "{:<4} {:<58} {:>7.4}   {:<40} {:>7.4}",
            r + 1,
            title,
            e.score,
            demo.ids[p.0],
            p.1
        );
    }
    let found = ranked
        .iter()
        .filter(|e| plain.iter().any(|p| demo.ids[p.0] == e.id))
        .count();
    println!(
        "\n{found} of the encrypted top-{k} are in the float top-{k} of the unquantized vectors"
    );
    if found * 10 < k * 7 {
        bail!("the encrypted ranking is far from the float ranking");
    }
    Ok(())
}
