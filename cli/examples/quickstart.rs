//! Private ranking in a few lines: start a server with the demo catalog on a loopback port
//! (in an app, the server is already running somewhere), then rank.
//!
//! `cargo run --release -p blindscore-cli --example quickstart`

use blindscore_client::profile::{now_unix_ms, PreferenceProfile, ProfileWeights};
use blindscore_client::Ranker;
use blindscore_demo::{demo_interests, DemoCatalog};
use blindscore_server::load::demo_items;
use blindscore_server::serving::{AppState, ServiceConfig, SpaceDeclaration};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // -- server side (normally elsewhere) --
    let items = demo_items(&DemoCatalog::load()?)?;
    let state = AppState::new(ServiceConfig::default());
    state.build_and_install("demo", items, &SpaceDeclaration::default())?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(blindscore_server::http::serve(
        listener,
        state,
        None,
        std::future::pending(),
    ));

    // -- app side --
    // Build the user's preferences on the device: a stated interest and a recent view.
    let mut profile = PreferenceProfile::new(ProfileWeights::default());
    let interests = demo_interests()?;
    profile.state(&interests[0].text, interests[0].vector.clone(), 1.0); // "edit photos and images"
    profile.observe(interests[4].vector.clone(), 0.5, now_unix_ms()); // just viewed: Python tools
    let preferences = profile.combine(now_unix_ms())?.ok_or("empty profile")?;

    // One call: fetch (and cache) the catalog's public data, encrypt under a fresh key,
    // score on the server, decrypt and rank here.
    let ranker = Ranker::new(&url);
    for item in ranker.rank("demo", &preferences, 5).await? {
        println!("{:<36} {:.4}", item.id, item.score);
    }
    Ok(())
}
