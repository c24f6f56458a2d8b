//! The workload every storage benchmark writes: 1 KiB records in 64 KiB batches.

use bytes::Bytes;
use strata_log::{EntryKind, Log, LogConfig, NewEntry};
use strata_record::{BatchBuilder, NewRecord};

/// Records in one batch.
pub const RECORDS_PER_BATCH: usize = 64;

/// Bytes of each record's value (no key, no headers): with its varint framing a record takes
/// about 1 KiB, so a batch is about 64 KiB.
pub const VALUE_BYTES: usize = 1000;

/// One gibibyte.
pub const GIB: u64 = 1 << 30;

/// One mebibyte.
pub const MIB: u64 = 1 << 20;

/// Builds the batch the benchmarks append: [`RECORDS_PER_BATCH`] records whose values are
/// [`VALUE_BYTES`] of pseudo-random bytes (so nothing along the way can shortcut runs of
/// zeros), with increasing timestamps.
pub fn record_batch() -> Bytes {
    let mut state = 0x5eed_u64;
    let mut builder = BatchBuilder::new();
    for i in 0..RECORDS_PER_BATCH {
        let value: Vec<u8> = (0..VALUE_BYTES)
            .map(|_| (splitmix64(&mut state) >> 56) as u8)
            .collect();
        let record = NewRecord::new(1_700_000_000_000 + i as i64, None, Some(Bytes::from(value)));
        builder
            .append(&record)
            .expect("a 64-record batch of 1000-byte values is far below every batch limit");
    }
    builder.build()
}

/// The log configuration of the benchmarks: the defaults with a 1 GiB segment, so a benchmark
/// that stays under 1 GiB per log never rolls and a 1 GiB log is one segment.
pub fn log_config() -> LogConfig {
    LogConfig {
        segment_bytes_max: GIB,
        ..LogConfig::default()
    }
}

/// The data entry that appends `payload` (a record batch) at the log's next index, term 1.
pub fn next_entry<'a>(log: &Log, payload: &'a [u8]) -> NewEntry<'a> {
    NewEntry {
        term: 1,
        index: log.next_index(),
        kind: EntryKind::Data,
        payload,
    }
}

/// Bytes one entry of `payload_len` bytes takes in a segment (48-byte frame header included).
pub fn frame_len(payload_len: usize) -> u64 {
    (strata_log::frame::FRAME_HEADER_LEN + payload_len) as u64
}

/// Appends `batch` until the log holds `bytes_max` bytes of frames (without passing it) or
/// `entries_multiple_of` would be broken; returns the number of entries appended.
///
/// The entry count is rounded down to a multiple of `entries_multiple_of` (use 1 for none),
/// so readers that take a fixed number of entries per call see the same count every time.
pub fn fill_log(
    log: &mut Log,
    batch: &[u8],
    bytes_max: u64,
    entries_multiple_of: u64,
) -> strata_log::Result<u64> {
    let per_entry = frame_len(batch.len());
    let entries = bytes_max / per_entry / entries_multiple_of * entries_multiple_of;
    for _ in 0..entries {
        let entry = next_entry(log, batch);
        log.append(&[entry])?;
    }
    Ok(entries)
}

/// The splitmix64 generator: a few lines, no dependency, good enough for filler bytes and
/// random offsets.
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_batch_is_about_64_kib_and_parses() {
        let batch = record_batch();
        assert!(
            (63 * 1024..=65 * 1024).contains(&batch.len()),
            "{}",
            batch.len()
        );
        let parsed = strata_record::Batch::parse(batch).expect("the builder makes valid batches");
        assert_eq!(parsed.record_count(), RECORDS_PER_BATCH as i32);
    }
}
