//! The client API services: `strata.v1.Strata` (produce, fetch, subscribe, offsets,
//! metadata) and `strata.v1.Admin`.

use crate::controller::ControllerError;
use crate::errors::{self, invalid, not_leader, partition_error, unknown_partition, unknown_topic};
use crate::meta::{ClusterMeta, Command, NodeMeta, NodeState, Outcome, Refusal, TopicConfig};
use crate::node::Shared;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use strata_proto::v1 as pb;
use strata_raft::partition::{Acks, Partition};
use strata_record::{Batch, BatchBuilder, NewRecord};
use tokio::sync::mpsc;
use tonic::{Code, Request, Response, Status};

/// How long admin calls wait for the controller.
const ADMIN_PATIENCE: Duration = Duration::from_secs(15);

/// The `Strata` and `Admin` services of one node.
#[derive(Clone)]
pub struct ClientService {
    shared: Arc<Shared>,
}

impl ClientService {
    /// Services answering from `shared`.
    pub fn new(shared: Arc<Shared>) -> ClientService {
        ClientService { shared }
    }

    fn meta(&self) -> ClusterMeta {
        self.shared.controller.snapshot()
    }

    fn client_addr(&self, node: u64) -> Option<String> {
        self.shared
            .controller
            .meta()
            .borrow()
            .nodes
            .get(&node)
            .map(|n| n.client_addr.clone())
    }

    /// The local replica of `topic`/`partition`, or the status to answer.
    fn partition(&self, topic: &str, partition: u32) -> Result<Arc<Partition>, Status> {
        self.route(topic, partition).map(|(p, _)| p)
    }

    /// The local replica of `topic`/`partition` and the topic's `max.message.bytes`, from one
    /// look at the metadata; or the status to answer (unknown topic or partition, or
    /// `NOT_LEADER` naming the leader when no replica is hosted here).
    fn route(&self, topic: &str, partition: u32) -> Result<(Arc<Partition>, usize), Status> {
        let (group, replicas, limit) = {
            let meta = self.shared.controller.meta();
            let meta = meta.borrow();
            let t = meta.topics.get(topic).ok_or_else(|| unknown_topic(topic))?;
            let p = t
                .partitions
                .get(partition as usize)
                .ok_or_else(|| unknown_partition(topic, partition, t.partitions.len()))?;
            let limit = t.config.max_message_bytes as usize;
            (p.group_id, p.replicas.first().copied(), limit)
        };
        let hosted = self.shared.replicas.get(group).and_then(|h| h.partition());
        match hosted {
            Some(p) => Ok((p, limit)),
            None => {
                // Not hosted here: the leader another node announced, else the preferred one.
                let hint = self
                    .shared
                    .hints
                    .get(group)
                    .map(|(id, _)| id)
                    .or(replicas)
                    .and_then(|id| self.client_addr(id).map(|a| (id, a)));
                Err(not_leader(&format!("{topic}/{partition}"), hint))
            }
        }
    }

    fn perr(&self, topic: &str, partition: u32, e: strata_raft::error::PartitionError) -> Status {
        partition_error(&format!("{topic}/{partition}"), e, |id| {
            self.client_addr(id)
        })
    }

    fn controller_error(&self, e: ControllerError) -> Status {
        match e {
            ControllerError::Unavailable(m) => {
                let hint = self
                    .shared
                    .controller
                    .leader()
                    .and_then(|(id, _)| self.client_addr(id).map(|a| (id, a)));
                let mut meta = vec![];
                if let Some((id, a)) = hint {
                    meta.push(("leader_id", id.to_string()));
                    meta.push(("leader_addr", a));
                }
                errors::status(
                    Code::Unavailable,
                    "NOT_CONTROLLER",
                    format!("the controller cannot take the change now: {m}"),
                    &meta,
                )
            }
            ControllerError::Refused(r) => refusal(r),
        }
    }

    fn topic_info(&self, meta: &ClusterMeta, name: &str) -> Option<pb::TopicInfo> {
        let t = meta.topics.get(name)?;
        let partitions = t
            .partitions
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let local = self
                    .shared
                    .replicas
                    .get(p.group_id)
                    .and_then(|h| h.partition());
                let (leader_id, term, voters, hw) = match &local {
                    Some(part) => {
                        let st = part.status();
                        (
                            st.leader.unwrap_or(0),
                            st.term,
                            st.voters,
                            part.high_watermark(),
                        )
                    }
                    None => {
                        let (leader, term) = self
                            .shared
                            .hints
                            .get(p.group_id)
                            .unwrap_or((p.replicas.first().copied().unwrap_or(0), 0));
                        (leader, term, p.replicas.clone(), -1)
                    }
                };
                pb::PartitionInfo {
                    partition: i as u32,
                    leader_id,
                    replicas: p.replicas.clone(),
                    voters,
                    leader_term: term,
                    high_watermark: hw,
                    group_id: p.group_id,
                }
            })
            .collect();
        Some(pb::TopicInfo {
            name: name.to_string(),
            topic_id: t.id.clone(),
            partitions,
            replication_factor: t.replication_factor,
            configs: t.config.to_map().into_iter().collect(),
        })
    }

    fn nodes(&self, meta: &ClusterMeta) -> Vec<pb::NodeInfo> {
        meta.nodes
            .iter()
            .map(|(id, n)| pb::NodeInfo {
                node_id: *id,
                client_addr: n.client_addr.clone(),
                peer_addr: n.peer_addr.clone(),
                http_addr: n.http_addr.clone(),
                state: n.state.as_str().to_string(),
                alive: self.shared.alive(*id),
            })
            .collect()
    }

    fn max_bytes(&self, asked: u32) -> usize {
        let cap = self.shared.config.fetch_max_bytes;
        (if asked == 0 {
            cap.min(4 << 20)
        } else {
            asked.min(cap)
        }) as usize
    }

    fn max_wait(&self, asked: u32) -> Duration {
        Duration::from_millis(asked.min(self.shared.config.fetch_max_wait_ms) as u64)
    }
}

fn limit_exceeded(limit: &str, max: u32, value: u32) -> Status {
    errors::status(
        Code::ResourceExhausted,
        "LIMIT_EXCEEDED",
        format!("{value} is over {limit} ({max})"),
        &[("limit", max.to_string()), ("value", value.to_string())],
    )
}

fn refusal(r: Refusal) -> Status {
    match &r {
        Refusal::TopicExists(t) => errors::status(
            Code::AlreadyExists,
            "TOPIC_EXISTS",
            r.to_string(),
            &[("topic", t.clone())],
        ),
        Refusal::UnknownTopic(t) => unknown_topic(t),
        Refusal::UnknownNode(n) => errors::status(
            Code::NotFound,
            "UNKNOWN_NODE",
            r.to_string(),
            &[("node_id", n.to_string())],
        ),
        Refusal::NotEnoughNodes { .. } => invalid("replication_factor", r.to_string()),
        Refusal::IncarnationMismatch { node_id, .. } => errors::status(
            Code::FailedPrecondition,
            "INCARNATION_MISMATCH",
            r.to_string(),
            &[("node_id", node_id.to_string())],
        ),
        Refusal::Invalid(m) => errors::status(
            Code::FailedPrecondition,
            "INVALID_STATE",
            m.clone(),
            &[("reason", m.clone())],
        ),
    }
}

fn acks(a: i32) -> Result<Acks, Status> {
    match pb::Acks::try_from(a) {
        Ok(pb::Acks::Unspecified | pb::Acks::All) => Ok(Acks::All),
        Ok(pb::Acks::Leader) => Ok(Acks::Leader),
        Ok(pb::Acks::None) => Ok(Acks::None),
        Err(_) => Err(invalid("acks", format!("unknown acks value {a}"))),
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Encodes records of a `RecordSet` into one batch, checking sizes on the way.
fn encode_records(set: &pb::RecordSet, limit: usize) -> Result<Bytes, Status> {
    if set.records.is_empty() {
        return Err(invalid("records", "at least one record is required".into()));
    }
    let now = now_ms();
    let mut b = BatchBuilder::new();
    for (i, r) in set.records.iter().enumerate() {
        let headers: Vec<strata_record::Header> = r
            .headers
            .iter()
            .map(|h| strata_record::Header {
                key: h.key.clone(),
                value: h.value.clone(),
            })
            .collect();
        let rec = NewRecord {
            timestamp: if r.timestamp_ms == 0 {
                now
            } else {
                r.timestamp_ms
            },
            key: r.key.clone(),
            value: r.value.clone(),
            headers,
        };
        let size = b.estimated_size_with(&rec);
        if size > limit {
            return Err(errors::too_large(size, limit, "max.message.bytes"));
        }
        b.append(&rec)
            .map_err(|e| invalid(&format!("records[{i}]"), e.to_string()))?;
    }
    Ok(b.build())
}

fn decode_records(batches: &[Bytes], from: i64) -> Result<(Vec<pb::ConsumedRecord>, i64), Status> {
    let mut out = Vec::new();
    let mut next = from;
    for raw in batches {
        let batch = Batch::parse(raw.clone())
            .map_err(|e| Status::internal(format!("stored batch failed its check: {e}")))?;
        for r in batch.records() {
            if r.offset < from {
                continue;
            }
            next = r.offset + 1;
            out.push(pb::ConsumedRecord {
                offset: r.offset,
                timestamp_ms: r.timestamp,
                key: r.key,
                value: r.value,
                headers: r
                    .headers
                    .into_iter()
                    .map(|h| pb::Header {
                        key: h.key,
                        value: h.value,
                    })
                    .collect(),
            });
        }
        next = next.max(batch.last_offset() + 1);
    }
    Ok((out, next))
}

fn next_after(batches: &[Bytes], from: i64) -> i64 {
    batches
        .last()
        .and_then(|b| strata_record::BatchHeader::parse(b).ok())
        .map_or(from, |h| h.base_offset + i64::from(h.last_offset_delta) + 1)
}

#[tonic::async_trait]
impl pb::strata_server::Strata for ClientService {
    async fn produce(
        &self,
        request: Request<pb::ProduceRequest>,
    ) -> Result<Response<pb::ProduceResponse>, Status> {
        let started = Instant::now();
        let req = request.into_inner();
        let acks = acks(req.acks)?;
        let (p, limit) = self.route(&req.topic, req.partition)?;
        let batch = match req.payload {
            Some(pb::produce_request::Payload::Batch(b)) => {
                if b.len() > limit {
                    return Err(errors::too_large(b.len(), limit, "max.message.bytes"));
                }
                b
            }
            Some(pb::produce_request::Payload::Records(set)) => {
                let b = encode_records(&set, limit)?;
                if b.len() > limit {
                    return Err(errors::too_large(b.len(), limit, "max.message.bytes"));
                }
                b
            }
            None => return Err(invalid("payload", "records or batch is required".into())),
        };
        if !p.leads() {
            let hint = p
                .leader()
                .and_then(|(id, _)| self.client_addr(id).map(|a| (id, a)));
            return Err(not_leader(
                &format!("{}/{}", req.topic, req.partition),
                hint,
            ));
        }
        self.shared.check_disk()?;
        // The header alone gives the count; `append` checks the whole batch (CRC, records)
        // once, before anything is written.
        let count = strata_record::BatchHeader::parse(&batch)
            .map(|h| h.record_count.max(0) as u32)
            .map_err(|e| {
                self.perr(
                    &req.topic,
                    req.partition,
                    strata_raft::error::PartitionError::InvalidBatch {
                        reason: e.to_string(),
                    },
                )
            })?;
        let base = p
            .append(batch, acks)
            .await
            .map_err(|e| self.perr(&req.topic, req.partition, e))?;
        self.shared
            .metrics
            .produced(&req.topic, count as u64, started.elapsed());
        Ok(Response::new(pb::ProduceResponse {
            base_offset: base.unwrap_or(-1),
            record_count: count,
        }))
    }

    async fn fetch(
        &self,
        request: Request<pb::FetchRequest>,
    ) -> Result<Response<pb::FetchResponse>, Status> {
        let started = Instant::now();
        let req = request.into_inner();
        let p = self.partition(&req.topic, req.partition)?;
        let fetched = p
            .read(
                req.offset,
                self.max_bytes(req.max_bytes),
                self.max_wait(req.max_wait_ms),
            )
            .await
            .map_err(|e| self.perr(&req.topic, req.partition, e))?;
        let resp = build_fetch(req.format, fetched, req.offset)?;
        self.shared.metrics.fetched(
            &req.topic,
            resp.records.len() as u64,
            resp.batches.iter().map(|b| b.len() as u64).sum(),
            started.elapsed(),
        );
        Ok(Response::new(resp))
    }

    type SubscribeStream = tokio_stream_compat::ReceiverStream;

    async fn subscribe(
        &self,
        request: Request<pb::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let req = request.into_inner();
        let p = self.partition(&req.topic, req.partition)?;
        let start = resolve(&p, req.start.as_ref())
            .await
            .map_err(|e| self.perr(&req.topic, req.partition, e))?;
        let (tx, rx) = mpsc::channel(4);
        let max_bytes = self.max_bytes(req.max_bytes);
        let this = self.clone();
        tokio::spawn(async move {
            let mut offset = start;
            loop {
                let r = p.read(offset, max_bytes, Duration::from_secs(5)).await;
                let msg = match r {
                    Ok(f) => match build_fetch(req.format, f, offset) {
                        Ok(resp) => {
                            offset = resp.next_offset;
                            if resp.records.is_empty() && resp.batches.is_empty() {
                                if tx.is_closed() {
                                    return;
                                }
                                continue;
                            }
                            Ok(resp)
                        }
                        Err(s) => Err(s),
                    },
                    Err(e) => Err(this.perr(&req.topic, req.partition, e)),
                };
                let end = msg.is_err();
                if tx.send(msg).await.is_err() || end {
                    return;
                }
            }
        });
        Ok(Response::new(tokio_stream_compat::ReceiverStream(rx)))
    }

    async fn list_offsets(
        &self,
        request: Request<pb::ListOffsetsRequest>,
    ) -> Result<Response<pb::ListOffsetsResponse>, Status> {
        let req = request.into_inner();
        let p = self.partition(&req.topic, req.partition)?;
        let offset = resolve(&p, req.position.as_ref())
            .await
            .map_err(|e| self.perr(&req.topic, req.partition, e))?;
        Ok(Response::new(pb::ListOffsetsResponse {
            offset,
            log_start_offset: p.log_start_offset(),
            high_watermark: p.high_watermark(),
        }))
    }

    async fn metadata(
        &self,
        request: Request<pb::MetadataRequest>,
    ) -> Result<Response<pb::MetadataResponse>, Status> {
        let req = request.into_inner();
        let meta = self.meta();
        let names: Vec<String> = if req.topics.is_empty() {
            meta.topics.keys().cloned().collect()
        } else {
            req.topics
        };
        let mut topics = Vec::new();
        let mut unknown = Vec::new();
        for n in names {
            match self.topic_info(&meta, &n) {
                Some(t) => topics.push(t),
                None => unknown.push(n),
            }
        }
        Ok(Response::new(pb::MetadataResponse {
            cluster_id: self.shared.cluster_id_text(),
            controller_id: self.shared.controller.leader().map_or(0, |(id, _)| id),
            nodes: self.nodes(&meta),
            topics,
            unknown_topics: unknown,
        }))
    }

    async fn init_producer(
        &self,
        _request: Request<pb::InitProducerRequest>,
    ) -> Result<Response<pb::InitProducerResponse>, Status> {
        let o = self
            .shared
            .controller
            .propose(&Command::AllocateProducerId, ADMIN_PATIENCE)
            .await
            .map_err(|e| self.controller_error(e))?;
        match o {
            Outcome::ProducerId(id) => Ok(Response::new(pb::InitProducerResponse {
                producer_id: id,
                producer_epoch: 0,
            })),
            other => Err(Status::internal(format!("unexpected outcome {other:?}"))),
        }
    }
}

/// Resolves a start position against a partition (the leader).
async fn resolve(
    p: &Partition,
    pos: Option<&pb::Position>,
) -> Result<i64, strata_raft::error::PartitionError> {
    use pb::position::At;
    // Only the serving leader's bounds are the partition's: a follower or a deposed leader
    // answers NOT_LEADER whatever the position.
    p.ensure_serving().await?;
    match pos.and_then(|p| p.at) {
        Some(At::Earliest(_)) => Ok(p.log_start_offset()),
        None | Some(At::Latest(_)) => Ok(p.high_watermark()),
        Some(At::Offset(o)) => Ok(o),
        Some(At::TimestampMs(t)) => match p.offset_for_timestamp(t).await? {
            Some(o) => Ok(o),
            None => Ok(p.high_watermark()),
        },
    }
}

fn build_fetch(
    format: i32,
    f: strata_raft::partition::Fetched,
    from: i64,
) -> Result<pb::FetchResponse, Status> {
    let raw = matches!(
        pb::FetchFormat::try_from(format),
        Ok(pb::FetchFormat::Batches)
    );
    let (records, batches, next) = if raw {
        let next = next_after(&f.batches, from);
        (Vec::new(), f.batches, next)
    } else {
        let (records, next) = decode_records(&f.batches, from)?;
        (records, Vec::new(), next)
    };
    Ok(pb::FetchResponse {
        records,
        batches,
        high_watermark: f.high_watermark,
        log_start_offset: f.log_start_offset,
        next_offset: next,
    })
}

/// A stream over an mpsc receiver (tonic needs a `Stream`).
pub mod tokio_stream_compat {
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use strata_proto::v1 as pb;
    use tokio::sync::mpsc;
    use tonic::Status;

    /// Streams what the receiver yields.
    pub struct ReceiverStream(pub mpsc::Receiver<Result<pb::FetchResponse, Status>>);

    impl futures_util::Stream for ReceiverStream {
        type Item = Result<pb::FetchResponse, Status>;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            self.0.poll_recv(cx)
        }
    }
}

fn parse_configs(base: TopicConfig, kv: &BTreeMap<String, String>) -> Result<TopicConfig, Status> {
    let mut c = base;
    for (k, v) in kv {
        c.set(k, v)
            .map_err(|e| invalid(&format!("configs[{k}]"), e))?;
    }
    Ok(c)
}

#[tonic::async_trait]
impl pb::admin_server::Admin for ClientService {
    async fn create_topic(
        &self,
        request: Request<pb::CreateTopicRequest>,
    ) -> Result<Response<pb::CreateTopicResponse>, Status> {
        let req = request.into_inner();
        crate::meta::check_topic_name(&req.name).map_err(|e| invalid("name", e))?;
        let max = self.shared.config.max_partitions_per_topic;
        if req.partitions == 0 {
            return Err(invalid(
                "partitions",
                "a topic needs at least 1 partition".into(),
            ));
        }
        if req.partitions > max {
            return Err(limit_exceeded(
                "max_partitions_per_topic",
                max,
                req.partitions,
            ));
        }
        let meta = self.meta();
        let active = meta.active_nodes().len() as u32;
        let rf = if req.replication_factor == 0 {
            self.shared
                .config
                .default_replication_factor
                .min(active.max(1))
        } else {
            req.replication_factor
        };
        let configs: BTreeMap<String, String> = req.configs.into_iter().collect();
        let config = parse_configs(self.shared.config.topic_defaults(), &configs)?;
        let id = uuid::Uuid::new_v4().to_string();
        let cmd = Command::CreateTopic {
            name: req.name.clone(),
            id: id.clone(),
            partitions: req.partitions,
            replication_factor: rf,
            config,
        };
        match self.shared.controller.propose(&cmd, ADMIN_PATIENCE).await {
            Ok(_) => {}
            // A retry of our own creation after an indeterminate outcome.
            Err(ControllerError::Refused(Refusal::TopicExists(_)))
                if self
                    .meta()
                    .topics
                    .get(&req.name)
                    .is_some_and(|t| t.id == id) => {}
            Err(e) => return Err(self.controller_error(e)),
        }
        let meta = self.meta();
        let topic = self.topic_info(&meta, &req.name);
        Ok(Response::new(pb::CreateTopicResponse { topic }))
    }

    async fn delete_topic(
        &self,
        request: Request<pb::DeleteTopicRequest>,
    ) -> Result<Response<pb::DeleteTopicResponse>, Status> {
        let req = request.into_inner();
        let id = self
            .meta()
            .topics
            .get(&req.name)
            .map(|t| t.id.clone())
            .ok_or_else(|| unknown_topic(&req.name))?;
        let cmd = Command::DeleteTopic {
            name: req.name.clone(),
            id: Some(id.clone()),
        };
        match self.shared.controller.propose(&cmd, ADMIN_PATIENCE).await {
            Ok(_) => {}
            Err(ControllerError::Refused(Refusal::UnknownTopic(_)))
                if self.meta().deleted_topics.contains(&id) => {}
            Err(e) => return Err(self.controller_error(e)),
        }
        Ok(Response::new(pb::DeleteTopicResponse { topic_id: id }))
    }

    async fn list_topics(
        &self,
        _request: Request<pb::ListTopicsRequest>,
    ) -> Result<Response<pb::ListTopicsResponse>, Status> {
        let meta = self.meta();
        let topics = meta
            .topics
            .keys()
            .filter_map(|n| self.topic_info(&meta, n))
            .collect();
        Ok(Response::new(pb::ListTopicsResponse { topics }))
    }

    async fn describe_topic(
        &self,
        request: Request<pb::DescribeTopicRequest>,
    ) -> Result<Response<pb::TopicInfo>, Status> {
        let req = request.into_inner();
        let meta = self.meta();
        self.topic_info(&meta, &req.name)
            .map(Response::new)
            .ok_or_else(|| unknown_topic(&req.name))
    }

    async fn add_partitions(
        &self,
        request: Request<pb::AddPartitionsRequest>,
    ) -> Result<Response<pb::TopicInfo>, Status> {
        let req = request.into_inner();
        let max = self.shared.config.max_partitions_per_topic;
        if req.partitions > max {
            return Err(limit_exceeded(
                "max_partitions_per_topic",
                max,
                req.partitions,
            ));
        }
        let cmd = Command::AddPartitions {
            name: req.name.clone(),
            partitions: req.partitions,
        };
        self.change_then_describe(&cmd, &req.name).await
    }

    async fn alter_topic_config(
        &self,
        request: Request<pb::AlterTopicConfigRequest>,
    ) -> Result<Response<pb::TopicInfo>, Status> {
        let req = request.into_inner();
        let current = self
            .meta()
            .topics
            .get(&req.name)
            .map(|t| t.config.clone())
            .ok_or_else(|| unknown_topic(&req.name))?;
        let defaults = self.shared.config.topic_defaults().to_map();
        let mut config = current;
        for k in &req.remove {
            let v = defaults
                .get(k)
                .ok_or_else(|| invalid(&format!("remove[{k}]"), "unknown topic config".into()))?;
            config
                .set(k, v)
                .map_err(|e| invalid(&format!("remove[{k}]"), e))?;
        }
        let set: BTreeMap<String, String> = req.set.into_iter().collect();
        let config = parse_configs(config, &set)?;
        let cmd = Command::SetTopicConfig {
            name: req.name.clone(),
            config,
        };
        self.change_then_describe(&cmd, &req.name).await
    }

    async fn cluster_status(
        &self,
        _request: Request<pb::ClusterStatusRequest>,
    ) -> Result<Response<pb::ClusterStatusResponse>, Status> {
        let meta = self.meta();
        let s = self.shared.health(&meta);
        Ok(Response::new(pb::ClusterStatusResponse {
            cluster_id: self.shared.cluster_id_text(),
            controller_id: s.controller_id,
            nodes: self.nodes(&meta),
            partitions: s.partitions,
            leaderless: s.leaderless,
            under_replicated: s.under_replicated,
            healthy: s.healthy,
            moves_in_progress: s.moves,
        }))
    }

    async fn join_node(
        &self,
        request: Request<pb::JoinNodeRequest>,
    ) -> Result<Response<pb::JoinNodeResponse>, Status> {
        let req = request.into_inner();
        if req.incarnation == 0 {
            return Err(invalid("incarnation", "must not be 0".into()));
        }
        for (field, v) in [
            ("client_addr", &req.client_addr),
            ("peer_addr", &req.peer_addr),
        ] {
            if v.parse::<std::net::SocketAddr>().is_err() && !v.contains(':') {
                return Err(invalid(field, format!("{v:?} is not HOST:PORT")));
            }
        }
        let cmd = Command::JoinNode {
            meta: NodeMeta {
                incarnation: req.incarnation,
                client_addr: req.client_addr,
                peer_addr: req.peer_addr,
                http_addr: req.http_addr,
                state: NodeState::Active,
                boot: 0,
            },
        };
        let o = self
            .shared
            .controller
            .propose(&cmd, ADMIN_PATIENCE)
            .await
            .map_err(|e| self.controller_error(e))?;
        let Outcome::NodeId(node_id) = o else {
            return Err(Status::internal(format!("unexpected outcome {o:?}")));
        };
        let voters = self
            .shared
            .controller
            .partition()
            .map(|p| p.status().members.into_iter().collect())
            .unwrap_or_default();
        Ok(Response::new(pb::JoinNodeResponse {
            cluster_id: self.shared.cluster_id_text(),
            node_id,
            controller_voters: voters,
        }))
    }

    async fn rebalance(
        &self,
        _request: Request<pb::RebalanceRequest>,
    ) -> Result<Response<pb::RebalanceResponse>, Status> {
        let moves = self.start_moves().await?;
        Ok(Response::new(pb::RebalanceResponse { moves }))
    }

    async fn decommission(
        &self,
        request: Request<pb::DecommissionRequest>,
    ) -> Result<Response<pb::DecommissionResponse>, Status> {
        let req = request.into_inner();
        self.shared
            .controller
            .propose(
                &Command::Decommission {
                    node_id: req.node_id,
                },
                ADMIN_PATIENCE,
            )
            .await
            .map_err(|e| self.controller_error(e))?;
        let moves = self.start_moves().await?;
        Ok(Response::new(pb::DecommissionResponse { moves }))
    }
}

impl ClientService {
    /// Applies a topic change through the controller and describes the topic as this node
    /// then sees it (the controller answers once this node applied the change).
    async fn change_then_describe(
        &self,
        cmd: &Command,
        name: &str,
    ) -> Result<Response<pb::TopicInfo>, Status> {
        self.shared
            .controller
            .propose(cmd, ADMIN_PATIENCE)
            .await
            .map_err(|e| self.controller_error(e))?;
        self.topic_info(&self.meta(), name)
            .map(Response::new)
            .ok_or_else(|| unknown_topic(name))
    }

    async fn start_moves(&self) -> Result<u32, Status> {
        let plan = self.meta().plan_rebalance();
        let mut started = 0;
        for (topic, partition, target) in plan {
            let cmd = Command::StartMove {
                topic,
                partition,
                target,
            };
            match self.shared.controller.propose(&cmd, ADMIN_PATIENCE).await {
                Ok(_) => started += 1,
                Err(ControllerError::Refused(r)) => {
                    tracing::info!(reason = %r, "move not started");
                }
                Err(e) => return Err(self.controller_error(e)),
            }
        }
        Ok(started)
    }
}
