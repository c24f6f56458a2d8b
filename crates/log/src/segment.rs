//! One segment in memory: its file, its read-only mapping, its sparse offset and time indexes,
//! the `.index` / `.timeindex` file formats, the names of a segment's files, and the writing
//! of its index files (through a temp file and a rename, never synced: they are rebuilt when
//! missing or damaged).
//!
//! A segment's bytes below `len` never change once written: truncation and recovery cuts seal
//! the segment and continue in a new one, so a `Bytes` view handed to a reader stays valid and
//! stable for as long as the reader holds it (the mapping lives as long as its views).

use crate::codec::{Dec, Enc};
use crate::disk::Disk;
use crate::frame::{EntryKind, FRAME_HEADER_LEN, FrameError, FrameHeader};
use crate::manifest;
use crate::numbers::{LogIndex, Offset};
use bytes::Bytes;
use memmap2::MmapOptions;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

const INDEX_MAGIC: &[u8; 4] = b"SIDX";
const TIME_INDEX_MAGIC: &[u8; 4] = b"STIX";
const INDEX_VERSION: u16 = 1;

/// One sparse offset index entry: the frame at `position` starts at `offset` and `index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    /// Base offset of the frame.
    pub offset: Offset,
    /// Log index of the frame.
    pub index: LogIndex,
    /// Byte position of the frame in the segment.
    pub position: u32,
}

/// One time index entry: no frame before `position` has a timestamp above `timestamp`, and the
/// frame at `position` raised the running maximum to `timestamp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeEntry {
    /// Running maximum timestamp including the frame at `position`.
    pub timestamp: i64,
    /// Base offset of that frame.
    pub offset: Offset,
    /// Byte position of that frame.
    pub position: u32,
}

/// File names of a segment: `<base_offset>-<first_index>.log` (both zero-padded to 20 digits).
///
/// The first log index is part of the name because truncation can start a new segment at the
/// same base offset as an existing one (when the cut leaves only non-data entries after it).
pub fn segment_stem(base_offset: Offset, first_index: LogIndex) -> String {
    format!("{:020}-{:020}", base_offset.get(), first_index.get())
}

/// Parses a segment stem back into (base offset, first index).
pub fn parse_stem(stem: &str) -> Option<(Offset, LogIndex)> {
    let (a, b) = stem.split_once('-')?;
    if a.len() != 20 || b.len() != 20 {
        return None;
    }
    Some((Offset::new(a.parse().ok()?), LogIndex::new(b.parse().ok()?)))
}

/// A segment of the log.
#[derive(Debug, Clone)]
pub struct Segment {
    /// Offset of the first record.
    pub base_offset: Offset,
    /// Log index of the first entry.
    pub first_index: LogIndex,
    /// Path of the `.log` file.
    pub path: PathBuf,
    /// The open file.
    pub file: Arc<File>,
    /// Read-only mapping of the file (views are slices of it).
    pub map: Bytes,
    /// Bytes of valid frames.
    pub len: u64,
    /// No more appends; `len` is final.
    pub sealed: bool,
    /// Last entry's index (`first_index - 1` when empty).
    pub last_index: LogIndex,
    /// Last entry's term (0 when empty).
    pub last_term: u64,
    /// Offset after the last record.
    pub next_offset: Offset,
    /// Largest record timestamp (-1 when none).
    pub max_timestamp: i64,
    /// Sparse offset index, ordered by position.
    pub index: Vec<IndexEntry>,
    /// Time index, ordered by position and timestamp.
    pub time_index: Vec<TimeEntry>,
    /// Position of the last offset index entry (to space entries by the interval).
    pub last_indexed_position: u64,
    /// When the segment was created or opened (age-based rolling).
    pub created: Instant,
}

/// Maps `len` bytes of `file` read-only (`len` may exceed the file's size: pages past the end
/// are never touched, as reads stay below the written length).
pub fn map_file(file: &File, len: u64, path: &Path) -> std::io::Result<Bytes> {
    if len == 0 {
        return Ok(Bytes::new());
    }
    // SAFETY: the mapping is read-only. Strata never rewrites bytes below a segment's written
    // length and never shrinks a file below any byte a view covers; other processes must not
    // modify the data directory (documented hazard).
    let map = unsafe { MmapOptions::new().len(len as usize).map(file) }
        .map_err(|e| std::io::Error::new(e.kind(), format!("mmap {}: {e}", path.display())))?;
    Ok(Bytes::from_owner(map))
}

impl Segment {
    /// The bytes of valid frames.
    pub fn valid(&self) -> &[u8] {
        let end = (self.len as usize).min(self.map.len());
        &self.map[..end]
    }

    /// Records an appended frame in the indexes.
    pub fn note_frame(&mut self, header: &FrameHeader, position: u64, index_interval_bytes: u64) {
        if self.index.is_empty() || position >= self.last_indexed_position + index_interval_bytes {
            self.index.push(IndexEntry {
                offset: header.base_offset,
                index: header.index,
                position: position as u32,
            });
            self.last_indexed_position = position;
        }
        if header.kind == EntryKind::Data && header.max_timestamp > self.max_timestamp {
            let spaced = self
                .time_index
                .last()
                .is_none_or(|t| position >= t.position as u64 + index_interval_bytes);
            if spaced {
                self.time_index.push(TimeEntry {
                    timestamp: header.max_timestamp,
                    offset: header.base_offset,
                    position: position as u32,
                });
            }
            self.max_timestamp = header.max_timestamp;
        }
        self.len = position + header.frame_len as u64;
        self.last_index = header.index;
        self.last_term = header.term;
        self.next_offset = header.next_offset();
    }

    /// Position to start scanning for `offset`: the last index entry at or below it.
    pub fn position_for_offset(&self, offset: Offset) -> u64 {
        let i = self.index.partition_point(|e| e.offset <= offset);
        if i == 0 {
            0
        } else {
            self.index[i - 1].position as u64
        }
    }

    /// Position to start scanning for log index `index`.
    pub fn position_for_index(&self, index: LogIndex) -> u64 {
        let i = self.index.partition_point(|e| e.index <= index);
        if i == 0 {
            0
        } else {
            self.index[i - 1].position as u64
        }
    }

    /// Position to start scanning for the first frame with `max_timestamp >= ts`.
    pub fn position_for_timestamp(&self, ts: i64) -> u64 {
        let i = self.time_index.partition_point(|e| e.timestamp < ts);
        if i == 0 {
            0
        } else {
            self.time_index[i - 1].position as u64
        }
    }

    /// Drops index entries at or past `len` (after a cut).
    pub fn cut_indexes(&mut self, len: u64) {
        self.index.retain(|e| (e.position as u64) < len);
        self.time_index.retain(|e| (e.position as u64) < len);
        self.last_indexed_position = self.index.last().map_or(0, |e| e.position as u64);
    }

    /// Encodes the offset index file (`covered_len` records how much of the log it describes).
    pub fn encode_index(&self) -> Vec<u8> {
        let mut e = Enc::default();
        e.bytes(INDEX_MAGIC)
            .u16(INDEX_VERSION)
            .u16(0)
            .u64(self.len)
            .u32(self.index.len() as u32);
        for x in &self.index {
            e.i64(x.offset.get())
                .u64(x.index.get())
                .u32(x.position)
                .u32(0);
        }
        e.finish_with_crc()
    }

    /// Encodes the time index file.
    pub fn encode_time_index(&self) -> Vec<u8> {
        let mut e = Enc::default();
        e.bytes(TIME_INDEX_MAGIC)
            .u16(INDEX_VERSION)
            .u16(0)
            .u64(self.len)
            .u32(self.time_index.len() as u32)
            .i64(self.max_timestamp);
        for x in &self.time_index {
            e.i64(x.timestamp)
                .i64(x.offset.get())
                .u32(x.position)
                .u32(0);
        }
        e.finish_with_crc()
    }
}

/// Decoded index files of a segment, trusted only if they cover at least the valid length and
/// every entry points inside it in order.
#[derive(Debug, Default)]
pub struct LoadedIndexes {
    /// Offset index.
    pub index: Vec<IndexEntry>,
    /// Time index.
    pub time_index: Vec<TimeEntry>,
    /// Max timestamp of the segment.
    pub max_timestamp: i64,
}

/// Reads and validates both index files; `None` if either is missing, damaged or does not
/// cover `len` bytes (the caller rebuilds them by walking the frames).
pub fn load_indexes(index_path: &Path, time_path: &Path, len: u64) -> Option<LoadedIndexes> {
    let ib = std::fs::read(index_path).ok()?;
    let tb = std::fs::read(time_path).ok()?;
    let mut d = Dec::with_crc(&ib).ok()?;
    if d.take(4).ok()? != INDEX_MAGIC || d.u16().ok()? != INDEX_VERSION {
        return None;
    }
    d.u16().ok()?;
    let covered = d.u64().ok()?;
    if covered != len {
        return None;
    }
    let n = d.u32().ok()? as usize;
    if n > d.remaining() / 24 {
        return None;
    }
    let mut index = Vec::with_capacity(n);
    for _ in 0..n {
        let e = IndexEntry {
            offset: Offset::new(d.i64().ok()?),
            index: LogIndex::new(d.u64().ok()?),
            position: d.u32().ok()?,
        };
        d.u32().ok()?;
        if e.position as u64 >= len
            || index.last().is_some_and(|p: &IndexEntry| {
                p.position >= e.position || p.index >= e.index || p.offset > e.offset
            })
        {
            return None;
        }
        index.push(e);
    }
    let mut d = Dec::with_crc(&tb).ok()?;
    if d.take(4).ok()? != TIME_INDEX_MAGIC || d.u16().ok()? != INDEX_VERSION {
        return None;
    }
    d.u16().ok()?;
    if d.u64().ok()? != len {
        return None;
    }
    let n = d.u32().ok()? as usize;
    let max_timestamp = d.i64().ok()?;
    if n > d.remaining() / 24 {
        return None;
    }
    let mut time_index = Vec::with_capacity(n);
    for _ in 0..n {
        let e = TimeEntry {
            timestamp: d.i64().ok()?,
            offset: Offset::new(d.i64().ok()?),
            position: d.u32().ok()?,
        };
        d.u32().ok()?;
        if e.position as u64 >= len
            || e.timestamp > max_timestamp
            || time_index
                .last()
                .is_some_and(|p: &TimeEntry| p.position >= e.position || p.timestamp >= e.timestamp)
        {
            return None;
        }
        time_index.push(e);
    }
    if index.first().is_some_and(|e| e.position != 0) {
        return None;
    }
    Some(LoadedIndexes {
        index,
        time_index,
        max_timestamp,
    })
}

/// Iterates frames of `buf` from `position`, decoding headers (and checking CRCs when
/// `verify`), stopping at the end of `buf` or at the first bad frame.
pub struct FrameWalker<'a> {
    buf: &'a [u8],
    /// Position of the next frame.
    pub position: u64,
    verify: bool,
    entry_bytes_max: u32,
}

impl<'a> FrameWalker<'a> {
    /// A walker over `buf` starting at `position`.
    pub fn new(buf: &'a [u8], position: u64, verify: bool, entry_bytes_max: u32) -> Self {
        FrameWalker {
            buf,
            position,
            verify,
            entry_bytes_max,
        }
    }
}

impl Iterator for FrameWalker<'_> {
    type Item = Result<(u64, FrameHeader), (u64, FrameError)>;

    fn next(&mut self) -> Option<Self::Item> {
        let pos = self.position;
        if pos as usize >= self.buf.len() {
            return None;
        }
        let rest = &self.buf[pos as usize..];
        let r = if self.verify {
            FrameHeader::decode_verified(rest, self.entry_bytes_max)
        } else {
            FrameHeader::decode(rest, self.entry_bytes_max)
        };
        match r {
            Ok(h) => {
                self.position += h.frame_len as u64;
                Some(Ok((pos, h)))
            }
            Err(e) => {
                self.position = self.buf.len() as u64;
                Some(Err((pos, e)))
            }
        }
    }
}

/// Minimum frame size (a header and no payload).
pub const MIN_FRAME_LEN: u64 = FRAME_HEADER_LEN as u64;

/// The `.log`, `.index` and `.timeindex` paths of a segment.
pub(crate) fn segment_files(log_path: &Path) -> [PathBuf; 3] {
    [
        log_path.to_path_buf(),
        log_path.with_extension("index"),
        log_path.with_extension("timeindex"),
    ]
}

/// Writes an index file (through a temp file and rename; not synced: rebuilt if lost).
pub(crate) fn write_index_file(
    disk: &dyn Disk,
    path: &Path,
    bytes: &[u8],
) -> crate::error::Result<()> {
    manifest::write_via_temp(disk, path, bytes, false)
}

/// Writes both index files of `s`, whose log file is `log_path` (see [`write_index_file`]).
pub(crate) fn write_indexes(
    disk: &dyn Disk,
    log_path: &Path,
    s: &Segment,
) -> crate::error::Result<()> {
    write_index_file(disk, &log_path.with_extension("index"), &s.encode_index())?;
    write_index_file(
        disk,
        &log_path.with_extension("timeindex"),
        &s.encode_time_index(),
    )
}
