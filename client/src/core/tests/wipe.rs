//! Secrets are really wiped: this test binary's allocator scans every block freed during a
//! full seal and open (under a fixed key and a fixed noise seed) for the key, its
//! transform, and the noise generator's output, and the test fails if any is found. Plain
//! zeroing stores right before a free are removed by the optimiser, and the tests run
//! optimised, so only volatile wipes (`zeroize`) pass.

#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout as AllocLayout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use blindscore_common::digest::CatalogVersion;
use blindscore_common::fourier::{c64, NegacyclicFft};
use blindscore_common::masks::Masks;
use blindscore_common::params::DEFAULT_PARAMS;
use blindscore_common::wire::{self, CatalogRef, WIRE_VERSION};
use blindscore_common::{bitpack, CatalogShape, Layout, LayoutChoice, QuantizedCatalog};
use blindscore_server::scan::{hint, Evaluator, FourierCatalog};
use chacha20::rand_core::{Rng, SeedableRng};

use super::SplitMix;
use crate::core::key::SecretKey;
use crate::core::noise::NoiseSource;
use crate::core::PreparedCatalog;

/// Frees scanned while armed, for the byte patterns in `PATTERNS`.
struct ScanningAllocator;

static ARMED: AtomicBool = AtomicBool::new(false);
static FOUND: AtomicUsize = AtomicUsize::new(0);
static PATTERNS: OnceLock<Vec<(&'static str, Vec<u8>)>> = OnceLock::new();
/// One armed test at a time.
static SERIAL: Mutex<()> = Mutex::new(());

#[global_allocator]
static ALLOCATOR: ScanningAllocator = ScanningAllocator;

// SAFETY: every call is passed on to the system allocator unchanged; the scan only reads
// the block being freed, which is valid for `layout.size()` bytes until it is passed on.
unsafe impl GlobalAlloc for ScanningAllocator {
    unsafe fn alloc(&self, layout: AllocLayout) -> *mut u8 {
        // SAFETY: the caller's contract is System's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: AllocLayout) {
        if ARMED.load(Ordering::SeqCst) {
            if let Some(patterns) = PATTERNS.get() {
                // SAFETY: `ptr` is a live block of `layout.size()` bytes (the caller's
                // contract for dealloc), read before it is freed.
                let block = unsafe { std::slice::from_raw_parts(ptr, layout.size()) };
                for (_, pattern) in patterns {
                    if block
                        .windows(pattern.len())
                        .any(|w| w == pattern.as_slice())
                    {
                        FOUND.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
        }
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

const NOISE_SEED: [u8; 32] = *b"blindscore wipe test noise seed!";

/// A preference vector whose largest value quantizes to 127 (scale 1/127), and its values.
const PREFERENCES: [f32; 16] = [
    1.0, -0.5, 0.25, 0.75, -1.0, 0.125, 0.5, -0.25, 0.375, -0.625, 0.875, -0.875, 0.0625, -0.0625,
    0.9375, -0.3125,
];
const QUANTIZED: [i32; 16] = [
    127, -64, 32, 95, -127, 16, 64, -32, 48, -79, 111, -111, 8, -8, 119, -40,
];

fn key_bits() -> Vec<u64> {
    let mut rng = SplitMix(2024);
    (0..2048).map(|_| rng.next() & 1).collect()
}

fn as_bytes(words: &[u64]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// The byte patterns of the secrets of one query under the fixed key and noise seed.
fn patterns() -> &'static [(&'static str, Vec<u8>)] {
    PATTERNS.get_or_init(|| {
        let bits = key_bits();
        let mut fft = NegacyclicFft::new(2048);
        let mut transform = vec![c64::new(0.0, 0.0); 1024];
        fft.forward_integer(&mut transform, &bits);
        let transform: Vec<u8> = transform[..8]
            .iter()
            .flat_map(|c| [c.re.to_le_bytes(), c.im.to_le_bytes()].concat())
            .collect();
        // The generator's stream, as far as one query under the fixture draws it: its first
        // bytes, and the last block, which its output buffer holds at the end.
        let drawn = 16 * 2048 * 3;
        let mut stream = chacha20::ChaCha20Rng::from_seed(NOISE_SEED);
        let mut raw = vec![0u8; drawn];
        stream.fill_bytes(&mut raw);
        let mut noise = vec![0u64; 16];
        NoiseSource::from_seed(&NOISE_SEED, 17).fill(&mut noise);
        let preferences: Vec<u8> = PREFERENCES.iter().flat_map(|v| v.to_le_bytes()).collect();
        let quantized: Vec<u8> = QUANTIZED.iter().flat_map(|v| v.to_le_bytes()).collect();
        vec![
            ("the key's first 32 coefficients", as_bytes(&bits[..32])),
            ("the key's last 32 coefficients", as_bytes(&bits[2016..])),
            ("the key's transform", transform),
            ("the noise generator's seed (its key)", NOISE_SEED.to_vec()),
            ("the noise generator's first 48 bytes", raw[..48].to_vec()),
            (
                "the noise generator's last block",
                raw[drawn - 64..].to_vec(),
            ),
            ("the first 16 noise values", as_bytes(&noise)),
            ("the preference vector", preferences),
            ("the quantized preference vector", quantized),
        ]
    })
}

/// A small worst-case catalog, its prepared client side and the server's evaluator.
fn fixture() -> (QuantizedCatalog, CatalogShape, PreparedCatalog, CatalogRef) {
    let d = 16;
    let mut rng = SplitMix(3);
    let values: Vec<i16> = (0..2100 * d).map(|_| rng.sign(127) as i16).collect();
    let catalog = QuantizedCatalog::new(d, 8, values).unwrap();
    let shape = CatalogShape::for_catalog(
        DEFAULT_PARAMS,
        &catalog,
        8,
        LayoutChoice::Fixed(Layout::Column),
    )
    .unwrap();
    let r = CatalogRef {
        param_id: DEFAULT_PARAMS.id,
        catalog_id: "wipe".into(),
        version: CatalogVersion([5; 32]),
    };
    let masks = Masks::derive(
        DEFAULT_PARAMS,
        &r.catalog_id,
        &r.version,
        shape.geometry.groups(),
    );
    let exact = hint::exact_hint(&shape, &catalog, &masks, &|_, _| {});
    let prepared = PreparedCatalog::from_parts(r.clone(), shape, &hint::hint_words(&shape, &exact));
    (catalog, shape, prepared, r)
}

#[test]
fn no_freed_block_holds_the_key_its_transform_or_the_noise() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let patterns = patterns();
    let (catalog, shape, prepared, r) = fixture();
    let fourier = FourierCatalog::build(&shape, &catalog, &|_, _| {});
    let evaluator = Evaluator::new(&shape, &fourier);
    let query: Vec<i32> = (0..16).map(|i| (i * 17 % 255) - 127).collect();

    // The scanner works: a freed copy of the key is found.
    FOUND.store(0, Ordering::SeqCst);
    ARMED.store(true, Ordering::SeqCst);
    drop(std::hint::black_box(key_bits()));
    ARMED.store(false, Ordering::SeqCst);
    assert!(
        FOUND.swap(0, Ordering::SeqCst) >= 1,
        "the scan found nothing"
    );

    // A full seal and open, with the scan on for every free along the way.
    let key = SecretKey::from_bits(key_bits());
    ARMED.store(true, Ordering::SeqCst);
    let noise = NoiseSource::from_seed(&NOISE_SEED, DEFAULT_PARAMS.noise_bound_log2);
    let (bodies, sealed) = prepared
        .seal_with_key(
            key,
            move |out| {
                let mut noise = noise;
                noise.fill(out)
            },
            &query,
        )
        .unwrap();
    let words = evaluator.score_one(&r, &sealed.bytes).unwrap();
    let response = wire::encode(&blindscore_common::ResponseMessage {
        wire_version: WIRE_VERSION,
        catalog: r,
        scores: bitpack::pack(&words, shape.budget.response_bits()),
    });
    let scores = sealed.pending.decrypt(&prepared, &response).unwrap();
    drop((bodies, words, response));
    // The float path too: the preference vector and its quantized values are wiped once
    // encrypted (under a fresh key and fresh noise here).
    let preferences = std::hint::black_box(PREFERENCES);
    let floated = prepared.seal(&preferences, None).unwrap();
    let words = evaluator
        .score_one(prepared.catalog(), &floated.bytes)
        .unwrap();
    let response = wire::encode(&blindscore_common::ResponseMessage {
        wire_version: WIRE_VERSION,
        catalog: prepared.catalog().clone(),
        scores: bitpack::pack(&words, shape.budget.response_bits()),
    });
    let float_scores = floated.pending.decrypt(&prepared, &response).unwrap();
    drop((words, response));
    ARMED.store(false, Ordering::SeqCst);
    assert_eq!(scores, catalog.plaintext_scores(&query));
    assert_eq!(float_scores, catalog.plaintext_scores(&QUANTIZED));
    let found = FOUND.load(Ordering::SeqCst);
    assert_eq!(
        found,
        0,
        "{found} freed blocks held one of: {:?}",
        patterns.iter().map(|(what, _)| *what).collect::<Vec<_>>()
    );
}
