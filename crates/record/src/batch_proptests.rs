//! Property tests of [`Batch`]: build-then-parse round trip, every truncation, every bit
//! flip, and garbage (raw, and behind a correct length and CRC) never panics.
//!
//! proptest prints the seed of a failing case and stores it under `proptest-regressions/`.

#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use proptest::prelude::*;

use super::tests::{forge, put_i64, reseal};
use super::*;
use crate::header::{BASE_OFFSET_POS, BASE_TIMESTAMP_POS, LEADER_EPOCH_POS, MAX_TIMESTAMP_POS};
use crate::{BatchBuilder, Header, NewRecord, stamp_base_offset, stamp_leader_epoch};

fn arb_bytes(max_len: usize) -> impl Strategy<Value = Option<Bytes>> {
    prop::option::of(prop::collection::vec(any::<u8>(), 0..max_len).prop_map(Bytes::from))
}

fn arb_header() -> impl Strategy<Value = Header> {
    (".{0,8}", arb_bytes(16)).prop_map(|(key, value)| Header { key, value })
}

/// Timestamps within ±2^61 so any difference fits an i64.
const TIMESTAMP_SPAN: i64 = 1 << 61;

fn arb_record() -> impl Strategy<Value = NewRecord> {
    (
        prop_oneof![
            Just(0i64),
            -TIMESTAMP_SPAN..TIMESTAMP_SPAN,
            1_600_000_000_000i64..1_800_000_000_000
        ],
        arb_bytes(40),
        prop_oneof![arb_bytes(40), arb_bytes(20_000)],
        prop::collection::vec(arb_header(), 0..4),
    )
        .prop_map(|(timestamp, key, value, headers)| NewRecord {
            timestamp,
            key,
            value,
            headers,
        })
}

#[derive(Debug, Clone)]
struct BatchInput {
    records: Vec<NewRecord>,
    producer: Option<(i64, i16, i32)>,
    log_append_time: Option<i64>,
}

fn arb_batch_input(max_records: usize) -> impl Strategy<Value = BatchInput> {
    (
        prop::collection::vec(arb_record(), 1..max_records),
        prop::option::of((0i64..i64::MAX, 0i16..i16::MAX, 0i32..i32::MAX)),
        prop::option::of(any::<i64>()),
    )
        .prop_map(|(records, producer, log_append_time)| BatchInput {
            records,
            producer,
            log_append_time,
        })
}

fn build_input(input: &BatchInput) -> Bytes {
    let mut builder = BatchBuilder::new();
    if let Some((id, epoch, sequence)) = input.producer {
        builder = builder.with_producer(id, epoch, sequence);
    }
    if let Some(append_time) = input.log_append_time {
        builder = builder.with_log_append_time(append_time);
    }
    for record in &input.records {
        builder.append(record).unwrap();
    }
    builder.build()
}

/// Parses and reads every record; a parsed batch must iterate exactly its count.
fn parse_and_walk(bytes: Bytes) -> Result<Batch, RecordError> {
    let batch = Batch::parse(bytes)?;
    let mut expected_offset = batch.base_offset();
    for record in batch.records() {
        assert_eq!(record.offset, expected_offset);
        expected_offset += 1;
    }
    assert_eq!(expected_offset, batch.next_offset());
    let _ = batch.first_offset_at_or_after_timestamp(0);
    Ok(batch)
}

proptest! {
    // (a) Whatever the builder writes, the reader reads back.
    #[test]
    fn build_then_parse_round_trips(input in arb_batch_input(20), base_offset in 0i64..1 << 60, epoch: i32) {
        let mut bytes = build_input(&input).to_vec();
        stamp_base_offset(&mut bytes, base_offset);
        stamp_leader_epoch(&mut bytes, epoch);
        let batch = Batch::parse(Bytes::from(bytes)).unwrap();
        prop_assert_eq!(batch.record_count() as usize, input.records.len());
        prop_assert_eq!(batch.base_offset(), base_offset);
        prop_assert_eq!(batch.partition_leader_epoch(), epoch);
        let (id, producer_epoch, sequence) = input.producer.unwrap_or((-1, -1, -1));
        prop_assert_eq!((batch.producer_id(), batch.producer_epoch(), batch.base_sequence()), (id, producer_epoch, sequence));
        prop_assert_eq!(batch.base_timestamp(), input.records[0].timestamp);
        let max_create_time = input.records.iter().map(|record| record.timestamp).max().unwrap();
        let records: Vec<Record> = batch.records().collect();
        prop_assert_eq!(records.len(), input.records.len());
        for (index, (read, written)) in records.iter().zip(&input.records).enumerate() {
            prop_assert_eq!(read.offset, base_offset + index as i64);
            let timestamp = input.log_append_time.unwrap_or(written.timestamp);
            prop_assert_eq!(read.timestamp, timestamp);
            prop_assert_eq!(&read.key, &written.key);
            prop_assert_eq!(&read.value, &written.value);
            prop_assert_eq!(&read.headers, &written.headers);
        }
        match input.log_append_time {
            Some(append_time) => prop_assert_eq!(batch.max_timestamp(), append_time),
            None => {
                prop_assert_eq!(batch.max_timestamp(), max_create_time);
                // The time lookup agrees with a linear search.
                for probe in input.records.iter().map(|record| record.timestamp) {
                    let expected = records.iter().find(|record| record.timestamp >= probe).map(|record| record.offset);
                    prop_assert_eq!(batch.first_offset_at_or_after_timestamp(probe), expected);
                }
            }
        }
    }

    // (b) Every truncation of a valid batch is an error, never a panic.
    #[test]
    fn every_truncation_is_an_error(input in arb_batch_input(6)) {
        let bytes = build_input(&input);
        for len in 0..bytes.len() {
            prop_assert!(Batch::parse(bytes.slice(..len)).is_err(), "prefix of {} bytes parsed", len);
            prop_assert!(Batch::parse_prefix(bytes.slice(..len)).is_err());
        }
    }

    // (d) Random garbage never panics.
    #[test]
    fn garbage_never_panics(garbage in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = parse_and_walk(Bytes::from(garbage.clone()));
        let _ = Batch::parse_prefix(Bytes::from(garbage));
    }

    // (d) Garbage behind a header with a correct length and CRC reaches the record parser.
    #[test]
    fn sealed_garbage_never_panics(count in 1i32..8, timestamps: (i64, i64), records in prop::collection::vec(any::<u8>(), 0..200)) {
        let mut buf = forge(count, &records);
        put_i64(&mut buf, BASE_TIMESTAMP_POS, timestamps.0);
        put_i64(&mut buf, MAX_TIMESTAMP_POS, timestamps.1);
        reseal(&mut buf);
        let _ = parse_and_walk(Bytes::from(buf));
    }

    // (d) Random edits of a valid batch, resealed so they reach the record parser.
    #[test]
    fn resealed_mutations_never_panic(
        input in arb_batch_input(4),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let mut buf = build_input(&input).to_vec();
        for (index, byte) in edits {
            let position = BATCH_HEADER_LEN + index.index(buf.len() - BATCH_HEADER_LEN);
            buf[position] = byte;
        }
        reseal(&mut buf);
        let _ = parse_and_walk(Bytes::from(buf));
    }
}

proptest! {
    // Each case tries every bit of the batch, so fewer cases.
    #![proptest_config(ProptestConfig::with_cases(48))]

    // (c) A single-bit flip is an error, except in the base offset and leader epoch (outside the
    // CRC), where the batch still parses and reads the flipped value.
    #[test]
    fn every_bit_flip_is_an_error_outside_the_stamped_fields(input in arb_batch_input(4)) {
        let good = build_input(&input).to_vec();
        let reference = Batch::parse(Bytes::from(good.clone())).unwrap();
        let reference_records: Vec<Record> = reference.records().collect();
        for position in 0..good.len() {
            for bit in 0..8 {
                let mut buf = good.clone();
                buf[position] ^= 1 << bit;
                let stamped = (BASE_OFFSET_POS..BASE_OFFSET_POS + 8).contains(&position)
                    || (LEADER_EPOCH_POS..LEADER_EPOCH_POS + 4).contains(&position);
                match parse_and_walk(Bytes::from(buf.clone())) {
                    Ok(batch) => {
                        prop_assert!(stamped, "flip of bit {} at byte {} parsed", bit, position);
                        let base_offset = i64::from_be_bytes(buf[0..8].try_into().unwrap());
                        prop_assert_eq!(batch.base_offset(), base_offset);
                        let records: Vec<Record> = batch.records().collect();
                        for (read, reference) in records.iter().zip(&reference_records) {
                            prop_assert_eq!(read.offset, base_offset + reference.offset);
                            prop_assert_eq!(&read.value, &reference.value);
                        }
                    }
                    Err(error) => prop_assert!(!stamped, "flip at stamped byte {} failed: {}", position, error),
                }
            }
        }
    }
}
