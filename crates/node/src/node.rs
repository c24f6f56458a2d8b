//! One Strata node: identity, listeners, the controller replica, partition replicas, the
//! client services, health and metrics, background tasks, and graceful shutdown.

use crate::config::{NodeConfig, parse_initial_cluster};
use crate::controller::{CONTROLLER_GROUP, Controller, ControllerError};
use crate::grpc::control::{ControlService, GrpcControlLink};
use crate::meta::{ClusterMeta, Command, NodeMeta, NodeState, Refusal};
use crate::observe::Probe;
use crate::replicas::{ReplicaEnv, Replicas};
use crate::world::World;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use strata_broker::{Broker, BrokerParts};
use strata_log::Flusher;
use strata_raft::liveness::{Liveness, LivenessConfig, LivenessSender};
use strata_raft::partition::{Partition, PartitionConfig, RaftTiming};
use strata_raft::replica::{Replica, ReplicaStatus};
use strata_raft::transport::{GroupRegistry, PeerIdentity, PeerNetwork, PeerService, Peers};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// File in the data directory holding the node's identity.
pub const IDENTITY_FILE: &str = "identity.json";
/// File in the data directory holding the node's addresses (rewritten every start): the ones it
/// bound (so port 0 resolves to the real port), or the `advertise_*` ones when set.
pub const ADDRESSES_FILE: &str = "addresses.json";

/// Why a node could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Configuration or identity problem the operator must fix.
    #[error("{0}")]
    Config(String),
    /// An IO failure.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// The cluster refused this node.
    #[error("refused by the cluster: {0}")]
    Refused(String),
    /// The peer transport could not be set up (its configuration).
    #[error("peer transport: {0}")]
    Transport(#[from] strata_raft::transport::TransportError),
    /// The controller replica could not be opened.
    #[error("open the controller: {0}")]
    Controller(#[source] strata_raft::error::PartitionError),
    /// An empty data directory could not join the cluster at the address given.
    #[error("could not join the cluster via {via}: {last}")]
    Join {
        /// The address given to join through.
        via: String,
        /// The last error seen.
        last: String,
    },
    /// A file of the data directory could not be encoded.
    #[error("encode {what}: {source}")]
    Encode {
        /// What was being written.
        what: &'static str,
        /// The error.
        source: serde_json::Error,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> NodeError {
    let what = what.into();
    move |source| NodeError::Io { what, source }
}

/// The identity a node keeps in its data directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The cluster (hex).
    pub cluster_id: String,
    /// This node's id.
    pub node_id: u64,
    /// This life of the node (random, never 0).
    pub incarnation: u64,
    /// Controller peers to contact when the leader is unknown (node id to peer address).
    pub seeds: BTreeMap<u64, String>,
    /// Whether this node bootstraps the controller group with `seeds` as voters.
    pub bootstrap: bool,
}

/// The addresses a node bound and advertises (written to `addresses.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Addresses {
    /// Client API.
    pub client_addr: String,
    /// Peer (Raft) API.
    pub peer_addr: String,
    /// HTTP.
    pub http_addr: String,
}

/// Writes `bytes` to `path` atomically (temp file, fsync, rename, fsync of the directory).
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>, NodeError> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| {
            NodeError::Config(format!(
                "{} is damaged ({e}); restore it or start with an empty data directory and --join",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(NodeError::Io {
            what: format!("read {}", path.display()),
            source: e,
        }),
    }
}

/// A cluster id derived from the initial cluster (the same on every bootstrapping node).
fn cluster_id_of(voters: &BTreeMap<u64, String>) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (id, addr) in voters {
        for b in format!("{id}@{addr},").bytes() {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

fn parse_cluster_id(s: &str) -> Result<u64, NodeError> {
    u64::from_str_radix(s, 16)
        .map_err(|_| NodeError::Config(format!("cluster id {s:?} is not 16 hex digits")))
}

fn random_incarnation() -> u64 {
    loop {
        let v: u64 = rand::random();
        if v != 0 {
            return v;
        }
    }
}

/// Health summary of the cluster as one node sees it.
pub use strata_broker::types::Health;

/// What the services and tasks of a node share.
pub struct Shared {
    /// The configuration.
    pub config: NodeConfig,
    /// This node's identity on the peer port.
    pub identity: PeerIdentity,
    /// The controller.
    pub controller: Arc<Controller>,
    /// The replicas hosted here.
    pub replicas: Arc<Replicas>,
    /// Which nodes this node hears from.
    pub liveness: Arc<Liveness>,
    /// Leaders of partitions not hosted here, as other nodes said.
    pub hints: Arc<crate::controller::LeaderHints>,
    /// The broker the client API calls.
    pub broker: Arc<Broker>,
    registered: AtomicBool,
}

impl Shared {
    /// The cluster id as text.
    pub fn cluster_id_text(&self) -> String {
        self.broker.cluster_id().to_string()
    }

    /// Whether node `id` was heard from within the election timeout (this node: always).
    pub fn alive(&self, id: u64) -> bool {
        self.broker.alive(id)
    }

    /// The cluster's health as this node sees it.
    pub fn health(&self, meta: &ClusterMeta) -> Health {
        self.broker.health(meta)
    }

    fn refresh_disk(&self) {
        let free = free_bytes(&self.config.data_dir).unwrap_or(u64::MAX);
        self.broker.set_disk_free(free);
        metrics::gauge!("strata_disk_free_bytes").set(free as f64);
    }
}

impl Probe for Shared {
    fn ready(&self) -> Result<(), String> {
        if !self.registered.load(Ordering::Relaxed) {
            return Err("not registered with the controller yet".into());
        }
        // The controller must be able to act now, not merely be remembered: its leader is
        // this node and serves (a quorum acknowledged it within the lease), or another node
        // heard from within the election timeout. A leader known from before its quorum was
        // lost does not count.
        match self.controller.leader() {
            None => return Err("no controller leader known".into()),
            Some((id, _)) if id == self.identity.node_id => {
                if !self
                    .controller
                    .partition()
                    .is_some_and(|p| p.can_serve(|id| self.alive(id)))
                {
                    return Err("this node leads the controller but has no quorum".into());
                }
            }
            Some((id, _)) => {
                if !self.alive(id) {
                    return Err(format!(
                        "the controller leader (node {id}) has not been heard from"
                    ));
                }
            }
        }
        let down = self.replicas.down();
        if down > 0 {
            return Err(format!("{down} replicas are down (reopening)"));
        }
        Ok(())
    }

    fn refresh_gauges(&self) {
        let meta = self.controller.snapshot();
        let h = self.health(&meta);
        metrics::gauge!("strata_node_up").set(1.0);
        metrics::gauge!("strata_partitions_leaderless").set(h.leaderless as f64);
        metrics::gauge!("strata_partitions_under_replicated").set(h.under_replicated as f64);
        metrics::gauge!("strata_replicas_down").set(self.replicas.down() as f64);
        for r in self.replicas.all() {
            let Some(p) = r.partition() else { continue };
            let labels = [
                ("topic", r.topic.clone()),
                ("partition", r.partition.to_string()),
            ];
            let me = self.identity.node_id;
            let st = p.status();
            metrics::gauge!("strata_partition_leader", &labels).set(st.leader.unwrap_or(0) as f64);
            metrics::gauge!("strata_partition_term", &labels).set(st.term as f64);
            // 1 only while this replica can serve as leader (see `Partition::can_serve`), not
            // while it merely believes it leads (cut off from its quorum, or catching up).
            metrics::gauge!("strata_partition_is_leader", &labels).set(
                if p.can_serve(|id| self.alive(id)) {
                    1.0
                } else {
                    0.0
                },
            );
            if st.leader == Some(me) {
                let last = st.last_log_index.unwrap_or(0);
                for id in st.members.keys().filter(|id| **id != me) {
                    let matched = st.matched.get(id).copied().unwrap_or(0);
                    let mut l = labels.to_vec();
                    l.push(("replica", id.to_string()));
                    metrics::gauge!("strata_partition_replica_lag_entries", &l)
                        .set(last.saturating_sub(matched) as f64);
                }
            }
            metrics::gauge!("strata_partition_high_watermark", &labels)
                .set(p.high_watermark() as f64);
        }
    }
}

/// Free bytes on the file system holding `path`.
pub fn free_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut s = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `c` is a valid NUL-terminated path and `s` points to writable memory of the
    // right size; statvfs writes it fully on success.
    let r = unsafe { libc::statvfs(c.as_ptr(), s.as_mut_ptr()) };
    if r != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so it initialized `s`.
    let s = unsafe { s.assume_init() };
    #[allow(clippy::unnecessary_cast)] // c_ulong width differs across targets
    let free = (s.f_bavail as u64).saturating_mul(s.f_frsize as u64);
    Some(free)
}

/// A running node.
pub struct Node {
    shared: Arc<Shared>,
    addresses: Addresses,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    peer_server: JoinHandle<()>,
    peer_stop: tokio::sync::oneshot::Sender<()>,
    _flusher: Flusher,
    _lock: std::fs::File,
    fatal: watch::Receiver<Option<String>>,
}

async fn bind(addr: &str, what: &str) -> Result<TcpListener, NodeError> {
    TcpListener::bind(addr)
        .await
        .map_err(io(format!("bind the {what} address {addr}")))
}

async fn rebind(addr: &str, before: Option<&String>, what: &str) -> Result<TcpListener, NodeError> {
    if let (Ok(want), Some(prev)) = (addr.parse::<SocketAddr>(), before)
        && want.port() == 0
        && let Ok(prev) = prev.parse::<SocketAddr>()
        && prev.ip() == want.ip()
        && let Ok(l) = TcpListener::bind(prev).await
    {
        return Ok(l);
    }
    bind(addr, what).await
}

fn local(l: &TcpListener) -> Result<String, NodeError> {
    l.local_addr()
        .map(|a: SocketAddr| a.to_string())
        .map_err(io("local address"))
}

fn lock_dir(dir: &Path) -> Result<std::fs::File, NodeError> {
    use std::os::fd::AsRawFd;
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("LOCK"))
        .map_err(io("open the data directory lock"))?;
    // SAFETY: flock on an open descriptor we own.
    let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if r != 0 {
        return Err(NodeError::Config(format!(
            "data directory {} is in use by another node process",
            dir.display()
        )));
    }
    Ok(f)
}

impl Node {
    /// Starts a node: binds its listeners, establishes its identity (bootstrap, join or
    /// restart), opens the controller and its replicas, registers with the controller and
    /// serves. Returns once the node is registered.
    pub async fn start(config: NodeConfig, world: World) -> Result<Node, NodeError> {
        let data = config.data_dir.clone();
        std::fs::create_dir_all(data.join("partitions"))
            .map_err(io(format!("create {}", data.display())))?;
        let lock = lock_dir(&data)?;
        let (client_l, peer_l, http_l) = match world.listeners {
            Some(l) => (l.client, l.peer, l.http),
            None => {
                // A restarted node asked for port 0 takes the ports it had before when they
                // are free: its peers and the Raft memberships know it by them.
                let before = read_addresses(&data);
                let client = rebind(
                    &config.client_addr,
                    before.as_ref().map(|a| &a.client_addr),
                    "client",
                )
                .await?;
                let peer = rebind(
                    &config.peer_addr,
                    before.as_ref().map(|a| &a.peer_addr),
                    "peer",
                )
                .await?;
                let http = rebind(
                    &config.http_addr,
                    before.as_ref().map(|a| &a.http_addr),
                    "http",
                )
                .await?;
                (client, peer, http)
            }
        };
        let addresses = Addresses {
            client_addr: config
                .advertise_client_addr
                .clone()
                .map_or_else(|| local(&client_l), Ok)?,
            peer_addr: config
                .advertise_peer_addr
                .clone()
                .map_or_else(|| local(&peer_l), Ok)?,
            http_addr: config
                .advertise_http_addr
                .clone()
                .map_or_else(|| local(&http_l), Ok)?,
        };
        let addr_json =
            serde_json::to_vec_pretty(&addresses).map_err(|source| NodeError::Encode {
                what: "addresses",
                source,
            })?;
        write_atomic(&data.join(ADDRESSES_FILE), &addr_json).map_err(io("write addresses"))?;

        let created = read_identity(&data).is_none();
        let identity = establish_identity(&config, &addresses).await?;
        tracing::info!(node = identity.node_id, cluster = %identity.cluster_id,
            client = %addresses.client_addr, peer = %addresses.peer_addr,
            http = %addresses.http_addr, "node starting");
        let peer_identity = PeerIdentity {
            cluster_id: parse_cluster_id(&identity.cluster_id)?,
            node_id: identity.node_id,
            incarnation: identity.incarnation,
        };
        let transport = world.transport.clone();
        let links = world.links.clone().unwrap_or_default();
        let peers = Peers::with_link_control(peer_identity, transport.clone(), links.clone())?;
        let registry = Arc::new(GroupRegistry::new());
        let liveness = Liveness::new(
            identity.node_id,
            LivenessConfig {
                interval_ms: config.heartbeat_ms,
                // 0 disables sleeping: a group is never idle that long.
                idle_ms: if config.idle_group_sleep_ms == 0 {
                    u64::MAX / 4
                } else {
                    config.idle_group_sleep_ms
                },
                silence_ms: config.election_timeout_min_ms,
            },
        );
        let flusher = Flusher::start(&format!("strata-{}", identity.node_id))
            .map_err(io("start the flusher"))?;
        let timing = RaftTiming {
            heartbeat_ms: config.heartbeat_ms,
            election_timeout_min_ms: config.election_timeout_min_ms,
            election_timeout_max_ms: config.election_timeout_max_ms,
        };

        // The controller replica.
        let ctl_config = {
            let mut c =
                PartitionConfig::new(CONTROLLER_GROUP, identity.node_id, data.join("controller"));
            c.timing = timing.clone();
            c.disk = world.disk.clone();
            c
        };
        let (fh, p2, r2, l2) = (
            flusher.handle(),
            peers.clone(),
            registry.clone(),
            liveness.clone(),
        );
        let control_timeout = Duration::from_millis(config.request_timeout_ms.min(10_000));
        let link = Arc::new(GrpcControlLink::new(
            peer_identity,
            control_timeout,
            links.clone(),
        ));
        let controller = Arc::new(
            Controller::open(
                identity.node_id,
                link,
                move |hook| {
                    Box::pin(async move {
                        Replica::start(
                            ctl_config,
                            fh,
                            move || PeerNetwork::new(CONTROLLER_GROUP, p2.clone()),
                            Some(hook),
                            move |p: &Arc<Partition>| {
                                p.register_with(&r2, CONTROLLER_GROUP);
                                l2.register(CONTROLLER_GROUP, p);
                            },
                            Duration::from_millis(200),
                        )
                        .await
                    })
                },
                identity.seeds.clone(),
                control_timeout,
            )
            .await
            .map_err(NodeError::Controller)?,
        );

        // Peer server: Raft plus forwarded controller proposals.
        let peer_service = PeerService::new(peer_identity, registry.clone(), &transport)?
            .with_liveness(liveness.clone());
        let hints = Arc::new(crate::controller::LeaderHints::default());
        let control = strata_proto::internal::v1::node_control_server::NodeControlServer::new(
            ControlService::new(peer_identity, controller.clone(), hints.clone()),
        );
        let (peer_stop, peer_stop_rx) = tokio::sync::oneshot::channel::<()>();
        let peer_server = tokio::spawn(async move {
            let stop = async {
                let _ = peer_stop_rx.await;
            };
            if let Err(e) = strata_raft::transport::serve_with(peer_l, stop, peer_service, |r| {
                r.add_service(control)
            })
            .await
            {
                tracing::error!(error = %e, "peer server failed");
            }
        });

        // A new cluster: the initial voters each write the same first membership.
        if identity.bootstrap
            && let Some(p) = controller.partition()
            && p.status().last_log_index.is_none()
        {
            if let Err(e) = p.initialize(identity.seeds.clone()).await {
                tracing::debug!(error = %e, "controller initialize");
            }
            if identity.seeds.keys().next() == Some(&identity.node_id) {
                let _ = p.elect().await;
            }
        }

        let replicas = Replicas::new(ReplicaEnv {
            node_id: identity.node_id,
            dir: data.join("partitions"),
            peers: peers.clone(),
            registry: registry.clone(),
            liveness: liveness.clone(),
            flusher: flusher.handle(),
            disk: world.disk.clone(),
            timing,
        });
        let broker = Arc::new(Broker::new(
            BrokerParts {
                node_id: identity.node_id,
                cluster_id: identity.cluster_id.clone(),
                controller: controller.clone(),
                replicas: replicas.clone(),
                hints: hints.clone(),
                liveness: liveness.clone(),
            },
            config.broker_config(),
        ));
        let shared = Arc::new(Shared {
            config: config.clone(),
            identity: peer_identity,
            controller: controller.clone(),
            replicas: replicas.clone(),
            liveness: liveness.clone(),
            hints,
            broker,
            registered: AtomicBool::new(false),
        });
        shared.refresh_disk();

        let (stop, stop_rx) = watch::channel(false);
        let (fatal_tx, fatal) = watch::channel(None::<String>);
        let mut tasks = Vec::new();

        // Liveness ticker.
        {
            let sender: Arc<dyn LivenessSender> = peers.clone();
            let mut rx = stop_rx.clone();
            tasks.push(tokio::spawn(liveness.clone().run(sender, async move {
                let _ = rx.wait_for(|s| *s).await;
            })));
        }

        // Register (every start: addresses may have changed).
        let me = NodeMeta {
            incarnation: identity.incarnation,
            client_addr: addresses.client_addr.clone(),
            peer_addr: addresses.peer_addr.clone(),
            http_addr: addresses.http_addr.clone(),
            state: NodeState::Active,
            boot: random_incarnation(),
        };
        if let Err(e) = register(&controller, identity.node_id, me.clone()).await {
            if created {
                // Leave the directory as it was found, so the operator can --join with it.
                let _ = std::fs::remove_file(data.join(IDENTITY_FILE));
            }
            return Err(e);
        }
        // Serve only once this node's metadata has caught up with its own registration (so
        // with every change before it): a restarted node must not answer "unknown topic".
        let node_id = identity.node_id;
        while !controller
            .wait_meta(Duration::from_secs(5), |m| {
                m.nodes
                    .get(&node_id)
                    .is_some_and(|n| n.incarnation == me.incarnation && n.boot == me.boot)
            })
            .await
        {
            tracing::warn!("waiting for the controller's metadata to catch up");
        }
        shared.registered.store(true, Ordering::Relaxed);

        // Metadata follower: reconcile replicas on every change.
        tasks.push(tokio::spawn(follow_meta(shared.clone(), stop_rx.clone())));
        // Periodic duties.
        tasks.push(tokio::spawn(periodic(shared.clone(), stop_rx.clone())));
        tasks.push(tokio::spawn(crate::retention::run(
            shared.clone(),
            stop_rx.clone(),
        )));

        // Client API.
        let svc = crate::grpc::ClientService::new(shared.broker.clone());
        tasks.push(tokio::spawn(crate::serve::serve_client(
            client_l,
            svc,
            shared.config.clone(),
            stop_rx.clone(),
            fatal_tx.clone(),
        )));
        // HTTP.
        {
            let probe: Arc<dyn Probe> = shared.clone();
            let mut rx = stop_rx.clone();
            let fatal_tx = fatal_tx.clone();
            tasks.push(tokio::spawn(async move {
                let stop = async move {
                    let _ = rx.wait_for(|s| *s).await;
                };
                if let Err(e) = crate::observe::serve_http(http_l, probe, stop).await {
                    let _ = fatal_tx.send(Some(format!("http server: {e}")));
                }
            }));
        }
        let _ = crate::observe::prometheus();
        tracing::info!(node = identity.node_id, "node ready");
        Ok(Node {
            shared,
            addresses,
            stop,
            tasks,
            peer_server,
            peer_stop,
            _flusher: flusher,
            _lock: lock,
            fatal,
        })
    }

    /// The addresses the node advertises.
    pub fn addresses(&self) -> &Addresses {
        &self.addresses
    }

    /// This node's id.
    pub fn node_id(&self) -> u64 {
        self.shared.identity.node_id
    }

    /// The shared state (tests and tools).
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Resolves when a server of the node failed (with the reason).
    pub async fn failed(&mut self) -> String {
        match self.fatal.wait_for(|f| f.is_some()).await {
            Ok(f) => f.clone().unwrap_or_default(),
            Err(_) => "node stopped".into(),
        }
    }

    /// Graceful shutdown: hands leadership of every partition (and the controller) to other
    /// replicas, stops serving, closes the replicas.
    pub async fn shutdown(self) {
        self.stop(true).await;
    }

    /// Shutdown of a node whose whole cluster stops with it (`strata dev`): no leadership is
    /// handed to nodes that are stopping too.
    pub async fn shutdown_with_cluster(self) {
        self.stop(false).await;
    }

    /// Stops the node as a power loss would, for the in-process harness: every Raft group and
    /// log stops at once with no flush, no index or manifest write and no handoff (the
    /// harness then drops the unsynced writes with its simulated disk), then the servers stop
    /// and close their connections, so clients see the node go away.
    pub async fn crash(self) {
        tracing::info!(node = self.node_id(), "crashing");
        self.shared.replicas.crash_all().await;
        self.shared.controller.crash().await;
        let _ = self.stop.send(true);
        let _ = self.peer_stop.send(());
        let mut tasks = self.tasks;
        tasks.push(self.peer_server);
        for mut t in tasks {
            if tokio::time::timeout(Duration::from_secs(2), &mut t)
                .await
                .is_err()
            {
                t.abort();
            }
        }
    }

    /// Stops in order: hand leadership away (when `handoff`), stop the background tasks and
    /// listeners, stop every Raft group and close its log (many at once), then the controller
    /// and the peer server.
    async fn stop(self, handoff: bool) {
        if handoff {
            let patience = Duration::from_millis(self.shared.config.shutdown_timeout_ms);
            tracing::info!(
                node = self.node_id(),
                "shutting down: handing off leadership"
            );
            self.shared.replicas.hand_off_leadership(patience).await;
            if let Some(p) = self.shared.controller.partition() {
                crate::replicas::handoff(
                    &p,
                    self.node_id(),
                    tokio::time::Instant::now() + Duration::from_secs(3),
                )
                .await;
            }
        } else {
            tracing::info!(node = self.node_id(), "shutting down with the cluster");
        }
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
        self.shared.replicas.close_all().await;
        let controller = self.shared.controller.clone();
        drop(self.shared);
        controller.close().await;
        let _ = self.peer_stop.send(());
        let _ = tokio::time::timeout(Duration::from_secs(5), self.peer_server).await;
        tracing::info!("node stopped");
    }
}

/// Reads the identity from the data directory, or creates one (bootstrap or join).
async fn establish_identity(
    config: &NodeConfig,
    addresses: &Addresses,
) -> Result<Identity, NodeError> {
    let path = config.data_dir.join(IDENTITY_FILE);
    if let Some(id) = read_json::<Identity>(&path)? {
        if let Some(want) = config.node_id
            && want != id.node_id
        {
            return Err(NodeError::Config(format!(
                "--node-id {want} does not match node id {} in {}; a data directory belongs to one node",
                id.node_id,
                path.display()
            )));
        }
        return Ok(id);
    }
    let incarnation = random_incarnation();
    let identity = if let Some(join) = &config.join {
        join_cluster(join, addresses, incarnation).await?
    } else {
        let voters = match &config.initial_cluster {
            Some(ic) => parse_initial_cluster(ic).map_err(NodeError::Config)?,
            None => {
                let id = config.node_id.unwrap_or(1);
                BTreeMap::from([(id, addresses.peer_addr.clone())])
            }
        };
        let node_id = match config.node_id {
            Some(id) => id,
            None if voters.len() == 1 => *voters.keys().next().unwrap_or(&1),
            None => {
                return Err(NodeError::Config(
                    "--node-id is required with --initial-cluster (which entry is this node?)"
                        .into(),
                ));
            }
        };
        if !voters.contains_key(&node_id) {
            return Err(NodeError::Config(format!(
                "node {node_id} is not in the initial cluster {voters:?}"
            )));
        }
        Identity {
            cluster_id: cluster_id_of(&voters),
            node_id,
            incarnation,
            seeds: voters,
            bootstrap: true,
        }
    };
    let bytes = serde_json::to_vec_pretty(&identity).map_err(|source| NodeError::Encode {
        what: "identity",
        source,
    })?;
    write_atomic(&path, &bytes).map_err(io("write the identity file"))?;
    Ok(identity)
}

async fn join_cluster(
    join: &str,
    addresses: &Addresses,
    incarnation: u64,
) -> Result<Identity, NodeError> {
    use strata_proto::v1::admin_client::AdminClient;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    while Instant::now() < deadline {
        let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{join}"))
            .map_err(|e| NodeError::Config(format!("--join {join}: {e}")))?
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(20));
        match endpoint.connect().await {
            Ok(ch) => {
                let r = AdminClient::new(ch)
                    .join_node(strata_proto::v1::JoinNodeRequest {
                        client_addr: addresses.client_addr.clone(),
                        peer_addr: addresses.peer_addr.clone(),
                        http_addr: addresses.http_addr.clone(),
                        incarnation,
                    })
                    .await;
                match r {
                    Ok(resp) => {
                        let resp = resp.into_inner();
                        return Ok(Identity {
                            cluster_id: resp.cluster_id,
                            node_id: resp.node_id,
                            incarnation,
                            seeds: resp.controller_voters.into_iter().collect(),
                            bootstrap: false,
                        });
                    }
                    Err(s) if s.code() == tonic::Code::Unavailable => last = s.message().into(),
                    Err(s) => {
                        return Err(NodeError::Refused(format!(
                            "join via {join}: {}",
                            s.message()
                        )));
                    }
                }
            }
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(NodeError::Join {
        via: join.to_string(),
        last,
    })
}

async fn register(controller: &Controller, node_id: u64, me: NodeMeta) -> Result<(), NodeError> {
    let cmd = Command::RegisterNode { node_id, meta: me };
    loop {
        match controller.propose(&cmd, Duration::from_secs(30)).await {
            Ok(_) => return Ok(()),
            Err(ControllerError::Refused(r @ Refusal::IncarnationMismatch { .. })) => {
                return Err(NodeError::Refused(r.to_string()));
            }
            Err(ControllerError::Refused(r)) => return Err(NodeError::Refused(r.to_string())),
            Err(ControllerError::Unavailable(m)) => {
                tracing::warn!(reason = %m, "waiting for the controller to register this node");
            }
        }
    }
}

async fn follow_meta(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut rx = shared.controller.meta();
    loop {
        let meta = rx.borrow_and_update().clone();
        shared.replicas.reconcile(&meta).await;
        shared.replicas.drive_moves(&meta, &shared.controller);
        maintain_controller(&shared, &meta).await;
        tokio::select! {
            r = rx.changed() => if r.is_err() { return },
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// On the controller's leader: every registered node follows the controller (as a learner if
/// it is not a voter); nodes that no longer exist are dropped.
async fn maintain_controller(shared: &Shared, meta: &ClusterMeta) {
    let Some(p) = shared.controller.partition() else {
        return;
    };
    if !p.is_ready_leader() {
        return;
    }
    let st = p.status();
    let members: Vec<u64> = st.members.keys().copied().collect();
    for (id, n) in &meta.nodes {
        if !members.contains(id) {
            tracing::info!(node = id, "adding node to the controller as a learner");
            if let Err(e) = p.add_learner(*id, n.peer_addr.clone(), false).await {
                tracing::warn!(node = id, error = %e, "add controller learner");
            }
        }
    }
    // Voters: 1 below 3 active nodes, 3 below 5, then 5, chosen among active nodes.
    // Caught-up, live learners are promoted; a decommissioning voter is removed once enough
    // active voters remain (or none can replace it).
    let active = meta.active_nodes();
    let want = match active.len() {
        0..=2 => 1,
        3 | 4 => 3,
        _ => 5,
    };
    let (voters, last, matched) = (
        st.voters.clone(),
        st.last_log_index.unwrap_or(0),
        st.matched.clone(),
    );
    let active_voters = voters.iter().filter(|v| active.contains(v)).count();
    let candidates: Vec<u64> = active
        .iter()
        .filter(|id| !voters.contains(id) && shared.alive(**id))
        .filter(|id| {
            matched
                .get(id)
                .is_some_and(|m| last.saturating_sub(*m) < 16)
        })
        .copied()
        .collect();
    if active_voters < want && !candidates.is_empty() {
        let promote: std::collections::BTreeSet<u64> = candidates
            .iter()
            .take(want - active_voters)
            .copied()
            .collect();
        // Keep an odd number of voters: promote one short only when a leaving voter goes next.
        let leaving = voters.len() - active_voters;
        if promote.len() == want - active_voters || leaving > 0 {
            tracing::info!(?promote, "promoting nodes to controller voters");
            if let Err(e) = p.promote(promote).await {
                tracing::warn!(error = %e, "promote controller voters");
            }
            return;
        }
    }
    let leaving: std::collections::BTreeSet<u64> = voters
        .iter()
        .filter(|v| !active.contains(v) && meta.nodes.contains_key(v))
        .copied()
        .collect();
    if !leaving.is_empty() && (active_voters >= want || candidates.is_empty()) && active_voters > 0
    {
        tracing::info!(
            ?leaving,
            "removing decommissioned nodes from the controller voters"
        );
        if let Err(e) = p.remove_voters(leaving).await {
            tracing::warn!(error = %e, "remove controller voters");
        }
    }
}

/// How often (seconds) leaders hand leadership back to preferred leaders.
const PREFER_LEADERS_EVERY_S: u64 = 30;

/// Tells every other node which groups this node leads (fire and forget, in the background).
fn send_hints(shared: &Arc<Shared>, meta: &ClusterMeta) {
    let me = shared.identity.node_id;
    let led: Vec<(u64, u64)> = shared
        .replicas
        .all()
        .iter()
        .filter_map(|h| {
            let st = h.partition()?.status();
            (st.leader == Some(me)).then_some((h.group_id, st.term))
        })
        .collect();
    if led.is_empty() {
        return;
    }
    for (id, n) in &meta.nodes {
        if *id == me || n.state != NodeState::Active || !shared.alive(*id) {
            continue;
        }
        let (shared, to, addr, led) = (shared.clone(), *id, n.peer_addr.clone(), led.clone());
        tokio::spawn(async move {
            let _ = shared.controller.send_hints(to, &addr, led).await;
        });
    }
}

async fn periodic(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n: u64 = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        n += 1;
        let s = shared.clone();
        let _ = tokio::task::spawn_blocking(move || s.refresh_disk()).await;
        let meta = shared.controller.snapshot();
        shared.replicas.drive_moves(&meta, &shared.controller);
        maintain_controller(&shared, &meta).await;
        if n.is_multiple_of(PREFER_LEADERS_EVERY_S) {
            shared.replicas.prefer_leaders(&meta).await;
        }
        send_hints(&shared, &meta);
        // A replica that came back after a failure may have been registered under a stale
        // handle: the supervisor's on_open re-registered it.
        for r in shared.replicas.all() {
            if let ReplicaStatus::Down { reason } = r.replica.status() {
                tracing::debug!(topic = %r.topic, partition = r.partition, %reason, "replica down");
            }
        }
    }
}

/// Where a node's data directory says it listens (tests and `strata dev`).
pub fn read_addresses(data_dir: &Path) -> Option<Addresses> {
    read_json(&data_dir.join(ADDRESSES_FILE)).ok().flatten()
}

/// The identity stored in a data directory.
pub fn read_identity(data_dir: &Path) -> Option<Identity> {
    read_json(&data_dir.join(IDENTITY_FILE)).ok().flatten()
}

/// The data directory of node `id` under a dev root.
pub fn dev_node_dir(root: &Path, id: u64) -> PathBuf {
    root.join(format!("node-{id}"))
}
