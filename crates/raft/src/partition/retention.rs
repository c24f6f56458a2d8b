//! Retention: the leader proposes a cut at a checkpointed segment boundary; every replica
//! persists the state there as its snapshot, and a task per replica then purges its log up to it.

use super::{Partition, Raft, applied_as_another_kind};
use crate::error::PartitionError;
use crate::numbers::RaftIndex;
use crate::types::{Applied, Command};
use openraft::error::{ClientWriteError, RaftError};
use std::time::Duration;
use strata_log::Offset;
use tokio::sync::watch;

/// After a retention entry is applied on this replica (or found persisted at open): make
/// openraft take the retention snapshot, then purge the log up to it. openraft purges only
/// what a snapshot covers, and never on its own (`max_in_snapshot_log_to_keep` is unbounded).
pub(super) async fn retention_task(
    raft: Raft,
    mut retained: watch::Receiver<Option<crate::types::LogId>>,
) {
    let mut upto = *retained.borrow_and_update();
    loop {
        if let Some(upto) = upto {
            if raft.trigger().snapshot().await.is_err() {
                return;
            }
            let covered = raft
                .wait(Some(Duration::from_secs(30)))
                .metrics(
                    |m| m.snapshot.is_some_and(|s| s.index >= upto.index),
                    "retention snapshot",
                )
                .await;
            if covered.is_ok() && raft.trigger().purge_log(upto.index).await.is_err() {
                return;
            }
        }
        if retained.changed().await.is_err() {
            return;
        }
        upto = *retained.borrow_and_update();
    }
}

impl Partition {
    /// Drops whole segments of records below `offset` (retention; leader only). The cut is at
    /// the latest segment boundary at or below `offset` whose state this leader checkpointed
    /// when it applied it: every replica persists that state as its snapshot, then purges the
    /// log up to it; a replica that falls behind it catches up by installing the snapshot.
    /// Returns the new log start offset, or `None` if no boundary lies in range.
    pub async fn retain_before(&self, offset: i64) -> Result<Option<i64>, PartitionError> {
        self.ready_leader().await?;
        let hw = self.state.high_watermark();
        let Some(cp) = self
            .state
            .checkpoint_at_or_before(Offset::new(offset).min(hw))
        else {
            return Ok(None);
        };
        if cp.state.next_offset <= self.reader.bounds().log_start_offset {
            return Ok(None);
        }
        let start = self.propose_retain(cp).await?;
        Ok(Some(start.get()))
    }

    /// Compacts a partition whose state lives in its [`StateHook`](crate::state_machine::StateHook)
    /// (the controller, `__consumer_offsets`): drops every whole segment before the latest
    /// boundary this leader checkpointed, whatever the record offsets (a log of control
    /// entries has none). The hook's state at the boundary rides in the retention snapshot,
    /// so nothing of the state is lost. Returns the Raft index cut up to, or `None` when no
    /// boundary lies past the last cut.
    pub async fn compact(&self) -> Result<Option<RaftIndex>, PartitionError> {
        self.ready_leader().await?;
        let retained = *self.state.watch_retained().borrow();
        let Some(cp) = self.state.latest_checkpoint_after(retained) else {
            return Ok(None);
        };
        let upto = RaftIndex::new(cp.upto.index);
        self.propose_retain(cp).await?;
        Ok(Some(upto))
    }

    /// Proposes a retention entry at checkpoint `cp` and waits until this leader applied it;
    /// returns the new log start offset.
    async fn propose_retain(
        &self,
        cp: crate::state_machine::Checkpoint,
    ) -> Result<Offset, PartitionError> {
        let cmd = Command::Retain(crate::types::RetainCommand {
            upto: cp.upto,
            membership: cp.membership,
            state: crate::state_machine::encode_snapshot(&cp.state),
        });
        // Bounded: a leader cut off from its followers must not hold the caller (the node's
        // retention loop serves every partition) for as long as the fault lasts.
        let write = tokio::time::timeout(self.write_timeout, self.raft.client_write(cmd));
        let Ok(r) = write.await else {
            return Err(PartitionError::Indeterminate {
                reason: format!(
                    "retention entry not committed within {:?}",
                    self.write_timeout
                ),
            });
        };
        match r {
            Ok(resp) => match resp.data {
                Applied::Retained { start_offset } => Ok(start_offset),
                other @ (Applied::Batch { .. } | Applied::Control) => {
                    applied_as_another_kind(RaftIndex::new(resp.log_id.index), "retention", &other)
                }
            },
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => Err(f.into()),
            Err(e) => Err(PartitionError::Indeterminate {
                reason: e.to_string(),
            }),
        }
    }
}
