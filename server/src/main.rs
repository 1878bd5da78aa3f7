//! `blindscore-server`: serves the embedded (synthetic) demo catalog over HTTP.

use std::net::SocketAddr;
use std::sync::Arc;

use blindscore_common::params::DEFAULT_PARAMS;
use blindscore_common::{layout::CostModel, LayoutChoice};
use blindscore_server::demo::{demo_catalog, quantize_catalog, DEMO_DIMENSION};
use blindscore_server::http::{router, AppState};
use blindscore_server::{CatalogSource, ServedCatalog};
use clap::Parser;

/// Configuration of the server.
#[derive(Parser, Debug)]
#[command(
    version,
    about = "blindscore: private scoring of an item catalog against encrypted preferences"
)]
struct Config {
    /// Address to listen on.
    #[arg(long, env = "BLINDSCORE_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    eprintln!("blindscore-server {config:?}");
    eprintln!("loading the embedded demo catalog (SYNTHETIC items, not real data) ...");
    let demo = demo_catalog();
    let (catalog, _) = quantize_catalog(&demo.embeddings, DEMO_DIMENSION, 8);
    let served = tokio::task::spawn_blocking(move || {
        ServedCatalog::build(
            &CatalogSource {
                catalog_id: "demo",
                params: DEFAULT_PARAMS,
                catalog: &catalog,
                scales: &[],
                query_bits: 8,
                layout: LayoutChoice::Auto(CostModel::default()),
            },
            &|_, _, _| {},
        )
    })
    .await??;
    eprintln!(
        "catalog demo: {} items x {}, {} layout, version {}",
        served.shape().geometry.items,
        served.shape().geometry.dimension,
        served.shape().layout,
        served.catalog_ref().version
    );
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    eprintln!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, router(Arc::new(AppState::new(vec![served]))))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
