//! strata-benches: the storage benchmarks of Strata and the helpers they share.
//!
//! - [`workload`]: the record batch every benchmark writes (64 records of 1000-byte values, about
//!   64 KiB) and the log configuration they use.
//! - [`scratch`]: scratch directories on the real disk (under `target/bench-tmp`), preallocated
//!   files, and a page-cache residency probe (`mincore`).
//! - [`stats`]: latency percentiles from an hdrhistogram.
//!
//! The criterion throughput benches live in `benches/log.rs`; the latency harness is the binary
//! `src/bin/storage_latency.rs` with its scenarios and report beside it in
//! `src/bin/storage_latency/`. `docs/benchmarks.md` has the commands and the figures.

pub mod scratch;
pub mod stats;
pub mod workload;
