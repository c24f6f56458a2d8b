//! [`Log`]: the single writer of one partition directory, and its small operations. Its
//! other operations live in `append`, `roll`, `truncate` and `open` (see the crate docs).
//!
//! The durable path of an append, step by step:
//! 1. [`Log::append`] checks every entry (contiguous index, term not going back, size, and for
//!    data entries the batch header and its CRC32C), stamps the base offset and leader epoch
//!    into the batch header copy it writes, frames the entries and writes them with one
//!    `pwritev` per segment touched (more only after a short write, or past 1,024 buffers) into
//!    space reserved by `fallocate` and already overwritten with zeros: the writer keeps
//!    zeros written up to 1 MiB ahead of its data, so the sync of an append rewrites blocks
//!    instead of converting unwritten extents (a file-system metadata change per sync). The entries are readable at once. When there is no active
//!    segment, or it is full or old, it first rolls: creates the next segment file and queues,
//!    for the flusher, the sealing of the old one and a manifest that lists the new one.
//! 2. [`Log::flush`] queues a completion with the [`crate::Flusher`] and returns.
//! 3. The flusher's next round, for every file with unsynced writes: trims a segment being
//!    sealed to its length, then `fdatasync` (file). Then it writes the sealed segments' index
//!    files (temp file and rename, not synced: they are checked and rebuilt when lost).
//! 4. If the round carries a manifest (a roll, a purge), it first `fsync`s the directory (so
//!    the new segment's entry is durable before a manifest names it), writes `manifest.tmp`,
//!    `fdatasync` (file), renames it over `manifest`, `fsync` (directory), then unlinks the
//!    files the manifest no longer lists.
//! 5. If the purge point changed, or the committed log id changed and the last write of
//!    `state` is at least 1 s old (the committed id only helps recovery, so those writes are
//!    throttled), it writes the next slot of `state` and `fdatasync`s it (file); the write that
//!    creates `state` also `fsync`s the directory.
//! 6. Completions fire in order: every entry appended before the `flush` call is durable. If a
//!    step failed, the log is failed, the completions get the error, and the round records in
//!    `state` the highest index known durable (`cut_after`): the next open cuts the log there.
//!
//! [`Log::truncate_after`] and [`Log::reset_to`] write their manifest themselves, durable
//! before they return (temp file, `fdatasync`, rename, directory `fsync`), after syncing the
//! data it points at, with no flusher round running meanwhile (`Shared::exclusive`); `reset_to`
//! then writes `state` with its purge point. `truncate_after` also `fsync`s the directory
//! before its manifest write, as a round does: a roll since the last round may have created a
//! segment the manifest names. `reset_to` names no segment. [`Log::close`] flushes, then writes the
//! active segment's index files, a manifest whose checkpoint covers the whole log, and `state`.

use crate::error::{LogError, Result};
use crate::flusher::FlusherHandle;
use crate::frame::EntryKind;
use crate::log_id::LogId;
use crate::manifest;
use crate::numbers::{LogIndex, Offset};
use crate::read::LogReader;
use crate::segment::write_indexes;
pub use crate::shared::COMMITTED_SYNC_INTERVAL;
use crate::shared::{Shared, lock};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// An entry to append.
#[derive(Debug, Clone, Copy)]
pub struct NewEntry<'a> {
    /// Raft term of the entry (stamped as the batch's leader epoch; must fit in an i32 for
    /// data entries).
    pub term: u64,
    /// Log index: the log's next index.
    pub index: LogIndex,
    /// What the payload is.
    pub kind: EntryKind,
    /// For `Data`, one whole record batch (its base offset and leader epoch are overwritten in
    /// the copy written to disk); otherwise opaque bytes.
    pub payload: &'a [u8],
    /// For `Data`: the batch's base offset was stamped by the leader that replicated it, and
    /// must be the offset this log gives it (the append refuses the call otherwise, before
    /// writing anything). `false` for a batch not stamped yet (proposed on this replica).
    pub stamped: bool,
    /// For `Data`: the caller checked the whole batch (its CRC32C included) just before, so
    /// the log reads its header without computing the CRC again (a leader's own proposals,
    /// checked when the producer's request arrived). `false` for bytes from a peer or a file:
    /// the log verifies them.
    pub verified: bool,
}

/// Where an appended entry landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Its log index.
    pub index: LogIndex,
    /// Offset of its first record (the next offset, for entries without records).
    pub base_offset: Offset,
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
    /// State shared with readers and the flusher. Where the log ends (next index, next offset,
    /// last term) is kept once, in its view: the writer reads it there.
    pub(crate) shared: Arc<Shared>,
    /// The flusher that makes this log's appends durable.
    pub(crate) flusher: FlusherHandle,
    /// The segment appends go to: the last one, unless a cut, reset or full purge sealed it
    /// (then the next append rolls).
    pub(crate) active: Option<Active>,
    /// What a verified open lost, if anything.
    pub(crate) damage: Option<Damage>,
    /// The next preallocation step: doubles from `preallocate_bytes_min` at each extension up
    /// to `preallocate_bytes_step`, and starts over when a segment rolls by age.
    pub(crate) prealloc_step: u64,
}

/// What a verified open lost (see [`Log::open_verified`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Damage {
    /// The first index no longer in the log: the log now ends just before it.
    pub first_lost_index: LogIndex,
    /// The last index the log had recorded as written before the damage.
    pub recorded_last_index: LogIndex,
}

/// The writer's handle on the active segment, so an append reserves space and writes without
/// the view lock (it takes it once to read where the log ends, once to publish the frames).
#[derive(Debug)]
pub(crate) struct Active {
    /// The segment file.
    pub file: Arc<File>,
    /// Its path, for errors.
    pub path: PathBuf,
    /// Bytes written (equals the segment's `len` in the view).
    pub len: u64,
    /// Allocated size of the file.
    pub alloc: u64,
    /// Bytes below this were written (data, or zeros written ahead of the data): an append
    /// below it overwrites written blocks, so its `fdatasync` has no extent to convert and no
    /// file-system journal commit to wait for (see `append::ZERO_AHEAD_BYTES`). Never below
    /// `len`, never above `alloc`.
    pub written: u64,
    /// When the segment was created (or opened), for rolling by age.
    pub created: Instant,
}

impl Active {
    /// Whether the segment is older than `segment_ms_max` (0: never), so the next append rolls.
    pub(crate) fn aged(&self, segment_ms_max: u64) -> bool {
        segment_ms_max > 0 && self.created.elapsed().as_millis() as u64 >= segment_ms_max
    }
}

impl Log {
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
    pub fn next_index(&self) -> LogIndex {
        self.shared.read_view().next_index
    }

    /// Offset the next record will get.
    pub fn next_offset(&self) -> Offset {
        self.shared.read_view().next_offset
    }

    /// Id of the last entry (or of the purge point when the log is empty after a purge).
    pub fn last_log_id(&self) -> Option<LogId> {
        self.shared.read_view().last_log_id()
    }

    /// Requests durability of every entry appended so far; `done` runs on the flusher thread
    /// once they are durable (`Ok`) or can no longer be made so (`Err`). Completions of one log
    /// run in the order of their `flush` calls.
    pub fn flush(&self, done: impl FnOnce(Result<()>) + Send + 'static) {
        let target = self.next_index().prev();
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
    pub fn durable_index(&self) -> LogIndex {
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
