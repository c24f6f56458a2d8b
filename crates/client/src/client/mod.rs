//! [`Client`]: connections, the metadata cache, and the retry loop every partition request
//! (produce, fetch, offsets) goes through.
//!
//! - One tonic [`Channel`] per node address, connected lazily on first use (HTTP/2 multiplexes
//!   every request to that node over it), with a connect timeout, TCP_NODELAY and keepalive.
//! - A metadata cache (`MetadataCache`) filled by `Metadata` (all topics), refreshed on
//!   demand: unknown topic, `NOT_LEADER` without an address, unavailable node, failed
//!   connection. Refreshes are coalesced (a caller that saw stale data skips its refresh if
//!   someone refreshed since) and spaced by [`ClientConfig::metadata_refresh_backoff`].
//! - `Client::leader_call` (internal): sends a partition request to its leader, follows
//!   `NOT_LEADER` hints (the leader's client address) at once, and retries retriable failures
//!   with backoff until a deadline.
//! - Dead nodes: HTTP/2 keepalive pings (also while requests are in flight) close a connection
//!   whose node stopped answering ([`ClientConfig::keepalive_timeout`]). A partition request
//!   unanswered for [`ClientConfig::leader_probe_interval`] makes the client ask every node who
//!   leads the partition (`Client::probe_leader`, coalesced per topic); if the answers name a
//!   new leader and the node asked does not answer for itself, the request is abandoned and
//!   sent to the new leader. Metadata requests are hedged: a node that has not answered within
//!   the same interval is joined by the next, and the first answer wins.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;
use strata_record::sync::lock;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use strata_proto::v1 as pb;
use strata_proto::v1::admin_client::AdminClient;
use strata_proto::v1::groups_client::GroupsClient;
use strata_proto::v1::queues_client::QueuesClient;
use strata_proto::v1::strata_client::StrataClient;
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};
use tracing::debug;

mod retry;
use retry::Probe;
pub(crate) use retry::RetryPolicy;

use crate::admin::Admin;
use crate::cache::{MetadataCache, Route};
use crate::config::{ClientConfig, ConsumerConfig, ProducerConfig};
use crate::consumer::Consumer;
use crate::error::Error;
use crate::group_consumer::{GroupConsumer, GroupConsumerConfig};
use crate::groups::Groups;
use crate::model::ClusterMetadata;
use crate::producer::Producer;
use crate::queue::{QueueConsumer, QueueConsumerConfig, Queues};
use crate::request::Requester;
use crate::subscription::{Subscription, SubscriptionConfig};

/// A connection to a Strata cluster: cheap to clone (clones share connections and metadata).
/// Producers, consumers and the admin API are made from it.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("bootstrap", &self.inner.bootstrap)
            .finish_non_exhaustive()
    }
}

struct Inner {
    config: ClientConfig,
    /// The addresses given to `connect`, asked when no known node answers.
    bootstrap: Vec<String>,
    /// One channel per node address.
    channels: Mutex<HashMap<String, Channel>>,
    cache: RwLock<MetadataCache>,
    /// When the last refresh finished; held during a refresh so refreshes never overlap.
    last_refresh: tokio::sync::Mutex<Option<Instant>>,
    /// Rotates the node that metadata and admin requests try first.
    next_node: AtomicUsize,
    /// The latest leader probe of each topic (see [`Client::probe_leader`]); a topic's slot is
    /// held while it is probed, so concurrent callers share one probe.
    probes: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<Probe>>>>>,
}

impl Client {
    /// Connects with the default [`ClientConfig`]: asks each of `brokers` (client addresses,
    /// `host:port`) in turn for the cluster metadata until one answers.
    pub async fn connect(
        brokers: impl IntoIterator<Item = impl Into<String>>,
    ) -> Result<Client, Error> {
        Client::connect_with(brokers, ClientConfig::default()).await
    }

    /// Connects with `config`; see [`Client::connect`].
    pub async fn connect_with(
        brokers: impl IntoIterator<Item = impl Into<String>>,
        config: ClientConfig,
    ) -> Result<Client, Error> {
        config.validate()?;
        let bootstrap: Vec<String> = brokers
            .into_iter()
            .map(|b| b.into().trim().to_string())
            .filter(|b| !b.is_empty())
            .collect();
        if bootstrap.is_empty() {
            return Err(Error::InvalidArgument {
                field: "brokers".into(),
                reason: "no broker address given".into(),
            });
        }
        let client = Client {
            inner: Arc::new(Inner {
                config,
                bootstrap,
                channels: Mutex::new(HashMap::new()),
                cache: RwLock::new(MetadataCache::default()),
                last_refresh: tokio::sync::Mutex::new(None),
                next_node: AtomicUsize::new(0),
                probes: Mutex::new(HashMap::new()),
            }),
        };
        client.refresh_after(0).await?;
        Ok(client)
    }

    /// The client's settings.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// Describes `topics` (every topic when empty), asking any node, and updates the cache.
    pub async fn metadata(
        &self,
        topics: impl IntoIterator<Item = impl Into<String>>,
    ) -> Result<ClusterMetadata, Error> {
        let topics: Vec<String> = topics.into_iter().map(Into::into).collect();
        let all = topics.is_empty();
        let metadata = ClusterMetadata::from(self.fetch_metadata(topics).await?);
        let mut cache = self.write_cache();
        if all {
            cache.replace(&metadata);
        } else {
            for topic in &metadata.topics {
                cache.merge_topic(
                    &topic.name,
                    topic.partitions.iter().map(|p| (p.partition, p.leader_id)),
                );
            }
            for topic in &metadata.unknown_topics {
                cache.remove_topic(topic);
            }
        }
        Ok(metadata)
    }

    /// A producer with `config` (checked first). Its background tasks start with its first
    /// records; see [`Producer`].
    pub fn producer(&self, config: ProducerConfig) -> Result<Producer, Error> {
        config.validate(&self.inner.config)?;
        Ok(Producer::new(self.clone(), config))
    }

    /// A consumer with `config` (checked first), with nothing assigned yet.
    pub fn consumer(&self, config: ConsumerConfig) -> Result<Consumer, Error> {
        config.validate(&self.inner.config)?;
        Ok(Consumer::new(self.clone(), config))
    }

    /// The admin API.
    pub fn admin(&self) -> Admin {
        Admin::new(self.clone())
    }

    /// An ephemeral subscription (see [`Subscription`]): streams start at once, in the
    /// background.
    pub fn subscribe(&self, config: SubscriptionConfig) -> Result<Subscription, Error> {
        Subscription::start(self.clone(), config)
    }

    /// Consumer-group calls: committed offsets and group administration.
    pub fn groups(&self) -> Groups {
        Groups::new(self.clone())
    }

    /// A consumer in the group `group` (see [`GroupConsumer`]): it joins at once, in the
    /// background.
    pub fn group_consumer(
        &self,
        consumer: ConsumerConfig,
        group: GroupConsumerConfig,
    ) -> Result<GroupConsumer, Error> {
        GroupConsumer::new(self.clone(), consumer, group)
    }

    /// A consumer of a queue group (see [`QueueConsumer`]): its streams start at once, in
    /// the background.
    pub fn queue_consumer(&self, config: QueueConsumerConfig) -> Result<QueueConsumer, Error> {
        QueueConsumer::start(self.clone(), config)
    }

    /// Queue-group administration: describe and delete.
    pub fn queues(&self) -> Queues {
        Queues::new(self.clone())
    }

    /// A requester for request/reply (see [`crate::request`]): creates the shared inbox
    /// topic if needed and starts reading this requester's inbox.
    pub async fn requester(&self) -> Result<Requester, Error> {
        Requester::start(self.clone()).await
    }

    fn read_cache(&self) -> std::sync::RwLockReadGuard<'_, MetadataCache> {
        self.inner
            .cache
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn write_cache(&self) -> std::sync::RwLockWriteGuard<'_, MetadataCache> {
        self.inner
            .cache
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The channel to `addr`, made (not yet connected) on first use.
    pub(crate) fn channel(&self, addr: &str) -> Result<Channel, Error> {
        let mut channels = lock(&self.inner.channels);
        if let Some(channel) = channels.get(addr) {
            return Ok(channel.clone());
        }
        let config = &self.inner.config;
        let uri = if addr.contains("://") {
            addr.to_string()
        } else {
            // TLS (a later issue) goes here: an https URI and `Endpoint::tls_config`.
            format!("http://{addr}")
        };
        let endpoint = Endpoint::from_shared(uri)
            .map_err(|e| Error::Transport(format!("bad node address {addr:?}: {e}")))?
            .connect_timeout(config.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(config.keepalive_interval)
            .keep_alive_timeout(config.keepalive_timeout)
            .keep_alive_while_idle(true);
        let channel = endpoint.connect_lazy();
        channels.insert(addr.to_string(), channel.clone());
        Ok(channel)
    }

    /// A data-plane stub for the node at `addr`.
    pub(crate) fn strata(&self, addr: &str) -> Result<StrataClient<Channel>, Error> {
        let max = self.inner.config.message_bytes_max;
        Ok(StrataClient::new(self.channel(addr)?)
            .max_decoding_message_size(max)
            .max_encoding_message_size(max))
    }

    /// An admin stub for the node at `addr`.
    pub(crate) fn admin_stub(&self, addr: &str) -> Result<AdminClient<Channel>, Error> {
        let max = self.inner.config.message_bytes_max;
        Ok(AdminClient::new(self.channel(addr)?)
            .max_decoding_message_size(max)
            .max_encoding_message_size(max))
    }

    /// A consumer-groups stub for the node at `addr`.
    pub(crate) fn groups_stub(&self, addr: &str) -> Result<GroupsClient<Channel>, Error> {
        let max = self.inner.config.message_bytes_max;
        Ok(GroupsClient::new(self.channel(addr)?)
            .max_decoding_message_size(max)
            .max_encoding_message_size(max))
    }

    /// A queue-groups stub for the node at `addr`.
    pub(crate) fn queues_stub(&self, addr: &str) -> Result<QueuesClient<Channel>, Error> {
        let max = self.inner.config.message_bytes_max.max(16 << 20);
        Ok(QueuesClient::new(self.channel(addr)?)
            .max_decoding_message_size(max)
            .max_encoding_message_size(max))
    }

    /// Awaits `call` for at most `timeout` (also sent to the node as the request's deadline by
    /// [`request`]); a status becomes an [`Error`].
    pub(crate) async fn call<T>(
        timeout: Duration,
        what: &str,
        call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, Error> {
        match tokio::time::timeout(timeout, call).await {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => Err(Error::from(status)),
            Err(_) => Err(Error::Timeout(format!(
                "{what} got no answer within {timeout:?}"
            ))),
        }
    }

    /// Addresses to try for a request any node can answer: the known nodes, starting at a
    /// rotating one, then the bootstrap addresses not among them.
    pub(crate) fn node_addrs(&self) -> Vec<String> {
        let mut addrs = self.read_cache().node_addrs();
        if !addrs.is_empty() {
            let start = self.inner.next_node.fetch_add(1, Ordering::Relaxed) % addrs.len();
            addrs.rotate_left(start);
        }
        for addr in &self.inner.bootstrap {
            if !addrs.contains(addr) {
                addrs.push(addr.clone());
            }
        }
        addrs
    }

    /// Asks the nodes in turn for metadata until one answers. A node that has not answered
    /// within [`ClientConfig::leader_probe_interval`] (or failed) is joined by the next one,
    /// and the first answer wins, so a frozen or unreachable node delays a refresh by that
    /// interval rather than by the request timeout.
    async fn fetch_metadata(&self, topics: Vec<String>) -> Result<pb::MetadataResponse, Error> {
        let hedge = self.inner.config.leader_probe_interval;
        let mut addrs = self.node_addrs().into_iter();
        let mut pending = FuturesUnordered::new();
        let mut last = Error::Unavailable("no node address known".into());
        loop {
            if pending.is_empty() {
                match addrs.next() {
                    Some(addr) => pending.push(self.metadata_from(addr, topics.clone())),
                    None => return Err(last),
                }
            }
            tokio::select! {
                Some((addr, result)) = pending.next() => match result {
                    Ok(metadata) => return Ok(metadata),
                    Err(e) if e.is_retriable() => {
                        debug!(%addr, error = %e, "metadata request failed; trying the next node");
                        last = e;
                        if let Some(addr) = addrs.next() {
                            pending.push(self.metadata_from(addr, topics.clone()));
                        }
                    }
                    Err(e) => return Err(e),
                },
                () = tokio::time::sleep(hedge) => {
                    if let Some(addr) = addrs.next() {
                        debug!(%addr, "metadata request unanswered; asking another node too");
                        pending.push(self.metadata_from(addr, topics.clone()));
                    }
                }
            }
        }
    }

    /// One `Metadata` request to `addr`, returned with the address.
    async fn metadata_from(
        &self,
        addr: String,
        topics: Vec<String>,
    ) -> (String, Result<pb::MetadataResponse, Error>) {
        let timeout = self.inner.config.request_timeout;
        let result = match self.strata(&addr) {
            Ok(mut stub) => {
                let request = request(pb::MetadataRequest { topics }, timeout);
                Client::call(timeout, "Metadata", stub.metadata(request)).await
            }
            Err(e) => Err(e),
        };
        (addr, result)
    }

    /// The cache's refresh count: pass it to [`Client::refresh_after`].
    pub(crate) fn generation(&self) -> u64 {
        self.read_cache().generation()
    }

    /// Refreshes the whole cache, unless it was refreshed since the caller saw generation
    /// `seen` (then the caller just looks again). Refreshes are spaced by the configured
    /// backoff.
    pub(crate) async fn refresh_after(&self, seen: u64) -> Result<(), Error> {
        let mut last = self.inner.last_refresh.lock().await;
        if self.generation() != seen {
            return Ok(());
        }
        if let Some(at) = *last {
            tokio::time::sleep_until(at + self.inner.config.metadata_refresh_backoff).await;
        }
        let result = self.fetch_metadata(Vec::new()).await;
        *last = Some(Instant::now());
        let metadata = ClusterMetadata::from(result?);
        self.write_cache().replace(&metadata);
        Ok(())
    }

    /// Partitions of `topic`, refreshing the cache once if it does not know the topic.
    pub(crate) async fn partition_count(&self, topic: &str) -> Result<u32, Error> {
        for attempt in 0..2 {
            let (count, seen) = {
                let cache = self.read_cache();
                (cache.partition_count(topic), cache.generation())
            };
            match count {
                Some(count) => return Ok(count),
                None if attempt == 0 => self.refresh_after(seen).await?,
                None => {}
            }
        }
        Err(Error::UnknownTopic {
            topic: topic.to_string(),
        })
    }

    /// The leader's address for `topic`/`partition` and the cache generation it came from,
    /// refreshing the cache once if it has no leader for it.
    pub(crate) async fn leader(&self, topic: &str, partition: u32) -> Result<(String, u64), Error> {
        let mut route = Route::NoLeader;
        for attempt in 0..2 {
            let seen;
            (route, seen) = {
                let cache = self.read_cache();
                (cache.route(topic, partition), cache.generation())
            };
            if let Route::Leader(addr) = route {
                return Ok((addr, seen));
            }
            if attempt == 0 {
                self.refresh_after(seen).await?;
            }
        }
        Err(match route {
            Route::UnknownTopic => Error::UnknownTopic {
                topic: topic.to_string(),
            },
            Route::UnknownPartition { partitions } => Error::UnknownPartition {
                topic: topic.to_string(),
                partition,
                partitions,
            },
            Route::Leader(_) | Route::NoLeader => {
                Error::Unavailable(format!("no leader known for {topic}/{partition}"))
            }
        })
    }

    /// Records a leader hint.
    pub(crate) fn follow_hint(
        &self,
        topic: &str,
        partition: u32,
        leader_id: Option<u64>,
        leader_addr: Option<&str>,
    ) {
        debug!(
            topic,
            partition,
            ?leader_id,
            ?leader_addr,
            "following a leader hint"
        );
        self.write_cache()
            .follow_hint(topic, partition, leader_id, leader_addr);
    }
}

/// A request carrying `timeout` as its gRPC deadline, so the node can give up too.
pub(crate) fn request<T>(message: T, timeout: Duration) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(timeout);
    request
}
