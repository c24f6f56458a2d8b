//! Tests of [`Batch`] on hand-made batches, accepted and malformed, and the helpers that forge
//! them (shared with `batch_proptests.rs`).

#![allow(clippy::unwrap_used)]

use bytes::Bytes;

use super::*;
use crate::header::{
    ATTR_CONTROL, ATTR_DELETE_HORIZON, ATTR_TIMESTAMP_TYPE, ATTR_TRANSACTIONAL, ATTRIBUTES_POS,
    BASE_TIMESTAMP_POS, BATCH_LENGTH_POS, CRC_POS, LAST_OFFSET_DELTA_POS, LOG_OVERHEAD, MAGIC_POS,
    MAX_TIMESTAMP_POS, RECORD_COUNT_POS,
};
use crate::varint::encode_varint;
use crate::{BatchBuilder, Header, NewRecord, RecordFault, stamp_base_offset, stamp_leader_epoch};

// ---------------------------------------------------------------------------------------------
// Helpers

pub(super) fn value(text: &str) -> Option<Bytes> {
    Some(Bytes::copy_from_slice(text.as_bytes()))
}

/// A valid batch of records with timestamps `timestamps` and values "r0", "r1", ...
pub(super) fn build(timestamps: &[i64]) -> Vec<u8> {
    let mut builder = BatchBuilder::new();
    for (index, &timestamp) in timestamps.iter().enumerate() {
        let record = NewRecord::new(timestamp, value("key"), value(&format!("r{index}")));
        builder.append(&record).unwrap();
    }
    builder.build().to_vec()
}

pub(super) fn put_i16(buf: &mut [u8], pos: usize, value: i16) {
    buf[pos..pos + 2].copy_from_slice(&value.to_be_bytes());
}

pub(super) fn put_i32(buf: &mut [u8], pos: usize, value: i32) {
    buf[pos..pos + 4].copy_from_slice(&value.to_be_bytes());
}

pub(super) fn put_i64(buf: &mut [u8], pos: usize, value: i64) {
    buf[pos..pos + 8].copy_from_slice(&value.to_be_bytes());
}

/// Sets `batchLength` to the buffer's length and recomputes the CRC, as a forger would.
pub(super) fn reseal(buf: &mut [u8]) {
    put_i32(buf, BATCH_LENGTH_POS, (buf.len() - LOG_OVERHEAD) as i32);
    let crc = crc32c::crc32c(&buf[ATTRIBUTES_POS..]);
    buf[CRC_POS..CRC_POS + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Sets both the record count and the last offset delta (the header check ties them).
pub(super) fn set_count(buf: &mut [u8], count: i32) {
    put_i32(buf, RECORD_COUNT_POS, count);
    put_i32(buf, LAST_OFFSET_DELTA_POS, count - 1);
}

/// A batch header (from a one-record batch at timestamp 0) followed by `records` as raw bytes.
pub(super) fn forge(count: i32, records: &[u8]) -> Vec<u8> {
    let mut buf = build(&[0]);
    buf.truncate(BATCH_HEADER_LEN);
    buf.extend_from_slice(records);
    set_count(&mut buf, count);
    reseal(&mut buf);
    buf
}

/// A record with a correct length prefix around `body`.
pub(super) fn framed(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_varint(body.len() as i32, &mut out);
    out.extend_from_slice(body);
    out
}

/// The body of a minimal record: attributes 0, timestamp delta 0, `offset_delta`, null key,
/// null value, no headers.
pub(super) fn minimal_body(offset_delta: i32) -> Vec<u8> {
    let mut body = vec![0, 0];
    encode_varint(offset_delta, &mut body);
    body.extend_from_slice(&[0x01, 0x01, 0x00]);
    body
}

pub(super) fn parse(buf: &[u8]) -> Result<Batch, RecordError> {
    Batch::parse(Bytes::copy_from_slice(buf))
}

pub(super) fn record_fault(buf: &[u8]) -> (i32, RecordFault) {
    match parse(buf) {
        Err(RecordError::BadRecord { index, fault, .. }) => (index, fault),
        other => panic!("expected a bad record, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Accepted batches

#[test]
fn reads_back_what_the_builder_wrote() {
    let mut builder = BatchBuilder::new().with_producer(42, 1, 7);
    let first = NewRecord::new(1_000, None, Some(Bytes::new()))
        .with_header("trace", value("abc"))
        .with_header("trace", None)
        .with_header("", Some(Bytes::new()));
    let second = NewRecord::new(900, Some(Bytes::new()), None);
    builder.append(&first).unwrap();
    builder.append(&second).unwrap();
    let bytes = builder.build();
    let batch = Batch::parse(bytes.clone()).unwrap();
    assert_eq!(batch.len(), bytes.len());
    assert_eq!(batch.bytes(), &bytes);
    assert_eq!(
        (
            batch.base_offset(),
            batch.last_offset(),
            batch.next_offset()
        ),
        (0, 1, 2)
    );
    assert_eq!(
        (batch.base_timestamp(), batch.max_timestamp()),
        (1_000, 1_000)
    );
    assert_eq!(
        (
            batch.producer_id(),
            batch.producer_epoch(),
            batch.base_sequence()
        ),
        (42, 1, 7)
    );
    assert_eq!(batch.timestamp_type(), TimestampType::CreateTime);
    assert_eq!(batch.partition_leader_epoch(), 0);
    let records: Vec<Record> = batch.records().collect();
    assert_eq!(
        records,
        [
            Record {
                offset: 0,
                timestamp: 1_000,
                key: None,
                value: Some(Bytes::new()),
                headers: vec![
                    Header::new("trace", value("abc")),
                    Header::new("trace", None),
                    Header::new("", Some(Bytes::new())),
                ],
            },
            Record {
                offset: 1,
                timestamp: 900,
                key: Some(Bytes::new()),
                value: None,
                headers: vec![],
            },
        ]
    );
    assert_eq!(batch.records().len(), 2);
    assert_eq!((&batch).into_iter().count(), 2);
}

#[test]
fn record_bytes_are_slices_of_the_input() {
    let bytes = Bytes::from(build(&[1, 2]));
    let range = bytes.as_ptr_range();
    let batch = Batch::parse(bytes.clone()).unwrap();
    for record in batch.records() {
        for part in [record.key.unwrap(), record.value.unwrap()] {
            assert!(range.contains(&part.as_ptr()), "not a slice of the input");
        }
    }
}

#[test]
fn stamped_offsets_and_epoch_are_read() {
    let mut buf = build(&[5, 6, 7]);
    stamp_base_offset(&mut buf, 1_000);
    stamp_leader_epoch(&mut buf, 9);
    let batch = parse(&buf).unwrap();
    assert_eq!((batch.base_offset(), batch.last_offset()), (1_000, 1_002));
    assert_eq!(batch.partition_leader_epoch(), 9);
    let offsets: Vec<i64> = batch.records().map(|record| record.offset).collect();
    assert_eq!(offsets, [1_000, 1_001, 1_002]);
}

#[test]
fn log_append_time_gives_every_record_the_max_timestamp() {
    let mut builder = BatchBuilder::new().with_log_append_time(50_000);
    builder.append(&NewRecord::new(10, None, None)).unwrap();
    builder.append(&NewRecord::new(20, None, None)).unwrap();
    let batch = Batch::parse(builder.build()).unwrap();
    assert_eq!(batch.timestamp_type(), TimestampType::LogAppendTime);
    assert!(batch.records().all(|record| record.timestamp == 50_000));
    assert_eq!(batch.first_offset_at_or_after_timestamp(50_000), Some(0));
    assert_eq!(batch.first_offset_at_or_after_timestamp(50_001), None);
    assert_eq!(batch.first_offset_at_or_after_timestamp(i64::MIN), Some(0));
}

#[test]
fn first_offset_at_or_after_timestamp_follows_offset_order() {
    let mut buf = build(&[100, 50, 300, 200]);
    stamp_base_offset(&mut buf, 10);
    let batch = parse(&buf).unwrap();
    assert_eq!(batch.first_offset_at_or_after_timestamp(i64::MIN), Some(10));
    assert_eq!(batch.first_offset_at_or_after_timestamp(100), Some(10));
    assert_eq!(batch.first_offset_at_or_after_timestamp(101), Some(12));
    assert_eq!(batch.first_offset_at_or_after_timestamp(250), Some(12));
    assert_eq!(batch.first_offset_at_or_after_timestamp(300), Some(12));
    assert_eq!(batch.first_offset_at_or_after_timestamp(301), None);
}

#[test]
fn parse_prefix_returns_the_rest_and_parse_rejects_it() {
    let first = build(&[1]);
    let second = build(&[2, 3]);
    let both = Bytes::from([first.clone(), second.clone()].concat());
    let (batch, rest) = Batch::parse_prefix(both.clone()).unwrap();
    assert_eq!(batch.bytes().as_ref(), first.as_slice());
    assert_eq!(rest.as_ref(), second.as_slice());
    let (batch, rest) = Batch::parse_prefix(rest).unwrap();
    assert_eq!(batch.record_count(), 2);
    assert!(rest.is_empty());
    assert_eq!(
        Batch::parse(both),
        Err(RecordError::TrailingBytes {
            batch_len: first.len(),
            trailing: second.len()
        })
    );
    let mut one_more = first.clone();
    one_more.push(0);
    assert!(matches!(
        parse(&one_more),
        Err(RecordError::TrailingBytes { trailing: 1, .. })
    ));
}

// ---------------------------------------------------------------------------------------------
// Header-level rejections

#[test]
fn rejects_bad_crc_magic_and_truncation() {
    let good = build(&[1, 2]);
    let mut buf = good.clone();
    let last = buf.len() - 1;
    buf[last] ^= 0x01;
    assert!(matches!(parse(&buf), Err(RecordError::CrcMismatch { .. })));
    let mut buf = good.clone();
    buf[MAGIC_POS] = 1;
    assert_eq!(parse(&buf), Err(RecordError::UnsupportedMagic(1)));
    assert!(matches!(
        parse(&good[..good.len() - 1]),
        Err(RecordError::Truncated { .. })
    ));
    assert!(matches!(
        parse(&[]),
        Err(RecordError::Truncated { needed: 61, .. })
    ));
}

#[test]
fn rejects_transactional_and_control_bits() {
    for (bit, expected) in [
        (ATTR_TRANSACTIONAL, RecordError::Transactional),
        (ATTR_CONTROL, RecordError::ControlBatch),
        (
            ATTR_DELETE_HORIZON,
            RecordError::UnsupportedAttributes {
                attributes: ATTR_DELETE_HORIZON,
            },
        ),
    ] {
        let mut buf = build(&[1]);
        put_i16(&mut buf, ATTRIBUTES_POS, bit);
        reseal(&mut buf);
        assert_eq!(parse(&buf), Err(expected));
    }
}

#[test]
fn refuses_unknown_codecs_and_records_that_do_not_decompress() {
    // Codes 5 to 7 are no codec.
    for code in 5..=7 {
        let mut buf = build(&[1]);
        put_i16(&mut buf, ATTRIBUTES_POS, code | ATTR_TIMESTAMP_TYPE);
        reseal(&mut buf);
        let error = parse(&buf).unwrap_err();
        assert_eq!(
            error,
            RecordError::UnsupportedCompression {
                code,
                name: "unknown"
            }
        );
    }
    // Plain records under a codec's bit: the codec is named in the refusal.
    let names = ["gzip", "snappy", "lz4", "zstd"];
    for (code, name) in (1..=4).zip(names) {
        let mut buf = build(&[1]);
        put_i16(&mut buf, ATTRIBUTES_POS, code | ATTR_TIMESTAMP_TYPE);
        reseal(&mut buf);
        let error = parse(&buf).unwrap_err();
        assert!(
            matches!(&error, RecordError::Decompression { codec, .. } if *codec == name),
            "{error}"
        );
        assert!(error.to_string().contains(name));
    }
}

#[test]
fn compressed_records_are_checked_like_plain_ones() {
    use crate::attributes::Compression;
    for codec in [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let mut b = crate::BatchBuilder::new().with_compression(codec);
        for i in 0..20 {
            b.append(&NewRecord::new(
                1000 + i,
                None,
                Some(Bytes::from_static(b"same value same value same value")),
            ))
            .unwrap();
        }
        let good = b.build();
        let batch = Batch::parse(good.clone()).unwrap();
        assert_eq!(batch.compression(), codec);
        assert_eq!(batch.first_offset_at_or_after_timestamp(1010), Some(10));
        // A record count that lies about the compressed records is caught after
        // decompression.
        let mut bad = good.to_vec();
        set_count(&mut bad, 21);
        reseal(&mut bad);
        assert!(
            matches!(parse(&bad), Err(RecordError::BadRecordCount { .. })),
            "{codec}"
        );
        // Decompression past the limit is refused, naming it.
        let huge = crate::compression::compress(codec, &vec![0u8; 70 << 20]).unwrap();
        let e = crate::compression::decompress(
            codec,
            &huge,
            crate::compression::DECOMPRESSED_BYTES_MAX,
        )
        .unwrap_err();
        assert!(e.to_string().contains("DECOMPRESSED_BYTES_MAX"), "{e}");
    }
}

#[test]
fn rejects_a_count_that_lies() {
    let timestamps = [1, 2, 3];
    // Bigger: the cheap bound on the number of records catches a wild count...
    let mut buf = build(&timestamps);
    set_count(&mut buf, 1_000_000);
    reseal(&mut buf);
    assert!(matches!(
        parse(&buf),
        Err(RecordError::BadRecordCount {
            count: 1_000_000,
            ..
        })
    ));
    // ...and the walk catches a count just one too big.
    let mut builder = BatchBuilder::new();
    for _ in 0..3 {
        builder
            .append(&NewRecord::new(0, None, Some(Bytes::from(vec![1; 100]))))
            .unwrap();
    }
    let mut buf = builder.build().to_vec();
    set_count(&mut buf, 4);
    reseal(&mut buf);
    assert_eq!(
        parse(&buf),
        Err(RecordError::BadRecordCount {
            count: 4,
            reason: "the batch ends before the last record"
        })
    );
    // Smaller: a record is left over.
    let mut buf = build(&timestamps);
    set_count(&mut buf, 2);
    reseal(&mut buf);
    assert_eq!(
        parse(&buf),
        Err(RecordError::BadRecordCount {
            count: 2,
            reason: "bytes remain after the last record"
        })
    );
    // Zero and negative counts fail the header check.
    for count in [0, -1, i32::MIN + 1] {
        let mut buf = build(&timestamps);
        set_count(&mut buf, count);
        reseal(&mut buf);
        assert!(matches!(
            parse(&buf),
            Err(RecordError::BadRecordCount { .. })
        ));
    }
    // A last offset delta that disagrees with the count.
    let mut buf = build(&timestamps);
    put_i32(&mut buf, LAST_OFFSET_DELTA_POS, 1);
    reseal(&mut buf);
    assert!(matches!(
        parse(&buf),
        Err(RecordError::BadLastOffsetDelta { .. })
    ));
}

#[test]
fn rejects_offset_overflow_and_bad_max_timestamp() {
    let mut buf = build(&[1, 2]);
    stamp_base_offset(&mut buf, i64::MAX);
    assert_eq!(
        parse(&buf),
        Err(RecordError::OffsetOverflow {
            base_offset: i64::MAX,
            last_offset_delta: 1
        })
    );
    let mut buf = build(&[1, 2]);
    put_i64(&mut buf, MAX_TIMESTAMP_POS, 3);
    reseal(&mut buf);
    assert_eq!(
        parse(&buf),
        Err(RecordError::BadMaxTimestamp {
            stored: 3,
            computed: 2
        })
    );
}

// ---------------------------------------------------------------------------------------------
// Record-level rejections

#[test]
fn rejects_record_length_outside_the_batch() {
    let body = minimal_body(0);
    for length in [body.len() as i32 + 1, 1_000, i32::MAX, -1, i32::MIN] {
        let mut record = Vec::new();
        encode_varint(length, &mut record);
        record.extend_from_slice(&body);
        let (index, fault) = record_fault(&forge(1, &record));
        assert_eq!(index, 0);
        assert!(matches!(fault, RecordFault::LengthOutOfBounds { length: l, .. } if l == length));
    }
}

#[test]
fn rejects_varint_overflow() {
    // Timestamp delta with ten continuation bytes.
    let mut body = vec![0];
    body.extend_from_slice(&[0x80; 10]);
    body.push(0);
    body.extend_from_slice(&[0, 1, 1, 0]);
    let (_, fault) = record_fault(&forge(1, &framed(&body)));
    assert_eq!(fault, RecordFault::VarintOverflow { max_bytes: 10 });
    // The record length itself: six bytes.
    let mut record = vec![0xff; 5];
    record.push(0x00);
    record.extend_from_slice(&minimal_body(0));
    let (_, fault) = record_fault(&forge(1, &record));
    assert_eq!(fault, RecordFault::VarintOverflow { max_bytes: 5 });
    // An offset delta whose fifth byte sets bit 32.
    let mut body = vec![0, 0, 0x80, 0x80, 0x80, 0x80, 0x10];
    body.extend_from_slice(&[1, 1, 0]);
    let (_, fault) = record_fault(&forge(1, &framed(&body)));
    assert_eq!(fault, RecordFault::VarintOverflow { max_bytes: 5 });
}

#[test]
fn rejects_offset_delta_other_than_index() {
    let records = [framed(&minimal_body(0)), framed(&minimal_body(0))].concat();
    assert_eq!(
        record_fault(&forge(2, &records)),
        (
            1,
            RecordFault::OffsetDelta {
                expected: 1,
                found: 0
            }
        )
    );
    let records = [framed(&minimal_body(0)), framed(&minimal_body(2))].concat();
    assert_eq!(
        record_fault(&forge(2, &records)),
        (
            1,
            RecordFault::OffsetDelta {
                expected: 1,
                found: 2
            }
        )
    );
    let records = framed(&minimal_body(-1));
    assert_eq!(
        record_fault(&forge(1, &records)),
        (
            0,
            RecordFault::OffsetDelta {
                expected: 0,
                found: -1
            }
        )
    );
    // Both records well formed: accepted.
    let records = [framed(&minimal_body(0)), framed(&minimal_body(1))].concat();
    assert_eq!(parse(&forge(2, &records)).unwrap().record_count(), 2);
}

#[test]
fn rejects_record_attributes() {
    let mut body = minimal_body(0);
    body[0] = 0x01;
    assert_eq!(
        record_fault(&forge(1, &framed(&body))),
        (0, RecordFault::Attributes(1))
    );
}

#[test]
fn rejects_fields_that_miss_the_declared_length() {
    // One byte too many declared: the fields end early.
    let body = minimal_body(0);
    let mut record = Vec::new();
    encode_varint(body.len() as i32 - 1, &mut record);
    record.extend_from_slice(&body);
    let (_, fault) = record_fault(&forge(1, &[record, vec![0]].concat()));
    assert_eq!(fault, RecordFault::Truncated);
    // Trailing byte inside the declared length.
    let mut long = body.clone();
    long.push(0);
    let (_, fault) = record_fault(&forge(1, &framed(&long)));
    assert_eq!(
        fault,
        RecordFault::LengthMismatch {
            declared: 7,
            used: 6
        }
    );
    // A value length reaching past the record.
    let body = [0, 0, 0, 1, 20, 0];
    let (_, fault) = record_fault(&forge(1, &framed(&body)));
    assert_eq!(fault, RecordFault::Truncated);
}

#[test]
fn rejects_bad_lengths_and_header_keys() {
    let cases: [(&[u8], RecordFault); 5] = [
        // Key length -2.
        (
            &[0, 0, 0, 3, 1, 0],
            RecordFault::BadLength {
                field: "key length",
                length: -2,
            },
        ),
        // Value length -3.
        (
            &[0, 0, 0, 1, 5, 0],
            RecordFault::BadLength {
                field: "value length",
                length: -3,
            },
        ),
        // Header count -1.
        (
            &[0, 0, 0, 1, 1, 1],
            RecordFault::BadLength {
                field: "header count",
                length: -1,
            },
        ),
        // Null header key.
        (
            &[0, 0, 0, 1, 1, 2, 1, 1],
            RecordFault::BadLength {
                field: "header key length",
                length: -1,
            },
        ),
        // Header key 0xff: not UTF-8.
        (
            &[0, 0, 0, 1, 1, 2, 2, 0xff, 1],
            RecordFault::HeaderKeyNotUtf8,
        ),
    ];
    for (body, expected) in cases {
        assert_eq!(record_fault(&forge(1, &framed(body))), (0, expected));
    }
    // A header value length -2.
    let body = [0, 0, 0, 1, 1, 2, 2, b'k', 3];
    let (_, fault) = record_fault(&forge(1, &framed(&body)));
    assert_eq!(
        fault,
        RecordFault::BadLength {
            field: "header value length",
            length: -2
        }
    );
    // A header count far beyond the bytes.
    let mut body = vec![0, 0, 0, 1, 1];
    encode_varint(i32::MAX, &mut body);
    let (_, fault) = record_fault(&forge(1, &framed(&body)));
    assert_eq!(fault, RecordFault::Truncated);
}

#[test]
fn rejects_timestamp_overflow() {
    let mut buf = build(&[0, 1]);
    put_i64(&mut buf, BASE_TIMESTAMP_POS, i64::MAX);
    put_i64(&mut buf, MAX_TIMESTAMP_POS, i64::MAX);
    reseal(&mut buf);
    assert_eq!(
        record_fault(&buf),
        (1, RecordFault::TimestampOverflow { delta: 1 })
    );
}

#[test]
fn errors_name_the_record_position() {
    let records = [framed(&minimal_body(0)), framed(&minimal_body(5))].concat();
    let error = parse(&forge(2, &records)).unwrap_err();
    assert_eq!(
        error,
        RecordError::BadRecord {
            index: 1,
            position: BATCH_HEADER_LEN + 7,
            fault: RecordFault::OffsetDelta {
                expected: 1,
                found: 5
            }
        }
    );
    assert_eq!(
        error.to_string(),
        "record 1 at byte 68 of the batch: offset delta 5, expected 1"
    );
}
