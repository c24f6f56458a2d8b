//! [`GroupsHook`]: the [`StateHook`] that keeps a `__consumer_offsets` partition's
//! [`GroupsState`] on every replica.
//!
//! Commands are JSON control entries. The hook applies each committed entry once (entries
//! replayed after a reopen are skipped by index), keeps the outcome of recent ones by index
//! for the proposer to collect, and snapshots the whole state, so retention can drop the
//! partition's old segments: the state a replica rebuilds is the snapshot plus what follows.

use crate::error::GroupError;
use crate::state::{Command, GroupsState};
use serde::{Deserialize, Serialize};
use std::io;
use std::sync::Mutex;
use strata_log::Offset;
use strata_raft::RaftIndex;
use strata_raft::outcomes::Outcomes;
use strata_raft::state_machine::StateHook;

#[derive(Debug, Default)]
struct Inner {
    state: GroupsState,
    outcomes: Outcomes<Result<(), GroupError>>,
}

#[derive(Serialize, Deserialize)]
struct Snapshot {
    applied: RaftIndex,
    state: GroupsState,
}

/// The groups of one `__consumer_offsets` partition, as this replica applied them.
#[derive(Debug, Default)]
pub struct GroupsHook {
    inner: Mutex<Inner>,
}

impl GroupsHook {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        strata_record::sync::lock(&self.inner)
    }

    /// Reads the state as applied so far.
    pub fn read<T>(&self, f: impl FnOnce(&GroupsState) -> T) -> T {
        f(&self.lock().state)
    }

    /// The outcome of applying the entry at `index`, once (`None` if not applied here or
    /// already collected).
    pub fn take_outcome(&self, index: RaftIndex) -> Option<Result<(), GroupError>> {
        self.lock().outcomes.take(index)
    }
}

impl StateHook for GroupsHook {
    fn apply_batch(&self, index: RaftIndex, _base_offset: Offset, _batch: &[u8]) {
        // The broker refuses produce requests to internal topics; a batch here is skipped.
        tracing::warn!(%index, "__consumer_offsets holds a record batch; ignored");
    }

    fn apply_control(&self, index: RaftIndex, payload: &[u8]) {
        let mut s = self.lock();
        if !s.outcomes.admit(index) {
            return;
        }
        let outcome = match serde_json::from_slice::<Command>(payload) {
            Ok(cmd) => {
                let r = s.state.apply(&cmd);
                if let Err(e @ GroupError::Invariant(_)) = &r {
                    tracing::error!(%index, error = %e, "group command refused");
                }
                r
            }
            Err(e) => {
                tracing::error!(%index, error = %e, "undecodable group command; skipped");
                Err(GroupError::InvalidRequest(format!(
                    "undecodable group command: {e}"
                )))
            }
        };
        s.outcomes.record(index, outcome);
    }

    fn snapshot(&self) -> Vec<u8> {
        let s = self.lock();
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
                state: GroupsState::default(),
            }
        } else {
            serde_json::from_slice(state)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?
        };
        let mut s = self.lock();
        s.outcomes.restore(snap.applied);
        s.state = snap.state;
        Ok(())
    }
}
