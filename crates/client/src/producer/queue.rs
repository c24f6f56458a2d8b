//! [`PartitionQueue`]: one partition's records waiting to be sent, grouped into batches.
//!
//! `send` appends to the open batch; a batch is sealed when the next record would take it past
//! `batch_bytes`. The partition's sender task takes the oldest sealed batch, or the open batch
//! once its linger has passed (at once with a zero linger, a flush or a close).

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use strata_record::{BatchBuilder, NewRecord};
use tokio::sync::{Notify, OwnedSemaphorePermit, oneshot, watch};
use tokio::time::Instant;

use crate::error::Error;
use crate::records::RecordMetadata;

/// Where one record's outcome goes.
pub(crate) struct Completion {
    /// The caller's [`super::SendFuture`].
    pub(crate) tx: oneshot::Sender<Result<RecordMetadata, Error>>,
    /// The record's timestamp, for its [`RecordMetadata`].
    pub(crate) timestamp_ms: i64,
}

/// Records of one partition that travel together in one Produce request.
pub(crate) struct PendingBatch {
    /// The records, encoded; producer id and sequence are set when the batch is sent.
    pub(crate) builder: BatchBuilder,
    /// One per record, in order.
    pub(crate) completions: Vec<Completion>,
    /// The buffer space the records hold, returned when the batch is done.
    pub(crate) permit: Option<OwnedSemaphorePermit>,
    /// When its first record arrived: linger and delivery timeout count from here.
    pub(crate) created: Instant,
}

impl PendingBatch {
    fn new() -> PendingBatch {
        PendingBatch {
            builder: BatchBuilder::new(),
            completions: Vec::new(),
            permit: None,
            created: Instant::now(),
        }
    }
}

#[derive(Default)]
struct State {
    /// The batch records are appended to.
    open: Option<PendingBatch>,
    /// Full batches, oldest first.
    sealed: VecDeque<PendingBatch>,
    /// Records appended since the start.
    appended: u64,
    /// A flush asked for the open batch to go now.
    flush: bool,
    /// No more records: send what is left, then stop.
    closing: bool,
}

/// One partition's queue, shared by the producer (which appends) and the partition's sender
/// task (which takes batches).
pub(crate) struct PartitionQueue {
    /// The topic.
    pub(crate) topic: String,
    /// The partition.
    pub(crate) partition: u32,
    state: Mutex<State>,
    /// Wakes the sender task: a record arrived, a batch was sealed, a flush or close.
    wake: Notify,
    /// Records whose outcome is known (acknowledged or failed), for `flush`.
    done: watch::Sender<u64>,
}

impl PartitionQueue {
    /// An empty queue.
    pub(crate) fn new(topic: String, partition: u32) -> PartitionQueue {
        PartitionQueue {
            topic,
            partition,
            state: Mutex::new(State::default()),
            wake: Notify::new(),
            done: watch::Sender::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        strata_record::sync::lock(&self.state)
    }

    /// Appends `record` (holding `permit` of buffer space), sealing the open batch first if
    /// the record would take it past `batch_bytes`.
    pub(crate) fn push(
        &self,
        record: &NewRecord,
        permit: OwnedSemaphorePermit,
        completion: Completion,
        batch_bytes: usize,
    ) -> Result<(), Error> {
        let mut state = self.lock();
        if state.closing {
            return Err(Error::Closed("the producer is closed"));
        }
        if let Some(open) = &state.open
            && open.builder.estimated_size_with(record) > batch_bytes
        {
            seal(&mut state);
        }
        let open = state.open.get_or_insert_with(PendingBatch::new);
        if let Err(e) = open.builder.append(record) {
            // The record does not fit this batch (a timestamp delta or a length overflows):
            // try a batch of its own.
            if open.builder.is_empty() {
                return Err(Error::InvalidArgument {
                    field: "record".into(),
                    reason: e.to_string(),
                });
            }
            seal(&mut state);
            let open = state.open.get_or_insert_with(PendingBatch::new);
            open.builder
                .append(record)
                .map_err(|e| Error::InvalidArgument {
                    field: "record".into(),
                    reason: e.to_string(),
                })?;
        }
        let open = state.open.get_or_insert_with(PendingBatch::new);
        open.completions.push(completion);
        match &mut open.permit {
            Some(held) => held.merge(permit),
            None => open.permit = Some(permit),
        }
        if open.builder.estimated_size() >= batch_bytes {
            seal(&mut state);
        }
        state.appended += 1;
        drop(state);
        self.wake.notify_one();
        Ok(())
    }

    /// The next batch to send, waiting for one; `None` once closed and empty.
    pub(crate) async fn next_batch(&self, linger: Duration) -> Option<PendingBatch> {
        loop {
            let deadline = {
                let mut state = self.lock();
                if let Some(batch) = state.sealed.pop_front() {
                    return Some(batch);
                }
                match &state.open {
                    Some(open) => {
                        let deadline = open.created + linger;
                        if linger.is_zero()
                            || state.flush
                            || state.closing
                            || Instant::now() >= deadline
                        {
                            state.flush = false;
                            return state.open.take();
                        }
                        Some(deadline)
                    }
                    None if state.closing => return None,
                    None => {
                        // Everything a flush asked for is sealed or sent already.
                        state.flush = false;
                        None
                    }
                }
            };
            // `notify_one` stores a wakeup when this task is not waiting yet, so none is lost
            // between the unlock above and the wait below.
            match deadline {
                Some(deadline) => {
                    tokio::select! {
                        () = self.wake.notified() => {}
                        () = tokio::time::sleep_until(deadline) => {}
                    }
                }
                None => self.wake.notified().await,
            }
        }
    }

    /// Asks for the open batch to go now, and returns how many records were appended so far.
    pub(crate) fn request_flush(&self) -> u64 {
        let appended = {
            let mut state = self.lock();
            state.flush = true;
            state.appended
        };
        self.wake.notify_one();
        appended
    }

    /// Waits until `count` records have an outcome.
    pub(crate) async fn wait_done(&self, count: u64) {
        let mut done = self.done.subscribe();
        // The sender lives in `self`, so the channel cannot close while we wait.
        let _ = done.wait_for(|d| *d >= count).await;
    }

    /// Counts `count` more records with an outcome.
    pub(crate) fn mark_done(&self, count: usize) {
        self.done.send_modify(|d| *d += count as u64);
    }

    /// Refuses further records; the sender sends what is queued, then stops.
    pub(crate) fn close(&self) {
        self.lock().closing = true;
        self.wake.notify_one();
    }
}

/// Moves the open batch, if any, to the sealed ones.
fn seal(state: &mut State) {
    if let Some(open) = state.open.take() {
        state.sealed.push_back(open);
    }
}
