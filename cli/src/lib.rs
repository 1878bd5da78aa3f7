//! The `blindscore` command-line tool (its binary is `blindscore`: `rank`, `eval`, `demo`),
//! and the ranking-quality measure its `eval` reports, which the suite's tests use too.

#![forbid(unsafe_code)]

pub mod quality;
