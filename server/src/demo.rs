//! The embedded demo catalog: **real items**, 12,000 Debian packages (name and
//! description) embedded with the all-MiniLM-L6-v2 sentence-transformer model and projected
//! to 128 dimensions (`data/build_real_sets.py` builds them; the files are committed, so
//! no model is needed at run time). A person can judge a ranking by eye: "edit photos and
//! images" should bring up image editors.

use serde::Deserialize;

use crate::load::{quantize_rows, LoadError, LoadedItems, Normalisation};

/// Items in the demo catalog.
pub const DEMO_ITEMS: usize = 12_000;
/// Dimension of the demo catalog.
pub const DEMO_DIMENSION: usize = 128;
/// The embedding model, as declared in the catalog's description.
pub const DEMO_MODEL: &str = "all-MiniLM-L6-v2 (PCA-projected to 128)";

const ITEMS_NPY: &[u8] = include_bytes!("../../data/debian-128/items.npy");
const IDS: &str = include_str!("../../data/debian-128/ids.txt");
const TITLES: &str = include_str!("../../data/debian-128/titles.txt");
const INTERESTS: &str = include_str!("../../data/interests.json");

/// The demo catalog: item ids (package names), titles and unit-norm float embeddings.
pub struct DemoCatalog {
    /// Package names.
    pub ids: Vec<String>,
    /// "name: short description", for display.
    pub titles: Vec<String>,
    /// Row-major float embeddings, DEMO_ITEMS x DEMO_DIMENSION, each row of norm 1.
    pub embeddings: Vec<f32>,
}

/// Load the embedded demo catalog.
pub fn demo_catalog() -> Result<DemoCatalog, LoadError> {
    let npy = npyz::NpyFile::new(ITEMS_NPY).map_err(|e| LoadError::Npy(e.to_string()))?;
    let embeddings: Vec<f32> = npy.into_vec().map_err(|e| LoadError::Npy(e.to_string()))?;
    let ids: Vec<String> = IDS.lines().map(String::from).collect();
    let titles: Vec<String> = TITLES.lines().map(String::from).collect();
    if embeddings.len() != DEMO_ITEMS * DEMO_DIMENSION
        || ids.len() != DEMO_ITEMS
        || titles.len() != DEMO_ITEMS
    {
        return Err(LoadError::Npy(
            "the embedded demo catalog is inconsistent".into(),
        ));
    }
    Ok(DemoCatalog {
        ids,
        titles,
        embeddings,
    })
}

impl DemoCatalog {
    /// The items as the server loads them: rows quantized at 16 bits with per-item scales,
    /// to be narrowed to the widest width the noise budget allows.
    pub fn items(&self) -> Result<LoadedItems, LoadError> {
        quantize_rows(
            self.ids.clone(),
            &self.embeddings,
            DEMO_DIMENSION,
            16,
            Normalisation::L2,
        )
    }
}

#[derive(Deserialize)]
struct Interest {
    text: String,
    v128: Vec<f32>,
}

/// Plain-language interests embedded with the same model (e.g. "edit photos and images"),
/// as (text, unit-norm 128-d vector).
pub fn demo_interests() -> Vec<(String, Vec<f32>)> {
    serde_json::from_str::<Vec<Interest>>(INTERESTS)
        .map(|v| v.into_iter().map(|i| (i.text, i.v128)).collect())
        .unwrap_or_default()
}
