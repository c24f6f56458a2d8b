//! [`LogStore`]: openraft's log storage over one strata-log [`Log`]. The partition log IS the
//! Raft log: record bytes are written once per replica.
//!
//! Contract, per openraft's `RaftLogStorage`:
//! - `append` writes the entries (they are readable when it returns; the log refuses all of
//!   them, before writing, if a batch a leader stamped does not start at the offset this log
//!   gives it) and hands openraft's callback to the flusher; the callback fires once they are fsynced (group commit), or with
//!   an error if the sync failed (the log then refuses everything until reopened).
//! - `save_vote` first waits until every earlier append is durable, then replaces the vote file
//!   atomically: write IO is serialized as openraft requires.
//! - `save_committed` only records the value; the flusher writes it with its next round.
//!   `read_committed` returns the smaller of the saved value and the last durable entry.
//! - `truncate_after` and `purge` map to the log's own operations (Raft index + 1 = log index,
//!   see [`crate::codec`]).
//!
//! Every call that may wait on the disk runs on a blocking thread, never on a tokio worker. Two
//! hot calls run in place instead, when they do not wait on the disk (short of the kernel
//! throttling writers for dirty memory): an append into space the active segment already
//! reserved and zeroed (one `pwritev` into the page cache), and a replication read from the
//! last segment (pages just written).

use crate::codec::{self, log_index, log_index_of, raft_index, to_raft_log_id, to_store_log_id};
use crate::numbers::RaftIndex;
use crate::types::{Command, Entry, LogId, Payload, TypeConfig, Vote};
use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, Mutex};
use strata_log::{Log, LogError, LogIndex, LogReader, NewEntry};

fn io_err(e: LogError) -> io::Error {
    io::Error::other(e)
}

use strata_record::sync::lock;

struct Inner {
    log: Mutex<Log>,
    /// For a purge past the log end: the installed snapshot's next offset.
    state: Option<Arc<crate::state_machine::PartitionState>>,
    reader: LogReader,
    vote: Mutex<Option<Vote>>,
    /// Bytes cap of one `limited_get_log_entries` call (one append request to a follower).
    append_bytes_max: usize,
    /// `strata_append_to_durable_seconds`, looked up once (not per append).
    append_to_durable: metrics::Histogram,
}

/// The Raft log storage of one partition; cheap to clone (shared state).
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Inner>,
}

impl Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore").finish_non_exhaustive()
    }
}

/// Reads entries and the vote for openraft's replication and apply tasks.
#[derive(Clone)]
pub struct LogStoreReader {
    inner: Arc<Inner>,
}

impl Debug for LogStoreReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStoreReader").finish_non_exhaustive()
    }
}

impl LogStore {
    /// Wraps an opened log; reads the saved vote. `append_bytes_max` caps the bytes of entries
    /// one replication request carries.
    pub fn new(
        log: Log,
        append_bytes_max: usize,
        state: Option<Arc<crate::state_machine::PartitionState>>,
    ) -> io::Result<LogStore> {
        let vote = match log.read_vote().map_err(io_err)? {
            Some(bytes) => Some(codec::decode_vote(&bytes).map_err(io::Error::other)?),
            None => None,
        };
        let reader = log.reader();
        Ok(LogStore {
            inner: Arc::new(Inner {
                log: Mutex::new(log),
                state,
                reader,
                vote: Mutex::new(vote),
                append_bytes_max,
                append_to_durable: metrics::histogram!("strata_append_to_durable_seconds"),
            }),
        })
    }

    /// A reader of the underlying partition log (record fetches use it directly).
    pub fn log_reader(&self) -> LogReader {
        self.inner.reader.clone()
    }

    /// Runs `f` with the log on a blocking thread.
    async fn with_log<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Log) -> Result<T, LogError> + Send + 'static,
    ) -> io::Result<T> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&mut lock(&inner.log)))
            .await
            .map_err(io::Error::other)?
            .map_err(io_err)
    }

    /// The highest log index a successful sync covered (see `Log::durable_index`).
    pub fn durable_index(&self) -> LogIndex {
        lock(&self.inner.log).durable_index()
    }

    /// Stops all disk IO of this store's log now (see `Log::halt`), even while openraft's tasks
    /// still hold handles to it.
    pub async fn halt(&self) -> io::Result<()> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || lock(&inner.log).halt())
            .await
            .map_err(io::Error::other)
    }

    /// Closes the log cleanly (flush, indexes, checkpoint) if this is the last handle.
    pub async fn close(self) -> io::Result<()> {
        let Ok(inner) = Arc::try_unwrap(self.inner) else {
            return Ok(());
        };
        let log = inner.log.into_inner().unwrap_or_else(|e| e.into_inner());
        tokio::task::spawn_blocking(move || log.close())
            .await
            .map_err(io::Error::other)?
            .map_err(io_err)
    }
}

/// openraft's range of Raft indexes as the half-open range of log indexes `start..end`.
fn bounds_to_log_range(range: &impl RangeBounds<u64>) -> (LogIndex, LogIndex) {
    let start = match range.start_bound() {
        Bound::Included(s) => *s,
        Bound::Excluded(s) => s + 1,
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(e) => e + 1,
        Bound::Excluded(e) => *e,
        Bound::Unbounded => u64::MAX - 1,
    };
    (
        log_index(RaftIndex::new(start)),
        log_index(RaftIndex::new(end.min(u64::MAX - 2))),
    )
}

impl LogStoreReader {
    /// Entries with log indexes in `start..end`, as openraft entries.
    fn read(&self, start: LogIndex, end: LogIndex, bytes_max: usize) -> io::Result<Vec<Entry>> {
        let b = self.inner.reader.bounds();
        let last = b.last_log_id.map_or(LogIndex::new(0), |l| l.index);
        let start = start.max(b.first_index);
        let end = end.min(last.next());
        if start >= end {
            return Ok(Vec::new());
        }
        let entries = self
            .inner
            .reader
            .entries(start, end, bytes_max)
            .map_err(io_err)?;
        entries
            .into_iter()
            .map(|e| {
                codec::decode_entry(e.term, raft_index(e.index), e.kind, e.payload)
                    .map_err(io::Error::other)
            })
            .collect()
    }
}

impl RaftLogReader<TypeConfig> for LogStoreReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> io::Result<Vec<Entry>> {
        let (start, end) = bounds_to_log_range(&range);
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.read(start, end, usize::MAX))
            .await
            .map_err(io::Error::other)?
    }

    async fn read_vote(&mut self) -> io::Result<Option<Vote>> {
        Ok(*lock(&self.inner.vote))
    }

    async fn limited_get_log_entries(&mut self, start: u64, end: u64) -> io::Result<Vec<Entry>> {
        let this = self.clone();
        let cap = self.inner.append_bytes_max;
        let (start, end) = (
            log_index(RaftIndex::new(start)),
            log_index(RaftIndex::new(end)),
        );
        // Replication reads what was just appended: in the page cache, read here. Older
        // entries (a follower catching up) may wait on the disk, on a blocking thread.
        if self.inner.reader.is_in_last_segment(start) {
            return self.read(start, end, cap);
        }
        tokio::task::spawn_blocking(move || this.read(start, end, cap))
            .await
            .map_err(io::Error::other)?
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStoreReader;

    async fn get_log_state(&mut self) -> io::Result<LogState<TypeConfig>> {
        let b = self.inner.reader.bounds();
        let last_purged_log_id = b.last_purged.map(to_raft_log_id);
        let last_log_id = b.last_log_id.map(to_raft_log_id).or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        LogStoreReader {
            inner: self.inner.clone(),
        }
    }

    async fn save_vote(&mut self, vote: &Vote) -> io::Result<()> {
        let bytes = codec::encode_vote(vote);
        self.with_log(move |log| {
            // Earlier appends must be durable before the vote that follows them.
            log.flush_wait()?;
            log.save_vote(&bytes)
        })
        .await?;
        *lock(&self.inner.vote) = Some(*vote);
        Ok(())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> io::Result<()> {
        if let Some(c) = committed {
            lock(&self.inner.log).save_committed(to_store_log_id(&c));
        }
        Ok(())
    }

    async fn read_committed(&mut self) -> io::Result<Option<LogId>> {
        Ok(lock(&self.inner.log).read_committed().map(to_raft_log_id))
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<TypeConfig>) -> io::Result<()>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        let started = std::time::Instant::now();
        let encoded: Vec<Encoded> = entries
            .iter()
            .map(|e| {
                let (kind, payload) = codec::encode_payload(&e.payload);
                // A leader's stamp is checked by the log against its own (follower side).
                let stamped =
                    matches!(&e.payload, Payload::Normal(Command::Batch(b)) if b.is_stamped());
                Encoded {
                    term: e.log_id.committed_leader_id().term,
                    index: log_index_of(&e.log_id),
                    kind,
                    payload,
                    stamped,
                }
            })
            .collect();
        let bytes: u64 = encoded.iter().map(|e| e.payload.len() as u64).sum();
        let histogram = self.inner.append_to_durable.clone();
        // The common case, a write into space the active segment already reserved, is one
        // `pwritev` into the page cache: done here, it spares two thread hand-offs per append
        // on every replica. A roll or an extension (file creation, `fallocate`), or a log
        // busy with other work, goes to a blocking thread.
        if let Ok(mut log) = self.inner.log.try_lock()
            && log.fits_in_place(bytes, encoded.len())
        {
            return append_now(&mut log, &entries, &encoded, started, histogram, callback)
                .map_err(io_err);
        }
        self.with_log(move |log| append_now(log, &entries, &encoded, started, histogram, callback))
            .await
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> io::Result<()> {
        let keep = last_log_id.map_or(LogIndex::new(0), |l| log_index_of(&l));
        self.with_log(move |log| log.truncate_after(keep)).await
    }

    async fn purge(&mut self, log_id: LogId) -> io::Result<()> {
        let id = to_store_log_id(&log_id);
        let snapshot_next = self
            .inner
            .state
            .as_ref()
            .and_then(|s| s.snapshot_next_offset(&log_id));
        self.with_log(move |log| {
            if log.last_log_id().is_none_or(|last| id.index > last.index) {
                // Purging past the end (after a snapshot install) leaves an empty log whose
                // last entry is `id` and whose next offset is the snapshot's.
                let next = snapshot_next.unwrap_or(log.next_offset());
                return log.reset_to(id, next);
            }
            log.purge(id)
        })
        .await
    }
}

/// An entry encoded for the log.
struct Encoded {
    term: u64,
    index: LogIndex,
    kind: strata_log::EntryKind,
    payload: bytes::Bytes,
    stamped: bool,
}

/// Appends `encoded` (the encoding of `entries`) and hands openraft's callback to the flusher.
fn append_now(
    log: &mut Log,
    entries: &[Entry],
    encoded: &[Encoded],
    started: std::time::Instant,
    histogram: metrics::Histogram,
    callback: IOFlushed<TypeConfig>,
) -> Result<(), LogError> {
    let new: Vec<NewEntry<'_>> = encoded
        .iter()
        .map(|e| NewEntry {
            term: e.term,
            index: e.index,
            kind: e.kind,
            payload: &e.payload,
            stamped: e.stamped,
            // A batch proposed on this leader passed `Batch::parse` (CRC32C included) in
            // `Partition::append`; one from a leader is checked here.
            verified: !e.stamped && e.kind == strata_log::EntryKind::Data,
        })
        .collect();
    let appended = log.append(&new)?;
    // Writers waiting for `acks=leader` learn their offset now.
    for (e, a) in entries.iter().zip(&appended) {
        if let Payload::Normal(Command::Batch(b)) = &e.payload
            && let Some(ack) = b.take_local_ack()
        {
            ack(a.base_offset);
        }
    }
    log.flush(move |r| {
        if r.is_ok() {
            histogram.record(started.elapsed().as_secs_f64());
        }
        callback.io_completed(r.map_err(io_err));
    });
    Ok(())
}
