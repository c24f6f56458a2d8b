//! The mock node's gRPC services: `Strata` (produce with idempotent dedup, long-polling
//! fetch, offsets, metadata, producer ids) and `Admin` (topics, status).

use std::pin::pin;
use std::sync::MutexGuard;
use std::time::Duration;

use bytes::Bytes;
use strata_proto::v1 as pb;
use strata_proto::v1::admin_server::Admin;
use strata_proto::v1::strata_server::Strata;
use strata_record::Batch;
use tonic::{Code, Request, Response, Status};

use super::{ClusterState, Fault, Node, PartitionLog, ProduceCall, strata_status};

impl Node {
    fn state(&self) -> MutexGuard<'_, ClusterState> {
        self.shared.state.lock().expect("mock state")
    }

    fn produce_locked(&self, req: &pb::ProduceRequest, batch: &Bytes) -> Result<i64, Status> {
        let mut state = self.state();
        state.produce_calls.push(ProduceCall {
            node: self.id,
            topic: req.topic.clone(),
            partition: req.partition,
            acks: req.acks,
            batch: batch.clone(),
        });
        let max = state.max_message_bytes;
        // Leadership and existence come first, as on the real node.
        state.partition(self.id, &req.topic, req.partition)?;
        let sequence = Batch::parse(batch.clone()).map_or(-1, |b| b.base_sequence());
        if let Some(Fault::ProduceAt { status, .. }) = state
            .take_fault(|f| matches!(f, Fault::ProduceAt { sequence: s, .. } if *s == sequence))
        {
            return Err(status.build());
        }
        let fault = state.take_fault(|f| matches!(f, Fault::Produce { .. }));
        if let Some(Fault::Produce {
            status,
            after_write: false,
        }) = &fault
        {
            return Err(status.build());
        }
        if batch.len() > max {
            return Err(strata_status(
                Code::InvalidArgument,
                "MESSAGE_TOO_LARGE",
                &[
                    ("size", batch.len().to_string()),
                    ("limit", max.to_string()),
                ],
            ));
        }
        let parsed = Batch::parse(batch.clone()).map_err(|e| {
            strata_status(
                Code::InvalidArgument,
                "INVALID_BATCH",
                &[("reason", e.to_string())],
            )
        })?;
        let log = state.partition(self.id, &req.topic, req.partition)?;
        let pid = parsed.producer_id();
        let first = parsed.base_sequence();
        let base = if pid >= 0 {
            let (next, recent) = log.producers.entry(pid).or_insert((0, Vec::new()));
            if let Some((_, offset)) = recent.iter().find(|(s, _)| *s == first) {
                // A duplicate: its original offset.
                return Ok(*offset);
            }
            if first != *next {
                let expected = *next;
                return Err(strata_status(
                    Code::FailedPrecondition,
                    "OUT_OF_ORDER_SEQUENCE",
                    &[
                        ("producer_id", pid.to_string()),
                        ("expected", expected.to_string()),
                        ("got", first.to_string()),
                    ],
                ));
            }
            let base = log.append(batch);
            let entry = log.producers.get_mut(&pid).expect("entry");
            entry.0 = first + parsed.record_count();
            entry.1.push((first, base));
            base
        } else {
            log.append(batch)
        };
        drop(state);
        self.shared.appended.notify_waiters();
        if let Some(Fault::Produce { status, .. }) = fault {
            return Err(status.build());
        }
        Ok(base)
    }

    fn fetch_locked(&self, req: &pb::FetchRequest) -> Result<Option<pb::FetchResponse>, Status> {
        let mut state = self.state();
        state.fetch_calls.push((self.id, req.offset));
        if let Some(Fault::Fetch(status)) = state.take_fault(|f| matches!(f, Fault::Fetch(_))) {
            return Err(status.build());
        }
        let log = state.partition(self.id, &req.topic, req.partition)?;
        if req.offset < log.log_start || req.offset > log.next_offset {
            return Err(strata_status(
                Code::OutOfRange,
                "OFFSET_OUT_OF_RANGE",
                &[
                    ("offset", req.offset.to_string()),
                    ("start", log.log_start.to_string()),
                    ("end", log.next_offset.to_string()),
                ],
            ));
        }
        let mut batches = Vec::new();
        let mut bytes = 0;
        let mut next = req.offset;
        for b in &log.batches {
            if b.base_offset + b.record_count <= req.offset {
                continue;
            }
            if !batches.is_empty() && bytes + b.bytes.len() > req.max_bytes as usize {
                break;
            }
            bytes += b.bytes.len();
            next = b.base_offset + b.record_count;
            batches.push(b.bytes.clone());
        }
        if batches.is_empty() && req.max_wait_ms > 0 {
            return Ok(None);
        }
        Ok(Some(pb::FetchResponse {
            records: vec![],
            batches,
            high_watermark: log.next_offset,
            log_start_offset: log.log_start,
            next_offset: next,
        }))
    }
}

#[tonic::async_trait]
impl Strata for Node {
    async fn produce(
        &self,
        request: Request<pb::ProduceRequest>,
    ) -> Result<Response<pb::ProduceResponse>, Status> {
        self.thawed().await;
        let req = request.into_inner();
        let Some(pb::produce_request::Payload::Batch(batch)) = req.payload.clone() else {
            return Err(Status::invalid_argument("the mock takes batches only"));
        };
        let key = (req.topic.clone(), req.partition);
        {
            let mut state = self.state();
            let n = state.produce_in_flight.entry(key.clone()).or_default();
            *n += 1;
            let n = *n;
            state.produce_in_flight_max = state.produce_in_flight_max.max(n);
        }
        let mut gate = self.shared.gate.subscribe();
        let _ = gate.wait_for(|open| *open).await;
        let result = self.produce_locked(&req, &batch);
        *self.state().produce_in_flight.entry(key).or_default() -= 1;
        let base = result?;
        let count = Batch::parse(batch).map(|b| b.record_count()).unwrap_or(0);
        Ok(Response::new(pb::ProduceResponse {
            base_offset: if req.acks == pb::Acks::None as i32 {
                -1
            } else {
                base
            },
            record_count: count as u32,
        }))
    }

    async fn fetch(
        &self,
        request: Request<pb::FetchRequest>,
    ) -> Result<Response<pb::FetchResponse>, Status> {
        self.thawed().await;
        let req = request.into_inner();
        let deadline = tokio::time::Instant::now() + Duration::from_millis(req.max_wait_ms.into());
        loop {
            let mut notified = pin!(self.shared.appended.notified());
            notified.as_mut().enable();
            if let Some(response) = self.fetch_locked(&req)? {
                return Ok(Response::new(response));
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                let wait_over = pb::FetchRequest {
                    max_wait_ms: 0,
                    ..req.clone()
                };
                let response = self.fetch_locked(&wait_over)?.expect("no wait");
                return Ok(Response::new(response));
            }
        }
    }

    type SubscribeStream = tokio_stream::Empty<Result<pb::FetchResponse, Status>>;

    async fn subscribe(
        &self,
        _request: Request<pb::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        Err(Status::unimplemented("mock"))
    }

    async fn list_offsets(
        &self,
        request: Request<pb::ListOffsetsRequest>,
    ) -> Result<Response<pb::ListOffsetsResponse>, Status> {
        self.thawed().await;
        let req = request.into_inner();
        let mut state = self.state();
        state.list_offsets_calls += 1;
        let log = state.partition(self.id, &req.topic, req.partition)?;
        let at = req
            .position
            .and_then(|p| p.at)
            .ok_or_else(|| Status::invalid_argument("position"))?;
        let offset = match at {
            pb::position::At::Earliest(_) => log.log_start,
            pb::position::At::Latest(_) => log.next_offset,
            pb::position::At::Offset(o) => o,
            pb::position::At::TimestampMs(ts) => log
                .batches
                .iter()
                .find_map(|b| {
                    Batch::parse(b.bytes.clone())
                        .expect("valid")
                        .first_offset_at_or_after_timestamp(ts)
                })
                .unwrap_or(log.next_offset),
        };
        Ok(Response::new(pb::ListOffsetsResponse {
            offset,
            log_start_offset: log.log_start,
            high_watermark: log.next_offset,
        }))
    }

    async fn metadata(
        &self,
        request: Request<pb::MetadataRequest>,
    ) -> Result<Response<pb::MetadataResponse>, Status> {
        self.thawed().await;
        let req = request.into_inner();
        let mut state = self.state();
        state.metadata_calls += 1;
        let names: Vec<String> = if req.topics.is_empty() {
            state.topics.keys().cloned().collect()
        } else {
            req.topics.clone()
        };
        let topics = names.iter().filter_map(|n| state.topic_info(n)).collect();
        let unknown_topics = names
            .iter()
            .filter(|n| !state.topics.contains_key(*n))
            .cloned()
            .collect();
        Ok(Response::new(pb::MetadataResponse {
            cluster_id: "mock".into(),
            controller_id: 1,
            nodes: state.node_infos(),
            topics,
            unknown_topics,
        }))
    }

    async fn init_producer(
        &self,
        _request: Request<pb::InitProducerRequest>,
    ) -> Result<Response<pb::InitProducerResponse>, Status> {
        let mut state = self.state();
        state.init_producer_calls += 1;
        if let Some(Fault::InitProducer(status)) =
            state.take_fault(|f| matches!(f, Fault::InitProducer(_)))
        {
            return Err(status.build());
        }
        state.next_producer_id += 1;
        Ok(Response::new(pb::InitProducerResponse {
            producer_id: state.next_producer_id,
            producer_epoch: 0,
        }))
    }
}

impl Node {
    /// Waits while this node is frozen.
    async fn thawed(&self) {
        while self.state().frozen.contains(&self.id) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn admin_fault(&self) -> Result<MutexGuard<'_, ClusterState>, Status> {
        let mut state = self.state();
        state.admin_calls += 1;
        if let Some(Fault::Admin(status)) = state.take_fault(|f| matches!(f, Fault::Admin(_))) {
            return Err(status.build());
        }
        Ok(state)
    }
}

fn unknown_topic(name: &str) -> Status {
    strata_status(
        Code::NotFound,
        "UNKNOWN_TOPIC",
        &[("topic", name.to_string())],
    )
}

#[tonic::async_trait]
impl Admin for Node {
    async fn create_topic(
        &self,
        request: Request<pb::CreateTopicRequest>,
    ) -> Result<Response<pb::CreateTopicResponse>, Status> {
        let req = request.into_inner();
        let mut state = self.admin_fault()?;
        if state.topics.contains_key(&req.name) {
            return Err(strata_status(
                Code::AlreadyExists,
                "TOPIC_EXISTS",
                &[("topic", req.name.clone())],
            ));
        }
        if req.partitions == 0 {
            return Err(strata_status(
                Code::InvalidArgument,
                "INVALID_ARGUMENT",
                &[
                    ("field", "partitions".to_string()),
                    ("reason", "must be at least 1".to_string()),
                ],
            ));
        }
        state.topics.insert(
            req.name.clone(),
            (0..req.partitions).map(|_| PartitionLog::new(1)).collect(),
        );
        let mut topic = state.topic_info(&req.name).expect("created");
        topic.configs = req.configs;
        Ok(Response::new(pb::CreateTopicResponse {
            topic: Some(topic),
        }))
    }

    async fn delete_topic(
        &self,
        request: Request<pb::DeleteTopicRequest>,
    ) -> Result<Response<pb::DeleteTopicResponse>, Status> {
        let req = request.into_inner();
        let mut state = self.admin_fault()?;
        match state.topics.remove(&req.name) {
            Some(_) => Ok(Response::new(pb::DeleteTopicResponse {
                topic_id: format!("id-{}", req.name),
            })),
            None => Err(unknown_topic(&req.name)),
        }
    }

    async fn list_topics(
        &self,
        _request: Request<pb::ListTopicsRequest>,
    ) -> Result<Response<pb::ListTopicsResponse>, Status> {
        let state = self.admin_fault()?;
        let topics = state
            .topics
            .keys()
            .filter_map(|n| state.topic_info(n))
            .collect();
        Ok(Response::new(pb::ListTopicsResponse { topics }))
    }

    async fn describe_topic(
        &self,
        request: Request<pb::DescribeTopicRequest>,
    ) -> Result<Response<pb::TopicInfo>, Status> {
        let req = request.into_inner();
        let state = self.admin_fault()?;
        state
            .topic_info(&req.name)
            .map(Response::new)
            .ok_or_else(|| unknown_topic(&req.name))
    }

    async fn add_partitions(
        &self,
        _request: Request<pb::AddPartitionsRequest>,
    ) -> Result<Response<pb::TopicInfo>, Status> {
        Err(Status::unimplemented("mock"))
    }

    async fn alter_topic_config(
        &self,
        _request: Request<pb::AlterTopicConfigRequest>,
    ) -> Result<Response<pb::TopicInfo>, Status> {
        Err(Status::unimplemented("mock"))
    }

    async fn cluster_status(
        &self,
        _request: Request<pb::ClusterStatusRequest>,
    ) -> Result<Response<pb::ClusterStatusResponse>, Status> {
        let state = self.admin_fault()?;
        let partitions = state.topics.values().map(Vec::len).sum::<usize>() as u32;
        Ok(Response::new(pb::ClusterStatusResponse {
            cluster_id: "mock".into(),
            controller_id: 1,
            nodes: state.node_infos(),
            partitions,
            leaderless: 0,
            under_replicated: 0,
            healthy: true,
            moves_in_progress: 0,
        }))
    }

    async fn join_node(
        &self,
        _request: Request<pb::JoinNodeRequest>,
    ) -> Result<Response<pb::JoinNodeResponse>, Status> {
        Err(Status::unimplemented("mock"))
    }

    async fn rebalance(
        &self,
        _request: Request<pb::RebalanceRequest>,
    ) -> Result<Response<pb::RebalanceResponse>, Status> {
        let _state = self.admin_fault()?;
        Ok(Response::new(pb::RebalanceResponse { moves: 3 }))
    }

    async fn decommission(
        &self,
        request: Request<pb::DecommissionRequest>,
    ) -> Result<Response<pb::DecommissionResponse>, Status> {
        let _state = self.admin_fault()?;
        Ok(Response::new(pb::DecommissionResponse {
            moves: request.into_inner().node_id as u32,
        }))
    }
}
