//! The `blindscore-server` binary as an operator runs it: start-up with no arguments (the
//! demo catalog), start-up with a .npy catalog and its ids, graceful shutdown on SIGTERM,
//! and a clear failure on a corrupt catalog.

use std::io::Read;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_blindscore-server"))
        .args(args)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// GET over a plain TCP connection (no client crate here: the server crate must not
/// depend on the client).
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}

fn wait_ready(port: u16, child: &mut Child) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        if let Some((200, _)) = get(port, "/readyz") {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("server exited early: {status}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("server not ready in time");
}

fn terminate(mut child: Child) -> String {
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut log = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    log
}

#[test]
fn serves_the_demo_catalog_with_no_arguments_and_stops_on_sigterm() {
    let port = free_port();
    let mut child = spawn(&["--listen", &format!("127.0.0.1:{port}")]);
    wait_ready(port, &mut child);
    let (status, body) = get(port, "/v1/catalogs/demo").unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("\"items\":12000"), "{body}");
    assert!(body.contains("all-MiniLM-L6-v2"));
    let log = terminate(child);
    assert!(log.contains("real Debian packages"), "{log}");
    assert!(log.contains("shutting down"), "{log}");
}

#[test]
fn loads_an_npy_catalog_with_ids_and_refuses_a_corrupt_one() {
    let dir = std::env::temp_dir().join(format!("blindscore-bin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let npy = dir.join("items.npy");
    let ids = dir.join("ids.txt");
    {
        use npyz::WriterBuilder;
        let mut out = std::fs::File::create(&npy).unwrap();
        let mut w = npyz::WriteOptions::<f32>::new()
            .default_dtype()
            .shape(&[300, 16])
            .writer(&mut out)
            .begin_nd()
            .unwrap();
        for i in 0..300 * 16 {
            w.push(&(((i * 37) % 101) as f32 - 50.0)).unwrap();
        }
        w.finish().unwrap();
    }
    std::fs::write(
        &ids,
        (0..300).map(|i| format!("sku-{i}\n")).collect::<String>(),
    )
    .unwrap();
    let port = free_port();
    let catalog = format!("shop={}", npy.display());
    let mut child = spawn(&[
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--catalog",
        &catalog,
        "--ids",
        ids.to_str().unwrap(),
        "--model",
        "test-model",
    ]);
    wait_ready(port, &mut child);
    let (status, body) = get(port, "/v1/catalogs/shop").unwrap();
    assert_eq!(status, 200);
    assert!(
        body.contains("\"items\":300") && body.contains("test-model"),
        "{body}"
    );
    let log = terminate(child);
    assert!(log.contains("catalog version built"), "{log}");

    // The same catalogs from a config file, with a JSON Lines one beside it.
    let jsonl = dir.join("more.jsonl");
    std::fs::write(
        &jsonl,
        "{\"id\": \"a\", \"vector\": [1.0, 0.5]}\n{\"id\": \"b\", \"vector\": [0.0, 2.0]}\n",
    )
    .unwrap();
    let config = dir.join("catalogs.json");
    std::fs::write(
        &config,
        format!(
            "{{\"catalogs\": [{{\"name\": \"shop\", \"path\": {:?}, \"ids\": {:?}}}, {{\"name\": \"more\", \"path\": {:?}, \"model\": \"m2\", \"normalisation\": \"none\", \"metric\": \"dot\"}}]}}",
            npy.display().to_string(),
            ids.display().to_string(),
            jsonl.display().to_string()
        ),
    )
    .unwrap();
    let port = free_port();
    let mut child = spawn(&[
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--config",
        config.to_str().unwrap(),
    ]);
    wait_ready(port, &mut child);
    let (status, body) = get(port, "/v1/catalogs").unwrap();
    assert_eq!(status, 200);
    assert!(
        body.contains("\"name\":\"shop\"")
            && body.contains("\"model\":\"m2\"")
            && body.contains("\"metric\":\"dot\""),
        "{body}"
    );
    terminate(child);

    // A truncated matrix stops the start-up with a message naming the catalog.
    let bytes = std::fs::read(&npy).unwrap();
    std::fs::write(&npy, &bytes[..bytes.len() / 2]).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_blindscore-server"))
        .args([
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
            "--catalog",
            &catalog,
            "--ids",
            ids.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("loading catalog \"shop\""), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn refuses_plain_http_beyond_loopback_and_bad_tls_files() {
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_blindscore-server"))
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} started");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let any = format!("0.0.0.0:{}", free_port());
    let text = run(&["--listen", &any]);
    assert!(text.contains("needs TLS"), "{text}");
    // A certificate that is not PEM is refused with the file's role named.
    let dir = std::env::temp_dir().join(format!("blindscore-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, "not a certificate").unwrap();
    std::fs::write(&key, "not a key").unwrap();
    let text = run(&[
        "--listen",
        &any,
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    assert!(text.contains("TLS configuration"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}
