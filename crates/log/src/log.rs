//! [`Log`]: the single writer of one partition directory.
//!
//! The durable path of an append, step by step:
//! 1. `append` checks every entry (contiguous index, term not going back, size, and for data
//!    entries the batch header and its CRC32C), stamps the base offset and leader epoch into the
//!    batch header copy it writes, frames the entries and writes them with one `pwritev` per
//!    segment touched into space reserved by `fallocate`. The entries are readable at once.
//! 2. `flush` queues a completion with the [`crate::Flusher`] and returns.
//! 3. The flusher's next round, for every file with unsynced writes: trims a segment being
//!    sealed to its length, then `fdatasync` (file).
//! 4. If the round carries a manifest (a roll, a purge), it first `fsync`s the directory (so
//!    the new segment's entry is durable before a manifest names it), writes `manifest.tmp`,
//!    `fdatasync` (file), renames it over `manifest`, `fsync` (directory), then unlinks the
//!    files the manifest no longer lists.
//! 5. If the purge point changed, or the committed log id changed and the last write of
//!    `state` is at least 1 s old (the committed id only helps recovery, so those writes are
//!    throttled), it writes the next slot of `state` and `fdatasync`s it (file).
//! 6. Completions fire in order: every entry appended before the `flush` call is durable.
//!
//! `truncate_after` and `reset_to` make their manifest durable before returning, after syncing
//! the data the manifest points at.

use crate::disk::Disk;
use crate::flusher::FlusherHandle;
use crate::frame::{EntryKind, FRAME_HEADER_LEN, FrameHeader};
use crate::manifest;
use crate::read::LogReader;
use crate::segment::{Segment, map_file, segment_files, segment_stem, write_indexes};
pub use crate::shared::COMMITTED_SYNC_INTERVAL;
use crate::shared::{DirtyFile, View, lock};
use crate::{LogConfig, LogError, LogId, Result};
use std::fs::File;
use std::io::IoSlice;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use strata_record::BatchHeader;
use strata_record::header::{BASE_OFFSET_POS, LEADER_EPOCH_POS, MAGIC_POS};

/// The first bytes of a record batch, the part before its magic byte and outside its CRC: base
/// offset, batch length and leader epoch. An append writes its own copy of them, with the base
/// offset and leader epoch stamped, and the rest of the batch from the caller's buffer.
const STAMPED_LEN: usize = MAGIC_POS;
const _: () = assert!(BASE_OFFSET_POS + 8 <= STAMPED_LEN && LEADER_EPOCH_POS + 4 <= STAMPED_LEN);

/// An entry to append.
#[derive(Debug, Clone, Copy)]
pub struct NewEntry<'a> {
    /// Raft term of the entry (stamped as the batch's leader epoch; must fit in an i32 for
    /// data entries).
    pub term: u64,
    /// Raft index: the log's next index.
    pub index: u64,
    /// What the payload is.
    pub kind: EntryKind,
    /// For `Data`, one whole record batch (its base offset and leader epoch are overwritten in
    /// the copy written to disk); otherwise opaque bytes.
    pub payload: &'a [u8],
}

/// Where an appended entry landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Its Raft index.
    pub index: u64,
    /// Offset of its first record (the next offset, for entries without records).
    pub base_offset: i64,
    /// Records it holds.
    pub record_count: u32,
}

/// One partition's log: the only writer of its directory.
///
/// Appends are visible to [`LogReader`]s at once and durable once a later
/// [`Log::flush`] completes. Dropping a `Log` without [`Log::close`] is like a crash as far as
/// the log is concerned: the next open recovers from the last checkpoint.
#[derive(Debug)]
pub struct Log {
    /// Where the log ends (next index, next offset, last term) is kept once, in the view:
    /// the writer reads it there.
    pub(crate) shared: Arc<crate::shared::Shared>,
    pub(crate) flusher: FlusherHandle,
    /// The segment appends go to: the last one, unless a cut, reset or full purge sealed it
    /// (then the next append rolls).
    pub(crate) active: Option<Active>,
    pub(crate) damage: Option<Damage>,
    /// The next preallocation step: doubles from `preallocate_bytes_min` at each extension up
    /// to `preallocate_bytes_step`, and starts over when a segment rolls by age.
    pub(crate) prealloc_step: u64,
}

/// What a verified open lost (see [`Log::open_verified`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Damage {
    /// The first index no longer in the log: the log now ends just before it.
    pub first_lost_index: u64,
    /// The last index the log had recorded as written before the damage.
    pub recorded_last_index: u64,
}

/// The writer's handle on the active segment, so an append reserves space and writes without
/// the view lock (it takes it once to read where the log ends, once to publish the frames).
#[derive(Debug)]
pub(crate) struct Active {
    pub file: Arc<File>,
    pub path: PathBuf,
    /// Bytes written (equals the segment's `len` in the view).
    pub len: u64,
    /// Allocated size of the file.
    pub alloc: u64,
    pub created: Instant,
}

/// One entry checked and framed by `plan`, ready to write.
struct Plan {
    /// The frame header, CRC included.
    header: [u8; FRAME_HEADER_LEN],
    /// For data entries, the batch's first bytes with base offset and leader epoch stamped.
    prefix: [u8; STAMPED_LEN],
    data: bool,
    frame: FrameHeader,
}

impl Log {
    /// Opens (recovering) or creates the log in `dir`. See the crate docs for recovery.
    pub fn open(
        dir: impl AsRef<Path>,
        config: LogConfig,
        disk: Arc<dyn Disk>,
        flusher: &FlusherHandle,
    ) -> Result<Log> {
        crate::recover::open(dir.as_ref(), config, disk, flusher, false)?.cut_after_failure()
    }

    /// As [`Log::open`], but checks every frame of every segment, sealed ones and the
    /// checkpointed prefix included (a normal open trusts them), and cuts the log at the first
    /// bad frame. What was lost is reported by [`Log::damage`]. Used after a failure, when a
    /// read found a corrupt frame: the cost is a read of the whole log.
    pub fn open_verified(
        dir: impl AsRef<Path>,
        config: LogConfig,
        disk: Arc<dyn Disk>,
        flusher: &FlusherHandle,
    ) -> Result<Log> {
        crate::recover::open(dir.as_ref(), config, disk, flusher, true)?.cut_after_failure()
    }

    /// Applies the cut a failed flush recorded (see `StateRecord::cut_after`): recovery read
    /// the tail through the page cache, where a failed sync's writes stay readable although
    /// they never reached the disk. Then clears the record.
    fn cut_after_failure(mut self) -> Result<Log> {
        let Some(durable) = lock(&self.shared.sync).state_written.cut_after else {
            return Ok(self);
        };
        let last = self.next_index().saturating_sub(1);
        if durable < last {
            let keep = durable.max(self.reader().bounds().first_index.saturating_sub(1));
            tracing::warn!(dir = %self.shared.dir.display(), durable, last,
                "a flush failed before: dropping the entries no successful sync covered");
            self.truncate_after(keep)?;
        }
        self.shared.mark_cut_after(None)?;
        Ok(self)
    }

    /// Damage a verified open found in data the log had recorded as written (sealed segments,
    /// the checkpointed prefix): unlike a torn tail after a crash, entries up to
    /// [`Damage::recorded_last_index`] may have been acknowledged to others before they were
    /// lost.
    pub fn damage(&self) -> Option<Damage> {
        self.damage
    }

    /// A handle for concurrent reads.
    pub fn reader(&self) -> LogReader {
        LogReader {
            shared: self.shared.clone(),
        }
    }

    /// The partition directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Index the next entry must have.
    pub fn next_index(&self) -> u64 {
        self.shared.read_view().next_index
    }

    /// Offset the next record will get.
    pub fn next_offset(&self) -> i64 {
        self.shared.read_view().next_offset
    }

    /// Id of the last entry (or of the purge point when the log is empty after a purge).
    pub fn last_log_id(&self) -> Option<LogId> {
        self.shared.read_view().last_log_id()
    }

    /// Appends entries in order. On return they are readable (not yet durable: see
    /// [`Log::flush`]).
    ///
    /// - Errors before any write ([`LogError::InvalidEntry`], or an IO error reserving space
    ///   such as a full disk) leave the log unchanged and usable.
    /// - A failed write makes the log [`LogError::Failed`]; entries of this call that were
    ///   published before the failure stay readable until the log is reopened.
    pub fn append(&mut self, entries: &[NewEntry<'_>]) -> Result<Vec<Appended>> {
        self.shared.check_failed()?;
        let (start, end) = {
            let view = self.shared.read_view();
            let start = pristine_start(&view, entries.first().map(|e| e.index));
            let end = LogEnd {
                next_index: start.unwrap_or(view.next_index),
                next_offset: view.next_offset,
                last_term: view.last_term,
            };
            (start, end)
        };
        let plans = self.plan(entries, end)?;
        if let Some(first) = start {
            let mut view = self.shared.write_view();
            view.first_index = first;
            view.next_index = first;
            drop(view);
            lock(&self.shared.sync).appended_index = first - 1;
        }
        let mut out = Vec::with_capacity(plans.len());
        let mut i = 0;
        while i < plans.len() {
            let n = self.prepare_room(&plans[i..])?;
            self.write_frames(&plans[i..i + n], &entries[i..i + n])?;
            for p in &plans[i..i + n] {
                out.push(Appended {
                    index: p.frame.index,
                    base_offset: p.frame.base_offset,
                    record_count: p.frame.record_count,
                });
            }
            i += n;
        }
        Ok(out)
    }

    /// Checks every entry and computes its frame, before anything is written.
    /// `end` is where the log ends before them.
    fn plan(&self, entries: &[NewEntry<'_>], end: LogEnd) -> Result<Vec<Plan>> {
        let config = &self.shared.config;
        let mut offset = end.next_offset;
        let mut term = end.last_term;
        let mut plans = Vec::with_capacity(entries.len());
        for (index, e) in (end.next_index..).zip(entries) {
            let invalid = |reason: String| LogError::InvalidEntry {
                index: e.index,
                reason,
            };
            if e.index != index {
                return Err(invalid(format!("expected index {index}")));
            }
            if e.term < term {
                return Err(invalid(format!(
                    "term {} is below the last term {term}",
                    e.term
                )));
            }
            if e.payload.len() > config.entry_bytes_max as usize {
                return Err(invalid(format!(
                    "payload of {} bytes exceeds entry_bytes_max {}",
                    e.payload.len(),
                    config.entry_bytes_max
                )));
            }
            let (record_count, max_timestamp, mut prefix) = if e.kind == EntryKind::Data {
                let h = BatchHeader::parse_verified(e.payload)
                    .map_err(|err| invalid(format!("bad record batch: {err}")))?;
                if h.total_len() != e.payload.len() {
                    return Err(invalid("payload holds more than one batch".into()));
                }
                let mut prefix = [0u8; STAMPED_LEN];
                prefix.copy_from_slice(&e.payload[..STAMPED_LEN]);
                (h.record_count as u32, h.max_timestamp, prefix)
            } else {
                (0, -1, [0u8; STAMPED_LEN])
            };
            let data = e.kind == EntryKind::Data;
            if data {
                let epoch = i32::try_from(e.term)
                    .map_err(|_| invalid(format!("term {} does not fit a leader epoch", e.term)))?;
                prefix[BASE_OFFSET_POS..BASE_OFFSET_POS + 8].copy_from_slice(&offset.to_be_bytes());
                prefix[LEADER_EPOCH_POS..LEADER_EPOCH_POS + 4]
                    .copy_from_slice(&epoch.to_be_bytes());
            }
            let frame = FrameHeader {
                frame_len: (FRAME_HEADER_LEN + e.payload.len()) as u32,
                crc: 0, // computed by `encode_with_crc`
                term: e.term,
                index: e.index,
                kind: e.kind,
                record_count,
                base_offset: offset,
                max_timestamp,
            };
            let (header, frame) = if data {
                frame.encode_with_crc(&[&prefix, &e.payload[STAMPED_LEN..]])
            } else {
                frame.encode_with_crc(&[e.payload])
            };
            plans.push(Plan {
                header,
                prefix,
                data,
                frame,
            });
            offset += record_count as i64;
            term = e.term;
        }
        Ok(plans)
    }

    /// Rolls if needed and reserves space; returns how many of `plans` fit in the active segment.
    fn prepare_room(&mut self, plans: &[Plan]) -> Result<usize> {
        let config = &self.shared.config;
        let first_len = plans[0].frame.frame_len as u64;
        let mut aged = false;
        let must_roll = match &self.active {
            None => true,
            Some(a) => {
                aged = config.segment_ms_max > 0
                    && a.created.elapsed().as_millis() as u64 >= config.segment_ms_max;
                a.len > 0 && (a.len + first_len > config.segment_bytes_max || aged)
            }
        };
        if must_roll {
            if aged {
                // Rolled by age, not size: the log is slow; start small again.
                self.prealloc_step = config.preallocate_bytes_min;
            }
            self.roll()?;
        }
        let config = &self.shared.config;
        let active = self
            .active
            .as_mut()
            .expect("an active segment exists after a roll");
        let mut end = active.len;
        let mut n = 0;
        for p in plans {
            let l = p.frame.frame_len as u64;
            if n > 0 && end + l > config.segment_bytes_max {
                break;
            }
            end += l;
            n += 1;
        }
        if end > active.alloc {
            let step = self.prealloc_step;
            let target = (active.alloc + step).max(end.div_ceil(4096) * 4096);
            let target = target.min(config.segment_capacity()).max(end);
            self.shared
                .disk
                .allocate(&active.file, target)
                .map_err(|e| LogError::io("fallocate segment", &active.path, e))?;
            active.alloc = target;
            self.prealloc_step = (step * 2).min(config.preallocate_bytes_step);
        }
        Ok(n)
    }

    fn write_frames(&mut self, plans: &[Plan], entries: &[NewEntry<'_>]) -> Result<()> {
        let active = self
            .active
            .as_mut()
            .expect("an active segment exists after a roll");
        let position = active.len;
        let mut iov = Vec::with_capacity(plans.len() * 3);
        for (p, e) in plans.iter().zip(entries) {
            iov.push(IoSlice::new(&p.header));
            if p.data {
                iov.push(IoSlice::new(&p.prefix));
                iov.push(IoSlice::new(&e.payload[STAMPED_LEN..]));
            } else {
                iov.push(IoSlice::new(e.payload));
            }
        }
        if let Err(e) = self.shared.disk.write_at(&active.file, &iov, position) {
            let err = LogError::io("write segment", &active.path, e);
            self.shared.fail(err.to_string());
            return Err(err);
        }
        let interval = self.shared.config.index_interval_bytes;
        let mut view = self.shared.write_view();
        let mut pos = position;
        {
            let s = view.segments.last_mut().expect("active segment");
            for p in plans {
                s.note_frame(&p.frame, pos, interval);
                pos += p.frame.frame_len as u64;
            }
            debug_assert_eq!(
                s.len, pos,
                "the writer and the view agree on the segment's length"
            );
        }
        active.len = pos;
        let last = &plans[plans.len() - 1].frame;
        view.next_index = last.index + 1;
        view.next_offset = last.next_offset();
        view.last_term = last.term;
        drop(view);
        let mut s = lock(&self.shared.sync);
        s.appended_index = last.index;
        if !s.dirty.iter().any(|d| Arc::ptr_eq(&d.file, &active.file)) {
            s.dirty.push(DirtyFile {
                file: active.file.clone(),
                path: active.path.clone(),
                trim_to: None,
                indexes: None,
            });
        }
        Ok(())
    }

    /// Seals the active segment (if any) and starts a new one at the log end.
    fn roll(&mut self) -> Result<()> {
        let (next_index, next_offset) = {
            let v = self.shared.read_view();
            (v.next_index, v.next_offset)
        };
        let stem = segment_stem(next_offset, next_index);
        let path = self.shared.dir.join(format!("{stem}.log"));
        let disk = &self.shared.disk;
        // A file of this name is an orphan of a crash or a cut: not part of the log.
        let file = crate::disk::create_replacing(&**disk, &path)?;
        let step = self.prealloc_step;
        let setup = disk
            .allocate(&file, step)
            .map_err(|e| LogError::io("fallocate segment", &path, e))
            .and_then(|()| {
                map_file(&file, self.shared.config.segment_capacity(), &path)
                    .map_err(|e| LogError::io("map segment", &path, e))
            });
        let map = match setup {
            Ok(map) => map,
            Err(e) => {
                drop(file);
                let _ = disk.remove_file(&path);
                return Err(e);
            }
        };
        let file = Arc::new(file);
        let created = Instant::now();
        let segment = Segment {
            base_offset: next_offset,
            first_index: next_index,
            path: path.clone(),
            file: file.clone(),
            map,
            len: 0,
            sealed: false,
            last_index: next_index - 1,
            last_term: 0,
            next_offset,
            max_timestamp: -1,
            index: Vec::new(),
            time_index: Vec::new(),
            last_indexed_position: 0,
            created,
        };
        let mut view = self.shared.write_view();
        let sealed = if self.active.is_some() {
            view.segments.last_mut().map(|s| {
                s.sealed = true;
                seal_work(s)
            })
        } else {
            None
        };
        view.segments.push(segment);
        view.generation += 1;
        let m = view.manifest();
        drop(view);
        self.active = Some(Active {
            file,
            path,
            len: 0,
            alloc: step,
            created,
        });
        let mut s = lock(&self.shared.sync);
        if let Some(work) = sealed {
            match s
                .dirty
                .iter_mut()
                .find(|d| Arc::ptr_eq(&d.file, &work.file))
            {
                Some(d) => {
                    d.trim_to = work.trim_to;
                    d.indexes = work.indexes;
                }
                None => s.dirty.push(work),
            }
        }
        s.manifest = Some(m);
        Ok(())
    }

    /// Requests durability of every entry appended so far; `done` runs on the flusher thread
    /// once they are durable (`Ok`) or can no longer be made so (`Err`). Completions of one log
    /// run in the order of their `flush` calls.
    pub fn flush(&self, done: impl FnOnce(Result<()>) + Send + 'static) {
        let target = self.next_index().saturating_sub(1);
        self.flusher.submit(&self.shared, target, Box::new(done));
    }

    /// [`Log::flush`] and wait for it.
    pub fn flush_wait(&self) -> Result<()> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.flush(move |r| {
            let _ = tx.send(r);
        });
        rx.recv().map_err(|_| LogError::FlusherStopped)?
    }

    /// Highest index known durable.
    pub fn durable_index(&self) -> u64 {
        lock(&self.shared.sync).durable_index
    }

    /// Records the committed log id; it is written with the flusher's next round.
    pub fn save_committed(&self, committed: LogId) {
        lock(&self.shared.sync).committed = Some(committed);
    }

    /// The committed log id saved and made durable earlier, capped at the log's last entry.
    /// Checked against the log: if the log holds an entry at the saved index with another
    /// term, the log is not the one that index was committed in (log matching), nothing of
    /// it is claimed committed, and the error is logged.
    pub fn read_committed(&self) -> Option<LogId> {
        let committed = lock(&self.shared.sync).state_written.committed?;
        let last = self.last_log_id()?;
        let first = self.reader().bounds().first_index;
        if committed.index <= last.index && committed.index >= first {
            match self.reader().log_id_at(committed.index) {
                Ok(id) if id.term == committed.term => {}
                other => {
                    tracing::error!(dir = %self.shared.dir.display(), ?committed, found = ?other,
                        "the saved committed id does not match the log; claiming nothing committed");
                    return None;
                }
            }
        }
        Some(committed.min(last))
    }

    /// Atomically replaces the vote file with `vote` (temp file, fsync, rename, directory
    /// fsync). Durable on return. It does not wait for earlier appends: callers that need that
    /// order call [`Log::flush_wait`] first.
    pub fn save_vote(&self, vote: &[u8]) -> Result<()> {
        self.shared.check_failed()?;
        let r = manifest::replace_file(
            &*self.shared.disk,
            &self.shared.dir,
            manifest::VOTE_FILE,
            &manifest::encode_vote(vote),
        );
        if let Err(e) = &r {
            self.shared.fail(e.to_string());
        }
        r
    }

    /// The saved vote, if any.
    pub fn read_vote(&self) -> Result<Option<Vec<u8>>> {
        manifest::read_vote(&self.shared.dir)
    }

    /// The last purged log id.
    pub fn last_purged(&self) -> Option<LogId> {
        self.shared.read_view().last_purged
    }

    /// Removes every entry after `index` (keeps `index`). Never rewrites bytes: it syncs the
    /// kept data, records the cut durably in the manifest (temp, fsync, rename, directory
    /// fsync), and the next append starts a new segment. Durable on return.
    pub fn truncate_after(&mut self, index: u64) -> Result<()> {
        self.shared.check_failed()?;
        let shared = self.shared.clone();
        let r = shared.exclusive(|| self.truncate_inner(index));
        if let Err(e) = &r
            && !matches!(e, LogError::IndexOutOfRange { .. })
        {
            self.shared.fail(e.to_string());
        }
        r
    }

    fn truncate_inner(&mut self, index: u64) -> Result<()> {
        let (first_index, last_index) = {
            let v = self.shared.read_view();
            (v.first_index, v.last_index())
        };
        if index >= last_index {
            return Ok(());
        }
        if index + 1 < first_index {
            return Err(LogError::IndexOutOfRange {
                requested: index,
                first: first_index,
                last: last_index,
            });
        }
        // 1. Make the kept prefix durable before a manifest claims it as a sealed length.
        self.sync_dirty_now()?;
        // 2. Cut in memory.
        let reader = self.reader();
        let mut view = self.shared.write_view();
        let keep = view.segments.partition_point(|s| s.first_index <= index);
        let removed: Vec<Segment> = view.segments.drain(keep..).collect();
        let mut cut_file = None;
        let (end_offset, end_term) = if let Some(s) = view.segments.last_mut() {
            if s.last_index > index || !s.sealed {
                cut_file = Some((s.file.clone(), s.path.clone()));
            }
            if s.last_index > index {
                let (cut_pos, next_offset, term, max_ts) = reader.cut_point(s, index)?;
                s.len = cut_pos;
                s.last_index = index;
                s.last_term = term;
                s.next_offset = next_offset;
                s.max_timestamp = max_ts;
                s.cut_indexes(cut_pos);
            }
            s.sealed = true;
            (s.next_offset, s.last_term)
        } else {
            let p = view.last_purged.unwrap_or_default();
            (view.log_start_offset, p.term)
        };
        view.next_index = index + 1;
        view.next_offset = end_offset;
        view.last_term = end_term;
        view.generation += 1;
        let m = view.manifest();
        drop(view);
        self.active = None;
        let cut_indexes = cut_file.as_ref().and_then(|(file, _)| {
            let v = self.shared.read_view();
            v.segments
                .last()
                .filter(|s| Arc::ptr_eq(&s.file, file))
                .map(|s| {
                    vec![
                        (s.path.with_extension("index"), s.encode_index()),
                        (s.path.with_extension("timeindex"), s.encode_time_index()),
                    ]
                })
        });
        {
            let mut s = lock(&self.shared.sync);
            s.appended_index = index;
            // Everything kept was synced above (no round runs meanwhile); nothing past the cut
            // may count as durable when new entries take those indexes.
            s.durable_index = index;
            // Segments past the cut are about to be removed: no sync, trim or index for them.
            s.dirty
                .retain(|d| !removed.iter().any(|r| Arc::ptr_eq(&r.file, &d.file)));
            // The segment the cut sealed is never trimmed (views may cover bytes past the
            // cut); its indexes are written for its new length. Segments an earlier roll
            // sealed keep their trim and indexes.
            if let Some((file, path)) = cut_file {
                match s.dirty.iter_mut().find(|d| Arc::ptr_eq(&d.file, &file)) {
                    Some(d) => {
                        d.trim_to = None;
                        d.indexes = cut_indexes;
                    }
                    None => s.dirty.push(DirtyFile {
                        file,
                        path,
                        trim_to: None,
                        indexes: cut_indexes,
                    }),
                }
            }
        }
        // 3. Record the cut durably, then remove whole segments past it.
        self.shared.persist_manifest(&m)?;
        self.remove_segment_files(&removed)
    }

    fn remove_segment_files(&self, removed: &[Segment]) -> Result<()> {
        let disk = &self.shared.disk;
        for s in removed {
            for p in segment_files(&s.path) {
                if p.exists() {
                    disk.remove_file(&p)
                        .map_err(|e| LogError::io("remove segment", &p, e))?;
                }
            }
        }
        Ok(())
    }

    /// Syncs every file with unsynced writes now, on this thread.
    fn sync_dirty_now(&self) -> Result<()> {
        let files: Vec<(Arc<File>, PathBuf)> = lock(&self.shared.sync)
            .dirty
            .iter()
            .map(|d| (d.file.clone(), d.path.clone()))
            .collect();
        for (f, p) in files {
            self.shared
                .disk
                .sync_data(&f)
                .map_err(|e| LogError::io("fdatasync segment", &p, e))?;
        }
        Ok(())
    }

    /// Discards entries up to and including `upto` (Raft purge). Whole segments below the new
    /// start are deleted after the manifest recording it is durable (on the flusher's next
    /// round); a partly purged segment stays on disk but its purged entries are unreadable.
    pub fn purge(&mut self, upto: LogId) -> Result<()> {
        self.shared.check_failed()?;
        let reader = self.reader();
        let mut view = self.shared.write_view();
        if upto.index < view.first_index {
            return Ok(());
        }
        if upto.index > view.last_index() {
            return Err(LogError::IndexOutOfRange {
                requested: upto.index,
                first: view.first_index,
                last: view.last_index(),
            });
        }
        let start_offset = if upto.index == view.last_index() {
            view.next_offset
        } else {
            drop(view);
            let e = reader.entry(upto.index + 1)?;
            view = self.shared.write_view();
            e.base_offset
        };
        let keep_from = view
            .segments
            .partition_point(|s| s.last_index <= upto.index);
        let removed: Vec<Segment> = view.segments.drain(..keep_from).collect();
        if view.segments.is_empty() {
            self.active = None;
        }
        view.first_index = upto.index + 1;
        view.log_start_offset = start_offset;
        view.last_purged = Some(upto);
        view.generation += 1;
        let m = view.manifest();
        drop(view);
        {
            let mut s = lock(&self.shared.sync);
            s.last_purged = Some(upto);
            s.manifest = Some(m);
            for r in &removed {
                s.unlinks.extend(segment_files(&r.path));
            }
        }
        self.flusher.submit_background(&self.shared);
        Ok(())
    }

    /// Replaces the whole log by an empty one whose last entry is `last` and whose next record
    /// offset is `next_offset` (a replica installing a snapshot). Durable on return.
    pub fn reset_to(&mut self, last: LogId, next_offset: i64) -> Result<()> {
        self.shared.check_failed()?;
        let mut view = self.shared.write_view();
        let removed: Vec<Segment> = view.segments.drain(..).collect();
        view.first_index = last.index + 1;
        view.next_index = last.index + 1;
        view.next_offset = next_offset;
        view.log_start_offset = next_offset;
        view.last_term = last.term;
        view.last_purged = Some(last);
        view.generation += 1;
        let m = view.manifest();
        drop(view);
        self.active = None;
        {
            let mut s = lock(&self.shared.sync);
            s.last_purged = Some(last);
            s.appended_index = last.index;
            s.durable_index = last.index;
        }
        let shared = self.shared.clone();
        let r = shared.exclusive(|| {
            shared.persist_manifest(&m)?;
            self.remove_segment_files(&removed)?;
            let committed = lock(&shared.sync).committed;
            shared.persist_state(committed, Some(last), true)
        });
        if let Err(e) = &r {
            self.shared.fail(e.to_string());
        }
        r
    }

    /// Stops all IO of this log instance at once, as a crash would: later operations fail and
    /// pending flushes complete with an error; returns once the flusher is not working on it.
    /// (A process that reopens the directory must not have an old instance still writing.)
    pub fn halt(&self) {
        tracing::debug!(dir = %self.shared.dir.display(), "log halted");
        self.shared
            .stop_with("halted: this log instance was stopped".to_string());
        self.shared.wait_idle();
    }

    /// Flushes everything, writes the indexes of the active segment and a manifest whose
    /// checkpoint covers the whole log, so the next open scans nothing.
    pub fn close(self) -> Result<()> {
        self.flush_wait()?;
        let shared = self.shared.clone();
        shared.exclusive(|| self.close_inner())
    }

    fn close_inner(&self) -> Result<()> {
        let mut view = self.shared.write_view();
        let mut m = view.manifest();
        if let (Some(s), Some(rec)) = (view.segments.last(), m.segments.last_mut())
            && !s.sealed
        {
            rec.len = s.len;
            rec.last_index = s.last_index;
            rec.last_term = s.last_term;
            rec.next_offset = s.next_offset;
            write_indexes(&*self.shared.disk, &s.path, s)?;
        }
        view.generation += 1;
        m.generation = view.generation;
        drop(view);
        self.shared.persist_manifest(&m)?;
        let (committed, purged) = {
            let s = lock(&self.shared.sync);
            (s.committed, s.last_purged)
        };
        self.shared.persist_state(committed, purged, true)
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        let mut s = lock(&self.shared.sync);
        s.closed = true;
        while s.busy {
            s = self.shared.idle.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// Where the log ends: the index and offset the next entry gets, and the last entry's term.
#[derive(Debug, Clone, Copy)]
struct LogEnd {
    next_index: u64,
    next_offset: i64,
    last_term: u64,
}

/// A log that never held an entry (no segment, no purge point) starts at whatever index
/// its first entry has, as a log reset there would (Raft only does this when its own state
/// says the log starts there; openraft's storage suite does it to test membership reads).
/// Returns that index when it applies.
fn pristine_start(view: &View, first: Option<u64>) -> Option<u64> {
    let first = first?;
    let pristine = view.segments.is_empty()
        && view.last_purged.is_none()
        && view.next_index == 1
        && view.next_offset == 0
        && view.first_index == 1;
    (pristine && first > 1).then_some(first)
}

/// The flusher work that seals `s`: trim to length, then write its index files.
fn seal_work(s: &Segment) -> DirtyFile {
    DirtyFile {
        file: s.file.clone(),
        path: s.path.clone(),
        trim_to: Some(s.len),
        indexes: Some(vec![
            (s.path.with_extension("index"), s.encode_index()),
            (s.path.with_extension("timeindex"), s.encode_time_index()),
        ]),
    }
}
