//! One Strata node: [`Node::start`] binds (or takes from its [`World`]) the listeners,
//! establishes the identity, opens the controller and the replica manager, registers and
//! serves; [`Node::shutdown`] and [`Node::crash`] stop it. The parts live in their own
//! modules: [`crate::identity`], [`crate::shared`], [`crate::duties`], [`crate::error`].

use crate::config::NodeConfig;
use crate::controller::{CONTROLLER_GROUP, Controller};
use crate::duties::{follow_meta, groups, periodic, queues as queue_duty, register};
use crate::error::io;
use crate::grpc::control::{ControlService, GrpcControlLink};
use crate::grpc::queues::GrpcProduceLink;
use crate::identity::{establish_identity, parse_cluster_id, random_incarnation, write_file};
use crate::meta::{NodeMeta, NodeState};
use crate::observe::Probe;
use crate::replicas::{HookFactory, ReplicaEnv, Replicas};
use crate::world::World;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use strata_broker::{Broker, BrokerParts};
use strata_groups::Coordinators;
use strata_groups::queue::Queues;
use strata_log::Flusher;
use strata_raft::liveness::{Liveness, LivenessConfig, LivenessSender};
use strata_raft::partition::{Partition, PartitionConfig, RaftTiming};
use strata_raft::replica::Replica;
use strata_raft::transport::{GroupRegistry, PeerIdentity, PeerNetwork, PeerService, Peers};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use crate::error::NodeError;
pub use crate::identity::{
    ADDRESSES_FILE, Addresses, IDENTITY_FILE, Identity, dev_node_dir, read_addresses, read_identity,
};
pub use crate::shared::{Health, Shared, free_bytes};

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
        // The metrics recorder first: what the start itself counts (the controller's first
        // election) would otherwise be lost.
        let _ = crate::observe::prometheus();
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
        // The Kafka listener, when configured, is bound from the config in every world.
        let kafka_l = match &config.kafka_addr {
            Some(addr) => Some(
                rebind(
                    addr,
                    read_addresses(&data)
                        .as_ref()
                        .map(|a| &a.kafka_addr)
                        .filter(|a| !a.is_empty()),
                    "kafka",
                )
                .await?,
            ),
            None => None,
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
            kafka_addr: match &kafka_l {
                Some(l) => config
                    .advertise_kafka_addr
                    .clone()
                    .map_or_else(|| local(l), Ok)?,
                None => String::new(),
            },
        };
        let addr_json =
            serde_json::to_vec_pretty(&addresses).map_err(|source| NodeError::Encode {
                what: "addresses",
                source,
            })?;
        write_file(&data, ADDRESSES_FILE, &addr_json, "the addresses file")?;

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
                lease_ms: config.election_timeout_max_ms,
            },
        );
        let flusher = Flusher::start_pool(
            &format!("{}", identity.node_id),
            config.flush_threads as usize,
        )
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

        let coordinators = Arc::new(Coordinators::new(config.group_heartbeat_interval_ms));
        let queues = Arc::new(Queues::default());
        let hooks: HookFactory = {
            let group_hooks = coordinators.hook_factory();
            let queues = queues.clone();
            Arc::new(move |topic: &str, group_id| {
                group_hooks(topic, group_id)
                    .or_else(|| (!strata_broker::is_internal(topic)).then(|| queues.open(group_id)))
            })
        };
        let replicas = Replicas::new(ReplicaEnv {
            node_id: identity.node_id,
            dir: data.join("partitions"),
            peers: peers.clone(),
            registry: registry.clone(),
            liveness: liveness.clone(),
            flusher: flusher.handle(),
            disk: world.disk.clone(),
            timing,
            hooks: Some(hooks),
        });
        let broker = Arc::new(Broker::new(
            BrokerParts {
                node_id: identity.node_id,
                cluster_id: identity.cluster_id.clone(),
                controller: controller.clone(),
                replicas: replicas.clone(),
                hints: hints.clone(),
                liveness: liveness.clone(),
                coordinators,
                queues,
                produce_link: Some(Arc::new(GrpcProduceLink::new(Duration::from_millis(
                    config.request_timeout_ms,
                )))),
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
            kafka_addr: addresses.kafka_addr.clone(),
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
        tasks.push(tokio::spawn(groups(shared.clone(), stop_rx.clone())));
        tasks.push(tokio::spawn(queue_duty(shared.clone(), stop_rx.clone())));
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
        // Kafka wire protocol.
        if let Some(l) = kafka_l {
            let c = &shared.config;
            let kafka = strata_kafka::KafkaConfig {
                connections_max: c.kafka_connections_max,
                in_flight_max: c.kafka_in_flight_max,
                frame_bytes_max: c.kafka_frame_bytes_max,
                auto_create_topics: c.kafka_auto_create_topics,
                num_partitions: c.kafka_num_partitions,
            };
            tracing::info!(addr = %addresses.kafka_addr, "kafka listener serving");
            tasks.push(tokio::spawn(strata_kafka::serve(
                l,
                shared.broker.clone(),
                kafka,
                stop_rx.clone(),
            )));
        }
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
