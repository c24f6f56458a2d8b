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
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use strata_proto::v1 as pb;
use strata_proto::v1::admin_client::AdminClient;
use strata_proto::v1::strata_client::StrataClient;
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};
use tracing::debug;

use crate::admin::Admin;
use crate::backoff::Backoff;
use crate::cache::{MetadataCache, Route};
use crate::config::{ClientConfig, ConsumerConfig, ProducerConfig};
use crate::consumer::Consumer;
use crate::error::Error;
use crate::model::ClusterMetadata;
use crate::producer::Producer;

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

/// What the nodes said, in one probe, leads each partition of a topic.
#[derive(Debug, Clone)]
struct Probe {
    /// When the probe started.
    at: Instant,
    /// The claim with the newest term, by partition.
    leaders: HashMap<u32, Claim>,
}

/// A node's claim on who leads a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Claim {
    /// The leader's node id.
    pub(crate) leader_id: u64,
    /// Its client address, as the answering node lists it.
    pub(crate) leader_addr: String,
    /// The leader's term.
    pub(crate) term: u64,
}

/// After the first node answers a probe, how long the others may still take: a node that
/// answers later is frozen, cut off or overloaded, and its word is not waited for.
const PROBE_GRACE: Duration = Duration::from_millis(200);

/// The longest a probe waits for any answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// How [`Client::leader_call`] retries.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RetryPolicy {
    /// First backoff.
    pub(crate) backoff: Duration,
    /// Largest backoff.
    pub(crate) backoff_max: Duration,
    /// Give up (returning the last error) rather than wait past this.
    pub(crate) deadline: Instant,
    /// How long an attempt may go unanswered before the client probes who leads the
    /// partition (then every [`ClientConfig::leader_probe_interval`]); `None`: never.
    pub(crate) probe_after: Option<Duration>,
}

/// How one attempt of [`Client::leader_call`] ended.
enum Attempt<T> {
    /// The node answered (or the call failed).
    Done(Result<T, Error>),
    /// The node did not answer while the others named a new leader.
    Moved(Claim),
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
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

    /// Who leads `topic`/`partition` according to every known node, asked at once: the claim
    /// with the newest term among the nodes that answered within [`PROBE_GRACE`] of the first
    /// (`None`: no node named a leader). Probes of a topic are shared: a caller reuses a probe
    /// that started at or after `since`, and waits for one under way.
    pub(crate) async fn probe_leader(
        &self,
        topic: &str,
        partition: u32,
        since: Instant,
    ) -> Option<Claim> {
        let slot = lock(&self.inner.probes)
            .entry(topic.to_string())
            .or_default()
            .clone();
        let mut slot = slot.lock().await;
        if let Some(probe) = slot.as_ref().filter(|p| p.at >= since) {
            return probe.leaders.get(&partition).cloned();
        }
        let probe = self.probe_topic(topic).await;
        let claim = probe.leaders.get(&partition).cloned();
        *slot = Some(probe);
        claim
    }

    /// Asks every known node for `topic`'s metadata at once (see [`Client::probe_leader`]).
    async fn probe_topic(&self, topic: &str) -> Probe {
        let at = Instant::now();
        let timeout = PROBE_TIMEOUT;
        let mut pending: FuturesUnordered<_> = self
            .node_addrs()
            .into_iter()
            .map(|addr| async move {
                let mut stub = self.strata(&addr)?;
                let request = request(
                    pb::MetadataRequest {
                        topics: vec![topic.to_string()],
                    },
                    timeout,
                );
                Client::call(timeout, "Metadata", stub.metadata(request)).await
            })
            .collect();
        let mut leaders: HashMap<u32, Claim> = HashMap::new();
        let mut deadline = at + timeout;
        loop {
            let answer = tokio::select! {
                answer = pending.next() => answer,
                () = tokio::time::sleep_until(deadline) => None,
            };
            let Some(answer) = answer else { break };
            let Ok(metadata) = answer else { continue };
            deadline = deadline.min(Instant::now() + PROBE_GRACE);
            let addrs: HashMap<u64, &str> = metadata
                .nodes
                .iter()
                .map(|n| (n.node_id, n.client_addr.as_str()))
                .collect();
            for t in metadata.topics.iter().filter(|t| t.name == topic) {
                for p in &t.partitions {
                    let Some(addr) = addrs.get(&p.leader_id).filter(|a| !a.is_empty()) else {
                        continue;
                    };
                    if p.leader_id == 0
                        || leaders
                            .get(&p.partition)
                            .is_some_and(|c| c.term >= p.leader_term)
                    {
                        continue;
                    }
                    leaders.insert(
                        p.partition,
                        Claim {
                            leader_id: p.leader_id,
                            leader_addr: (*addr).to_string(),
                            term: p.leader_term,
                        },
                    );
                }
            }
        }
        debug!(topic, ?leaders, elapsed = ?at.elapsed(), "leader probe");
        Probe { at, leaders }
    }

    /// Resolves once a probe finds that another node than the one at `addr` leads
    /// `topic`/`partition` (and `addr` claims it in no newer term): first after `after`, then
    /// every [`ClientConfig::leader_probe_interval`]. Never resolves otherwise.
    async fn leader_moved(
        &self,
        topic: &str,
        partition: u32,
        addr: &str,
        after: Duration,
    ) -> Claim {
        let every = self.inner.config.leader_probe_interval;
        let mut next = Instant::now() + after;
        loop {
            tokio::time::sleep_until(next).await;
            // A probe that started since the previous one (or half an interval ago) will do.
            let since = next - every / 2;
            next += every;
            if let Some(claim) = self.probe_leader(topic, partition, since).await
                && claim.leader_addr != addr
            {
                return claim;
            }
        }
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

    /// Runs `op` against the leader of `topic`/`partition` until it succeeds, fails with an
    /// error that is not retriable, or `policy.deadline` would pass (then the last error is
    /// returned).
    ///
    /// - `NOT_LEADER` with an address: go there at once (a second redirect in a row waits a
    ///   backoff first: leadership is moving).
    /// - `NOT_LEADER` without one, unavailable, transport error, timeout: refresh the metadata
    ///   (coalesced), wait a backoff, retry.
    /// - `INDETERMINATE`: wait a backoff, retry at the same leader (which, if it lost the
    ///   leadership meanwhile, names the new leader).
    /// - No answer for `policy.probe_after`: probe who leads (see [`Client::probe_leader`]);
    ///   if another node does, abandon the attempt and go there at once. The attempt's
    ///   outcome is unknown, so `observe` sees a [`Error::Timeout`].
    /// - `UNKNOWN_TOPIC` / `UNKNOWN_PARTITION` from the node: refresh once and retry; the
    ///   second time (or when the refreshed cache does not know it either) it is returned.
    ///
    /// `observe` sees every error, retried or not (the producer notes whether a write may
    /// have happened).
    pub(crate) async fn leader_call<T, F, Fut>(
        &self,
        topic: &str,
        partition: u32,
        policy: RetryPolicy,
        mut op: F,
        mut observe: impl FnMut(&Error),
    ) -> Result<T, Error>
    where
        F: FnMut(StrataClient<Channel>) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let mut backoff = Backoff::new(policy.backoff, policy.backoff_max);
        let mut redirected = false;
        let mut refreshed_unknown = false;
        loop {
            let (error, seen) = match self.leader(topic, partition).await {
                Ok((addr, seen)) => {
                    let attempt = async {
                        match self.strata(&addr) {
                            Ok(stub) => op(stub).await,
                            Err(e) => Err(e),
                        }
                    };
                    let attempt = match policy.probe_after {
                        Some(after) => tokio::select! {
                            result = attempt => Attempt::Done(result),
                            claim = self.leader_moved(topic, partition, &addr, after) => {
                                Attempt::Moved(claim)
                            }
                        },
                        None => Attempt::Done(attempt.await),
                    };
                    match attempt {
                        Attempt::Done(Ok(value)) => return Ok(value),
                        Attempt::Done(Err(e)) => (e, seen),
                        Attempt::Moved(claim) => {
                            // The abandoned request may still be written: a timeout says so.
                            let error = Error::Timeout(format!(
                                "no answer from {addr} while the other nodes name node {} at \
                                 {} the leader (term {})",
                                claim.leader_id, claim.leader_addr, claim.term
                            ));
                            debug!(topic, partition, %error, "abandoning the request");
                            observe(&error);
                            self.follow_hint(
                                topic,
                                partition,
                                Some(claim.leader_id),
                                Some(&claim.leader_addr),
                            );
                            // A redirect: a NOT_LEADER answer from there waits a backoff.
                            redirected = true;
                            continue;
                        }
                    }
                }
                Err(e @ (Error::UnknownTopic { .. } | Error::UnknownPartition { .. })) => {
                    observe(&e);
                    return Err(e);
                }
                Err(e) => (e, self.generation()),
            };
            observe(&error);
            match &error {
                Error::NotLeader {
                    leader_id,
                    leader_addr: Some(addr),
                } => {
                    self.follow_hint(topic, partition, *leader_id, Some(addr));
                    if !redirected {
                        redirected = true;
                        continue;
                    }
                }
                Error::UnknownTopic { .. } | Error::UnknownPartition { .. }
                    if !refreshed_unknown =>
                {
                    refreshed_unknown = true;
                    if let Err(e) = self.refresh_after(seen).await {
                        debug!(error = %e, "metadata refresh failed");
                    }
                    continue;
                }
                e if e.is_retriable() => {}
                _ => return Err(error),
            }
            if error.wants_metadata_refresh()
                && let Err(e) = self.refresh_after(seen).await
            {
                debug!(error = %e, "metadata refresh failed");
            }
            let wait = backoff.next_delay();
            if Instant::now() + wait >= policy.deadline {
                return Err(error);
            }
            debug!(topic, partition, error = %error, ?wait, "retrying");
            tokio::time::sleep(wait).await;
            redirected = false;
        }
    }
}

impl Client {
    /// Runs `op` (given a node address) against any node: the known nodes in turn, then the
    /// bootstrap addresses; a `NOT_CONTROLLER` / `NOT_LEADER` hint sends the next attempt
    /// there. After a round of retriable failures it waits a backoff and starts over, until
    /// `policy.deadline` would pass (then the last error is returned). Errors that are not
    /// retriable are returned at once.
    pub(crate) async fn any_node_call<T, F, Fut>(
        &self,
        policy: RetryPolicy,
        mut op: F,
    ) -> Result<T, Error>
    where
        F: FnMut(String) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let mut backoff = Backoff::new(policy.backoff, policy.backoff_max);
        let mut hint: Option<String> = None;
        let mut redirected = false;
        loop {
            let addrs = match hint.take() {
                Some(addr) => vec![addr],
                None => self.node_addrs(),
            };
            let mut last = Error::Unavailable("no node address known".into());
            for addr in addrs {
                let error = match op(addr.clone()).await {
                    Ok(value) => return Ok(value),
                    Err(error) => error,
                };
                if !error.is_retriable() {
                    return Err(error);
                }
                debug!(%addr, %error, "request failed");
                if let Error::NotController {
                    leader_addr: Some(leader),
                    ..
                }
                | Error::NotLeader {
                    leader_addr: Some(leader),
                    ..
                } = &error
                    && *leader != addr
                {
                    hint = Some(leader.clone());
                    last = error;
                    break;
                }
                last = error;
            }
            if hint.is_some() && !redirected {
                redirected = true;
                continue;
            }
            let wait = backoff.next_delay();
            if Instant::now() + wait >= policy.deadline {
                return Err(last);
            }
            tokio::time::sleep(wait).await;
            redirected = false;
        }
    }
}

/// A request carrying `timeout` as its gRPC deadline, so the node can give up too.
pub(crate) fn request<T>(message: T, timeout: Duration) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(timeout);
    request
}
