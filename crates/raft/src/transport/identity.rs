//! Who a node is on the wire, and the check every received message passes.
//!
//! A node's identity (cluster id, node id, incarnation) lives in its data directory. Every
//! request carries a [`PeerHeader`] naming the sender and the node it means to reach; the
//! receiver refuses a message for another cluster, another node or another incarnation, so a
//! message meant for a former node at a reused address is never applied.

use crate::types::NodeId;
use strata_proto::internal::v1::PeerHeader;
use tonic::Status;

/// The identity of one node of one cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PeerIdentity {
    /// The cluster the node belongs to.
    pub cluster_id: u64,
    /// The node's id within the cluster.
    pub node_id: NodeId,
    /// Which life of the node this is: a new one (a fresh data directory under the same id)
    /// gets a new incarnation. Never 0: on the wire 0 means "unknown to the sender".
    pub incarnation: u64,
}

impl PeerIdentity {
    /// The header of a message from this node to `to_node`, whose incarnation the sender
    /// believes is `to_incarnation` (0 when it does not know).
    pub fn header_to(&self, to_node: NodeId, to_incarnation: u64) -> PeerHeader {
        PeerHeader {
            cluster_id: self.cluster_id,
            from_node: self.node_id,
            to_node,
            to_incarnation,
        }
    }

    /// Checks that a received message is meant for this node: same cluster, same node id, and
    /// the same incarnation unless the sender sent 0 (does not know it yet).
    ///
    /// A missing header is `InvalidArgument`; a mismatch is `FailedPrecondition`, naming both
    /// identities so the operator can see which node holds a stale address.
    pub fn check(&self, header: Option<&PeerHeader>) -> Result<(), Status> {
        let Some(h) = header else {
            return Err(Status::invalid_argument("peer message without a header"));
        };
        let incarnation_matches = h.to_incarnation == 0 || h.to_incarnation == self.incarnation;
        if h.cluster_id == self.cluster_id && h.to_node == self.node_id && incarnation_matches {
            return Ok(());
        }
        Err(Status::failed_precondition(format!(
            "peer identity mismatch: node {} sent a message for cluster {} node {} incarnation {}, \
             but this is cluster {} node {} incarnation {}",
            h.from_node,
            h.cluster_id,
            h.to_node,
            h.to_incarnation,
            self.cluster_id,
            self.node_id,
            self.incarnation
        )))
    }
}
