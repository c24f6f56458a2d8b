//! The sender task of one partition: takes batches from its queue one at a time, numbers them
//! (idempotence), sends each to the leader with retries, and resolves the records.
//!
//! Sequence numbers: the partition's next sequence advances only when a batch is
//! acknowledged, so a batch refused outright (too large, invalid) leaves no gap. When a batch
//! fails after an answer that may have written it (its outcome is unknown), or with
//! `OUT_OF_ORDER_SEQUENCE`, the partition cannot know what the node expects next: it continues
//! under a fresh producer id, whose sequences start at 0.

use std::sync::Arc;

use strata_proto::v1 as pb;
use strata_proto::v1::produce_request::Payload;
use tracing::warn;

use super::Shared;
use super::queue::{Completion, PartitionQueue, PendingBatch};
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

/// Runs until the queue is closed and drained.
pub(crate) async fn run(queue: Arc<PartitionQueue>, shared: Arc<Shared>) {
    let mut identity = Identity::Initial;
    while let Some(batch) = queue.next_batch(shared.config.linger).await {
        let count = batch.len();
        send_batch(&queue, &shared, &mut identity, batch).await;
        queue.mark_done(count);
    }
}

async fn send_batch(
    queue: &PartitionQueue,
    shared: &Shared,
    identity: &mut Identity,
    batch: PendingBatch,
) {
    let PendingBatch {
        builder,
        completions,
        permit,
        created,
    } = batch;
    let deadline = created + shared.config.delivery_timeout;
    if let Some(fenced) = shared.fenced() {
        fail(queue, completions, &fenced);
        return;
    }
    let idempotent = shared.config.idempotence;
    let payload = if idempotent {
        let sequence = match *identity {
            Identity::Ready(sequence) => sequence,
            Identity::Initial | Identity::Fresh => {
                let taken = if matches!(identity, Identity::Initial) {
                    shared.initial_identity(deadline).await
                } else {
                    shared.new_identity(deadline).await
                };
                match taken {
                    // A producer id new to this partition starts at sequence 0.
                    Ok((producer_id, epoch)) => Sequence {
                        producer_id,
                        epoch,
                        next: 0,
                    },
                    Err(error) => {
                        fail(queue, completions, &error);
                        return;
                    }
                }
            }
        };
        *identity = Identity::Ready(sequence);
        builder
            .with_producer(sequence.producer_id, sequence.epoch, sequence.next)
            .build()
    } else {
        builder.build()
    };
    let acks = match shared.config.acks {
        Acks::All => pb::Acks::All,
        Acks::Leader => pb::Acks::Leader,
        Acks::None => pb::Acks::None,
    };
    let request = pb::ProduceRequest {
        topic: queue.topic.clone(),
        partition: queue.partition,
        acks: acks as i32,
        payload: Some(Payload::Batch(payload)),
    };
    let timeout = shared.config.request_timeout;
    let mut maybe_written = false;
    let result = shared
        .client
        .leader_call(
            &queue.topic,
            queue.partition,
            shared.retry_policy(deadline),
            |mut stub| {
                // The same bytes every attempt: same producer id, epoch and sequence.
                let request = client::request(request.clone(), timeout);
                async move { Client::call(timeout, "Produce", stub.produce(request)).await }
            },
            |error| maybe_written |= error.may_have_written(),
        )
        .await;
    match result {
        Ok(response) => {
            if let Identity::Ready(sequence) = identity {
                sequence.next =
                    strata_record::sequence::advance(sequence.next, completions.len() as u64);
            }
            for (index, completion) in completions.into_iter().enumerate() {
                let offset = if response.base_offset < 0 {
                    -1
                } else {
                    response.base_offset.saturating_add(index as i64)
                };
                let _ = completion.tx.send(Ok(RecordMetadata {
                    topic: queue.topic.clone(),
                    partition: queue.partition,
                    offset,
                    timestamp_ms: completion.timestamp_ms,
                }));
            }
        }
        Err(error) => {
            let error = give_up_error(error, maybe_written, shared);
            match &error {
                Error::ProducerFenced { .. } => shared.set_fenced(error.clone()),
                Error::OutOfOrderSequence { .. } => *identity = Identity::Fresh,
                _ if idempotent && maybe_written => *identity = Identity::Fresh,
                _ => {}
            }
            fail(queue, completions, &error);
        }
    }
    drop(permit);
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

fn fail(queue: &PartitionQueue, completions: Vec<Completion>, error: &Error) {
    warn!(
        topic = %queue.topic,
        partition = queue.partition,
        records = completions.len(),
        %error,
        "batch failed"
    );
    for completion in completions {
        let _ = completion.tx.send(Err(error.clone()));
    }
}
