//! What the fuzz targets share: a tiny served catalog (built once per process, the same
//! in every process, so committed seeds stay valid) and a way to write seeds.
//!
//! `BLINDSCORE_WRITE_SEEDS=DIR fuzz/target/.../TARGET` writes the target's seeds (valid
//! messages) into DIR and exits.

use std::sync::OnceLock;

use blindscore_client::core::{Artifacts, Limits, PreparedCatalog};
use blindscore_common::api::{EmbeddingSpace, Metric, Normalisation};
use blindscore_common::artefacts::{encode_ids, encode_scales};
use blindscore_common::params::DEFAULT_PARAMS;
use blindscore_common::{Layout, LayoutChoice, QuantizedCatalog};
use blindscore_server::{CatalogSource, ServedCatalog};

pub const ITEMS: usize = 40;
pub const DIMENSION: usize = 4;
pub const NAME: &str = "fuzz";

pub struct Fixture {
    pub served: ServedCatalog,
    pub prepared: PreparedCatalog,
    pub artifacts: Artifacts,
}

/// The tiny catalog: 40 items x 4 dims of 8-bit values, column layout.
pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let values: Vec<i16> = (0..ITEMS * DIMENSION)
            .map(|i| ((i * 37) % 255) as i16 - 127)
            .collect();
        let catalog = QuantizedCatalog::new(DIMENSION, 8, values).expect("valid catalog");
        let scales: Vec<f32> = (0..ITEMS).map(|i| 0.01 + i as f32 * 1e-4).collect();
        let served = ServedCatalog::build(
            &CatalogSource {
                catalog_id: NAME,
                params: DEFAULT_PARAMS,
                catalog: &catalog,
                scales: &scales,
                query_bits: 8,
                layout: LayoutChoice::Fixed(Layout::Column),
                item_data: &[],
            },
            &|_, _, _| {},
        )
        .expect("the fixture fits the budget");
        let ids: Vec<String> = (0..ITEMS).map(|i| format!("item-{i}")).collect();
        let artifacts = Artifacts {
            description: blindscore_common::wire::encode(served.description()),
            hint: served.hint_message().to_vec(),
            ids: encode_ids(&ids),
            scales: encode_scales(&scales),
        };
        let prepared = PreparedCatalog::check(NAME, space(), &artifacts, &Limits::default())
            .expect("the fixture's artefacts are valid");
        Fixture {
            served,
            prepared,
            artifacts,
        }
    })
}

/// The fixture's declared embedding space.
pub fn space() -> EmbeddingSpace {
    EmbeddingSpace {
        model: "m".into(),
        dimension: DIMENSION,
        normalisation: Normalisation::L2,
        metric: Metric::Cosine,
    }
}

/// With `BLINDSCORE_WRITE_SEEDS=DIR`, write the seeds into DIR and exit.
pub fn write_seeds_if_asked(seeds: impl FnOnce() -> Vec<Vec<u8>>) {
    let Some(dir) = std::env::var_os("BLINDSCORE_WRITE_SEEDS") else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    std::fs::create_dir_all(&dir).expect("create the seed directory");
    for (i, seed) in seeds().iter().enumerate() {
        std::fs::write(dir.join(format!("seed-{i}")), seed).expect("write a seed");
    }
    std::process::exit(0);
}

/// Split fuzz input into `N` parts: each part is prefixed by its length (u16 LE) except
/// the last, which takes the rest.
pub fn split<const N: usize>(mut data: &[u8]) -> [&[u8]; N] {
    let mut parts = [&[][..]; N];
    for part in parts.iter_mut().take(N - 1) {
        if data.len() < 2 {
            return parts;
        }
        let len = (u16::from_le_bytes([data[0], data[1]]) as usize).min(data.len() - 2);
        *part = &data[2..2 + len];
        data = &data[2 + len..];
    }
    parts[N - 1] = data;
    parts
}

/// The inverse of [`split`], for seeds.
pub fn join(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        if i + 1 < parts.len() {
            out.extend_from_slice(&(part.len().min(u16::MAX as usize) as u16).to_le_bytes());
        }
        out.extend_from_slice(part);
    }
    out
}
