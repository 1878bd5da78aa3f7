//! No build of the published crate has a hook for chosen keys or noise: its features are
//! the HTTP layer and tfhe's AVX-512 kernels, nothing else (the known-answer hooks are
//! `cfg(test)` inside the crate).

#[test]
fn the_published_features_are_only_http_and_avx512() {
    let manifest = include_str!("../Cargo.toml");
    let features: Vec<&str> = manifest
        .split("\n[features]\n")
        .nth(1)
        .expect("a [features] table")
        .split("\n[")
        .next()
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split('=').next())
        .map(str::trim)
        .collect();
    assert_eq!(features, ["default", "avx512", "http"], "{manifest}");
}
