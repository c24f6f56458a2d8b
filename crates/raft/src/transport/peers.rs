//! [`Peers`]: this node's connections to every other node, shared by all groups.
//!
//! Each peer gets two HTTP/2 channels, each its own TCP connection, opened lazily on the first
//! message and reopened by tonic after a failure:
//! - control: votes, pre-votes, coalesced heartbeats, leader transfers. Small and urgent: they
//!   must not queue behind bulk data (a delayed heartbeat is a needless election).
//! - data: appends (unary and pipelined streams) and snapshots.
//!
//! Plus one heartbeat batcher task per peer ([`super::heartbeat`]). A peer's address comes from
//! openraft's `BasicNode.addr` ("host:port"); a node that shows up under a new address gets
//! new channels.

use super::config::TransportConfig;
use super::error::TransportError;
use super::heartbeat::HeartbeatBatcher;
use super::identity::PeerIdentity;
use super::link::LinkControl;
use crate::types::NodeId;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use strata_proto::internal::v1 as pb;
use strata_proto::internal::v1::raft_peer_client::RaftPeerClient;
use tonic::transport::{Channel, Endpoint};

/// One peer: its address, both channels and its heartbeat batcher.
pub(crate) struct Peer {
    /// The peer's node id.
    pub node_id: NodeId,
    /// "host:port" the channels connect to.
    pub addr: String,
    /// Votes, pre-votes, heartbeat batches, leader transfers.
    pub control: RaftPeerClient<Channel>,
    /// Appends and snapshots.
    pub data: RaftPeerClient<Channel>,
    /// The peer's incarnation as far as this node knows (0: unknown).
    pub incarnation: Arc<AtomicU64>,
    /// This peer's heartbeat batcher.
    pub heartbeats: HeartbeatBatcher,
}

impl Peer {
    /// The header of a message to this peer.
    pub fn header(&self, identity: &PeerIdentity) -> pb::PeerHeader {
        identity.header_to(self.node_id, self.incarnation.load(Ordering::Relaxed))
    }
}

#[derive(Default)]
struct Directory {
    peers: HashMap<NodeId, Arc<Peer>>,
    incarnations: HashMap<NodeId, u64>,
}

/// This node's connections to its peers, shared by the network of every group
/// ([`super::PeerNetwork`]).
pub struct Peers {
    identity: PeerIdentity,
    config: TransportConfig,
    links: Arc<LinkControl>,
    directory: Mutex<Directory>,
}

impl std::fmt::Debug for Peers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peers")
            .field("identity", &self.identity)
            .field("peers", &self.len())
            .finish()
    }
}

impl Peers {
    /// The peers of node `identity`, with the limits of `config` (checked here) and no link
    /// faults.
    pub fn new(
        identity: PeerIdentity,
        config: TransportConfig,
    ) -> Result<Arc<Peers>, TransportError> {
        Peers::with_link_control(identity, config, Arc::new(LinkControl::default()))
    }

    /// As [`Peers::new`], consulting `links` before every message (tests share one
    /// [`LinkControl`] among all nodes of a cluster).
    pub fn with_link_control(
        identity: PeerIdentity,
        config: TransportConfig,
        links: Arc<LinkControl>,
    ) -> Result<Arc<Peers>, TransportError> {
        config.validate()?;
        Ok(Arc::new(Peers {
            identity,
            config,
            links,
            directory: Mutex::default(),
        }))
    }

    /// This node's identity.
    pub fn identity(&self) -> PeerIdentity {
        self.identity
    }

    /// The transport limits.
    pub fn config(&self) -> &TransportConfig {
        &self.config
    }

    /// The link faults consulted before every message.
    pub fn links(&self) -> &Arc<LinkControl> {
        &self.links
    }

    /// Records the incarnation of `node_id`, sent in every later message to it so that a
    /// different life of that node refuses them.
    pub fn set_incarnation(&self, node_id: NodeId, incarnation: u64) {
        let mut dir = self.lock();
        dir.incarnations.insert(node_id, incarnation);
        if let Some(peer) = dir.peers.get(&node_id) {
            peer.incarnation.store(incarnation, Ordering::Relaxed);
        }
    }

    /// Drops the channels and the heartbeat batcher of `node_id` (once no client uses them),
    /// e.g. after the node left the cluster.
    pub fn forget(&self, node_id: NodeId) {
        self.lock().peers.remove(&node_id);
    }

    /// How many peers have channels now.
    pub fn len(&self) -> usize {
        self.lock().peers.len()
    }

    /// Whether no peer has channels.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The peer `node_id` at `addr`: the existing entry, or new channels (not yet connected)
    /// when there is none or the address changed. Must run inside a tokio runtime.
    pub(crate) fn peer(&self, node_id: NodeId, addr: &str) -> Result<Arc<Peer>, String> {
        let mut dir = self.lock();
        if let Some(peer) = dir.peers.get(&node_id)
            && peer.addr == addr
        {
            return Ok(peer.clone());
        }
        let incarnation = dir.incarnations.get(&node_id).copied().unwrap_or(0);
        let peer = Arc::new(self.connect(node_id, addr, incarnation)?);
        dir.peers.insert(node_id, peer.clone());
        Ok(peer)
    }

    fn connect(&self, node_id: NodeId, addr: &str, incarnation: u64) -> Result<Peer, String> {
        let config = &self.config;
        // TLS (a later issue) goes here: an https URI and `Endpoint::tls_config`.
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| format!("bad address {addr:?} of node {node_id}: {e}"))?
            .connect_timeout(config.connect_timeout())
            .tcp_nodelay(true)
            .http2_keep_alive_interval(config.keepalive_interval())
            .keep_alive_timeout(config.keepalive_timeout())
            .keep_alive_while_idle(true);
        let client = |channel: Channel| {
            RaftPeerClient::new(channel)
                .max_decoding_message_size(config.message_bytes_max)
                .max_encoding_message_size(config.message_bytes_max)
        };
        // Two `connect_lazy` calls: two independent connections.
        let control = client(endpoint.connect_lazy());
        let data = client(endpoint.connect_lazy());
        let incarnation = Arc::new(AtomicU64::new(incarnation));
        let heartbeats = HeartbeatBatcher::spawn(
            control.clone(),
            self.identity,
            node_id,
            incarnation.clone(),
            config,
        );
        Ok(Peer {
            node_id,
            addr: addr.to_string(),
            control,
            data,
            incarnation,
            heartbeats,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Directory> {
        // Every update is a single map operation, so a poisoned lock is still consistent.
        strata_record::sync::lock(&self.directory)
    }
}

impl crate::liveness::LivenessSender for Peers {
    fn send(
        &self,
        to: NodeId,
        addr: &str,
        msg: crate::liveness::LivenessMessage,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'static>>
    {
        let peer = self.peer(to, addr);
        let identity = self.identity;
        let timeout = self.config.request_timeout();
        let cut = self.links.get(identity.node_id, to).cut;
        Box::pin(async move {
            if cut {
                return Err(format!("link to node {to} cut"));
            }
            let peer = peer?;
            let mut request = tonic::Request::new(pb::LivenessRequest {
                header: Some(peer.header(&identity)),
                sleeping: msg
                    .sleeping
                    .iter()
                    .map(|(group_id, term)| pb::SleepingGroup {
                        group_id: group_id.get(),
                        term: *term,
                    })
                    .collect(),
            });
            request.set_timeout(timeout);
            peer.control
                .clone()
                .liveness(request)
                .await
                .map(|_| ())
                .map_err(|e| format!("liveness to node {to}: {e}"))
        })
    }
}
