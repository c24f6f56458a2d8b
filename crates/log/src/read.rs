//! [`LogReader`]: concurrent, zero-copy reads of a partition log.
//!
//! A read takes the view lock only to find the segment and start position and to clone the
//! segment's mapping handle; it then walks frames outside the lock. Every frame returned has
//! had its CRC checked. Bytes below a segment's valid length never change, so what a reader
//! returns stays valid while the writer appends, rolls, truncates or purges.

use crate::error::{LogError, Result};
use crate::frame::{EntryKind, FrameError, FrameHeader};
use crate::log_id::LogId;
use crate::numbers::{LogIndex, Offset};
use crate::segment::{FrameWalker, Segment};
use crate::shared::Shared;
use bytes::Bytes;
use std::path::PathBuf;
use std::sync::Arc;

/// One entry read from the log. `payload` is a view of the mapped segment (no copy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Raft term.
    pub term: u64,
    /// Log index.
    pub index: LogIndex,
    /// Entry kind.
    pub kind: EntryKind,
    /// Offset of the first record (for non-data entries, the offset the next record gets).
    pub base_offset: Offset,
    /// Records in the batch.
    pub record_count: u32,
    /// Largest record timestamp (-1 for non-data entries).
    pub max_timestamp: i64,
    /// The payload; for data entries a whole record batch with base offset and leader epoch
    /// stamped.
    pub payload: Bytes,
}

impl Entry {
    /// The entry's log id.
    pub fn log_id(&self) -> LogId {
        LogId {
            term: self.term,
            index: self.index,
        }
    }

    /// The offset after this entry's records.
    pub fn next_offset(&self) -> Offset {
        self.base_offset.plus_records(self.record_count)
    }
}

/// The extent of the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogBounds {
    /// First readable record offset.
    pub log_start_offset: Offset,
    /// Offset the next record gets (log end offset).
    pub next_offset: Offset,
    /// First log index present.
    pub first_index: LogIndex,
    /// Last entry (or the purge point when empty), `None` for a new log.
    pub last_log_id: Option<LogId>,
    /// Last purged log id.
    pub last_purged: Option<LogId>,
}

/// A cloneable handle for reads, usable from any thread while the [`crate::Log`] appends.
#[derive(Debug, Clone)]
pub struct LogReader {
    pub(crate) shared: Arc<Shared>,
}

/// A segment's mapping and where to walk it, captured under the view lock.
struct Cursor {
    map: Bytes,
    len: u64,
    position: u64,
    path: PathBuf,
}

impl LogReader {
    /// Whether a segment begins at log index `index` (the entry before it is the last of its
    /// segment: a point where retention can cut).
    pub fn is_segment_start(&self, index: LogIndex) -> bool {
        let v = self.shared.read_view();
        let i = v.segments.partition_point(|s| s.first_index < index);
        v.segments.get(i).is_some_and(|s| s.first_index == index)
    }

    /// Whether log index `index` lies in the last segment, the one appends go to: its pages
    /// were written recently and are in the page cache, so reading them does not wait on the
    /// disk (a caller may read them on an async worker).
    pub fn is_in_last_segment(&self, index: LogIndex) -> bool {
        let v = self.shared.read_view();
        v.segments
            .last()
            .is_some_and(|s| !s.sealed && index >= s.first_index)
    }

    /// Each segment's base offset and the bytes of data it holds (not its preallocated
    /// length), oldest first: what retention by size counts.
    pub fn segment_sizes(&self) -> Vec<(Offset, u64)> {
        let v = self.shared.read_view();
        v.segments.iter().map(|s| (s.base_offset, s.len)).collect()
    }

    /// The current extent of the log.
    pub fn bounds(&self) -> LogBounds {
        let v = self.shared.read_view();
        LogBounds {
            log_start_offset: v.log_start_offset,
            next_offset: v.next_offset,
            first_index: v.first_index,
            last_log_id: v.last_log_id(),
            last_purged: v.last_purged,
        }
    }

    fn corrupt(path: PathBuf, position: u64, e: FrameError) -> LogError {
        LogError::Corrupt {
            path,
            position,
            reason: e.to_string(),
        }
    }

    /// Data entries holding offsets from `from_offset` on, whose base offset is below
    /// `up_to_offset`, totalling about `max_bytes` (at least one entry when one is available,
    /// even if larger, so a consumer always progresses). The first entry may begin before
    /// `from_offset` (a batch is never split). Empty when `from_offset` is the log end.
    pub fn read(
        &self,
        from_offset: Offset,
        max_bytes: usize,
        up_to_offset: Offset,
    ) -> Result<Vec<Entry>> {
        let mut out = Vec::new();
        let mut bytes = 0usize;
        let mut want = from_offset;
        loop {
            let Some(cursor) = self.cursor_for_offset(want, out.is_empty())? else {
                return Ok(out);
            };
            let walker = FrameWalker::new(
                &cursor.map[..cursor.len as usize],
                cursor.position,
                false,
                self.shared.config.entry_bytes_max,
            );
            let mut progressed = false;
            for item in walker {
                let (pos, h) = item.map_err(|(p, e)| Self::corrupt(cursor.path.clone(), p, e))?;
                if h.next_offset() <= want || h.kind != EntryKind::Data {
                    continue;
                }
                if h.base_offset >= up_to_offset {
                    return Ok(out);
                }
                if !out.is_empty() && bytes + h.payload_len() > max_bytes {
                    return Ok(out);
                }
                // Checked where read as `append` asserts it where written: the data entries
                // returned carry contiguous offsets.
                if let Some(prev) = out.last() {
                    let expected = prev.next_offset();
                    if h.base_offset != expected {
                        return Err(LogError::Corrupt {
                            path: cursor.path.clone(),
                            position: pos,
                            reason: format!(
                                "offsets are not contiguous: base offset {} follows a batch ending before {expected}",
                                h.base_offset
                            ),
                        });
                    }
                }
                let e = Self::entry_at(&cursor, pos, &h, self.shared.config.entry_bytes_max)?;
                bytes += h.payload_len();
                want = h.next_offset();
                progressed = true;
                out.push(e);
            }
            if !progressed || want >= up_to_offset || bytes >= max_bytes {
                // (No progress can only mean the segment held no data at or past `want`, which
                // the segment choice rules out; stop rather than spin.)
                return Ok(out);
            }
        }
    }

    fn cursor_for_offset(&self, offset: Offset, first: bool) -> Result<Option<Cursor>> {
        let v = self.shared.read_view();
        if offset < v.log_start_offset || offset > v.next_offset {
            if !first {
                return Ok(None);
            }
            return Err(LogError::OffsetOutOfRange {
                requested: offset,
                start: v.log_start_offset,
                end: v.next_offset,
            });
        }
        if offset == v.next_offset {
            return Ok(None);
        }
        let i = v.segments.partition_point(|s| s.next_offset <= offset);
        let Some(s) = v.segments.get(i) else {
            return Ok(None);
        };
        Ok(Some(Self::cursor(s, s.position_for_offset(offset))))
    }

    fn cursor(s: &Segment, position: u64) -> Cursor {
        Cursor {
            map: s.map.clone(),
            len: s.len.min(s.map.len() as u64),
            position,
            path: s.path.clone(),
        }
    }

    fn entry_at(cursor: &Cursor, pos: u64, h: &FrameHeader, entry_bytes_max: u32) -> Result<Entry> {
        let start = pos as usize;
        let end = start + h.frame_len as usize;
        let frame = &cursor.map[start..end];
        FrameHeader::decode_verified(frame, entry_bytes_max)
            .map_err(|e| Self::corrupt(cursor.path.clone(), pos, e))?;
        Ok(Entry {
            term: h.term,
            index: h.index,
            kind: h.kind,
            base_offset: h.base_offset,
            record_count: h.record_count,
            max_timestamp: h.max_timestamp,
            payload: cursor
                .map
                .slice(start + crate::frame::FRAME_HEADER_LEN..end),
        })
    }

    /// Entries with log indexes in `from..to` (any kind), totalling about `max_bytes` (at
    /// least one).
    pub fn entries(&self, from: LogIndex, to: LogIndex, max_bytes: usize) -> Result<Vec<Entry>> {
        let mut out = Vec::new();
        let mut bytes = 0usize;
        let mut want = from;
        while want < to {
            let cursor = {
                let v = self.shared.read_view();
                if want < v.first_index || want > v.last_index() {
                    return Err(LogError::IndexOutOfRange {
                        requested: want,
                        first: v.first_index,
                        last: v.last_index(),
                    });
                }
                let i = v.segments.partition_point(|s| s.last_index < want);
                let Some(s) = v.segments.get(i) else {
                    return Err(LogError::IndexOutOfRange {
                        requested: want,
                        first: v.first_index,
                        last: v.last_index(),
                    });
                };
                Self::cursor(s, s.position_for_index(want))
            };
            let walker = FrameWalker::new(
                &cursor.map[..cursor.len as usize],
                cursor.position,
                false,
                self.shared.config.entry_bytes_max,
            );
            let before = want;
            for item in walker {
                let (pos, h) = item.map_err(|(p, e)| Self::corrupt(cursor.path.clone(), p, e))?;
                if h.index < want {
                    continue;
                }
                if h.index >= to || (!out.is_empty() && bytes + h.payload_len() > max_bytes) {
                    return Ok(out);
                }
                assert_eq!(h.index, want, "frames in a segment have contiguous indexes");
                out.push(Self::entry_at(
                    &cursor,
                    pos,
                    &h,
                    self.shared.config.entry_bytes_max,
                )?);
                bytes += h.payload_len();
                want = want.next();
            }
            if want == before {
                let v = self.shared.read_view();
                return Err(LogError::Corrupt {
                    path: cursor.path,
                    position: cursor.len,
                    reason: format!(
                        "index {want} not found in its segment (log holds {}..={})",
                        v.first_index,
                        v.last_index()
                    ),
                });
            }
        }
        Ok(out)
    }

    /// The entry at log index `index`.
    pub fn entry(&self, index: LogIndex) -> Result<Entry> {
        let mut v = self.entries(index, index.next(), 0)?;
        v.pop().ok_or(LogError::IndexOutOfRange {
            requested: index,
            first: LogIndex::new(0),
            last: LogIndex::new(0),
        })
    }

    /// The log id at `index`: the last purged id when `index` is the purge point.
    pub fn log_id_at(&self, index: LogIndex) -> Result<LogId> {
        if let Some(p) = self.shared.read_view().last_purged
            && p.index == index
        {
            return Ok(p);
        }
        Ok(self.entry(index)?.log_id())
    }

    /// The earliest data entry whose max timestamp is at least `timestamp`, i.e. the entry
    /// holding the first record at or after that time; `None` if no record is that recent.
    /// (Callers narrow to the record with the batch reader.)
    pub fn entry_for_timestamp(&self, timestamp: i64) -> Result<Option<Entry>> {
        let candidates: Vec<Cursor> = {
            let v = self.shared.read_view();
            v.segments
                .iter()
                .filter(|s| s.max_timestamp >= timestamp && s.last_index >= v.first_index)
                .map(|s| Self::cursor(s, s.position_for_timestamp(timestamp)))
                .collect()
        };
        let first_index = self.shared.read_view().first_index;
        for cursor in candidates {
            let walker = FrameWalker::new(
                &cursor.map[..cursor.len as usize],
                cursor.position,
                false,
                self.shared.config.entry_bytes_max,
            );
            for item in walker {
                let (pos, h) = item.map_err(|(p, e)| Self::corrupt(cursor.path.clone(), p, e))?;
                if h.kind == EntryKind::Data
                    && h.index >= first_index
                    && h.max_timestamp >= timestamp
                {
                    return Ok(Some(Self::entry_at(
                        &cursor,
                        pos,
                        &h,
                        self.shared.config.entry_bytes_max,
                    )?));
                }
            }
        }
        Ok(None)
    }

    /// For truncation: the position after entry `index` in `s`, the offset after it, its term,
    /// and the max timestamp of the frames up to it.
    pub(crate) fn cut_point(
        &self,
        s: &Segment,
        index: LogIndex,
    ) -> Result<(u64, Offset, u64, i64)> {
        let walker = FrameWalker::new(s.valid(), 0, false, self.shared.config.entry_bytes_max);
        let mut max_ts = -1;
        for item in walker {
            let (pos, h) = item.map_err(|(p, e)| Self::corrupt(s.path.clone(), p, e))?;
            if h.kind == EntryKind::Data {
                max_ts = max_ts.max(h.max_timestamp);
            }
            if h.index == index {
                return Ok((pos + h.frame_len as u64, h.next_offset(), h.term, max_ts));
            }
        }
        Err(LogError::Corrupt {
            path: s.path.clone(),
            position: s.len,
            reason: format!("index {index} not found in its segment"),
        })
    }
}
