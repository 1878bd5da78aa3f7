//! The `blindscore` command against a real server on a loopback port.

use blindscore_demo::{demo_interests, DemoCatalog};
use blindscore_server::load::demo_items;
use blindscore_server::serving::{AppState, ServiceConfig, SpaceDeclaration};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rank_prints_json_lines_and_refuses_a_wrong_vector() {
    let items = demo_items(&DemoCatalog::load().unwrap()).unwrap();
    let state = AppState::new(ServiceConfig::default());
    state
        .build_and_install("demo", items, &SpaceDeclaration::default())
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(blindscore_server::http::serve(
        listener,
        state,
        None,
        std::future::pending(),
    ));

    let dir = std::env::temp_dir().join(format!("blindscore-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let vector = dir.join("v.json");
    std::fs::write(
        &vector,
        serde_json::to_vec(&demo_interests().unwrap()[0].vector).unwrap(),
    )
    .unwrap();
    let run = |args: Vec<String>| async move {
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_blindscore"))
                .args(args)
                .output()
                .unwrap()
        })
        .await
        .unwrap()
    };
    let args = |v: &std::path::Path| {
        [
            "rank",
            "--server",
            &url,
            "--catalog",
            "demo",
            "--vector",
            v.to_str().unwrap(),
            "-k",
            "3",
            "--json",
            "--normalise",
        ]
        .map(String::from)
        .to_vec()
    };
    let out = run(args(&vector)).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    // "edit photos and images" ranks an image editor first.
    assert_eq!(lines[0]["id"], "photoflare", "{lines:?}");

    std::fs::write(&vector, b"[1.0, 2.0]").unwrap();
    let out = run(args(&vector)).await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("embedding space"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
