//! Heartbeat coalescing: one batcher task per peer gathers the heartbeats (AppendEntries
//! without entries) of every group to that peer and sends them as one `Heartbeat` RPC on the
//! control channel, then hands each group its own answer.
//!
//! A batch is sent [`TransportConfig::heartbeat_batch_ms`] after its first heartbeat arrived,
//! or at once when it holds [`TransportConfig::heartbeat_batch_groups_max`] heartbeats. At most
//! [`TransportConfig::heartbeat_batches_inflight_max`] batches are in flight per peer; the next
//! one waits (and grows meanwhile). With 1,000 groups led by one node and a 300 ms heartbeat
//! interval, each peer receives a few RPCs per interval instead of 1,000.
//!
//! The task ends when its [`HeartbeatBatcher`] is dropped (with the peer's entry in
//! [`super::Peers`]); batches still in flight are then abandoned and their groups see an error.

use super::config::TransportConfig;
use super::identity::PeerIdentity;
use crate::types::NodeId;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use strata_proto::internal::v1 as pb;
use strata_proto::internal::v1::raft_peer_client::RaftPeerClient;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep_until};
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

/// One group's heartbeat waiting for its batch, and where its answer goes.
struct Pending {
    heartbeat: pb::GroupHeartbeat,
    reply: oneshot::Sender<Result<pb::AppendResponse, Status>>,
}

/// Where one peer's heartbeats are queued; dropping it stops the batcher task.
pub(crate) struct HeartbeatBatcher {
    queue: mpsc::Sender<Pending>,
}

/// What the batcher task needs to address and send batches.
struct Target {
    client: RaftPeerClient<Channel>,
    identity: PeerIdentity,
    node_id: NodeId,
    incarnation: Arc<AtomicU64>,
    request_timeout: Duration,
}

impl HeartbeatBatcher {
    /// Starts the batcher task of peer `node_id` (whose known incarnation is read from
    /// `incarnation` for every batch), sending on `client`. Must run inside a tokio runtime.
    pub(crate) fn spawn(
        client: RaftPeerClient<Channel>,
        identity: PeerIdentity,
        node_id: NodeId,
        incarnation: Arc<AtomicU64>,
        config: &TransportConfig,
    ) -> HeartbeatBatcher {
        let (queue, rx) = mpsc::channel(config.heartbeat_batch_groups_max);
        let target = Target {
            client,
            identity,
            node_id,
            incarnation,
            request_timeout: config.request_timeout(),
        };
        tokio::spawn(run(rx, target, BatchLimits::of(config)));
        HeartbeatBatcher { queue }
    }

    /// Queues one group's heartbeat and waits for that group's answer.
    pub(crate) async fn send(
        &self,
        heartbeat: pb::GroupHeartbeat,
    ) -> Result<pb::AppendResponse, Status> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Pending { heartbeat, reply })
            .await
            .map_err(|_| Status::unavailable("the heartbeat batcher has stopped"))?;
        answer
            .await
            .map_err(|_| Status::unavailable("the heartbeat batch was abandoned"))?
    }
}

#[derive(Clone, Copy)]
struct BatchLimits {
    window: Duration,
    groups_max: usize,
    inflight_max: usize,
}

impl BatchLimits {
    fn of(config: &TransportConfig) -> BatchLimits {
        BatchLimits {
            window: config.heartbeat_batch(),
            groups_max: config.heartbeat_batch_groups_max,
            inflight_max: config.heartbeat_batches_inflight_max,
        }
    }
}

async fn run(mut rx: mpsc::Receiver<Pending>, target: Target, limits: BatchLimits) {
    let target = Arc::new(target);
    let mut inflight = JoinSet::new();
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let deadline = Instant::now() + limits.window;
        while batch.len() < limits.groups_max {
            tokio::select! {
                biased;
                next = rx.recv() => match next {
                    Some(pending) => batch.push(pending),
                    None => break,
                },
                () = sleep_until(deadline) => break,
            }
        }
        while inflight.try_join_next().is_some() {}
        while inflight.len() >= limits.inflight_max {
            inflight.join_next().await;
        }
        inflight.spawn(send_batch(target.clone(), batch));
    }
    // Every sender is gone: the peer was forgotten. Dropping `inflight` aborts what is left.
}

async fn send_batch(target: Arc<Target>, batch: Vec<Pending>) {
    let (heartbeats, replies): (Vec<_>, Vec<_>) =
        batch.into_iter().map(|p| (p.heartbeat, p.reply)).unzip();
    let groups: Vec<u64> = heartbeats.iter().map(|h| h.group_id).collect();
    let header = target
        .identity
        .header_to(target.node_id, target.incarnation.load(Ordering::Relaxed));
    let mut request = Request::new(pb::HeartbeatRequest {
        header: Some(header),
        heartbeats,
    });
    request.set_timeout(target.request_timeout);
    let mut client = target.client.clone();
    let answer = tokio::time::timeout(target.request_timeout, client.heartbeat(request)).await;
    let results = match answer {
        Ok(Ok(response)) => demultiplex(&groups, response.into_inner()),
        Ok(Err(status)) => vec![Err(status); replies.len()],
        Err(_) => {
            let status = Status::deadline_exceeded(format!(
                "heartbeat batch to node {} timed out after {:?}",
                target.node_id, target.request_timeout
            ));
            vec![Err(status); replies.len()]
        }
    };
    for (reply, result) in replies.into_iter().zip(results) {
        // The group may have given up waiting (its own deadline); nothing to do then.
        let _ = reply.send(result);
    }
}

/// Splits a batch answer into one result per heartbeat, in order, checking that the peer
/// answered every heartbeat of the batch for the right group.
fn demultiplex(
    groups: &[u64],
    response: pb::HeartbeatResponse,
) -> Vec<Result<pb::AppendResponse, Status>> {
    use pb::group_heartbeat_result::Result as R;
    if response.results.len() != groups.len() {
        let status = Status::internal(format!(
            "peer answered {} results to a batch of {} heartbeats",
            response.results.len(),
            groups.len()
        ));
        return vec![Err(status); groups.len()];
    }
    groups
        .iter()
        .zip(response.results)
        .map(|(&group_id, result)| {
            if result.group_id != group_id {
                return Err(Status::internal(format!(
                    "peer answered group {} for a heartbeat of group {group_id}",
                    result.group_id
                )));
            }
            match result.result {
                Some(R::Response(answer)) => Ok(answer),
                Some(R::Error(e)) => Err(Status::new(Code::from_i32(e.code), e.message)),
                None => Err(Status::internal("peer sent an empty heartbeat result")),
            }
        })
        .collect()
}
