//! Child process for the process-kill test: opens a log, appends deterministic entries and
//! syncs in a loop, printing `synced <index>` after each completed sync, until killed.

use anyhow::Context;
use std::io::Write;
use std::sync::Arc;
use strata_log::{EntryKind, Flusher, Log, LogConfig, LogIndex, NewEntry, RealDisk};

fn main() -> anyhow::Result<()> {
    let dir = std::env::args().nth(1).context("usage: log_writer DIR")?;
    let flusher = Flusher::start("child")?;
    let config = LogConfig {
        segment_bytes_max: 64 * 1024,
        preallocate_bytes_step: 16 * 1024,
        preallocate_bytes_min: 16 * 1024,
        ..LogConfig::default()
    };
    let mut log = Log::open(&dir, config, Arc::new(RealDisk), &flusher.handle())?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "opened {}", log.next_index())?;
    loop {
        let start = log.next_index().get();
        let batches: Vec<_> = (start..start + 4).map(strata_tests::payload_for).collect();
        let entries: Vec<NewEntry<'_>> = batches
            .iter()
            .enumerate()
            .map(|(i, b)| NewEntry {
                term: 1,
                index: LogIndex::new(start + i as u64),
                kind: EntryKind::Data,
                payload: b,
                stamped: false,
                verified: false,
            })
            .collect();
        log.append(&entries)?;
        log.flush_wait()?;
        writeln!(out, "synced {}", start + 3)?;
        out.flush()?;
    }
}
