//! Three Strata nodes in one process, each with its own data directory, flusher, peer server on
//! 127.0.0.1:0, [`Peers`] and liveness ticker (idle groups sleep), hosting one replica of every
//! partition; plus the client-side routing of an append to the partition's current leader.

use anyhow::{Context, Result, bail, ensure};
use bytes::Bytes;
use openraft::async_runtime::watch::WatchReceiver;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use strata_benches::counting_disk::{CountingDisk, DiskCounts};
use strata_log::Flusher;
use strata_raft::GroupId;
use strata_raft::error::PartitionError;
use strata_raft::liveness::{Liveness, LivenessConfig, LivenessSender};
use strata_raft::partition::{Acks, Partition, PartitionConfig, SleepState};
use strata_raft::transport::{
    GroupRegistry, PeerIdentity, PeerNetwork, PeerService, Peers, ServerCounts, ServerStats,
    TransportConfig, serve,
};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, oneshot};
use tokio::task::{JoinHandle, JoinSet};

/// Nodes in the cluster (the replication factor: every node hosts every partition).
pub const NODES: usize = 3;

/// The cluster id in every peer header.
const CLUSTER_ID: u64 = 0x5742;

/// How long a partition may take to get a ready leader before the run is abandoned.
pub const LEADER_WAIT: Duration = Duration::from_secs(60);

/// An append gives up after this many redirections (a leader that keeps moving is a failure of
/// the run, not something to average over).
const REDIRECTS_MAX: u32 = 50;

/// One node: its peer server, connections, flusher, disk counters and replicas.
pub struct Node {
    /// Node id (1-based; index + 1).
    pub id: u64,
    /// The peer server's address.
    pub addr: SocketAddr,
    registry: Arc<GroupRegistry>,
    /// What the peer server received.
    pub server_stats: Arc<ServerStats>,
    peers: Arc<Peers>,
    /// The node's disk (the real file system, counted).
    pub disk: Arc<CountingDisk>,
    flusher: Flusher,
    stop_server: oneshot::Sender<()>,
    server: JoinHandle<Result<()>>,
    liveness: Arc<Liveness>,
    /// The liveness ticker (taken at shutdown).
    ticker: Option<Ticker>,
    /// This node's replica of partition `p` at index `p` (group id = partition id = `p`).
    pub partitions: Vec<Arc<Partition>>,
}

/// Three nodes hosting `partitions` partitions with replication factor 3.
pub struct Cluster {
    /// The nodes, node id `i + 1` at index `i`.
    pub nodes: Vec<Node>,
    /// Per partition: the index of the node believed to lead it (a routing hint that appends
    /// correct from `NotLeader` answers).
    leaders: Vec<AtomicUsize>,
    dir: PathBuf,
}

/// What [`Cluster::append`] did besides succeeding.
#[derive(Debug, Clone, Copy, Default)]
pub struct Routed {
    /// `NotLeader` answers followed (to the hinted leader or after waiting for one).
    pub redirects: u32,
}

/// How the nodes run (the defaults are how a node runs; the rest are diagnostics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeOptions {
    /// How the peer servers accept connections.
    pub serving: Serving,
    /// Whether each node runs its liveness ticker (without it, idle groups never sleep).
    pub liveness: bool,
}

impl Default for NodeOptions {
    fn default() -> NodeOptions {
        NodeOptions {
            serving: Serving::Transport,
            liveness: true,
        }
    }
}

/// A running liveness ticker and the signal that stops it.
struct Ticker {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

/// How the peer servers accept connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serving {
    /// `strata_raft::transport::serve`, as a node runs it.
    Transport,
    /// The same service through its router with TCP_NODELAY set on every accepted connection
    /// (a diagnostic: `serve` hands tonic a listener stream, and tonic ignores its
    /// `tcp_nodelay` setting for those, so accepted connections keep Nagle's algorithm).
    NoDelay,
}

impl Node {
    async fn start(id: u64, config: &TransportConfig, options: NodeOptions) -> Result<Node> {
        let identity = PeerIdentity {
            cluster_id: CLUSTER_ID,
            node_id: id,
            incarnation: 1,
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.context("bind")?;
        let addr = listener.local_addr()?;
        let registry = Arc::new(GroupRegistry::new());
        let liveness = Liveness::new(id, LivenessConfig::default());
        let service =
            PeerService::new(identity, registry.clone(), config)?.with_liveness(liveness.clone());
        let server_stats = service.stats();
        let (stop_server, stop) = oneshot::channel::<()>();
        let server = match options.serving {
            Serving::Transport => tokio::spawn(async move {
                let stop = async {
                    let _ = stop.await;
                };
                Ok(serve(listener, stop, service).await?)
            }),
            Serving::NoDelay => {
                let streams = service.clone();
                let incoming =
                    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
                let stop = async move {
                    let _ = stop.await;
                    streams.stop_streams();
                };
                let router = service.into_router();
                tokio::spawn(async move {
                    Ok(router.serve_with_incoming_shutdown(incoming, stop).await?)
                })
            }
        };
        let peers = Peers::new(identity, config.clone())?;
        let ticker = options.liveness.then(|| {
            let (stop_ticker, stop) = oneshot::channel::<()>();
            let sender: Arc<dyn LivenessSender> = peers.clone();
            Ticker {
                stop: stop_ticker,
                task: tokio::spawn(liveness.clone().run(sender, async {
                    let _ = stop.await;
                })),
            }
        });
        Ok(Node {
            id,
            addr,
            registry,
            server_stats,
            peers,
            disk: Arc::new(CountingDisk::new()),
            flusher: Flusher::start(&format!("n{id}"))?,
            stop_server,
            server,
            liveness,
            ticker,
            partitions: Vec::new(),
        })
    }

    /// What the peer server received so far.
    pub fn server_counts(&self) -> ServerCounts {
        self.server_stats.counts()
    }
}

impl Cluster {
    /// Starts three nodes under `dir` (run as `options` says) and opens `partitions` replicas
    /// on each, `concurrency` opens at a time per node. The groups are not initialized yet
    /// ([`Cluster::elect_all`]).
    pub async fn open(
        dir: &Path,
        partitions: usize,
        concurrency: usize,
        options: NodeOptions,
    ) -> Result<Cluster> {
        let config = TransportConfig::default();
        let mut nodes = Vec::with_capacity(NODES);
        for id in 1..=NODES as u64 {
            nodes.push(Node::start(id, &config, options).await?);
        }
        for node in &mut nodes {
            node.partitions = open_replicas(node, dir, partitions, concurrency).await?;
        }
        Ok(Cluster {
            nodes,
            leaders: (0..partitions).map(|_| AtomicUsize::new(0)).collect(),
            dir: dir.to_path_buf(),
        })
    }

    /// Partitions hosted (by every node).
    pub fn partitions(&self) -> usize {
        self.leaders.len()
    }

    /// Initializes every group with the three voters, on node `p % 3` for partition `p` so the
    /// leaders spread over the nodes, and asks that node to stand for election at once (a new
    /// group otherwise waits out a 1.5-3 s election timeout). Then waits until every partition
    /// has a ready leader. `concurrency` groups are initialized at a time.
    pub async fn elect_all(self: &Arc<Self>, concurrency: usize) -> Result<()> {
        let voters: BTreeMap<u64, String> = self
            .nodes
            .iter()
            .map(|n| (n.id, n.addr.to_string()))
            .collect();
        let limit = Arc::new(Semaphore::new(concurrency));
        let mut tasks = JoinSet::new();
        for p in 0..self.partitions() {
            let cluster = self.clone();
            let voters = voters.clone();
            let permit = limit.clone().acquire_owned().await?;
            tasks.spawn(async move {
                let _permit = permit;
                let replica = &cluster.nodes[p % NODES].partitions[p];
                replica
                    .initialize(voters)
                    .await
                    .with_context(|| format!("initialize partition {p}"))?;
                replica
                    .raft()
                    .trigger()
                    .elect(false)
                    .await
                    .with_context(|| format!("elect partition {p}"))?;
                cluster.wait_for_leader(p, LEADER_WAIT).await?;
                anyhow::Ok(())
            });
        }
        while let Some(done) = tasks.join_next().await {
            done??;
        }
        Ok(())
    }

    /// Waits until some replica of partition `p` is a ready leader (leads, has applied an entry
    /// of its term, and holds its lease) or a sleeping leader (its lease lapsed while it slept;
    /// the next request wakes it); records it as the routing hint and returns its index.
    pub async fn wait_for_leader(&self, p: usize, timeout: Duration) -> Result<usize> {
        let deadline = Instant::now() + timeout;
        let mut metrics: Vec<_> = self
            .nodes
            .iter()
            .map(|n| n.partitions[p].raft().metrics())
            .collect();
        loop {
            if let Some(i) = self.nodes.iter().position(|n| {
                let replica = &n.partitions[p];
                replica.is_ready_leader()
                    || matches!(replica.sleep_state(), SleepState::LeaderAsleep { .. })
            }) {
                self.leaders[p].store(i, Ordering::Relaxed);
                return Ok(i);
            }
            ensure!(
                Instant::now() < deadline,
                "partition {p} has no ready leader after {timeout:?}"
            );
            // Wake on any replica's metrics change; readiness also depends on the lease's age,
            // so check again after a short while regardless.
            let [a, b, c] = &mut metrics[..] else {
                bail!("a cluster has {NODES} nodes");
            };
            tokio::select! {
                _ = a.changed() => {}
                _ = b.changed() => {}
                _ = c.changed() => {}
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
        }
    }

    /// How many partitions each node leads now, by node index.
    pub fn leader_counts(&self) -> [usize; NODES] {
        let mut counts = [0; NODES];
        for (i, node) in self.nodes.iter().enumerate() {
            counts[i] = node
                .partitions
                .iter()
                .filter(|p| p.metrics().current_leader == Some(node.id))
                .count();
        }
        counts
    }

    /// Sum over every replica of its current term (a change means elections happened).
    pub fn term_sum(&self) -> u64 {
        self.nodes
            .iter()
            .flat_map(|n| n.partitions.iter())
            .map(|p| p.metrics().current_term)
            .sum()
    }

    /// Replicas (of all nodes) whose group sleeps right now, as leader or follower.
    pub fn asleep(&self) -> usize {
        self.nodes
            .iter()
            .flat_map(|n| n.partitions.iter())
            .filter(|p| p.sleep_state() != SleepState::Awake)
            .count()
    }

    /// Waits until every replica sleeps (polling every 50 ms: sleep states are not published
    /// on a channel).
    pub async fn wait_all_asleep(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let replicas = self.partitions() * self.nodes.len();
        loop {
            let asleep = self.asleep();
            if asleep == replicas {
                return Ok(());
            }
            ensure!(
                Instant::now() < deadline,
                "{} of {replicas} replicas still awake after {timeout:?}",
                replicas - asleep
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Partitions whose three replicas all name the same leader right now.
    pub fn agreed_leaders(&self) -> usize {
        (0..self.partitions())
            .filter(|p| {
                let leader = self.nodes[0].partitions[*p].metrics().current_leader;
                leader.is_some()
                    && self
                        .nodes
                        .iter()
                        .all(|n| n.partitions[*p].metrics().current_leader == leader)
            })
            .count()
    }

    /// Waits until every replica of every partition has applied its leader's last entry (the
    /// followers caught up; nothing left in flight).
    pub async fn wait_caught_up(&self) -> Result<()> {
        for p in 0..self.partitions() {
            let leader = self.wait_for_leader(p, LEADER_WAIT).await?;
            let last = self.nodes[leader].partitions[p].metrics().last_log_index;
            for node in &self.nodes {
                node.partitions[p]
                    .raft()
                    .wait(Some(LEADER_WAIT))
                    .applied_index_at_least(last, "replica caught up")
                    .await
                    .with_context(|| format!("partition {p} on node {}", node.id))?;
            }
        }
        Ok(())
    }

    /// The disk counters summed over the nodes.
    pub fn disk_counts(&self) -> DiskCounts {
        self.nodes
            .iter()
            .fold(DiskCounts::default(), |sum, n| sum.plus(&n.disk.counts()))
    }

    /// What the peer servers received, summed over the nodes.
    pub fn server_counts(&self) -> ServerCounts {
        self.nodes
            .iter()
            .map(Node::server_counts)
            .fold(ServerCounts::default(), |s, c| ServerCounts {
                votes: s.votes + c.votes,
                appends: s.appends + c.appends,
                append_streams: s.append_streams + c.append_streams,
                heartbeat_batches: s.heartbeat_batches + c.heartbeat_batches,
                heartbeats: s.heartbeats + c.heartbeats,
                snapshots: s.snapshots + c.snapshots,
                transfers: s.transfers + c.transfers,
                rejected: s.rejected + c.rejected,
            })
    }

    /// Appends `batch` to partition `p` with `acks=all` at its leader, following `NotLeader`
    /// answers to the hinted leader (or waiting for a ready leader when there is no hint).
    /// Returns the base offset. Any other error is returned as is: nothing is retried that
    /// might have been written.
    pub async fn append(&self, p: usize, batch: Bytes) -> Result<(i64, Routed), PartitionError> {
        let mut routed = Routed::default();
        loop {
            let node = self.leaders[p].load(Ordering::Relaxed);
            match self.nodes[node].partitions[p]
                .append(batch.clone(), Acks::All)
                .await
            {
                Ok(Some(offset)) => return Ok((offset, routed)),
                Ok(None) => {
                    return Err(PartitionError::Internal {
                        reason: "acks=all answered without an offset".into(),
                    });
                }
                Err(PartitionError::NotLeader { leader_id, .. }) => {
                    routed.redirects += 1;
                    if routed.redirects > REDIRECTS_MAX {
                        return Err(PartitionError::NotLeader {
                            leader_id,
                            leader_addr: None,
                        });
                    }
                    match leader_id.and_then(|id| self.node_index(id)) {
                        Some(i) if i != node => self.leaders[p].store(i, Ordering::Relaxed),
                        _ => {
                            if self.wait_for_leader(p, LEADER_WAIT).await.is_err() {
                                return Err(PartitionError::NotLeader {
                                    leader_id: None,
                                    leader_addr: None,
                                });
                            }
                        }
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn node_index(&self, id: u64) -> Option<usize> {
        self.nodes.iter().position(|n| n.id == id)
    }

    /// Stops the liveness tickers, then every replica (`concurrency` at a time per node, all
    /// replicas of a partition close together), then the peer servers, connections and
    /// flushers, and deletes the data.
    pub async fn shutdown(self, concurrency: usize) -> Result<()> {
        let Cluster { nodes, dir, .. } = self;
        let limit = Arc::new(Semaphore::new(concurrency * NODES));
        let mut tasks = JoinSet::new();
        let mut rest = Vec::with_capacity(nodes.len());
        let mut replicas: Vec<Vec<Arc<Partition>>> = Vec::with_capacity(nodes.len());
        for mut node in nodes {
            // A tick holds the replicas it walks: stop the ticker before taking them back.
            if let Some(ticker) = node.ticker.take() {
                let _ = ticker.stop.send(());
                ticker.task.await?;
            }
            replicas.push(std::mem::take(&mut node.partitions));
            rest.push(node);
        }
        let partitions = replicas.first().map_or(0, Vec::len);
        let mut iters: Vec<_> = replicas.into_iter().map(Vec::into_iter).collect();
        for p in 0..partitions {
            for (i, it) in iters.iter_mut().enumerate() {
                let replica = it.next().context("every node hosts every partition")?;
                rest[i].registry.remove(group_of(p));
                rest[i].liveness.unregister(group_of(p));
                let replica = Arc::try_unwrap(replica)
                    .ok()
                    .with_context(|| format!("partition {p} is still in use"))?;
                let permit = limit.clone().acquire_owned().await?;
                tasks.spawn(async move {
                    let _permit = permit;
                    replica.shutdown().await
                });
            }
        }
        while let Some(done) = tasks.join_next().await {
            done?.context("shut down a replica")?;
        }
        for node in rest {
            let _ = node.stop_server.send(());
            node.server.await?.context("peer server")?;
            drop(node.peers);
            // Dropping a flusher joins its thread: not on a runtime worker.
            let flusher = node.flusher;
            tokio::task::spawn_blocking(move || drop(flusher)).await?;
        }
        let dir2 = dir.clone();
        tokio::task::spawn_blocking(move || std::fs::remove_dir_all(&dir2))
            .await?
            .with_context(|| format!("remove {}", dir.display()))?;
        Ok(())
    }
}

/// The Raft group of partition `p` (partition `p` is group `p` in this harness).
fn group_of(p: usize) -> GroupId {
    GroupId::new(p as u64)
}

/// Opens this node's replica of partitions `0..partitions` (`concurrency` at a time) and
/// registers each with the node's peer server and liveness ticker.
async fn open_replicas(
    node: &Node,
    dir: &Path,
    partitions: usize,
    concurrency: usize,
) -> Result<Vec<Arc<Partition>>> {
    let limit = Arc::new(Semaphore::new(concurrency));
    let mut tasks = JoinSet::new();
    for p in 0..partitions {
        let mut config = PartitionConfig::new(
            group_of(p),
            node.id,
            dir.join(format!("node-{}", node.id))
                .join(format!("partition-{p}")),
        );
        config.disk = node.disk.clone();
        let flusher = node.flusher.handle();
        let network = PeerNetwork::new(group_of(p), node.peers.clone());
        let permit = limit.clone().acquire_owned().await?;
        tasks.spawn(async move {
            let _permit = permit;
            let replica = Partition::open(config, &flusher, network, None).await;
            (p, replica)
        });
    }
    let mut opened: Vec<Option<Arc<Partition>>> = (0..partitions).map(|_| None).collect();
    while let Some(done) = tasks.join_next().await {
        let (p, replica) = done?;
        let replica = replica.with_context(|| format!("open partition {p} on node {}", node.id))?;
        let replica = Arc::new(replica);
        node.registry
            .insert(group_of(p), Arc::new(replica.raft().clone()));
        node.liveness.register(group_of(p), &replica);
        opened[p] = Some(replica);
    }
    opened
        .into_iter()
        .enumerate()
        .map(|(p, r)| r.with_context(|| format!("partition {p} was not opened")))
        .collect()
}
