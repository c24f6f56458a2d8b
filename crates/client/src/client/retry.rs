//! How partition and admin requests reach the right node: [`Client::leader_call`] (leader
//! hints, retries with backoff, leader probes when a node stops answering) and
//! [`Client::any_node_call`] (any node, following controller hints).

use super::{Client, lock, request};
use crate::backoff::Backoff;
use crate::error::Error;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;
use strata_proto::v1 as pb;
use strata_proto::v1::strata_client::StrataClient;
use tokio::time::Instant;
use tonic::transport::Channel;
use tracing::debug;

/// What the nodes said, in one probe, leads each partition of a topic.
#[derive(Debug, Clone)]
pub(super) struct Probe {
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

impl RetryPolicy {
    /// Backoff from `backoff` doubling to `backoff_max`, until `timeout` from now, with no
    /// leader probe: the policy of a request that any answer ends.
    pub(crate) fn within(
        timeout: Duration,
        backoff: Duration,
        backoff_max: Duration,
    ) -> RetryPolicy {
        RetryPolicy {
            backoff,
            backoff_max,
            deadline: Instant::now() + timeout,
            probe_after: None,
        }
    }
}

/// How one attempt of [`Client::leader_call`] ended.
enum Attempt<T> {
    /// The node answered (or the call failed).
    Done(Result<T, Error>),
    /// The node did not answer while the others named a new leader.
    Moved(Claim),
}

impl Client {
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
        op: F,
        observe: impl FnMut(&Error),
    ) -> Result<T, Error>
    where
        F: FnMut(StrataClient<Channel>) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        self.leader_call_with(topic, partition, policy, Client::strata, op, observe)
            .await
    }

    /// [`Client::leader_call`] with a stub of another service of the leader, made by `stub`.
    pub(crate) async fn leader_call_with<S, T, F, Fut>(
        &self,
        topic: &str,
        partition: u32,
        policy: RetryPolicy,
        stub: impl Fn(&Client, &str) -> Result<S, Error>,
        mut op: F,
        mut observe: impl FnMut(&Error),
    ) -> Result<T, Error>
    where
        F: FnMut(S) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let mut backoff = Backoff::new(policy.backoff, policy.backoff_max);
        let mut redirected = false;
        let mut refreshed_unknown = false;
        loop {
            let (error, seen) = match self.leader(topic, partition).await {
                Ok((addr, seen)) => {
                    let attempt = async {
                        match stub(self, &addr) {
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
        op: F,
    ) -> Result<T, Error>
    where
        F: FnMut(String) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        self.any_node_call_from(policy, None, op).await
    }

    /// [`Client::any_node_call`], trying `first` (a node believed to serve the request, such
    /// as a group's last known coordinator) before the others.
    pub(crate) async fn any_node_call_from<T, F, Fut>(
        &self,
        policy: RetryPolicy,
        first: Option<String>,
        mut op: F,
    ) -> Result<T, Error>
    where
        F: FnMut(String) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let mut backoff = Backoff::new(policy.backoff, policy.backoff_max);
        let mut hint: Option<String> = first;
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
