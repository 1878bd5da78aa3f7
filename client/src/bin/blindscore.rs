//! `blindscore`: private ranking from a terminal.
//!
//! * `blindscore rank --server URL --catalog NAME --vector FILE [-k 10] [--json]` ranks a
//!   catalog for a preference vector read from a `.npy` (1-D) or JSON (array) file.
//! * `blindscore demo` starts an in-process server with the embedded demo catalog on a
//!   loopback port, ranks a sample user through real HTTP, and prints the encrypted top-k
//!   beside the plaintext top-k, with the time and bytes of each step.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use blindscore_client::{top_k, Connection, Ranker};
use blindscore_server::demo::{demo_catalog, demo_interests, DEMO_DIMENSION, DEMO_MODEL};
use blindscore_server::http::router;
use blindscore_server::load::{quantize_rows, Normalisation};
use blindscore_server::service::{AppState, ServiceConfig, SpaceDeclaration};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    version,
    about = "Private ranking: your preferences are encrypted before they leave this machine"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Rank a catalog on a blindscore server for a preference vector.
    Rank {
        /// Server URL, e.g. https://shop.example/blindscore or http://127.0.0.1:8080
        #[arg(long, env = "BLINDSCORE_SERVER")]
        server: String,
        /// Catalog name.
        #[arg(long)]
        catalog: String,
        /// The preference vector: a 1-D .npy file or a JSON array.
        #[arg(long)]
        vector: PathBuf,
        /// How many items to show.
        #[arg(short, long, default_value_t = 10)]
        k: usize,
        /// Ids to leave out, one per line (applied on this machine after decryption).
        #[arg(long)]
        exclude: Option<PathBuf>,
        /// Cache the catalog's public data here between runs.
        #[arg(long, env = "BLINDSCORE_CACHE_DIR")]
        cache_dir: Option<PathBuf>,
        /// Normalise the vector to unit length first (for L2-normalised catalogs).
        #[arg(long)]
        normalise: bool,
        /// Print JSON lines instead of a table.
        #[arg(long)]
        json: bool,
        /// A PEM certificate to trust besides the public roots (a private CA, or the
        /// server's self-signed certificate).
        #[arg(long, env = "BLINDSCORE_CA_CERT")]
        ca_cert: Option<PathBuf>,
        /// API key for servers that require one.
        #[arg(long, env = "BLINDSCORE_API_KEY", hide_env_values = true)]
        api_key: Option<String>,
        /// Allow plain http:// to a host beyond loopback.
        #[arg(long)]
        allow_plain_http: bool,
    },
    /// Rank every query of a set through the encrypted pipeline (a server on a loopback
    /// port unless --server is given) and report quality against the float ranking.
    Eval {
        /// Item embeddings, a float32/float64 .npy matrix (items x dims).
        #[arg(long)]
        catalog: PathBuf,
        /// Item ids, one per line.
        #[arg(long)]
        ids: PathBuf,
        /// Query embeddings, a .npy matrix (queries x dims).
        #[arg(long)]
        queries: PathBuf,
        /// k of recall@k.
        #[arg(short, long, default_value_t = 10)]
        k: usize,
        /// Catalog value width, bits (default: the widest the noise budget allows).
        #[arg(long)]
        bits: Option<u32>,
        /// Scale each dimension to the full range too (folded into the query).
        #[arg(long)]
        dimension_scales: bool,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// The whole loop on the embedded demo catalog, over loopback HTTP.
    Demo {
        /// How many items to show.
        #[arg(short, long, default_value_t = 10)]
        k: usize,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Rank {
            server,
            catalog,
            vector,
            k,
            exclude,
            cache_dir,
            normalise,
            json,
            ca_cert,
            api_key,
            allow_plain_http,
        } => {
            let mut v = read_vector(&vector)?;
            if normalise {
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                if norm == 0.0 {
                    bail!("cannot normalise a zero vector");
                }
                v.iter_mut().for_each(|x| *x /= norm);
            }
            let exclude: HashSet<String> = match exclude {
                Some(path) => std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?
                    .lines()
                    .map(|l| l.trim().to_string())
                    .filter(|l| !l.is_empty())
                    .collect(),
                None => HashSet::new(),
            };
            let connection = Connection {
                root_certificates: match ca_cert {
                    Some(path) => vec![std::fs::read(&path)
                        .with_context(|| format!("reading {}", path.display()))?],
                    None => Vec::new(),
                },
                api_key,
                allow_plain_http,
            };
            let mut ranker = Ranker::with_connection(&server, &connection);
            if let Some(dir) = cache_dir {
                ranker = ranker.with_cache_dir(dir);
            }
            let ranked = ranker.rank_excluding(&catalog, &v, k, &exclude).await?;
            if json {
                for item in ranked {
                    println!("{}", serde_json::to_string(&item)?);
                }
            } else {
                println!("{:<5} {:<40} {:>10}", "rank", "id", "score");
                for (i, item) in ranked.iter().enumerate() {
                    println!("{:<5} {:<40} {:>10.4}", i + 1, item.id, item.score);
                }
            }
            Ok(())
        }
        Command::Demo { k } => demo(k).await,
        Command::Eval {
            catalog,
            ids,
            queries,
            k,
            bits,
            dimension_scales,
            json,
        } => eval(&catalog, &ids, &queries, k, bits, dimension_scales, json).await,
    }
}

fn read_vector(path: &Path) -> anyhow::Result<Vec<f32>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if path.extension().is_some_and(|e| e == "npy") {
        let npy = npyz::NpyFile::new(&bytes[..]).context("not a .npy file")?;
        if npy.shape().len() != 1 {
            bail!("the .npy vector must be 1-D, found shape {:?}", npy.shape());
        }
        match npy.try_data::<f32>() {
            Ok(data) => Ok(data.collect::<Result<_, _>>()?),
            Err(npy) => Ok(npy
                .data::<f64>()
                .context("expected float32 or float64 values")?
                .map(|v| v.map(|x| x as f32))
                .collect::<Result<_, _>>()?),
        }
    } else {
        serde_json::from_slice(&bytes)
            .with_context(|| format!("{}: expected a JSON array of numbers", path.display()))
    }
}

async fn demo(k: usize) -> anyhow::Result<()> {
    println!("blindscore demo: private ranking of 12,000 real Debian packages (all-MiniLM-L6-v2 embeddings, 128 dims)\n");
    let t = Instant::now();
    eprintln!("  building the catalog (choosing its widths, transforming it to the Fourier domain, computing its hint) ...");
    let demo = demo_catalog()?;
    let items = demo.items()?;
    let state = AppState::new(ServiceConfig::default());
    let builder = state.clone();
    let declaration = SpaceDeclaration {
        model: DEMO_MODEL.into(),
        ..SpaceDeclaration::default()
    };
    let entry =
        tokio::task::spawn_blocking(move || builder.build_and_install("demo", items, &declaration))
            .await??;
    let shape = *entry.served.shape();
    println!(
        "server: catalog 'demo' ready in {:.2} s: {} items x {} dims, {}-bit values (the widest the noise budget allows), {} layout, version {}…",
        t.elapsed().as_secs_f64(),
        shape.geometry.items,
        shape.geometry.dimension,
        shape.catalog_bits,
        shape.layout,
        &entry.version().to_hex()[..16]
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = router(state);
    tokio::spawn(async move { axum::serve(listener, app).await });
    println!("server: listening on http://{addr}\n");

    let ranker = Ranker::new(&format!("http://{addr}"));
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

    let interests = demo_interests();
    let (text, user) = interests.first().context("no sample interest")?;
    println!("\nsample user: \"{text}\"");
    let t = Instant::now();
    let sealed = catalog.seal(user, None)?;
    println!(
        "client: encrypted the preferences under a fresh key in {:.1} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    let t = Instant::now();
    let response = ranker.send(&catalog, &sealed).await?;
    println!(
        "server: scored all {} items without seeing the preferences: {:.1} KiB up, {:.1} KiB down, {:.1} ms round trip",
        catalog.ids.len(),
        sealed.bytes.len() as f64 / 1024.0,
        response.len() as f64 / 1024.0,
        t.elapsed().as_secs_f64() * 1e3
    );
    let t = Instant::now();
    let ranked = catalog.open(sealed, &response, k, &HashSet::new())?;
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
                .zip(user)
                .map(|(a, b)| (*a as f64) * (*b as f64))
                .sum()
        })
        .collect();
    let plain = top_k(&floats, k);
    let title = |id: &str| {
        demo.ids
            .iter()
            .position(|x| x == id)
            .map_or(id.to_string(), |i| demo.titles[i].clone())
    };
    println!(
        "{:<4} {:<58} {:>7}   {:<40} {:>7}",
        "rank", "encrypted top-k", "cosine", "plaintext (float) top-k", "cosine"
    );
    for (r, (e, p)) in ranked.iter().zip(&plain).enumerate() {
        let mut t = title(&e.id);
        t.truncate(58);
        println!(
            "{:<4} {:<58} {:>7.4}   {:<40} {:>7.4}",
            r + 1,
            t,
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

fn read_matrix(path: &Path) -> anyhow::Result<(Vec<f32>, usize)> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let npy = npyz::NpyFile::new(&bytes[..])
        .with_context(|| format!("{}: not a .npy file", path.display()))?;
    let shape = npy.shape().to_vec();
    if shape.len() != 2 {
        bail!(
            "{}: expected a 2-D matrix, found shape {shape:?}",
            path.display()
        );
    }
    let values: Vec<f32> = match npy.try_data::<f32>() {
        Ok(data) => data.collect::<Result<_, _>>()?,
        Err(npy) => npy
            .data::<f64>()
            .context("expected float32 or float64 values")?
            .map(|v| v.map(|x| x as f32))
            .collect::<Result<_, _>>()?,
    };
    Ok((values, shape[1] as usize))
}

async fn eval(
    catalog: &Path,
    ids: &Path,
    queries: &Path,
    k: usize,
    bits: Option<u32>,
    dimension_scales: bool,
    json: bool,
) -> anyhow::Result<()> {
    let (items, dim) = read_matrix(catalog)?;
    let (query_rows, qdim) = read_matrix(queries)?;
    if qdim != dim {
        bail!("queries have {qdim} dims, the catalog {dim}");
    }
    let id_list =
        blindscore_server::load::read_ids(std::io::BufReader::new(std::fs::File::open(ids)?))?;
    eprintln!(
        "  building the catalog ({} items x {dim}) ...",
        id_list.len()
    );
    let loaded = quantize_rows(
        id_list.clone(),
        &items,
        dim,
        bits.unwrap_or(16),
        Normalisation::L2,
    )?;
    let state = AppState::new(ServiceConfig::default());
    let builder = state.clone();
    let declaration = SpaceDeclaration {
        bits,
        dimension_scales,
        ..SpaceDeclaration::default()
    };
    let entry = tokio::task::spawn_blocking(move || {
        builder.build_and_install("eval", loaded, &declaration)
    })
    .await??;
    let shape = *entry.served.shape();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, router(state)).await });
    let ranker = Ranker::new(&format!("http://{addr}"));
    let index: std::collections::HashMap<&str, usize> = id_list
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let mut rankings = Vec::new();
    let n = query_rows.len() / dim;
    for (i, q) in query_rows.chunks_exact(dim).enumerate() {
        let norm = q.iter().map(|x| x * x).sum::<f32>().sqrt();
        let unit: Vec<f32> = q.iter().map(|x| x / norm).collect();
        let ranked = ranker.rank("eval", &unit, k).await?;
        rankings.push(
            ranked
                .iter()
                .filter_map(|r| index.get(r.id.as_str()).copied())
                .collect(),
        );
        if (i + 1) % 100 == 0 || i + 1 == n {
            eprint!("\r  ranked {}/{n} queries", i + 1);
        }
    }
    eprintln!();
    let report = blindscore_client::quality::evaluate(&items, &query_rows, dim, &rankings, k, 1e-3);
    let b = shape.budget;
    if json {
        println!(
            "{}",
            serde_json::json!({
                "report": report,
                "items": shape.geometry.items, "dimension": dim, "layout": shape.layout.to_string(),
                "catalog_bits": shape.catalog_bits, "query_bits": shape.query_bits, "delta_log2": b.delta_log2,
                "dimension_scales": dimension_scales,
                "failure_log2_per_query": b.failure_log2,
            })
        );
    } else {
        println!(
            "{} queries, {} items x {dim}: {}-bit catalog values, {}-bit queries, Delta 2^{}, {} layout",
            report.queries, shape.geometry.items, shape.catalog_bits, shape.query_bits, b.delta_log2, shape.layout
        );
        println!(
            "recall@{k}: {:.4}   tolerant recall@{k} (1e-3): {:.4}   float score ratio: {:.5}",
            report.recall, report.tolerant_recall, report.score_ratio
        );
    }
    Ok(())
}
