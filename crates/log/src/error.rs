//! The error of this crate. Each variant is a decision for the caller: retry after the fault
//! clears, reopen from disk, report corruption, or fix the request.

use crate::numbers::{LogIndex, Offset};
use std::io;
use std::path::PathBuf;

/// Why a log operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// An IO operation failed. If the log did not also become [`LogError::Failed`], nothing was
    /// changed and the operation may be retried once the fault (for example a full disk) clears.
    #[error("{op} {path}: {source}")]
    Io {
        /// What the log was doing.
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A write or sync failed earlier, so what is on disk is unknown; every operation fails until
    /// the log is dropped and reopened from disk (which recovers the durable prefix).
    #[error("log at {dir} has failed and must be reopened: {reason}")]
    Failed {
        /// The partition directory.
        dir: PathBuf,
        /// The first failure.
        reason: String,
    },
    /// Bytes on disk are damaged inside a region recovery trusts (a sealed segment or a
    /// checkpointed prefix). The damaged range is refused, never returned.
    #[error("corrupt log data in {path} at byte {position}: {reason}")]
    Corrupt {
        /// The segment file.
        path: PathBuf,
        /// Byte position of the damaged frame.
        position: u64,
        /// What check failed.
        reason: String,
    },
    /// A requested offset is outside the log.
    #[error("offset {requested} is out of range: the log holds offsets {start}..{end}")]
    OffsetOutOfRange {
        /// The offset asked for.
        requested: Offset,
        /// Log start offset (first readable record).
        start: Offset,
        /// Log end offset (offset the next record gets).
        end: Offset,
    },
    /// A requested log index is outside the log.
    #[error("index {requested} is out of range: the log holds indexes {first}..={last}")]
    IndexOutOfRange {
        /// The index asked for.
        requested: LogIndex,
        /// First index present.
        first: LogIndex,
        /// Last index present (first - 1 when empty).
        last: LogIndex,
    },
    /// An entry handed to `append` is unacceptable (bad batch, non-contiguous index, term going
    /// back, too large). Nothing was written.
    #[error("invalid entry at index {index}: {reason}")]
    InvalidEntry {
        /// The entry's log index.
        index: LogIndex,
        /// What is wrong.
        reason: String,
    },
    /// A file of the log (manifest, vote, state) could not be decoded and cannot be rebuilt.
    #[error("cannot open log at {dir}: {reason}")]
    Unrecoverable {
        /// The partition directory.
        dir: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The flusher has stopped.
    #[error("the flusher has shut down")]
    FlusherStopped,
}

impl LogError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> LogError {
        LogError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = LogError> = std::result::Result<T, E>;
