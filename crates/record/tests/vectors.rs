//! Interoperability with Kafka clients: every vector in `tests/vectors/record-batch` (written by
//! kafka-python, see `make_vectors.py` there) must parse to exactly what kafka-python read back,
//! and `BatchBuilder` must rebuild the same bytes from the same inputs (for the compressed
//! vectors, whose compressors differ: the same records, compressed with the same codec).

#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde::Deserialize;
use strata_record::{
    Batch, BatchBuilder, BatchHeader, Compression, Header, NewRecord, Record, RecordError,
    stamp_base_offset, stamp_leader_epoch,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Vector {
    description: String,
    inputs: Inputs,
    broker: Broker,
    expected: Option<Expected>,
    expected_error: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Inputs {
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    is_transactional: bool,
    compression: String,
    records: Vec<InputRecord>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InputRecord {
    timestamp: i64,
    key: Option<String>,
    value: Option<String>,
    headers: Vec<JsonHeader>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonHeader {
    key: String,
    value: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Broker {
    base_offset: i64,
    partition_leader_epoch: i32,
    log_append_time: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expected {
    header: ExpectedHeader,
    records: Vec<ExpectedRecord>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectedHeader {
    base_offset: i64,
    batch_length: i32,
    partition_leader_epoch: i32,
    magic: i8,
    crc: u32,
    attributes: i16,
    last_offset_delta: i32,
    base_timestamp: i64,
    max_timestamp: i64,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    record_count: i32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectedRecord {
    offset: i64,
    timestamp: i64,
    key: Option<String>,
    value: Option<String>,
    headers: Vec<JsonHeader>,
}

fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors/record-batch")
}

fn unhex(text: &str) -> Bytes {
    assert!(text.len().is_multiple_of(2), "odd-length hex");
    let bytes: Vec<u8> = (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect();
    Bytes::from(bytes)
}

fn unhex_opt(text: &Option<String>) -> Option<Bytes> {
    text.as_deref().map(unhex)
}

fn headers(json: &[JsonHeader]) -> Vec<Header> {
    json.iter()
        .map(|header| Header::new(header.key.clone(), unhex_opt(&header.value)))
        .collect()
}

fn expected_header(header: &ExpectedHeader) -> BatchHeader {
    BatchHeader {
        base_offset: header.base_offset,
        batch_length: header.batch_length,
        partition_leader_epoch: header.partition_leader_epoch,
        magic: header.magic,
        crc: header.crc,
        attributes: header.attributes,
        last_offset_delta: header.last_offset_delta,
        base_timestamp: header.base_timestamp,
        max_timestamp: header.max_timestamp,
        producer_id: header.producer_id,
        producer_epoch: header.producer_epoch,
        base_sequence: header.base_sequence,
        record_count: header.record_count,
    }
}

fn compression(name: &str) -> Compression {
    (0..=4)
        .filter_map(Compression::from_code)
        .find(|codec| codec.name() == name)
        .unwrap_or_else(|| panic!("unknown codec {name}"))
}

/// Rebuilds the batch from the producer's inputs and the broker's log-append time.
fn rebuild(vector: &Vector) -> Result<Bytes, RecordError> {
    let inputs = &vector.inputs;
    let mut builder = BatchBuilder::new()
        .with_producer(
            inputs.producer_id,
            inputs.producer_epoch,
            inputs.base_sequence,
        )
        .with_compression(compression(&inputs.compression));
    if let Some(append_time) = vector.broker.log_append_time {
        builder = builder.with_log_append_time(append_time);
    }
    for record in &inputs.records {
        let new = NewRecord {
            timestamp: record.timestamp,
            key: unhex_opt(&record.key),
            value: unhex_opt(&record.value),
            headers: headers(&record.headers),
        };
        let expected_size = builder.estimated_size_with(&new);
        builder.append(&new)?;
        assert_eq!(builder.estimated_size(), expected_size);
    }
    Ok(builder.build())
}

fn zero_stamps(bytes: &[u8]) -> Vec<u8> {
    let mut bytes = bytes.to_vec();
    stamp_base_offset(&mut bytes, 0);
    stamp_leader_epoch(&mut bytes, 0);
    bytes
}

fn check_accepted(name: &str, vector: &Vector, expected: &Expected, bin: Bytes) {
    let batch = Batch::parse(bin.clone()).unwrap_or_else(|error| panic!("{name}: {error}"));
    assert_eq!(
        batch.header(),
        &expected_header(&expected.header),
        "{name}: header"
    );
    assert_eq!(batch.len(), bin.len(), "{name}: length");
    assert_eq!(batch.base_offset(), vector.broker.base_offset, "{name}");
    assert_eq!(
        batch.record_count() as usize,
        expected.records.len(),
        "{name}"
    );
    let last = expected.records.last().unwrap().offset;
    assert_eq!(batch.last_offset(), last, "{name}: last offset");
    assert_eq!(
        batch.max_timestamp(),
        expected.header.max_timestamp,
        "{name}"
    );
    assert_eq!(
        (
            batch.producer_id(),
            batch.producer_epoch(),
            batch.base_sequence()
        ),
        (
            vector.inputs.producer_id,
            vector.inputs.producer_epoch,
            vector.inputs.base_sequence
        ),
        "{name}: producer fields"
    );
    let records: Vec<Record> = batch.records().collect();
    assert_eq!(
        records.len(),
        expected.records.len(),
        "{name}: record count"
    );
    for (index, (read, want)) in records.iter().zip(&expected.records).enumerate() {
        let want = Record {
            offset: want.offset,
            timestamp: want.timestamp,
            key: unhex_opt(&want.key),
            value: unhex_opt(&want.value),
            headers: headers(&want.headers),
        };
        assert_eq!(read, &want, "{name}: record {index}");
    }
    // The time lookup agrees with kafka-python's timestamps.
    for probe in expected.records.iter().map(|record| record.timestamp) {
        let first = expected
            .records
            .iter()
            .find(|record| record.timestamp >= probe);
        assert_eq!(
            batch.first_offset_at_or_after_timestamp(probe),
            first.map(|record| record.offset),
            "{name}: first offset at or after {probe}"
        );
    }

    let rebuilt = rebuild(vector).unwrap_or_else(|error| panic!("{name}: rebuild: {error}"));
    let codec = compression(&vector.inputs.compression);
    assert_eq!(batch.compression(), codec, "{name}: codec");
    if codec != Compression::None {
        // Strata's compressors write other bytes than kafka-python's: the rebuild must read
        // back the same records, compressed with the same codec.
        let mine = Batch::parse(rebuilt).unwrap_or_else(|error| panic!("{name}: {error}"));
        assert_eq!(mine.compression(), codec, "{name}: rebuilt codec");
        assert!(
            mine.len() < mine.record_count() as usize * 200,
            "{name}: compressed"
        );
        let again: Vec<Record> = mine
            .records()
            .map(|r| Record {
                offset: r.offset + vector.broker.base_offset,
                ..r
            })
            .collect();
        assert_eq!(again, records, "{name}: rebuilt records");
        return;
    }
    assert!(
        zero_stamps(&rebuilt) == zero_stamps(&bin),
        "{name}: rebuilt bytes differ from kafka-python's"
    );
    // Stamping what the broker stamped gives the vector itself.
    let mut stamped = rebuilt.to_vec();
    stamp_base_offset(&mut stamped, vector.broker.base_offset);
    stamp_leader_epoch(&mut stamped, vector.broker.partition_leader_epoch);
    assert!(stamped == bin, "{name}: stamped rebuild differs");
}

fn check_rejected(name: &str, vector: &Vector, expected_error: &str, bin: Bytes) {
    let error = Batch::parse(bin).expect_err(name);
    match expected_error {
        "transactional" => {
            assert_eq!(error, RecordError::Transactional, "{name}");
            assert!(vector.inputs.is_transactional, "{name}");
        }
        other => panic!("{name}: unknown expected_error {other}"),
    }
}

#[test]
fn kafka_python_vectors() {
    let mut names: Vec<String> = fs::read_dir(vectors_dir())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter_map(|file| file.strip_suffix(".json").map(str::to_owned))
        .collect();
    names.sort();
    assert!(
        names.len() >= 12,
        "expected at least 12 vectors, found {names:?}"
    );
    let mut accepted = 0;
    for name in &names {
        let json = fs::read_to_string(vectors_dir().join(format!("{name}.json"))).unwrap();
        let vector: Vector =
            serde_json::from_str(&json).unwrap_or_else(|error| panic!("{name}: {error}"));
        assert!(!vector.description.is_empty());
        let bin = Bytes::from(fs::read(vectors_dir().join(format!("{name}.bin"))).unwrap());
        match (&vector.expected, &vector.expected_error) {
            (Some(expected), None) => {
                check_accepted(name, &vector, expected, bin);
                accepted += 1;
            }
            (None, Some(error)) => check_rejected(name, &vector, error, bin),
            _ => panic!("{name}: exactly one of expected and expected_error must be set"),
        }
    }
    assert!(accepted >= 12, "only {accepted} accepted vectors");
    println!("{} vectors checked ({accepted} accepted)", names.len());
}
