//! The embedded demo catalog: **synthetic**, clearly labelled as such. 20,000 items in 64
//! dimensions drawn around 40 topic centres, so a user near a topic gets that topic's items
//! first and a person can see the ranking make sense. Deterministic, so every run and every
//! restart yields the same catalog version.

use blindscore_common::quant::quantize;
use blindscore_common::QuantizedCatalog;

/// Items in the demo catalog.
pub const DEMO_ITEMS: usize = 20_000;
/// Dimension of the demo catalog.
pub const DEMO_DIMENSION: usize = 64;
/// Topics the items are drawn around.
pub const DEMO_TOPICS: usize = 40;

/// The demo catalog: item names and unit-norm float embeddings.
pub struct DemoCatalog {
    /// "synthetic/topic-07/item-00042"-style names.
    pub ids: Vec<String>,
    /// Row-major float embeddings, DEMO_ITEMS x DEMO_DIMENSION, each row of norm 1.
    pub embeddings: Vec<f32>,
}

struct Rng(u64);

impl Rng {
    /// Approximately standard normal (sum of uniforms).
    fn normal(&mut self) -> f32 {
        let mut s = 0.0;
        for _ in 0..12 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            s += (self.0 >> 11) as f64 / (1u64 << 53) as f64;
        }
        (s - 6.0) as f32
    }
}

fn normalise(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// A topic's centre (unit norm).
pub fn topic_centre(topic: usize) -> Vec<f32> {
    let mut rng = Rng(0x5eed_0000 + topic as u64);
    let mut c: Vec<f32> = (0..DEMO_DIMENSION).map(|_| rng.normal()).collect();
    normalise(&mut c);
    c
}

/// Build the demo catalog.
pub fn demo_catalog() -> DemoCatalog {
    let centres: Vec<Vec<f32>> = (0..DEMO_TOPICS).map(topic_centre).collect();
    let mut rng = Rng(0xb11d_5c0e);
    let mut ids = Vec::with_capacity(DEMO_ITEMS);
    let mut embeddings = Vec::with_capacity(DEMO_ITEMS * DEMO_DIMENSION);
    for i in 0..DEMO_ITEMS {
        let topic = i % DEMO_TOPICS;
        let spread = 0.15 + 0.25 * ((i / DEMO_TOPICS) % 4) as f32 / 3.0;
        let mut v: Vec<f32> = centres[topic]
            .iter()
            .map(|c| c + spread * rng.normal() / (DEMO_DIMENSION as f32).sqrt())
            .collect();
        normalise(&mut v);
        embeddings.extend_from_slice(&v);
        ids.push(format!("synthetic/topic-{topic:02}/item-{i:05}"));
    }
    DemoCatalog { ids, embeddings }
}

/// Quantize float rows to `bits`-bit integers with one scale for the whole catalog.
pub fn quantize_catalog(
    embeddings: &[f32],
    dimension: usize,
    bits: u32,
) -> (QuantizedCatalog, f64) {
    let q = quantize(embeddings, bits);
    let values = q.values.iter().map(|&v| v as i16).collect();
    let catalog =
        QuantizedCatalog::new(dimension, bits, values).expect("quantized values fit their width");
    (catalog, q.scale)
}
