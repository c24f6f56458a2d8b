//! The partition's metadata files: the manifest (checkpoint), the state file and the vote file.
//!
//! - `manifest`: replaced atomically (temp file, fsync, rename, directory fsync) on every
//!   structural change: roll, truncation, purge, reset, clean close. Lists the segments in order,
//!   the sealed length of each sealed segment, and a checkpoint of the active one.
//! - `state`: two 64-byte slots written in place alternately, each with a sequence number and a
//!   CRC, so a torn write loses at most the newest value. Holds the committed log id and the
//!   purge point; rides on the flusher's syncs.
//! - `vote`: the Raft vote, opaque bytes, replaced atomically; read back by `read_vote`.
//!
//! Log indexes ([`LogIndex`]) and offsets ([`Offset`]) are stored as plain `u64` / `i64`; the
//! `encode` / `decode` functions here convert.

use crate::codec::{Dec, Enc, Malformed};
use crate::disk::Disk;
use crate::error::LogError;
use crate::log_id::LogId;
use crate::numbers::{LogIndex, Offset};
use std::fs::File;
use std::io::IoSlice;
use std::path::Path;

/// File name of the manifest.
pub const MANIFEST_FILE: &str = "manifest";
/// File name of the state file.
pub const STATE_FILE: &str = "state";
/// File name of the vote file.
pub const VOTE_FILE: &str = "vote";
/// Suffix of temporary files being prepared for an atomic rename.
pub const TMP_SUFFIX: &str = ".tmp";

const MANIFEST_MAGIC: &[u8; 4] = b"SMAN";
const STATE_MAGIC: &[u8; 4] = b"SSTA";
const VOTE_MAGIC: &[u8; 4] = b"SVOT";
const FORMAT_VERSION: u16 = 1;
/// Bytes in one slot of the state file.
pub const STATE_SLOT_LEN: usize = 64;

/// One segment as the manifest records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentRecord {
    /// Offset of the segment's first record.
    pub base_offset: Offset,
    /// Log index of its first entry.
    pub first_index: LogIndex,
    /// Sealed: `len` is exact and final. Active: `len` is a checkpoint, a prefix known valid.
    pub sealed: bool,
    /// Bytes of valid frames (see `sealed`).
    pub len: u64,
    /// Index of the last entry within `len` (`first_index - 1` when none).
    pub last_index: LogIndex,
    /// Term of that entry (0 when none).
    pub last_term: u64,
    /// Offset after the records within `len`.
    pub next_offset: Offset,
}

/// The decoded manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Increases with every structural change; a stale manifest is never written over a newer.
    pub generation: u64,
    /// First log index in the log (entries below were purged).
    pub first_index: LogIndex,
    /// Offset of the first readable record.
    pub log_start_offset: Offset,
    /// Last purged log id, if any.
    pub last_purged: Option<LogId>,
    /// Log end when no segment is listed: next index, next offset, last term.
    pub next_index: LogIndex,
    /// See `next_index`.
    pub next_offset: Offset,
    /// See `next_index`.
    pub last_term: u64,
    /// Segments in log order.
    pub segments: Vec<SegmentRecord>,
}

fn enc_log_id(e: &mut Enc, id: Option<LogId>) {
    match id {
        Some(id) => e.u8(1).u64(id.term).u64(id.index.get()),
        None => e.u8(0).u64(0).u64(0),
    };
}

fn dec_log_id(d: &mut Dec<'_>) -> Result<Option<LogId>, Malformed> {
    let present = d.u8()?;
    let term = d.u64()?;
    let index = LogIndex::new(d.u64()?);
    Ok((present == 1).then_some(LogId { term, index }))
}

impl Manifest {
    /// Serializes the manifest with its trailing CRC.
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Enc::default();
        e.bytes(MANIFEST_MAGIC).u16(FORMAT_VERSION).u16(0);
        e.u64(self.generation)
            .u64(self.first_index.get())
            .i64(self.log_start_offset.get());
        enc_log_id(&mut e, self.last_purged);
        e.u64(self.next_index.get())
            .i64(self.next_offset.get())
            .u64(self.last_term);
        e.u32(self.segments.len() as u32);
        for s in &self.segments {
            e.i64(s.base_offset.get())
                .u64(s.first_index.get())
                .u8(s.sealed as u8)
                .u64(s.len)
                .u64(s.last_index.get())
                .u64(s.last_term)
                .i64(s.next_offset.get());
        }
        e.finish_with_crc()
    }

    /// Decodes and checks a manifest.
    pub fn decode(buf: &[u8]) -> Result<Manifest, Malformed> {
        let mut d = Dec::with_crc(buf)?;
        if d.take(4)? != MANIFEST_MAGIC {
            return Err(Malformed("bad magic"));
        }
        if d.u16()? != FORMAT_VERSION {
            return Err(Malformed("unknown version"));
        }
        d.u16()?;
        let generation = d.u64()?;
        let first_index = LogIndex::new(d.u64()?);
        let log_start_offset = Offset::new(d.i64()?);
        let last_purged = dec_log_id(&mut d)?;
        let next_index = LogIndex::new(d.u64()?);
        let next_offset = Offset::new(d.i64()?);
        let last_term = d.u64()?;
        let count = d.u32()? as usize;
        if count > d.remaining() / 49 + 1 {
            return Err(Malformed("segment count exceeds the file"));
        }
        let mut segments = Vec::with_capacity(count);
        for _ in 0..count {
            segments.push(SegmentRecord {
                base_offset: Offset::new(d.i64()?),
                first_index: LogIndex::new(d.u64()?),
                sealed: d.u8()? == 1,
                len: d.u64()?,
                last_index: LogIndex::new(d.u64()?),
                last_term: d.u64()?,
                next_offset: Offset::new(d.i64()?),
            });
        }
        Ok(Manifest {
            generation,
            first_index,
            log_start_offset,
            last_purged,
            next_index,
            next_offset,
            last_term,
            segments,
        })
    }
}

/// What the state file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StateRecord {
    /// Slot sequence number; the valid slot with the highest wins.
    pub seq: u64,
    /// Last committed log id saved by Raft.
    pub committed: Option<LogId>,
    /// Last purged log id.
    pub last_purged: Option<LogId>,
    /// Written when a flush failed: the last log index a successful sync covered. Everything
    /// after it may exist only in the page cache (a failed fdatasync loses its writes while
    /// they stay readable), so the next open cuts the log there, even if the process died
    /// before it could reopen the log itself, then clears it. (Absent in files written
    /// before it existed: the slot's padding is zeros.)
    pub cut_after: Option<LogIndex>,
}

impl StateRecord {
    /// Encodes one slot (exactly [`STATE_SLOT_LEN`] bytes).
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Enc::default();
        e.bytes(STATE_MAGIC).u64(self.seq);
        enc_log_id(&mut e, self.committed);
        enc_log_id(&mut e, self.last_purged);
        match self.cut_after {
            Some(i) => e.u8(1).u64(i.get()),
            None => e.u8(0).u64(0),
        };
        while e.0.len() < STATE_SLOT_LEN - 4 {
            e.u8(0);
        }
        e.finish_with_crc()
    }

    /// Decodes one slot.
    pub fn decode(buf: &[u8]) -> Result<StateRecord, Malformed> {
        let mut d = Dec::with_crc(buf)?;
        if d.take(4)? != STATE_MAGIC {
            return Err(Malformed("bad magic"));
        }
        let seq = d.u64()?;
        let committed = dec_log_id(&mut d)?;
        let last_purged = dec_log_id(&mut d)?;
        let present = d.u8()?;
        let index = LogIndex::new(d.u64()?);
        Ok(StateRecord {
            seq,
            committed,
            last_purged,
            cut_after: (present == 1).then_some(index),
        })
    }

    /// Reads the newest valid slot of a state file's contents.
    pub fn read_best(buf: &[u8]) -> Option<StateRecord> {
        buf.chunks_exact(STATE_SLOT_LEN)
            .take(2)
            .filter_map(|slot| StateRecord::decode(slot).ok())
            .max_by_key(|s| s.seq)
    }

    /// Writes this record into its slot (`seq % 2`) of an open state file.
    pub fn write_slot(&self, disk: &dyn Disk, file: &File, path: &Path) -> Result<(), LogError> {
        let bytes = self.encode();
        let pos = (self.seq % 2) * STATE_SLOT_LEN as u64;
        disk.write_at(file, &[IoSlice::new(&bytes)], pos)
            .map_err(|e| LogError::io("write state", path, e))
    }
}

/// Encodes the vote file.
pub fn encode_vote(vote: &[u8]) -> Vec<u8> {
    let mut e = Enc::default();
    e.bytes(VOTE_MAGIC).u32(vote.len() as u32).bytes(vote);
    e.finish_with_crc()
}

/// Decodes the vote file.
pub fn decode_vote(buf: &[u8]) -> Result<Vec<u8>, Malformed> {
    let mut d = Dec::with_crc(buf)?;
    if d.take(4)? != VOTE_MAGIC {
        return Err(Malformed("bad magic"));
    }
    let len = d.u32()? as usize;
    Ok(d.take(len)?.to_vec())
}

/// Reads and decodes `dir`'s vote file; `None` when there is none.
pub(crate) fn read_vote(dir: &Path) -> Result<Option<Vec<u8>>, LogError> {
    let path = dir.join(VOTE_FILE);
    match std::fs::read(&path) {
        Ok(b) => decode_vote(&b)
            .map(Some)
            .map_err(|Malformed(why)| LogError::Unrecoverable {
                dir: dir.to_path_buf(),
                reason: format!("vote file is damaged ({why}); refusing to guess a vote"),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(LogError::io("read vote", path, e)),
    }
}

/// Replaces `dir/name` atomically with `contents`: write a temp file, fsync it, rename it over
/// the target, fsync the directory. On return the new contents are durable.
pub fn replace_file(
    disk: &dyn Disk,
    dir: &Path,
    name: &str,
    contents: &[u8],
) -> Result<(), LogError> {
    write_via_temp(disk, &dir.join(name), contents, true)?;
    disk.sync_dir(dir)
        .map_err(|e| LogError::io("fsync directory", dir, e))
}

/// Writes `contents` to `target` through `<target>.tmp` and a rename, so a reader sees the old
/// or the new file whole. With `sync`, the temp file is fdatasynced before the rename (the
/// caller syncs the directory); without, the file may be lost or torn in a crash (index files,
/// which are checked and rebuilt).
pub(crate) fn write_via_temp(
    disk: &dyn Disk,
    target: &Path,
    contents: &[u8],
    sync: bool,
) -> Result<(), LogError> {
    let mut tmp = target.as_os_str().to_owned();
    tmp.push(TMP_SUFFIX);
    let tmp = std::path::PathBuf::from(tmp);
    let file = crate::disk::create_replacing(disk, &tmp)?;
    disk.write_at(&file, &[IoSlice::new(contents)], 0)
        .map_err(|e| LogError::io("write temp file", &tmp, e))?;
    if sync {
        disk.sync_data(&file)
            .map_err(|e| LogError::io("fsync temp file", &tmp, e))?;
    }
    drop(file);
    disk.rename(&tmp, target)
        .map_err(|e| LogError::io("rename temp file", target, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_round_trips_and_detects_damage() {
        let m = Manifest {
            generation: 7,
            first_index: LogIndex::new(3),
            log_start_offset: Offset::new(10),
            last_purged: Some(LogId {
                term: 2,
                index: LogIndex::new(2),
            }),
            next_index: LogIndex::new(9),
            next_offset: Offset::new(40),
            last_term: 4,
            segments: vec![SegmentRecord {
                base_offset: Offset::new(10),
                first_index: LogIndex::new(3),
                sealed: false,
                len: 100,
                last_index: LogIndex::new(8),
                last_term: 4,
                next_offset: Offset::new(40),
            }],
        };
        let bytes = m.encode();
        assert_eq!(Manifest::decode(&bytes), Ok(m));
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x10;
            assert!(Manifest::decode(&b).is_err(), "flip at {i} accepted");
            assert!(Manifest::decode(&bytes[..i]).is_err());
        }
    }

    #[test]
    fn state_slots_pick_newest_valid() {
        let a = StateRecord {
            cut_after: Some(LogIndex::new(7)),
            seq: 4,
            committed: Some(LogId {
                term: 1,
                index: LogIndex::new(5),
            }),
            last_purged: None,
        };
        let b = StateRecord { seq: 5, ..a };
        let mut file = vec![0u8; 2 * STATE_SLOT_LEN];
        file[..STATE_SLOT_LEN].copy_from_slice(&a.encode());
        file[STATE_SLOT_LEN..].copy_from_slice(&b.encode());
        assert_eq!(StateRecord::read_best(&file), Some(b));
        file[STATE_SLOT_LEN + 9] ^= 1;
        assert_eq!(StateRecord::read_best(&file), Some(a));
    }
}
