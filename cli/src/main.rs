//! `blindscore`: private ranking from a terminal.
//!
//! * `blindscore rank --server URL --catalog NAME --vector FILE [-k 10] [--json]` ranks a
//!   catalog for a preference vector read from a `.npy` (1-D) or JSON (array) file.
//! * `blindscore eval --catalog items.npy --ids ids.txt --queries queries.npy` ranks every
//!   query of an evaluation set through the encrypted pipeline and reports recall against
//!   the float ranking.
//! * `blindscore demo` starts an in-process server with the embedded demo catalog on a
//!   loopback port, ranks a sample user through real HTTP, and prints the encrypted top-k
//!   beside the plaintext top-k, with the time and bytes of each step.

use std::collections::HashSet;
use std::path::PathBuf;

use anyhow::{bail, Context};
use blindscore_client::{Connection, Ranker};
use clap::{Parser, Subcommand};

mod demo;
mod eval;
mod input;
mod local_server;

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
    /// Rank every query of a set through the encrypted pipeline (a server in this process,
    /// on a loopback port) and report quality against the float ranking.
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
            let mut v = input::read_vector(&vector)?;
            if normalise {
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                if norm == 0.0 {
                    bail!("cannot normalise a zero vector");
                }
                v.iter_mut().for_each(|x| *x /= norm);
            }
            let exclude = match exclude {
                Some(path) => input::read_id_set(&path)?,
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
                ..Connection::default()
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
        Command::Demo { k } => demo::run(k).await,
        Command::Eval {
            catalog,
            ids,
            queries,
            k,
            bits,
            dimension_scales,
            json,
        } => {
            eval::run(&eval::EvalSet {
                catalog,
                ids,
                queries,
                k,
                bits,
                dimension_scales,
                json,
            })
            .await
        }
    }
}
