//! [`Consumer`]: reads assigned partitions from chosen positions.
//!
//! - `assign` and `seek` resolve a start ([`Offset`]) to an offset at once: `ListOffsets` on
//!   the partition's leader for earliest, latest and by-timestamp starts.
//! - `poll` keeps one long-polling `Fetch` (raw batches) in flight per assigned partition, as a
//!   task, and returns once at least one has completed: the records of every completed fetch,
//!   decoded with `strata_record`, without those below the position (a batch may start before
//!   it), in offset order per partition. Each partition's position then moves past its last
//!   returned record.
//! - Leader changes, unavailable nodes and broken connections are retried inside the fetch
//!   (following `NOT_LEADER` hints, refreshing metadata, backing off) and never reported. An
//!   out-of-range position is reported by `poll` with the valid range, unless
//!   [`ConsumerConfig::auto_reset`] says where to restart.

use std::collections::BTreeMap;
use std::time::Duration;

use strata_proto::v1 as pb;
use strata_record::Batch;
use tokio::task::{AbortHandle, JoinError, JoinSet};
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::client::{self, Client, RetryPolicy};
use crate::config::ConsumerConfig;
use crate::error::Error;
use crate::records::{ConsumedRecord, Offset, TopicPartition};

/// Reads records from assigned partitions; see the [module docs](self).
///
/// `poll` is cancel-safe: dropping its future (e.g. in `tokio::time::timeout`) loses no
/// records; fetches in flight keep running and are collected by the next `poll`.
pub struct Consumer {
    client: Client,
    config: ConsumerConfig,
    partitions: BTreeMap<TopicPartition, PartitionState>,
    fetches: JoinSet<FetchOutcome>,
    /// Source of [`PartitionState::epoch`] values.
    next_epoch: u64,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("config", &self.config)
            .field("assignment", &self.partitions.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// One assigned partition.
#[derive(Debug)]
struct PartitionState {
    /// The next offset to return.
    position: i64,
    /// From the last completed fetch.
    high_watermark: Option<i64>,
    /// From the last completed fetch.
    log_start_offset: Option<i64>,
    /// Changes with every seek, so the answer of a fetch started before it is ignored.
    epoch: u64,
    /// The fetch in flight.
    in_flight: Option<AbortHandle>,
    /// An error to report from `poll` (the partition is not fetched until it is reported).
    error: Option<Error>,
}

/// What a fetch task returns.
struct FetchOutcome {
    partition: TopicPartition,
    epoch: u64,
    /// The position the answer starts from (moved by an automatic reset).
    position: i64,
    result: Result<pb::FetchResponse, Error>,
}

impl Consumer {
    pub(crate) fn new(client: Client, config: ConsumerConfig) -> Consumer {
        Consumer {
            client,
            config,
            partitions: BTreeMap::new(),
            fetches: JoinSet::new(),
            next_epoch: 0,
        }
    }

    /// The consumer's settings.
    pub fn config(&self) -> &ConsumerConfig {
        &self.config
    }

    /// Adds `partitions` of `topic` to the assignment (replacing their position if already
    /// assigned), each starting at `start`, resolved now.
    ///
    /// Fails with [`Error::UnknownTopic`] / [`Error::UnknownPartition`] (after a metadata
    /// refresh), or if a start cannot be resolved within the request timeout.
    pub async fn assign(
        &mut self,
        topic: &str,
        partitions: impl IntoIterator<Item = u32>,
        start: Offset,
    ) -> Result<(), Error> {
        let partitions: Vec<u32> = partitions.into_iter().collect();
        let mut count = self.client.partition_count(topic).await?;
        if partitions.iter().any(|p| *p >= count) {
            // Partitions may have been added since the cache was filled.
            self.client.refresh_after(self.client.generation()).await?;
            count = self.client.partition_count(topic).await?;
        }
        if let Some(partition) = partitions.iter().find(|p| **p >= count) {
            return Err(Error::UnknownPartition {
                topic: topic.to_string(),
                partition: *partition,
                partitions: count,
            });
        }
        let resolved = futures_util::future::try_join_all(
            partitions
                .iter()
                .map(|partition| self.resolve(topic, *partition, start)),
        )
        .await?;
        for (partition, position) in partitions.into_iter().zip(resolved) {
            self.set_position(TopicPartition::new(topic, partition), position);
        }
        Ok(())
    }

    /// Assigns every partition of `topic`, each starting at `start`.
    pub async fn assign_all(&mut self, topic: &str, start: Offset) -> Result<(), Error> {
        let count = self.client.partition_count(topic).await?;
        self.assign(topic, 0..count, start).await
    }

    /// Removes `partitions` of `topic` from the assignment.
    pub fn unassign(&mut self, topic: &str, partitions: impl IntoIterator<Item = u32>) {
        for partition in partitions {
            if let Some(state) = self
                .partitions
                .remove(&TopicPartition::new(topic, partition))
                && let Some(fetch) = state.in_flight
            {
                fetch.abort();
            }
        }
    }

    /// The assigned partitions.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.partitions.keys().cloned().collect()
    }

    /// Moves an assigned partition to `offset` (resolved now). A fetch in flight is dropped,
    /// and an error waiting to be reported for the partition is cleared.
    pub async fn seek(&mut self, topic: &str, partition: u32, offset: Offset) -> Result<(), Error> {
        let key = TopicPartition::new(topic, partition);
        if !self.partitions.contains_key(&key) {
            return Err(not_assigned(&key));
        }
        let position = self.resolve(topic, partition, offset).await?;
        self.set_position(key, position);
        Ok(())
    }

    /// The next offset `poll` returns for a partition, if assigned.
    pub fn position(&self, topic: &str, partition: u32) -> Option<i64> {
        self.partitions
            .get(&TopicPartition::new(topic, partition))
            .map(|s| s.position)
    }

    /// The high watermark the last completed fetch of a partition reported (offsets below it
    /// are committed), if any.
    pub fn high_watermark(&self, topic: &str, partition: u32) -> Option<i64> {
        self.partitions
            .get(&TopicPartition::new(topic, partition))
            .and_then(|s| s.high_watermark)
    }

    /// The log start offset the last completed fetch of a partition reported, if any.
    pub fn log_start_offset(&self, topic: &str, partition: u32) -> Option<i64> {
        self.partitions
            .get(&TopicPartition::new(topic, partition))
            .and_then(|s| s.log_start_offset)
    }

    /// Whether every assigned partition's position has reached the high watermark of its last
    /// completed fetch (a partition not fetched yet has not). A reader that wants "everything
    /// up to now" polls until this is true.
    pub fn caught_up(&self) -> bool {
        self.partitions
            .values()
            .all(|s| s.high_watermark.is_some_and(|hw| s.position >= hw))
    }

    /// The current high watermark of every assigned partition, asked of the leaders now
    /// (`ListOffsets`).
    pub async fn end_offsets(&self) -> Result<BTreeMap<TopicPartition, i64>, Error> {
        let keys: Vec<TopicPartition> = self.partitions.keys().cloned().collect();
        let ends = futures_util::future::try_join_all(
            keys.iter()
                .map(|k| self.resolve(&k.topic, k.partition, Offset::Latest)),
        )
        .await?;
        Ok(keys.into_iter().zip(ends).collect())
    }

    /// Waits until at least one fetch completes and returns the records of every completed
    /// fetch (possibly none: a long poll that found nothing within `fetch_wait`).
    ///
    /// Errors: [`Error::OffsetOutOfRange`] (with the valid range) for a partition whose
    /// position is not stored, unless `auto_reset` is set; [`Error::Corrupt`] for a batch that
    /// fails its checks; [`Error::UnknownTopic`] for a deleted topic. An error is reported
    /// once, by a `poll` that has no records to return; the partition is fetched again by the
    /// next `poll` (from the same position, unless the caller seeks).
    pub async fn poll(&mut self) -> Result<Vec<ConsumedRecord>, Error> {
        if let Some(error) = self.take_error() {
            return Err(error);
        }
        self.start_fetches();
        if self.fetches.is_empty() {
            // Nothing to wait for (nothing assigned): a poll still takes its time.
            tokio::time::sleep(self.config.fetch_wait).await;
            return Ok(Vec::new());
        }
        let mut records = Vec::new();
        if let Some(joined) = self.fetches.join_next().await {
            self.settle(joined, &mut records);
            while let Some(joined) = self.fetches.try_join_next() {
                self.settle(joined, &mut records);
            }
        }
        if records.is_empty()
            && let Some(error) = self.take_error()
        {
            return Err(error);
        }
        Ok(records)
    }

    fn take_error(&mut self) -> Option<Error> {
        self.partitions.values_mut().find_map(|s| s.error.take())
    }

    fn set_position(&mut self, key: TopicPartition, position: i64) {
        self.next_epoch += 1;
        let epoch = self.next_epoch;
        let state = self.partitions.entry(key).or_insert(PartitionState {
            position,
            high_watermark: None,
            log_start_offset: None,
            epoch,
            in_flight: None,
            error: None,
        });
        if let Some(fetch) = state.in_flight.take() {
            fetch.abort();
        }
        state.position = position;
        state.epoch = epoch;
        state.error = None;
    }

    /// Starts a fetch for every assigned partition without one in flight or an error to
    /// report.
    fn start_fetches(&mut self) {
        for (key, state) in &mut self.partitions {
            if state.in_flight.is_some() || state.error.is_some() {
                continue;
            }
            let fetch = fetch(
                self.client.clone(),
                self.config.clone(),
                key.clone(),
                state.position,
                state.epoch,
            );
            state.in_flight = Some(self.fetches.spawn(fetch));
        }
    }

    /// Applies a completed fetch: positions, high watermark, records, errors.
    fn settle(
        &mut self,
        joined: Result<FetchOutcome, JoinError>,
        records: &mut Vec<ConsumedRecord>,
    ) {
        let outcome = match joined {
            Ok(outcome) => outcome,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // Cancelled: by a seek or an unassign (which took the handle already), or from
            // outside (the runtime shutting down). In the latter case the partition still
            // counts the task in flight; it must not, or no fetch would start again.
            Err(e) => {
                let id = e.id();
                for state in self.partitions.values_mut() {
                    if state.in_flight.as_ref().is_some_and(|h| h.id() == id) {
                        state.in_flight = None;
                    }
                }
                return;
            }
        };
        let Some(state) = self.partitions.get_mut(&outcome.partition) else {
            return;
        };
        if state.epoch != outcome.epoch {
            return;
        }
        state.in_flight = None;
        match outcome.result {
            Ok(response) => {
                state.position = outcome.position;
                state.high_watermark = Some(response.high_watermark);
                state.log_start_offset = Some(response.log_start_offset);
                if let Err(e) = decode(
                    &outcome.partition,
                    &mut state.position,
                    response.batches,
                    records,
                ) {
                    state.error = Some(e);
                }
            }
            Err(error) if error.is_retriable() => {
                debug!(partition = %outcome.partition, %error, "fetch failed; retrying");
            }
            Err(error) => state.error = Some(error),
        }
    }

    /// The offset `start` means for `topic`/`partition`.
    async fn resolve(&self, topic: &str, partition: u32, start: Offset) -> Result<i64, Error> {
        resolve(&self.client, &self.config, topic, partition, start).await
    }
}

/// The offset `start` names in `topic`/`partition` (`ListOffsets` on the leader, except for
/// an offset).
pub(crate) async fn resolve(
    client: &Client,
    config: &ConsumerConfig,
    topic: &str,
    partition: u32,
    start: Offset,
) -> Result<i64, Error> {
    let at = match start {
        Offset::At(offset) => return Ok(offset),
        Offset::Earliest => pb::position::At::Earliest(true),
        Offset::Latest => pb::position::At::Latest(true),
        Offset::Timestamp(ms) => pb::position::At::TimestampMs(ms),
    };
    list_offsets(client, config, topic, partition, at)
        .await
        .map(|r| r.offset)
}

fn not_assigned(key: &TopicPartition) -> Error {
    Error::InvalidArgument {
        field: "partition".into(),
        reason: format!("{key} is not assigned to this consumer"),
    }
}

/// Retries until `deadline`; a request unanswered for `probe_after` makes the client probe
/// who leads the partition.
fn retry_policy(config: &ConsumerConfig, deadline: Instant, probe_after: Duration) -> RetryPolicy {
    RetryPolicy {
        backoff: config.retry_backoff,
        backoff_max: config.retry_backoff_max,
        deadline,
        probe_after: Some(probe_after),
    }
}

/// `ListOffsets` on the leader, retried within the request timeout.
async fn list_offsets(
    client: &Client,
    config: &ConsumerConfig,
    topic: &str,
    partition: u32,
    at: pb::position::At,
) -> Result<pb::ListOffsetsResponse, Error> {
    let timeout = client.config().request_timeout;
    let request = pb::ListOffsetsRequest {
        topic: topic.to_string(),
        partition,
        position: Some(pb::Position { at: Some(at) }),
    };
    client
        .leader_call(
            topic,
            partition,
            retry_policy(
                config,
                Instant::now() + timeout,
                client.config().leader_probe_interval,
            ),
            |mut stub| {
                let request = client::request(request.clone(), timeout);
                async move {
                    Client::call(timeout, "ListOffsets", stub.list_offsets(request)).await
                }
            },
            |_| {},
        )
        .await
}

/// One fetch of one partition (the body of a fetch task): retried within the request timeout,
/// and restarted once from `auto_reset` if the position is out of range.
async fn fetch(
    client: Client,
    config: ConsumerConfig,
    partition: TopicPartition,
    mut position: i64,
    epoch: u64,
) -> FetchOutcome {
    let wait = config.fetch_wait;
    let timeout = client.config().request_timeout + wait;
    // A long poll is expected to take up to `wait`.
    let probe_after = wait + client.config().leader_probe_interval;
    let policy = retry_policy(&config, Instant::now() + timeout, probe_after);
    let mut reset = false;
    loop {
        let request = pb::FetchRequest {
            topic: partition.topic.clone(),
            partition: partition.partition,
            offset: position,
            max_bytes: config.fetch_bytes,
            max_wait_ms: u32::try_from(wait.as_millis()).unwrap_or(u32::MAX),
            format: pb::FetchFormat::Batches as i32,
        };
        let result = client
            .leader_call(
                &partition.topic,
                partition.partition,
                policy,
                |mut stub| {
                    let request = client::request(request.clone(), timeout);
                    async move { Client::call(timeout, "Fetch", stub.fetch(request)).await }
                },
                |_| {},
            )
            .await;
        if let (Err(Error::OffsetOutOfRange { start, end, .. }), Some(to), false) =
            (&result, config.auto_reset, reset)
        {
            reset = true;
            let at = match to {
                Offset::At(offset) => Ok(offset),
                Offset::Earliest => Ok(*start),
                Offset::Latest => Ok(*end),
                Offset::Timestamp(ms) => list_offsets(
                    &client,
                    &config,
                    &partition.topic,
                    partition.partition,
                    pb::position::At::TimestampMs(ms),
                )
                .await
                .map(|r| r.offset),
            };
            match at {
                Ok(at) if at >= 0 => {
                    warn!(%partition, from = position, to = at, "position out of range; resetting");
                    position = at;
                    continue;
                }
                Ok(_) => {}
                Err(error) => {
                    return FetchOutcome {
                        partition,
                        epoch,
                        position,
                        result: Err(error),
                    };
                }
            }
        }
        return FetchOutcome {
            partition,
            epoch,
            position,
            result,
        };
    }
}

/// Decodes fetched batches into `records`, skipping records below `position` and moving it
/// past each record returned; a batch that fails its checks is [`Error::Corrupt`].
pub(crate) fn decode(
    partition: &TopicPartition,
    position: &mut i64,
    batches: Vec<bytes::Bytes>,
    records: &mut Vec<ConsumedRecord>,
) -> Result<(), Error> {
    for bytes in batches {
        let batch = Batch::parse(bytes).map_err(|e| Error::Corrupt {
            topic: partition.topic.clone(),
            partition: partition.partition,
            offset: *position,
            reason: e.to_string(),
        })?;
        if batch.next_offset() <= *position {
            continue;
        }
        for record in batch.records() {
            if record.offset < *position {
                continue;
            }
            *position = record.offset.saturating_add(1);
            records.push(ConsumedRecord {
                topic: partition.topic.clone(),
                partition: partition.partition,
                offset: record.offset,
                timestamp_ms: record.timestamp,
                key: record.key,
                value: record.value,
                headers: record
                    .headers
                    .into_iter()
                    .map(|h| (h.key, h.value))
                    .collect(),
            });
        }
    }
    Ok(())
}
