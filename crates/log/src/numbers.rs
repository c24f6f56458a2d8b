//! The two numbers of a log that are easy to mix up, as distinct types: [`LogIndex`], where an
//! entry sits in the log, and [`Offset`], which record a Kafka offset names.
//!
//! Both are plain numbers on disk (frame headers, the manifest, the state file, index files,
//! segment file names): the codecs write [`LogIndex::get`] / [`Offset::get`] and read back with
//! `new`, so the formats are unchanged. Raft's own index (openraft's, which starts at 0) is a
//! third number, `RaftIndex` in strata-raft; the only conversion between it and [`LogIndex`]
//! lives in `strata_raft::codec`.

use std::fmt;

/// The index of an entry in a strata log. Entries are numbered from 1, contiguously; index 0
/// is never stored (a zeroed frame must not pass for an entry), so `LogIndex::new(0)` only
/// means "before the first entry" (an empty log's last index, nothing durable yet).
///
/// It is openraft's index plus one: convert only with `strata_raft::codec`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct LogIndex(u64);

impl LogIndex {
    /// The index of the first entry of a log that never purged anything.
    pub const FIRST: LogIndex = LogIndex(1);

    /// The log index `index` (as stored on disk).
    pub const fn new(index: u64) -> LogIndex {
        LogIndex(index)
    }

    /// The number, for the on-disk codecs and for logs and messages.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The index after this one.
    pub const fn next(self) -> LogIndex {
        LogIndex(self.0 + 1)
    }

    /// The index before this one. There is none before 0 (a debug assertion; release builds
    /// saturate at 0).
    pub fn prev(self) -> LogIndex {
        debug_assert!(self.0 > 0, "log index 0 has no predecessor");
        LogIndex(self.0.saturating_sub(1))
    }
}

impl fmt::Display for LogIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// A Kafka record offset: records of a partition are numbered from the log start, contiguously,
/// and only data entries take offsets. An `i64`, as in Kafka's record format (batch headers,
/// the API), though a log never holds a negative one (frames with one are refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Offset(i64);

impl Offset {
    /// The offset `offset` (as stored on disk or carried in a record batch).
    pub const fn new(offset: i64) -> Offset {
        Offset(offset)
    }

    /// The number, for the on-disk codecs, record batch headers and the layers above.
    pub const fn get(self) -> i64 {
        self.0
    }

    /// The offset after `records` records starting at this one.
    pub const fn plus_records(self, records: u32) -> Offset {
        Offset(self.0 + records as i64)
    }
}

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_print_and_step_as_the_plain_numbers() {
        assert_eq!(LogIndex::new(7).to_string(), "7");
        assert_eq!(format!("{:>3}", LogIndex::new(7)), "  7");
        assert_eq!(LogIndex::new(7).next(), LogIndex::new(8));
        assert_eq!(LogIndex::new(7).prev(), LogIndex::new(6));
        assert_eq!(Offset::new(-1).to_string(), "-1");
        assert_eq!(Offset::new(10).plus_records(3), Offset::new(13));
        assert_eq!(Offset::new(10).plus_records(0), Offset::new(10));
    }
}
