//! strata-record: record batches in the byte layout of Kafka's RecordBatch v2 (magic 2).
//!
//! - [`header`]: the fixed 61-byte batch header, field positions, stamping of base offset and
//!   leader epoch (the only fields outside the CRC the broker rewrites).
//! - [`batch`]: [`Batch`], the checked zero-copy reader: parse verifies every byte, then
//!   iteration yields [`Record`]s whose bytes are slices of the input.
//! - [`builder`]: [`BatchBuilder`], which writes batches byte-identical to Kafka clients'
//!   (uncompressed), or compressed with any of Kafka's codecs.
//! - [`compression`]: gzip, snappy, lz4 and zstd for the records region, with a limit on what a
//!   batch may decompress to.
//! - [`record`]: the record value types ([`Record`], [`NewRecord`], [`Header`]) and the varint
//!   layout of one record.
//! - [`attributes`]: [`Compression`] and [`TimestampType`], and which attribute bits are refused.
//! - [`sequence`]: producer sequence arithmetic (wrapping after `i32::MAX`).
//! - [`subject`]: NATS-style subject patterns over topic names (`orders.*`, `orders.>`).
//! - [`sync`]: the workspace's one copy of poison-tolerant locking and `now_ms`.
//! - [`varint`]: checked zigzag varint / varlong decoding and encoding.
//! - [`error`]: [`RecordError`] (and [`RecordFault`] for one record), every way a batch can be
//!   malformed or unbuildable.
//!
//! This crate does no IO. The byte layout is documented in `docs/record-format.md`.

pub mod attributes;
pub mod batch;
pub mod builder;
pub mod compression;
pub mod error;
pub mod header;
pub mod record;
pub mod sequence;
pub mod subject;
pub mod sync;
pub mod varint;

pub use attributes::{Compression, TimestampType};
pub use batch::{Batch, Records};
pub use builder::BatchBuilder;
pub use error::{RecordError, RecordFault};
pub use header::{BatchHeader, stamp_base_offset, stamp_leader_epoch};
pub use record::{Header, NewRecord, Record};
