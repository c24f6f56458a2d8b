//! [`Producer`]: batching, idempotent, retrying delivery of records.
//!
//! - `send` picks the partition ([`crate::partitioner`]), waits for buffer space
//!   (`buffer_bytes`: this is the backpressure), and appends the record to the partition's
//!   queue (`queue::PartitionQueue`). It returns a [`SendFuture`] that resolves once the
//!   record is acknowledged or has failed.
//! - Each partition written to has one sender task (module `sender`), started with its first
//!   record. It keeps up to `max_in_flight` Produce requests in flight (5 with idempotence, 1
//!   without): the oldest full batch, or the open batch once it lingered `linger`. Records
//!   keep accumulating while requests are in flight. Batches in flight carry consecutive
//!   sequence numbers, and the leader writes a producer's batches in sequence order, so
//!   records of a partition are written in the order they were sent, retries included.
//! - Idempotence (the default): `InitProducer` gives a producer id and epoch; every batch
//!   carries them and the partition's next sequence number. A retry resends the same bytes, so
//!   a node that already wrote the batch answers with its original offset: a leader change
//!   costs latency, never a duplicate or a loss.

mod queue;
mod sender;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use strata_record::sync::lock;
use strata_record::sync::now_ms;

use strata_record::{Header, NewRecord};
use tokio::sync::{Semaphore, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::client::{Client, RetryPolicy};
use crate::config::ProducerConfig;
use crate::error::Error;
use crate::partitioner::{Sticky, partition_for_key};
use crate::records::{ProducerRecord, RecordMetadata};
use queue::{Completion, PartitionQueue};

/// Sends records to topics; see the [module docs](self). Cheap to clone: clones share the
/// buffer, the batches and the background tasks.
///
/// Dropping the last clone without [`Producer::close`] still delivers what was sent (the
/// background tasks finish the queued batches, then stop), but nothing waits for it.
#[derive(Clone)]
pub struct Producer {
    inner: Arc<Handle>,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("config", &self.inner.shared.config)
            .finish_non_exhaustive()
    }
}

/// What the user-facing clones share.
struct Handle {
    shared: Arc<Shared>,
    /// Queues and sender tasks by topic, then partition.
    partitions: Mutex<HashMap<String, HashMap<u32, Partition>>>,
    sticky: Mutex<Sticky>,
}

struct Partition {
    queue: Arc<PartitionQueue>,
    task: Option<JoinHandle<()>>,
}

/// What the sender tasks share with the producer.
pub(crate) struct Shared {
    pub(crate) client: Client,
    pub(crate) config: ProducerConfig,
    /// Buffer space in bytes; a record holds its size until its batch is done.
    buffer: Arc<Semaphore>,
    /// The producer id and epoch every partition starts with (taken on first use).
    identity: tokio::sync::Mutex<Option<(i64, i16)>>,
    /// Set once a batch was refused as fenced: the producer stops.
    fenced: Mutex<Option<Error>>,
    closed: AtomicBool,
}

impl Producer {
    pub(crate) fn new(client: Client, config: ProducerConfig) -> Producer {
        let buffer = Arc::new(Semaphore::new(config.buffer_bytes));
        Producer {
            inner: Arc::new(Handle {
                shared: Arc::new(Shared {
                    client,
                    config,
                    buffer,
                    identity: tokio::sync::Mutex::new(None),
                    fenced: Mutex::new(None),
                    closed: AtomicBool::new(false),
                }),
                partitions: Mutex::new(HashMap::new()),
                sticky: Mutex::new(Sticky::default()),
            }),
        }
    }

    /// The producer's settings.
    pub fn config(&self) -> &ProducerConfig {
        &self.inner.shared.config
    }

    /// Queues `record` and returns a future of its outcome.
    ///
    /// Awaiting `send` waits while the producer holds `buffer_bytes` of records (this is the
    /// backpressure); it returns once the record is queued. Awaiting the returned
    /// [`SendFuture`] waits until the record is acknowledged (with its offset) or has failed.
    ///
    /// Fails at once for an unknown topic or partition (after a metadata refresh), a record
    /// larger than the buffer, or a closed or fenced producer.
    pub async fn send(&self, record: ProducerRecord) -> Result<SendFuture, Error> {
        let shared = &self.inner.shared;
        shared.check_open()?;
        let size = record.buffered_size();
        let limit = shared
            .config
            .buffer_bytes
            .min(shared.client.config().message_bytes_max);
        if size > limit {
            return Err(Error::MessageTooLarge {
                size: size as u64,
                limit: limit as u64,
            });
        }
        let partition = self.choose_partition(&record, size).await?;
        // `size` <= buffer_bytes <= u32::MAX (checked by the config).
        let permits = u32::try_from(size).unwrap_or(u32::MAX);
        let permit = shared
            .buffer
            .clone()
            .acquire_many_owned(permits)
            .await
            .map_err(|_| Error::Closed("the producer is closed"))?;
        shared.check_open()?;
        let timestamp_ms = record.timestamp_ms.unwrap_or_else(now_ms);
        let new = NewRecord {
            timestamp: timestamp_ms,
            key: record.key,
            value: record.value,
            headers: record
                .headers
                .into_iter()
                .map(|(key, value)| Header::new(key, value))
                .collect(),
        };
        let (tx, rx) = oneshot::channel();
        let queue = self.queue(&record.topic, partition);
        queue.push(
            &new,
            permit,
            Completion { tx, timestamp_ms },
            shared.config.batch_bytes,
        )?;
        Ok(SendFuture { rx })
    }

    /// The partition for `record`: its own, else its key's hash, else the sticky one.
    async fn choose_partition(&self, record: &ProducerRecord, size: usize) -> Result<u32, Error> {
        let client = &self.inner.shared.client;
        let topic = &record.topic;
        let mut count = client.partition_count(topic).await?;
        if let Some(partition) = record.partition
            && partition >= count
        {
            // Partitions may have been added since the cache was filled.
            client.refresh_after(client.generation()).await?;
            count = client.partition_count(topic).await?;
        }
        let unknown = |partition| Error::UnknownPartition {
            topic: topic.clone(),
            partition,
            partitions: count,
        };
        match (record.partition, &record.key) {
            (Some(partition), _) if partition >= count => Err(unknown(partition)),
            (Some(partition), _) => Ok(partition),
            (None, _) if count == 0 => Err(unknown(0)),
            (None, Some(key)) => Ok(partition_for_key(key, count)),
            (None, None) => Ok(lock(&self.inner.sticky).partition(
                topic,
                count,
                size,
                self.inner.shared.config.batch_bytes,
            )),
        }
    }

    /// The queue of `topic`/`partition`, starting its sender task on first use.
    fn queue(&self, topic: &str, partition: u32) -> Arc<PartitionQueue> {
        let mut partitions = lock(&self.inner.partitions);
        if let Some(p) = partitions.get(topic).and_then(|t| t.get(&partition)) {
            return p.queue.clone();
        }
        let queue = Arc::new(PartitionQueue::new(topic.to_string(), partition));
        let task = tokio::spawn(sender::run(queue.clone(), self.inner.shared.clone()));
        partitions.entry(topic.to_string()).or_default().insert(
            partition,
            Partition {
                queue: queue.clone(),
                task: Some(task),
            },
        );
        queue
    }

    fn queues(&self) -> Vec<Arc<PartitionQueue>> {
        lock(&self.inner.partitions)
            .values()
            .flat_map(|t| t.values().map(|p| p.queue.clone()))
            .collect()
    }

    /// Sends every lingering batch now and waits until every record sent before the call has
    /// an outcome (acknowledged or failed; each record's [`SendFuture`] tells which).
    pub async fn flush(&self) {
        let targets: Vec<(Arc<PartitionQueue>, u64)> = self
            .queues()
            .into_iter()
            .map(|q| {
                let appended = q.request_flush();
                (q, appended)
            })
            .collect();
        for (queue, appended) in targets {
            queue.wait_done(appended).await;
        }
    }

    /// Refuses further records, delivers what was sent (each batch within its delivery
    /// timeout), and stops the background tasks. Later `send`s fail with [`Error::Closed`].
    pub async fn close(&self) {
        let shared = &self.inner.shared;
        shared.closed.store(true, Ordering::SeqCst);
        // Wakes the `send`s waiting for buffer space; they fail with `Closed`.
        shared.buffer.close();
        let tasks: Vec<JoinHandle<()>> = {
            let mut partitions = lock(&self.inner.partitions);
            partitions
                .values_mut()
                .flat_map(|t| t.values_mut())
                .filter_map(|p| {
                    p.queue.close();
                    p.task.take()
                })
                .collect()
        };
        for task in tasks {
            if let Err(e) = task.await
                && e.is_panic()
            {
                std::panic::resume_unwind(e.into_panic());
            }
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // The sender tasks deliver what is queued, then stop.
        for partition in lock(&self.partitions).values().flat_map(|t| t.values()) {
            partition.queue.close();
        }
    }
}

impl Shared {
    fn check_open(&self) -> Result<(), Error> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(Error::Closed("the producer is closed"));
        }
        if let Some(fenced) = lock(&self.fenced).clone() {
            return Err(fenced);
        }
        Ok(())
    }

    /// The error every batch fails with once the producer was fenced.
    pub(crate) fn fenced(&self) -> Option<Error> {
        lock(&self.fenced).clone()
    }

    pub(crate) fn set_fenced(&self, error: Error) {
        lock(&self.fenced).get_or_insert(error);
    }

    /// Retries until `deadline`; a produce unanswered for the client's
    /// `leader_probe_interval` makes it probe who leads the partition.
    fn retry_policy(&self, deadline: Instant) -> RetryPolicy {
        RetryPolicy {
            backoff: self.config.retry_backoff,
            backoff_max: self.config.retry_backoff_max,
            deadline,
            probe_after: Some(self.client.config().leader_probe_interval),
        }
    }

    /// The producer id and epoch partitions start with, taken from the cluster on first use.
    pub(crate) async fn initial_identity(&self, deadline: Instant) -> Result<(i64, i16), Error> {
        let mut identity = self.identity.lock().await;
        if let Some(identity) = *identity {
            return Ok(identity);
        }
        let fresh = self.new_identity(deadline).await?;
        *identity = Some(fresh);
        Ok(fresh)
    }

    /// A new producer id and epoch (`InitProducer`, any node), retried until `deadline`.
    pub(crate) async fn new_identity(&self, deadline: Instant) -> Result<(i64, i16), Error> {
        let timeout = self.config.request_timeout;
        let client = &self.client;
        let response = client
            .any_node_call(self.retry_policy(deadline), |addr| async move {
                let mut stub = client.strata(&addr)?;
                let request =
                    crate::client::request(strata_proto::v1::InitProducerRequest {}, timeout);
                Client::call(timeout, "InitProducer", stub.init_producer(request)).await
            })
            .await?;
        let epoch = i16::try_from(response.producer_epoch).map_err(|_| Error::Other {
            code: "InvalidResponse".into(),
            message: format!(
                "InitProducer returned epoch {}, which does not fit a batch's i16",
                response.producer_epoch
            ),
        })?;
        if response.producer_id < 0 {
            return Err(Error::Other {
                code: "InvalidResponse".into(),
                message: format!("InitProducer returned producer id {}", response.producer_id),
            });
        }
        Ok((response.producer_id, epoch))
    }
}

/// The outcome of one sent record: resolves to its [`RecordMetadata`] once acknowledged, or to
/// the error that failed its batch.
#[derive(Debug)]
#[must_use = "a SendFuture reports whether the record was written"]
pub struct SendFuture {
    rx: oneshot::Receiver<Result<RecordMetadata, Error>>,
}

impl Future for SendFuture {
    type Output = Result<RecordMetadata, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx).poll(cx).map(|outcome| {
            outcome.unwrap_or(Err(Error::Closed(
                "the producer stopped before the record's outcome was known",
            )))
        })
    }
}
