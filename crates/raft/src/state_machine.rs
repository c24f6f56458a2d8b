//! [`StateMachine`]: the partition's Raft state machine. It holds no record data (records live
//! in the log): applying a batch advances the high watermark, records producer state and
//! answers the writer with its base offset; applying a membership records it.
//!
//! The high watermark has Kafka's meaning: the offset after the last record of the last
//! committed entry. It never goes down (asserted). [`PartitionState`] shares it, with a watch
//! channel that wakes waiting fetches.

use crate::producers::{ProducerTable, RecentBatch, last_sequence};
use crate::types::{Applied, Command, LogId, Payload, SnapshotData, StoredMembership, TypeConfig};
use futures_util::StreamExt;
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{RaftSnapshotBuilder, SnapshotMeta};
use std::io;
use std::sync::{Arc, Mutex};
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
    pub next_offset: i64,
    /// Producer state.
    pub producers: ProducerTable,
    /// The hook's state.
    pub hook: Vec<u8>,
}

/// Encodes a snapshot's state.
pub fn encode_snapshot(s: &SnapshotState) -> SnapshotData {
    let mut out = vec![SNAPSHOT_VERSION];
    out.extend_from_slice(&s.next_offset.to_le_bytes());
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
    let next_offset = i64::from_le_bytes(rest[..8].try_into().map_err(|_| bad())?);
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

/// A layer above the partition (consumer offsets, queue state) that keeps replicated state in
/// the partition: it sees every committed entry in order, and its state rides in snapshots.
pub trait StateHook: Send + Sync + 'static {
    /// A committed batch at `base_offset`.
    fn apply_batch(&self, log_id: &LogId, base_offset: i64, batch: &[u8]);
    /// A committed control entry.
    fn apply_control(&self, log_id: &LogId, payload: &[u8]);
    /// The hook's state, for a snapshot.
    fn snapshot(&self) -> Vec<u8>;
    /// Replaces the hook's state from a snapshot.
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

/// State shared by the state machine and the partition's readers and writers.
#[derive(Debug)]
pub struct PartitionState {
    high_watermark: watch::Sender<i64>,
    applied: Mutex<AppliedState>,
    /// The current snapshot (built or installed) and its meta.
    snapshot: Mutex<Option<Snapshot>>,
    /// Producers idle this long (by batch timestamps) are forgotten.
    producer_expiry_ms: i64,
}

impl PartitionState {
    /// A state at high watermark `start` (0 for a new partition).
    pub fn new(start: i64, producer_expiry_ms: i64) -> Arc<PartitionState> {
        Arc::new(PartitionState {
            high_watermark: watch::channel(start).0,
            applied: Mutex::new(AppliedState::default()),
            snapshot: Mutex::new(None),
            producer_expiry_ms,
        })
    }

    /// The high watermark as applied on this replica.
    pub fn high_watermark(&self) -> i64 {
        *self.high_watermark.borrow()
    }

    /// A receiver that changes when the high watermark does.
    pub fn watch_high_watermark(&self) -> watch::Receiver<i64> {
        self.high_watermark.subscribe()
    }

    /// A copy of what has been applied.
    pub fn applied(&self) -> AppliedState {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, AppliedState> {
        self.applied.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn advance(&self, hw: i64) {
        self.high_watermark.send_if_modified(|cur| {
            assert!(hw >= *cur, "high watermark went back from {cur} to {hw}");
            let changed = hw != *cur;
            *cur = hw;
            changed
        });
    }

    /// The next record offset of the current snapshot, if its last log id is `last`: the log
    /// store resets to it when openraft purges past the log end after installing it.
    pub fn snapshot_next_offset(&self, last: &LogId) -> Option<i64> {
        let s = self.snapshot.lock().unwrap_or_else(|e| e.into_inner());
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
        let reply = match &entry.payload {
            Payload::Blank => None,
            Payload::Normal(Command::Batch(b)) => {
                let h = BatchHeader::parse(&b.bytes).map_err(io::Error::other)?;
                let next = h.base_offset + h.record_count as i64;
                if h.producer_id >= 0 {
                    a.producers.record(
                        h.producer_id,
                        h.producer_epoch,
                        RecentBatch {
                            first_sequence: h.base_sequence,
                            last_sequence: last_sequence(h.base_sequence, h.record_count as u32),
                            base_offset: h.base_offset,
                            record_count: h.record_count as u32,
                        },
                        h.max_timestamp,
                    );
                    a.producers
                        .expire(h.max_timestamp, self.state.producer_expiry_ms);
                }
                if let Some(hook) = &self.hook {
                    hook.apply_batch(&log_id, h.base_offset, &b.bytes);
                }
                self.state.advance(next);
                Some(Applied::Batch {
                    base_offset: h.base_offset,
                    record_count: h.record_count as u32,
                })
            }
            Payload::Normal(Command::Control(bytes)) => {
                if let Some(hook) = &self.hook {
                    hook.apply_control(&log_id, bytes);
                }
                Some(Applied::Control)
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
        *state.snapshot.lock().unwrap_or_else(|e| e.into_inner()) = Some(snap.clone());
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
        *self
            .state
            .snapshot
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(Snapshot {
            meta: meta.clone(),
            snapshot,
        });
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> io::Result<Option<Snapshot>> {
        Ok(self
            .state
            .snapshot
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone())
    }
}
