//! Idempotent producers on the leader: the batches proposed and not yet applied (in flight,
//! per producer, for this leadership), the sequence check of a new batch against them and the
//! applied producer state (duplicate, wait for the original, propose, or refuse), and the
//! replicated clock producer expiry runs on.

use super::{Partition, lock};
use crate::error::PartitionError;
use crate::producers::{last_sequence, next_sequence_after};
use crate::types::Command;
use std::collections::HashMap;
use std::time::Duration;
use strata_log::Offset;
use tokio::sync::watch;

/// How often a leader serving idempotent producers proposes its wall clock (a `Clock` entry),
/// the replicated clock producer expiry runs on. Expiry is days; a minute's staleness is
/// nothing, and one 57-byte entry a minute per busy partition costs nothing either.
pub const CLOCK_INTERVAL: Duration = Duration::from_secs(60);

/// How long a batch that arrived ahead of its predecessors (a pipelining producer's requests
/// travel concurrently, and are not served in the order sent) waits for them before it is
/// answered `OUT_OF_ORDER_SEQUENCE`.
pub const SEQUENCE_WAIT: Duration = Duration::from_secs(1);

/// An idempotent producer's batches proposed by this leader and not yet applied.
#[derive(Debug)]
pub(super) struct Inflight {
    /// The term this replica led when the batches were proposed: entries of an earlier
    /// leadership are either in the log (and applied before this leader serves) or gone, so
    /// an entry of another term is stale and dropped.
    pub(super) term: u64,
    pub(super) epoch: i16,
    pub(super) next_sequence: i32,
    pub(super) pending: HashMap<i32, watch::Receiver<Option<Result<Offset, PartitionError>>>>,
}

/// Where the outcome of an in-flight idempotent batch is published (for its retries).
pub(super) type OutcomeSender = watch::Sender<Option<Result<Offset, PartitionError>>>;

pub(super) enum SequenceCheck {
    /// Propose it; the sender reports its outcome to retried duplicates.
    Propose(Option<(i64, i32, OutcomeSender)>),
    /// Already committed at this offset.
    Duplicate(Offset),
    /// The same batch is in flight: wait for its outcome.
    Wait(watch::Receiver<Option<Result<Offset, PartitionError>>>),
}

impl Partition {
    pub(super) fn check_sequence(
        &self,
        term: u64,
        pid: i64,
        epoch: i16,
        first: i32,
        count: u32,
    ) -> Result<SequenceCheck, PartitionError> {
        // The applied state is read under the in-flight lock: the original of a retried batch
        // leaves the in-flight map (under this lock) only after it was applied, so a retry
        // sees it either in flight or applied, never neither.
        let mut inflight = lock(&self.inflight);
        let applied = self.state.producer(pid);
        if inflight.get(&pid).is_some_and(|f| f.term != term) {
            inflight.remove(&pid);
        }
        let (known_epoch, mut expected) = match (inflight.get(&pid), &applied) {
            (Some(f), _) => (Some(f.epoch), f.next_sequence),
            (None, Some(p)) => (Some(p.epoch), p.next_sequence()),
            (None, None) => (None, 0),
        };
        if let Some(current) = known_epoch {
            if epoch < current {
                return Err(PartitionError::ProducerFenced {
                    producer_id: pid,
                    epoch,
                    current,
                });
            }
            if epoch > current {
                expected = 0;
            }
        }
        if first != expected {
            // A retry of a committed batch gets its original offset.
            if let Some(p) = &applied
                && p.epoch == epoch
                && let Some(b) = p.recent.iter().find(|b| b.first_sequence == first)
            {
                return Ok(SequenceCheck::Duplicate(b.base_offset));
            }
            if let Some(f) = inflight.get(&pid)
                && let Some(rx) = f.pending.get(&first)
            {
                return Ok(SequenceCheck::Wait(rx.clone()));
            }
            // Normal for a pipelining producer after a leader change (it resends in order):
            // at debug, as thousands of these after an election say nothing an operator acts on.
            tracing::debug!(
                node = self.node_id,
                term,
                producer_id = pid,
                expected,
                got = first,
                applied = ?applied.as_ref().map(|p| p.recent.iter().map(|b| (b.first_sequence, b.last_sequence, b.base_offset)).collect::<Vec<_>>()),
                inflight = ?inflight.get(&pid).map(|f| (f.term, f.next_sequence, f.pending.keys().copied().collect::<Vec<_>>())),
                hw = self.high_watermark(),
                "out of order sequence"
            );
            return Err(PartitionError::OutOfOrderSequence {
                producer_id: pid,
                expected,
                got: first,
            });
        }
        let (tx, rx) = watch::channel(None);
        let f = inflight.entry(pid).or_insert(Inflight {
            term,
            epoch,
            next_sequence: expected,
            pending: HashMap::new(),
        });
        if epoch > f.epoch {
            f.epoch = epoch;
            f.pending.clear();
        }
        f.next_sequence = next_sequence_after(last_sequence(first, count));
        f.pending.insert(first, rx);
        drop(inflight);
        self.sequence_progress.send_modify(|n| *n += 1);
        Ok(SequenceCheck::Propose(Some((pid, first, tx))))
    }

    /// Proposes this leader's wall clock (see [`CLOCK_INTERVAL`]) if it has not in this term
    /// or not for an interval. Fire and forget: it commits with the batches behind it, and a
    /// lost one is proposed again next time.
    pub(super) async fn propose_clock_if_due(&self, term: u64) {
        {
            let mut last = lock(&self.clock_proposed);
            if last.is_some_and(|(t, at)| t == term && at.elapsed() < CLOCK_INTERVAL) {
                return;
            }
            *last = Some((term, std::time::Instant::now()));
        }
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let _ = self
            .raft
            .client_write_ff(Command::Clock(now_ms), None)
            .await;
    }
}
