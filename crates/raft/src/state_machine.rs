//! [`StateMachine`]: the partition's Raft state machine. It holds no record data (records live
//! in the log): applying a batch advances the high watermark, records producer state and
//! answers the writer with its base offset; applying a membership records it.
//!
//! The high watermark has Kafka's meaning: the offset after the last record of the last
//! committed entry. It never goes down (asserted). [`PartitionState`] shares it, with a watch
//! channel that wakes waiting fetches.

use crate::numbers::RaftIndex;
use crate::producers::{ProducerTable, RecentBatch, last_sequence};
use crate::types::{Applied, Command, LogId, Payload, SnapshotData, StoredMembership, TypeConfig};
use futures_util::StreamExt;
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{RaftSnapshotBuilder, SnapshotMeta};
use std::io;
use std::sync::{Arc, Mutex};
use strata_log::Offset;
use strata_record::BatchHeader;
use tokio::sync::watch;

type CommittedLeaderId = <crate::types::LeaderId as openraft::vote::RaftLeaderId>::Committed;
/// A partition snapshot: meta (last log id, membership) and the encoded state.
pub type Snapshot =
    openraft::storage::Snapshot<CommittedLeaderId, u64, openraft::BasicNode, SnapshotData>;
/// A partition snapshot's meta.
pub type Meta = SnapshotMeta<CommittedLeaderId, u64, openraft::BasicNode>;

const SNAPSHOT_VERSION: u8 = 1;

/// The state a snapshot carries (no record data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotState {
    /// The offset the next record gets (the high watermark at the snapshot).
    pub next_offset: Offset,
    /// Producer state.
    pub producers: ProducerTable,
    /// The hook's state.
    pub hook: Vec<u8>,
}

/// Encodes a snapshot's state.
pub fn encode_snapshot(s: &SnapshotState) -> SnapshotData {
    let mut out = vec![SNAPSHOT_VERSION];
    out.extend_from_slice(&s.next_offset.get().to_le_bytes());
    s.producers.encode(&mut out);
    out.extend_from_slice(&(s.hook.len() as u32).to_le_bytes());
    out.extend_from_slice(&s.hook);
    SnapshotData::from(out)
}

/// Decodes [`encode_snapshot`]'s bytes.
pub fn decode_snapshot(b: &[u8]) -> io::Result<SnapshotState> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "malformed partition snapshot");
    let (&version, mut rest) = b.split_first().ok_or_else(bad)?;
    if version != SNAPSHOT_VERSION || rest.len() < 8 {
        return Err(bad());
    }
    let next_offset = Offset::new(i64::from_le_bytes(rest[..8].try_into().map_err(|_| bad())?));
    rest = &rest[8..];
    let producers = ProducerTable::decode(&mut rest).ok_or_else(bad)?;
    if rest.len() < 4 {
        return Err(bad());
    }
    let n = u32::from_le_bytes(rest[..4].try_into().map_err(|_| bad())?) as usize;
    rest = &rest[4..];
    if rest.len() != n {
        return Err(bad());
    }
    Ok(SnapshotState {
        next_offset,
        producers,
        hook: rest.to_vec(),
    })
}

/// A layer above the partition (consumer offsets, queue state, the controller's metadata)
/// that keeps replicated state in the partition: it sees every committed entry in order, and
/// its state rides in snapshots.
///
/// The contract, which every replica relies on to hold the same state:
///
/// - **Deterministic.** `apply_batch` and `apply_control` change the hook's state as a pure
///   function of the state before and the entry: no clock, no randomness, no environment.
///   What needs time takes it from the entry (a timestamp the leader stamped when proposing).
/// - **In log order, once per entry, for committed entries only.** Calls come from the
///   partition's state machine, under its applied-state lock, one at a time. After a restart
///   the hook is rebuilt: `restore` from the last snapshot (or nothing), then every committed
///   entry after it is applied again, in order. A hook whose state survives a reopen (the
///   same hook object is handed to the reopened replica) must skip entries it has already
///   seen: compare the Raft index ([`Outcomes`](crate::outcomes::Outcomes) does).
/// - **No IO, no blocking, no panics on input.** The calls run under a lock every read and
///   append of the partition may wait on. An entry the hook cannot decode is recorded as
///   refused in its state, not panicked on (the controller's hook records an outcome).
/// - **Snapshots.** `snapshot` is called under the same lock, at two moments: when the state
///   machine applies the first entry of a segment (its result, kept with the checkpoint, is
///   what a retention entry at that point will carry), and when a snapshot is built on
///   demand. It returns the state as of the last entry applied. `restore` replaces the whole
///   state with a `snapshot` result, when a replica installs a snapshot or reopens; it may
///   fail on bytes it cannot read, which stops the replica.
pub trait StateHook: Send + Sync + 'static {
    /// The committed batch at Raft index `index`, whose records start at `base_offset`.
    fn apply_batch(&self, index: RaftIndex, base_offset: Offset, batch: &[u8]);
    /// The committed control entry at Raft index `index`.
    fn apply_control(&self, index: RaftIndex, payload: &[u8]);
    /// The hook's state as of the last entry applied, for a snapshot.
    fn snapshot(&self) -> Vec<u8>;
    /// Replaces the hook's state from a [`StateHook::snapshot`] result.
    fn restore(&self, state: &[u8]) -> io::Result<()>;
}

/// What the state machine has applied.
#[derive(Debug, Clone, Default)]
pub struct AppliedState {
    /// Last applied log id.
    pub last_applied: Option<LogId>,
    /// Last applied membership.
    pub membership: StoredMembership,
    /// Producer state.
    pub producers: ProducerTable,
}

/// The state right after the last entry of a segment was applied: where retention can cut.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// The last entry of the segment.
    pub upto: LogId,
    /// The membership as of `upto`.
    pub membership: StoredMembership,
    /// The state as of `upto`.
    pub state: SnapshotState,
}

/// Checkpoints kept (the most recent; older boundaries are retained through newer ones).
pub const CHECKPOINTS_MAX: usize = 64;

/// File name of the persisted retention snapshot in the partition directory.
pub const SNAPSHOT_FILE: &str = "snapshot";

/// What the state machine needs of the log and the disk once the partition is open.
#[derive(Debug)]
struct Attached {
    reader: strata_log::LogReader,
    dir: std::path::PathBuf,
    disk: Arc<dyn strata_log::Disk>,
}

/// State shared by the state machine and the partition's readers and writers.
#[derive(Debug)]
pub struct PartitionState {
    high_watermark: watch::Sender<Offset>,
    applied: Mutex<AppliedState>,
    /// The last snapshot built on demand (tests, tools); never used to purge.
    built: Mutex<Option<Snapshot>>,
    /// The snapshot at the last retention point (persisted), if any.
    retained: Mutex<Option<Snapshot>>,
    /// The last retention point applied (the partition's retention task watches it).
    retained_upto: watch::Sender<Option<LogId>>,
    checkpoints: Mutex<std::collections::VecDeque<Checkpoint>>,
    attached: std::sync::OnceLock<Attached>,
    /// Producers idle this long (by batch timestamps) are forgotten.
    producer_expiry_ms: i64,
}

impl PartitionState {
    /// A state at high watermark `start` (0 for a new partition).
    pub fn new(start: Offset, producer_expiry_ms: i64) -> Arc<PartitionState> {
        Arc::new(PartitionState {
            high_watermark: watch::channel(start).0,
            applied: Mutex::new(AppliedState::default()),
            built: Mutex::new(None),
            retained: Mutex::new(None),
            retained_upto: watch::channel(None).0,
            checkpoints: Mutex::new(std::collections::VecDeque::new()),
            attached: std::sync::OnceLock::new(),
            producer_expiry_ms,
        })
    }

    /// Connects the state to its log (to see segment boundaries) and its directory (to persist
    /// retention snapshots), and loads the persisted snapshot if there is one: the state then
    /// starts at it, and openraft applies the log from the entry after it.
    pub fn attach(
        &self,
        reader: strata_log::LogReader,
        dir: std::path::PathBuf,
        disk: Arc<dyn strata_log::Disk>,
    ) -> io::Result<()> {
        let path = dir.join(SNAPSHOT_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let snap = decode_snapshot_file(&bytes)?;
                let data = decode_snapshot(&snap.snapshot)?;
                {
                    let mut a = self.lock();
                    a.last_applied = snap.meta.last_log_id;
                    a.membership = snap.meta.last_membership.clone();
                    a.producers = data.producers;
                }
                self.advance(data.next_offset);
                self.retained_upto.send_replace(snap.meta.last_log_id);
                *lock(&self.retained) = Some(snap);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let _ = self.attached.set(Attached { reader, dir, disk });
        Ok(())
    }

    /// A receiver of the last retention point applied.
    pub fn watch_retained(&self) -> watch::Receiver<Option<LogId>> {
        self.retained_upto.subscribe()
    }

    /// The latest checkpoint past the current retention point (for compaction of a log of
    /// control entries, whose record offsets do not move).
    pub fn latest_checkpoint_after(&self, retained: Option<LogId>) -> Option<Checkpoint> {
        let c = strata_record::sync::lock(&self.checkpoints);
        c.back()
            .filter(|cp| retained.is_none_or(|r| cp.upto.index > r.index))
            .cloned()
    }

    /// The latest checkpoint whose next offset is at most `offset`.
    pub fn checkpoint_at_or_before(&self, offset: Offset) -> Option<Checkpoint> {
        let c = strata_record::sync::lock(&self.checkpoints);
        c.iter()
            .rev()
            .find(|c| c.state.next_offset <= offset)
            .cloned()
    }

    /// The high watermark as applied on this replica.
    pub fn high_watermark(&self) -> Offset {
        *self.high_watermark.borrow()
    }

    /// A receiver that changes when the high watermark does.
    pub fn watch_high_watermark(&self) -> watch::Receiver<Offset> {
        self.high_watermark.subscribe()
    }

    /// A copy of what has been applied.
    pub fn applied(&self) -> AppliedState {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, AppliedState> {
        strata_record::sync::lock(&self.applied)
    }

    fn advance(&self, hw: Offset) {
        self.high_watermark.send_if_modified(|cur| {
            assert!(hw >= *cur, "high watermark went back from {cur} to {hw}");
            let changed = hw != *cur;
            *cur = hw;
            changed
        });
    }

    /// The next record offset of the current snapshot, if its last log id is `last`: the log
    /// store resets to it when openraft purges past the log end after installing it.
    pub fn snapshot_next_offset(&self, last: &LogId) -> Option<Offset> {
        let s = lock(&self.retained);
        let snap = s.as_ref()?;
        if snap.meta.last_log_id.as_ref() != Some(last) {
            return None;
        }
        decode_snapshot(&snap.snapshot).ok().map(|d| d.next_offset)
    }

    /// The producer table's entry for `producer_id`.
    pub fn producer(&self, producer_id: i64) -> Option<crate::producers::ProducerEntry> {
        self.lock().producers.producers.get(&producer_id).cloned()
    }
}

use strata_record::sync::lock;

const SNAPSHOT_FILE_MAGIC: &[u8; 4] = b"SSNP";

/// Encodes a snapshot for its file: magic, last log id, membership, data, CRC-32.
pub fn encode_snapshot_file(s: &Snapshot) -> Vec<u8> {
    let mut out = SNAPSHOT_FILE_MAGIC.to_vec();
    let (term, index) = s
        .meta
        .last_log_id
        .map_or((0, 0), |l| (l.committed_leader_id().term, l.index));
    out.extend_from_slice(&term.to_le_bytes());
    out.extend_from_slice(&index.to_le_bytes());
    let m = crate::codec::encode_stored_membership(&s.meta.last_membership);
    out.extend_from_slice(&(m.len() as u32).to_le_bytes());
    out.extend_from_slice(&m);
    out.extend_from_slice(&(s.snapshot.len() as u32).to_le_bytes());
    out.extend_from_slice(&s.snapshot);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Decodes [`encode_snapshot_file`]'s bytes.
pub fn decode_snapshot_file(b: &[u8]) -> io::Result<Snapshot> {
    let bad =
        |why: &str| io::Error::new(io::ErrorKind::InvalidData, format!("snapshot file: {why}"));
    if b.len() < 4 + 16 + 4 + 4 + 4 || &b[..4] != SNAPSHOT_FILE_MAGIC {
        return Err(bad("bad magic or too short"));
    }
    let (body, crc) = b.split_at(b.len() - 4);
    if crc32fast::hash(body).to_le_bytes() != crc {
        return Err(bad("checksum mismatch"));
    }
    let u64_at = |p: usize| -> io::Result<u64> {
        Ok(u64::from_le_bytes(
            body.get(p..p + 8)
                .ok_or_else(|| bad("truncated"))?
                .try_into()
                .map_err(|_| bad("truncated"))?,
        ))
    };
    let u32_at = |p: usize| -> io::Result<usize> {
        Ok(u32::from_le_bytes(
            body.get(p..p + 4)
                .ok_or_else(|| bad("truncated"))?
                .try_into()
                .map_err(|_| bad("truncated"))?,
        ) as usize)
    };
    let term = u64_at(4)?;
    let index = u64_at(12)?;
    let m_len = u32_at(20)?;
    let m = body
        .get(24..24 + m_len)
        .ok_or_else(|| bad("truncated membership"))?;
    let membership = crate::codec::decode_stored_membership(bytes::Bytes::copy_from_slice(m))
        .map_err(io::Error::other)?;
    let d_len = u32_at(24 + m_len)?;
    let data = body
        .get(28 + m_len..28 + m_len + d_len)
        .ok_or_else(|| bad("truncated data"))?;
    Ok(Snapshot {
        meta: Meta {
            last_log_id: Some(LogId::new(
                openraft::vote::leader_id_std::CommittedLeaderId::new(term),
                index,
            )),
            last_membership: membership,
        },
        snapshot: SnapshotData::copy_from_slice(data),
    })
}

/// The partition's Raft state machine.
#[derive(Clone)]
pub struct StateMachine {
    state: Arc<PartitionState>,
    hook: Option<Arc<dyn StateHook>>,
}

impl std::fmt::Debug for StateMachine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateMachine").finish_non_exhaustive()
    }
}

impl StateMachine {
    /// A state machine over `state`, with an optional hook of a higher layer.
    pub fn new(state: Arc<PartitionState>, hook: Option<Arc<dyn StateHook>>) -> StateMachine {
        StateMachine { state, hook }
    }

    fn apply_one(&self, entry: &crate::types::Entry) -> io::Result<Option<Applied>> {
        let log_id = entry.log_id;
        let mut a = self.state.lock();
        // The first entry of a segment: the state before it (after the last entry of the
        // previous segment) is a point retention can cut at. The segment exists by now, as the
        // entry was appended before it is applied.
        if let (Some(att), Some(prev)) = (self.state.attached.get(), a.last_applied)
            && prev.index + 1 == log_id.index
            && att
                .reader
                .is_segment_start(crate::codec::log_index_of(&log_id))
        {
            let cp = Checkpoint {
                upto: prev,
                membership: a.membership.clone(),
                state: SnapshotState {
                    next_offset: self.state.high_watermark(),
                    producers: a.producers.clone(),
                    hook: self.hook.as_ref().map(|h| h.snapshot()).unwrap_or_default(),
                },
            };
            let mut c = strata_record::sync::lock(&self.state.checkpoints);
            c.push_back(cp);
            while c.len() > CHECKPOINTS_MAX {
                c.pop_front();
            }
        }
        let reply = match &entry.payload {
            Payload::Blank => None,
            Payload::Normal(Command::Batch(b)) => {
                let h = BatchHeader::parse(&b.bytes).map_err(io::Error::other)?;
                let base_offset = Offset::new(h.base_offset);
                // Offsets are contiguous: every committed batch starts at the high watermark
                // the previous one left. A difference is a bug (in stamping, snapshot install
                // or apply order); the replica stops rather than serve wrong offsets.
                let hw = self.state.high_watermark();
                debug_assert_eq!(
                    base_offset, hw,
                    "batch at Raft index {} applied at base offset {base_offset} with the high watermark at {hw}",
                    log_id.index
                );
                if base_offset != hw {
                    return Err(io::Error::other(format!(
                        "invariant broken: the batch at Raft index {} has base offset {base_offset} but the high watermark is {hw}",
                        log_id.index
                    )));
                }
                let next = base_offset.plus_records(h.record_count as u32);
                if h.producer_id >= 0 {
                    a.producers.record(
                        h.producer_id,
                        h.producer_epoch,
                        RecentBatch {
                            first_sequence: h.base_sequence,
                            last_sequence: last_sequence(h.base_sequence, h.record_count as u32),
                            base_offset,
                            record_count: h.record_count as u32,
                        },
                    );
                }
                if let Some(hook) = &self.hook {
                    hook.apply_batch(RaftIndex::new(log_id.index), base_offset, &b.bytes);
                }
                self.state.advance(next);
                Some(Applied::Batch {
                    base_offset,
                    record_count: h.record_count as u32,
                })
            }
            Payload::Normal(Command::Control(bytes)) => {
                if let Some(hook) = &self.hook {
                    hook.apply_control(RaftIndex::new(log_id.index), bytes);
                }
                Some(Applied::Control)
            }
            Payload::Normal(Command::Clock(now_ms)) => {
                a.producers
                    .advance_clock(*now_ms, self.state.producer_expiry_ms);
                Some(Applied::Control)
            }
            Payload::Normal(Command::Retain(r)) => {
                drop(a);
                let start_offset = self.apply_retain(r)?;
                a = self.state.lock();
                Some(Applied::Retained { start_offset })
            }
            Payload::Membership(m) => {
                a.membership = StoredMembership::new(Some(log_id), m.clone());
                None
            }
        };
        a.last_applied = Some(log_id);
        Ok(reply)
    }
}

impl StateMachine {
    /// Writes `snap` as this replica's snapshot file (temp, fsync, rename, directory fsync) on
    /// a blocking thread: it must be durable before anything it covers is purged.
    async fn persist_snapshot(&self, snap: &Snapshot) -> io::Result<()> {
        let Some(att) = self.state.attached.get() else {
            return Ok(());
        };
        let disk = att.disk.clone();
        let dir = att.dir.clone();
        let bytes = encode_snapshot_file(snap);
        tokio::task::spawn_blocking(move || {
            strata_log::manifest::replace_file(&*disk, &dir, SNAPSHOT_FILE, &bytes)
        })
        .await
        .map_err(io::Error::other)?
        .map_err(io::Error::other)
    }

    /// Makes a persisted `snap` this replica's retention snapshot; checkpoints it covers are
    /// dropped.
    fn adopt_snapshot(&self, snap: Snapshot) {
        let upto = snap.meta.last_log_id.map_or(0, |l| l.index);
        strata_record::sync::lock(&self.state.checkpoints).retain(|c| c.upto.index > upto);
        *lock(&self.state.retained) = Some(snap);
    }

    /// Applies a retention entry whose snapshot is already persisted: it becomes current and
    /// the retention task is told to purge up to it.
    fn apply_retain(&self, r: &crate::types::RetainCommand) -> io::Result<Offset> {
        let data = decode_snapshot(&r.state)?;
        self.adopt_snapshot(retain_snapshot(r));
        self.state.retained_upto.send_replace(Some(r.upto));
        Ok(data.next_offset)
    }
}

/// The snapshot a retention entry makes: its state at its `upto`.
fn retain_snapshot(r: &crate::types::RetainCommand) -> Snapshot {
    Snapshot {
        meta: Meta {
            last_log_id: Some(r.upto),
            last_membership: r.membership.clone(),
        },
        snapshot: r.state.clone(),
    }
}

/// Builds a snapshot of the applied state: membership, next offset, producers, hook state.
/// It holds no record data, so it is small; records stay in the log (openraft is configured
/// never to purge the log on its own: see `crate::partition`).
#[derive(Clone)]
pub struct SnapshotBuilder {
    machine: StateMachine,
}

impl std::fmt::Debug for SnapshotBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SnapshotBuilder")
    }
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    type SnapshotData = SnapshotData;

    async fn build_snapshot(&mut self) -> io::Result<Snapshot> {
        let state = &self.machine.state;
        // After retention the snapshot is the retention point's: it is what lets openraft purge
        // exactly the retained entries and what a lagging replica installs.
        if let Some(r) = lock(&state.retained).clone() {
            return Ok(r);
        }
        let (meta, data) = {
            let a = state.lock();
            let data = SnapshotState {
                next_offset: state.high_watermark(),
                producers: a.producers.clone(),
                hook: self
                    .machine
                    .hook
                    .as_ref()
                    .map(|h| h.snapshot())
                    .unwrap_or_default(),
            };
            let meta = Meta {
                last_log_id: a.last_applied,
                last_membership: a.membership.clone(),
            };
            (meta, encode_snapshot(&data))
        };
        let snap = Snapshot {
            meta,
            snapshot: data,
        };
        *lock(&state.built) = Some(snap.clone());
        Ok(snap)
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = SnapshotData;
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> io::Result<(Option<LogId>, StoredMembership)> {
        let a = self.state.lock();
        Ok((a.last_applied, a.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> io::Result<()>
    where
        Strm: futures_util::Stream<Item = io::Result<EntryResponder<TypeConfig>>> + Unpin + Send,
    {
        while let Some(item) = entries.next().await {
            let (entry, responder) = item?;
            if let Payload::Normal(Command::Retain(r)) = &entry.payload {
                self.persist_snapshot(&retain_snapshot(r)).await?;
            }
            let reply = self.apply_one(&entry)?;
            if let Some(r) = responder {
                r.send(reply.unwrap_or(Applied::Control));
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            machine: self.clone(),
        }
    }

    async fn install_snapshot(
        &mut self,
        meta: &Meta,
        snapshot: Self::SnapshotData,
    ) -> io::Result<()> {
        let decoded = decode_snapshot(&snapshot)?;
        let snap = Snapshot {
            meta: meta.clone(),
            snapshot,
        };
        // Durable first: if this fails nothing changed.
        self.persist_snapshot(&snap).await?;
        if let Some(hook) = &self.hook {
            hook.restore(&decoded.hook)?;
        }
        {
            let mut a = self.state.lock();
            a.last_applied = meta.last_log_id;
            a.membership = meta.last_membership.clone();
            a.producers = decoded.producers;
        }
        self.state.advance(decoded.next_offset);
        self.adopt_snapshot(snap);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> io::Result<Option<Snapshot>> {
        let retained = lock(&self.state.retained).clone();
        Ok(retained.or_else(|| lock(&self.state.built).clone()))
    }
}
