//! The benchmarks' plaintext reference scan (AVX-512 VNNI where the CPU has it) against
//! scalar dot products: every encrypted timing is compared with it.

#[path = "../benches/support/plaintext.rs"]
mod plaintext;
