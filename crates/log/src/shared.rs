//! [`Shared`]: the state of one log that its writer ([`crate::log::Log`]), its readers
//! ([`crate::read::LogReader`]) and the flusher ([`crate::flusher`]) share, and the operations on
//! it that more than one of them uses.
//!
//! - [`View`]: what readers see (segments, bounds, purge point), behind an `RwLock`; only the
//!   writer and recovery change it.
//! - [`SyncState`]: the flusher's work for this log (flush requests, files to sync, a pending
//!   manifest, the state record last written), behind a `Mutex`.
//! - The manifest and state-file writes ([`Shared::persist_manifest`],
//!   [`Shared::persist_state`], [`Shared::mark_cut_after`]), the failed flag, and
//!   [`Shared::exclusive`], which keeps flusher rounds out while a truncation, reset or close
//!   runs.
//!
//! Every module that works on a log depends on this one; it depends on none of them (only on
//! `segment`, `manifest`, `disk`, `config`, `error` and `log_id`: see the module order in the
//! crate docs).

use crate::config::LogConfig;
use crate::disk::Disk;
use crate::error::{LogError, Result};
use crate::log_id::LogId;
use crate::manifest::{self, Manifest, SegmentRecord, StateRecord};
use crate::numbers::{LogIndex, Offset};
use crate::segment::Segment;
use std::fs::File;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;
pub(crate) use strata_record::sync::lock;

/// The least time between two writes of the state file that only move the committed id.
pub const COMMITTED_SYNC_INTERVAL: std::time::Duration = std::time::Duration::from_millis(1000);

/// A completion run by the flusher once the requested appends are durable or failed.
pub type FlushCallback = Box<dyn FnOnce(Result<()>) + Send>;

/// A `flush` call waiting for the flusher: durability of every index up to `target`.
pub(crate) struct FlushRequest {
    /// Last index the request covers.
    pub target: LogIndex,
    /// Runs once `target` is durable, or with the error that keeps it from being so.
    pub done: FlushCallback,
}

/// The log's state visible to readers; only the writer (and recovery, before the log exists)
/// changes it. The one copy of where the log ends (`next_index`, `next_offset`, `last_term`).
#[derive(Debug)]
pub(crate) struct View {
    /// The segments in order; the last one is the active one unless it is sealed.
    pub segments: Vec<Segment>,
    /// First index present (entries below were purged).
    pub first_index: LogIndex,
    /// First readable record offset.
    pub log_start_offset: Offset,
    /// The purge point, if any.
    pub last_purged: Option<LogId>,
    /// Index the next entry gets.
    pub next_index: LogIndex,
    /// Offset the next record gets.
    pub next_offset: Offset,
    /// Term of the last entry (of the purge point when the log is empty after a purge).
    pub last_term: u64,
    /// Generation of the latest manifest built from this view (see [`Manifest::generation`]).
    pub generation: u64,
}

impl View {
    /// Index of the last entry (of the purge point when empty; 0 for a new log).
    pub fn last_index(&self) -> LogIndex {
        self.next_index.prev()
    }

    /// Id of the last entry (or of the purge point when the log is empty after a purge);
    /// `None` for a log that never held an entry.
    pub fn last_log_id(&self) -> Option<LogId> {
        (self.next_index > LogIndex::FIRST).then(|| LogId {
            term: self.last_term,
            index: self.next_index.prev(),
        })
    }

    /// The manifest recording this view. The active segment is recorded with an empty
    /// checkpoint (recovery scans it); `close` fills in its length.
    pub fn manifest(&self) -> Manifest {
        Manifest {
            generation: self.generation,
            first_index: self.first_index,
            log_start_offset: self.log_start_offset,
            last_purged: self.last_purged,
            next_index: self.next_index,
            next_offset: self.next_offset,
            last_term: self.last_term,
            segments: self
                .segments
                .iter()
                .map(|s| SegmentRecord {
                    base_offset: s.base_offset,
                    first_index: s.first_index,
                    sealed: s.sealed,
                    len: if s.sealed { s.len } else { 0 },
                    last_index: if s.sealed {
                        s.last_index
                    } else {
                        s.first_index.prev()
                    },
                    last_term: if s.sealed { s.last_term } else { 0 },
                    next_offset: if s.sealed {
                        s.next_offset
                    } else {
                        s.base_offset
                    },
                })
                .collect(),
        }
    }
}

/// A file the flusher must sync, with work to do on it first or after.
#[derive(Debug)]
pub(crate) struct DirtyFile {
    /// The segment file.
    pub file: Arc<File>,
    /// Its path, for errors and for its index files.
    pub path: PathBuf,
    /// Sealing: trim the file to this length before syncing.
    pub trim_to: Option<u64>,
    /// Sealing: index files to write after syncing (rebuildable, so not synced).
    pub indexes: Option<Vec<(PathBuf, Vec<u8>)>>,
}

/// What the flusher works from; guarded by `Shared::sync`.
#[derive(Default)]
pub(crate) struct SyncState {
    /// Flush calls waiting for the next round, in call order.
    pub requests: Vec<FlushRequest>,
    /// The log is in the flusher's queue.
    pub queued: bool,
    /// A round, or an operation holding [`Shared::exclusive`], is running.
    pub busy: bool,
    /// The `Log` was dropped: no more IO on its files.
    pub closed: bool,
    /// Files with unsynced writes, and sealing work on them.
    pub dirty: Vec<DirtyFile>,
    /// A manifest for the next round to write (after a directory fsync).
    pub manifest: Option<Manifest>,
    /// Files to remove once that manifest is durable.
    pub unlinks: Vec<PathBuf>,
    /// The committed id last saved, for the state file.
    pub committed: Option<LogId>,
    /// The purge point, for the state file.
    pub last_purged: Option<LogId>,
    /// The state record last written durably.
    pub state_written: StateRecord,
    /// When `state_written` was last written (throttles committed-only updates).
    pub state_written_at: Option<Instant>,
    /// Last index written to a segment: what a round can make durable.
    pub appended_index: LogIndex,
    /// Highest index known durable.
    pub durable_index: LogIndex,
    /// Why the log failed or was halted; every later operation fails with it.
    pub failed: Option<String>,
}

/// State shared by the writer, readers and the flusher.
pub(crate) struct Shared {
    /// The partition directory.
    pub dir: PathBuf,
    /// The log's configuration.
    pub config: LogConfig,
    /// Every write, sync, rename and removal goes through it.
    pub disk: Arc<dyn Disk>,
    /// What readers see.
    pub view: RwLock<View>,
    /// The flusher's work for this log.
    pub sync: Mutex<SyncState>,
    /// Notified when `SyncState::busy` clears.
    pub idle: Condvar,
    /// Last manifest generation made durable; also serializes manifest writes.
    pub manifest_persisted: Mutex<u64>,
    /// The state file, opened at its first write; also serializes state writes.
    pub state_file: Mutex<Option<File>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").field("dir", &self.dir).finish()
    }
}

impl Shared {
    /// Locks the view for reading (see [`lock`] about poisoning).
    pub fn read_view(&self) -> RwLockReadGuard<'_, View> {
        strata_record::sync::read(&self.view)
    }

    /// Locks the view for writing (see [`lock`] about poisoning).
    pub fn write_view(&self) -> RwLockWriteGuard<'_, View> {
        strata_record::sync::write(&self.view)
    }

    /// The error every operation of a failed log returns, with the failure's `reason`.
    pub fn failed_error(&self, reason: &str) -> LogError {
        LogError::Failed {
            dir: self.dir.clone(),
            reason: reason.to_string(),
        }
    }

    /// Fails if the log failed or was halted.
    pub fn check_failed(&self) -> Result<()> {
        match &lock(&self.sync).failed {
            Some(reason) => Err(self.failed_error(reason)),
            None => Ok(()),
        }
    }

    /// Marks the log failed: every later operation errors until it is reopened.
    pub fn fail(&self, reason: String) {
        tracing::error!(dir = %self.dir.display(), %reason, "log failed; it must be reopened");
        self.stop_with(reason);
    }

    /// As [`Shared::fail`], for a stop asked for (`Log::halt`): nothing went wrong.
    pub fn stop_with(&self, reason: String) {
        let mut s = lock(&self.sync);
        if s.failed.is_none() {
            s.failed = Some(reason);
        }
    }

    /// Writes `m` durably unless a newer manifest already is.
    pub fn persist_manifest(&self, m: &Manifest) -> Result<()> {
        let mut persisted = lock(&self.manifest_persisted);
        if m.generation <= *persisted {
            return Ok(());
        }
        manifest::replace_file(&*self.disk, &self.dir, manifest::MANIFEST_FILE, &m.encode())?;
        *persisted = m.generation;
        Ok(())
    }

    /// Writes the state record (committed id, purge point) if it changed and syncs it.
    pub fn persist_state(
        &self,
        committed: Option<LogId>,
        last_purged: Option<LogId>,
        force: bool,
    ) -> Result<()> {
        let record = {
            let s = lock(&self.sync);
            if s.state_written.committed == committed && s.state_written.last_purged == last_purged
            {
                return Ok(());
            }
            // The committed id is a hint (`read_committed` caps it at the log's end, and Raft
            // re-learns it from the leader): a change of it alone is written at most every
            // `COMMITTED_SYNC_INTERVAL`, so it does not double the fsyncs of every round. A
            // purge point is written at once.
            let only_committed = s.state_written.last_purged == last_purged;
            if only_committed
                && !force
                && s.state_written_at
                    .is_some_and(|t| t.elapsed() < COMMITTED_SYNC_INTERVAL)
            {
                return Ok(());
            }
            StateRecord {
                seq: s.state_written.seq + 1,
                committed,
                last_purged,
                cut_after: None,
            }
        };
        self.write_state(record)
    }

    /// Records durably that everything after log index `index` must be cut at the next open
    /// (see [`StateRecord::cut_after`]); `None` clears it.
    pub fn mark_cut_after(&self, index: Option<LogIndex>) -> Result<()> {
        let record = {
            let s = lock(&self.sync);
            StateRecord {
                seq: s.state_written.seq + 1,
                cut_after: index,
                ..s.state_written
            }
        };
        self.write_state(record)
    }

    /// Writes `record` into its slot of the state file and fdatasyncs it.
    fn write_state(&self, record: StateRecord) -> Result<()> {
        let path = self.dir.join(manifest::STATE_FILE);
        let mut guard = lock(&self.state_file);
        if guard.is_none() {
            let file = if path.exists() {
                self.disk.open_file(&path)
            } else {
                let f = self.disk.create_file(&path);
                if f.is_ok() {
                    self.disk
                        .sync_dir(&self.dir)
                        .map_err(|e| LogError::io("fsync directory", &self.dir, e))?;
                }
                f
            }
            .map_err(|e| LogError::io("open state file", &path, e))?;
            *guard = Some(file);
        }
        let Some(file) = guard.as_ref() else {
            return Ok(());
        };
        record.write_slot(&*self.disk, file, &path)?;
        self.disk
            .sync_data(file)
            .map_err(|e| LogError::io("fsync state file", &path, e))?;
        let mut s = lock(&self.sync);
        s.state_written = record;
        s.state_written_at = Some(Instant::now());
        Ok(())
    }

    /// Waits until the flusher is not working on this log.
    pub fn wait_idle(&self) {
        let mut s = lock(&self.sync);
        while s.busy {
            s = self.idle.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Runs `f` with the log's sync work to itself: waits for a running flusher round to end,
    /// and keeps the next one from starting until `f` returns. Truncation, reset and close use
    /// it: a round takes its files out of the dirty list before it syncs them, so without it a
    /// truncation could record a sealed length in the manifest while the round's `fdatasync`
    /// of that data is still running (or about to fail), and a reset's state slot could race
    /// the round's. Fails without running `f` if the log failed meanwhile.
    pub fn exclusive<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        {
            let mut s = lock(&self.sync);
            while s.busy {
                s = self.idle.wait(s).unwrap_or_else(|e| e.into_inner());
            }
            if let Some(reason) = &s.failed {
                return Err(self.failed_error(reason));
            }
            s.busy = true;
        }
        let r = f();
        let mut s = lock(&self.sync);
        s.busy = false;
        self.idle.notify_all();
        r
    }
}
