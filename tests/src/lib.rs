//! Shared helpers for Strata's integration tests.
//!
//! - [`memnet`]: an in-memory Raft transport with per-link faults.
//! - [`cluster`]: an in-process cluster harness with invariant checkers.
//! - [`schedule`]: randomized fault schedules from a seed, played against a [`cluster`].
//! - [`nodes`]: an in-process cluster of whole nodes (controller, broker, gRPC) built on
//!   `strata_node::World`, with simulated disks and link faults.
//! - [`workload`]: client-side workloads and checks for the node-level tests.

pub mod cluster;
pub mod memnet;
pub mod nodes;
pub mod schedule;
pub mod workload;

use bytes::Bytes;
use strata_record::{BatchBuilder, NewRecord};

/// The deterministic record batch stored at Raft index `index` by the process-kill test's
/// writer, so the test can check every entry it finds.
pub fn payload_for(index: u64) -> Bytes {
    let mut b = BatchBuilder::new();
    for r in 0..(1 + index % 3) {
        let value: Vec<u8> = (0..(100 + index % 300))
            .map(|j| (index + j + r) as u8)
            .collect();
        let _ = b.append(&NewRecord::new(
            index as i64,
            Some(Bytes::from(format!("key-{index}-{r}"))),
            Some(Bytes::from(value)),
        ));
    }
    b.build()
}

/// The seed of a randomized test: `STRATA_TEST_SEED` if set, else the clock. Printed, so a
/// failure can be replayed.
pub fn test_seed() -> u64 {
    let seed = std::env::var("STRATA_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    println!("seed {seed} (rerun with STRATA_TEST_SEED={seed})");
    seed
}
