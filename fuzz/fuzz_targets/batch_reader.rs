//! Fuzz target: `Batch::parse` and a walk over every record, on arbitrary bytes.
//!
//! Each input is tried twice: as it is, and "sealed" (its `batchLength` set to the input's
//! length and its CRC32C recomputed), because random bytes almost never carry a matching CRC and
//! the record parser behind it would otherwise go unexplored.
//!
//! Beyond "never panics", an accepted batch must iterate exactly its record count with
//! contiguous offsets and slices inside the batch, and rebuilding its records with
//! `BatchBuilder` must give a batch that reads back the same records.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use strata_record::header::{
    ATTRIBUTES_POS, BATCH_HEADER_LEN, BATCH_LENGTH_POS, CRC_POS, LOG_OVERHEAD,
};
use strata_record::{Batch, BatchBuilder, NewRecord, Record, TimestampType};

fuzz_target!(|data: &[u8]| {
    check(Bytes::copy_from_slice(data));
    if data.len() >= BATCH_HEADER_LEN {
        let mut sealed = data.to_vec();
        let batch_length = (sealed.len() - LOG_OVERHEAD) as i32;
        sealed[BATCH_LENGTH_POS..BATCH_LENGTH_POS + 4].copy_from_slice(&batch_length.to_be_bytes());
        let crc = crc32c::crc32c(&sealed[ATTRIBUTES_POS..]);
        sealed[CRC_POS..CRC_POS + 4].copy_from_slice(&crc.to_be_bytes());
        check(Bytes::from(sealed));
    }
});

fn check(bytes: Bytes) {
    if let Ok((batch, rest)) = Batch::parse_prefix(bytes.clone()) {
        assert_eq!(batch.len() + rest.len(), bytes.len());
    }
    let Ok(batch) = Batch::parse(bytes.clone()) else {
        return;
    };
    assert_eq!(batch.len(), bytes.len());
    let records: Vec<Record> = batch.records().collect();
    assert_eq!(records.len(), batch.record_count() as usize);
    let range = bytes.as_ptr_range();
    for (index, record) in records.iter().enumerate() {
        assert_eq!(record.offset, batch.base_offset() + index as i64);
        assert!(record.timestamp <= batch.max_timestamp());
        let slices = [&record.key, &record.value]
            .into_iter()
            .chain(record.headers.iter().map(|header| &header.value));
        for slice in slices.flatten().filter(|slice| !slice.is_empty()) {
            assert!(range.contains(&slice.as_ptr()), "record bytes were copied");
        }
    }
    if let Some(offset) = batch.first_offset_at_or_after_timestamp(i64::MIN) {
        assert_eq!(offset, batch.base_offset());
    }
    rebuild_reads_the_same(&batch, &records);
}

fn rebuild_reads_the_same(batch: &Batch, records: &[Record]) {
    let mut builder = BatchBuilder::new().with_producer(
        batch.producer_id(),
        batch.producer_epoch(),
        batch.base_sequence(),
    );
    if batch.timestamp_type() == TimestampType::LogAppendTime {
        builder = builder.with_log_append_time(batch.max_timestamp());
    }
    for record in records {
        let new = NewRecord {
            timestamp: record.timestamp,
            key: record.key.clone(),
            value: record.value.clone(),
            headers: record.headers.clone(),
        };
        if builder.append(&new).is_err() {
            // Timestamps whose difference overflows i64 are readable but not buildable.
            return;
        }
    }
    let mut rebuilt = builder.build().to_vec();
    strata_record::stamp_base_offset(&mut rebuilt, batch.base_offset());
    let reread = Batch::parse(Bytes::from(rebuilt)).expect("a rebuilt batch must parse");
    let reread_records: Vec<Record> = reread.records().collect();
    assert_eq!(reread_records, records);
}
