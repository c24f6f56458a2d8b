//! The write path: appending a producer batch with its acknowledgement ([`Acks`]), the
//! proposal and the wait for its outcome, and control entries of higher layers.

use super::idempotence::{SEQUENCE_WAIT, SequenceCheck};
use super::{Partition, applied_as_another_kind, lock};
use crate::error::PartitionError;
use crate::numbers::RaftIndex;
use crate::types::{Applied, BatchCommand, Command, TypeConfig};
use bytes::Bytes;
use openraft::error::{ClientWriteError, RaftError};
use openraft::impls::ProgressResponder;
use std::sync::Arc;
use strata_log::Offset;
use strata_record::Batch;
use strata_record::sequence::is_ahead;
use tokio::sync::oneshot;

/// How a write is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// Committed by a majority, each replica having fsynced it. Never lost.
    All,
    /// Appended to the leader's log (not yet durable nor replicated): lost if the leader fails
    /// before it replicates, and its offset then reused (as Kafka's acks=1).
    Leader,
    /// Handed to the leader; no offset is returned.
    None,
}

/// Producers whose ordering locks are kept before unused ones are dropped.
const SEQUENCE_LOCKS_KEPT: usize = 1024;

/// A batch handed to Raft, and where its outcome arrives.
struct Submitted {
    /// The offset, once this leader appended it.
    local_rx: oneshot::Receiver<Offset>,
    /// Set when this leader appended it.
    appended: Arc<std::sync::atomic::AtomicBool>,
    /// The outcome, once applied (or failed).
    complete_rx: openraft::type_config::alias::OneshotReceiverOf<
        TypeConfig,
        openraft::raft::ClientWriteResult<TypeConfig>,
    >,
    proposed: std::time::Instant,
}

impl Partition {
    /// Appends one producer batch. Returns its base offset (`None` with [`Acks::None`]).
    ///
    /// The batch is fully checked first (CRC, lengths, records, no transactional or control
    /// bits, supported codec). An idempotent producer's batch (producer id >= 0) is checked
    /// against the applied producer state and this leader's in-flight batches: a duplicate is
    /// answered with its original offset without writing, a gap is `OutOfOrderSequence`.
    pub async fn append(&self, batch: Bytes, acks: Acks) -> Result<Option<i64>, PartitionError> {
        Ok(self.append_batch(batch, acks).await?.map(Offset::get))
    }

    /// [`Partition::append`], with the offset as this crate carries it.
    async fn append_batch(
        &self,
        batch: Bytes,
        acks: Acks,
    ) -> Result<Option<Offset>, PartitionError> {
        // Only the header is kept: the checked reader of a compressed batch holds its
        // decompressed records, which must not stay resident while the batch replicates.
        let h = *Batch::parse(batch.clone())
            .map_err(|e| PartitionError::InvalidBatch {
                reason: e.to_string(),
            })?
            .header();
        if h.producer_id >= 0 && acks != Acks::All {
            // Kafka refuses the same: with acks=leader the entry's fate is unknown when the
            // answer leaves (a retry could be written twice), and with acks=none nobody would
            // ever learn it.
            return Err(PartitionError::InvalidBatch {
                reason: format!(
                    "an idempotent producer's batch (producer id {}) requires acks=all",
                    h.producer_id
                ),
            });
        }
        self.ready_leader().await?;
        let term = self.with_metrics(|m| m.current_term);
        if h.producer_id < 0 {
            return self.propose(batch, acks).await.0;
        }
        self.propose_clock_if_due(term).await;
        // A batch ahead of its predecessors waits for them (bounded): with several requests
        // in flight, the later one may be served first. The check and the hand-off to Raft
        // happen under one lock, so batches of a producer enter the log in sequence order.
        let mut progress = self.sequence_progress.subscribe();
        let give_up = tokio::time::Instant::now() + SEQUENCE_WAIT;
        let order_lock = self.sequence_lock(h.producer_id);
        let (report, submitted) = loop {
            let order = order_lock.lock().await;
            progress.borrow_and_update();
            let checked = self.check_sequence(
                term,
                h.producer_id,
                h.producer_epoch,
                h.base_sequence,
                h.record_count as u32,
            );
            match checked {
                Err(PartitionError::OutOfOrderSequence { expected, got, .. })
                    if is_ahead(expected, got) && tokio::time::Instant::now() < give_up =>
                {
                    drop(order);
                    let _ = tokio::time::timeout_at(give_up, progress.changed()).await;
                }
                Err(e) => return Err(e),
                Ok(SequenceCheck::Duplicate(offset)) => return Ok(Some(offset)),
                Ok(SequenceCheck::Wait(mut rx)) => {
                    drop(order);
                    let r = rx
                        .wait_for(|v| v.is_some())
                        .await
                        .map_err(|_| PartitionError::Indeterminate {
                            reason: "the original write was abandoned".into(),
                        })?
                        .clone();
                    return r
                        .unwrap_or_else(|| {
                            Err(PartitionError::Internal {
                                reason: "an in-flight write published no outcome".into(),
                            })
                        })
                        .map(Some);
                }
                Ok(SequenceCheck::Propose(r)) => {
                    let submitted = self.submit(batch.clone()).await;
                    drop(order);
                    break (r, submitted);
                }
            }
        };
        let (result, live) = match submitted {
            Ok(s) => self.outcome(s, acks).await,
            Err(e) => (Err(e), false),
        };
        if let Some((pid, first_seq, tx)) = report {
            let outcome = match &result {
                Ok(Some(o)) => Ok(*o),
                Ok(None) => Err(PartitionError::Indeterminate {
                    reason: "written without acknowledgement".into(),
                }),
                Err(e) => Err(e.clone()),
            };
            let _ = tx.send(Some(outcome.clone()));
            // An entry whose fate is still open (not awaited, or timed out waiting for its
            // commit) may still commit in this term, so it stays in flight: a retry waits on
            // it or finds it applied, and a new leadership drops it.
            let mut inflight = lock(&self.inflight);
            if !live && let Some(f) = inflight.get_mut(&pid).filter(|f| f.term == term) {
                f.pending.remove(&first_seq);
                if outcome.is_err() {
                    // Later batches of this producer will fail too; retries are checked
                    // against the applied state again.
                    inflight.remove(&pid);
                } else if f.pending.is_empty() {
                    inflight.remove(&pid);
                }
            }
            drop(inflight);
            self.sequence_progress.send_modify(|n| *n += 1);
        }
        result
    }

    /// Proposes one batch and waits as `acks` says. Also returns whether the entry may still
    /// commit although no outcome is known (acks=none, or with acks=all the commit wait timed
    /// out or this replica lost the leadership first).
    async fn propose(
        &self,
        batch: Bytes,
        acks: Acks,
    ) -> (Result<Option<Offset>, PartitionError>, bool) {
        match self.submit(batch).await {
            Ok(s) => self.outcome(s, acks).await,
            Err(e) => (Err(e), false),
        }
    }

    /// The ordering lock of producer `pid` (see `Partition::sequence_order`).
    fn sequence_lock(&self, pid: i64) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = lock(&self.sequence_order);
        if locks.len() > SEQUENCE_LOCKS_KEPT {
            locks.retain(|_, l| Arc::strong_count(l) > 1);
        }
        locks.entry(pid).or_default().clone()
    }

    /// Hands one batch to Raft (it takes its place in the log's order now) without waiting
    /// for any outcome.
    async fn submit(&self, batch: Bytes) -> Result<Submitted, PartitionError> {
        let (local_tx, local_rx) = oneshot::channel::<Offset>();
        let appended = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = appended.clone();
        let cmd = BatchCommand::with_local_ack(
            batch,
            Box::new(move |offset| {
                flag.store(true, std::sync::atomic::Ordering::SeqCst);
                let _ = local_tx.send(offset);
            }),
        );
        let (responder, _commit_rx, complete_rx) = ProgressResponder::new();
        let proposed = std::time::Instant::now();
        self.raft
            .client_write_ff(Command::Batch(cmd), Some(responder))
            .await?;
        Ok(Submitted {
            local_rx,
            appended,
            complete_rx,
            proposed,
        })
    }

    /// Waits for a submitted batch as `acks` says; see [`Partition::propose`].
    async fn outcome(
        &self,
        s: Submitted,
        acks: Acks,
    ) -> (Result<Option<Offset>, PartitionError>, bool) {
        let Submitted {
            local_rx,
            appended,
            complete_rx,
            proposed,
        } = s;
        match acks {
            Acks::None => (Ok(None), true),
            Acks::Leader => {
                let r = tokio::select! {
                    r = local_rx => r.map(Some).map_err(|_| PartitionError::Indeterminate {
                        reason: "the leader stopped before appending".into(),
                    }),
                    r = complete_rx => self.write_outcome(r.ok(), &appended),
                };
                (r, false)
            }
            // Until committed, deposed (the entry's fate is then decided by the new leader: the
            // client retries, learns the leader from this node and resends there) or timed out.
            Acks::All => {
                let reason = tokio::select! {
                    biased;
                    r = complete_rx => {
                        if matches!(r, Ok(Ok(_))) {
                            self.propose_to_applied
                                .record(proposed.elapsed().as_secs_f64());
                        }
                        return (self.write_outcome(r.ok(), &appended), false);
                    }
                    leader = self.deposed() => format!(
                        "leadership lost before the entry committed (leader now {leader:?})"
                    ),
                    () = tokio::time::sleep(self.write_timeout) => {
                        format!("not committed within {:?}", self.write_timeout)
                    }
                };
                (Err(PartitionError::Indeterminate { reason }), true)
            }
        }
    }

    fn write_outcome(
        &self,
        r: Option<openraft::raft::ClientWriteResult<TypeConfig>>,
        appended: &std::sync::atomic::AtomicBool,
    ) -> Result<Option<Offset>, PartitionError> {
        match r {
            Some(Ok(resp)) => match resp.data {
                Applied::Batch { base_offset, .. } => Ok(Some(base_offset)),
                other @ (Applied::Control | Applied::Retained { .. }) => {
                    applied_as_another_kind(RaftIndex::new(resp.log_id.index), "batch", &other)
                }
            },
            // Not the leader, or discarded on a leader change (fate unknown): see the
            // conversion.
            Some(Err(e)) => Err(e.into()),
            None if appended.load(std::sync::atomic::Ordering::SeqCst) => {
                Err(PartitionError::Indeterminate {
                    reason: "the replica stopped after appending".into(),
                })
            }
            None => Err(PartitionError::NotLeader {
                leader_id: None,
                leader_addr: None,
            }),
        }
    }

    /// Proposes a control entry (opaque to the partition; a [`StateHook`](crate::state_machine::StateHook) applies it on every
    /// replica) and waits until it is applied on this leader. Returns its Raft index, by which
    /// the hook can find what applying it produced.
    pub async fn propose_control(&self, payload: Bytes) -> Result<RaftIndex, PartitionError> {
        self.ready_leader().await?;
        let write = self.raft.client_write(Command::Control(payload));
        let r = match tokio::time::timeout(self.write_timeout, write).await {
            Ok(r) => r,
            Err(_) => {
                return Err(PartitionError::Indeterminate {
                    reason: format!("not committed within {:?}", self.write_timeout),
                });
            }
        };
        match r {
            Ok(resp) => match resp.data {
                Applied::Control => Ok(RaftIndex::new(resp.log_id.index)),
                other @ (Applied::Batch { .. } | Applied::Retained { .. }) => {
                    applied_as_another_kind(RaftIndex::new(resp.log_id.index), "control", &other)
                }
            },
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => Err(f.into()),
            Err(e) => Err(PartitionError::Indeterminate {
                reason: e.to_string(),
            }),
        }
    }
}
