use blindscore_common::fourier::{c64, NegacyclicFft};
use std::time::Instant;
fn main() {
    let n = 2048;
    let mut fft = NegacyclicFft::new(n);
    let four: Vec<c64> = (0..n / 2)
        .map(|i| c64::new(i as f64 * 1e10, -(i as f64) * 3e9))
        .collect();
    let mut poly = vec![0u64; n];
    let reps = 20000;
    let t = Instant::now();
    for _ in 0..reps {
        fft.backward_torus(&mut poly, std::hint::black_box(&four));
    }
    println!(
        "backward {:.2} us",
        t.elapsed().as_secs_f64() / reps as f64 * 1e6
    );
    let mut out = vec![c64::new(0.0, 0.0); n / 2];
    let t = Instant::now();
    for _ in 0..reps {
        fft.forward_torus(&mut out, std::hint::black_box(&poly));
    }
    println!(
        "forward {:.2} us",
        t.elapsed().as_secs_f64() / reps as f64 * 1e6
    );
    let mut bytes = vec![0u8; n * 3];
    let t = Instant::now();
    for _ in 0..reps {
        let words = poly
            .iter()
            .map(|&w| blindscore_common::encoding::torus_to_word(w, 24));
        blindscore_common::bitpack::pack_into(words, 24, std::hint::black_box(&mut bytes));
    }
    println!(
        "pack24 {:.2} us",
        t.elapsed().as_secs_f64() / reps as f64 * 1e6
    );
    variants(&poly);
}
#[allow(dead_code)]
fn variants(poly: &[u64]) {
    use blindscore_common::bitpack::pack_into;
    use blindscore_common::encoding::torus_to_word;
    let mut bytes = vec![0u8; 2048 * 3];
    let reps = 20000;
    let b = std::hint::black_box(1usize);
    let t = Instant::now();
    for _ in 0..reps {
        let words = (0..2048).map(|t| torus_to_word(poly[t * b + b - 1], 24));
        pack_into(words, 24, std::hint::black_box(&mut bytes));
    }
    println!(
        "index map {:.2} us",
        t.elapsed().as_secs_f64() / reps as f64 * 1e6
    );
    let t = Instant::now();
    for _ in 0..reps {
        let words = poly[b - 1..]
            .iter()
            .step_by(b)
            .take(2048)
            .map(|&c| torus_to_word(c, 24));
        pack_into(words, 24, std::hint::black_box(&mut bytes));
    }
    println!(
        "step_by {:.2} us",
        t.elapsed().as_secs_f64() / reps as f64 * 1e6
    );
}
