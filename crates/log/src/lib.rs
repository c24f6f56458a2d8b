//! strata-log: one partition's segmented, memory-mapped log on disk, and the per-disk flusher.
//!
//! - [`log`]: [`Log`], the single writer of one partition directory (append, truncate, purge,
//!   reset, vote, committed index) and its recovery on open.
//! - [`read`]: [`LogReader`], cloneable handle for concurrent zero-copy reads by offset, by Raft
//!   index and by timestamp.
//! - [`flusher`]: [`Flusher`], one thread per data directory that group-commits the syncs of
//!   many logs.
//! - [`frame`]: the 48-byte frame header around every entry on disk.
//! - [`segment`]: one segment in memory, its sparse offset and time indexes and their files.
//! - [`manifest`]: the manifest (checkpoint), state and vote files.
//! - [`disk`]: the [`Disk`] seam every write, sync, rename and directory operation goes through.
//! - [`sim`]: [`sim::SimDisk`], a crash-simulating, fault-injecting disk for tests.
//! - [`codec`]: checked encoding of the metadata files; [`codec::Malformed`].
//! - [`config`]: [`LogConfig`] and its defaults.
//! - [`error`]: the error type, [`LogError`].
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
pub mod manifest;
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
pub use read::{Entry, LogBounds, LogReader};

/// A Raft log id: the term of the leader that created the entry and its index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct LogId {
    /// Raft term (also the Kafka leader epoch stamped into batches).
    pub term: u64,
    /// Raft index, starting at 1.
    pub index: u64,
}

#[cfg(test)]
mod tests;
