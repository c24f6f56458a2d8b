//! Removing entries: [`Log::truncate_after`] drops the tail (durable on return),
//! [`Log::purge`] drops the head (made durable by the flusher's next round, which then unlinks
//! the whole segments below the new start), [`Log::reset_to`] drops everything and restarts
//! the log after a given id (durable on return). None of them rewrites a byte of a segment: a
//! cut seals the segment it falls in and the next append rolls.

use crate::error::{LogError, Result};
use crate::log::Log;
use crate::log_id::LogId;
use crate::numbers::{LogIndex, Offset};
use crate::segment::{Segment, segment_files};
use crate::shared::{DirtyFile, lock};
use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

impl Log {
    /// Removes every entry after `index` (keeps `index`). Never rewrites bytes: it syncs the
    /// kept data, records the cut durably in the manifest (temp, fsync, rename, directory
    /// fsync), and the next append starts a new segment. Durable on return.
    pub fn truncate_after(&mut self, index: LogIndex) -> Result<()> {
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

    fn truncate_inner(&mut self, index: LogIndex) -> Result<()> {
        let (first_index, last_index) = {
            let v = self.shared.read_view();
            (v.first_index, v.last_index())
        };
        if index >= last_index {
            return Ok(());
        }
        if index.next() < first_index {
            return Err(LogError::IndexOutOfRange {
                requested: index,
                first: first_index,
                last: last_index,
            });
        }
        // 1. Make the kept prefix durable before a manifest claims it as a sealed length, and
        // the directory entries of the segments it names (a roll since the last flusher round
        // created one): POSIX does not order the manifest's rename after their creation.
        self.sync_dirty_now()?;
        self.shared
            .disk
            .sync_dir(&self.shared.dir)
            .map_err(|e| LogError::io("fsync directory", &self.shared.dir, e))?;
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
        view.next_index = index.next();
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
            let e = reader.entry(upto.index.next())?;
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
        view.first_index = upto.index.next();
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
    pub fn reset_to(&mut self, last: LogId, next_offset: Offset) -> Result<()> {
        self.shared.check_failed()?;
        let mut view = self.shared.write_view();
        let removed: Vec<Segment> = view.segments.drain(..).collect();
        view.first_index = last.index.next();
        view.next_index = last.index.next();
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
}
