//! [`Subscription`]: an ephemeral subscription. No group and no stored state: every
//! partition of the named topics, and of the topics matching a subject pattern, is streamed
//! from a start position (by default the end) as records commit, through `Subscribe`.
//!
//! - One task per partition holds a `Subscribe` stream to the partition's leader (found and
//!   followed like any partition request), decodes raw batches, and hands records to the
//!   subscription's bounded channel. A reader that falls behind fills the channel; the task
//!   then stops reading its stream and HTTP/2 flow control holds the server back.
//! - A broken stream (leader change, node down) is reopened from the next offset, so no
//!   record is skipped or repeated within a subscription.
//! - With a pattern, the topics are listed again every [`SubscriptionConfig::refresh`]: a
//!   matching topic created later is streamed from its earliest offset (its records all came
//!   after the subscription), a deleted one stops.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use strata_proto::v1 as pb;
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinHandle, JoinSet};
use tracing::debug;

use crate::backoff::Backoff;
use crate::client::{Client, RetryPolicy};
use crate::config::ConsumerConfig;
use crate::consumer::{decode, resolve};
use crate::error::Error;
use crate::records::{ConsumedRecord, Offset, TopicPartition};

/// What a [`Subscription`] reads.
#[derive(Debug, Clone)]
pub struct SubscriptionConfig {
    /// Topics by name (each must exist).
    pub topics: Vec<String>,
    /// A subject pattern over topic names (`orders.*`, `orders.>`).
    pub pattern: Option<String>,
    /// Where the topics that exist when it starts are read from. Default [`Offset::Latest`].
    pub start: Offset,
    /// Chunks of records buffered between the streams and the reader. Default 64.
    pub buffer: usize,
    /// How often the topic list is read again for a pattern. Default 2 s.
    pub refresh: Duration,
}

impl SubscriptionConfig {
    /// Every new record of `topics` from now on.
    pub fn new(topics: impl IntoIterator<Item = impl Into<String>>) -> SubscriptionConfig {
        SubscriptionConfig {
            topics: topics.into_iter().map(Into::into).collect(),
            pattern: None,
            start: Offset::Latest,
            buffer: 64,
            refresh: Duration::from_secs(2),
        }
    }

    /// Every new record of every topic matching `pattern`, from now on.
    pub fn pattern(pattern: impl Into<String>) -> SubscriptionConfig {
        SubscriptionConfig {
            pattern: Some(pattern.into()),
            ..SubscriptionConfig::new(Vec::<String>::new())
        }
    }
}

/// An ephemeral subscription; see the [module docs](self). Dropping it stops every stream.
pub struct Subscription {
    rx: mpsc::Receiver<Result<Vec<ConsumedRecord>, Error>>,
    supervisor: JoinHandle<()>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription").finish_non_exhaustive()
    }
}

impl Subscription {
    pub(crate) fn start(client: Client, config: SubscriptionConfig) -> Result<Subscription, Error> {
        if config.topics.is_empty() && config.pattern.is_none() {
            return Err(Error::InvalidArgument {
                field: "topics".into(),
                reason: "a subscription names at least one topic or a pattern".into(),
            });
        }
        if let Some(p) = &config.pattern {
            strata_record::subject::check(p).map_err(|reason| Error::InvalidArgument {
                field: "pattern".into(),
                reason,
            })?;
        }
        let (tx, rx) = mpsc::channel(config.buffer.max(1));
        let supervisor = tokio::spawn(supervise(client, config, tx));
        Ok(Subscription { rx, supervisor })
    }

    /// The next records (in offset order per partition), or an error that ended a
    /// partition's stream; `None` once every stream has ended.
    pub async fn next(&mut self) -> Option<Result<Vec<ConsumedRecord>, Error>> {
        self.rx.recv().await
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.supervisor.abort();
    }
}

/// Starts and stops partition streams as topics appear and go.
async fn supervise(
    client: Client,
    config: SubscriptionConfig,
    tx: mpsc::Sender<Result<Vec<ConsumedRecord>, Error>>,
) {
    let mut streams: JoinSet<()> = JoinSet::new();
    let mut running: BTreeMap<TopicPartition, AbortHandle> = BTreeMap::new();
    let mut first = true;
    loop {
        match client.metadata(Vec::<String>::new()).await {
            Ok(meta) => {
                let names: BTreeSet<&str> = meta.topics.iter().map(|t| t.name.as_str()).collect();
                if first {
                    for t in config.topics.iter().filter(|t| !names.contains(t.as_str())) {
                        let _ = tx.send(Err(Error::UnknownTopic { topic: t.clone() })).await;
                    }
                }
                let mut wanted = BTreeSet::new();
                for t in &meta.topics {
                    let named = config.topics.contains(&t.name);
                    let matched = config.pattern.as_deref().is_some_and(|p| {
                        !t.name.starts_with("__") && strata_record::subject::matches(p, &t.name)
                    });
                    if !(named || matched) {
                        continue;
                    }
                    for p in &t.partitions {
                        let tp = TopicPartition::new(t.name.clone(), p.partition);
                        wanted.insert(tp.clone());
                        if running.contains_key(&tp) {
                            continue;
                        }
                        let start = if first {
                            config.start
                        } else {
                            Offset::Earliest
                        };
                        let handle =
                            streams.spawn(stream(client.clone(), tp.clone(), start, tx.clone()));
                        running.insert(tp, handle);
                    }
                }
                running.retain(|tp, h| {
                    let keep = wanted.contains(tp);
                    if !keep {
                        h.abort();
                    }
                    keep
                });
                first = false;
            }
            Err(e) => debug!(error = %e, "subscription: cannot list topics"),
        }
        if config.pattern.is_none() && !first {
            // Named topics only: their partitions are all running; wait for them to end.
            while streams.join_next().await.is_some() {}
            return;
        }
        tokio::select! {
            () = tokio::time::sleep(config.refresh) => {}
            () = tx.closed() => return,
        }
        while streams.try_join_next().is_some() {}
    }
}

/// Streams one partition into `tx` until the subscription ends or a failure that retrying
/// cannot fix.
async fn stream(
    client: Client,
    tp: TopicPartition,
    start: Offset,
    tx: mpsc::Sender<Result<Vec<ConsumedRecord>, Error>>,
) {
    let mut backoff = Backoff::new(Duration::from_millis(20), Duration::from_secs(1));
    // The start resolved here, so that the records of the first batch below it are skipped.
    let mut next = loop {
        match resolve(
            &client,
            &ConsumerConfig::default(),
            &tp.topic,
            tp.partition,
            start,
        )
        .await
        {
            Ok(o) => break o,
            Err(e) if e.is_retriable() => tokio::time::sleep(backoff.next_delay()).await,
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        }
        if tx.is_closed() {
            return;
        }
    };
    loop {
        let request = pb::SubscribeRequest {
            topic: tp.topic.clone(),
            partition: tp.partition,
            start: Some(pb::Position {
                at: Some(pb::position::At::Offset(next)),
            }),
            max_bytes: 0,
            format: pb::FetchFormat::Batches as i32,
        };
        let timeout = client.config().request_timeout;
        let policy =
            RetryPolicy::within(timeout, Duration::from_millis(20), Duration::from_secs(1));
        // No deadline on the request: a subscription lasts until it is dropped.
        let opened = client
            .leader_call(
                &tp.topic,
                tp.partition,
                policy,
                |mut stub| {
                    let request = tonic::Request::new(request.clone());
                    async move { Client::call(timeout, "Subscribe", stub.subscribe(request)).await }
                },
                |_| {},
            )
            .await;
        let mut messages = match opened {
            Ok(s) => s,
            Err(e) if e.is_retriable() => {
                tokio::time::sleep(backoff.next_delay()).await;
                continue;
            }
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        };
        loop {
            match messages.message().await {
                Ok(Some(m)) => {
                    backoff = Backoff::new(Duration::from_millis(20), Duration::from_secs(1));
                    let mut records = Vec::new();
                    if let Err(e) = decode(&tp, &mut next, m.batches, &mut records) {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                    next = next.max(m.next_offset);
                    if !records.is_empty() && tx.send(Ok(records)).await.is_err() {
                        return;
                    }
                }
                Ok(None) => break,
                Err(status) => {
                    let e = Error::from(status);
                    if !e.is_retriable() {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                    debug!(partition = %tp, error = %e, "subscription stream broke; reopening");
                    break;
                }
            }
        }
        if tx.is_closed() {
            return;
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
}
