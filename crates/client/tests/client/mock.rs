//! An in-process mock cluster: N nodes on 127.0.0.1:0 serving `strata.v1.Strata` and
//! `strata.v1.Admin` over real tonic servers, sharing one state. Each partition has a real
//! leader (the node that accepts requests) and an advertised leader (what `Metadata` says), so
//! tests can make metadata stale and check that the client follows `NOT_LEADER` hints. Faults
//! are scripted per RPC; every Produce request is recorded with its exact bytes.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use strata_proto::v1 as pb;
use strata_proto::v1::admin_server::{Admin, AdminServer};
use strata_proto::v1::strata_server::{Strata, StrataServer};
use strata_record::{Batch, BatchBuilder, NewRecord, stamp_base_offset};
use tokio::net::TcpListener;
use tokio::sync::{Notify, oneshot, watch};
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// A Strata error status with its ErrorInfo, as the real server sends it.
pub fn strata_status(code: Code, reason: &str, metadata: &[(&str, String)]) -> Status {
    let metadata: HashMap<String, String> = metadata
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    Status::with_error_details(
        code,
        format!("{reason} (mock)"),
        ErrorDetails::with_error_info(reason, "strata.io", metadata),
    )
}

/// One stored batch.
#[derive(Debug, Clone)]
pub struct StoredBatch {
    pub base_offset: i64,
    pub record_count: i64,
    pub bytes: Bytes,
}

/// One partition's log and leadership.
#[derive(Debug, Clone)]
pub struct PartitionLog {
    /// The node that accepts requests for it.
    pub leader: u64,
    /// The leader `Metadata` reports (may be stale).
    pub advertised_leader: u64,
    pub batches: Vec<StoredBatch>,
    pub log_start: i64,
    pub next_offset: i64,
    /// Producer id -> (next sequence, [(first sequence, base offset)]).
    pub producers: HashMap<i64, (i32, Vec<(i32, i64)>)>,
}

impl PartitionLog {
    fn new(leader: u64) -> PartitionLog {
        PartitionLog {
            leader,
            advertised_leader: leader,
            batches: Vec::new(),
            log_start: 0,
            next_offset: 0,
            producers: HashMap::new(),
        }
    }

    /// Appends a batch, stamping its base offset; returns the base offset.
    pub fn append(&mut self, batch: &Bytes) -> i64 {
        let parsed = Batch::parse(batch.clone()).expect("valid batch");
        let base = self.next_offset;
        let mut stamped = BytesMut::from(&batch[..]);
        stamp_base_offset(&mut stamped, base);
        let count = i64::from(parsed.record_count());
        self.batches.push(StoredBatch {
            base_offset: base,
            record_count: count,
            bytes: stamped.freeze(),
        });
        self.next_offset += count;
        base
    }

    /// Every stored record's (offset, value).
    pub fn values(&self) -> Vec<(i64, Option<Bytes>)> {
        self.batches
            .iter()
            .flat_map(|b| {
                let batch = Batch::parse(b.bytes.clone()).expect("valid batch");
                batch
                    .records()
                    .map(|r| (r.offset, r.value))
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

/// A scripted failure.
#[derive(Debug, Clone)]
pub enum Fault {
    /// The next Produce (at any node) fails with this status. With `after_write`, the batch
    /// is written first (an indeterminate outcome).
    Produce {
        status: MockStatus,
        after_write: bool,
    },
    /// The next Fetch fails with this status.
    Fetch(MockStatus),
    /// The next admin call fails with this status.
    Admin(MockStatus),
    /// The next InitProducer fails with this status.
    InitProducer(MockStatus),
}

/// A status to build (Status is not Clone).
#[derive(Debug, Clone)]
pub struct MockStatus {
    pub code: Code,
    pub reason: Option<&'static str>,
    pub metadata: Vec<(&'static str, String)>,
}

impl MockStatus {
    pub fn strata(code: Code, reason: &'static str, metadata: &[(&'static str, String)]) -> Self {
        MockStatus {
            code,
            reason: Some(reason),
            metadata: metadata.to_vec(),
        }
    }

    pub fn plain(code: Code) -> Self {
        MockStatus {
            code,
            reason: None,
            metadata: vec![],
        }
    }

    fn build(&self) -> Status {
        match self.reason {
            Some(reason) => strata_status(self.code, reason, &self.metadata),
            None => Status::new(self.code, "mock failure"),
        }
    }
}

/// One Produce request as received.
#[derive(Debug, Clone)]
pub struct ProduceCall {
    pub node: u64,
    pub topic: String,
    pub partition: u32,
    pub acks: i32,
    pub batch: Bytes,
}

/// The shared state of the mock cluster.
#[derive(Debug, Default)]
pub struct ClusterState {
    /// (node id, client address).
    pub nodes: Vec<(u64, String)>,
    pub topics: BTreeMap<String, Vec<PartitionLog>>,
    pub produce_calls: Vec<ProduceCall>,
    /// (node, offset) of every Fetch.
    pub fetch_calls: Vec<(u64, i64)>,
    pub list_offsets_calls: usize,
    pub metadata_calls: usize,
    pub init_producer_calls: usize,
    pub admin_calls: usize,
    pub faults: VecDeque<Fault>,
    pub next_producer_id: i64,
    /// Whether NOT_LEADER carries the leader's id and address.
    pub leader_hints: bool,
    /// The partition batch size limit (MESSAGE_TOO_LARGE above it).
    pub max_message_bytes: usize,
    /// Produce requests being handled now, and the most at once, per partition.
    pub produce_in_flight: HashMap<(String, u32), usize>,
    pub produce_in_flight_max: usize,
}

impl ClusterState {
    fn addr(&self, node: u64) -> String {
        self.nodes
            .iter()
            .find(|(id, _)| *id == node)
            .map(|(_, a)| a.clone())
            .unwrap_or_default()
    }

    fn take_fault(&mut self, matches: impl Fn(&Fault) -> bool) -> Option<Fault> {
        let index = self.faults.iter().position(matches)?;
        self.faults.remove(index)
    }

    fn partition(
        &mut self,
        node: u64,
        topic: &str,
        partition: u32,
    ) -> Result<&mut PartitionLog, Status> {
        let hints = self.leader_hints;
        let leader_addr = |state: &ClusterState, leader| state.addr(leader);
        let Some(partitions) = self.topics.get(topic) else {
            return Err(strata_status(
                Code::NotFound,
                "UNKNOWN_TOPIC",
                &[("topic", topic.to_string())],
            ));
        };
        let count = partitions.len();
        let Some(log) = partitions.get(partition as usize) else {
            return Err(strata_status(
                Code::NotFound,
                "UNKNOWN_PARTITION",
                &[
                    ("topic", topic.to_string()),
                    ("partition", partition.to_string()),
                    ("partitions", count.to_string()),
                ],
            ));
        };
        if log.leader != node {
            let leader = log.leader;
            let metadata = if hints {
                vec![
                    ("leader_id", leader.to_string()),
                    ("leader_addr", leader_addr(self, leader)),
                ]
            } else {
                vec![]
            };
            return Err(strata_status(Code::Unavailable, "NOT_LEADER", &metadata));
        }
        Ok(&mut self.topics.get_mut(topic).expect("checked")[partition as usize])
    }

    fn topic_info(&self, name: &str) -> Option<pb::TopicInfo> {
        let partitions = self.topics.get(name)?;
        Some(pb::TopicInfo {
            name: name.to_string(),
            topic_id: format!("id-{name}"),
            partitions: partitions
                .iter()
                .enumerate()
                .map(|(i, p)| pb::PartitionInfo {
                    partition: i as u32,
                    leader_id: p.advertised_leader,
                    replicas: self.nodes.iter().map(|(id, _)| *id).collect(),
                    voters: self.nodes.iter().map(|(id, _)| *id).collect(),
                    leader_term: 1,
                    high_watermark: p.next_offset,
                    group_id: i as u64 + 1,
                })
                .collect(),
            replication_factor: self.nodes.len() as u32,
            configs: HashMap::new(),
        })
    }

    fn node_infos(&self) -> Vec<pb::NodeInfo> {
        self.nodes
            .iter()
            .map(|(id, addr)| pb::NodeInfo {
                node_id: *id,
                client_addr: addr.clone(),
                peer_addr: format!("peer-{id}"),
                http_addr: format!("http-{id}"),
                state: "ACTIVE".into(),
                alive: true,
            })
            .collect()
    }
}

/// What every node of the mock shares.
pub struct Shared {
    pub state: Mutex<ClusterState>,
    /// Woken when records are appended (long-polling fetches wait on it).
    appended: Notify,
    /// Produce requests wait while this is false.
    gate: watch::Sender<bool>,
}

/// One node's services.
#[derive(Clone)]
struct Node {
    id: u64,
    shared: Arc<Shared>,
}

/// The running mock cluster. Dropping it stops the servers.
pub struct MockCluster {
    pub shared: Arc<Shared>,
    pub addrs: Vec<String>,
    stops: Vec<Option<oneshot::Sender<()>>>,
}

impl MockCluster {
    /// Starts `nodes` nodes (ids 1..=nodes) with leader hints on.
    pub async fn start(nodes: usize) -> MockCluster {
        let mut listeners = Vec::new();
        let mut addrs = Vec::new();
        for _ in 0..nodes {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            addrs.push(listener.local_addr().expect("addr").to_string());
            listeners.push(listener);
        }
        let shared = Arc::new(Shared {
            state: Mutex::new(ClusterState {
                nodes: addrs
                    .iter()
                    .enumerate()
                    .map(|(i, a)| (i as u64 + 1, a.clone()))
                    .collect(),
                next_producer_id: 1000,
                leader_hints: true,
                max_message_bytes: 1 << 20,
                ..ClusterState::default()
            }),
            appended: Notify::new(),
            gate: watch::Sender::new(true),
        });
        let mut stops = Vec::new();
        for (i, listener) in listeners.into_iter().enumerate() {
            let node = Node {
                id: i as u64 + 1,
                shared: shared.clone(),
            };
            let (stop, stopped) = oneshot::channel::<()>();
            stops.push(Some(stop));
            let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
            tokio::spawn(
                Server::builder()
                    .add_service(StrataServer::new(node.clone()))
                    .add_service(AdminServer::new(node))
                    .serve_with_incoming_shutdown(incoming, async {
                        let _ = stopped.await;
                    }),
            );
        }
        MockCluster {
            shared,
            addrs,
            stops,
        }
    }

    pub fn state(&self) -> MutexGuard<'_, ClusterState> {
        self.shared.state.lock().expect("mock state")
    }

    /// Adds `topic` with partitions led by `leaders[i]`.
    pub fn add_topic(&self, topic: &str, leaders: &[u64]) {
        self.state().topics.insert(
            topic.to_string(),
            leaders.iter().map(|l| PartitionLog::new(*l)).collect(),
        );
    }

    /// Makes `node` the real leader of a partition, leaving the advertised one as it was.
    pub fn move_leader(&self, topic: &str, partition: u32, node: u64) {
        self.state().topics.get_mut(topic).expect("topic")[partition as usize].leader = node;
    }

    /// Makes `Metadata` report `node` as the leader of a partition.
    pub fn advertise_leader(&self, topic: &str, partition: u32, node: u64) {
        self.state().topics.get_mut(topic).expect("topic")[partition as usize].advertised_leader =
            node;
    }

    pub fn push_fault(&self, fault: Fault) {
        self.state().faults.push_back(fault);
    }

    /// Holds (false) or releases (true) Produce requests.
    pub fn set_gate(&self, open: bool) {
        self.shared.gate.send_replace(open);
    }

    /// Appends batches of `values` (one batch per inner vec) with timestamps from `ts`.
    pub fn append(&self, topic: &str, partition: u32, batches: &[Vec<(i64, &str)>]) {
        let mut state = self.state();
        let log = &mut state.topics.get_mut(topic).expect("topic")[partition as usize];
        for records in batches {
            let mut builder = BatchBuilder::new();
            for (ts, value) in records {
                builder
                    .append(
                        &NewRecord::new(
                            *ts,
                            Some(Bytes::from(format!("key-{value}"))),
                            Some(Bytes::from(value.to_string())),
                        )
                        .with_header("h", Some(Bytes::from_static(b"v"))),
                    )
                    .expect("append");
            }
            log.append(&builder.build());
        }
        drop(state);
        self.shared.appended.notify_waiters();
    }

    /// Stops node `id`'s server (new connections are refused).
    pub fn stop_node(&mut self, id: u64) {
        if let Some(stop) = self.stops[id as usize - 1].take() {
            let _ = stop.send(());
        }
    }
}

impl Drop for MockCluster {
    fn drop(&mut self) {
        for stop in self.stops.iter_mut().filter_map(Option::take) {
            let _ = stop.send(());
        }
    }
}

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
