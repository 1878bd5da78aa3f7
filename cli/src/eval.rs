//! `blindscore eval`: rank every query of an evaluation set through the encrypted
//! pipeline and report quality against the float ranking.

use std::path::{Path, PathBuf};

use anyhow::bail;
use blindscore_cli::quality::evaluate;
use blindscore_client::Ranker;
use blindscore_common::api::Normalisation;
use blindscore_server::load::{quantize_rows, read_ids};
use blindscore_server::serving::SpaceDeclaration;

use crate::input::read_matrix;
use crate::local_server;

/// What to evaluate.
pub struct EvalSet {
    pub catalog: PathBuf,
    pub ids: PathBuf,
    pub queries: PathBuf,
    pub k: usize,
    pub bits: Option<u32>,
    pub dimension_scales: bool,
    pub json: bool,
}

pub async fn run(set: &EvalSet) -> anyhow::Result<()> {
    let k = set.k;
    let (items, dim) = read_matrix(&set.catalog)?;
    let (query_rows, qdim) = read_matrix(&set.queries)?;
    if qdim != dim {
        bail!("queries have {qdim} dims, the catalog {dim}");
    }
    let id_list = read_ids(std::io::BufReader::new(open(&set.ids)?))?;
    eprintln!(
        "  building the catalog ({} items x {dim}) ...",
        id_list.len()
    );
    let loaded = quantize_rows(
        id_list.clone(),
        &items,
        dim,
        set.bits.unwrap_or(16),
        Normalisation::L2,
    )?;
    let declaration = SpaceDeclaration {
        bits: set.bits,
        dimension_scales: set.dimension_scales,
        ..SpaceDeclaration::default()
    };
    let server = local_server::start("eval", loaded, declaration).await?;
    let shape = *server.entry.shape();
    let ranker = Ranker::new(&server.url);
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
    let report = evaluate(&items, &query_rows, dim, &rankings, k, 1e-3);
    let b = shape.budget;
    if set.json {
        println!(
            "{}",
            serde_json::json!({
                "report": report,
                "items": shape.geometry.items, "dimension": dim, "layout": shape.layout.to_string(),
                "catalog_bits": shape.catalog_bits, "query_bits": shape.query_bits, "delta_log2": b.delta_log2,
                "dimension_scales": set.dimension_scales,
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

fn open(path: &Path) -> anyhow::Result<std::fs::File> {
    use anyhow::Context;
    std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))
}
