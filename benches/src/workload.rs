//! The workloads: the storage benchmarks write 1 KiB records in 64 KiB batches; the replication
//! harness writes keyed 1 KiB records in batches of 1 or a few records ([`keyed_batches`]).

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
        stamped: false,
        verified: false,
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

/// Bytes of each record's key in the replication workload.
pub const KEY_BYTES: usize = 16;

/// Bytes of each record's value in the replication workload (1 KiB).
pub const KEYED_VALUE_BYTES: usize = 1024;

/// `count` distinct producer batches of `records_per_batch` records each, built with
/// [`BatchBuilder`] as a producer would (no producer id, so not idempotent): every record has a
/// [`KEY_BYTES`] key and a [`KEYED_VALUE_BYTES`] value of pseudo-random bytes from `seed`, and
/// the timestamp `timestamp_ms`.
pub fn keyed_batches(
    records_per_batch: usize,
    count: usize,
    seed: u64,
    timestamp_ms: i64,
) -> Vec<Bytes> {
    let mut state = seed;
    let mut bytes = |n: usize| -> Bytes {
        let mut v = Vec::with_capacity(n);
        while v.len() < n {
            v.extend_from_slice(&splitmix64(&mut state).to_le_bytes());
        }
        v.truncate(n);
        Bytes::from(v)
    };
    (0..count)
        .map(|_| {
            let mut builder = BatchBuilder::new();
            for _ in 0..records_per_batch {
                let record = NewRecord::new(
                    timestamp_ms,
                    Some(bytes(KEY_BYTES)),
                    Some(bytes(KEYED_VALUE_BYTES)),
                );
                builder
                    .append(&record)
                    .expect("a batch of a few 1 KiB records is far below every batch limit");
            }
            builder.build()
        })
        .collect()
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

    #[test]
    fn keyed_batches_are_distinct_and_parse() {
        let batches = keyed_batches(16, 3, 7, 1_700_000_000_000);
        assert_eq!(batches.len(), 3);
        assert_ne!(batches[0], batches[1]);
        for b in batches {
            assert!((16 * 1040..16 * 1100).contains(&b.len()), "{}", b.len());
            let parsed = strata_record::Batch::parse(b).expect("the builder makes valid batches");
            assert_eq!(parsed.record_count(), 16);
        }
    }
}
