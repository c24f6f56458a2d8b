//! [`LogConfig`]: the limits and sizes of one partition log, with their defaults.

use crate::error::LogError;
use std::path::PathBuf;

/// Configuration of one partition log. Defaults live in [`LogConfig::default`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// A segment rolls when the next frame would take it past this size (a segment holding a
    /// single larger entry is allowed). Bounds recovery time after a crash (the tail scanned is
    /// at most one segment) and the unit of retention.
    pub segment_bytes_max: u64,
    /// A segment rolls at the next append once it is this old (0: never by age), so retention
    /// by time can delete data that stops arriving.
    pub segment_ms_max: u64,
    /// The file is extended with `fallocate` ahead of the write position, so a full disk is an
    /// error at append rather than a SIGBUS or a failed write later. The step starts at
    /// [`LogConfig::preallocate_bytes_min`] and doubles at each extension up to this size, so a
    /// busy log extends rarely and an idle one holds little space.
    pub preallocate_bytes_step: u64,
    /// The first preallocation of a log, and of a segment started by age (the log is idle):
    /// what an idle replica's active segment occupies on disk.
    pub preallocate_bytes_min: u64,
    /// One sparse index entry per this many bytes of log. Bounds the scan a lookup does after
    /// its binary search.
    pub index_interval_bytes: u64,
    /// Largest entry payload accepted. Bounds memory a reader or recovery may touch per frame.
    pub entry_bytes_max: u32,
}

impl Default for LogConfig {
    fn default() -> LogConfig {
        LogConfig {
            segment_bytes_max: 1 << 30,
            segment_ms_max: 7 * 24 * 3600 * 1000,
            preallocate_bytes_step: 8 << 20,
            preallocate_bytes_min: 64 << 10,
            index_interval_bytes: 4096,
            entry_bytes_max: 16 << 20,
        }
    }
}

impl LogConfig {
    /// Checks the values against each other.
    pub fn validate(&self) -> Result<(), LogError> {
        let bad = |reason: &str| LogError::Unrecoverable {
            dir: PathBuf::new(),
            reason: format!("invalid log config: {reason}"),
        };
        if self.segment_bytes_max < 4096 {
            return Err(bad("segment_bytes_max must be at least 4096"));
        }
        if self.segment_bytes_max > u32::MAX as u64 {
            return Err(bad(
                "segment_bytes_max must fit in 32 bits (positions are u32)",
            ));
        }
        if self.preallocate_bytes_min < 4096 {
            return Err(bad("preallocate_bytes_min must be at least 4096"));
        }
        if self.preallocate_bytes_step < self.preallocate_bytes_min {
            return Err(bad(
                "preallocate_bytes_step must be at least preallocate_bytes_min",
            ));
        }
        if self.index_interval_bytes == 0 {
            return Err(bad("index_interval_bytes must be positive"));
        }
        if self.entry_bytes_max < 1024 {
            return Err(bad("entry_bytes_max must be at least 1024"));
        }
        Ok(())
    }

    /// Bytes mapped for a segment that is being written: the most it can hold.
    pub(crate) fn segment_capacity(&self) -> u64 {
        self.segment_bytes_max + crate::frame::FRAME_HEADER_LEN as u64 + self.entry_bytes_max as u64
    }
}
