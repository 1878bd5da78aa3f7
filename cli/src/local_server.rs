//! A blindscore server inside this process, on a loopback port: what `demo` and `eval`
//! rank through, over real HTTP.

use std::sync::Arc;

use blindscore_server::load::LoadedItems;
use blindscore_server::serving::VersionEntry;
use blindscore_server::serving::{AppState, ServiceConfig, SpaceDeclaration};

/// A server serving one catalog, until the process ends.
pub struct LocalServer {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The version it serves.
    pub entry: Arc<VersionEntry>,
}

/// Build `items` into catalog `name` (on a blocking thread: it is CPU-heavy) and serve it.
pub async fn start(
    name: &str,
    items: LoadedItems,
    declaration: SpaceDeclaration,
) -> anyhow::Result<LocalServer> {
    // The one user of a server in this process is this process: no per-address limit
    // (eval ranks hundreds of queries in a row).
    let state = AppState::new(ServiceConfig {
        rate_limit: None,
        ..ServiceConfig::default()
    });
    let builder = state.clone();
    let name = name.to_string();
    let entry =
        tokio::task::spawn_blocking(move || builder.build_and_install(&name, items, &declaration))
            .await??;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(blindscore_server::http::serve(
        listener,
        state,
        None,
        std::future::pending(),
    ));
    Ok(LocalServer { url, entry })
}
