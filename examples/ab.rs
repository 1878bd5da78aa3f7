#[path = "../benches/support/mod.rs"]
mod support;

use blindscore_common::Layout;
use std::time::Instant;

fn main() {
    if let Ok(v) = std::env::var("MALLOPT") {
        let mb: i32 = v.parse().unwrap();
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, mb << 20);
            libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
        }
    }
    let items = 1_000_000;
    let d = 128;
    let data = support::Int8Catalog::new(items, d, 42 + d as u64);
    let (served, _) = support::serve(&data.quantized, Layout::Column);
    let prepared =
        blindscore_client::PreparedCatalog::new(served.description(), served.hint_message())
            .unwrap();
    let enc: Vec<Vec<u8>> = (0..16)
        .map(|i| {
            prepared
                .encrypt(&support::random_query(d, i as u64 + 7))
                .unwrap()
                .bytes
        })
        .collect();
    let refs: Vec<&[u8]> = enc.iter().map(|q| q.as_slice()).collect();
    let one = support::one_thread();
    let mut served = served;
    if std::env::var("PORTABLE").is_ok() {
        served.set_kernel(blindscore_server::Kernel::Portable);
    }
    let mut q1 = f64::MAX;
    let mut q16 = f64::MAX;
    let mut plain = f64::MAX;
    let query_i8 = support::random_query_i8(d, 3);
    let mut out = vec![0i32; items];
    for _ in 0..std::env::var("REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8)
    {
        if std::env::var("ONLY16").is_ok() {
            std::hint::black_box(one.install(|| served.score_encoded_batch(&refs)));
            continue;
        }
        let t = Instant::now();
        data.scan(&query_i8, &mut out);
        plain = plain.min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        std::hint::black_box(one.install(|| served.score_encoded_batch(&refs[..1])));
        q1 = q1.min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        std::hint::black_box(one.install(|| served.score_encoded_batch(&refs)));
        q16 = q16.min(t.elapsed().as_secs_f64() / 16.0);
    }
    println!(
        "{}: plain {:.2} ms, 1 query {:.2} ms, 16/pass {:.2} ms/q",
        std::env::args().nth(1).unwrap_or_default(),
        plain * 1e3,
        q1 * 1e3,
        q16 * 1e3
    );
}
