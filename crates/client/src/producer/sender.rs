//! The sender task of one partition: takes batches from its queue, numbers them
//! (idempotence), keeps up to [`ProducerConfig::max_in_flight`] of them in flight to the leader
//! (each retried on its own), and resolves their records in the order the batches were taken.
//!
//! Sequence numbers advance when a batch is sent, so batches in flight carry consecutive
//! sequences; the leader writes them in sequence order whatever order they reach it in (a
//! batch ahead of its predecessor waits for it there). How an outcome is handled, in order:
//! - acknowledged: its records resolve;
//! - `OUT_OF_ORDER_SEQUENCE` ahead of what the leader expects (never written) while
//!   everything before it was acknowledged: its predecessor reached the leader too late (or
//!   the leader changed); the same bytes are sent again;
//! - any other failure: its records fail; the partition's sequence state is then unknown, so
//!   it continues under a fresh producer id (sequences from 0). Batches still in flight under
//!   the old id that come back `OUT_OF_ORDER_SEQUENCE` were not written: they are sent again,
//!   in order, under the new id, before any new batch (no new batch leaves while any of the
//!   old id is in flight).
//!
//! [`ProducerConfig::max_in_flight`]: crate::ProducerConfig::max_in_flight

use std::collections::VecDeque;
use std::sync::Arc;

use strata_proto::v1 as pb;
use strata_proto::v1::produce_request::Payload;
use strata_record::BatchBuilder;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, warn};

use super::Shared;
use super::queue::{Completion, PartitionQueue};
use crate::client::{self, Client};
use crate::config::Acks;
use crate::error::Error;
use crate::records::RecordMetadata;

/// The idempotent producer state of one partition.
#[derive(Debug, Clone, Copy)]
struct Sequence {
    producer_id: i64,
    epoch: i16,
    /// Base sequence of the next batch.
    next: i32,
}

/// What the partition knows of its producer id.
enum Identity {
    /// Not taken yet: use the producer's shared one.
    Initial,
    /// In use.
    Ready(Sequence),
    /// The last one's sequence state is unknown: take a fresh id.
    Fresh,
}

/// How one attempt chain of a batch ended, and whether an attempt may have written it.
type Sent = (Result<pb::ProduceResponse, Error>, bool);

/// A batch sent and not yet resolved.
struct Flight {
    /// The records, unstamped, to stamp again under a fresh identity.
    builder: BatchBuilder,
    completions: Vec<Completion>,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
    deadline: Instant,
    /// The identity generation it was stamped under.
    generation: u64,
    /// The request as sent (resent as is).
    request: pb::ProduceRequest,
    task: JoinHandle<Sent>,
}

/// The partition's sender state.
struct Sender {
    queue: Arc<PartitionQueue>,
    shared: Arc<Shared>,
    identity: Identity,
    /// Bumped when the partition takes a fresh identity.
    generation: u64,
    window: VecDeque<Flight>,
    /// Batches refused as out of order under an old identity: sent again, first, under the
    /// current one.
    redo: VecDeque<Flight>,
}

/// Runs until the queue is closed and drained.
pub(crate) async fn run(queue: Arc<PartitionQueue>, shared: Arc<Shared>) {
    let max = if shared.config.idempotence {
        shared.config.max_in_flight.max(1)
    } else {
        1
    };
    let linger = shared.config.linger;
    let mut s = Sender {
        queue,
        shared,
        identity: Identity::Initial,
        generation: 0,
        window: VecDeque::new(),
        redo: VecDeque::new(),
    };
    let mut closed = false;
    loop {
        // Nothing new goes out while batches of an old identity are in flight (they may come
        // back to be sent again, and must keep their place); then the resends go first.
        let settled = s.window.iter().all(|f| f.generation == s.generation);
        if settled {
            while s.window.len() < max
                && let Some(f) = s.redo.pop_front()
            {
                s.start(f.builder, f.completions, f.permit, f.deadline)
                    .await;
            }
        }
        let may_start = !closed && settled && s.window.len() < max && s.redo.is_empty();
        if closed && s.window.is_empty() && s.redo.is_empty() {
            return;
        }
        tokio::select! {
            biased;
            sent = async { (&mut s.window.front_mut().expect("a flight").task).await }, if !s.window.is_empty() => {
                let flight = s.window.pop_front().expect("a flight");
                let sent = sent.unwrap_or_else(|e| (Err(Error::Transport(format!("send task failed: {e}"))), true));
                s.resolve(flight, sent).await;
            }
            batch = s.queue.next_batch(linger), if may_start => match batch {
                Some(b) => s.start(b.builder, b.completions, b.permit, b.created + s.shared.config.delivery_timeout).await,
                None => closed = true,
            },
        }
    }
}

impl Sender {
    /// Stamps a batch (idempotence) and sends it in the background.
    async fn start(
        &mut self,
        builder: BatchBuilder,
        completions: Vec<Completion>,
        permit: Option<tokio::sync::OwnedSemaphorePermit>,
        deadline: Instant,
    ) {
        if let Some(fenced) = self.shared.fenced() {
            self.finish(completions, permit, fenced);
            return;
        }
        let payload = if self.shared.config.idempotence {
            let sequence = match self.identity {
                Identity::Ready(sequence) => sequence,
                Identity::Initial | Identity::Fresh => {
                    let taken = if matches!(self.identity, Identity::Initial) {
                        self.shared.initial_identity(deadline).await
                    } else {
                        self.shared.new_identity(deadline).await
                    };
                    match taken {
                        // A producer id new to this partition starts at sequence 0.
                        Ok((producer_id, epoch)) => Sequence {
                            producer_id,
                            epoch,
                            next: 0,
                        },
                        Err(error) => {
                            self.finish(completions, permit, error);
                            return;
                        }
                    }
                }
            };
            let stamped = builder
                .clone()
                .with_producer(sequence.producer_id, sequence.epoch, sequence.next)
                .with_compression(self.shared.config.compression)
                .build();
            self.identity = Identity::Ready(Sequence {
                next: strata_record::sequence::advance(sequence.next, completions.len() as u64),
                ..sequence
            });
            stamped
        } else {
            builder
                .clone()
                .with_compression(self.shared.config.compression)
                .build()
        };
        let acks = match self.shared.config.acks {
            Acks::All => pb::Acks::All,
            Acks::Leader => pb::Acks::Leader,
            Acks::None => pb::Acks::None,
        };
        let request = pb::ProduceRequest {
            topic: self.queue.topic.clone(),
            partition: self.queue.partition,
            acks: acks as i32,
            payload: Some(Payload::Batch(payload)),
        };
        let task = self.send(request.clone(), deadline);
        self.window.push_back(Flight {
            builder,
            completions,
            permit,
            deadline,
            generation: self.generation,
            request,
            task,
        });
    }

    /// Sends `request` to the leader with retries, in the background.
    fn send(&self, request: pb::ProduceRequest, deadline: Instant) -> JoinHandle<Sent> {
        let shared = self.shared.clone();
        let (topic, partition) = (self.queue.topic.clone(), self.queue.partition);
        tokio::spawn(async move {
            let timeout = shared.config.request_timeout;
            let mut maybe_written = false;
            let result = shared
                .client
                .leader_call(
                    &topic,
                    partition,
                    shared.retry_policy(deadline),
                    |mut stub| {
                        // The same bytes every attempt: same producer id, epoch and sequence.
                        let request = client::request(request.clone(), timeout);
                        async move { Client::call(timeout, "Produce", stub.produce(request)).await }
                    },
                    |error| maybe_written |= error.may_have_written(),
                )
                .await;
            (result, maybe_written)
        })
    }

    /// Handles the outcome of the oldest batch in flight (see the module docs).
    async fn resolve(&mut self, flight: Flight, (result, maybe_written): Sent) {
        let current = flight.generation == self.generation;
        match result {
            Ok(response) => {
                let records = flight
                    .completions
                    .iter()
                    .enumerate()
                    .map(|(index, c)| {
                        let offset = if response.base_offset < 0 {
                            -1
                        } else {
                            response.base_offset.saturating_add(index as i64)
                        };
                        RecordMetadata {
                            topic: self.queue.topic.clone(),
                            partition: self.queue.partition,
                            offset,
                            timestamp_ms: c.timestamp_ms,
                        }
                    })
                    .collect::<Vec<_>>();
                let count = flight.completions.len();
                for (completion, metadata) in flight.completions.into_iter().zip(records) {
                    let _ = completion.tx.send(Ok(metadata));
                }
                drop(flight.permit);
                self.queue.mark_done(count);
            }
            Err(Error::OutOfOrderSequence { expected, got, .. })
                if current
                    && strata_record::sequence::is_ahead(expected, got)
                    && Instant::now() < flight.deadline =>
            {
                // Everything before it under this identity was acknowledged: its predecessor
                // reached the leader late, or the leader changed. Not written: the same bytes
                // go again, first.
                debug!(topic = %self.queue.topic, partition = self.queue.partition,
                    "out of order behind an acknowledged batch; sending it again");
                let task = self.send(flight.request.clone(), flight.deadline);
                self.window.push_front(Flight { task, ..flight });
            }
            Err(Error::OutOfOrderSequence { .. }) if !current => {
                // Behind a batch that failed: not written; sent again under the fresh id.
                self.redo.push_back(flight);
            }
            Err(error) => {
                let error = give_up_error(error, maybe_written, &self.shared);
                match &error {
                    Error::ProducerFenced { .. } => self.shared.set_fenced(error.clone()),
                    // The sequence state is unknown after a failure: later batches continue
                    // under a fresh producer id (those in flight under this one are refused,
                    // and sent again).
                    _ if self.shared.config.idempotence && current => {
                        self.identity = Identity::Fresh;
                        self.generation += 1;
                    }
                    _ => {}
                }
                self.finish(flight.completions, flight.permit, error);
            }
        }
    }

    /// Fails a batch's records.
    fn finish(
        &self,
        completions: Vec<Completion>,
        permit: Option<tokio::sync::OwnedSemaphorePermit>,
        error: Error,
    ) {
        warn!(
            topic = %self.queue.topic,
            partition = self.queue.partition,
            records = completions.len(),
            %error,
            "batch failed"
        );
        let count = completions.len();
        for completion in completions {
            let _ = completion.tx.send(Err(error.clone()));
        }
        drop(permit);
        self.queue.mark_done(count);
    }
}

/// The error a batch fails with: a retriable one means the delivery timeout ran out.
fn give_up_error(error: Error, maybe_written: bool, shared: &Shared) -> Error {
    if !error.is_retriable() {
        return error;
    }
    let timeout = shared.config.delivery_timeout;
    if maybe_written {
        Error::Indeterminate {
            reason: format!(
                "delivery timeout ({timeout:?}) expired after an attempt whose outcome is \
                 unknown; last error: {error}"
            ),
        }
    } else {
        Error::Timeout(format!(
            "delivery timeout ({timeout:?}) expired before the batch was acknowledged; last \
             error: {error}"
        ))
    }
}
