//! Rolling and sealing segments: `Log::roll` seals the active segment and starts a new one at
//! the log end. Sealing is the flusher's work, queued here: trim the file to its length,
//! `fdatasync` it, then write its index files; the manifest that lists the new segment is
//! written by the flusher's next round too, after a directory `fsync` (see [`crate::log`]).

use crate::error::{LogError, Result};
use crate::log::{Active, Log};
use crate::segment::{Segment, map_file, segment_stem};
use crate::shared::{DirtyFile, lock};
use std::sync::Arc;
use std::time::Instant;

impl Log {
    /// Seals the active segment (if any) and starts a new one at the log end.
    pub(crate) fn roll(&mut self) -> Result<()> {
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
            last_index: next_index.prev(),
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
            written: 0,
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
