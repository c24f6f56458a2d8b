//! strata-record: record batches in the byte layout of Kafka's RecordBatch v2 (magic 2).
//!
//! - [`header`]: the fixed 61-byte batch header, field positions, stamping of base offset and
//!   leader epoch (the only fields outside the CRC the broker rewrites).
//! - [`error`]: [`RecordError`], every way a batch can be malformed.
//!
//! This crate does no IO.

pub mod error;
pub mod header;

pub use error::RecordError;
pub use header::{BatchHeader, stamp_base_offset, stamp_leader_epoch};
