//! [`QueueHook`]: the [`StateHook`] of a data partition, keeping its queue groups'
//! [`QueuesState`] on every replica.
//!
//! Queue commands are JSON control entries in the partition's own Raft log, so the state of a
//! partition's queue groups moves with its leadership: the leader that serves the records is
//! the one that hands them out, and a new leader serves exactly what the old one confirmed.
//! The hook applies each committed entry once, keeps recent outcomes by index for the
//! proposer, snapshots the whole state (it rides in the retention snapshots), and wakes the
//! consumers waiting for records after every change.

use super::error::QueueError;
use super::state::{QueueCommand, QueueOutcome, QueuesState};
use serde::{Deserialize, Serialize};
use std::io;
use std::sync::Mutex;
use strata_log::Offset;
use strata_raft::RaftIndex;
use strata_raft::outcomes::Outcomes;
use strata_raft::state_machine::StateHook;

#[derive(Debug, Default)]
struct Inner {
    state: QueuesState,
    outcomes: Outcomes<Result<QueueOutcome, QueueError>>,
}

#[derive(Serialize, Deserialize)]
struct Snapshot {
    applied: RaftIndex,
    state: QueuesState,
}

/// The queue groups of one data partition, as this replica applied them.
#[derive(Debug, Default)]
pub struct QueueHook {
    inner: Mutex<Inner>,
    changed: tokio::sync::Notify,
}

impl QueueHook {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        strata_record::sync::lock(&self.inner)
    }

    /// Reads the state as applied so far.
    pub fn read<T>(&self, f: impl FnOnce(&QueuesState) -> T) -> T {
        f(&self.lock().state)
    }

    /// Whether any queue group reads this partition (cheap; the leader's duties skip
    /// partitions without).
    pub fn has_groups(&self) -> bool {
        !self.lock().state.groups.is_empty()
    }

    /// The outcome of applying the entry at `index`, once.
    pub fn take_outcome(&self, index: RaftIndex) -> Option<Result<QueueOutcome, QueueError>> {
        self.lock().outcomes.take(index)
    }

    /// Resolves after the next change of the state or of the log (a new batch): create it
    /// before reading the state it waits on.
    pub fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.changed.notified()
    }
}

impl StateHook for QueueHook {
    fn apply_batch(&self, _index: RaftIndex, _base_offset: Offset, _batch: &[u8]) {
        self.changed.notify_waiters();
    }

    fn apply_control(&self, index: RaftIndex, payload: &[u8]) {
        let mut s = self.lock();
        if !s.outcomes.admit(index) {
            return;
        }
        let outcome = match serde_json::from_slice::<QueueCommand>(payload) {
            Ok(cmd) => {
                let r = s.state.apply(&cmd);
                if let Err(e @ QueueError::Invariant(_)) = &r {
                    tracing::error!(%index, error = %e, "queue command refused");
                }
                r
            }
            Err(e) => {
                tracing::error!(%index, error = %e, "undecodable queue command; skipped");
                Err(QueueError::InvalidRequest(format!(
                    "undecodable queue command: {e}"
                )))
            }
        };
        s.outcomes.record(index, outcome);
        drop(s);
        self.changed.notify_waiters();
    }

    fn snapshot(&self) -> Vec<u8> {
        let s = self.lock();
        if s.state.groups.is_empty() && s.outcomes.applied() == RaftIndex::default() {
            return Vec::new();
        }
        let snap = Snapshot {
            applied: s.outcomes.applied(),
            state: s.state.clone(),
        };
        serde_json::to_vec(&snap).unwrap_or_default()
    }

    fn restore(&self, state: &[u8]) -> io::Result<()> {
        let snap = if state.is_empty() {
            Snapshot {
                applied: RaftIndex::default(),
                state: QueuesState::default(),
            }
        } else {
            serde_json::from_slice(state)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?
        };
        let mut s = self.lock();
        s.outcomes.restore(snap.applied);
        s.state = snap.state;
        drop(s);
        self.changed.notify_waiters();
        Ok(())
    }
}
