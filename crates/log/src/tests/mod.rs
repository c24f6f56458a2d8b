//! Tests of the log: behaviour, a model test, damage, faults and concurrency.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod basic;
mod concurrency;
mod damage;
mod faults;
mod model;

use crate::sim::SimDisk;
use crate::{Disk, EntryKind, Flusher, Log, LogConfig, LogId, LogIndex, NewEntry, Offset};
use bytes::Bytes;
use std::sync::Arc;
use strata_record::{BatchBuilder, NewRecord};

/// A record batch of `records` records whose values are `value_len` bytes derived from `seed`.
pub(crate) fn batch(records: usize, value_len: usize, seed: u64, ts: i64) -> Bytes {
    let mut b = BatchBuilder::new();
    for i in 0..records {
        let v: Vec<u8> = (0..value_len)
            .map(|j| (seed as usize * 31 + i * 7 + j) as u8)
            .collect();
        b.append(&NewRecord::new(
            ts + i as i64,
            Some(Bytes::from(format!("k{seed}-{i}"))),
            Some(Bytes::from(v)),
        ))
        .unwrap();
    }
    b.build()
}

/// Small segments so tests cross every edge.
pub(crate) fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes_max: 4096,
        segment_ms_max: 0,
        preallocate_bytes_step: 4096,
        preallocate_bytes_min: 4096,
        index_interval_bytes: 256,
        entry_bytes_max: 64 * 1024,
    }
}

pub(crate) struct Harness {
    pub root: tempfile::TempDir,
    pub sim: Arc<SimDisk>,
    pub flusher: Flusher,
    pub config: LogConfig,
}

impl Harness {
    pub fn new(config: LogConfig) -> Harness {
        let root = tempfile::tempdir().unwrap();
        let sim = Arc::new(SimDisk::new(root.path().join("trash")).unwrap());
        Harness {
            root,
            sim,
            flusher: Flusher::start("test").unwrap(),
            config,
        }
    }

    pub fn dir(&self) -> std::path::PathBuf {
        self.root.path().join("p0")
    }

    pub fn open(&self) -> crate::Result<Log> {
        let disk: Arc<dyn Disk> = self.sim.clone();
        Log::open(
            self.dir(),
            self.config.clone(),
            disk,
            &self.flusher.handle(),
        )
    }
}

/// Log index `i`.
pub(crate) fn ix(i: u64) -> LogIndex {
    LogIndex::new(i)
}

/// Offset `o`.
pub(crate) fn off(o: i64) -> Offset {
    Offset::new(o)
}

/// The log id (`term`, `index`).
pub(crate) fn lid(term: u64, index: u64) -> LogId {
    LogId {
        term,
        index: LogIndex::new(index),
    }
}

/// No upper bound on the offsets a read returns.
pub(crate) const NO_LIMIT: Offset = Offset::new(i64::MAX);

pub(crate) fn data<'a>(term: u64, index: u64, payload: &'a [u8]) -> NewEntry<'a> {
    NewEntry {
        term,
        index: LogIndex::new(index),
        kind: EntryKind::Data,
        payload,
        stamped: false,
        verified: false,
    }
}
