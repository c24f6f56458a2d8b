//! An in-process cluster of whole Strata nodes (controller, replica manager, broker, gRPC
//! services, HTTP probes), each started through [`World`] with its own [`SimDisk`] and one
//! shared [`LinkControl`]: node crashes drop every write no sync covered, links between nodes
//! can be cut, dropped or delayed, and nodes restart from their disks.
//!
//! Clients reach the nodes over real gRPC on ephemeral 127.0.0.1 ports ([`NodeCluster::brokers`])
//! or call a node's broker directly ([`NodeCluster::broker`]). Everything runs on the test's
//! tokio runtime, so the test needs a multi-threaded runtime
//! (`#[tokio::test(flavor = "multi_thread", worker_threads = 2)]`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use strata_broker::Broker;
use strata_log::sim::{CrashMode, SimDisk};
use strata_node::{Listeners, Node, NodeConfig, World};
use strata_raft::transport::LinkControl;
use tokio::net::TcpListener;

/// Node settings for tests: fast heartbeats and elections, short request and shutdown
/// timeouts, retention checked often, 4 partitions of `__consumer_offsets` with 1 MiB
/// segments, and group heartbeats every 200 ms.
pub fn fast_config(id: u64, data_dir: PathBuf) -> NodeConfig {
    NodeConfig {
        node_id: Some(id),
        data_dir,
        client_addr: "127.0.0.1:0".into(),
        peer_addr: "127.0.0.1:0".into(),
        http_addr: "127.0.0.1:0".into(),
        heartbeat_ms: 100,
        election_timeout_min_ms: 500,
        election_timeout_max_ms: 1000,
        retention_check_interval_ms: 200,
        shutdown_timeout_ms: 2_000,
        group_offsets_partitions: 4,
        group_offsets_segment_bytes: 1 << 20,
        group_heartbeat_interval_ms: 200,
        ..NodeConfig::default()
    }
}

struct Slot {
    config: NodeConfig,
    disk: Arc<SimDisk>,
    node: Option<Node>,
}

/// Whole nodes in one process (see the module docs).
pub struct NodeCluster {
    root: tempfile::TempDir,
    links: Arc<LinkControl>,
    nodes: BTreeMap<u64, Slot>,
}

async fn listeners() -> (Listeners, [SocketAddr; 3]) {
    let bind = || TcpListener::bind("127.0.0.1:0");
    let (client, peer, http) = (
        bind().await.expect("bind"),
        bind().await.expect("bind"),
        bind().await.expect("bind"),
    );
    let addrs = [
        client.local_addr().expect("addr"),
        peer.local_addr().expect("addr"),
        http.local_addr().expect("addr"),
    ];
    (Listeners { client, peer, http }, addrs)
}

impl NodeCluster {
    /// Starts nodes 1..=n as one new cluster (every node bootstraps with the same initial
    /// voters, at most three: the others join as brokers), `default_replication_factor`
    /// min(3, n), and waits until the cluster is healthy.
    pub async fn start(n: u64, seed: u64) -> NodeCluster {
        let root = tempfile::tempdir().expect("tempdir");
        let mut bound = Vec::new();
        for _ in 0..n {
            bound.push(listeners().await);
        }
        let initial: Vec<String> = bound
            .iter()
            .enumerate()
            .map(|(i, (_, a))| format!("{}@{}", i + 1, a[1]))
            .collect();
        let mut c = NodeCluster {
            root,
            links: Arc::new(LinkControl::new(seed)),
            nodes: BTreeMap::new(),
        };
        let mut starts = tokio::task::JoinSet::new();
        for (i, (l, _)) in bound.into_iter().enumerate() {
            let id = i as u64 + 1;
            let mut config = fast_config(id, c.root.path().join(format!("n{id}")));
            config.initial_cluster = Some(initial.join(","));
            config.default_replication_factor = n.min(3) as u32;
            let disk = Arc::new(
                SimDisk::new(c.root.path().join(format!("trash-{id}"))).expect("sim disk"),
            );
            let world = World {
                listeners: Some(l),
                disk: disk.clone(),
                links: Some(c.links.clone()),
                ..World::real()
            };
            let cfg = config.clone();
            starts.spawn(async move { (id, Node::start(cfg, world).await) });
            c.nodes.insert(
                id,
                Slot {
                    config,
                    disk,
                    node: None,
                },
            );
        }
        while let Some(r) = starts.join_next().await {
            let (id, node) = r.expect("join");
            let node = node.unwrap_or_else(|e| panic!("start node {id}: {e}"));
            c.slot(id).node = Some(node);
        }
        c.wait_healthy(Duration::from_secs(30)).await;
        c
    }

    fn slot(&mut self, id: u64) -> &mut Slot {
        self.nodes
            .get_mut(&id)
            .unwrap_or_else(|| panic!("no node {id}"))
    }

    fn running(&self, id: u64) -> &Node {
        self.nodes
            .get(&id)
            .and_then(|s| s.node.as_ref())
            .unwrap_or_else(|| panic!("node {id} is not running"))
    }

    /// Ids of every node, running or not.
    pub fn ids(&self) -> Vec<u64> {
        self.nodes.keys().copied().collect()
    }

    /// Whether node `id` is running.
    pub fn is_up(&self, id: u64) -> bool {
        self.nodes.get(&id).is_some_and(|s| s.node.is_some())
    }

    /// The link faults shared by every node.
    pub fn links(&self) -> &Arc<LinkControl> {
        &self.links
    }

    /// Node `id`'s simulated disk.
    pub fn disk(&self, id: u64) -> Arc<SimDisk> {
        self.nodes[&id].disk.clone()
    }

    /// Node `id`'s data directory.
    pub fn data_dir(&self, id: u64) -> PathBuf {
        self.nodes[&id].config.data_dir.clone()
    }

    /// Node `id`'s broker (direct calls, no gRPC).
    pub fn broker(&self, id: u64) -> Arc<Broker> {
        self.running(id).shared().broker.clone()
    }

    /// Client addresses of the running nodes.
    pub fn brokers(&self) -> Vec<String> {
        self.nodes
            .values()
            .filter_map(|s| s.node.as_ref())
            .map(|n| n.addresses().client_addr.clone())
            .collect()
    }

    /// Node `id`'s client address.
    pub fn client_addr(&self, id: u64) -> String {
        self.running(id).addresses().client_addr.clone()
    }

    /// Node `id`'s HTTP address.
    pub fn http_addr(&self, id: u64) -> String {
        self.running(id).addresses().http_addr.clone()
    }

    /// Waits until every running node reports the cluster healthy.
    pub async fn wait_healthy(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let healthy = self
                .nodes
                .values()
                .filter_map(|s| s.node.as_ref())
                .all(|n| {
                    let meta = n.shared().controller.meta().borrow().clone();
                    n.shared().health(&meta).healthy
                });
            if healthy {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "cluster not healthy in {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Crashes node `id` as a power loss would: every group stops with no flush, the servers
    /// close their connections, and the node's disk loses every write no sync covered (a sync
    /// held by the test fails).
    pub async fn crash(&mut self, id: u64, mode: CrashMode) {
        let slot = self.slot(id);
        let node = slot
            .node
            .take()
            .unwrap_or_else(|| panic!("node {id} is down"));
        let disk = slot.disk.clone();
        if disk.held_syncs() > 0 {
            disk.release_syncs(true);
        }
        node.crash().await;
        tokio::task::spawn_blocking(move || disk.crash(mode))
            .await
            .expect("join")
            .expect("crash");
    }

    /// Crashes every running node at once (a power loss of the whole cluster).
    pub async fn crash_all(&mut self, mode: CrashMode) {
        let nodes: Vec<(u64, Node, Arc<SimDisk>)> = self
            .nodes
            .iter_mut()
            .filter_map(|(id, s)| s.node.take().map(|n| (*id, n, s.disk.clone())))
            .collect();
        let mut halts = tokio::task::JoinSet::new();
        for (_, node, disk) in nodes {
            if disk.held_syncs() > 0 {
                disk.release_syncs(true);
            }
            halts.spawn(async move {
                node.crash().await;
                disk
            });
        }
        while let Some(disk) = halts.join_next().await {
            let disk = disk.expect("join");
            tokio::task::spawn_blocking(move || disk.crash(mode))
                .await
                .expect("join")
                .expect("crash");
        }
    }

    /// Stops node `id` gracefully (leadership handed off, logs closed cleanly).
    pub async fn stop(&mut self, id: u64) {
        let node = self.slot(id).node.take().expect("node is up");
        node.shutdown().await;
    }

    /// Restarts node `id` from its disk, on the ports it had.
    pub async fn restart(&mut self, id: u64) {
        let (config, disk, links) = {
            let links = self.links.clone();
            let slot = self.slot(id);
            assert!(slot.node.is_none(), "node {id} is running");
            (slot.config.clone(), slot.disk.clone(), links)
        };
        let world = World::real().with_disk(disk).with_links(links);
        let deadline = Instant::now() + Duration::from_secs(30);
        // The old servers' sockets may take a moment to be released.
        let node = loop {
            match Node::start(config.clone(), world_clone(&world)).await {
                Ok(n) => break n,
                Err(e) => {
                    assert!(Instant::now() < deadline, "restart node {id}: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        self.slot(id).node = Some(node);
    }

    /// Restarts every node that is down, all at once (after a power loss of the whole cluster
    /// no node can register before a majority of the controller's voters is back).
    pub async fn restart_all(&mut self) {
        let down: Vec<(u64, NodeConfig, Arc<SimDisk>)> = self
            .nodes
            .iter()
            .filter(|(_, s)| s.node.is_none())
            .map(|(id, s)| (*id, s.config.clone(), s.disk.clone()))
            .collect();
        let mut starts = tokio::task::JoinSet::new();
        for (id, config, disk) in down {
            let world = World::real().with_disk(disk).with_links(self.links.clone());
            starts.spawn(async move { (id, Node::start(config, world).await) });
        }
        while let Some(r) = starts.join_next().await {
            let (id, node) = r.expect("join");
            let node = node.unwrap_or_else(|e| panic!("restart node {id}: {e}"));
            self.slot(id).node = Some(node);
        }
    }

    /// Stops every running node gracefully, all at once.
    pub async fn shutdown(mut self) {
        let mut stops = tokio::task::JoinSet::new();
        for s in self.nodes.values_mut() {
            if let Some(n) = s.node.take() {
                stops.spawn(n.shutdown_with_cluster());
            }
        }
        while stops.join_next().await.is_some() {}
    }
}

fn world_clone(w: &World) -> World {
    World {
        listeners: None,
        disk: w.disk.clone(),
        links: w.links.clone(),
        transport: w.transport.clone(),
    }
}
