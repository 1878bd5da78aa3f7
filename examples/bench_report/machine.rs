//! The report's opening: how to regenerate it, and the machine and its limits.

use crate::format::{command, Report};
use crate::records::{Machine, MachineLimits};

pub fn section(r: &mut Report, machine: &Machine, limits: &MachineLimits) {
    r.line("# Benchmarks");
    r.line("");
    r.line("Every figure here is a criterion median measured on the machine below, beside the");
    r.line(
        "plaintext int8 dot products of the same data in the same run and this machine's measured",
    );
    r.line("limits. Regenerate the whole file and its plots with one command:");
    r.line("");
    r.line("```sh");
    r.line("benches/run            # about 25 minutes on 2 cores; benches/run --quick: a few");
    r.line("```");
    r.line("");
    r.line(
        "It runs `cargo bench --bench scoring`, `--bench client` (with and without tfhe's AVX-512",
    );
    r.line("kernels), `--bench end_to_end`, the naive tfhe-rs route (`benches/naive`, its own");
    r.line(
        "workspace), `--bench layouts`, `--bench sharding` and `--bench throughput` (wrk), then `cargo run --release --example",
    );
    r.line("bench_report`. Each benchmark checks what");
    r.line("it times: decrypted scores must equal the plaintext integer dot products.");
    r.line("");
    r.line("## Machine");
    r.line("");
    r.line(format!(
        "- CPU: {} ({} hardware threads; {}){}",
        machine.cpu,
        machine.threads,
        machine.simd.join(", "),
        machine
            .memory_gib
            .map(|g| format!(", {g:.0} GiB memory"))
            .unwrap_or_default()
    ));
    r.line(format!(
        "- Measured limits, one thread: memory read **{:.1} GB/s**, **{:.1} G f64 FMA/s** (AVX-512)",
        limits.bandwidth_bytes_per_s / 1e9,
        limits.fma_per_s / 1e9
    ));
    r.line(format!(
        "- {}; blindscore commit {}; report written {}",
        command("rustc", &["--version"]),
        command("git", &["rev-parse", "--short", "HEAD"]),
        command("date", &["-u", "+%Y-%m-%d"])
    ));
    r.line("- A shared 2-core machine: run-to-run spread is ±10% or more; compare ratios measured");
    r.line("  in one run rather than absolute times across runs.");
    r.line("");
}
