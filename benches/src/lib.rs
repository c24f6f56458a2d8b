//! strata-benches: the storage and replication benchmarks of Strata and the helpers they share.
//!
//! - [`workload`]: the record batch every storage benchmark writes (64 records of 1000-byte
//!   values, about 64 KiB), the log configuration they use, and the keyed 1 KiB records of the
//!   replication harness.
//! - [`scratch`]: scratch directories on the real disk (under `target/bench-tmp`), preallocated
//!   files, and a page-cache residency probe (`mincore`).
//! - [`stats`]: latency percentiles from an hdrhistogram.
//! - [`cpu`]: process CPU time (`getrusage`), CPU time by thread name, resident memory.
//! - [`counting_disk`]: the real file system with counters of fsyncs and writes.
//!
//! The criterion throughput benches live in `benches/log.rs`; the storage latency harness is
//! the binary `src/bin/storage_latency.rs` with its scenarios and report beside it in
//! `src/bin/storage_latency/`; the replication harness (three nodes in one process over the
//! real transport) is `src/bin/replication.rs` with its parts in `src/bin/replication/`.
//! `docs/benchmarks.md` has the commands and the figures.

pub mod counting_disk;
pub mod cpu;
pub mod scratch;
pub mod stats;
pub mod workload;
