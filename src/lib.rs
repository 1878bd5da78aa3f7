//! The blindscore suite: the workspace's end-to-end tests (`tests/`: the real server on
//! loopback ports and the real client over HTTP), its criterion benchmarks (`benches/`,
//! each beside the plaintext integer dot products of the same data), and its examples
//! (`examples/`: the load test, the memory measurement, the benchmark report). This
//! library itself is empty; the crates it exercises are `blindscore-common`,
//! `blindscore-client`, `blindscore-server`, `blindscore-cli` and `blindscore-demo`.
