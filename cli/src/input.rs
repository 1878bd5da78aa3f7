//! Vectors and matrices from files, as ML pipelines write them.

use std::collections::HashSet;
use std::path::Path;

use anyhow::{bail, Context};

/// A preference vector from a 1-D `.npy` file (float32 or float64) or a JSON array.
pub fn read_vector(path: &Path) -> anyhow::Result<Vec<f32>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if path.extension().is_some_and(|e| e == "npy") {
        let npy = npyz::NpyFile::new(&bytes[..]).context("not a .npy file")?;
        if npy.shape().len() != 1 {
            bail!("the .npy vector must be 1-D, found shape {:?}", npy.shape());
        }
        floats(npy)
    } else {
        serde_json::from_slice(&bytes)
            .with_context(|| format!("{}: expected a JSON array of numbers", path.display()))
    }
}

/// A row-major float matrix and its number of columns from a 2-D `.npy` file.
pub fn read_matrix(path: &Path) -> anyhow::Result<(Vec<f32>, usize)> {
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
    Ok((floats(npy)?, shape[1] as usize))
}

fn floats(npy: npyz::NpyFile<&[u8]>) -> anyhow::Result<Vec<f32>> {
    match npy.try_data::<f32>() {
        Ok(data) => Ok(data.collect::<Result<_, _>>()?),
        Err(npy) => Ok(npy
            .data::<f64>()
            .context("expected float32 or float64 values")?
            .map(|v| v.map(|x| x as f32))
            .collect::<Result<_, _>>()?),
    }
}

/// Ids to leave out, one per line.
pub fn read_id_set(path: &Path) -> anyhow::Result<HashSet<String>> {
    Ok(std::fs::read_to_string(path)
        .with_context(|| format!("reading {}", path.display()))?
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect())
}
