//! Resident memory of a served catalog in steady state and at the peak of a swap.
//!
//! `cargo run --release --example memory` (1,048,576 x 128 by default; set
//! `BLINDSCORE_MEMORY_ITEMS` for another size). Loads a catalog the way the server does
//! (rows quantized as they stream in, Fourier catalog and hint built, the quantized copy
//! dropped), then builds a replacement while the first is held, as a swap does.

use std::time::Instant;

use blindscore_common::api::Normalisation;
use blindscore_server::load::quantize_rows;
use blindscore_server::serving::metrics::process_memory;
use blindscore_server::serving::{AppState, ServiceConfig, SpaceDeclaration};

const D: usize = 128;

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

fn items(n: usize, seed: u64) -> blindscore_server::load::LoadedItems {
    // Generate and quantize in slices, so no full float matrix is ever held (as when
    // streaming a .npy file).
    let mut state = seed;
    let mut ids = Vec::with_capacity(n);
    let mut values = Vec::with_capacity(n * D);
    let mut scales = Vec::with_capacity(n);
    for chunk in 0..n.div_ceil(4096) {
        let rows = 4096.min(n - chunk * 4096);
        let floats: Vec<f32> = (0..rows * D)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 40) as f32 / (1u64 << 24) as f32) - 0.5
            })
            .collect();
        let chunk_ids: Vec<String> = (0..rows)
            .map(|i| format!("item-{}", chunk * 4096 + i))
            .collect();
        let part =
            quantize_rows(chunk_ids.clone(), &floats, D, 8, Normalisation::L2).expect("valid rows");
        ids.extend(chunk_ids);
        values.extend_from_slice(part.catalog.values());
        scales.extend(part.scales);
    }
    let catalog = blindscore_common::QuantizedCatalog::new(D, 8, values).expect("valid catalog");
    blindscore_server::load::LoadedItems {
        ids,
        catalog,
        scales,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::var("BLINDSCORE_MEMORY_ITEMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1 << 20);
    let base = process_memory();
    println!(
        "{n} items x {D}: baseline resident {:.0} MiB",
        mib(base.resident)
    );
    let state = AppState::new(ServiceConfig::default());
    let t = Instant::now();
    let s = state.clone();
    let first = tokio::task::spawn_blocking(move || {
        s.build_and_install("c", items(n, 1), &SpaceDeclaration::default())
    })
    .await??;
    let steady = process_memory();
    println!(
        "first version built in {:.1} s: version holds {:.0} MiB; resident {:.0} MiB (steady state), peak so far {:.0} MiB",
        t.elapsed().as_secs_f64(),
        mib(first.memory_bytes as u64),
        mib(steady.resident),
        mib(steady.peak)
    );
    let t = Instant::now();
    let s = state.clone();
    let second = tokio::task::spawn_blocking(move || {
        s.build_and_install("c", items(n, 2), &SpaceDeclaration::default())
    })
    .await??;
    let swap = process_memory();
    println!(
        "swap built in {:.1} s while the first version was held: resident {:.0} MiB with both versions, peak {:.0} MiB",
        t.elapsed().as_secs_f64(),
        mib(swap.resident),
        mib(swap.peak)
    );
    drop(first);
    let _ = second;
    Ok(())
}
