//! The server binary as a child process: finding it, free loopback ports, catalog files,
//! readiness, and children killed when a test ends (passed or not).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::unit_rows;

/// The `blindscore-server` binary the workspace build put beside this test.
pub fn server_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("blindscore-server");
    assert!(
        bin.exists(),
        "{} is missing: build it with cargo build --release -p blindscore-server",
        bin.display()
    );
    bin
}

/// A loopback port free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An .npy catalog of unit rows in `d` dimensions with ids `sku-{i}`, in `dir`.
pub fn write_catalog(dir: &Path, items: usize, d: usize) -> (PathBuf, PathBuf) {
    write_catalog_rows(dir, &unit_rows(items, d, 5), d)
}

/// An .npy catalog of these rows (`d` values each) with ids `sku-{i}`, in `dir`.
pub fn write_catalog_rows(dir: &Path, rows: &[f32], d: usize) -> (PathBuf, PathBuf) {
    use npyz::WriterBuilder;
    std::fs::create_dir_all(dir).unwrap();
    let npy = dir.join("items.npy");
    let ids = dir.join("ids.txt");
    let items = rows.len() / d;
    let mut out = std::fs::File::create(&npy).unwrap();
    let mut w = npyz::WriteOptions::<f32>::new()
        .default_dtype()
        .shape(&[items as u64, d as u64])
        .writer(&mut out)
        .begin_nd()
        .unwrap();
    w.extend(rows.iter().copied()).unwrap();
    w.finish().unwrap();
    std::fs::write(
        &ids,
        (0..items).map(|i| format!("sku-{i}\n")).collect::<String>(),
    )
    .unwrap();
    (npy, ids)
}

/// Build the catalog `name` from these files into a column-layout artefact of `shards`
/// shards at `out`, with the server binary.
pub fn build_artefact(name: &str, (npy, ids): (&Path, &Path), shards: usize, out: &Path) {
    let built = Command::new(server_binary())
        .args(["build", "--catalog"])
        .arg(format!("{name}={}", npy.display()))
        .arg("--ids")
        .arg(ids)
        .args([
            "--group-size",
            "1",
            "--shards",
            &shards.to_string(),
            "--out",
        ])
        .arg(out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(built.success(), "build of {} failed", out.display());
}

/// The quantized catalog an artefact holds, as its shards scan it, joined.
pub fn artefact_catalog(artefact: &Path) -> blindscore_common::QuantizedCatalog {
    let artefact = blindscore_server::artefact::Artefact::open(artefact).unwrap();
    let mut values = Vec::new();
    for s in 0..artefact.shard_count() {
        values.extend_from_slice(artefact.shard_items(s).unwrap().values());
    }
    let shape = artefact.shape();
    blindscore_common::QuantizedCatalog::new(shape.geometry.dimension, shape.catalog_bits, values)
        .unwrap()
}

/// Serve shard `shard` of `artefact` on a loopback `port`, logging to `logs`.
pub fn spawn_shard(artefact: &Path, shard: usize, port: u16, logs: &Path) -> Child {
    let name = artefact.file_name().unwrap().to_string_lossy().into_owned();
    spawn_server(
        &[
            "serve".into(),
            "--artefact".into(),
            artefact.display().to_string(),
            "--shard".into(),
            shard.to_string(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
        ],
        Some(&logs.join(format!("{name}-shard{shard}-{port}.log"))),
    )
}

/// Start the router binary (`route` with `routes`: a routes file, or an artefact and its
/// shard URLs) on a loopback `port`, rate limits off, shard calls within 5 s, logging to
/// `logs/router.log`; returns its base URL once it is ready.
pub async fn spawn_router(
    children: &mut Children,
    routes: &[String],
    port: u16,
    logs: &Path,
) -> String {
    let mut args: Vec<String> = vec!["route".into()];
    args.extend_from_slice(routes);
    args.extend(
        [
            "--shard-timeout-seconds",
            "5",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--rate-limit",
            "0",
        ]
        .map(String::from),
    );
    let base = format!("http://127.0.0.1:{port}");
    let i = children.push(spawn_server(&args, Some(&logs.join("router.log"))));
    wait_ready(&base, &mut children.0[i]).await;
    base
}

/// The metrics text of the server at `base`.
pub async fn metrics_text(base: &str) -> String {
    reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Start the server binary with these arguments, its output to `log` (or dropped).
pub fn spawn_server(args: &[String], log: Option<&Path>) -> Child {
    let (out, err) = match log {
        Some(path) => {
            let file = std::fs::File::create(path).unwrap();
            (Stdio::from(file.try_clone().unwrap()), Stdio::from(file))
        }
        None => (Stdio::null(), Stdio::null()),
    };
    Command::new(server_binary())
        .args(args)
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap()
}

/// Wait (at most 60 s) until the server at `base` answers /readyz with 200.
pub async fn wait_ready(base: &str, child: &mut Child) {
    let started = Instant::now();
    let http = reqwest::Client::new();
    while started.elapsed() < Duration::from_secs(60) {
        if let Ok(r) = http.get(format!("{base}/readyz")).send().await {
            if r.status() == 200 {
                return;
            }
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the server at {base} exited early"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the server at {base} was not ready in time");
}

/// The HAProxy binary (Debian's package).
pub fn haproxy() -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"] {
        let path = Path::new(dir).join("haproxy");
        if path.exists() {
            return path;
        }
    }
    panic!(
        "HAProxy is not installed: this test runs the real load balancer. Install it with \
         `apt-get install haproxy`, or run the tests with scripts/test, which does"
    );
}

/// One HAProxy frontend per shard, each balancing that shard's replicas with health
/// checks on /readyz.
pub fn haproxy_config(frontends: &[u16], replicas: &[Vec<u16>]) -> String {
    let mut cfg = String::from(
        "global\n    maxconn 256\n\
         defaults\n    mode http\n    timeout connect 1s\n    timeout client 30s\n    \
         timeout server 30s\n    retries 2\n    option redispatch\n    \
         retry-on conn-failure empty-response\n",
    );
    for (s, (port, servers)) in frontends.iter().zip(replicas).enumerate() {
        cfg.push_str(&format!(
            "frontend shard{s}\n    bind 127.0.0.1:{port}\n    default_backend replicas{s}\n\
             backend replicas{s}\n    balance roundrobin\n    option httpchk GET /readyz\n    \
             http-check expect status 200\n"
        ));
        for (r, p) in servers.iter().enumerate() {
            cfg.push_str(&format!(
                "    server r{r} 127.0.0.1:{p} check inter 200ms fall 1 rise 1\n"
            ));
        }
    }
    cfg
}

/// Start HAProxy with `config` (written to `dir/haproxy.cfg`, checked first), in the
/// foreground, its output to `dir/haproxy.log`.
pub fn spawn_haproxy(dir: &Path, config: &str) -> Child {
    let haproxy = haproxy();
    let cfg = dir.join("haproxy.cfg");
    std::fs::write(&cfg, config).unwrap();
    let checked = Command::new(&haproxy)
        .arg("-c")
        .arg("-f")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        checked.status.success(),
        "haproxy refused its configuration: {}",
        String::from_utf8_lossy(&checked.stderr)
    );
    let log = std::fs::File::create(dir.join("haproxy.log")).unwrap();
    Command::new(&haproxy)
        .arg("-db")
        .arg("-f")
        .arg(&cfg)
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap()
}

/// Resident memory of a process, bytes (VmRSS).
pub fn resident_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches(" kB")
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// Child processes killed (SIGKILL) and reaped when dropped.
#[derive(Default)]
pub struct Children(pub Vec<Child>);

impl Children {
    pub fn push(&mut self, child: Child) -> usize {
        self.0.push(child);
        self.0.len() - 1
    }

    /// SIGKILL child `i` and reap it.
    pub fn kill(&mut self, i: usize) {
        let _ = self.0[i].kill();
        let _ = self.0[i].wait();
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
