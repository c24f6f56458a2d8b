//! strata-log: one partition's segmented, memory-mapped log on disk, and the per-disk flusher.
//!
//! - [`log`]: [`Log`], the single writer of one partition directory, its small operations
//!   (flush, committed id, vote, halt, close), [`NewEntry`], [`Appended`], [`Damage`], and the
//!   durable path of an append step by step. [`Log`]'s other operations live in private
//!   modules, by concern:
//!   - `append`: [`Log::append`]: checks, framing, space reservation, the write.
//!   - `roll`: starting a new segment and queuing the sealing of the old one.
//!   - `truncate`: [`Log::truncate_after`], [`Log::purge`], [`Log::reset_to`].
//!   - `open`: [`Log::open`], [`Log::open_verified`]; `recover` does the recovery they run.
//! - [`read`]: [`LogReader`], cloneable handle for concurrent zero-copy reads by offset, by log
//!   index and by timestamp.
//! - [`flusher`]: [`Flusher`], one thread per data directory that group-commits the syncs of
//!   many logs.
//! - `shared`: the state a log's writer, readers and flusher share (the readers' view, the
//!   flusher's work, the manifest and state-file writes).
//! - [`frame`]: the 48-byte frame header around every entry on disk, and its CRC.
//! - [`segment`]: one segment in memory, its sparse offset and time indexes and their files.
//! - [`manifest`]: the manifest (checkpoint), state and vote files.
//! - [`disk`]: the [`Disk`] seam every write, sync, rename and directory operation goes through.
//! - [`sim`]: [`sim::SimDisk`], a crash-simulating, fault-injecting disk for tests.
//! - [`codec`]: checked encoding of the metadata files; [`codec::Malformed`].
//! - [`config`]: [`LogConfig`] and its defaults.
//! - [`error`]: the error type, [`LogError`].
//! - `log_id`: [`LogId`].
//! - `numbers`: [`LogIndex`] and [`Offset`], the two numbers of a log that must not be mixed
//!   up (nor with openraft's index, strata-raft's `RaftIndex`); the on-disk formats hold them
//!   as plain integers, written and read back by the codecs.
//!
//! # Module order
//!
//! The modules depend on each other without a cycle. Each line uses only modules on the lines
//! above it (through `use crate::module`, a `crate::module::` path, or a method of [`Log`]
//! defined there); this root file only declares the modules and re-exports, and only `tests`
//! uses the re-exports.
//!
//! 1. `numbers`: depends on no other module.
//! 2. `error`, `codec`, `frame`, `log_id`.
//! 3. `config`, `disk`.
//! 4. `manifest`, `sim`.
//! 5. `segment`.
//! 6. `shared`.
//! 7. `read`, `flusher`.
//! 8. `log`: defines [`Log`].
//! 9. `roll`, `truncate`, `recover`: `impl Log` blocks, and recovery, which builds a [`Log`].
//! 10. `append` (calls `roll`), `open` (calls `recover`, then `truncate`).
//!
//! This crate is synchronous: it does not depend on tokio or openraft. Every call may block on
//! disk IO; async callers run it on blocking threads.

mod append;
pub mod codec;
pub mod config;
pub mod disk;
pub mod error;
pub mod flusher;
pub mod frame;
pub mod log;
mod log_id;
pub mod manifest;
mod numbers;
mod open;
pub mod read;
mod recover;
mod roll;
pub mod segment;
mod shared;
pub mod sim;
mod truncate;

pub use config::LogConfig;
pub use disk::{Disk, RealDisk};
pub use error::{LogError, Result};
pub use flusher::{Flusher, FlusherHandle};
pub use frame::EntryKind;
pub use log::{Appended, Damage, Log, NewEntry};
pub use log_id::LogId;
pub use numbers::{LogIndex, Offset};
pub use read::{Entry, LogBounds, LogReader};

#[cfg(test)]
mod tests;
