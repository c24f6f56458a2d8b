//! An in-process mock cluster: N nodes on 127.0.0.1:0 serving `strata.v1.Strata` and
//! `strata.v1.Admin` over real tonic servers, sharing one state. Each partition has a real
//! leader (the node that accepts requests) and an advertised leader (what `Metadata` says), so
//! tests can make metadata stale and check that the client follows `NOT_LEADER` hints. Faults
//! are scripted per RPC; every Produce request is recorded with its exact bytes.
//!
//! This file holds the state and the cluster handle; `services.rs` the gRPC services.

mod services;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::{Bytes, BytesMut};
use strata_proto::v1 as pb;
use strata_proto::v1::admin_server::AdminServer;
use strata_proto::v1::strata_server::StrataServer;
use strata_record::{Batch, BatchBuilder, NewRecord, stamp_base_offset};
use tokio::net::TcpListener;
use tokio::sync::{Notify, oneshot, watch};
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic::{Code, Status};
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
    /// The next Produce of a batch with this base sequence fails with this status (not
    /// written).
    ProduceAt { sequence: i32, status: MockStatus },
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

    pub(crate) fn build(&self) -> Status {
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
    /// Nodes that answer no data-plane request (a frozen process whose connections stay up).
    pub frozen: std::collections::HashSet<u64>,
}

impl ClusterState {
    fn addr(&self, node: u64) -> String {
        self.nodes
            .iter()
            .find(|(id, _)| *id == node)
            .map(|(_, a)| a.clone())
            .unwrap_or_default()
    }

    pub(crate) fn take_fault(&mut self, matches: impl Fn(&Fault) -> bool) -> Option<Fault> {
        let index = self.faults.iter().position(matches)?;
        self.faults.remove(index)
    }

    pub(crate) fn partition(
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

    pub(crate) fn topic_info(&self, name: &str) -> Option<pb::TopicInfo> {
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

    pub(crate) fn node_infos(&self) -> Vec<pb::NodeInfo> {
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
    pub(crate) appended: Notify,
    /// Produce requests wait while this is false.
    pub(crate) gate: watch::Sender<bool>,
}

/// One node's services (see `services.rs`).
#[derive(Clone)]
pub struct Node {
    pub(crate) id: u64,
    pub(crate) shared: Arc<Shared>,
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

    /// Freezes (true) or thaws node `id`: while frozen, its data-plane calls wait.
    pub fn freeze(&self, id: u64, frozen: bool) {
        if frozen {
            self.state().frozen.insert(id);
        } else {
            self.state().frozen.remove(&id);
        }
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
