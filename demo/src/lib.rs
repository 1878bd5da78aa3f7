//! The embedded demo catalog: **real items**, 12,000 Debian packages (name and
//! description) embedded with the all-MiniLM-L6-v2 sentence-transformer model and projected
//! to 128 dimensions (`data/build_real_sets.py` builds them; the files are committed, so
//! no model is needed at run time). A person can judge a ranking by eye: "edit photos and
//! images" should bring up image editors.
//!
//! The server's start-up without arguments and the `blindscore demo` command both serve it;
//! the client SDK never depends on it.

#![forbid(unsafe_code)]

use serde::Deserialize;

/// Items in the demo catalog.
pub const DEMO_ITEMS: usize = 12_000;
/// Dimension of the demo catalog.
pub const DEMO_DIMENSION: usize = 128;
/// The embedding model, as declared in the catalog's embedding space.
pub const DEMO_MODEL: &str = "all-MiniLM-L6-v2 (PCA-projected to 128)";

const ITEMS_NPY: &[u8] = include_bytes!("../../data/debian-128/items.npy");
const IDS: &str = include_str!("../../data/debian-128/ids.txt");
const TITLES: &str = include_str!("../../data/debian-128/titles.txt");
const INTERESTS: &str = include_str!("../../data/interests.json");

/// The embedded files do not make a consistent catalog (a build defect, never input).
#[derive(Debug, thiserror::Error)]
#[error("the embedded demo catalog is unusable: {0}")]
pub struct DemoError(String);

/// The demo catalog: item ids (package names), titles and unit-norm float embeddings.
pub struct DemoCatalog {
    /// Package names.
    pub ids: Vec<String>,
    /// "name: short description", for display.
    pub titles: Vec<String>,
    /// Row-major float embeddings, DEMO_ITEMS x DEMO_DIMENSION, each row of norm 1.
    pub embeddings: Vec<f32>,
}

impl DemoCatalog {
    /// Decode the embedded catalog.
    pub fn load() -> Result<DemoCatalog, DemoError> {
        let npy = npyz::NpyFile::new(ITEMS_NPY).map_err(|e| DemoError(e.to_string()))?;
        let embeddings: Vec<f32> = npy.into_vec().map_err(|e| DemoError(e.to_string()))?;
        let ids: Vec<String> = IDS.lines().map(String::from).collect();
        let titles: Vec<String> = TITLES.lines().map(String::from).collect();
        if embeddings.len() != DEMO_ITEMS * DEMO_DIMENSION
            || ids.len() != DEMO_ITEMS
            || titles.len() != DEMO_ITEMS
        {
            return Err(DemoError(format!(
                "{} values, {} ids and {} titles for {DEMO_ITEMS} items of {DEMO_DIMENSION} dimensions",
                embeddings.len(),
                ids.len(),
                titles.len()
            )));
        }
        Ok(DemoCatalog {
            ids,
            titles,
            embeddings,
        })
    }

    /// The title of an item, by id.
    pub fn title(&self, id: &str) -> Option<&str> {
        let i = self.ids.iter().position(|x| x == id)?;
        Some(&self.titles[i])
    }
}

#[derive(Deserialize)]
struct Interest {
    text: String,
    v128: Vec<f32>,
}

/// A plain-language interest embedded with the demo catalog's model.
#[derive(Clone, Debug, PartialEq)]
pub struct DemoInterest {
    /// What a user might say ("edit photos and images").
    pub text: String,
    /// Its unit-norm 128-d embedding.
    pub vector: Vec<f32>,
}

/// The sample interests, the first being "edit photos and images".
pub fn demo_interests() -> Result<Vec<DemoInterest>, DemoError> {
    let interests: Vec<Interest> =
        serde_json::from_str(INTERESTS).map_err(|e| DemoError(e.to_string()))?;
    Ok(interests
        .into_iter()
        .map(|i| DemoInterest {
            text: i.text,
            vector: i.v128,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_catalog_is_consistent_and_unit_norm() {
        let demo = DemoCatalog::load().unwrap();
        assert_eq!(demo.ids.len(), DEMO_ITEMS);
        for row in demo.embeddings.chunks_exact(DEMO_DIMENSION).step_by(997) {
            let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-3, "{norm}");
        }
        assert!(demo.title("photoflare").unwrap().starts_with("photoflare"));
        let interests = demo_interests().unwrap();
        assert_eq!(interests[0].text, "edit photos and images");
        assert!(interests.iter().all(|i| i.vector.len() == DEMO_DIMENSION));
    }
}
