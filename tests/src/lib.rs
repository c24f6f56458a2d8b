//! Shared helpers for Strata's integration tests.
//!
//! - [`memnet`]: an in-memory Raft transport with per-link faults.
//! - [`cluster`]: an in-process cluster harness with invariant checkers.

pub mod cluster;
pub mod memnet;

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
