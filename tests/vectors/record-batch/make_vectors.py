#!/usr/bin/env python3
"""Interoperability vectors for strata-record: RecordBatch v2 bytes written by kafka-python.

Usage (from the repository root):

    pip install kafka-python==3.0.12 python-snappy==0.7.3 lz4==4.4.5 zstandard==0.25.0
                                            # the versions the committed vectors came from
    python3 tests/vectors/record-batch/make_vectors.py           # (re)write NAME.bin + NAME.json
    python3 tests/vectors/record-batch/make_vectors.py --check   # exit 1 if the files differ

Each vector is built with kafka-python's own producer-side encoder,
`kafka.record.default_records.DefaultRecordBatchBuilder`, and read back with its reader,
`DefaultRecordBatch`, whose view is stored as "expected". The Rust test
`crates/record/tests/vectors.rs` parses every NAME.bin with `strata_record::Batch::parse`,
compares each field with "expected", and rebuilds the batch from "inputs" with
`strata_record::BatchBuilder`, requiring identical bytes (base offset and leader epoch zeroed on
both sides, since a broker stamps them).

NAME.json holds:
  description      what the vector covers
  inputs           what the producer gave the builder:
                     producer_id, producer_epoch, base_sequence, is_transactional,
                     compression ("none", "gzip", "snappy", "lz4" or "zstd"),
                     records: [{timestamp, key, value, headers: [{key, value}]}]
                     (key, value and header values are hex strings, or null for a null field)
  broker           what a broker did afterwards (outside kafka-python's builder):
                     base_offset, partition_leader_epoch (stamped, outside the CRC),
                     log_append_time (null, or the append time written into maxTimestamp with
                     the timestamp-type attribute bit; the CRC is then recomputed, as a Kafka
                     broker does for message.timestamp.type=LogAppendTime)
  expected         kafka-python's reading of NAME.bin: header fields and records
                     [{offset, timestamp, key, value, headers}], or null when Strata must refuse
                     the batch
  expected_error   null, or what Strata must refuse it for: "transactional"

Notes: kafka-python writes partitionLeaderEpoch = 0 in produce batches (the Java client writes
-1); Strata's builder matches kafka-python. kafka-python's builder never sets the timestamp-type
bit ("set by broker"), hence the broker step above. The gzip vector pins gzip's header time to 0
so the files are reproducible. A compressed vector is rebuilt by Strata with its own (pure
Rust) compressors, whose bytes differ from kafka-python's; the Rust test requires that rebuild
to read back the same records instead of the same bytes.
"""

import json
import os
import struct
import sys
import time
from unittest import mock

from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder
from kafka.record.util import calc_crc32c

HERE = os.path.dirname(os.path.abspath(__file__))

I64_MAX = 2**63 - 1
I64_MIN = -(2**63)
T0 = 1_700_000_000_000  # 2023-11-14T22:13:20Z in milliseconds

CODECS = {
    "none": DefaultRecordBatchBuilder.CODEC_NONE,
    "gzip": DefaultRecordBatchBuilder.CODEC_GZIP,
    "snappy": DefaultRecordBatchBuilder.CODEC_SNAPPY,
    "lz4": DefaultRecordBatchBuilder.CODEC_LZ4,
    "zstd": DefaultRecordBatchBuilder.CODEC_ZSTD,
}


def pattern(length, seed):
    """Deterministic, not-too-compressible bytes."""
    return bytes((i * 31 + seed * 17 + (i >> 8)) % 251 for i in range(length))


def rec(timestamp, key, value, headers=()):
    return {"timestamp": timestamp, "key": key, "value": value, "headers": list(headers)}


def vector(description, records, producer=(-1, -1, -1), transactional=False, compression="none",
           base_offset=0, partition_leader_epoch=0, log_append_time=None, expected_error=None):
    return {
        "description": description,
        "records": records,
        "producer": producer,
        "transactional": transactional,
        "compression": compression,
        "base_offset": base_offset,
        "partition_leader_epoch": partition_leader_epoch,
        "log_append_time": log_append_time,
        "expected_error": expected_error,
    }


def many_records():
    records = []
    for i in range(100):
        key = None if i % 10 == 3 else b"key-%d" % i
        value = b"" if i % 7 == 0 else pattern(i * 3, i)
        headers = [("index", b"%d" % i)] if i % 4 == 0 else []
        records.append(rec(T0 + i * 37 - (i % 5) * 100, key, value, headers))
    return records


VECTORS = {
    "one_record": vector("A single record with a key and a value.", [rec(T0, b"k", b"v")]),
    "many_records": vector(
        "100 records with mixed null/empty keys and values, some headers, unordered timestamps.",
        many_records()),
    "null_key": vector("A null key (length -1).", [rec(T0, None, b"value")]),
    "empty_key": vector("An empty key (length 0), distinct from null.", [rec(T0, b"", b"value")]),
    "null_value": vector("A null value (a tombstone, length -1).", [rec(T0, b"k", None)]),
    "empty_value": vector("An empty value (length 0), distinct from null.", [rec(T0, b"k", b"")]),
    "null_and_empty_everything": vector(
        "Two records: all-null key/value, then all-empty key/value/header value.",
        [rec(T0, None, None), rec(T0 + 1, b"", b"", [("", b"")])]),
    "headers": vector(
        "Several headers: a repeated key, a null value, an empty value, an empty key, a non-ASCII key.",
        [rec(T0, b"order-17", b"{\"qty\":3}", [
            ("trace-id", b"0af7651916cd43dd8448eb211c80319c"),
            ("trace-id", b"second value for the same key"),
            ("tombstone-header", None),
            ("empty", b""),
            ("", b"empty key"),
            ("cl\u00e9-\u65e5\u672c", b"\x00\xff\x80"),
        ]),
         rec(T0 + 5, b"order-18", b"{}", [("only-null", None)])]),
    "value_200_bytes": vector(
        "Key of 130 bytes and value of 200 bytes: their lengths take 2-byte varints.",
        [rec(T0, pattern(130, 1), pattern(200, 2), [("h", pattern(150, 3))])]),
    "value_20000_bytes": vector(
        "Value of 20,000 bytes: value and record lengths take 3-byte varints.",
        [rec(T0, b"big", pattern(20_000, 4)), rec(T0 + 1, b"small", b"x")]),
    "negative_timestamp_deltas": vector(
        "Later records carry earlier timestamps (negative deltas), one before 1970.",
        [rec(T0, b"a", b"1"), rec(T0 - 1_000, b"b", b"2"), rec(T0 + 500, b"c", b"3"),
         rec(-86_400_000, b"d", b"4")]),
    "extreme_timestamp_deltas": vector(
        "Deltas of i64::MAX and i64::MIN from a base of 0: 10-byte varlongs.",
        [rec(0, None, b"zero"), rec(I64_MAX, None, b"max"), rec(I64_MIN, None, b"min"),
         rec(-1, None, b"minus one")]),
    "producer_fields": vector(
        "Idempotent producer id, epoch and base sequence set.",
        [rec(T0, b"k1", b"v1"), rec(T0 + 1, b"k2", b"v2"), rec(T0 + 2, b"k3", b"v3")],
        producer=(123_456_789_012, 7, 42)),
    "log_append_time": vector(
        "Create-time records rewritten by a broker to log-append time: attribute bit 3 and "
        "maxTimestamp = append time, CRC recomputed. Readers report the append time.",
        [rec(T0, b"a", b"1"), rec(T0 + 10, b"b", b"2")],
        log_append_time=T0 + 60_000),
    "stamped_offset_and_epoch": vector(
        "Base offset 5000 and leader epoch 3 stamped by a broker (outside the CRC).",
        [rec(T0, b"a", b"1"), rec(T0 + 1, b"b", b"2"), rec(T0 + 2, b"c", b"3")],
        base_offset=5_000, partition_leader_epoch=3),
    "rejected_transactional": vector(
        "A transactional batch: Strata has no transactions and refuses it.",
        [rec(T0, b"k", b"v")], producer=(1_000, 0, 0), transactional=True,
        expected_error="transactional"),
    **{f"{codec}_records": vector(
        f"A {codec}-compressed batch of compressible records with keys and headers.",
        [rec(T0 + i, b"k%d" % i, b"compressible " * 20, [("h", b"x" * i)]) for i in range(40)],
        compression=codec)
       for codec in ("gzip", "snappy", "lz4", "zstd")},
}


def hexed(data):
    return None if data is None else bytes(data).hex()


def build(spec):
    producer_id, producer_epoch, base_sequence = spec["producer"]
    builder = DefaultRecordBatchBuilder(
        magic=2, compression_type=CODECS[spec["compression"]], is_transactional=spec["transactional"],
        producer_id=producer_id, producer_epoch=producer_epoch, base_sequence=base_sequence,
        batch_size=1 << 30)
    for offset, record in enumerate(spec["records"]):
        metadata = builder.append(offset, timestamp=record["timestamp"], key=record["key"],
                                  value=record["value"], headers=record["headers"])
        assert metadata is not None, "record did not fit"
    with mock.patch.object(time, "time", return_value=0.0):  # gzip header mtime
        data = bytearray(builder.build())
    struct.pack_into(">q", data, 0, spec["base_offset"])
    struct.pack_into(">i", data, 12, spec["partition_leader_epoch"])
    if spec["log_append_time"] is not None:
        (attributes,) = struct.unpack_from(">h", data, DefaultRecordBatch.ATTRIBUTES_OFFSET)
        struct.pack_into(">h", data, DefaultRecordBatch.ATTRIBUTES_OFFSET,
                         attributes | DefaultRecordBatch.TIMESTAMP_TYPE_MASK)
        struct.pack_into(">q", data, 35, spec["log_append_time"])
        crc = calc_crc32c(memoryview(data)[DefaultRecordBatch.ATTRIBUTES_OFFSET:])
        struct.pack_into(">I", data, DefaultRecordBatch.CRC_OFFSET, crc)
    return bytes(data)


def read_back(data):
    """kafka-python's view of the batch."""
    batch = DefaultRecordBatch(data)
    assert batch.validate_crc(), "kafka-python rejects its own CRC"
    header = {
        "base_offset": batch.base_offset,
        "batch_length": batch.size_in_bytes - DefaultRecordBatch.AFTER_LEN_OFFSET,
        "partition_leader_epoch": batch.leader_epoch,
        "magic": batch.magic,
        "crc": batch.crc,
        "attributes": batch.attributes,
        "last_offset_delta": batch.last_offset_delta,
        "base_timestamp": batch.first_timestamp,
        "max_timestamp": batch.max_timestamp,
        "producer_id": batch.producer_id,
        "producer_epoch": batch.producer_epoch,
        "base_sequence": batch.base_sequence,
        "record_count": batch.records_count,
    }
    records = [{
        "offset": record.offset,
        "timestamp": record.timestamp,
        "key": hexed(record.key),
        "value": hexed(record.value),
        "headers": [{"key": key, "value": hexed(value)} for key, value in record.headers],
    } for record in batch]
    return {"header": header, "records": records}


def describe(spec, data):
    producer_id, producer_epoch, base_sequence = spec["producer"]
    inputs = {
        "producer_id": producer_id,
        "producer_epoch": producer_epoch,
        "base_sequence": base_sequence,
        "is_transactional": spec["transactional"],
        "compression": spec["compression"],
        "records": [{
            "timestamp": record["timestamp"],
            "key": hexed(record["key"]),
            "value": hexed(record["value"]),
            "headers": [{"key": key, "value": hexed(value)} for key, value in record["headers"]],
        } for record in spec["records"]],
    }
    broker = {
        "base_offset": spec["base_offset"],
        "partition_leader_epoch": spec["partition_leader_epoch"],
        "log_append_time": spec["log_append_time"],
    }
    expected = read_back(data)
    if spec["expected_error"] is None:
        # kafka-python must read back exactly what it was given.
        for index, (got, given) in enumerate(zip(expected["records"], inputs["records"])):
            assert got["offset"] == spec["base_offset"] + index
            assert (got["key"], got["value"], got["headers"]) == (
                given["key"], given["value"], given["headers"])
        assert len(expected["records"]) == len(inputs["records"])
    return {
        "description": spec["description"],
        "inputs": inputs,
        "broker": broker,
        "expected": None if spec["expected_error"] else expected,
        "expected_error": spec["expected_error"],
    }


def main():
    check = "--check" in sys.argv[1:]
    stale = []
    for name, spec in VECTORS.items():
        data = build(spec)
        text = json.dumps(describe(spec, data), indent=1, sort_keys=True) + "\n"
        outputs = {name + ".bin": data, name + ".json": text.encode("utf-8")}
        for file_name, content in outputs.items():
            path = os.path.join(HERE, file_name)
            if check:
                try:
                    with open(path, "rb") as existing:
                        if existing.read() != content:
                            stale.append(file_name)
                except FileNotFoundError:
                    stale.append(file_name)
            else:
                with open(path, "wb") as out:
                    out.write(content)
        print("%-28s %6d bytes" % (name, len(data)))
    if stale:
        print("stale or missing: " + ", ".join(stale), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
